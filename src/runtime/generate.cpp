#include "runtime/generate.h"

#include <algorithm>
#include <chrono>

#include "lowbit/error.h"

namespace lowbit {

namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

GenerateResult generate(Runner& runner, const Tokenizer* tokenizer, std::span<const int32_t> prompt_ids, int n_new,
                        Sampler& sampler, const TokenCallback& on_token) {
  const Model& model = runner.model();
  if (prompt_ids.empty())
    fail(model.path, "generation needs at least one prompt token", "start the prompt with BOS");
  const ModelConfig& c = model.config;
  const int32_t eos = tokenizer && tokenizer->eos_id() >= 0 ? tokenizer->eos_id() : c.eos_id;
  const int32_t bos = tokenizer && tokenizer->bos_id() >= 0 ? tokenizer->bos_id() : c.bos_id;

  GenerateResult r;
  r.n_prompt = int(prompt_ids.size());
  r.tokens.reserve(size_t(std::max(n_new, 0)));
  std::vector<float> logits;  // [n_vocab], reused by every forward

  auto t0 = std::chrono::steady_clock::now();
  runner.forward(prompt_ids, 0, /*all_logits=*/false, logits);
  r.prompt_seconds = seconds_since(t0);

  int pos = r.n_prompt;
  int32_t prev = prompt_ids.back();
  for (int i = 0; i < n_new; ++i) {
    const int32_t next = sampler.sample(logits);
    if (next == eos || next == bos) {
      r.stopped_at_eos = true;
      break;
    }
    r.tokens.push_back(next);
    if (on_token && !on_token(next, tokenizer ? tokenizer->decode_token(next, prev) : std::string()))
      break;
    prev = next;
    if (i + 1 == n_new) break;  // no forward needed for a token nobody will sample from
    if (pos >= runner.n_ctx()) {
      r.hit_context_end = true;
      break;
    }
    const int32_t one[1] = {next};
    t0 = std::chrono::steady_clock::now();
    runner.forward(one, pos, /*all_logits=*/false, logits);
    r.decode_seconds += seconds_since(t0);
    ++r.n_decode;
    ++pos;
  }
  return r;
}

}  // namespace lowbit
