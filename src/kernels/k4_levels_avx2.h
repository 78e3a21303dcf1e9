// The one difference between q4_K and q5_K for the AVX2 kernels: how a
// super-block's levels are read. Both formats have 8 sub-blocks of 32 values
// with a 6-bit scale and a 6-bit min each (unpack_scales_mins_k4) and
// value = d * sc[j] * q - dmin * m[j]; the dot (dot_avx2_kquants.cpp) and the
// dequantizer (dequant_avx2.cpp) are each one template over a level reader.
//
// A reader is built from one block and gives, for p = 0..3, the unsigned levels
// of sub-blocks 2p (lo) and 2p+1 (hi), one byte per value in storage order:
//   K4Levels (q4_K): the low / high nibbles of qs[32p..32p+31], q 0..15;
//   K5Levels (q5_K): the same nibbles with bit 2p / 2p+1 of qh[l] as bit 4, q 0..31
//                    (so 2 * 31 * 127 bounds a maddubs pair: no int16 saturation).
// Integer operations only; include from AVX2 kernel files (avx2_common.h's rules).
#pragma once
#include <immintrin.h>

#include "formats/k_quants.h"
#include "kernels/avx2_common.h"

namespace lowbit::avx2 {

struct K4Levels {
  using Block = BlockQ4_K;
  const Block& x;
  LB_AVX2 explicit K4Levels(const Block& b) : x(b) {}
  LB_AVX2 void get(int p, __m256i& lo, __m256i& hi) const {
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    const __m256i qs = load32(x.qs + 32 * p);
    lo = _mm256_and_si256(qs, low4);
    hi = _mm256_and_si256(_mm256_srli_epi16(qs, 4), low4);
  }
};

struct K5Levels {
  using Block = BlockQ5_K;
  const Block& x;
  __m256i qh;  // bit j of byte l: the fifth bit of value 32j + l
  LB_AVX2 explicit K5Levels(const Block& b) : x(b), qh(load32(b.qh)) {}
  LB_AVX2 void get(int p, __m256i& lo, __m256i& hi) const {
    const __m256i low4 = _mm256_set1_epi8(0x0F), bit4 = _mm256_set1_epi8(0x10);
    const __m256i qs = load32(x.qs + 32 * p);
    const __m256i h = _mm256_srli_epi16(qh, 2 * p);  // bits 2p and 2p+1 of each byte, to bits 0 and 1
    lo = _mm256_or_si256(_mm256_and_si256(qs, low4), _mm256_and_si256(_mm256_slli_epi16(h, 4), bit4));
    hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qs, 4), low4), _mm256_and_si256(_mm256_slli_epi16(h, 3), bit4));
  }
};

}  // namespace lowbit::avx2
