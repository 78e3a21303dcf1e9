// Text generation: the prompt in one batched forward, then one token at a time
// through the KV cache, until EOS, n_new tokens, the context end, or the
// callback says stop.
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "io/tokenizer.h"
#include "model/forward.h"
#include "runtime/sampler.h"

namespace lowbit {

// Called for every generated token with its id and text (empty when no
// tokenizer was given). Return false to stop generating.
using TokenCallback = std::function<bool(int32_t id, const std::string& piece)>;

struct GenerateResult {
  std::vector<int32_t> tokens;   // generated ids (the stop token excluded)
  int n_prompt = 0;              // prompt tokens processed
  int n_decode = 0;              // single-token forward passes timed in decode_seconds
  double prompt_seconds = 0.0;   // the prompt's batched forward
  double decode_seconds = 0.0;   // all single-token forwards
  bool stopped_at_eos = false;   // the model produced EOS (or BOS: a new document)
  bool hit_context_end = false;  // stopped because the KV cache was full

  double prompt_tokens_per_s() const { return prompt_seconds > 0 ? n_prompt / prompt_seconds : 0.0; }
  double gen_tokens_per_s() const { return decode_seconds > 0 ? n_decode / decode_seconds : 0.0; }
};

// Starts from an empty KV cache (position 0). `prompt_ids` must not be empty
// (put BOS first to generate from nothing). Generation stops at the model's EOS,
// and also at BOS, which a model emits to start a new document (llama2.c story
// models end a story this way); neither is passed to the callback.
GenerateResult generate(Runner& runner, const Tokenizer* tokenizer, std::span<const int32_t> prompt_ids, int n_new,
                        Sampler& sampler, const TokenCallback& on_token = {});

inline GenerateResult generate(Runner& runner, const Tokenizer& tokenizer, std::span<const int32_t> prompt_ids,
                               int n_new, Sampler& sampler, const TokenCallback& on_token = {}) {
  return generate(runner, &tokenizer, prompt_ids, n_new, sampler, on_token);
}

}  // namespace lowbit
