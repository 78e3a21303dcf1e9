// lowbit estimate --params 8e9 --bits 16
// lowbit estimate MODEL [--type T] [--ctx N --batch B]
#include <algorithm>

#include <fmt/format.h>

#include "commands.h"
#include "common.h"
#include "eval/memory_estimate.h"
#include "lowbit/error.h"

namespace lowbit::cli {

void register_estimate(CLI::App& app) {
  auto* cmd = app.add_subcommand("estimate", "memory needed by a model: weights, KV cache, total");
  static std::string model_path, tokenizer, type, kv_type = "f16";
  static double params = 0, bits = 16;
  static int ctx = 0, batch = 1;
  cmd->add_option("model", model_path, "model to measure exactly (GGUF, HF folder, llama2.c .bin)");
  cmd->add_option("--params", params, "number of parameters (e.g. 8e9), without a model");
  cmd->add_option("--bits", bits, "bits per weight with --params")->capture_default_str();
  cmd->add_option("--type", type, "store every matrix as this type (f32, f16, bf16)");
  cmd->add_option("--ctx", ctx, "context length for the KV cache")->capture_default_str();
  cmd->add_option("--batch", batch, "sequences in parallel for the KV cache")->capture_default_str();
  cmd->add_option("--kv-type", kv_type, "KV cache element type (f16, f32)")->capture_default_str();
  cmd->callback([] {
    if (model_path.empty()) {
      if (params <= 0) fail("estimate", "give a MODEL or --params N", "e.g. lowbit estimate --params 8e9 --bits 4");
      double b = weight_bytes(params, bits);
      fmt::print("{:g} parameters at {:g} bits per weight: {} ({:.0f} bytes)\n", params, bits, format_bytes(b), b);
      return;
    }
    LoadOptions lo;
    auto m = load_model(model_path, lo);
    MemoryEstimate e = estimate_memory(*m, type, ctx, batch, kv_type);
    size_t w = 6;
    for (const auto& t : e.tensors) w = std::max(w, t.name.size());
    fmt::print("{:<{}}  {:<14}  {:<5}  {:>12}\n", "tensor", w, "shape", "type", "bytes");
    std::vector<TensorBytes> rows = e.tensors;
    for (const auto& t : rows) {
      TensorView v;
      v.shape = t.shape;
      fmt::print("{:<{}}  {:<14}  {:<5}  {:>12}\n", t.name, w, v.shape_str(), t.type, t.bytes);
    }
    fmt::print("\nweights   {} ({} parameters, {:.2f} bits per weight)\n", format_bytes(double(e.weight_bytes)),
               e.n_params, e.bits_per_weight);
    fmt::print("KV cache  {} (ctx {}, batch {}, {} layers x 2 x {} x {})\n", format_bytes(double(e.kv_cache_bytes)),
               ctx, batch, m->config.n_layers, m->config.kv_dim(), kv_type);
    fmt::print("total     {}\n", format_bytes(double(e.total_bytes)));
  });
}

}  // namespace lowbit::cli
