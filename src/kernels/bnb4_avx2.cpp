// AVX2 kernels for bitsandbytes NF4 / FP4 rows (methods/bnb4.h), reached only
// through Bnb4Linear's runtime dispatch (active_isa() >= Avx2).
//
// Per block the 16-entry code table is scaled by the block's absmax once
// (code[k] * absmax, the exact f32 products the reference computes per value),
// then 32 nibbles at a time are widened to 32-bit indices and looked up with two
// vpermps (codes 0-7 and 8-15) and a blend on bit 3. The dot accumulates with
// FMA into four 8-lane sums; the dequantized values are bit-exact with
// bnb4_dequant_row_ref, the dot equals bnb4_dot_row_ref up to reassociation.
#include <immintrin.h>

#include <cstdint>

#include "methods/bnb4.h"

namespace lowbit {

namespace {

// 32 codes (16 bytes, first element in the high nibble) -> four vectors of 8 indices.
__attribute__((target("avx2,fma,f16c"))) inline void unpack32(const uint8_t* p, __m256i idx[4]) {
  const __m128i m = _mm_set1_epi8(0x0f);
  const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m128i lo = _mm_and_si128(b, m);
  const __m128i hi = _mm_and_si128(_mm_srli_epi16(b, 4), m);
  const __m128i e0 = _mm_unpacklo_epi8(hi, lo);  // elements 0..15
  const __m128i e1 = _mm_unpackhi_epi8(hi, lo);  // elements 16..31
  idx[0] = _mm256_cvtepu8_epi32(e0);
  idx[1] = _mm256_cvtepu8_epi32(_mm_srli_si128(e0, 8));
  idx[2] = _mm256_cvtepu8_epi32(e1);
  idx[3] = _mm256_cvtepu8_epi32(_mm_srli_si128(e1, 8));
}

// t_lo = table[0..7], t_hi = table[8..15]; idx in 0..15.
__attribute__((target("avx2,fma,f16c"))) inline __m256 lookup16(__m256 t_lo, __m256 t_hi, __m256i idx) {
  const __m256 a = _mm256_permutevar8x32_ps(t_lo, idx);
  const __m256 b = _mm256_permutevar8x32_ps(t_hi, idx);
  return _mm256_blendv_ps(a, b, _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)));  // bit 3 -> sign bit
}

}  // namespace

__attribute__((target("avx2,fma,f16c"))) float bnb4_dot_row_avx2(const uint8_t* codes, const float* absmax,
                                                                  int64_t n_in, int blocksize, const float* code16,
                                                                  const float* x) {
  const __m256 c_lo = _mm256_loadu_ps(code16), c_hi = _mm256_loadu_ps(code16 + 8);
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps(), acc2 = _mm256_setzero_ps(),
         acc3 = _mm256_setzero_ps();
  const int64_t n_blocks = n_in / blocksize;
  for (int64_t b = 0; b < n_blocks; ++b) {
    const __m256 a = _mm256_set1_ps(absmax[b]);
    const __m256 t_lo = _mm256_mul_ps(c_lo, a), t_hi = _mm256_mul_ps(c_hi, a);  // code * absmax
    const uint8_t* p = codes + b * blocksize / 2;
    const float* xb = x + b * blocksize;
    for (int i = 0; i < blocksize; i += 32) {
      __m256i idx[4];
      unpack32(p + i / 2, idx);
      acc0 = _mm256_fmadd_ps(lookup16(t_lo, t_hi, idx[0]), _mm256_loadu_ps(xb + i), acc0);
      acc1 = _mm256_fmadd_ps(lookup16(t_lo, t_hi, idx[1]), _mm256_loadu_ps(xb + i + 8), acc1);
      acc2 = _mm256_fmadd_ps(lookup16(t_lo, t_hi, idx[2]), _mm256_loadu_ps(xb + i + 16), acc2);
      acc3 = _mm256_fmadd_ps(lookup16(t_lo, t_hi, idx[3]), _mm256_loadu_ps(xb + i + 24), acc3);
    }
  }
  const __m256 s = _mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3));
  __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
  h = _mm_add_ps(h, _mm_movehl_ps(h, h));
  h = _mm_add_ss(h, _mm_movehdup_ps(h));
  return _mm_cvtss_f32(h);
}

__attribute__((target("avx2,fma,f16c"))) void bnb4_dequant_row_avx2(const uint8_t* codes, const float* absmax,
                                                                     int64_t n_in, int blocksize, const float* code16,
                                                                     float* w) {
  const __m256 c_lo = _mm256_loadu_ps(code16), c_hi = _mm256_loadu_ps(code16 + 8);
  const int64_t n_blocks = n_in / blocksize;
  for (int64_t b = 0; b < n_blocks; ++b) {
    const __m256 a = _mm256_set1_ps(absmax[b]);
    const __m256 t_lo = _mm256_mul_ps(c_lo, a), t_hi = _mm256_mul_ps(c_hi, a);
    const uint8_t* p = codes + b * blocksize / 2;
    float* wb = w + b * blocksize;
    for (int i = 0; i < blocksize; i += 32) {
      __m256i idx[4];
      unpack32(p + i / 2, idx);
      for (int k = 0; k < 4; ++k) _mm256_storeu_ps(wb + i + 8 * k, lookup16(t_lo, t_hi, idx[k]));
    }
  }
}

__attribute__((target("avx2,fma,f16c"))) float f32_dot_avx2(const float* a, const float* b, int64_t n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
  }
  const __m256 s = _mm256_add_ps(acc0, acc1);
  __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
  h = _mm_add_ps(h, _mm_movehl_ps(h, h));
  h = _mm_add_ss(h, _mm_movehdup_ps(h));
  float r = _mm_cvtss_f32(h);
  for (; i < n; ++i) r += a[i] * b[i];
  return r;
}

}  // namespace lowbit
