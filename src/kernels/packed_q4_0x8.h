// q4_0x8: a run-time layout of q4_0 weights for generation (matrix-vector)
// products, 8 rows interleaved block by block, made when a model is loaded
// (model/packed_weights.h). Nothing is written in this layout: GGUF files keep
// plain q4_0, and the values are the same bits, moved.
//
// Why: a plain q4_0 dot product reduces each row's 8 integer lanes to one float
// per block and converts one f16 scale per row and block. With 8 rows side by
// side, lane r of every AVX2 register belongs to row r, so one pass over a
// block yields all 8 rows' integer sums in one register, and their 8 scales are
// one f16 -> f32 conversion and one fused multiply-add (see packed_q4_0x8_avx2.cpp).
//
// Group g (rows 8g .. 8g+7) is n_in / 32 BlockQ4_0x8 in block order. In block b,
// chunk k (0..3) holds 4 bytes of each row: bytes 32k + 4r .. 32k + 4r + 3 are
// bytes 4k .. 4k+3 of row 8g+r's q4_0 block b, i.e. the row's values 4k..4k+3
// in their low nibbles and 16+4k..16+4k+3 in their high nibbles.
#pragma once
#include <cstddef>
#include <cstdint>

#include "formats/blocks_legacy.h"

namespace lowbit {

inline constexpr int kQ4_0x8Rows = 8;

// 8 rows x 32 values: 4.5 bpw, as q4_0.
struct BlockQ4_0x8 {
  uint16_t d[kQ4_0x8Rows];  // f16 scale of each row's block
  uint8_t qs[128];          // 4 chunks of 8 rows x 4 bytes (above)
};
static_assert(sizeof(BlockQ4_0x8) == 8 * sizeof(BlockQ4_0), "q4_0x8 holds exactly 8 q4_0 blocks");

// A q4_0 activation-side row prepared once per product: the q8_0 blocks plus,
// per block, the f32 scale and 8 * sum(q) (the q4_0 offset of 8 applied to the row).
struct Q8RowSums {
  const BlockQ8_0* blocks;  // [n_in / 32]
  const float* d;           // [n_in / 32] f32 of blocks[b].d
  const int32_t* sum8;      // [n_in / 32] 8 * sum of blocks[b].qs
};

// Interleaves n_rows (a multiple of 8) q4_0 rows of n_in values, row_stride bytes
// apart, into dst (n_rows * n_in / 32 * 18 bytes).
void pack_q4_0x8(const void* src, size_t row_stride, int64_t n_rows, int64_t n_in, void* dst);

// Row `lane` (0..7) of one group (n_in values) back to f32, equal to q4_0's
// dequantize_row of the original row bit for bit. Reference and AVX2 versions.
void dequantize_q4_0x8_row_ref(const void* group, int lane, float* dst, int64_t n_in);
void dequantize_q4_0x8_row_avx2(const void* group, int lane, float* dst, int64_t n_in);

// out[r] = row 8g+r . y for the 8 rows of one group. The integer sums equal
// q4_0's vec_dot's; the float accumulation is per block and lane (not the same
// rounding as vec_dot). Reference and AVX2 versions, bit-identical to each other.
void gemv_q4_0x8_ref(int64_t n_in, const void* group, const Q8RowSums& y, float* out);
void gemv_q4_0x8_avx2(int64_t n_in, const void* group, const Q8RowSums& y, float* out);

}  // namespace lowbit
