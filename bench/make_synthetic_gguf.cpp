// make_synthetic_gguf: writes a random-weight Llama as an f16 GGUF, so that
// `lowbit bench`, `lowbit quantize` and llama.cpp (llama-bench) can be timed at
// 7B-class layer shapes on a machine without a 7B checkpoint. Not part of the
// product CLI. Defaults: hidden 4096, FFN 11008, 32 heads, 32 KV heads,
// 5 layers (~1.01B parameters, ~2 GB), stories260K's 512-token vocab.
//
//   make_synthetic_gguf OUT.gguf [--layers N] [--hidden 4096] [--ffn 11008]
//                       [--heads 32] [--kv-heads 32] [--seed S] [--std 0.02] [--vocab GGUF]
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "lowbit/error.h"
#include "model/synthetic.h"

int main(int argc, char** argv) {
  std::string out;
  int layers = 5, hidden = 4096, ffn = 11008, heads = 32, kv_heads = 32;
  lowbit::SyntheticGgufOptions o;
  o.vocab_gguf = std::string(LOWBIT_SHARED_DIR) + "/models/stories260K/stories260K-f32.gguf";

  CLI::App app{"Write a synthetic f16 Llama GGUF with random weights (for benchmarks)"};
  app.add_option("out", out, "output GGUF path")->required();
  app.add_option("--layers", layers, "decoder layers")->capture_default_str();
  app.add_option("--hidden", hidden, "hidden size")->capture_default_str();
  app.add_option("--ffn", ffn, "FFN width (11008: Llama-2 7B, 14336: Llama-3 8B / Mistral 7B)")->capture_default_str();
  app.add_option("--heads", heads, "attention heads")->capture_default_str();
  app.add_option("--kv-heads", kv_heads, "KV heads (8: GQA as in Llama-3 8B)")->capture_default_str();
  app.add_option("--seed", o.seed, "random seed (same seed, same bytes)")->capture_default_str();
  app.add_option("--std", o.weight_std, "standard deviation of the weights")->capture_default_str();
  app.add_option("--vocab", o.vocab_gguf, "GGUF whose tokenizer is copied (its vocab size is used)")
      ->capture_default_str();
  app.add_option("-t,--threads", o.threads, "threads (default: all cores)");
  CLI11_PARSE(app, argc, argv);

  try {
    o.config = lowbit::synthetic_llama_config(layers, hidden, ffn, heads, kv_heads, 0);
    const auto t0 = std::chrono::steady_clock::now();
    const int64_t n = lowbit::write_synthetic_gguf(out, o);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%s: %lld parameters (%.3f B), %d layers, hidden %d, ffn %d, heads %d/%d, seed %llu, "
                "%.2f GiB, written in %.1f s\n",
                out.c_str(), (long long)n, double(n) / 1e9, layers, hidden, ffn, heads, kv_heads,
                (unsigned long long)o.seed, double(std::filesystem::file_size(out)) / double(1 << 30), s);
  } catch (const lowbit::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
