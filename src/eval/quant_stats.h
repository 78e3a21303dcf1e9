// Per-tensor error statistics of a quantized model against its source model
// (lowbit quant-stats): which tensors lost the most in quantization.
//
// Tensors are matched by canonical name (Model::weights); both are
// dequantized row by row with to_f32 and compared in double precision, so
// neither model is ever held whole in f32. With W the source tensor and Q the
// quantized one (as f32), per tensor:
//   rel RMSE = ||Q - W|| / ||W||       (0 when both are zero, inf when only W is)
//   max err  = max |Q - W|
//   cosine   = <Q, W> / (||Q|| ||W||)  (1 when both are zero, 0 when only one is)
//   SNR dB   = -20 log10(rel RMSE)     (inf when rel RMSE is 0)
// Summaries (per layer blk.N, the tensors outside layers, the whole model)
// give the numel-weighted mean rel RMSE and the worst tensor.
//
// RoPE row order: a Hugging Face Llama (rope_style NeoX) and a llama2.c / GGUF
// `llama` one (Interleaved) store the rows of attn_q / attn_k (weights and
// biases) in different orders. When the two models' rope_style differ, the
// quantized model's rows are compared with the source's rows they came from.
//
// Deterministic: rows are cut into fixed chunks (independent of the thread
// count) whose double sums are combined in order.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/model.h"

namespace lowbit {

struct QuantStatsOptions {
  int layer = -1;     // >= 0: only blk.<layer>.* tensors
  int n_threads = 0;  // <= 0: all cores
};

struct TensorErrorStats {
  std::string name;
  std::vector<int64_t> shape;  // row-major, outermost first
  std::string source_type;     // "f32", "q8_0", ...
  std::string quant_type;
  int64_t numel = 0;
  int layer = -1;              // N of blk.N, -1 outside layers
  bool rows_permuted = false;  // q/k rows matched across RoPE layouts
  double rel_rmse = 0;
  double max_abs_err = 0;
  double cosine = 1;
  double snr_db = 0;           // +inf when rel_rmse == 0
  std::string shape_str() const;  // "[172, 64]"
};

// A group of tensors: one layer, the tensors outside layers, or the model.
struct ErrorSummary {
  int layer = -1;            // N of blk.N; -1 for non-layer / whole model
  int n_tensors = 0;
  int64_t numel = 0;
  double mean_rel_rmse = 0;  // numel-weighted mean of the tensors' rel RMSE
  double min_cosine = 1;
  std::string worst_tensor;  // highest rel RMSE ("" when empty)
  double worst_rel_rmse = 0;
};

struct QuantStats {
  std::string source_path, source_format;
  std::string quant_path, quant_format;
  bool rope_permuted = false;                // the models' RoPE layouts differ (q/k rows matched)
  std::vector<TensorErrorStats> tensors;     // model order (see quant_stats_name_less)
  std::vector<ErrorSummary> layers;          // blk.N ascending, only layers with tensors
  ErrorSummary non_layer;                    // token_embd, output_norm, output, ...
  ErrorSummary model;                        // every compared tensor
  std::vector<std::string> only_in_source;   // names present in one model only (model order)
  std::vector<std::string> only_in_quant;
};

// Compares every tensor the two models share. Throws lowbit::Error when the
// architectures differ or a shared tensor's shapes disagree (naming it).
QuantStats quant_stats(const Model& source, const Model& quant, const QuantStatsOptions& o = {},
                       const std::function<void(int, int)>& progress = {});

// Model order: token/position embeddings, blk.0 .. blk.N (numerically), the rest; then by name.
bool quant_stats_name_less(const std::string& a, const std::string& b);

enum class QuantStatsSort { RelRmse, Name };
// RelRmse: descending (ties by model order); Name: model order.
void sort_tensor_stats(std::vector<TensorErrorStats>& t, QuantStatsSort by);

}  // namespace lowbit
