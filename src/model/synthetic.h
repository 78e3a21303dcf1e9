// Models with random weights and real shapes, for benchmarks at 7B-class
// sizes and for tests of architectures with no bundled checkpoint. Speed does
// not depend on the values; the weights are scaled so activations stay finite.
#pragma once
#include <cstdint>
#include <memory>

#include "model/model.h"

namespace lowbit {

// Builds every tensor `config` needs (Llama or GPT-2 canonical names) as f32
// buffers owned by the model, filled from a seeded generator (deterministic).
std::unique_ptr<Model> make_synthetic_model(const ModelConfig& config, uint64_t seed);

// A 7B-class Llama shape (hidden 4096, FFN 11008, 32 heads, vocab 32000) with `n_layers` layers.
ModelConfig llama7b_shaped_config(int n_layers);

}  // namespace lowbit
