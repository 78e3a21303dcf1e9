#include "eval/memory_estimate.h"

#include <fmt/format.h>

#include "lowbit/error.h"

namespace lowbit {

double weight_bytes(double n_params, double bits_per_weight) { return n_params * bits_per_weight / 8.0; }

namespace {
size_t type_bytes(const std::string& type, const std::string& flag) {
  if (type == "f32") return 4;
  if (type == "f16" || type == "bf16") return 2;
  fail(flag, "unknown type '" + type + "'", "use f32, f16 or bf16 (quantized types come with the formats table)");
}
}  // namespace

MemoryEstimate estimate_memory(const Model& model, const std::string& type, int n_ctx, int batch,
                               const std::string& kv_type) {
  if (n_ctx < 0 || batch < 1) fail("--ctx/--batch", "must be non-negative / positive");
  if (!type.empty()) type_bytes(type, "--type");
  MemoryEstimate e;
  for (const auto& [name, t] : model.weights) {
    TensorBytes tb{name, t.shape, t.type_name(), t.nbytes};
    if (!type.empty() && t.shape.size() >= 2) {
      tb.type = type;
      tb.bytes = uint64_t(t.numel()) * type_bytes(type, "--type");
    } else if (!type.empty()) {
      tb.type = "f32";
      tb.bytes = uint64_t(t.numel()) * 4;
    }
    e.weight_bytes += tb.bytes;
    e.n_params += t.numel();
    e.tensors.push_back(std::move(tb));
  }
  const ModelConfig& c = model.config;
  e.kv_cache_bytes = 2ull * uint64_t(c.n_layers) * uint64_t(n_ctx) * uint64_t(batch) * uint64_t(c.kv_dim()) *
                     type_bytes(kv_type, "--kv-type");
  e.total_bytes = e.weight_bytes + e.kv_cache_bytes;
  e.bits_per_weight = e.n_params ? 8.0 * double(e.weight_bytes) / double(e.n_params) : 0;
  return e;
}

std::string format_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{:.0f} B", bytes) : fmt::format("{:.2f} {}", bytes, units[u]);
}

}  // namespace lowbit
