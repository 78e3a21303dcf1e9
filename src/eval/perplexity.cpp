#include "eval/perplexity.h"

#include <chrono>
#include <cmath>

#include <fmt/format.h>

#include "lowbit/error.h"
#include "model/forward.h"

namespace lowbit {

PplProtocol parse_ppl_protocol(const std::string& name) {
  if (name == "llama.cpp" || name == "llamacpp") return PplProtocol::LlamaCpp;
  if (name == "gptq") return PplProtocol::Gptq;
  fail("--protocol", "unknown perplexity protocol '" + name + "'", "use llama.cpp or gptq");
}

const char* ppl_protocol_name(PplProtocol p) { return p == PplProtocol::LlamaCpp ? "llama.cpp" : "gptq"; }

double log_softmax_at(const float* logits, int n_vocab, int target) {
  float max_logit = logits[0];
  for (int i = 1; i < n_vocab; ++i) max_logit = std::max(max_logit, logits[i]);
  double sum = 0;
  for (int i = 0; i < n_vocab; ++i) sum += std::exp(double(logits[i]) - max_logit);
  return double(logits[target]) - max_logit - std::log(sum);
}

PplResult perplexity(const Model& model, const std::string& text, const PplOptions& opts,
                     const std::function<void(int, int, double)>& on_chunk) {
  // Both protocols tokenize the whole text at once, BOS first when the
  // tokenizer adds one (llama.cpp: common_tokenize(ctx, text, add_bos); GPTQ:
  // tokenizer(text)). GPT-2 adds none.
  std::vector<int32_t> tokens = model.tok().encode(text, model.tok().adds_bos());
  return perplexity_tokens(model, tokens, opts, on_chunk);
}

PplResult perplexity_tokens(const Model& model, const std::vector<int32_t>& tokens_in, const PplOptions& opts,
                            const std::function<void(int, int, double)>& on_chunk) {
  const int n_ctx = opts.n_ctx;
  if (n_ctx < 4) fail("-c", fmt::format("context {} is too small", n_ctx), "use at least 4 tokens");
  const bool llama = opts.protocol == PplProtocol::LlamaCpp;
  const int64_t n_tokens = int64_t(tokens_in.size());
  const int64_t min_tokens = llama ? 2 * int64_t(n_ctx) : int64_t(n_ctx);
  if (n_tokens < min_tokens)
    fail(model.path, fmt::format("the text has {} tokens, the {} protocol needs at least {} for -c {}", n_tokens,
                                 ppl_protocol_name(opts.protocol), min_tokens, n_ctx),
         "use a longer text or a smaller -c");
  int n_chunks = int(n_tokens / n_ctx);
  if (opts.max_chunks >= 0) n_chunks = std::min(n_chunks, opts.max_chunks);

  const int n_vocab = model.config.n_vocab;
  const int first = llama ? n_ctx / 2 : 0;  // first scored position inside a window
  // llama.cpp puts BOS at the start of every window, when the vocab adds BOS at all.
  const int32_t bos = model.tokenizer ? (model.tokenizer->adds_bos() ? model.tokenizer->bos_id() : -1)
                                      : model.config.bos_id;

  Runner runner(model, n_ctx, opts.n_threads);
  std::vector<int32_t> window(static_cast<size_t>(n_ctx));
  std::vector<float> logits;  // [n_ctx, n_vocab]
  double nll = 0, nll2 = 0;
  int64_t count = 0;
  PplResult r;
  auto t0 = std::chrono::steady_clock::now();
  for (int c = 0; c < n_chunks; ++c) {
    const int64_t start = int64_t(c) * n_ctx;
    std::copy(tokens_in.begin() + start, tokens_in.begin() + start + n_ctx, window.begin());
    if (llama && bos >= 0) window[0] = bos;
    runner.forward(window, 0, /*all_logits=*/true, logits);
    for (int j = first; j < n_ctx - 1; ++j) {
      const double lp = log_softmax_at(&logits[size_t(j) * n_vocab], n_vocab, tokens_in[size_t(start + j + 1)]);
      nll -= lp;
      nll2 += lp * lp;
      ++count;
    }
    r.running_ppl.push_back(std::exp(nll / double(count)));
    if (on_chunk) on_chunk(c + 1, n_chunks, r.running_ppl.back());
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.n_text_tokens = n_tokens;
  r.n_chunks = n_chunks;
  r.n_scored = count;
  r.mean_nll = nll / double(count);
  r.ppl = std::exp(r.mean_nll);
  // Uncertainty as llama.cpp reports it: the standard error of the mean NLL,
  // propagated through exp (d ppl = ppl * d nll).
  double var = nll2 / double(count) - r.mean_nll * r.mean_nll;
  r.ppl_stderr = (var > 0 && count > 1) ? r.ppl * std::sqrt(var / double(count - 1)) : 0.0;
  return r;
}

}  // namespace lowbit
