// Models with random weights and real shapes, for benchmarks at 7B-class
// sizes and for tests of architectures with no bundled checkpoint. Speed does
// not depend on the values; the weights are scaled so activations stay finite.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "model/model.h"

namespace lowbit {

// Builds every tensor `config` needs (Llama or GPT-2 canonical names) as f32
// buffers owned by the model, filled from a seeded generator (deterministic).
std::unique_ptr<Model> make_synthetic_model(const ModelConfig& config, uint64_t seed);

// A 7B-class Llama shape (hidden 4096, FFN 11008, 32 heads, vocab 32000) with `n_layers` layers.
ModelConfig llama7b_shaped_config(int n_layers);

// A Llama of any shape: head_dim = dim / n_heads, context 4096, RoPE base 10000.
ModelConfig synthetic_llama_config(int n_layers, int dim, int hidden_dim, int n_heads, int n_kv_heads, int n_vocab);

struct SyntheticGgufOptions {
  ModelConfig config;          // a Llama; n_vocab is replaced by the vocab file's size when one is given
  uint64_t seed = 1;
  float weight_std = 0.02f;    // linear weights and embeddings ~ N(0, weight_std); norms are exactly 1.0
  std::string vocab_gguf;      // GGUF whose tokenizer.* keys are copied (e.g. stories260K's 512 tokens); "" = none
  int threads = 0;             // <= 0: all cores (the output does not depend on it)
};

// Writes a Llama GGUF that lowbit and llama.cpp load: linear weights and
// embeddings f16 (general.file_type 1 = MOSTLY_F16), norms f32. Streamed
// through GgufWriter, one tensor in memory at a time. Every row has its own
// seeded generator, so the file is byte-identical for the same options and
// any thread count. Returns the number of parameters written.
int64_t write_synthetic_gguf(const std::string& path, const SyntheticGgufOptions& opts);

}  // namespace lowbit
