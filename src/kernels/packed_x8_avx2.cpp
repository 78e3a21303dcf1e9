// AVX2 kernels of the q4_0x8 / q8_0x8 layouts (packed_x8.h), bit-identical to
// the references in packed_x8.cpp. Reached only after cpu_features() reported
// AVX2, FMA and F16C (model/packed_weights.cpp packs only then).
//
// gemv, per block of the group (8 rows x 32 values):
//   chunk k's 32 bytes: lane r (4 bytes) = row r's values 4k..4k+3 (low nibbles)
//   and 16+4k..16+4k+3 (high nibbles); the activation bytes they pair with are
//   the same for every lane, so each is one broadcast 32-bit word of y.
//   maddubs(nibbles 0..15, y) gives int16 pairs; 8 of them add up to at most
//   16 * 15 * 127 = 30480 per int16, so they are summed in int16 and widened once
//   (madd with 1): lane r = sum(q * y) of row r. Subtracting 8 * sum(y) applies
//   q4_0's offset, and one fma scales all 8 rows: acc += isum * (d_rows * d_y).
// q8_0x8 is the same with signed weights and 8 chunks: maddubs(|y|, w * sign(y))
// (products up to 2 * 127 * 127 per int16, so each chunk is widened at once).
#include <immintrin.h>

#include "kernels/avx2_common.h"
#include "kernels/packed_x8.h"

namespace lowbit {

using namespace avx2;

// Scale all 8 rows of block b: acc += isum * (d_rows * d_y).
LB_AVX2 inline __m256 add_block(__m256 acc, const uint16_t* d_rows, float d_y, __m256i isum) {
  const __m256 scale =
      _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(d_rows))), _mm256_set1_ps(d_y));
  return _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), scale, acc);
}

LB_AVX2 void gemv_q4_0x8_avx2(int64_t n_in, const void* group, const Q8RowSums& y, float* out) {
  const auto* x = static_cast<const BlockQ4_0x8*>(group);
  const __m256i low4 = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < n_in / kLegacyBlock; ++b) {
    const int8_t* qy = y.blocks[b].qs;
    __m256i sum16 = _mm256_setzero_si256();
    for (int k = 0; k < 4; ++k) {
      const __m256i raw = load32(x[b].qs + 32 * k);
      const __m256i y_lo = _mm256_set1_epi32(int(load_u32(reinterpret_cast<const uint8_t*>(qy) + 4 * k)));
      const __m256i y_hi = _mm256_set1_epi32(int(load_u32(reinterpret_cast<const uint8_t*>(qy) + 16 + 4 * k)));
      sum16 = _mm256_add_epi16(sum16, _mm256_maddubs_epi16(_mm256_and_si256(raw, low4), y_lo));
      sum16 = _mm256_add_epi16(sum16, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(raw, 4), low4), y_hi));
    }
    const __m256i isum = _mm256_sub_epi32(_mm256_madd_epi16(sum16, ones), _mm256_set1_epi32(y.sum8[b]));
    acc = add_block(acc, x[b].d, y.d[b], isum);
  }
  _mm256_storeu_ps(out, acc);
}

// Row `lane`: its 4 bytes of each chunk gathered into the 16 bytes of a q4_0
// block, then nibbles -> (q - 8) * d as 4 x 8 floats.
LB_AVX2 void dequantize_q4_0x8_row_avx2(const void* group, int lane, float* dst, int64_t n_in) {
  const auto* x = static_cast<const BlockQ4_0x8*>(group);
  const __m128i low4 = _mm_set1_epi8(0x0F), eight = _mm_set1_epi8(8);
  for (int64_t b = 0; b < n_in / kLegacyBlock; ++b, dst += kLegacyBlock) {
    const uint8_t* q = x[b].qs + 4 * lane;
    const __m128i raw = _mm_set_epi32(int(load_u32(q + 96)), int(load_u32(q + 64)), int(load_u32(q + 32)),
                                      int(load_u32(q)));
    const __m128i lo = _mm_sub_epi8(_mm_and_si128(raw, low4), eight);                     // values 0..15
    const __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(raw, 4), low4), eight);  // values 16..31
    const __m256 d = _mm256_set1_ps(fp16(x[b].d[lane]));
    _mm256_storeu_ps(dst, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo)), d));
    _mm256_storeu_ps(dst + 8, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8))), d));
    _mm256_storeu_ps(dst + 16, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi)), d));
    _mm256_storeu_ps(dst + 24, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8))), d));
  }
}

LB_AVX2 void gemv_q8_0x8_avx2(int64_t n_in, const void* group, const Q8RowSums& y, float* out) {
  const auto* x = static_cast<const BlockQ8_0x8*>(group);
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < n_in / kLegacyBlock; ++b) {
    const auto* qy = reinterpret_cast<const uint8_t*>(y.blocks[b].qs);
    const auto* ay = reinterpret_cast<const uint8_t*>(y.abs_qs + b * kLegacyBlock);
    __m256i isum = _mm256_setzero_si256();
    for (int k = 0; k < 8; ++k) {
      const __m256i w = load32(x[b].qs + 32 * k);
      const __m256i y_k = _mm256_set1_epi32(int(load_u32(qy + 4 * k)));
      const __m256i abs_y_k = _mm256_set1_epi32(int(load_u32(ay + 4 * k)));
      isum = _mm256_add_epi32(isum, _mm256_madd_epi16(_mm256_maddubs_epi16(abs_y_k, _mm256_sign_epi8(w, y_k)), ones));
    }
    acc = add_block(acc, x[b].d, y.d[b], isum);
  }
  _mm256_storeu_ps(out, acc);
}

// Row `lane`: 4 bytes of each of the 8 chunks, sign-extended and scaled.
LB_AVX2 void dequantize_q8_0x8_row_avx2(const void* group, int lane, float* dst, int64_t n_in) {
  const auto* x = static_cast<const BlockQ8_0x8*>(group);
  for (int64_t b = 0; b < n_in / kLegacyBlock; ++b, dst += kLegacyBlock) {
    const auto* q = reinterpret_cast<const uint8_t*>(x[b].qs) + 4 * lane;
    const __m256 d = _mm256_set1_ps(fp16(x[b].d[lane]));
    for (int k = 0; k < 8; k += 2) {
      const __m128i two = _mm_set_epi32(0, 0, int(load_u32(q + 32 * (k + 1))), int(load_u32(q + 32 * k)));
      _mm256_storeu_ps(dst + 4 * k, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(two)), d));
    }
  }
}

}  // namespace lowbit
