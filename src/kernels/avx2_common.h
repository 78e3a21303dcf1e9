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

// q4_K / q5_K: the 12 scale bytes hold 8 x (6-bit scale, 6-bit min) (formats/k_quants.h
// get_scale_min_k4). Returns the scales (bytes 0..7) and the mins (bytes 0..7):
//   j < 4:  sc = s[j] & 63,                         m = s[j+4] & 63
//   j >= 4: sc = (s[j+4] & 15) | (s[j-4] >> 6) << 4, m = (s[j+4] >> 4) | (s[j] >> 6) << 4
// done four bytes at a time on 32-bit words u0 = s[0..3], u1 = s[4..7], u2 = s[8..11].
inline void unpack_scales_mins_k4(const uint8_t* s, uint64_t& scales, uint64_t& mins) {
  const uint32_t u0 = load_u32(s), u1 = load_u32(s + 4), u2 = load_u32(s + 8);
  const uint32_t sc_lo = u0 & 0x3f3f3f3f, m_lo = u1 & 0x3f3f3f3f;
  const uint32_t sc_hi = (u2 & 0x0f0f0f0f) | ((u0 >> 2) & 0x30303030);
  const uint32_t m_hi = ((u2 >> 4) & 0x0f0f0f0f) | ((u1 >> 2) & 0x30303030);
  scales = uint64_t(sc_lo) | uint64_t(sc_hi) << 32;
  mins = uint64_t(m_lo) | uint64_t(m_hi) << 32;
}

}  // namespace lowbit::avx2
