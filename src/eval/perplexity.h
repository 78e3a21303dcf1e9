// Perplexity under two named protocols, so numbers can be compared with the
// tools that publish them.
//
//  llama.cpp: windows of n_ctx tokens cut from the BOS-prefixed token stream;
//             each window's first token is replaced by BOS; only the second
//             half is scored (positions n_ctx/2 .. n_ctx-2 predicting the
//             next token), as llama.cpp's `llama-perplexity` does.
//  gptq:      non-overlapping windows of n_ctx tokens of the same stream, every
//             next-token prediction in the window scored (n_ctx-1 per window),
//             as the GPTQ / AWQ papers' evaluation scripts do.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/model.h"

namespace lowbit {

enum class PplProtocol { LlamaCpp, Gptq };
PplProtocol parse_ppl_protocol(const std::string& name);  // "llama.cpp" | "gptq"
const char* ppl_protocol_name(PplProtocol p);

struct PplOptions {
  int n_ctx = 512;
  int max_chunks = -1;  // < 0: all complete windows
  PplProtocol protocol = PplProtocol::LlamaCpp;
  int n_threads = 0;
};

struct PplResult {
  double ppl = 0;
  double ppl_stderr = 0;           // ppl * stddev(nll) / sqrt(n_scored - 1), as llama.cpp reports
  double mean_nll = 0;
  int64_t n_text_tokens = 0;       // tokens in the whole text (incl. BOS)
  int n_chunks = 0;
  int64_t n_scored = 0;            // predictions scored
  std::vector<double> running_ppl; // after each chunk
  double seconds = 0;
};

// Scores `text` (already read) with `model`'s tokenizer. Throws lowbit::Error
// when the text is shorter than two windows (llama.cpp) or one window (gptq).
// `on_chunk(i, n, running_ppl)` is called after each window.
PplResult perplexity(const Model& model, const std::string& text, const PplOptions& opts,
                     const std::function<void(int, int, double)>& on_chunk = {});

// Same, over pre-tokenized ids (BOS included when the protocol wants it).
PplResult perplexity_tokens(const Model& model, const std::vector<int32_t>& tokens, const PplOptions& opts,
                            const std::function<void(int, int, double)>& on_chunk = {});

// log p(target) under softmax(logits[0..n_vocab)), computed in double.
double log_softmax_at(const float* logits, int n_vocab, int target);

}  // namespace lowbit
