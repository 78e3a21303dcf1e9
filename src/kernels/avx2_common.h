// Building blocks shared by the AVX2 kernel files (dot_avx2*.cpp, dequant_avx2.cpp).
// Every function carries the AVX2 target attribute: include this only from
// files whose functions are reached through kernels/dispatch.cpp after
// cpu_features() reported AVX2, FMA and F16C.
//
// Integer dot products (per 32 bytes, int8 lanes):
//   dot_u8_i8(u, s)  = 8 x int32, lane k = sum_{j=4k..4k+3} u[j] * s[j]
//                      (maddubs: u8*s8 pairs -> int16, then madd with 1 -> int32;
//                       callers keep 2 * max|u| * 127 < 32768 so int16 never saturates)
//   dot_i8_i8(a, b)  = dot_u8_i8(|a|, sign(b, a))   (a*b == |a| * (b * sign a))
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/kquant_scales.h"

#define LB_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace lowbit::avx2 {

LB_AVX2 inline float fp16(uint16_t h) { return _cvtsh_ss(h); }

LB_AVX2 inline __m256i load32(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

inline uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

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

// acc += scale * float(sumi), lane by lane.
LB_AVX2 inline __m256 add_scaled(__m256 acc, float scale, __m256i sumi) {
  return _mm256_fmadd_ps(_mm256_set1_ps(scale), _mm256_cvtepi32_ps(sumi), acc);
}

// k-quant scale unpacking (scalar): kernels/kquant_scales.h.
using kquant_scales::unpack_scales_mins_k4;

}  // namespace lowbit::avx2
