// KL divergence of a quantized model's next-token distribution from its base
// model's, with the figures llama.cpp's `llama-perplexity --kl-divergence`
// prints: KLD (mean, median, 99th percentile, max), top-1 agreement, the
// change of the correct token's probability (mean and RMS), and perplexity of
// both models with their ratio.
//
// Positions are those the perplexity protocol scores (eval/perplexity.h): the
// same windows, BOS handling and scored range, so the base PPL printed here
// equals `lowbit ppl` on the same text and context.
//
// Definitions, per scored position t with base distribution P and quantized
// distribution Q over the vocabulary (log-softmax computed in double):
//   KLD_t   = sum_i P_i (log P_i - log Q_i)
//   top-1   = argmax P == argmax Q (ties: lowest token id)
//   dp_t    = Q(correct) - P(correct)
//   nll_t   = -log P(correct)  (resp. Q)
// Aggregates (n = scored positions):
//   PPL     = exp(mean nll) +/- PPL * sd(nll) / sqrt(n-1)             (llama.cpp's)
//   ratio   = PPL_q / PPL_b = exp(mean(nll_q - nll_b)), uncertainty
//             ratio * sd(nll_q - nll_b) / sqrt(n-1)   (the correlation of the
//             two models' nll is accounted for by taking the per-position diff)
//   KLD     = mean +/- sd/sqrt(n-1); median, 99th percentile (linear
//             interpolation between sorted values, as llama.cpp), max
//   top-1   = fraction f +/- sqrt(f(1-f)/(n-1))
//   dp      = mean +/- sd/sqrt(n-1); RMS = sqrt(mean dp^2), its uncertainty
//             0.5/RMS * sd(dp^2)/sqrt(n-1) (llama.cpp's)
//
// Saved base logits ("--save-base FILE"): running the base model once and
// storing what comparisons need lets many candidates be compared without
// rerunning it. Only the top-k logits of each position are kept, so the KL of
// a saved base is computed over a coarser partition of the vocabulary: the k
// base top tokens, each its own bucket, and one "rest" bucket with the
// remaining mass (P_rest = 1 - sum_topk P_i, Q_rest = 1 - sum_topk Q_i):
//   KLD_t^k = sum_{i in topk} P_i log(P_i/Q_i) + P_rest log(P_rest/Q_rest).
// By the data-processing (log-sum) inequality this is a lower bound of the
// true KLD_t, and equal to it when k >= n_vocab. Everything else (top-1,
// P(correct), nll, PPL, dp) is exact: the file stores the target token, its
// logit and the log-sum-exp of every position, so those figures are
// bit-identical to a live run.
//
// File format (little-endian), version 1:
//   offset  size  field
//   0       8     magic "LBKLD1\0\0"
//   8       4     u32 version (1)
//   12      4     u32 n_vocab           logit width of the base model
//   16      4     u32 n_ctx
//   20      4     u32 protocol          0 = llama.cpp, 1 = gptq
//   24      4     u32 k                 top logits per position (1..n_vocab)
//   28      4     u32 n_chunks          windows scored
//   32      8     u64 n_positions       scored positions (n_chunks * scored per window)
//   40      8     u64 n_text_tokens     tokens of the whole text (BOS included)
//   48      64    text sha256, lowercase hex ASCII
//   112     4     u32 L, then L bytes: the base model as given (UTF-8, L <= 4096)
//   then n_positions records of 24 + 8k bytes each:
//           u32 target token, f32 base logit of the target,
//           f64 log-sum-exp of the base logits (max + log sum exp(l - max)),
//           f64 P_rest (base probability of all tokens outside the top k,
//               summed directly over the full logits),
//           k x (u32 token id, f32 logit), logits descending (ties: lower id first).
//   The file ends right after the last record; anything else is an error.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "eval/perplexity.h"
#include "model/model.h"

namespace lowbit {

struct KldOptions {
  int n_ctx = 512;
  int max_chunks = -1;  // < 0: all complete windows (with a saved base: all it holds)
  PplProtocol protocol = PplProtocol::LlamaCpp;
  int n_threads = 0;
  int top_k = 32;       // logits kept per position in a saved base
};

// The base model's side of a comparison, as saved to / loaded from a file.
struct KldBase {
  uint32_t n_vocab = 0;
  int n_ctx = 0;
  PplProtocol protocol = PplProtocol::LlamaCpp;
  int k = 0;
  int n_chunks = 0;
  int64_t n_text_tokens = 0;
  std::string text_sha256;  // lowercase hex
  std::string base_model;   // path the base was loaded from
  // One entry per scored position.
  std::vector<uint32_t> target;
  std::vector<float> target_logit;
  std::vector<double> lse;
  std::vector<double> p_rest;
  std::vector<uint32_t> top_id;     // [n_positions, k]
  std::vector<float> top_logit;     // [n_positions, k]
  int64_t n_positions() const { return int64_t(target.size()); }
};

// Writes `base` to `path` (via PATH.tmp + rename). Throws lowbit::Error on I/O failure.
void write_kld_base(const std::string& path, const KldBase& base);
// Reads and validates a saved base. Throws lowbit::Error naming the file and
// the field for a bad magic/version, truncated or oversized file, or values
// out of range; never reads past the file.
KldBase read_kld_base(const std::string& path);

struct KldResult {
  int64_t n_text_tokens = 0;
  int n_chunks = 0;
  int64_t n_scored = 0;
  bool kld_from_topk = false;  // KLD is the top-k lower bound (saved base)
  int top_k = 0;               // k of the saved base when kld_from_topk
  double ppl_base = 0, ppl_base_err = 0;
  double ppl_quant = 0, ppl_quant_err = 0;
  double ppl_ratio = 0, ppl_ratio_err = 0;  // PPL_q / PPL_b
  double kld_mean = 0, kld_err = 0, kld_median = 0, kld_p99 = 0, kld_max = 0;
  double top1 = 0, top1_err = 0;            // fraction in [0, 1]
  double dp_mean = 0, dp_err = 0, dp_rms = 0, dp_rms_err = 0;
  std::vector<double> kld;                  // per scored position, in order
  double seconds = 0;
};

// Progress: on_chunk(i, n) after each window.
using KldProgress = std::function<void(int, int)>;

// Live comparison: both models run over the same windows of `text` (tokenized
// with the base model's tokenizer). Throws lowbit::Error when the two models'
// vocabulary sizes differ (naming both). When `save` is not null it is filled
// with the base side (top `opts.top_k` logits) for write_kld_base.
KldResult kld(const Model& base, const Model& quant, const std::string& text, const KldOptions& opts,
              KldBase* save = nullptr, const KldProgress& on_chunk = {});

// Base side only (for --save-base without a model to compare).
KldBase kld_base_logits(const Model& base, const std::string& text, const KldOptions& opts,
                        const KldProgress& on_chunk = {});

// Comparison against a saved base. Throws lowbit::Error naming the field when
// the text's sha256, the context, the protocol, the vocabulary size or the
// scored tokens differ from what the base was saved with. `opts.n_ctx` <= 0
// takes the saved context; `opts.max_chunks` may select a prefix of the saved
// windows. `base_path` is only used in error messages.
KldResult kld_from_saved(const KldBase& base, const Model& quant, const std::string& text, const KldOptions& opts,
                         const std::string& base_path = "base logits", const KldProgress& on_chunk = {});

}  // namespace lowbit
