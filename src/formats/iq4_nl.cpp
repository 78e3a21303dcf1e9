// iq4_nl: 32-value blocks of 4-bit indices into a fixed non-uniform grid
// (kIq4nlValues, denser near zero) times one f16 scale; 4.5 bpw. Layout in
// formats/blocks_legacy.h. Its dot product pairs with q8_0 activations.
//
// Quantizer, byte-compatible with llama.cpp c392e50 (ggml-quants.c):
//  * importance == nullptr: ggml's quantize_row_iq4_nl_ref. The block's
//    largest-magnitude value maps onto the grid end -127; every value takes
//    the nearest grid point; the stored scale is the weighted least-squares
//    optimum for those indices (weights x^2).
//  * importance != nullptr: ggml's quantize_iq4_nl with an imatrix: weights
//    importance[j] * sqrt(sigma2 + x[j]^2) (sigma2 = 2 * mean of x^2 over the
//    block), and 15 more trial scales (grid end at -127 + t, t = -7..7) before
//    the indices are re-picked for the winning scale.
//  Note: llama-quantize *without* an imatrix also runs that 15-scale search
//  (weights x^2); the traits-table reference follows quantize_row_iq4_nl_ref,
//  the function ggml names as the deterministic reference.
// Where ggml leaves bytes undefined or NaN, lowbit writes something defined:
//  * an all-zero block: d = 0 and every index 8 (ggml's _ref leaves the
//    indices stale from the previous block; they decode to 0 either way).
//  * a block whose importance is all zero: ggml stores d = NaN; lowbit
//    quantizes that block as without importance.
#include <cmath>
#include <cstring>

#include "core/half.h"
#include "formats/blocks_legacy.h"
#include "formats/fixed_grid.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

// Included after the pragma, so that the row loops are compiled with the same
// options as the per-block code and it inlines into them.
#include "formats/block_loops.h"

namespace lowbit {
namespace {

constexpr int QK = kLegacyBlock;
constexpr float kGroupMaxEps = 1e-15f;
constexpr int kZeroIndex = 8;  // grid point 1, the nearest one to 0

// Index of the grid point nearest to v (ties go to the upper point).
int nearest_grid_index(float v) {
  const int8_t* g = kIq4nlValues;
  if (v <= g[0]) return 0;
  if (v >= g[15]) return 15;
  int lo = 0, hi = 15;  // invariant: g[lo] <= v < g[hi]
  while (hi - lo > 1) {
    const int mid = (lo + hi) / 2;
    if (v < g[mid]) hi = mid; else lo = mid;
  }
  return v - float(g[lo]) < float(g[hi]) - v ? lo : hi;
}

// 32 indices 0..15 -> 16 bytes: index j low nibble, index j + 16 high nibble.
void pack_indices(const uint8_t* idx, uint8_t* qs) {
  for (int j = 0; j < QK / 2; ++j) qs[j] = uint8_t(idx[j] | idx[j + QK / 2] << 4);
}

// Weighted fit of the scale for the indices picked at inverse scale `id`:
// sum_qx = sum w q x, sum_qq = sum w q^2 (q the grid value). Optionally stores the indices.
void fit(const float* x, const float* w, float id, float& sum_qx, float& sum_qq, uint8_t* idx) {
  sum_qx = sum_qq = 0;
  for (int j = 0; j < QK; ++j) {
    const int l = nearest_grid_index(id * x[j]);
    if (idx) idx[j] = uint8_t(l);
    const float q = float(kIq4nlValues[l]);
    sum_qx += w[j] * q * x[j];
    sum_qq += w[j] * q * q;
  }
}

// One block. `importance` is the block's 32 weights or nullptr (then the _ref
// variant: weights x^2, no extra trials). Writes the scale and packed indices.
void quantize_block(const float* x, const float* importance, BlockIQ4_NL& out) {
  float w[QK];
  uint8_t idx[QK];
  if (importance) {
    float sigma2 = 0;
    for (int j = 0; j < QK; ++j) sigma2 += x[j] * x[j];
    sigma2 *= 2.0f / float(QK);
    for (int j = 0; j < QK; ++j) w[j] = importance[j] * std::sqrt(sigma2 + x[j] * x[j]);
  } else {
    for (int j = 0; j < QK; ++j) w[j] = x[j] * x[j];
  }
  float amax = 0, max = 0;  // largest magnitude, and that value with its sign
  for (int j = 0; j < QK; ++j) {
    const float ax = std::fabs(x[j]);
    if (ax > amax) {
      amax = ax;
      max = x[j];
    }
  }
  if (amax < kGroupMaxEps) {
    out.d = f32_to_f16(0.0f);
    std::memset(out.qs, kZeroIndex | kZeroIndex << 4, sizeof(out.qs));
    return;
  }

  const float g0 = float(kIq4nlValues[0]);  // -127
  const int tries = importance ? 7 : 0;
  // First guess: max lands on the grid end. The searched variant starts from
  // the positive end of the scale's sign (d > 0 when max > 0), the _ref from the negative.
  float d = importance ? -max / g0 : max / g0;
  float sum_qx, sum_qq;
  fit(x, w, 1 / d, sum_qx, sum_qq, idx);
  if (sum_qq > 0) {
    d = sum_qx / sum_qq;
  }  // else: no positive weight (negative importance); keep the absmax scale
  float best = d * sum_qx;
  for (int t = -tries; t <= tries && tries > 0; ++t) {
    const float id = float(t + kIq4nlValues[0]) / max;
    fit(x, w, id, sum_qx, sum_qq, nullptr);
    if (sum_qq > 0 && sum_qx * sum_qx > best * sum_qq) {
      d = sum_qx / sum_qq;
      best = d * sum_qx;
    }
  }
  out.d = f32_to_f16(d);
  if (tries > 0) {  // re-pick the indices for the final (unrounded) scale
    const float id = d != 0.0f ? 1 / d : 0.0f;
    for (int j = 0; j < QK; ++j) idx[j] = uint8_t(nearest_grid_index(id * x[j]));
  }
  pack_indices(idx, out.qs);
}

}  // namespace

// A block whose importance is all zero is quantized as without importance (block_loops.h).
void quantize_row_iq4_nl(const float* x, void* y, int64_t n, const float* importance) {
  quantize_row_by_block<BlockIQ4_NL>(x, y, n, QK, importance, quantize_block);
}

void dequantize_row_iq4_nl(const void* x, float* y, int64_t n) {
  dequantize_row_by_block<BlockIQ4_NL>(x, y, n, QK, [](const BlockIQ4_NL& b, float* yb) {
    const float d = f16_to_f32(b.d);
    for (int j = 0; j < QK / 2; ++j) {
      yb[j] = d * float(kIq4nlValues[b.qs[j] & 0x0F]);
      yb[j + QK / 2] = d * float(kIq4nlValues[b.qs[j] >> 4]);
    }
  });
}

// Fixed-scale grid (format.h): codes 0..15 on kIq4nlGrid, step d, offset -0.0f,
// so offset + step * kIq4nlGrid[k] == d * float(kIq4nlValues[k]) bit for bit
// (x + -0.0f == x for every x). encode_fixed keeps d; with d == 0 it stores
// index 8 (grid point 1, nearest to 0), as the quantizer does for a zero block.
void block_grid_iq4_nl(const void* block, float* step, float* offset) {
  const float d = f16_to_f32(static_cast<const BlockIQ4_NL*>(block)->d);
  for (int j = 0; j < QK; ++j) {
    step[j] = d;
    offset[j] = -0.0f;
  }
}

void encode_fixed_iq4_nl(const float* x, void* block) {
  auto* b = static_cast<BlockIQ4_NL*>(block);
  const float d = f16_to_f32(b->d);
  uint8_t idx[QK];
  for (int j = 0; j < QK; ++j) idx[j] = uint8_t(nearest_fixed_code(x[j], d, -0.0f, 0, 15, kIq4nlGrid));
  pack_indices(idx, b->qs);
}

// Per block an exact integer sum of grid value * q8 level, scaled by d_x * d_y; blocks sum in double.
float vec_dot_iq4_nl_q8_0_ref(int64_t n, const void* x, const void* y) {
  return vec_dot_by_block<BlockIQ4_NL, BlockQ8_0>(n, QK, x, y, [](const BlockIQ4_NL& bx, const BlockQ8_0& by) {
    int32_t isum = 0;
    for (int j = 0; j < QK / 2; ++j) {
      isum += int(kIq4nlValues[bx.qs[j] & 0x0F]) * by.qs[j];
      isum += int(kIq4nlValues[bx.qs[j] >> 4]) * by.qs[j + QK / 2];
    }
    return double(f16_to_f32(bx.d)) * f16_to_f32(by.d) * isum;
  });
}

}  // namespace lowbit
