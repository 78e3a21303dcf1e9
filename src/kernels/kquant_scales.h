// Scalar unpacking of the k-quants' packed 6-bit sub-block scales, shared by the
// AVX2 and AVX-512 kernels (plain integer code: no target attribute needed).
#pragma once
#include <cstdint>
#include <cstring>

namespace lowbit::kquant_scales {

inline uint32_t word(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// q4_K / q5_K: the 12 scale bytes hold 8 x (6-bit scale, 6-bit min) (formats/k_quants.h
// get_scale_min_k4). Returns the scales (bytes 0..7) and the mins (bytes 0..7):
//   j < 4:  sc = s[j] & 63,                         m = s[j+4] & 63
//   j >= 4: sc = (s[j+4] & 15) | (s[j-4] >> 6) << 4, m = (s[j+4] >> 4) | (s[j] >> 6) << 4
// done four bytes at a time on 32-bit words u0 = s[0..3], u1 = s[4..7], u2 = s[8..11].
inline void unpack_scales_mins_k4(const uint8_t* s, uint64_t& scales, uint64_t& mins) {
  const uint32_t u0 = word(s), u1 = word(s + 4), u2 = word(s + 8);
  const uint32_t sc_lo = u0 & 0x3f3f3f3f, m_lo = u1 & 0x3f3f3f3f;
  const uint32_t sc_hi = (u2 & 0x0f0f0f0f) | ((u0 >> 2) & 0x30303030);
  const uint32_t m_hi = ((u2 >> 4) & 0x0f0f0f0f) | ((u1 >> 2) & 0x30303030);
  scales = uint64_t(sc_lo) | uint64_t(sc_hi) << 32;
  mins = uint64_t(m_lo) | uint64_t(m_hi) << 32;
}

// q3_K: 16 x 6-bit scales (stored + 32) from 12 bytes: low 4 bits of j in s[j % 8]
// (low nibble j < 8, high nibble j >= 8), top 2 bits in s[8 + j % 4] bits 2 * (j / 4).
// Writes the 16 stored values (0..63, subtract 32 for the scale) as 4 words, j in byte order.
inline void unpack_scales_q3_K(const uint8_t* s, uint32_t out[4]) {
  const uint32_t u0 = word(s), u1 = word(s + 4), u2 = word(s + 8);
  const uint32_t m4 = 0x0f0f0f0f, m2 = 0x03030303;
  out[0] = (u0 & m4) | (u2 & m2) << 4;                 // j 0..3
  out[1] = (u1 & m4) | ((u2 >> 2) & m2) << 4;          // j 4..7
  out[2] = ((u0 >> 4) & m4) | ((u2 >> 4) & m2) << 4;   // j 8..11
  out[3] = ((u1 >> 4) & m4) | ((u2 >> 6) & m2) << 4;   // j 12..15
}

}  // namespace lowbit::kquant_scales
