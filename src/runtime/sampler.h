// Picks the next token from a row of logits: greedy (temperature 0) or
// temperature + top-k + top-p (nucleus) sampling from a seeded generator.
// The same seed and logits give the same tokens on every machine: the uniform
// draw is made from the raw 64-bit output of std::mt19937_64 (whose sequence
// the standard fixes), not through a library-defined distribution.
#pragma once
#include <cstdint>
#include <random>
#include <span>
#include <utility>
#include <vector>

namespace lowbit {

struct SamplerParams {
  float temperature = 0.8f;  // 0: greedy argmax (top_k, top_p, seed unused)
  int top_k = 40;            // keep the k most likely tokens; <= 0: all
  float top_p = 0.95f;       // keep the smallest set whose probability reaches top_p; >= 1: all
  uint64_t seed = 42;
};

class Sampler {
 public:
  explicit Sampler(SamplerParams params = {});

  // Index of the chosen token in `logits` [n_vocab]. Throws lowbit::Error on an empty row.
  int32_t sample(std::span<const float> logits);

  const SamplerParams& params() const { return params_; }

 private:
  SamplerParams params_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> candidates_;  // (logit or prob, id); reused, no per-token allocation
};

// Index of the largest logit (the first one on ties).
int32_t argmax(std::span<const float> logits);

}  // namespace lowbit
