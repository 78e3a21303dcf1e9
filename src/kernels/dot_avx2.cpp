// AVX2 + FMA + F16C dot products of the legacy 32-value formats (q8_0, q4_0,
// q4_1, q5_0, q5_1, iq4_nl) and of f16 / bf16 with f32, with the semantics of
// the scalar references in formats/*.cpp (same pairing, same scale application;
// only the float summation order differs: blocks accumulate in f32 lanes).
// The k-quants are in dot_avx2_kquants.cpp, shared building blocks in avx2_common.h.
//
// Compiled for x86-64-v2 like the rest of the library: every function here
// carries a target attribute and is only reached through kernels/dispatch.cpp
// after cpu_features() said the CPU (and OS) support AVX2, FMA and F16C.
#include <immintrin.h>

#include <cstdint>

#include "formats/blocks_legacy.h"
#include "kernels/avx2_common.h"
#include "kernels/dispatch.h"

namespace lowbit {
namespace {

using namespace avx2;

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

// The same for 4 weight rows (x, x + stride, ...) against one activation row: the
// activation's |y| and scale are loaded once per block for the 4 rows, and each
// row's products use dot_u8_i8(|y|, sign(level, y)), the same integers as
// dot_i8_i8(level, y), so out[r] is bit-identical to dot_q8_0 on row r.
template <class Block>
LB_AVX2 void dot_q8_0_4rows(int64_t n, const void* vx, size_t stride, const void* vy, float* out) {
  const auto* y = static_cast<const BlockQ8_0*>(vy);
  const Block* x[4];
  for (int r = 0; r < 4; ++r) x[r] = reinterpret_cast<const Block*>(static_cast<const uint8_t*>(vx) + r * stride);
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  for (int64_t b = 0; b < n / kLegacyBlock; ++b) {
    const __m256i qy = load32(y[b].qs);
    const __m256i abs_y = _mm256_sign_epi8(qy, qy);
    const float dy = fp16(y[b].d);
    for (int r = 0; r < 4; ++r)
      acc[r] = add_scaled(acc[r], fp16(x[r][b].d) * dy, dot_u8_i8(abs_y, _mm256_sign_epi8(levels(x[r][b]), qy)));
  }
  for (int r = 0; r < 4; ++r) out[r] = hsum(acc[r]);
}

// q4_0, 4 rows: (q - 8) . y = q . y - 8 * sum(y), with q in 0..15 as maddubs' unsigned
// operand (no sign instructions) and 8 * sum(y) computed once per block for the rows.
// The integer sums equal dot_i8_i8's, so out[r] is bit-identical to dot_q8_0 on row r.
LB_AVX2 void dot_q4_0_4rows(int64_t n, const void* vx, size_t stride, const void* vy, float* out) {
  const auto* y = static_cast<const BlockQ8_0*>(vy);
  const BlockQ4_0* x[4];
  for (int r = 0; r < 4; ++r) x[r] = reinterpret_cast<const BlockQ4_0*>(static_cast<const uint8_t*>(vx) + r * stride);
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  const __m256i low4 = _mm256_set1_epi8(0x0F), eight = _mm256_set1_epi8(8), ones = _mm256_set1_epi16(1);
  for (int64_t b = 0; b < n / kLegacyBlock; ++b) {
    const __m256i qy = load32(y[b].qs);
    const __m256i sum8 = _mm256_maddubs_epi16(eight, qy);  // int16 lane k: 8 * (y[2k] + y[2k+1])
    const float dy = fp16(y[b].d);
    for (int r = 0; r < 4; ++r) {
      const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[r][b].qs));
      const __m256i q = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), low4);  // values 0..15 | 16..31
      const __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(q, qy), sum8);  // |.| <= 2*15*127 + 8*254
      acc[r] = add_scaled(acc[r], fp16(x[r][b].d) * dy, _mm256_madd_epi16(p, ones));
    }
  }
  for (int r = 0; r < 4; ++r) out[r] = hsum(acc[r]);
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

VecDot4RowsFn avx2_vec_dot_4rows(FormatId id) {
  switch (id) {
    case FormatId::Q8_0: return dot_q8_0_4rows<BlockQ8_0>;
    case FormatId::Q4_0: return dot_q4_0_4rows;
    case FormatId::Q5_0: return dot_q8_0_4rows<BlockQ5_0>;
    case FormatId::IQ4_NL: return dot_q8_0_4rows<BlockIQ4_NL>;
    default: return nullptr;
  }
}

VecDotFn avx2_vec_dot(FormatId id) {
  switch (id) {
    case FormatId::Q8_0: return dot_q8_0<BlockQ8_0>;
    case FormatId::Q4_0: return dot_q8_0<BlockQ4_0>;
    case FormatId::Q4_1: return dot_q8_1<BlockQ4_1>;
    case FormatId::Q5_0: return dot_q8_0<BlockQ5_0>;
    case FormatId::Q5_1: return dot_q8_1<BlockQ5_1>;
    case FormatId::IQ4_NL: return dot_q8_0<BlockIQ4_NL>;
    case FormatId::F16: return dot_f16_f32;
    case FormatId::BF16: return dot_bf16_f32;
    default: return nullptr;
  }
}

}  // namespace lowbit
