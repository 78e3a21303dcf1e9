// Integer dot kernels for int8_gemm.h: AVX2, AVX-VNNI and AVX-512 VNNI.
// Each returns exactly the reference's int32 sums (value ranges and why no
// intermediate saturates: see int8_gemm.h). Compiled for x86-64-v2 like the
// rest of the library; every function carries a target attribute and is
// reached only through int8_kernels() after int8_isa_supported() said yes.
//
//   AVX2:     a·b = maddubs(|a|, sign(b, a)) -> int16 pairs, madd(., 1) -> int32.
//   VNNI:     vpdpbusd(acc, a + 128 (u8), b (s8)); result - 128 * sum(b).
//   int4:     maddubs / vpdpbusd(N (u8 nibble), a (s8)), the -8 is the caller's; AVX2 adds
//             up to 8 maddubs results in int16 before widening (bound below).
// Tails (k % 32 or % 64) are finished in scalar with the same arithmetic.
#include <immintrin.h>

#include <cstdint>

#include "kernels/avx2_common.h"
#include "kernels/int8_gemm.h"

#define LB_AVXVNNI __attribute__((target("avx2,fma,f16c,avxvnni")))
#define LB_AVX512VNNI __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))

namespace lowbit {
namespace {

using avx2::load32;

// ---------------------------------------------------------------- helpers
LB_AVX2 inline int32_t hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(s);
}

// 16 packed bytes -> 32 nibbles in value order (byte j: value 2j low, 2j+1 high).
LB_AVX2 inline __m256i unpack_nibbles_ordered(const uint8_t* p) {
  const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m128i m = _mm_set1_epi8(0x0F);
  const __m128i lo = _mm_and_si128(x, m);
  const __m128i hi = _mm_and_si128(_mm_srli_epi16(x, 4), m);
  return _mm256_set_m128i(_mm_unpackhi_epi8(lo, hi), _mm_unpacklo_epi8(lo, hi));
}

// Scalar tails, sharing the arithmetic of the vector part.
inline int32_t tail_i8(const int8_t* a, const int8_t* b, int64_t i, int64_t k, int32_t off) {
  int32_t s = 0;
  for (; i < k; ++i) s += (int32_t(a[i]) + off) * int32_t(b[i]);
  return s;
}
inline int32_t tail_u4(const uint8_t* b, const int8_t* a, int64_t i, int64_t end) {
  int32_t s = 0;
  for (; i < end; i += 2) {
    const uint8_t byte = b[i / 2];
    s += int32_t(byte & 0x0F) * a[i] + int32_t(byte >> 4) * a[i + 1];
  }
  return s;
}

// ---------------------------------------------------------------- AVX2
LB_AVX2 inline __m256i dot32_i8(__m256i a, __m256i b) {
  // |a| <= 127 and |b| <= 127: int16 pair sums <= 32258, no maddubs saturation.
  return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(a), _mm256_sign_epi8(b, a)), _mm256_set1_epi16(1));
}

LB_AVX2 void avx2_dot_i8_4rows(const int8_t* a, const int8_t* b, int64_t ldb, int64_t k, const int32_t*, int32_t* out) {
  __m256i acc0 = _mm256_setzero_si256(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
  const int8_t* b0 = b;
  const int8_t* b1 = b + ldb;
  const int8_t* b2 = b + 2 * ldb;
  const int8_t* b3 = b + 3 * ldb;
  int64_t i = 0;
  for (; i + 32 <= k; i += 32) {
    const __m256i va = load32(a + i);
    const __m256i ua = _mm256_abs_epi8(va);
    const __m256i one = _mm256_set1_epi16(1);
    acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(_mm256_maddubs_epi16(ua, _mm256_sign_epi8(load32(b0 + i), va)), one));
    acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(_mm256_maddubs_epi16(ua, _mm256_sign_epi8(load32(b1 + i), va)), one));
    acc2 = _mm256_add_epi32(acc2, _mm256_madd_epi16(_mm256_maddubs_epi16(ua, _mm256_sign_epi8(load32(b2 + i), va)), one));
    acc3 = _mm256_add_epi32(acc3, _mm256_madd_epi16(_mm256_maddubs_epi16(ua, _mm256_sign_epi8(load32(b3 + i), va)), one));
  }
  out[0] = hsum_i32(acc0) + tail_i8(a, b0, i, k, 0);
  out[1] = hsum_i32(acc1) + tail_i8(a, b1, i, k, 0);
  out[2] = hsum_i32(acc2) + tail_i8(a, b2, i, k, 0);
  out[3] = hsum_i32(acc3) + tail_i8(a, b3, i, k, 0);
}

LB_AVX2 void avx2_dot_i8_1row(const int8_t* a, const int8_t* b, int64_t k, int32_t, int32_t* out) {
  __m256i acc0 = _mm256_setzero_si256(), acc1 = acc0;
  int64_t i = 0;
  for (; i + 64 <= k; i += 64) {
    acc0 = _mm256_add_epi32(acc0, dot32_i8(load32(a + i), load32(b + i)));
    acc1 = _mm256_add_epi32(acc1, dot32_i8(load32(a + i + 32), load32(b + i + 32)));
  }
  for (; i + 32 <= k; i += 32) acc0 = _mm256_add_epi32(acc0, dot32_i8(load32(a + i), load32(b + i)));
  *out = hsum_i32(_mm256_add_epi32(acc0, acc1)) + tail_i8(a, b, i, k, 0);
}

// int4 (AVX2): maddubs(N, a) lanes are <= 2 * 15 * 127 = 3810 in magnitude, so up to
// 8 of them add up in int16 (<= 30480 < 32767) before one madd widens them to int32.
constexpr int kI16Steps = 8;

LB_AVX2 void avx2_dot_u4_i8_groups(const uint8_t* b, const int8_t* a, int64_t k, int64_t gs, int32_t* out) {
  const __m256i one = _mm256_set1_epi16(1);
  for (int64_t g0 = 0, g = 0; g0 < k; g0 += gs, ++g) {
    __m256i acc = _mm256_setzero_si256(), acc16 = acc;
    int64_t i = g0;
    for (int step = 1; i + 32 <= g0 + gs; i += 32, ++step) {
      acc16 = _mm256_add_epi16(acc16, _mm256_maddubs_epi16(unpack_nibbles_ordered(b + i / 2), load32(a + i)));
      if (step % kI16Steps == 0) {
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(acc16, one));
        acc16 = _mm256_setzero_si256();
      }
    }
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(acc16, one));
    out[g] = hsum_i32(acc) + tail_u4(b, a, i, g0 + gs);
  }
}

// Split-order activations (int8_gemm.h): 32 packed bytes = 64 values, low nibbles
// against as[0..31], high nibbles against as[32..63]; gs % 64 == 0, so no tails.
LB_AVX2 void avx2_dot_u4_i8s_groups(const uint8_t* b, const int8_t* as, int64_t k, int64_t gs, int32_t* out) {
  const __m256i one = _mm256_set1_epi16(1), m = _mm256_set1_epi8(0x0F);
  for (int64_t g0 = 0, g = 0; g0 < k; g0 += gs, ++g) {
    __m256i acc = _mm256_setzero_si256(), acc16 = acc;
    // Each 64-value step adds 2 maddubs results: flush every kI16Steps / 2 steps.
    for (int64_t i = g0, step = 1; i < g0 + gs; i += 64, ++step) {
      const __m256i x = load32(b + i / 2);
      const __m256i lo = _mm256_and_si256(x, m), hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), m);
      acc16 = _mm256_add_epi16(acc16, _mm256_maddubs_epi16(lo, load32(as + i)));
      acc16 = _mm256_add_epi16(acc16, _mm256_maddubs_epi16(hi, load32(as + i + 32)));
      if (step % (kI16Steps / 2) == 0) {
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(acc16, one));
        acc16 = _mm256_setzero_si256();
      }
    }
    out[g] = hsum_i32(_mm256_add_epi32(acc, _mm256_madd_epi16(acc16, one)));
  }
}

inline int32_t tail_n8(const uint8_t* n, const int8_t* a, int64_t i, int64_t end) {
  int32_t s = 0;
  for (; i < end; ++i) s += int32_t(n[i]) * a[i];
  return s;
}

LB_AVX2 void avx2_dot_n8_i8_groups_4tok(const uint8_t* n, const int8_t* a, int64_t lda, int64_t k, int64_t gs,
                                        int32_t* out) {
  const __m256i one = _mm256_set1_epi16(1);
  const int64_t ng = k / gs;
  for (int64_t g0 = 0, g = 0; g0 < k; g0 += gs, ++g) {
    __m256i acc[4], acc16[4];
    for (int t = 0; t < 4; ++t) acc[t] = acc16[t] = _mm256_setzero_si256();
    int64_t i = g0;
    for (int step = 1; i + 32 <= g0 + gs; i += 32, ++step) {
      const __m256i vn = load32(n + i);
      for (int t = 0; t < 4; ++t) acc16[t] = _mm256_add_epi16(acc16[t], _mm256_maddubs_epi16(vn, load32(a + t * lda + i)));
      if (step % kI16Steps == 0)
        for (int t = 0; t < 4; ++t) {
          acc[t] = _mm256_add_epi32(acc[t], _mm256_madd_epi16(acc16[t], one));
          acc16[t] = _mm256_setzero_si256();
        }
    }
    for (int t = 0; t < 4; ++t)
      out[t * ng + g] = hsum_i32(_mm256_add_epi32(acc[t], _mm256_madd_epi16(acc16[t], one))) + tail_n8(n, a + t * lda, i, g0 + gs);
  }
}

// ---------------------------------------------------------------- AVX-VNNI (VEX, 256-bit)
LB_AVXVNNI inline __m256i flip_sign(__m256i a) { return _mm256_xor_si256(a, _mm256_set1_epi8(int8_t(0x80))); }  // a + 128 as u8

LB_AVXVNNI void avxvnni_dot_i8_4rows(const int8_t* a, const int8_t* b, int64_t ldb, int64_t k, const int32_t* bsum,
                                     int32_t* out) {
  __m256i acc0 = _mm256_setzero_si256(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
  int64_t i = 0;
  for (; i + 32 <= k; i += 32) {
    const __m256i ua = flip_sign(load32(a + i));
    acc0 = _mm256_dpbusd_avx_epi32(acc0, ua, load32(b + i));
    acc1 = _mm256_dpbusd_avx_epi32(acc1, ua, load32(b + ldb + i));
    acc2 = _mm256_dpbusd_avx_epi32(acc2, ua, load32(b + 2 * ldb + i));
    acc3 = _mm256_dpbusd_avx_epi32(acc3, ua, load32(b + 3 * ldb + i));
  }
  const __m256i accs[4] = {acc0, acc1, acc2, acc3};
  for (int r = 0; r < 4; ++r) out[r] = hsum_i32(accs[r]) + tail_i8(a, b + r * ldb, i, k, 128) - 128 * bsum[r];
}

LB_AVXVNNI void avxvnni_dot_i8_1row(const int8_t* a, const int8_t* b, int64_t k, int32_t bsum, int32_t* out) {
  __m256i acc0 = _mm256_setzero_si256(), acc1 = acc0;
  int64_t i = 0;
  for (; i + 64 <= k; i += 64) {
    acc0 = _mm256_dpbusd_avx_epi32(acc0, flip_sign(load32(a + i)), load32(b + i));
    acc1 = _mm256_dpbusd_avx_epi32(acc1, flip_sign(load32(a + i + 32)), load32(b + i + 32));
  }
  for (; i + 32 <= k; i += 32) acc0 = _mm256_dpbusd_avx_epi32(acc0, flip_sign(load32(a + i)), load32(b + i));
  *out = hsum_i32(_mm256_add_epi32(acc0, acc1)) + tail_i8(a, b, i, k, 128) - 128 * bsum;
}

LB_AVXVNNI void avxvnni_dot_u4_i8_groups(const uint8_t* b, const int8_t* a, int64_t k, int64_t gs, int32_t* out) {
  for (int64_t g0 = 0, g = 0; g0 < k; g0 += gs, ++g) {
    __m256i acc = _mm256_setzero_si256();
    int64_t i = g0;
    for (; i + 32 <= g0 + gs; i += 32) acc = _mm256_dpbusd_avx_epi32(acc, unpack_nibbles_ordered(b + i / 2), load32(a + i));
    out[g] = hsum_i32(acc) + tail_u4(b, a, i, g0 + gs);
  }
}

LB_AVXVNNI void avxvnni_dot_n8_i8_groups_4tok(const uint8_t* n, const int8_t* a, int64_t lda, int64_t k, int64_t gs,
                                              int32_t* out) {
  const int64_t ng = k / gs;
  for (int64_t g0 = 0, g = 0; g0 < k; g0 += gs, ++g) {
    __m256i acc[4];
    for (int t = 0; t < 4; ++t) acc[t] = _mm256_setzero_si256();
    int64_t i = g0;
    for (; i + 32 <= g0 + gs; i += 32) {
      const __m256i vn = load32(n + i);
      for (int t = 0; t < 4; ++t) acc[t] = _mm256_dpbusd_avx_epi32(acc[t], vn, load32(a + t * lda + i));
    }
    for (int t = 0; t < 4; ++t) out[t * ng + g] = hsum_i32(acc[t]) + tail_n8(n, a + t * lda, i, g0 + gs);
  }
}

LB_AVXVNNI void avxvnni_dot_u4_i8s_groups(const uint8_t* b, const int8_t* as, int64_t k, int64_t gs, int32_t* out) {
  const __m256i m = _mm256_set1_epi8(0x0F);
  for (int64_t g0 = 0, g = 0; g0 < k; g0 += gs, ++g) {
    __m256i acc = _mm256_setzero_si256();
    for (int64_t i = g0; i < g0 + gs; i += 64) {
      const __m256i x = load32(b + i / 2);
      acc = _mm256_dpbusd_avx_epi32(acc, _mm256_and_si256(x, m), load32(as + i));
      acc = _mm256_dpbusd_avx_epi32(acc, _mm256_and_si256(_mm256_srli_epi16(x, 4), m), load32(as + i + 32));
    }
    out[g] = hsum_i32(acc);
  }
}

// ---------------------------------------------------------------- AVX-512 VNNI
// GCC 12's avx512fintrin.h builds _mm512_extracti64x4 / inserti64x4 / shuffle_i64x2
// from an uninitialised __Y (its own "undefined" placeholder) and then warns about it.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
LB_AVX512VNNI inline __m512i load64(const void* p) { return _mm512_loadu_si512(p); }
LB_AVX512VNNI inline __m512i flip_sign512(__m512i a) { return _mm512_xor_si512(a, _mm512_set1_epi8(int8_t(0x80))); }

LB_AVX512VNNI void avx512vnni_dot_i8_4rows(const int8_t* a, const int8_t* b, int64_t ldb, int64_t k,
                                           const int32_t* bsum, int32_t* out) {
  __m512i acc0 = _mm512_setzero_si512(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
  int64_t i = 0;
  for (; i + 64 <= k; i += 64) {
    const __m512i ua = flip_sign512(load64(a + i));
    acc0 = _mm512_dpbusd_epi32(acc0, ua, load64(b + i));
    acc1 = _mm512_dpbusd_epi32(acc1, ua, load64(b + ldb + i));
    acc2 = _mm512_dpbusd_epi32(acc2, ua, load64(b + 2 * ldb + i));
    acc3 = _mm512_dpbusd_epi32(acc3, ua, load64(b + 3 * ldb + i));
  }
  const __m512i accs[4] = {acc0, acc1, acc2, acc3};
  for (int r = 0; r < 4; ++r)
    out[r] = _mm512_reduce_add_epi32(accs[r]) + tail_i8(a, b + r * ldb, i, k, 128) - 128 * bsum[r];
}

LB_AVX512VNNI void avx512vnni_dot_i8_1row(const int8_t* a, const int8_t* b, int64_t k, int32_t bsum, int32_t* out) {
  __m512i acc0 = _mm512_setzero_si512(), acc1 = acc0;
  int64_t i = 0;
  for (; i + 128 <= k; i += 128) {
    acc0 = _mm512_dpbusd_epi32(acc0, flip_sign512(load64(a + i)), load64(b + i));
    acc1 = _mm512_dpbusd_epi32(acc1, flip_sign512(load64(a + i + 64)), load64(b + i + 64));
  }
  for (; i + 64 <= k; i += 64) acc0 = _mm512_dpbusd_epi32(acc0, flip_sign512(load64(a + i)), load64(b + i));
  *out = _mm512_reduce_add_epi32(_mm512_add_epi32(acc0, acc1)) + tail_i8(a, b, i, k, 128) - 128 * bsum;
}

LB_AVX512VNNI void avx512vnni_dot_u4_i8_groups(const uint8_t* b, const int8_t* a, int64_t k, int64_t gs, int32_t* out) {
  const __m256i m = _mm256_set1_epi8(0x0F);
  for (int64_t g0 = 0, g = 0; g0 < k; g0 += gs, ++g) {
    __m512i acc = _mm512_setzero_si512();
    int64_t i = g0;
    // 64 values from 32 bytes. unpack{lo,hi}_epi8 work per 128-bit lane, giving
    // values [0..15 | 32..47] and [16..31 | 48..63]; the activations are put in
    // the same order (128-bit lanes 0, 2, 1, 3) instead of reordering the nibbles.
    for (; i + 64 <= g0 + gs; i += 64) {
      const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + i / 2));
      const __m256i lo = _mm256_and_si256(x, m);
      const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), m);
      const __m512i n = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_unpacklo_epi8(lo, hi)), _mm256_unpackhi_epi8(lo, hi), 1);
      const __m512i va = load64(a + i);
      acc = _mm512_dpbusd_epi32(acc, n, _mm512_shuffle_i64x2(va, va, _MM_SHUFFLE(3, 1, 2, 0)));
    }
    __m256i acc256 = _mm256_setzero_si256();
    for (; i + 32 <= g0 + gs; i += 32) acc256 = _mm256_dpbusd_epi32(acc256, unpack_nibbles_ordered(b + i / 2), load32(a + i));
    out[g] = _mm512_reduce_add_epi32(acc) + hsum_i32(acc256) + tail_u4(b, a, i, g0 + gs);
  }
}

LB_AVX512VNNI void avx512vnni_dot_n8_i8_groups_4tok(const uint8_t* n, const int8_t* a, int64_t lda, int64_t k, int64_t gs,
                                                    int32_t* out) {
  const int64_t ng = k / gs;
  for (int64_t g0 = 0, g = 0; g0 < k; g0 += gs, ++g) {
    __m512i acc[4];
    __m256i acc256[4];
    for (int t = 0; t < 4; ++t) {
      acc[t] = _mm512_setzero_si512();
      acc256[t] = _mm256_setzero_si256();
    }
    int64_t i = g0;
    for (; i + 64 <= g0 + gs; i += 64) {
      const __m512i vn = load64(n + i);
      for (int t = 0; t < 4; ++t) acc[t] = _mm512_dpbusd_epi32(acc[t], vn, load64(a + t * lda + i));
    }
    for (; i + 32 <= g0 + gs; i += 32) {
      const __m256i vn = load32(n + i);
      for (int t = 0; t < 4; ++t) acc256[t] = _mm256_dpbusd_epi32(acc256[t], vn, load32(a + t * lda + i));
    }
    for (int t = 0; t < 4; ++t)
      out[t * ng + g] = _mm512_reduce_add_epi32(acc[t]) + hsum_i32(acc256[t]) + tail_n8(n, a + t * lda, i, g0 + gs);
  }
}

LB_AVX512VNNI void avx512vnni_dot_u4_i8s_groups(const uint8_t* b, const int8_t* as, int64_t k, int64_t gs, int32_t* out) {
  const __m256i m = _mm256_set1_epi8(0x0F);
  for (int64_t g0 = 0, g = 0; g0 < k; g0 += gs, ++g) {
    __m256i acc = _mm256_setzero_si256();
    for (int64_t i = g0; i < g0 + gs; i += 64) {
      const __m256i x = load32(b + i / 2);
      acc = _mm256_dpbusd_epi32(acc, _mm256_and_si256(x, m), load32(as + i));
      acc = _mm256_dpbusd_epi32(acc, _mm256_and_si256(_mm256_srli_epi16(x, 4), m), load32(as + i + 32));
    }
    out[g] = hsum_i32(acc);
  }
}

#pragma GCC diagnostic pop

const Int8Kernels kAvx2{avx2_dot_i8_4rows, avx2_dot_i8_1row, avx2_dot_u4_i8_groups, avx2_dot_n8_i8_groups_4tok,
                        avx2_dot_u4_i8s_groups};
const Int8Kernels kAvxVnni{avxvnni_dot_i8_4rows, avxvnni_dot_i8_1row, avxvnni_dot_u4_i8_groups,
                           avxvnni_dot_n8_i8_groups_4tok, avxvnni_dot_u4_i8s_groups};
const Int8Kernels kAvx512Vnni{avx512vnni_dot_i8_4rows, avx512vnni_dot_i8_1row, avx512vnni_dot_u4_i8_groups,
                              avx512vnni_dot_n8_i8_groups_4tok, avx512vnni_dot_u4_i8s_groups};

}  // namespace

const Int8Kernels& int8_kernels_avx2() { return kAvx2; }
const Int8Kernels& int8_kernels_avx_vnni() { return kAvxVnni; }
const Int8Kernels& int8_kernels_avx512_vnni() { return kAvx512Vnni; }

}  // namespace lowbit
