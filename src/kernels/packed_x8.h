// q4_0x8 and q8_0x8: run-time layouts of q4_0 / q8_0 weights for generation
// (matrix-vector) products, 8 rows interleaved block by block, made when a
// model is loaded (model/packed_weights.h). Nothing is written in these
// layouts: GGUF files keep plain q4_0 / q8_0, and the values are the same bits, moved.
//
// Why: a plain dot product reduces each row's 8 integer lanes to one float per
// block and converts one f16 scale per row and block. With 8 rows side by side,
// lane r of every AVX2 register belongs to row r, so one pass over a block
// yields all 8 rows' integer sums in one register, and their 8 scales are one
// f16 -> f32 conversion and one fused multiply-add (packed_x8_avx2.cpp).
//
// Group g (rows 8g .. 8g+7) is n_in / 32 blocks in block order. In block b,
// chunk k holds 4 bytes of each row: bytes 32k + 4r .. 32k + 4r + 3 are bytes
// 4k .. 4k+3 of the quants of row 8g+r's block b:
//   q4_0x8: chunks 0..3; the row's values 4k..4k+3 in the low nibbles and
//           16+4k..16+4k+3 in the high nibbles (q4_0's own nibble order);
//   q8_0x8: chunks 0..7; the row's values 4k..4k+3.
#pragma once
#include <cstddef>
#include <cstdint>

#include "formats/blocks_legacy.h"

namespace lowbit {

inline constexpr int kPackedRows = 8;

// q4_0x8: 8 rows x 32 values, 4.5 bpw as q4_0.
struct BlockQ4_0x8 {
  uint16_t d[kPackedRows];  // f16 scale of each row's block
  uint8_t qs[128];          // 4 chunks of 8 rows x 4 bytes (above)
};
static_assert(sizeof(BlockQ4_0x8) == 8 * sizeof(BlockQ4_0), "q4_0x8 holds exactly 8 q4_0 blocks");

// q8_0x8: 8 rows x 32 values, 8.5 bpw as q8_0.
struct BlockQ8_0x8 {
  uint16_t d[kPackedRows];  // f16 scale of each row's block
  int8_t qs[256];           // 8 chunks of 8 rows x 4 bytes (above)
};
static_assert(sizeof(BlockQ8_0x8) == 8 * sizeof(BlockQ8_0), "q8_0x8 holds exactly 8 q8_0 blocks");

// The activation row of a product, q8_0, prepared once per product with, per
// block, its f32 scale and 8 * sum(q) (q4_0's offset of 8 applied to the row),
// and the row's |q| (the unsigned operand of the q8_0x8 kernel).
struct Q8RowSums {
  const BlockQ8_0* blocks;  // [n_in / 32]
  const float* d;           // [n_in / 32] f32 of blocks[b].d
  const int32_t* sum8;      // [n_in / 32] 8 * sum of blocks[b].qs
  const int8_t* abs_qs;     // [n_in] |blocks[i / 32].qs[i % 32]|
};

// Interleaves n_rows (a multiple of 8) q4_0 / q8_0 rows of n_in values,
// row_stride bytes apart, into dst (the same number of bytes as the rows).
void pack_q4_0x8(const void* src, size_t row_stride, int64_t n_rows, int64_t n_in, void* dst);
void pack_q8_0x8(const void* src, size_t row_stride, int64_t n_rows, int64_t n_in, void* dst);

// Row `lane` (0..7) of one group (n_in values) back to f32, equal to the
// format's dequantize_row of the original row bit for bit. Reference and AVX2.
void dequantize_q4_0x8_row_ref(const void* group, int lane, float* dst, int64_t n_in);
void dequantize_q4_0x8_row_avx2(const void* group, int lane, float* dst, int64_t n_in);
void dequantize_q8_0x8_row_ref(const void* group, int lane, float* dst, int64_t n_in);
void dequantize_q8_0x8_row_avx2(const void* group, int lane, float* dst, int64_t n_in);

// out[r] = row 8g+r . y for the 8 rows of one group. The integer sums equal
// the format's vec_dot's; the float accumulation is per block and lane (not
// vec_dot's rounding). Reference and AVX2 versions, bit-identical to each other.
void gemv_q4_0x8_ref(int64_t n_in, const void* group, const Q8RowSums& y, float* out);
void gemv_q4_0x8_avx2(int64_t n_in, const void* group, const Q8RowSums& y, float* out);
void gemv_q8_0x8_ref(int64_t n_in, const void* group, const Q8RowSums& y, float* out);
void gemv_q8_0x8_avx2(int64_t n_in, const void* group, const Q8RowSums& y, float* out);

}  // namespace lowbit
