// AVX2 dot products of the k-quants q2_K, q3_K, q4_K, q5_K, q6_K with q8_K
// activations, with the sub-block scales decoded in vector registers.
//
// Same semantics as the scalar references in formats/q*_k.cpp (integer sums
// exact; only the float summation order differs: super-blocks accumulate in f32
// lanes). What makes them fast is the per-super-block preamble: the packed
// 6-bit (q3_K, q4_K, q5_K), 4-bit (q2_K) or 8-bit (q6_K) scales are unpacked with a few
// 32-bit mask/shift operations into a vector of int16 scales, the min (or
// bias) term is one madd of that vector with q8_K's 16 bsums, and the scale of
// each 16- or 32-value group is broadcast by one pshufb, instead of a scalar
// unpack and multiply per sub-block.
//
// Compiled for x86-64-v2 like the rest of the library: every function carries a
// target attribute and is reached only through kernels/dispatch.cpp after
// cpu_features() reported AVX2, FMA and F16C.
#include <immintrin.h>

#include <cstdint>

#include "formats/k_quants.h"
#include "kernels/avx2_common.h"
#include "kernels/dispatch.h"
#include "kernels/k4_levels_avx2.h"

namespace lowbit {
namespace {

using namespace avx2;

// sum_j m[j] * (bsums[2j] + bsums[2j+1]) for 8 mins (bytes of `mins`), as 8 int32 lanes.
LB_AVX2 inline __m256i mins_times_bsums32(uint64_t mins, const int16_t* bsums) {
  const __m128i m8 = _mm_cvtsi64_si128(int64_t(mins));
  const __m256i m16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8));  // m0 m0 m1 m1 ... (int16)
  return _mm256_madd_epi16(m16, load32(bsums));
}

// Broadcast of int16 lane k of each 128-bit half: pshufb mask picking bytes 2k, 2k+1.
LB_AVX2 inline __m256i pick16(__m256i v, int k) {
  return _mm256_shuffle_epi8(v, _mm256_set1_epi16(int16_t((2 * k + 1) << 8 | 2 * k)));
}
// Low half: int16 lane k; high half: lane k + 1 (scales of two consecutive 16-value groups).
LB_AVX2 inline __m256i pick16_pair(__m256i v, int k) {
  const __m128i lo = _mm_set1_epi16(int16_t((2 * k + 1) << 8 | 2 * k));
  const __m128i hi = _mm_set1_epi16(int16_t((2 * k + 3) << 8 | (2 * k + 2)));
  return _mm256_shuffle_epi8(v, _mm256_set_m128i(hi, lo));
}

// q4_K / q5_K . q8_K: block = y.d * (d * sum_j sc[j] * sum_{i in j} q_i y_i - dmin * sum_j m[j] * bsum_j),
// the levels q of sub-blocks 2p and 2p+1 from `Levels` (k4_levels_avx2.h: q 0..15 or 0..31).
template <class Levels>
LB_AVX2 float dot_k4_q8_K_v(int64_t n, const void* vx, const void* vy) {
  const auto* x = static_cast<const typename Levels::Block*>(vx);
  const auto* y = static_cast<const BlockQ8_K*>(vy);
  __m256 acc = _mm256_setzero_ps(), acc_m = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    uint64_t sc, mn;
    unpack_scales_mins_k4(x[b].scales, sc, mn);
    const __m128i sc128 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(int64_t(sc)));  // 8 x int16
    const __m256i scales = _mm256_set_m128i(sc128, sc128);
    const Levels levels(x[b]);
    __m256i sumi = _mm256_setzero_si256();
    for (int p = 0; p < 4; ++p) {
      __m256i lo, hi;
      levels.get(p, lo, hi);
      const __m256i plo = _mm256_maddubs_epi16(lo, load32(y[b].qs + 64 * p));  // int16, |.| <= 2*31*127
      const __m256i phi = _mm256_maddubs_epi16(hi, load32(y[b].qs + 64 * p + 32));
      sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(_mm256_madd_epi16(plo, pick16(scales, 2 * p)),
                                                     _mm256_madd_epi16(phi, pick16(scales, 2 * p + 1))));
    }
    const float dy = y[b].d;
    acc = _mm256_fmadd_ps(_mm256_set1_ps(dy * fp16(x[b].d)), _mm256_cvtepi32_ps(sumi), acc);
    acc_m = _mm256_fmadd_ps(_mm256_set1_ps(dy * fp16(x[b].dmin)),
                            _mm256_cvtepi32_ps(mins_times_bsums32(mn, y[b].bsums)), acc_m);
  }
  return hsum(acc) - hsum(acc_m);
}

// q2_K . q8_K: scales[g] = 4-bit scale | 4-bit min << 4 of 16-value group g; q 0..3 is
// bit pair 2k of qs[32h + l] for value 128h + 32k + l.
//   block = y.d * (d * sum_g sc[g] * sum_{i in g} q_i y_i - dmin * sum_g m[g] * bsums[g]).
LB_AVX2 float dot_q2_K_q8_K_v(int64_t n, const void* vx, const void* vy) {
  const auto* x = static_cast<const BlockQ2_K*>(vx);
  const auto* y = static_cast<const BlockQ8_K*>(vy);
  const __m256i three = _mm256_set1_epi8(0x03);
  const __m128i low4 = _mm_set1_epi8(0x0F);
  __m256 acc = _mm256_setzero_ps(), acc_m = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const __m128i s = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[b].scales));
    const __m256i sc16 = _mm256_cvtepu8_epi16(_mm_and_si128(s, low4));                    // 16 x int16
    const __m256i m16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(s, 4), low4));  // 16 x int16
    const __m256i mins = _mm256_madd_epi16(m16, load32(y[b].bsums));
    // groups 0..7 in the low halves, 8..15 in the high halves, for the pair pshufb below
    const __m256i sc_lo = _mm256_permute2x128_si256(sc16, sc16, 0x00);
    const __m256i sc_hi = _mm256_permute2x128_si256(sc16, sc16, 0x11);
    __m256i sumi = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const __m256i qs = load32(x[b].qs + 32 * h);
      const __m256i sc = h == 0 ? sc_lo : sc_hi;
      for (int k = 0; k < 4; ++k) {
        const __m256i q = _mm256_and_si256(_mm256_srli_epi16(qs, 2 * k), three);
        const __m256i p = _mm256_maddubs_epi16(q, load32(y[b].qs + 128 * h + 32 * k));
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, pick16_pair(sc, 2 * k)));
      }
    }
    const float dy = y[b].d;
    acc = _mm256_fmadd_ps(_mm256_set1_ps(dy * fp16(x[b].d)), _mm256_cvtepi32_ps(sumi), acc);
    acc_m = _mm256_fmadd_ps(_mm256_set1_ps(dy * fp16(x[b].dmin)), _mm256_cvtepi32_ps(mins), acc_m);
  }
  return hsum(acc) - hsum(acc_m);
}

// q3_K: the 16 sub-block scales sc - 32 as signed bytes (kernels/kquant_scales.h).
LB_AVX2 inline __m128i unpack_scales_q3_K(const uint8_t* s) {
  uint32_t w[4];
  kquant_scales::unpack_scales_q3_K(s, w);
  return _mm_sub_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w)), _mm_set1_epi8(32));
}

// q3_K . q8_K: q = u - 4 with u = low2 | hbit << 2 in 0..7 (hbit = hmask[l] bit (4h + k) for
// value 128h + 32k + l):  block = y.d * d * sum_g sc[g] * (sum_{i in g} u_i y_i - 4 * bsums[g]).
LB_AVX2 float dot_q3_K_q8_K_v(int64_t n, const void* vx, const void* vy) {
  const auto* x = static_cast<const BlockQ3_K*>(vx);
  const auto* y = static_cast<const BlockQ8_K*>(vy);
  const __m256i three = _mm256_set1_epi8(0x03);
  const __m256i four = _mm256_set1_epi8(0x04);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const __m256i sc16 = _mm256_cvtepi8_epi16(unpack_scales_q3_K(x[b].scales));  // 16 x int16, -32..31
    // bias = 4 * sum_g sc[g] * bsums[g] (the -4 of every q), as 8 int32 lanes
    const __m256i bias = _mm256_slli_epi32(_mm256_madd_epi16(sc16, load32(y[b].bsums)), 2);
    const __m256i sc_lo = _mm256_permute2x128_si256(sc16, sc16, 0x00);
    const __m256i sc_hi = _mm256_permute2x128_si256(sc16, sc16, 0x11);
    __m256i hm = load32(x[b].hmask);  // bit (4h + k) of byte l; shifted down as k advances
    __m256i sumi = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const __m256i qs = load32(x[b].qs + 32 * h);
      const __m256i sc = h == 0 ? sc_lo : sc_hi;
      for (int k = 0; k < 4; ++k) {
        const __m256i u = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qs, 2 * k), three),
                                          _mm256_and_si256(_mm256_slli_epi16(hm, 2), four));
        hm = _mm256_srli_epi16(hm, 1);
        const __m256i p = _mm256_maddubs_epi16(u, load32(y[b].qs + 128 * h + 32 * k));  // |.| <= 2*7*127
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, pick16_pair(sc, 2 * k)));
      }
    }
    acc = _mm256_fmadd_ps(_mm256_set1_ps(y[b].d * fp16(x[b].d)), _mm256_cvtepi32_ps(_mm256_sub_epi32(sumi, bias)),
                          acc);
  }
  return hsum(acc);
}

// q6_K . q8_K: q = u - 32 with u = low4 | top2 << 4 in 0..63 (unsigned operand of maddubs):
//   block = y.d * d * sum_g sc[g] * (sum_{i in g} u_i y_i - 32 * bsums[g])   (16 groups of 16).
// Value 128h + 32k + l: low 4 bits in ql[64h + l + 32 * (k & 1)] (high nibble for k >= 2),
// top 2 bits in qh[32h + l] bits 2k..2k+1.
LB_AVX2 float dot_q6_K_q8_K_v(int64_t n, const void* vx, const void* vy) {
  const auto* x = static_cast<const BlockQ6_K*>(vx);
  const auto* y = static_cast<const BlockQ8_K*>(vy);
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  const __m256i three = _mm256_set1_epi8(0x03);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x[b].scales)));
    const __m256i bias = _mm256_slli_epi32(_mm256_madd_epi16(sc16, load32(y[b].bsums)), 5);  // 32 * sc . bsums
    const __m256i sc_lo = _mm256_permute2x128_si256(sc16, sc16, 0x00);
    const __m256i sc_hi = _mm256_permute2x128_si256(sc16, sc16, 0x11);
    __m256i sumi = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const __m256i ql0 = load32(x[b].ql + 64 * h);
      const __m256i ql1 = load32(x[b].ql + 64 * h + 32);
      const __m256i qh = load32(x[b].qh + 32 * h);
      const __m256i sc = h == 0 ? sc_lo : sc_hi;
      for (int k = 0; k < 4; ++k) {
        const __m256i ql = k & 1 ? ql1 : ql0;
        const __m256i lo4 = k < 2 ? _mm256_and_si256(ql, low4) : _mm256_and_si256(_mm256_srli_epi16(ql, 4), low4);
        const __m256i top = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * k), three), 4);
        const __m256i p = _mm256_maddubs_epi16(_mm256_or_si256(lo4, top), load32(y[b].qs + 128 * h + 32 * k));
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, pick16_pair(sc, 2 * k)));  // |.| <= 2*63*127 per int16
      }
    }
    // |sum_i sc*u*y| < 256*63*127*128 < 2^31
    acc = add_scaled(acc, y[b].d * fp16(x[b].d), _mm256_sub_epi32(sumi, bias));
  }
  return hsum(acc);
}

}  // namespace

VecDotFn avx2_kquant_vec_dot(FormatId id) {
  switch (id) {
    case FormatId::Q2_K: return dot_q2_K_q8_K_v;
    case FormatId::Q3_K: return dot_q3_K_q8_K_v;
    case FormatId::Q4_K: return dot_k4_q8_K_v<K4Levels>;
    case FormatId::Q5_K: return dot_k4_q8_K_v<K5Levels>;
    case FormatId::Q6_K: return dot_q6_K_q8_K_v;
    default: return nullptr;
  }
}

}  // namespace lowbit
