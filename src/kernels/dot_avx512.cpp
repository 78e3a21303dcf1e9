// AVX-512 + VNNI dot products of the weight formats, with the semantics of the
// scalar references in formats/*.cpp (integer sums exact; only the float
// summation order differs, as in the AVX2 kernels):
//   legacy 32-value formats (q8_0, q4_0, q5_0, iq4_nl . q8_0; q4_1, q5_1 . q8_1):
//     two blocks per 512-bit register, one dpbusd per pair; also 4 rows per call;
//   k-quants (q2_K .. q6_K . q8_K): 64 values per register, one maddubs each, the
//     sub-block scales applied by VNNI's dpwssd (int16 x int16 -> int32);
//   f16 / bf16 . f32: 16 values per register.
//
// Legacy formats: VNNI's dpbusd multiplies unsigned by signed bytes, so every
// weight is fed as an unsigned level u = level + offset (offset 0, 8, 16 or 128
// per format) and the offset is taken back exactly with one more dpbusd:
//   sum(level * y) = dpbusd(u, y) - dpbusd(offset, y).
//
// Built twice (kernels/avx512_common.h): natively for the library, where the
// functions are reached only through kernels/dispatch.cpp after
// cpu_features().has_avx512_level(), and with -DLOWBIT_AVX512_EMULATED under
// SIMDe for tests/test_avx512_emulated.cpp.
#include <type_traits>

#include "formats/blocks_legacy.h"
#include "formats/k_quants.h"
#include "kernels/dispatch.h"
// last: in the emulated build it brings SIMDe's intrinsic-name macros
#include "kernels/avx512_common.h"

namespace lowbit {
namespace {

using namespace LB_AVX512_NS;

// ---------------------------------------------------------------- legacy 32-value formats
// levels_u8(a, b): blocks a and b's 32 levels each as unsigned bytes [a | b];
// level = u - kOffset<Block>.

// 16 packed bytes of each of two blocks -> 64 bytes [lo(a), hi(a), lo(b), hi(b)]:
// the legacy value order (byte j: value j low nibble, value j + 16 high nibble).
LB_AVX512 inline __m512i unpack_nibbles_pair(const uint8_t* qa, const uint8_t* qb) {
  const __m256i ab = _mm256_set_m128i(load16(qb), load16(qa));
  const __m512i v = join(ab, _mm256_srli_epi16(ab, 4));  // [a, b, a >> 4, b >> 4]
  return _mm512_and_si512(_mm512_shuffle_i64x2(v, v, _MM_SHUFFLE(3, 1, 2, 0)), _mm512_set1_epi8(0x0F));
}

// q5_0 / q5_1: the fifth bits (qh, bit j = value j) of both blocks added as 16.
LB_AVX512 inline __m512i add_fifth_bits(__m512i q, const uint8_t* qha, const uint8_t* qhb) {
  const mask64 bits = mask64(load_u32(qha)) | mask64(load_u32(qhb)) << 32;
  return _mm512_mask_add_epi8(q, bits, q, _mm512_set1_epi8(16));
}

template <class Block> inline constexpr int kOffset = 0;
template <> inline constexpr int kOffset<BlockQ8_0> = 128;
template <> inline constexpr int kOffset<BlockQ4_0> = 8;
template <> inline constexpr int kOffset<BlockQ5_0> = 16;
template <> inline constexpr int kOffset<BlockIQ4_NL> = 128;

// q8_0: q + 128 (1..255) is q with its sign bit flipped.
LB_AVX512 inline __m512i levels_u8(const BlockQ8_0& a, const BlockQ8_0& b) {
  return _mm512_xor_si512(join(load32(a.qs), load32(b.qs)), _mm512_set1_epi8(char(0x80)));
}
// q4_0 (q - 8), q4_1 (q): the nibbles.
LB_AVX512 inline __m512i levels_u8(const BlockQ4_0& a, const BlockQ4_0& b) { return unpack_nibbles_pair(a.qs, b.qs); }
LB_AVX512 inline __m512i levels_u8(const BlockQ4_1& a, const BlockQ4_1& b) { return unpack_nibbles_pair(a.qs, b.qs); }
// q5_0 (q - 16), q5_1 (q): nibble | fifth bit << 4.
LB_AVX512 inline __m512i levels_u8(const BlockQ5_0& a, const BlockQ5_0& b) {
  return add_fifth_bits(unpack_nibbles_pair(a.qs, b.qs), a.qh, b.qh);
}
LB_AVX512 inline __m512i levels_u8(const BlockQ5_1& a, const BlockQ5_1& b) {
  return add_fifth_bits(unpack_nibbles_pair(a.qs, b.qs), a.qh, b.qh);
}
// iq4_nl: grid[q] + 128, looked up by pshufb in each 128-bit lane.
constexpr uint8_t kIq4nlU8[16] = {
    uint8_t(kIq4nlValues[0] + 128),  uint8_t(kIq4nlValues[1] + 128),  uint8_t(kIq4nlValues[2] + 128),
    uint8_t(kIq4nlValues[3] + 128),  uint8_t(kIq4nlValues[4] + 128),  uint8_t(kIq4nlValues[5] + 128),
    uint8_t(kIq4nlValues[6] + 128),  uint8_t(kIq4nlValues[7] + 128),  uint8_t(kIq4nlValues[8] + 128),
    uint8_t(kIq4nlValues[9] + 128),  uint8_t(kIq4nlValues[10] + 128), uint8_t(kIq4nlValues[11] + 128),
    uint8_t(kIq4nlValues[12] + 128), uint8_t(kIq4nlValues[13] + 128), uint8_t(kIq4nlValues[14] + 128),
    uint8_t(kIq4nlValues[15] + 128)};
LB_AVX512 inline __m512i levels_u8(const BlockIQ4_NL& a, const BlockIQ4_NL& b) {
  return _mm512_shuffle_epi8(_mm512_broadcast_i32x4(load16(kIq4nlU8)), unpack_nibbles_pair(a.qs, b.qs));
}

// One activation block pair: its bytes [ya | yb] and, for formats with an offset,
// dpbusd(offset, y), which turns sum(u * y) into sum(level * y). Shared by the rows
// of a multi-row call.
struct PairY {
  __m512i y, correction;
};
template <class Block, class YBlock>
LB_AVX512 inline PairY pair_y(const YBlock& ya, const YBlock& yb) {
  const __m512i y = join(load32(ya.qs), load32(yb.qs));
  if constexpr (kOffset<Block> == 0) return {y, _mm512_setzero_si512()};
  return {y, _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(char(kOffset<Block>)), y)};
}

// Exact int32 sums of level * y for blocks a (lanes 0..7) and b (lanes 8..15).
template <class Block>
LB_AVX512 inline __m512i block_pair_dot(const Block& a, const Block& b, const PairY& py) {
  const __m512i sum = _mm512_dpbusd_epi32(_mm512_setzero_si512(), levels_u8(a, b), py.y);
  if constexpr (kOffset<Block> == 0) return sum;
  return _mm512_sub_epi32(sum, py.correction);
}

// Both block scales as one f32 vector: lanes 0..7 = sa, lanes 8..15 = sb.
LB_AVX512 inline __m512 pair_scales(float sa, float sb) {
  return _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(sa), _mm512_set1_ps(sb));
}

// q4_1, q5_1 have a block min m and pair with q8_1 (y.s = d_y * sum(y)); the others with q8_0.
template <class Block> inline constexpr bool kHasMin = requires(const Block& b) { b.m; };
template <class Block> using YBlockOf = std::conditional_t<kHasMin<Block>, BlockQ8_1, BlockQ8_0>;

// R weight rows (x, x + stride, ...) against one activation row:
//   out[r] = sum_b d_x * d_y * sum(level * y)  (+ m_x * s_y for q4_1, q5_1).
// Blocks b, b + 1 per step; an odd last block is paired with itself at scale 0. Each
// row runs the same operations whatever R, so the 4-row kernel (R = 4) gives the
// vec_dot's (R = 1) floats bit for bit; y and its correction are loaded once per step.
template <class Block, int R>
LB_AVX512 void dot_legacy_rows(int64_t n, const void* vx, size_t stride, const void* vy, float* out) {
  using YBlock = YBlockOf<Block>;
  const auto* y = static_cast<const YBlock*>(vy);
  const Block* x[R];
  for (int r = 0; r < R; ++r) x[r] = reinterpret_cast<const Block*>(static_cast<const uint8_t*>(vx) + r * stride);
  const int64_t nb = n / kLegacyBlock;
  __m512 acc[R];
  float offset[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps(), offset[r] = 0;
  for (int64_t b = 0; b < nb; b += 2) {
    const int64_t c = b + 1 < nb ? b + 1 : b;
    const PairY py = pair_y<Block>(y[b], y[c]);
    const float dyb = fp16(y[b].d), dyc = fp16(y[c].d);
    for (int r = 0; r < R; ++r) {
      const float sb = c == b ? 0.f : fp16(x[r][c].d) * dyc;
      const __m512i sumi = block_pair_dot(x[r][b], x[r][c], py);
      acc[r] = _mm512_fmadd_ps(pair_scales(fp16(x[r][b].d) * dyb, sb), _mm512_cvtepi32_ps(sumi), acc[r]);
      if constexpr (kHasMin<Block>) {
        offset[r] = std::fma(fp16(x[r][b].m), fp16(y[b].s), offset[r]);
        if (c != b) offset[r] = std::fma(fp16(x[r][c].m), fp16(y[c].s), offset[r]);
      }
    }
  }
  for (int r = 0; r < R; ++r) out[r] = kHasMin<Block> ? hsum(acc[r]) + offset[r] : hsum(acc[r]);
}

template <class Block>
LB_AVX512 float dot_legacy(int64_t n, const void* vx, const void* vy) {
  float out;
  dot_legacy_rows<Block, 1>(n, vx, 0, vy, &out);
  return out;
}

// ---------------------------------------------------------------- k-quants (y is q8_K)
// Each 512-bit step covers 64 consecutive values 64c .. 64c + 63 of a super-block:
// u = unsigned levels (at most 63), y = q8_K's bytes there. maddubs gives 32 int16
// lanes u[2j] y[2j] + u[2j+1] y[2j+1] (|.| <= 2 * 63 * 127: no saturation), and VNNI's
// dpwssd adds each lane times its sub-block's int16 scale to int32 lanes, exactly.
// sc16: the super-block's sub-block scales in int16 lanes 0..7 (q4_K, q5_K) or 0..15.

// Sub-blocks of 32 (q4_K, q5_K): int16 lanes 0..15 = sub-block 2c, 16..31 = 2c + 1.
LB_AVX512 inline __m512i scaled_dot32(__m512i acc, __m512i u, const int8_t* y, __m512i sc16, int c) {
  return _mm512_dpwssd_epi32(acc, _mm512_maddubs_epi16(u, load64(y)), spread16(sc16, 2 * c, 4));
}
// Sub-blocks of 16 (q2_K, q3_K, q6_K): int16 lanes 8g .. 8g + 7 = sub-block 4c + g.
LB_AVX512 inline __m512i scaled_dot16(__m512i acc, __m512i u, const int8_t* y, __m512i sc16, int c) {
  return _mm512_dpwssd_epi32(acc, _mm512_maddubs_epi16(u, load64(y)), spread16(sc16, 4 * c, 3));
}

// sum_j m[j] * (bsums[2j] + bsums[2j+1]) for 8 mins (bytes of `mins`), as 8 int32 lanes.
LB_AVX512 inline __m256i mins_times_bsums32(uint64_t mins, const int16_t* bsums) {
  const __m128i m8 = _mm_cvtsi64_si128(int64_t(mins));
  const __m256i m16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8));  // m0 m0 m1 m1 ... (int16)
  return _mm256_madd_epi16(m16, load32(bsums));
}

// [q >> s0, q >> s1] for 32 bytes at p (16-bit shifts): a broadcast load and a blend,
// which keep the shuffle port free, unlike joining two registers.
LB_AVX512 inline __m512i shifted_pair(const uint8_t* p, int s0, int s1) {
  const __m512i q = _mm512_broadcast_i64x4(load32(p));
  return _mm512_mask_blend_epi64(0xF0, srl16(q, s0), srl16(q, s1));
}
// 4-bit fields of 32 bytes at p: low nibbles (low half), high nibbles (high half).
LB_AVX512 inline __m512i nibble_pair(const uint8_t* p) {
  return _mm512_and_si512(shifted_pair(p, 0, 4), _mm512_set1_epi8(0x0F));
}
// 2-bit fields of 32 bytes at p, bit offsets s (low half) and s + 2 (high half), as bytes 0..3.
LB_AVX512 inline __m512i two_bit_pair(const uint8_t* p, int s) {
  return _mm512_and_si512(shifted_pair(p, s, s + 2), _mm512_set1_epi8(3));
}
// Mask of the bytes of [v, v] with bit k set (low half) / bit k + 1 set (high half).
LB_AVX512 inline mask64 bit_pair_mask(__m512i vv, int k) {
  return _mm512_test_epi8_mask(vv, join(_mm256_set1_epi8(char(1 << k)), _mm256_set1_epi8(char(1 << (k + 1)))));
}

// q4_K . q8_K: block = y.d * (d * sum_j sc[j] * sum_{i in j} q_i y_i - dmin * sum_j m[j] * bsum_j),
// q 0..15; 64-value step c = low then high nibbles of qs[32c .. 32c + 31].
LB_AVX512 float dot_q4_K(int64_t n, const void* vx, const void* vy) {
  const auto* x = static_cast<const BlockQ4_K*>(vx);
  const auto* y = static_cast<const BlockQ8_K*>(vy);
  __m512 acc = _mm512_setzero_ps();
  __m256 acc_m = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    uint64_t sc, mn;
    unpack_scales_mins_k4(x[b].scales, sc, mn);
    const __m512i sc16 = zext(_mm256_cvtepu8_epi16(_mm_cvtsi64_si128(int64_t(sc))));
    __m512i sumi = _mm512_setzero_si512();
    for (int c = 0; c < 4; ++c) {
      const __m512i u = nibble_pair(x[b].qs + 32 * c);
      sumi = scaled_dot32(sumi, u, y[b].qs + 64 * c, sc16, c);
    }
    acc = add_scaled(acc, y[b].d * fp16(x[b].d), sumi);
    acc_m = _mm256_fmadd_ps(_mm256_set1_ps(y[b].d * fp16(x[b].dmin)),
                            _mm256_cvtepi32_ps(mins_times_bsums32(mn, y[b].bsums)), acc_m);
  }
  return hsum(acc) - hsum(acc_m);
}

// q5_K . q8_K: as q4_K with q = nibble | (qh[l] >> j & 1) << 4 for sub-block j (q 0..31).
LB_AVX512 float dot_q5_K(int64_t n, const void* vx, const void* vy) {
  const auto* x = static_cast<const BlockQ5_K*>(vx);
  const auto* y = static_cast<const BlockQ8_K*>(vy);
  __m512 acc = _mm512_setzero_ps();
  __m256 acc_m = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    uint64_t sc, mn;
    unpack_scales_mins_k4(x[b].scales, sc, mn);
    const __m512i sc16 = zext(_mm256_cvtepu8_epi16(_mm_cvtsi64_si128(int64_t(sc))));
    const __m512i qh = _mm512_broadcast_i64x4(load32(x[b].qh));
    __m512i sumi = _mm512_setzero_si512();
    for (int c = 0; c < 4; ++c) {
      __m512i u = nibble_pair(x[b].qs + 32 * c);
      u = _mm512_mask_add_epi8(u, bit_pair_mask(qh, 2 * c), u, _mm512_set1_epi8(16));
      sumi = scaled_dot32(sumi, u, y[b].qs + 64 * c, sc16, c);
    }
    acc = add_scaled(acc, y[b].d * fp16(x[b].d), sumi);
    acc_m = _mm256_fmadd_ps(_mm256_set1_ps(y[b].d * fp16(x[b].dmin)),
                            _mm256_cvtepi32_ps(mins_times_bsums32(mn, y[b].bsums)), acc_m);
  }
  return hsum(acc) - hsum(acc_m);
}

// q2_K . q8_K: scales[g] = 4-bit scale | 4-bit min << 4 of 16-value group g; q 0..3 is
// bit pair 2k of qs[32h + l] for value 128h + 32k + l (step c = 2h + k / 2).
//   block = y.d * (d * sum_g sc[g] * sum_{i in g} q_i y_i - dmin * sum_g m[g] * bsums[g]).
LB_AVX512 float dot_q2_K(int64_t n, const void* vx, const void* vy) {
  const auto* x = static_cast<const BlockQ2_K*>(vx);
  const auto* y = static_cast<const BlockQ8_K*>(vy);
  const __m128i low4 = _mm_set1_epi8(0x0F);
  __m512 acc = _mm512_setzero_ps();
  __m256 acc_m = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const __m128i s = load16(x[b].scales);
    const __m512i sc16 = zext(_mm256_cvtepu8_epi16(_mm_and_si128(s, low4)));
    const __m256i m16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(s, 4), low4));
    const __m256i mins = _mm256_madd_epi16(m16, load32(y[b].bsums));
    __m512i sumi = _mm512_setzero_si512();
    for (int c = 0; c < 4; ++c) {
      const __m512i u = two_bit_pair(x[b].qs + 32 * (c / 2), 4 * (c % 2));
      sumi = scaled_dot16(sumi, u, y[b].qs + 64 * c, sc16, c);
    }
    acc = add_scaled(acc, y[b].d * fp16(x[b].d), sumi);
    acc_m = _mm256_fmadd_ps(_mm256_set1_ps(y[b].d * fp16(x[b].dmin)), _mm256_cvtepi32_ps(mins), acc_m);
  }
  return hsum(acc) - hsum(acc_m);
}

// q3_K . q8_K: q = u - 4 with u = low2 | hbit << 2 in 0..7 (hbit = hmask[l] bit k for value
// 32k + l):  block = y.d * d * sum_g sc[g] * (sum_{i in g} u_i y_i - 4 * bsums[g]).
LB_AVX512 float dot_q3_K(int64_t n, const void* vx, const void* vy) {
  const auto* x = static_cast<const BlockQ3_K*>(vx);
  const auto* y = static_cast<const BlockQ8_K*>(vy);
  __m512 acc = _mm512_setzero_ps();
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const __m128i sc8 = unpack_scales_q3_K(x[b].scales);  // -32..31
    const __m256i sc = _mm256_cvtepi8_epi16(sc8);
    const __m512i sc16 = zext(sc);
    // 4 * sum_g sc[g] * bsums[g], the -4 of every q, as 8 int32 lanes
    const __m256i bias = _mm256_slli_epi32(_mm256_madd_epi16(sc, load32(y[b].bsums)), 2);
    const __m512i hm = _mm512_broadcast_i64x4(load32(x[b].hmask));
    __m512i sumi = _mm512_setzero_si512();
    for (int c = 0; c < 4; ++c) {
      __m512i u = two_bit_pair(x[b].qs + 32 * (c / 2), 4 * (c % 2));
      u = _mm512_mask_add_epi8(u, bit_pair_mask(hm, 2 * c), u, _mm512_set1_epi8(4));
      sumi = scaled_dot16(sumi, u, y[b].qs + 64 * c, sc16, c);
    }
    acc = add_scaled(acc, y[b].d * fp16(x[b].d), _mm512_sub_epi32(sumi, zext(bias)));
  }
  return hsum(acc);
}

// q6_K . q8_K: q = u - 32 with u = low4 | top2 << 4 in 0..63:
//   block = y.d * d * sum_g sc[g] * (sum_{i in g} u_i y_i - 32 * bsums[g])   (16 groups of 16).
// Value 128h + 32k + l: low 4 bits in ql[64h + l + 32 * (k & 1)] (high nibble for k >= 2),
// top 2 bits in qh[32h + l] bits 2k..2k+1; so step c = 2h (k 0, 1) takes the low nibbles
// of ql[64h ..] and step 2h + 1 (k 2, 3) the high ones.
LB_AVX512 float dot_q6_K(int64_t n, const void* vx, const void* vy) {
  const auto* x = static_cast<const BlockQ6_K*>(vx);
  const auto* y = static_cast<const BlockQ8_K*>(vy);
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  __m512 acc = _mm512_setzero_ps();
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const __m128i sc8 = load16(x[b].scales);
    const __m256i sc = _mm256_cvtepi8_epi16(sc8);
    const __m512i sc16 = zext(sc);
    const __m256i bias = _mm256_slli_epi32(_mm256_madd_epi16(sc, load32(y[b].bsums)), 5);  // 32 * sc . bsums
    __m512i sumi = _mm512_setzero_si512();
    for (int c = 0; c < 4; ++c) {
      const __m512i ql = load64(x[b].ql + 64 * (c / 2));
      const __m512i lo = _mm512_and_si512(c % 2 ? _mm512_srli_epi16(ql, 4) : ql, low4);
      const __m512i top = two_bit_pair(x[b].qh + 32 * (c / 2), 4 * (c % 2));
      const __m512i u = _mm512_or_si512(lo, _mm512_slli_epi16(top, 4));
      sumi = scaled_dot16(sumi, u, y[b].qs + 64 * c, sc16, c);  // |lane| <= 4 * 2*63*127 * 128
    }
    acc = add_scaled(acc, y[b].d * fp16(x[b].d), _mm512_sub_epi32(sumi, zext(bias)));
  }
  return hsum(acc);
}

// ---------------------------------------------------------------- float formats (y is f32)

// f16 . f32: 16 halves -> f32 (vcvtph2ps), fused multiply-add; scalar tail.
LB_AVX512 float dot_f16_f32(int64_t n, const void* vx, const void* vy) {
  const auto* x = static_cast<const uint16_t*>(vx);
  const float* y = static_cast<const float*>(vy);
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    a0 = _mm512_fmadd_ps(_mm512_cvtph_ps(load32(x + i)), _mm512_loadu_ps(y + i), a0);
    a1 = _mm512_fmadd_ps(_mm512_cvtph_ps(load32(x + i + 16)), _mm512_loadu_ps(y + i + 16), a1);
  }
  for (; i + 16 <= n; i += 16) a0 = _mm512_fmadd_ps(_mm512_cvtph_ps(load32(x + i)), _mm512_loadu_ps(y + i), a0);
  float s = hsum(_mm512_add_ps(a0, a1));
  for (; i < n; ++i) s = std::fma(fp16(x[i]), y[i], s);
  return s;
}

// bf16 . f32: bf16 -> f32 is the 16 bits moved to the top of a 32-bit lane.
LB_AVX512 float dot_bf16_f32(int64_t n, const void* vx, const void* vy) {
  const auto* x = static_cast<const uint16_t*>(vx);
  const float* y = static_cast<const float*>(vy);
  __m512 a0 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512i w = _mm512_slli_epi32(_mm512_cvtepu16_epi32(load32(x + i)), 16);
    a0 = _mm512_fmadd_ps(_mm512_castsi512_ps(w), _mm512_loadu_ps(y + i), a0);
  }
  float s = hsum(a0);
  for (; i < n; ++i) {
    const uint32_t bits = uint32_t(x[i]) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    s = std::fma(f, y[i], s);
  }
  return s;
}

VecDotFn kernel_for(FormatId id) {
  switch (id) {
    case FormatId::Q8_0: return dot_legacy<BlockQ8_0>;
    case FormatId::Q4_0: return dot_legacy<BlockQ4_0>;
    case FormatId::Q4_1: return dot_legacy<BlockQ4_1>;
    case FormatId::Q5_0: return dot_legacy<BlockQ5_0>;
    case FormatId::Q5_1: return dot_legacy<BlockQ5_1>;
    case FormatId::IQ4_NL: return dot_legacy<BlockIQ4_NL>;
    case FormatId::Q2_K: return dot_q2_K;
    case FormatId::Q3_K: return dot_q3_K;
    case FormatId::Q4_K: return dot_q4_K;
    case FormatId::Q5_K: return dot_q5_K;
    case FormatId::Q6_K: return dot_q6_K;
    case FormatId::F16: return dot_f16_f32;
    case FormatId::BF16: return dot_bf16_f32;
    default: return nullptr;
  }
}

VecDot4RowsFn kernel_4rows_for(FormatId id) {
  switch (id) {
    case FormatId::Q8_0: return dot_legacy_rows<BlockQ8_0, 4>;
    case FormatId::Q4_0: return dot_legacy_rows<BlockQ4_0, 4>;
    case FormatId::Q4_1: return dot_legacy_rows<BlockQ4_1, 4>;
    case FormatId::Q5_0: return dot_legacy_rows<BlockQ5_0, 4>;
    case FormatId::Q5_1: return dot_legacy_rows<BlockQ5_1, 4>;
    case FormatId::IQ4_NL: return dot_legacy_rows<BlockIQ4_NL, 4>;
    default: return nullptr;
  }
}

}  // namespace

#ifdef LOWBIT_AVX512_EMULATED
VecDotFn avx512_emulated_vec_dot(FormatId id) { return kernel_for(id); }
VecDot4RowsFn avx512_emulated_vec_dot_4rows(FormatId id) { return kernel_4rows_for(id); }
#else
VecDotFn avx512_vec_dot(FormatId id) { return kernel_for(id); }
VecDot4RowsFn avx512_vec_dot_4rows(FormatId id) { return kernel_4rows_for(id); }
#endif

}  // namespace lowbit
