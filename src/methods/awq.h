// AWQ (Lin, Tang, Tang, Yang, Dang, Gan, Han 2023, "AWQ: Activation-aware
// Weight Quantization for LLM Compression and Acceleration"), as its reference
// implementation (llm-awq auto_scale / auto_clip) runs it, per decoder layer:
//
//  1. scale search (§3.2): for each group of linears sharing an input X
//     — {q,k,v} after attn_norm (loss: the attention block's output),
//       {o} after v (only when v and o have the same shape, i.e. no GQA),
//       {gate,up} after ffn_norm (loss: the MLP block's output),
//       {down} after up (loss: down's output) —
//     s = mean|x|^alpha per input channel, normalised by sqrt(max(s) min(s)),
//     for alpha on a grid of n_grid points in [0, 1); the weights become
//     Q(W diag(s)) diag(s)^-1 and the alpha with the least squared error of
//     the block output wins. The winner is folded: W <- W diag(s) and the
//     preceding norm's weight (or the preceding linear's output rows) / s, so
//     the model is mathematically unchanged before rounding.
//  2. clipping search (auto_clip): for every linear except q and k, per output
//     row and input group, the clamp max|w| * (1 - i / n_grid), i < max_shrink * n_grid,
//     minimising the group's output error on a subsample of the inputs.
//  3. the clipped, scaled weights are rounded to nearest on the target grid.
// Llama family only (GPT-2's fused qkv and LayerNorm bias are not handled).
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "methods/gptq.h"

namespace lowbit {

class LayerPipeline;

// The grid a linear is quantized to; nullopt: left alone by the method.
using TargetOf = std::function<std::optional<GptqTarget>(const std::string& name)>;

struct AwqOptions {
  int n_grid = 20;             // scale-search points (alpha = i / n_grid)
  bool clip = true;            // run the clipping search
  double max_shrink = 0.5;     // clipping: largest fraction of max|w| removed
  int clip_tokens = 512;       // clipping: input tokens subsampled (llm-awq: n_sample_token 512)
  int threads = 0;
};

struct AwqGroupReport {
  std::vector<std::string> linears;
  double alpha = 0.0;             // chosen exponent (0: scales of 1, i.e. plain rounding)
  double err_rtn = 0.0;           // mean squared block-output error at alpha = 0
  double err_awq = 0.0;           // ... with the chosen scales
};

// Round-to-nearest fake quantization of W [n_out, n_in] on a target grid:
// the dequantized values (int groups: int_group_params; formats: quantize_row_ref + dequantize_row).
std::vector<float> fake_quantize(const float* W, int64_t n_out, int64_t n_in, const GptqTarget& t, int threads);

// Steps 1 and 2 above for decoder layer l, from the pipeline's current inputs:
// the layer's weights in the pipeline's model are replaced by the scaled and
// clipped ones (not yet rounded). Linears whose target is nullopt keep their
// values but still take part in folding when they share an input. Returns the
// layer's fp outputs computed before any change (what llm-awq feeds the next layer).
std::vector<float> awq_layer(LayerPipeline& p, int l, const AwqOptions& o, const TargetOf& target,
                             std::vector<AwqGroupReport>& reports);

}  // namespace lowbit
