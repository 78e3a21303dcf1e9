// The row loops every block format shares: walk a row block by block and hand
// each block to the format's own per-block function. A format's file then holds
// only what is its own (block quantize, block dequantize, block dot), e.g.
//
//   void dequantize_row_q8_0(const void* x, float* y, int64_t n) {
//     dequantize_row_by_block<BlockQ8_0>(x, y, n, QK, [](const BlockQ8_0& b, float* yb) { ... });
//   }
//
// The per-block functions are template arguments (lambdas), so they inline
// into the loop; the loops add nothing to the arithmetic, so each format's
// bytes and sums are exactly those of its per-block code.
#pragma once
#include <cstdint>

#include "lowbit/error.h"

namespace lowbit {

// True when v[0..n) are all zero.
inline bool all_zero(const float* v, int n) {
  for (int i = 0; i < n; ++i)
    if (v[i] != 0.0f) return false;
  return true;
}

// Quantizes one row of n values (n % block_size == 0) into blocks:
// quantize_block(x_b, importance_b, y[b]), x_b the block's block_size values and
// importance_b its slice of `importance` - or nullptr when there is no importance
// or the slice is all zero (a block with no preference is quantized as without
// importance, whatever the format).
template <class Block, class QuantizeBlock>
void quantize_row_by_block(const float* x, void* vy, int64_t n, int block_size, const float* importance,
                           QuantizeBlock quantize_block) {
  LOWBIT_ASSERT(n % block_size == 0);
  auto* y = static_cast<Block*>(vy);
  for (int64_t b = 0; b < n / block_size; ++b) {
    const float* imp = importance ? importance + b * block_size : nullptr;
    if (imp && all_zero(imp, block_size)) imp = nullptr;
    quantize_block(x + b * block_size, imp, y[b]);
  }
}

// Expands one row of n values: dequantize_block(x[b], y_b) writes the block's block_size values at y_b.
template <class Block, class DequantizeBlock>
void dequantize_row_by_block(const void* vx, float* y, int64_t n, int block_size, DequantizeBlock dequantize_block) {
  LOWBIT_ASSERT(n % block_size == 0);
  const auto* x = static_cast<const Block*>(vx);
  for (int64_t b = 0; b < n / block_size; ++b) dequantize_block(x[b], y + b * block_size);
}

// Reference dot product of a row of BlockX with a row of BlockY, n values each:
// block_dot(x[b], y[b]) gives block b's contribution (a double); blocks add up in double.
template <class BlockX, class BlockY, class BlockDot>
float vec_dot_by_block(int64_t n, int block_size, const void* vx, const void* vy, BlockDot block_dot) {
  LOWBIT_ASSERT(n % block_size == 0);
  const auto* x = static_cast<const BlockX*>(vx);
  const auto* y = static_cast<const BlockY*>(vy);
  double sum = 0;
  for (int64_t b = 0; b < n / block_size; ++b) sum += block_dot(x[b], y[b]);
  return float(sum);
}

}  // namespace lowbit
