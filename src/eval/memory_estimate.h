// How much memory a model needs: weights (per tensor, exact), KV cache, total.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/model.h"

namespace lowbit {

// Bytes of `n_params` weights stored at `bits_per_weight` (8e9 at 16 bits = 14.90 GiB).
double weight_bytes(double n_params, double bits_per_weight);

struct TensorBytes {
  std::string name;
  std::vector<int64_t> shape;
  std::string type;  // storage type after conversion
  uint64_t bytes = 0;
};

struct MemoryEstimate {
  std::vector<TensorBytes> tensors;
  uint64_t weight_bytes = 0;
  uint64_t kv_cache_bytes = 0;  // K and V for every layer, n_ctx * batch positions
  uint64_t total_bytes = 0;
  int64_t n_params = 0;
  double bits_per_weight = 0;
};

// `type`: "" keeps each tensor's stored type; "f32" / "f16" / "bf16" converts
// every 2-D weight (norms and biases stay f32, as llama.cpp keeps them).
// `kv_type`: "f16" (llama.cpp's default) or "f32".
MemoryEstimate estimate_memory(const Model& model, const std::string& type, int n_ctx, int batch,
                               const std::string& kv_type = "f16");

std::string format_bytes(double bytes);  // "14.90 GiB", "253.0 KiB"

}  // namespace lowbit
