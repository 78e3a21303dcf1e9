// AVX2 + FMA + F16C dot products, one per format, with the semantics of the
// scalar references in formats/*.cpp (same pairing, same scale application;
// only the float summation order differs: blocks accumulate in f32 lanes).
//
// Compiled for x86-64-v2 like the rest of the library: every function here
// carries a target attribute and is only reached through kernels/dispatch.cpp
// after cpu_features() said the CPU (and OS) support AVX2, FMA and F16C.
//
// Integer building blocks (per 32 bytes, int8 lanes):
//   dot_u8_i8(u, s)  = 8 x int32, lane k = sum_{j=4k..4k+3} u[j] * s[j]
//                      (maddubs: u8*s8 pairs -> int16, then madd with 1 -> int32;
//                       callers keep 2 * max|u| * 127 < 32768 so int16 never saturates)
//   dot_i8_i8(a, b)  = dot_u8_i8(|a|, sign(b, a))   (a*b == |a| * (b * sign a))
#include <immintrin.h>

#include <cstdint>

#include "formats/blocks_legacy.h"
#include "formats/k_quants.h"
#include "kernels/dispatch.h"

#define LB_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace lowbit {
namespace {

LB_AVX2 inline float fp16(uint16_t h) { return _cvtsh_ss(h); }

LB_AVX2 inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

LB_AVX2 inline __m256i dot_u8_i8(__m256i u, __m256i s) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

LB_AVX2 inline __m256i dot_i8_i8(__m256i a, __m256i b) {
  return dot_u8_i8(_mm256_sign_epi8(a, a), _mm256_sign_epi8(b, a));
}

// 16 bytes of packed nibbles -> 32 bytes: lanes 0..15 = low nibbles (values 0..15),
// lanes 16..31 = high nibbles (values 16..31), the legacy formats' value order.
LB_AVX2 inline __m256i unpack_nibbles32(const uint8_t* qs) {
  const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m128i m = _mm_set1_epi8(0x0F);
  return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(b, 4), m), _mm_and_si128(b, m));
}

// 32 bits (little-endian qh) -> 32 bytes, byte j = 0xFF when bit j is set, else 0.
LB_AVX2 inline __m256i bits_to_bytes(const uint8_t* qh4) {
  uint32_t bits;
  __builtin_memcpy(&bits, qh4, 4);
  const __m256i v = _mm256_set1_epi32(int(bits));
  // byte j takes source byte j / 8 (pshufb works within each 128-bit lane; both lanes hold all 4 bytes)
  const __m256i pick = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
  const __m256i bit = _mm256_set1_epi64x(int64_t(0x8040201008040201));  // byte j tests bit j % 8
  return _mm256_cmpeq_epi8(_mm256_and_si256(_mm256_shuffle_epi8(v, pick), bit), bit);
}

LB_AVX2 inline __m256i load32(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// acc += scale * float(sumi), lane by lane.
LB_AVX2 inline __m256 add_scaled(__m256 acc, float scale, __m256i sumi) {
  return _mm256_fmadd_ps(_mm256_set1_ps(scale), _mm256_cvtepi32_ps(sumi), acc);
}

// ---------------------------------------------------------------- legacy 32-value formats
// A block's 32 levels as bytes: signed for the formats paired with q8_0 (levels(), so that
// block = d_x * d_y * sum(level * qy)), unsigned for those with an offset, paired with
// q8_1 (levels_u8(), block = d_x * d_y * sum(level * qy) + m_x * s_y).

// q8_0: the stored quants.
LB_AVX2 inline __m256i levels(const BlockQ8_0& b) { return load32(b.qs); }

// q4_0: q - 8 in -8..7.
LB_AVX2 inline __m256i levels(const BlockQ4_0& b) {
  return _mm256_sub_epi8(unpack_nibbles32(b.qs), _mm256_set1_epi8(8));
}

// iq4_nl: grid[q]; the lookup is a pshufb on the 16-entry table.
LB_AVX2 inline __m256i levels(const BlockIQ4_NL& b) {
  const __m128i grid = _mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4nlValues));
  return _mm256_shuffle_epi8(_mm256_set_m128i(grid, grid), unpack_nibbles32(b.qs));
}

// q5_0 / q5_1: q = nibble | fifth_bit << 4 in 0..31.
LB_AVX2 inline __m256i five_bit_levels(const uint8_t* qs, const uint8_t* qh) {
  return _mm256_or_si256(unpack_nibbles32(qs), _mm256_and_si256(bits_to_bytes(qh), _mm256_set1_epi8(0x10)));
}

// q5_0: q - 16 in -16..15.
LB_AVX2 inline __m256i levels(const BlockQ5_0& b) {
  return _mm256_sub_epi8(five_bit_levels(b.qs, b.qh), _mm256_set1_epi8(16));
}

// q4_1: q in 0..15; q5_1: q in 0..31.
LB_AVX2 inline __m256i levels_u8(const BlockQ4_1& b) { return unpack_nibbles32(b.qs); }
LB_AVX2 inline __m256i levels_u8(const BlockQ5_1& b) { return five_bit_levels(b.qs, b.qh); }

// q8_0, q4_0, iq4_nl, q5_0 . q8_0 (signed trick for level * qy).
template <class Block>
LB_AVX2 float dot_q8_0(int64_t n, const void* vx, const void* vy) {
  const auto* x = static_cast<const Block*>(vx);
  const auto* y = static_cast<const BlockQ8_0*>(vy);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / kLegacyBlock; ++b)
    acc = add_scaled(acc, fp16(x[b].d) * fp16(y[b].d), dot_i8_i8(levels(x[b]), load32(y[b].qs)));
  return hsum(acc);
}

// q4_1, q5_1 . q8_1 (the level is maddubs' unsigned operand).
template <class Block>
LB_AVX2 float dot_q8_1(int64_t n, const void* vx, const void* vy) {
  const auto* x = static_cast<const Block*>(vx);
  const auto* y = static_cast<const BlockQ8_1*>(vy);
  __m256 acc = _mm256_setzero_ps();
  float offset = 0;
  for (int64_t b = 0; b < n / kLegacyBlock; ++b) {
    acc = add_scaled(acc, fp16(x[b].d) * fp16(y[b].d), dot_u8_i8(levels_u8(x[b]), load32(y[b].qs)));
    offset += fp16(x[b].m) * fp16(y[b].s);
  }
  return hsum(acc) + offset;
}

// ---------------------------------------------------------------- k-quants (256-value super-blocks)

// sumi += scales * (u . y) for 32 unsigned levels u and 32 q8_K quants y: int16 lane k of
// the products (values 2k, 2k + 1) is weighted by int16 lane k of `scales`.
// Callers keep 2 * max(u) * 127 < 32768 (no int16 saturation).
LB_AVX2 inline __m256i add_dot_scaled(__m256i sumi, __m256i u, const int8_t* y, __m256i scales) {
  return _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(u, load32(y)), scales));
}

// `scales` for 32 values of one 32-value sub-block with scale sc.
LB_AVX2 inline __m256i scales32(int sc) { return _mm256_set1_epi16(int16_t(sc)); }

// `scales` for 32 values spanning two 16-value sub-blocks: lanes 0..7 (int16 pairs of
// the first 16 values) get sc_lo, lanes 8..15 get sc_hi.
LB_AVX2 inline __m256i scales16x2(int sc_lo, int sc_hi) {
  return _mm256_set_m128i(_mm_set1_epi16(int16_t(sc_hi)), _mm_set1_epi16(int16_t(sc_lo)));
}

// Levels of sub-blocks 2p (lo) and 2p + 1 (hi) of q4_K (0..15) / q5_K (0..31), 32 bytes each.
LB_AVX2 inline void levels_pair(const BlockQ4_K& b, int p, __m256i& lo, __m256i& hi) {
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  const __m256i qs = load32(b.qs + 32 * p);  // low nibbles = sub-block 2p, high = 2p + 1
  lo = _mm256_and_si256(qs, low4);
  hi = _mm256_and_si256(_mm256_srli_epi16(qs, 4), low4);
}

// q5_K: as q4_K with q = nibble | (qh[l] >> j & 1) << 4 for sub-block j.
LB_AVX2 inline void levels_pair(const BlockQ5_K& b, int p, __m256i& lo, __m256i& hi) {
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  const __m256i one = _mm256_set1_epi8(1);
  const __m256i qs = load32(b.qs + 32 * p);
  const __m256i qh = load32(b.qh);
  // fifth bit of sub-block j: (qh >> j) & 1, moved to bit 4 (bytes 0/1 -> 0/16, no carry across bytes)
  const __m256i h0 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * p), one), 4);
  const __m256i h1 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * p + 1), one), 4);
  lo = _mm256_or_si256(_mm256_and_si256(qs, low4), h0);
  hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qs, 4), low4), h1);
}

// q4_K, q5_K . q8_K: sum_q = sum_j sc[j] * sum_{i in j} q_i * y_i  (q <= 31: |sum_q| < 256*31*127*63 < 2^31),
//                    sum_m = sum_j m[j] * (bsums[2j] + bsums[2j+1]);
// block = y.d * (d * sum_q - dmin * sum_m).
template <class Block>
LB_AVX2 float dot_q8_K_8x32(int64_t n, const void* vx, const void* vy) {
  const auto* x = static_cast<const Block*>(vx);
  const auto* y = static_cast<const BlockQ8_K*>(vy);
  __m256 acc = _mm256_setzero_ps();
  float mins = 0;
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    int sc[8], m[8];
    int32_t sum_m = 0;
    for (int j = 0; j < 8; ++j) {
      get_scale_min_k4(x[b].scales, j, sc[j], m[j]);
      sum_m += m[j] * (y[b].bsums[2 * j] + y[b].bsums[2 * j + 1]);
    }
    __m256i sumi = _mm256_setzero_si256();
    for (int p = 0; p < 4; ++p) {
      __m256i lo, hi;
      levels_pair(x[b], p, lo, hi);
      sumi = add_dot_scaled(sumi, lo, y[b].qs + 64 * p, scales32(sc[2 * p]));
      sumi = add_dot_scaled(sumi, hi, y[b].qs + 64 * p + 32, scales32(sc[2 * p + 1]));
    }
    const float dy = y[b].d;
    acc = add_scaled(acc, dy * fp16(x[b].d), sumi);
    mins += dy * fp16(x[b].dmin) * float(sum_m);
  }
  return hsum(acc) - mins;
}

// q6_K . q8_K: q = u - 32 with u = low4 | top2 << 4 in 0..63 (unsigned operand), so
//   sum_q = sum_g sc[g] * (sum_{i in g} u_i * y_i - 32 * bsums[g])   (16 sub-blocks g of 16)
// block = y.d * d * sum_q.
LB_AVX2 float dot_q6_K_q8_K(int64_t n, const void* vx, const void* vy) {
  const auto* x = static_cast<const BlockQ6_K*>(vx);
  const auto* y = static_cast<const BlockQ8_K*>(vy);
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  const __m256i two = _mm256_set1_epi8(0x03);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const int8_t* sc = x[b].scales;
    int32_t bias = 0;
    for (int g = 0; g < 16; ++g) bias += int32_t(sc[g]) * y[b].bsums[g];
    __m256i sumi = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const __m256i ql0 = load32(x[b].ql + 64 * h);
      const __m256i ql1 = load32(x[b].ql + 64 * h + 32);
      const __m256i qh = load32(x[b].qh + 32 * h);
      const __m256i u[4] = {
          _mm256_or_si256(_mm256_and_si256(ql0, low4), _mm256_slli_epi16(_mm256_and_si256(qh, two), 4)),
          _mm256_or_si256(_mm256_and_si256(ql1, low4),
                          _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), two), 4)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4),
                          _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), two), 4)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4),
                          _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), two), 4)),
      };
      for (int k = 0; k < 4; ++k) {  // values 128h + 32k .. +31 = sub-blocks g, g + 1; |u.y| <= 2*63*127
        const int g = 8 * h + 2 * k;
        sumi = add_dot_scaled(sumi, u[k], y[b].qs + 128 * h + 32 * k, scales16x2(sc[g], sc[g + 1]));
      }
    }
    // |sum_i sc*u*y| < 256*63*127*128 < 2^31
    const __m256i bias_v = _mm256_setr_epi32(32 * bias, 0, 0, 0, 0, 0, 0, 0);
    acc = add_scaled(acc, y[b].d * fp16(x[b].d), _mm256_sub_epi32(sumi, bias_v));
  }
  return hsum(acc);
}

// q2_K . q8_K: q in 0..3 = (qs[32h + l] >> 2k) & 3 for value 128h + 32k + l;
//   sum_q = sum_g sc[g] * sum_{i in g} q_i * y_i,  sum_m = sum_g m[g] * bsums[g];
// block = y.d * (d * sum_q - dmin * sum_m).
LB_AVX2 float dot_q2_K_q8_K(int64_t n, const void* vx, const void* vy) {
  const auto* x = static_cast<const BlockQ2_K*>(vx);
  const auto* y = static_cast<const BlockQ8_K*>(vy);
  const __m256i two = _mm256_set1_epi8(0x03);
  __m256 acc = _mm256_setzero_ps();
  float mins = 0;
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const uint8_t* s = x[b].scales;
    int32_t sum_m = 0;
    for (int g = 0; g < 16; ++g) sum_m += int32_t(s[g] >> 4) * y[b].bsums[g];
    __m256i sumi = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const __m256i qs = load32(x[b].qs + 32 * h);
      for (int k = 0; k < 4; ++k) {
        const int g = 8 * h + 2 * k;
        const __m256i q = _mm256_and_si256(_mm256_srli_epi16(qs, 2 * k), two);
        sumi = add_dot_scaled(sumi, q, y[b].qs + 128 * h + 32 * k, scales16x2(s[g] & 15, s[g + 1] & 15));
      }
    }
    const float dy = y[b].d;
    acc = add_scaled(acc, dy * fp16(x[b].d), sumi);
    mins += dy * fp16(x[b].dmin) * float(sum_m);
  }
  return hsum(acc) - mins;
}

// q3_K . q8_K: q = u - 4 with u = low2 | hbit << 2 in 0..7 (hbit = hmask[l] bit (4h + k) for
// value 128h + 32k + l), sc 6-bit - 32:
//   sum_q = sum_g sc[g] * (sum_{i in g} u_i * y_i - 4 * bsums[g]);  block = y.d * d * sum_q.
LB_AVX2 float dot_q3_K_q8_K(int64_t n, const void* vx, const void* vy) {
  const auto* x = static_cast<const BlockQ3_K*>(vx);
  const auto* y = static_cast<const BlockQ8_K*>(vy);
  const __m256i two = _mm256_set1_epi8(0x03);
  const __m256i one = _mm256_set1_epi8(0x01);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const uint8_t* s = x[b].scales;
    int sc[16];
    int32_t bias = 0;
    for (int j = 0; j < 16; ++j) {
      const int low = j < 8 ? (s[j] & 15) : (s[j - 8] >> 4);
      const int top = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
      sc[j] = (low | top << 4) - 32;
      bias += sc[j] * y[b].bsums[j];
    }
    const __m256i hm = load32(x[b].hmask);
    __m256i sumi = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const __m256i qs = load32(x[b].qs + 32 * h);
      for (int k = 0; k < 4; ++k) {
        const int g = 8 * h + 2 * k;
        const __m256i hb = _mm256_and_si256(_mm256_srli_epi16(hm, 4 * h + k), one);
        const __m256i u = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qs, 2 * k), two), _mm256_slli_epi16(hb, 2));
        // |u.y| <= 2*7*127
        sumi = add_dot_scaled(sumi, u, y[b].qs + 128 * h + 32 * k, scales16x2(sc[g], sc[g + 1]));
      }
    }
    const __m256i bias_v = _mm256_setr_epi32(4 * bias, 0, 0, 0, 0, 0, 0, 0);
    acc = add_scaled(acc, y[b].d * fp16(x[b].d), _mm256_sub_epi32(sumi, bias_v));
  }
  return hsum(acc);
}

// ---------------------------------------------------------------- float formats (y is f32)

// f16 . f32: 8 halves -> f32 (vcvtph2ps), fused multiply-add; scalar tail.
LB_AVX2 float dot_f16_f32(int64_t n, const void* vx, const void* vy) {
  const auto* x = static_cast<const uint16_t*>(vx);
  const float* y = static_cast<const float*>(vy);
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    a0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i))),
                         _mm256_loadu_ps(y + i), a0);
    a1 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i + 8))),
                         _mm256_loadu_ps(y + i + 8), a1);
  }
  float s = hsum(_mm256_add_ps(a0, a1));
  for (; i < n; ++i) s += fp16(x[i]) * y[i];
  return s;
}

// bf16 . f32: bf16 -> f32 is the 16 bits moved to the top of a 32-bit lane.
LB_AVX2 float dot_bf16_f32(int64_t n, const void* vx, const void* vy) {
  const auto* x = static_cast<const uint16_t*>(vx);
  const float* y = static_cast<const float*>(vy);
  __m256 a0 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i)));
    a0 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(w, 16)), _mm256_loadu_ps(y + i), a0);
  }
  float s = hsum(a0);
  for (; i < n; ++i) {
    const uint32_t bits = uint32_t(x[i]) << 16;
    float f;
    __builtin_memcpy(&f, &bits, 4);
    s += f * y[i];
  }
  return s;
}

}  // namespace

VecDotFn avx2_vec_dot(FormatId id) {
  switch (id) {
    case FormatId::Q8_0: return dot_q8_0<BlockQ8_0>;
    case FormatId::Q4_0: return dot_q8_0<BlockQ4_0>;
    case FormatId::Q4_1: return dot_q8_1<BlockQ4_1>;
    case FormatId::Q5_0: return dot_q8_0<BlockQ5_0>;
    case FormatId::Q5_1: return dot_q8_1<BlockQ5_1>;
    case FormatId::IQ4_NL: return dot_q8_0<BlockIQ4_NL>;
    case FormatId::Q2_K: return dot_q2_K_q8_K;
    case FormatId::Q3_K: return dot_q3_K_q8_K;
    case FormatId::Q4_K: return dot_q8_K_8x32<BlockQ4_K>;
    case FormatId::Q5_K: return dot_q8_K_8x32<BlockQ5_K>;
    case FormatId::Q6_K: return dot_q6_K_q8_K;
    case FormatId::F16: return dot_f16_f32;
    case FormatId::BF16: return dot_bf16_f32;
    default: return nullptr;
  }
}

}  // namespace lowbit
