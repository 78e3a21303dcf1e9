// ggml's legacy 32-value block formats: q4_0, q4_1, q5_0, q5_1, q8_0, q8_1
// (layouts in formats/blocks_legacy.h), plus the family's traits-table rows
// (iq4_nl's kernels live in iq4_nl.cpp).
//
// Quantizers reproduce ggml's bytes exactly (llama.cpp c392e50, ggml-quants.c):
//  * importance == nullptr: ggml's quantize_row_*_ref ("round to the grid
//    given by the block's absmax / min-max"), which is also what llama-quantize
//    writes without an imatrix.
//  * importance != nullptr (q4_0, q4_1, q5_0, q5_1): ggml's imatrix path
//    (quantize_q4_0 & co.), a weighted search over scales (and offsets), where
//    value j of the row weighs importance[j] * sqrt(mean(x^2) + x[j]^2).
//    One deviation: a block whose importance is all zero is quantized as
//    without importance (ggml would store a zero scale for q4_0 / q5_0).
//  q8_0 / q8_1 ignore importance, as ggml does.
// Reproducing bytes means reproducing float rounding: every expression below
// keeps ggml's operation order, and FP contraction (a*b+c fused into one FMA)
// is turned off for this file, because ggml's reference is built without it.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>

#include "core/half.h"
#include "formats/blocks_legacy.h"
#include "formats/families.h"
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
constexpr float kGroupMaxEps = 1e-15f;  // a block whose |x| never exceeds this is all zero

// Round to nearest, ties to even (ggml's nearest_int, valid for |v| < 2^22).
inline int round_even(float v) { return int(std::nearbyint(v)); }

// ---------------------------------------------------------------- bit packing

// 32 values of 0..15 -> 16 bytes: value j low nibble, value j+16 high nibble.
void pack_nibbles(const uint8_t* q, uint8_t* qs) {
  for (int j = 0; j < QK / 2; ++j) qs[j] = uint8_t((q[j] & 0x0F) | (q[j + QK / 2] & 0x0F) << 4);
}
void unpack_nibbles(const uint8_t* qs, uint8_t* q) {
  for (int j = 0; j < QK / 2; ++j) {
    q[j] = qs[j] & 0x0F;
    q[j + QK / 2] = qs[j] >> 4;
  }
}
// 32 values of 0..31 -> low nibbles in qs, fifth bits in qh (bit j of a little-endian uint32).
void pack_fives(const uint8_t* q, uint8_t* qs, uint8_t* qh) {
  pack_nibbles(q, qs);
  uint32_t high = 0;
  for (int j = 0; j < QK; ++j) high |= uint32_t(q[j] >> 4 & 1) << j;
  for (int b = 0; b < 4; ++b) qh[b] = uint8_t(high >> (8 * b));
}
void unpack_fives(const uint8_t* qs, const uint8_t* qh, uint8_t* q) {
  unpack_nibbles(qs, q);
  uint32_t high = uint32_t(qh[0]) | uint32_t(qh[1]) << 8 | uint32_t(qh[2]) << 16 | uint32_t(qh[3]) << 24;
  for (int j = 0; j < QK; ++j) q[j] |= uint8_t((high >> j & 1) << 4);
}

// ---------------------------------------------------------------- the plain (_ref) roundings

// Symmetric formats (q4_0: nmax 8, q5_0: nmax 16): the value of largest magnitude
// (first one on ties), with its sign, maps to level 0 i.e. -nmax, so d = max / -nmax;
// q = min(2*nmax-1, trunc(x/d + nmax + 0.5)).
float round_symmetric(const float* x, int nmax, uint8_t* q) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < QK; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  const float d = max / float(-nmax);
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  const float bias = float(nmax) + 0.5f;
  for (int j = 0; j < QK; ++j) q[j] = uint8_t(std::min(2 * nmax - 1, int(x[j] * id + bias)));
  return d;
}

// Offset formats (q4_1: nmax 15, q5_1: nmax 31): d = (max - min) / nmax, m = min,
// q = trunc((x - min)/d + 0.5).
float round_min_max(const float* x, int nmax, uint8_t* q, float* min_out) {
  float min = FLT_MAX, max = -FLT_MAX;
  for (int j = 0; j < QK; ++j) {
    if (x[j] < min) min = x[j];
    if (x[j] > max) max = x[j];
  }
  const float d = (max - min) / float(nmax);
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  for (int j = 0; j < QK; ++j) q[j] = uint8_t(std::min(nmax, int((x[j] - min) * id + 0.5f)));
  *min_out = min;
  return d;
}

// ---------------------------------------------------------------- the imatrix searches

// Per-value weights of one block for the imatrix path:
// w[j] = importance[j] * sqrt(sigma2 + x[j]^2), sigma2 = mean of x^2 over the whole row.
float row_sigma2(const float* x, int64_t n) {
  float sum = 0;
  for (int64_t j = 0; j < n; ++j) sum += x[j] * x[j];
  return sum / float(n);
}
// (A block whose importance is all zero carries no preference; ggml's searches
// then collapse - q4_0 / q5_0 store scale 0, iq4_nl a NaN scale - so lowbit
// quantizes such a block as if no importance had been given: block_loops.h.)
void block_weights(const float* x, const float* importance, float sigma2, float* w) {
  for (int j = 0; j < QK; ++j) w[j] = importance[j] * std::sqrt(sigma2 + x[j] * x[j]);
}

// Weighted symmetric scale search (ggml's make_qx_quants with weights, nmax 8
// or 16). Levels l = clamp(round(x * iscale), -nmax, nmax-1); for fixed levels
// the best scale is S_xl / S_ll (S_xl = sum w x l, S_ll = sum w l^2) and the
// error falls as S_xl^2 / S_ll rises. Tries iscale = -(nmax + k/10) / max for
// k = 0, +-1 .. +-9 and keeps the best. Writes q = l + nmax; returns the scale.
float search_symmetric(const float* x, const float* w, int nmax, uint8_t* q) {
  float amax = 0, max = 0;
  for (int j = 0; j < QK; ++j) {
    const float ax = std::fabs(x[j]);
    if (ax > amax) {
      amax = ax;
      max = x[j];
    }
  }
  if (amax < kGroupMaxEps) {
    std::fill(q, q + QK, uint8_t(0));
    return 0.0f;
  }
  // Sums for one trial inverse scale; writes the levels when `out` is given.
  auto trial = [&](float iscale, float& sum_xl, float& sum_ll, uint8_t* out) {
    sum_xl = sum_ll = 0;
    for (int j = 0; j < QK; ++j) {
      const int l = std::clamp(round_even(iscale * x[j]), -nmax, nmax - 1);
      if (out) out[j] = uint8_t(l + nmax);
      const float fl = float(l);
      sum_xl += w[j] * x[j] * fl;
      sum_ll += w[j] * fl * fl;
    }
  };
  float sum_xl, sum_ll;
  trial(float(-nmax) / max, sum_xl, sum_ll, q);
  float scale = sum_ll != 0.0f ? sum_xl / sum_ll : 0.0f;
  float best = scale * sum_xl;
  for (int k = -9; k <= 9; ++k) {
    if (k == 0) continue;
    const float iscale = -(float(nmax) + 0.1f * float(k)) / max;
    trial(iscale, sum_xl, sum_ll, nullptr);
    if (sum_ll > 0 && sum_xl * sum_xl > best * sum_ll) {
      trial(iscale, sum_xl, sum_ll, q);
      scale = sum_xl / sum_ll;
      best = scale * sum_xl;
    }
  }
  return scale;
}

// Weighted scale + offset search (ggml's make_qkx3_quants with weights,
// rmin -0.9, rdelta 0.05, 36 steps, squared error), for q4_1 (nmax 15) and
// q5_1 (nmax 31). The offset is the block minimum clamped to <= 0. Starting
// from the plain min/max grid, tries iscale = (nmax - 0.9 + 0.05 k) / (max - min),
// k = 0..36; for each set of levels solves the 2x2 weighted least squares for
// (scale, offset) (offset forced to <= 0) and keeps the lowest weighted error.
// Writes q in 0..nmax and the offset (value of level 0); returns the scale.
float search_scale_offset(const float* x, const float* w, int nmax, uint8_t* q, float* offset_out) {
  float min = x[0], max = x[0];
  float sum_w = w[0], sum_x = sum_w * x[0];
  for (int j = 1; j < QK; ++j) {
    if (x[j] < min) min = x[j];
    if (x[j] > max) max = x[j];
    sum_w += w[j];
    sum_x += w[j] * x[j];
  }
  if (min > 0) min = 0;
  if (max <= min) {
    std::fill(q, q + QK, uint8_t(0));
    *offset_out = min;
    return 0.0f;
  }
  float iscale = float(nmax) / (max - min);
  float scale = 1 / iscale;
  float best_err = 0;
  for (int j = 0; j < QK; ++j) {
    q[j] = uint8_t(std::clamp(round_even(iscale * (x[j] - min)), 0, nmax));
    float diff = scale * float(q[j]) + min - x[j];
    diff = diff * diff;
    best_err += w[j] * diff;
  }
  uint8_t trial_q[QK];
  for (int k = 0; k <= 36; ++k) {
    iscale = (-0.9f + 0.05f * float(k) + float(nmax)) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int j = 0; j < QK; ++j) {
      const int l = std::clamp(round_even(iscale * (x[j] - min)), 0, nmax);
      trial_q[j] = uint8_t(l);
      const float fl = float(l);
      sum_l += w[j] * fl;
      sum_l2 += w[j] * fl * fl;
      sum_xl += w[j] * fl * x[j];
    }
    const float det = sum_w * sum_l2 - sum_l * sum_l;
    if (!(det > 0)) continue;
    float this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
    float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
    if (this_min > 0) {
      this_min = 0;
      this_scale = sum_xl / sum_l2;
    }
    float err = 0;
    for (int j = 0; j < QK; ++j) {
      float diff = this_scale * float(trial_q[j]) + this_min - x[j];
      diff = diff * diff;
      err += w[j] * diff;
    }
    if (err < best_err) {
      std::copy(trial_q, trial_q + QK, q);
      best_err = err;
      scale = this_scale;
      min = this_min;
    }
  }
  *offset_out = min;
  return scale;
}

// Row loop of q4_0 / q5_0 / q4_1 / q5_1: quantize_block(x_b, w_b, out) gets the
// block's search weights w_b (the imatrix path), or nullptr (the plain rounding)
// when there is no importance or the block's importance is all zero.
template <class Block, class QuantizeBlock>
void quantize_row_weighted(const float* x, void* y, int64_t n, const float* importance, QuantizeBlock quantize_block) {
  const float sigma2 = importance ? row_sigma2(x, n) : 0.0f;
  quantize_row_by_block<Block>(x, y, n, QK, importance, [&](const float* xb, const float* imp, Block& out) {
    float w[QK];
    if (imp) block_weights(xb, imp, sigma2, w);
    quantize_block(xb, imp ? w : nullptr, out);
  });
}

// q8_0 / q8_1: d = absmax / 127, q = round-half-away-from-zero(x / d).
float round_q8(const float* x, int8_t* q) {
  float amax = 0.0f;
  for (int j = 0; j < QK; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  for (int j = 0; j < QK; ++j) q[j] = int8_t(std::round(x[j] * id));
  return d;
}

// q8_0 / q8_1 block values (q8_1's s is not needed to expand it).
template <class BlockQ8>
void dequantize_block_q8(const BlockQ8& b, float* y) {
  const float d = f16_to_f32(b.d);
  for (int j = 0; j < QK; ++j) y[j] = float(b.qs[j]) * d;
}

// q8_0 . q8_0 and q8_1 . q8_1 (s unused): d_x * d_y * sum(qx * qy).
template <class BlockQ8>
double dot_block_q8(const BlockQ8& bx, const BlockQ8& by) {
  int32_t isum = 0;
  for (int j = 0; j < QK; ++j) isum += int(bx.qs[j]) * by.qs[j];
  return double(f16_to_f32(bx.d)) * f16_to_f32(by.d) * isum;
}

// Exact integer sum of level products of one block: sum_j (q[j] - zero) * qy[j].
int32_t block_isum(const uint8_t* q, int zero, const int8_t* qy) {
  int32_t isum = 0;
  for (int j = 0; j < QK; ++j) isum += (int(q[j]) - zero) * qy[j];
  return isum;
}

}  // namespace

// ---------------------------------------------------------------- quantize

void quantize_row_q4_0(const float* x, void* y, int64_t n, const float* importance) {
  quantize_row_weighted<BlockQ4_0>(x, y, n, importance, [](const float* xb, const float* w, BlockQ4_0& out) {
    uint8_t q[QK];
    out.d = f32_to_f16(w ? search_symmetric(xb, w, 8, q) : round_symmetric(xb, 8, q));
    pack_nibbles(q, out.qs);
  });
}

void quantize_row_q5_0(const float* x, void* y, int64_t n, const float* importance) {
  quantize_row_weighted<BlockQ5_0>(x, y, n, importance, [](const float* xb, const float* w, BlockQ5_0& out) {
    uint8_t q[QK];
    out.d = f32_to_f16(w ? search_symmetric(xb, w, 16, q) : round_symmetric(xb, 16, q));
    pack_fives(q, out.qs, out.qh);
  });
}

void quantize_row_q4_1(const float* x, void* y, int64_t n, const float* importance) {
  quantize_row_weighted<BlockQ4_1>(x, y, n, importance, [](const float* xb, const float* w, BlockQ4_1& out) {
    uint8_t q[QK];
    float m;
    out.d = f32_to_f16(w ? search_scale_offset(xb, w, 15, q, &m) : round_min_max(xb, 15, q, &m));
    out.m = f32_to_f16(m);
    pack_nibbles(q, out.qs);
  });
}

void quantize_row_q5_1(const float* x, void* y, int64_t n, const float* importance) {
  quantize_row_weighted<BlockQ5_1>(x, y, n, importance, [](const float* xb, const float* w, BlockQ5_1& out) {
    uint8_t q[QK];
    float m;
    out.d = f32_to_f16(w ? search_scale_offset(xb, w, 31, q, &m) : round_min_max(xb, 31, q, &m));
    out.m = f32_to_f16(m);
    pack_fives(q, out.qs, out.qh);
  });
}

// q8_0 / q8_1 ignore importance.
void quantize_row_q8_0(const float* x, void* y, int64_t n, const float*) {
  quantize_row_by_block<BlockQ8_0>(x, y, n, QK, nullptr, [](const float* xb, const float*, BlockQ8_0& out) {
    out.d = f32_to_f16(round_q8(xb, out.qs));
  });
}

void quantize_row_q8_1(const float* x, void* y, int64_t n, const float*) {
  quantize_row_by_block<BlockQ8_1>(x, y, n, QK, nullptr, [](const float* xb, const float*, BlockQ8_1& out) {
    const float d = round_q8(xb, out.qs);
    int sum = 0;
    for (int j = 0; j < QK; ++j) sum += out.qs[j];
    out.d = f32_to_f16(d);
    out.s = f32_to_f16(float(sum) * d);
  });
}

// ---------------------------------------------------------------- dequantize

void dequantize_row_q4_0(const void* x, float* y, int64_t n) {
  dequantize_row_by_block<BlockQ4_0>(x, y, n, QK, [](const BlockQ4_0& b, float* yb) {
    uint8_t q[QK];
    unpack_nibbles(b.qs, q);
    const float d = f16_to_f32(b.d);
    for (int j = 0; j < QK; ++j) yb[j] = float(int(q[j]) - 8) * d;
  });
}

void dequantize_row_q4_1(const void* x, float* y, int64_t n) {
  dequantize_row_by_block<BlockQ4_1>(x, y, n, QK, [](const BlockQ4_1& b, float* yb) {
    uint8_t q[QK];
    unpack_nibbles(b.qs, q);
    const float d = f16_to_f32(b.d), m = f16_to_f32(b.m);
    for (int j = 0; j < QK; ++j) yb[j] = float(q[j]) * d + m;
  });
}

void dequantize_row_q5_0(const void* x, float* y, int64_t n) {
  dequantize_row_by_block<BlockQ5_0>(x, y, n, QK, [](const BlockQ5_0& b, float* yb) {
    uint8_t q[QK];
    unpack_fives(b.qs, b.qh, q);
    const float d = f16_to_f32(b.d);
    for (int j = 0; j < QK; ++j) yb[j] = float(int(q[j]) - 16) * d;
  });
}

void dequantize_row_q5_1(const void* x, float* y, int64_t n) {
  dequantize_row_by_block<BlockQ5_1>(x, y, n, QK, [](const BlockQ5_1& b, float* yb) {
    uint8_t q[QK];
    unpack_fives(b.qs, b.qh, q);
    const float d = f16_to_f32(b.d), m = f16_to_f32(b.m);
    for (int j = 0; j < QK; ++j) yb[j] = float(q[j]) * d + m;
  });
}

void dequantize_row_q8_0(const void* x, float* y, int64_t n) {
  dequantize_row_by_block<BlockQ8_0>(x, y, n, QK, dequantize_block_q8<BlockQ8_0>);
}

void dequantize_row_q8_1(const void* x, float* y, int64_t n) {
  dequantize_row_by_block<BlockQ8_1>(x, y, n, QK, dequantize_block_q8<BlockQ8_1>);
}

// ---------------------------------------------------------------- fixed-scale grids
// block_grid / encode_fixed (format.h). Value k of a block decodes to
// offset + step * k, bit for bit what dequantize_row computes for the stored level:
//  * q4_0, q5_0, q8_0: value = d * k, k = level - zero (q4_0 -8..7, q5_0 -16..15,
//    q8_0 -127..127); step d, offset -0.0f (x + -0.0f == x for every x, signed
//    zeros included, so offset + step * k == float(k) * d exactly). q8_0's range
//    leaves out -128, which the layout could hold but ggml's quantizer never
//    writes and the AVX2 4-row q8_0 kernel cannot negate (sign_epi8).
//  * q4_1, q5_1: value = m + d * k, k = level (0..15, 0..31); step d, offset m
//    (dequantize computes float(q) * d + m: the same two roundings).
// encode_fixed keeps d (and m) and stores each level as the nearest code (fixed_grid.h).

namespace {
// step = d, offset = -0.0f for every value of a symmetric block.
void symmetric_grid(uint16_t d16, float* step, float* offset) {
  const float d = f16_to_f32(d16);
  std::fill(step, step + QK, d);
  std::fill(offset, offset + QK, -0.0f);
}
void affine_grid(uint16_t d16, uint16_t m16, float* step, float* offset) {
  std::fill(step, step + QK, f16_to_f32(d16));
  std::fill(offset, offset + QK, f16_to_f32(m16));
}
// Levels q[j] = nearest code + zero on the grid d * k (+ m), codes lo..hi.
void nearest_levels(const float* x, float d, float m, int lo, int hi, int zero, uint8_t* q) {
  for (int j = 0; j < QK; ++j) q[j] = uint8_t(nearest_fixed_code(x[j], d, m, lo, hi, nullptr) + zero);
}
}  // namespace

void block_grid_q4_0(const void* block, float* step, float* offset) {
  symmetric_grid(static_cast<const BlockQ4_0*>(block)->d, step, offset);
}
void block_grid_q5_0(const void* block, float* step, float* offset) {
  symmetric_grid(static_cast<const BlockQ5_0*>(block)->d, step, offset);
}
void block_grid_q8_0(const void* block, float* step, float* offset) {
  symmetric_grid(static_cast<const BlockQ8_0*>(block)->d, step, offset);
}
void block_grid_q4_1(const void* block, float* step, float* offset) {
  const auto* b = static_cast<const BlockQ4_1*>(block);
  affine_grid(b->d, b->m, step, offset);
}
void block_grid_q5_1(const void* block, float* step, float* offset) {
  const auto* b = static_cast<const BlockQ5_1*>(block);
  affine_grid(b->d, b->m, step, offset);
}

void encode_fixed_q4_0(const float* x, void* block) {
  auto* b = static_cast<BlockQ4_0*>(block);
  uint8_t q[QK];
  nearest_levels(x, f16_to_f32(b->d), -0.0f, -8, 7, 8, q);
  pack_nibbles(q, b->qs);
}
void encode_fixed_q5_0(const float* x, void* block) {
  auto* b = static_cast<BlockQ5_0*>(block);
  uint8_t q[QK];
  nearest_levels(x, f16_to_f32(b->d), -0.0f, -16, 15, 16, q);
  pack_fives(q, b->qs, b->qh);
}
void encode_fixed_q8_0(const float* x, void* block) {
  auto* b = static_cast<BlockQ8_0*>(block);
  const float d = f16_to_f32(b->d);
  for (int j = 0; j < QK; ++j) b->qs[j] = int8_t(nearest_fixed_code(x[j], d, -0.0f, -127, 127, nullptr));
}
void encode_fixed_q4_1(const float* x, void* block) {
  auto* b = static_cast<BlockQ4_1*>(block);
  uint8_t q[QK];
  nearest_levels(x, f16_to_f32(b->d), f16_to_f32(b->m), 0, 15, 0, q);
  pack_nibbles(q, b->qs);
}
void encode_fixed_q5_1(const float* x, void* block) {
  auto* b = static_cast<BlockQ5_1*>(block);
  uint8_t q[QK];
  nearest_levels(x, f16_to_f32(b->d), f16_to_f32(b->m), 0, 31, 0, q);
  pack_fives(q, b->qs, b->qh);
}

// ---------------------------------------------------------------- reference dot products
// Per block: an exact integer sum of level products, scaled by d_x * d_y; blocks
// accumulate in double. With an offset m (q4_1, q5_1) the block adds
// m * s_y, s_y being q8_1's stored d_y * sum(q_y) (ggml's formula).

float vec_dot_q4_0_q8_0_ref(int64_t n, const void* x, const void* y) {
  return vec_dot_by_block<BlockQ4_0, BlockQ8_0>(n, QK, x, y, [](const BlockQ4_0& bx, const BlockQ8_0& by) {
    uint8_t q[QK];
    unpack_nibbles(bx.qs, q);
    const int32_t isum = block_isum(q, 8, by.qs);
    return double(f16_to_f32(bx.d)) * f16_to_f32(by.d) * isum;
  });
}

float vec_dot_q5_0_q8_0_ref(int64_t n, const void* x, const void* y) {
  return vec_dot_by_block<BlockQ5_0, BlockQ8_0>(n, QK, x, y, [](const BlockQ5_0& bx, const BlockQ8_0& by) {
    uint8_t q[QK];
    unpack_fives(bx.qs, bx.qh, q);
    const int32_t isum = block_isum(q, 16, by.qs);
    return double(f16_to_f32(bx.d)) * f16_to_f32(by.d) * isum;
  });
}

float vec_dot_q4_1_q8_1_ref(int64_t n, const void* x, const void* y) {
  return vec_dot_by_block<BlockQ4_1, BlockQ8_1>(n, QK, x, y, [](const BlockQ4_1& bx, const BlockQ8_1& by) {
    uint8_t q[QK];
    unpack_nibbles(bx.qs, q);
    const int32_t isum = block_isum(q, 0, by.qs);
    return double(f16_to_f32(bx.d)) * f16_to_f32(by.d) * isum + double(f16_to_f32(bx.m)) * f16_to_f32(by.s);
  });
}

float vec_dot_q5_1_q8_1_ref(int64_t n, const void* x, const void* y) {
  return vec_dot_by_block<BlockQ5_1, BlockQ8_1>(n, QK, x, y, [](const BlockQ5_1& bx, const BlockQ8_1& by) {
    uint8_t q[QK];
    unpack_fives(bx.qs, bx.qh, q);
    const int32_t isum = block_isum(q, 0, by.qs);
    return double(f16_to_f32(bx.d)) * f16_to_f32(by.d) * isum + double(f16_to_f32(bx.m)) * f16_to_f32(by.s);
  });
}

float vec_dot_q8_0_q8_0_ref(int64_t n, const void* x, const void* y) {
  return vec_dot_by_block<BlockQ8_0, BlockQ8_0>(n, QK, x, y, dot_block_q8<BlockQ8_0>);
}

float vec_dot_q8_1_q8_1_ref(int64_t n, const void* x, const void* y) {
  return vec_dot_by_block<BlockQ8_1, BlockQ8_1>(n, QK, x, y, dot_block_q8<BlockQ8_1>);
}

// ---------------------------------------------------------------- table rows

namespace {
// vec_dot == vec_dot_ref until ISA kernels are dispatched.
const FormatTraits kRows[] = {
    with_fixed_grid({FormatId::Q4_0, "q4_0", QK, sizeof(BlockQ4_0), true, FormatId::Q8_0, quantize_row_q4_0,
                     dequantize_row_q4_0, vec_dot_q4_0_q8_0_ref, vec_dot_q4_0_q8_0_ref},
                    block_grid_q4_0, encode_fixed_q4_0, -8, 7),
    with_fixed_grid({FormatId::Q4_1, "q4_1", QK, sizeof(BlockQ4_1), true, FormatId::Q8_1, quantize_row_q4_1,
                     dequantize_row_q4_1, vec_dot_q4_1_q8_1_ref, vec_dot_q4_1_q8_1_ref},
                    block_grid_q4_1, encode_fixed_q4_1, 0, 15),
    with_fixed_grid({FormatId::Q5_0, "q5_0", QK, sizeof(BlockQ5_0), true, FormatId::Q8_0, quantize_row_q5_0,
                     dequantize_row_q5_0, vec_dot_q5_0_q8_0_ref, vec_dot_q5_0_q8_0_ref},
                    block_grid_q5_0, encode_fixed_q5_0, -16, 15),
    with_fixed_grid({FormatId::Q5_1, "q5_1", QK, sizeof(BlockQ5_1), true, FormatId::Q8_1, quantize_row_q5_1,
                     dequantize_row_q5_1, vec_dot_q5_1_q8_1_ref, vec_dot_q5_1_q8_1_ref},
                    block_grid_q5_1, encode_fixed_q5_1, 0, 31),
    with_fixed_grid({FormatId::Q8_0, "q8_0", QK, sizeof(BlockQ8_0), true, FormatId::Q8_0, quantize_row_q8_0,
                     dequantize_row_q8_0, vec_dot_q8_0_q8_0_ref, vec_dot_q8_0_q8_0_ref},
                    block_grid_q8_0, encode_fixed_q8_0, -127, 127),
    // q8_1 is activation-only: no fixed-scale grid.
    {FormatId::Q8_1, "q8_1", QK, sizeof(BlockQ8_1), true, FormatId::Q8_1, quantize_row_q8_1, dequantize_row_q8_1,
     vec_dot_q8_1_q8_1_ref, vec_dot_q8_1_q8_1_ref},
    with_fixed_grid({FormatId::IQ4_NL, "iq4_nl", QK, sizeof(BlockIQ4_NL), true, FormatId::Q8_0, quantize_row_iq4_nl,
                     dequantize_row_iq4_nl, vec_dot_iq4_nl_q8_0_ref, vec_dot_iq4_nl_q8_0_ref},
                    block_grid_iq4_nl, encode_fixed_iq4_nl, 0, 15, kIq4nlGrid),
};
}  // namespace

std::span<const FormatTraits> legacy_formats() { return kRows; }

}  // namespace lowbit
