// AVX2 dequantize_row for the formats prompt processing reads most (q8_0,
// q4_0, q4_K, q5_K, q6_K): the same f32 operations in the same order as the
// references in formats/ (e.g. q4_K: (d * sc) * q - dmin * m), eight values at
// a time, so the output is bit-identical to the reference. FP contraction is
// off in this file: a mul followed by a sub must not become one FMA.
//
// Used by matmul_quant for prompt-sized products (dequantize row panels, then
// sgemm), where the scalar references cost as much as the sgemm itself.
#pragma GCC optimize("fp-contract=off")
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "formats/blocks_legacy.h"
#include "formats/k_quants.h"
#include "kernels/avx2_common.h"
#include "kernels/dispatch.h"
#include "kernels/k4_levels_avx2.h"

namespace lowbit {
namespace {

using namespace avx2;

// 8 unsigned bytes -> 8 floats
LB_AVX2 inline __m256 u8x8_to_ps(const uint8_t* p) {
  return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}
// 8 signed bytes -> 8 floats
LB_AVX2 inline __m256 i8x8_to_ps(const int8_t* p) {
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}

// y[32] = d * q for 32 int8 levels.
LB_AVX2 inline void scale32(const int8_t* q, float d, float* y) {
  const __m256 vd = _mm256_set1_ps(d);
  for (int i = 0; i < 32; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(i8x8_to_ps(q + i), vd));
}

// q8_0: y = q * d
LB_AVX2 void dequantize_q8_0(const void* vx, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ8_0*>(vx);
  for (int64_t b = 0; b < n / 32; ++b) scale32(x[b].qs, fp16(x[b].d), y + 32 * b);
}

// q4_0: y = (q - 8) * d; low nibbles are values 0..15, high nibbles 16..31.
LB_AVX2 void dequantize_q4_0(const void* vx, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ4_0*>(vx);
  for (int64_t b = 0; b < n / 32; ++b) {
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[b].qs));
    const __m128i m4 = _mm_set1_epi8(0x0F), eight = _mm_set1_epi8(8);
    alignas(16) int8_t q[32];
    _mm_store_si128(reinterpret_cast<__m128i*>(q), _mm_sub_epi8(_mm_and_si128(raw, m4), eight));
    _mm_store_si128(reinterpret_cast<__m128i*>(q + 16), _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(raw, 4), m4), eight));
    scale32(q, fp16(x[b].d), y + 32 * b);
  }
}

// y[32] = (d * sc) * q - dmin * m for 32 unsigned levels.
LB_AVX2 inline void affine32(const uint8_t* q, float dl, float ml, float* y) {
  const __m256 vd = _mm256_set1_ps(dl), vm = _mm256_set1_ps(ml);
  for (int i = 0; i < 32; i += 8) _mm256_storeu_ps(y + i, _mm256_sub_ps(_mm256_mul_ps(vd, u8x8_to_ps(q + i)), vm));
}

// q4_K / q5_K: sub-blocks 2p and 2p+1 from `Levels` (k4_levels_avx2.h), then (d * sc) * q - dmin * m.
template <class Levels>
LB_AVX2 void dequantize_k4(const void* vx, float* y, int64_t n) {
  const auto* x = static_cast<const typename Levels::Block*>(vx);
  for (int64_t b = 0; b < n / kQK_K; ++b, y += kQK_K) {
    uint64_t sc8, m8;
    unpack_scales_mins_k4(x[b].scales, sc8, m8);
    uint8_t sc[8], m[8];
    std::memcpy(sc, &sc8, 8);
    std::memcpy(m, &m8, 8);
    const float d = fp16(x[b].d), dmin = fp16(x[b].dmin);
    const Levels levels(x[b]);
    for (int p = 0; p < 4; ++p) {
      __m256i lo_v, hi_v;
      levels.get(p, lo_v, hi_v);
      alignas(32) uint8_t lo[32], hi[32];
      _mm256_store_si256(reinterpret_cast<__m256i*>(lo), lo_v);
      _mm256_store_si256(reinterpret_cast<__m256i*>(hi), hi_v);
      affine32(lo, d * float(sc[2 * p]), dmin * float(m[2 * p]), y + 64 * p);
      affine32(hi, d * float(sc[2 * p + 1]), dmin * float(m[2 * p + 1]), y + 64 * p + 32);
    }
  }
}

// q6_K: value 128h + 32k + l (h = 0, 1; k = 0..3; l = 0..31) has low 4 bits in
// ql[64h + l + 32 * (k & 1)] (low nibble for k < 2, high for k >= 2) and top 2 bits
// in qh[32h + l] bits 2k..2k+1; q = that - 32; scale index 8h + 2k + l / 16.
LB_AVX2 void dequantize_q6_K(const void* vx, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ6_K*>(vx);
  const __m256i low4 = _mm256_set1_epi8(0x0F), two = _mm256_set1_epi8(0x03), off = _mm256_set1_epi8(32);
  for (int64_t b = 0; b < n / kQK_K; ++b, y += kQK_K) {
    const float d = fp16(x[b].d);
    for (int h = 0; h < 2; ++h) {
      const __m256i ql0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].ql + 64 * h));
      const __m256i ql1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].ql + 64 * h + 32));
      const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].qh + 32 * h));
      for (int k = 0; k < 4; ++k) {
        const __m256i ql = k & 1 ? ql1 : ql0;
        const __m256i lo4 = k < 2 ? _mm256_and_si256(ql, low4) : _mm256_and_si256(_mm256_srli_epi16(ql, 4), low4);
        const __m256i top = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * k), two), 4);
        alignas(32) int8_t q[32];
        _mm256_store_si256(reinterpret_cast<__m256i*>(q), _mm256_sub_epi8(_mm256_or_si256(lo4, top), off));
        const int is = 8 * h + 2 * k;
        float* yk = y + 128 * h + 32 * k;
        const __m256 d0 = _mm256_set1_ps(d * float(x[b].scales[is])), d1 = _mm256_set1_ps(d * float(x[b].scales[is + 1]));
        _mm256_storeu_ps(yk, _mm256_mul_ps(d0, i8x8_to_ps(q)));
        _mm256_storeu_ps(yk + 8, _mm256_mul_ps(d0, i8x8_to_ps(q + 8)));
        _mm256_storeu_ps(yk + 16, _mm256_mul_ps(d1, i8x8_to_ps(q + 16)));
        _mm256_storeu_ps(yk + 24, _mm256_mul_ps(d1, i8x8_to_ps(q + 24)));
      }
    }
  }
}

}  // namespace

DequantizeRowFn avx2_dequantize_row(FormatId id) {
  switch (id) {
    case FormatId::Q8_0: return dequantize_q8_0;
    case FormatId::Q4_0: return dequantize_q4_0;
    case FormatId::Q4_K: return dequantize_k4<K4Levels>;
    case FormatId::Q5_K: return dequantize_k4<K5Levels>;
    case FormatId::Q6_K: return dequantize_q6_K;
    default: return nullptr;
  }
}

}  // namespace lowbit
