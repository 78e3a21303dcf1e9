// GPTQ (Frantar, Ashkboos, Hoefler, Alistarh 2022, "GPTQ: Accurate
// Post-Training Quantization for Generative Pre-trained Transformers"):
// quantizes a linear W [n_out, n_in] one input column at a time, in the order
// of Algorithm 1, feeding each column's rounding error back into the columns
// not yet quantized through the Cholesky factor of the inverse Hessian
// H = 2 X^T X of the layer's calibration inputs X [n_tokens, n_in].
//
// Target grids:
//  - IntGroupSpec: the HF GPTQ integer groups (methods/int_groups.h); a group's
//    scale/zero are chosen when GPTQ reaches its first column, from the
//    weights as updated so far (AutoGPTQ), or up front from the original
//    weights with static groups.
//  - a ggml format of the traits table (q4_K, q6_K, q5_0, iq4_nl, ...): each
//    block's scales are chosen by the format's own quantize_row_ref (with the
//    Hessian diagonal as importance) when GPTQ reaches the block, then values
//    are rounded on that block's fixed grid (FormatTraits::block_grid) and
//    stored with encode_fixed. With act-order the blocks' scales are chosen
//    up front from the original weights (static groups), because a format's
//    blocks follow the stored column order.
#pragma once
#include <cstdint>
#include <optional>
#include <vector>

#include "formats/format.h"
#include "methods/int_groups.h"

namespace lowbit {

struct GptqOptions {
  double damp = 0.01;         // added to H's diagonal: damp * mean(diag H)  (--damp)
  int block_size = 128;       // lazy-batch width (raised to the format's block size when larger)
  bool act_order = false;     // desc_act: columns in decreasing diag(H)
  bool static_groups = false; // int groups: params from the original W before any update
  int threads = 0;            // 0 = OpenMP default; output is identical at any count
};

struct GptqTarget {
  std::optional<IntGroupSpec> ints;  // exactly one of the two is set
  std::optional<FormatId> format;
};

struct GptqResult {
  std::vector<float> dequantized;  // [n_out, n_in] the quantized weights' values
  IntGroupQuant ints;              // target ints: codes, scales, zeros, g_idx
  std::vector<uint8_t> blocks;     // target format: n_out rows of row_bytes(format, n_in)
  // Proxy loss tr((W - Q) H (W - Q)^T) / n_out (H undamped) for plain
  // round-to-nearest on the same grid and for GPTQ: the error before / after.
  double loss_rtn = 0.0, loss_gptq = 0.0;
  double damp_used = 0.0;          // relative damping that made H positive definite
  int dead_columns = 0;            // columns with H[i][i] == 0 (never seen a non-zero input)
};

// H: [n_in, n_in] row-major, symmetric (2 X^T X summed over tokens, in double).
// Dead columns (zero diagonal) get H[i][i] = 1 and W[:, i] = 0, as published.
// When the Cholesky factorisation fails, damping is multiplied by 10 and
// retried (logged), up to damp 1.0; then lowbit::Error. Never returns NaNs:
// a non-finite weight is an error naming the column.
GptqResult gptq_quantize(const float* W, int64_t n_out, int64_t n_in, const double* H, const GptqTarget& target,
                         const GptqOptions& opts);

// Round-to-nearest on the same target grid (RTN baseline): for formats, quantize_row_ref
// with `importance` ([n_in] or nullptr); for ints, rtn_int_groups.
GptqResult rtn_quantize(const float* W, int64_t n_out, int64_t n_in, const GptqTarget& target, const float* importance);

}  // namespace lowbit
