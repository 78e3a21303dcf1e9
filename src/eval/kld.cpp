#include "eval/kld.h"

#include <omp.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <numeric>

#include <fmt/format.h>

#include "core/sha256.h"
#include "lowbit/error.h"
#include "model/forward.h"

namespace lowbit {

static_assert(std::endian::native == std::endian::little, "the saved-base format is little-endian");

namespace {

constexpr char kMagic[8] = {'L', 'B', 'K', 'L', 'D', '1', '\0', '\0'};
constexpr uint32_t kVersion = 1;
constexpr size_t kFixedHeader = 112;  // up to the base-model string length
constexpr uint32_t kMaxPathLen = 4096;

size_t record_bytes(int k) { return 24 + 8 * size_t(k); }

// The perplexity protocol's windows (eval/perplexity.cpp): windows of n_ctx
// tokens of the stream; llama.cpp puts BOS first in each and scores the
// second half, gptq scores every prediction.
struct Windows {
  std::vector<int32_t> tokens;
  int n_ctx = 0;
  int n_chunks = 0;
  int first = 0;     // first scored position in a window
  int32_t bos = -1;  // replaces each window's first token (llama.cpp), -1: none
  int per_window() const { return n_ctx - 1 - first; }
  void fill(int c, std::vector<int32_t>& w) const {
    const int64_t start = int64_t(c) * n_ctx;
    w.assign(tokens.begin() + start, tokens.begin() + start + n_ctx);
    if (bos >= 0) w[0] = bos;
  }
  int32_t target(int c, int j) const { return tokens[size_t(int64_t(c) * n_ctx + j + 1)]; }
};

int scored_per_window(int n_ctx, PplProtocol p) { return p == PplProtocol::LlamaCpp ? n_ctx - 1 - n_ctx / 2 : n_ctx - 1; }

Windows make_windows(const Model& model, std::vector<int32_t> tokens, int n_ctx, PplProtocol protocol,
                     int max_chunks) {
  if (n_ctx < 4) fail("-c", fmt::format("context {} is too small", n_ctx), "use at least 4 tokens");
  const bool llama = protocol == PplProtocol::LlamaCpp;
  const int64_t n_tokens = int64_t(tokens.size());
  const int64_t min_tokens = llama ? 2 * int64_t(n_ctx) : int64_t(n_ctx);
  if (n_tokens < min_tokens)
    fail(model.path, fmt::format("the text has {} tokens, the {} protocol needs at least {} for -c {}", n_tokens,
                                 ppl_protocol_name(protocol), min_tokens, n_ctx),
         "use a longer text or a smaller -c");
  Windows w;
  w.tokens = std::move(tokens);
  w.n_ctx = n_ctx;
  w.n_chunks = int(n_tokens / n_ctx);
  if (max_chunks >= 0) w.n_chunks = std::min(w.n_chunks, max_chunks);
  w.first = llama ? n_ctx / 2 : 0;
  if (llama)
    w.bos = model.tokenizer ? (model.tokenizer->adds_bos() ? model.tokenizer->bos_id() : -1) : model.config.bos_id;
  return w;
}

std::vector<int32_t> tokenize(const Model& m, const std::string& text) {
  return m.tok().encode(text, m.tok().adds_bos());
}

// log-sum-exp in double: max + log(sum exp(l - max)).
double log_sum_exp(const float* l, int n) {
  float mx = l[0];
  for (int i = 1; i < n; ++i) mx = std::max(mx, l[i]);
  double s = 0;
  for (int i = 0; i < n; ++i) s += std::exp(double(l[i]) - mx);
  return double(mx) + std::log(s);
}

int argmax(const float* l, int n) {  // first maximum
  int best = 0;
  for (int i = 1; i < n; ++i)
    if (l[i] > l[best]) best = i;
  return best;
}

// Per-position figures before aggregation.
struct PosStats {
  double kld = 0, nll_b = 0, nll_q = 0, p_b = 0, p_q = 0;
  bool same_top = false;
};

// Quantized side of one position, given the base's exact figures.
void exact_figures(const float* lq, int n_vocab, double lse_q, int32_t target, float target_logit_b, double lse_b,
                   int top_b, PosStats& s) {
  const double lpb = double(target_logit_b) - lse_b;
  const double lpq = double(lq[target]) - lse_q;
  s.nll_b = -lpb;
  s.nll_q = -lpq;
  s.p_b = std::exp(lpb);
  s.p_q = std::exp(lpq);
  s.same_top = argmax(lq, n_vocab) == top_b;
}

// Top-k of `l` (descending, ties: lower id first) into ids/vals, using `idx` as scratch.
void top_k(const float* l, int n_vocab, int k, std::vector<int32_t>& idx, uint32_t* ids, float* vals) {
  idx.resize(size_t(n_vocab));
  std::iota(idx.begin(), idx.end(), 0);
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                    [l](int32_t a, int32_t b) { return l[a] > l[b] || (l[a] == l[b] && a < b); });
  for (int i = 0; i < k; ++i) {
    ids[i] = uint32_t(idx[size_t(i)]);
    vals[i] = l[idx[size_t(i)]];
  }
}

double quantile_sorted(const std::vector<double>& v, double f) {  // llama.cpp's interpolation
  if (v.empty()) return 0;
  if (f <= 0) return v.front();
  if (f >= 1) return v.back();
  double p = f * double(v.size() - 1);
  size_t ip = size_t(p);
  p -= double(ip);
  return (1 - p) * v[ip] + p * v[std::min(ip + 1, v.size() - 1)];
}

// mean and standard error of the mean (sd / sqrt(n-1)), sums in position order.
std::pair<double, double> mean_err(const std::vector<double>& x) {
  const double n = double(x.size());
  double s = 0, s2 = 0;
  for (double v : x) {
    s += v;
    s2 += v * v;
  }
  const double mean = s / n;
  const double var = s2 / n - mean * mean;
  return {mean, (var > 0 && x.size() > 1) ? std::sqrt(var / (n - 1)) : 0.0};
}

KldResult aggregate(const std::vector<PosStats>& st) {
  KldResult r;
  const size_t n = st.size();
  r.n_scored = int64_t(n);
  if (n == 0) return r;
  std::vector<double> nb(n), nq(n), diff(n), dp(n), dp2(n), same(n);
  r.kld.resize(n);
  for (size_t i = 0; i < n; ++i) {
    nb[i] = st[i].nll_b;
    nq[i] = st[i].nll_q;
    diff[i] = st[i].nll_q - st[i].nll_b;
    dp[i] = st[i].p_q - st[i].p_b;
    dp2[i] = dp[i] * dp[i];
    same[i] = st[i].same_top ? 1.0 : 0.0;
    r.kld[i] = st[i].kld;
  }
  auto [mb, eb] = mean_err(nb);
  auto [mq, eq] = mean_err(nq);
  auto [md, ed] = mean_err(diff);
  r.ppl_base = std::exp(mb);
  r.ppl_base_err = r.ppl_base * eb;
  r.ppl_quant = std::exp(mq);
  r.ppl_quant_err = r.ppl_quant * eq;
  r.ppl_ratio = std::exp(md);
  r.ppl_ratio_err = r.ppl_ratio * ed;
  std::tie(r.kld_mean, r.kld_err) = mean_err(r.kld);
  std::vector<double> sorted = r.kld;
  std::sort(sorted.begin(), sorted.end());
  r.kld_median = quantile_sorted(sorted, 0.5);
  r.kld_p99 = quantile_sorted(sorted, 0.99);
  r.kld_max = sorted.back();
  r.top1 = std::accumulate(same.begin(), same.end(), 0.0) / double(n);
  r.top1_err = n > 1 ? std::sqrt(r.top1 * (1 - r.top1) / double(n - 1)) : 0.0;
  std::tie(r.dp_mean, r.dp_err) = mean_err(dp);
  auto [ms, es] = mean_err(dp2);
  r.dp_rms = std::sqrt(ms);
  r.dp_rms_err = r.dp_rms > 0 ? 0.5 * es / r.dp_rms : 0.0;
  return r;
}

int resolve_threads(int n) { return n > 0 ? n : std::max(1, omp_get_max_threads()); }

void check_vocab(const Model& base, const Model& quant) {
  const int vb = base.config.n_vocab, vq = quant.config.n_vocab;
  const int tb = base.tokenizer ? base.tokenizer->n_vocab() : vb;
  const int tq = quant.tokenizer ? quant.tokenizer->n_vocab() : vq;
  if (vb != vq || tb != tq)
    fail(quant.path,
         fmt::format("vocabulary size {} (tokenizer {}) differs from the base model {}'s {} (tokenizer {})", vq, tq,
                     base.path, vb, tb),
         "compare models that share one tokenizer");
}

// Live run (quant may be null: base side only). Fills `save` when not null.
KldResult run_live(const Model& base, const Model* quant, const std::string& text, const KldOptions& opts,
                   KldBase* save, const KldProgress& on_chunk) {
  if (quant) check_vocab(base, *quant);
  const int n_vocab = base.config.n_vocab;
  std::vector<int32_t> tokens = tokenize(base, text);
  if (quant && quant->tokenizer && tokenize(*quant, text) != tokens)
    fail(quant->path, "tokenizes the text differently from the base model " + base.path,
         "compare models that share one tokenizer");
  Windows w = make_windows(base, std::move(tokens), opts.n_ctx, opts.protocol, opts.max_chunks);
  const int pw = w.per_window();
  const int64_t n_pos = int64_t(w.n_chunks) * pw;
  const int k = std::min(std::max(opts.top_k, 1), n_vocab);
  if (save) {
    if (opts.top_k < 1) fail("--top-k", fmt::format("k = {} must be at least 1", opts.top_k));
    *save = KldBase{};
    save->n_vocab = uint32_t(n_vocab);
    save->n_ctx = w.n_ctx;
    save->protocol = opts.protocol;
    save->k = k;
    save->n_chunks = w.n_chunks;
    save->n_text_tokens = int64_t(w.tokens.size());
    save->text_sha256 = sha256_hex(text);
    save->base_model = base.path;
    save->target.resize(size_t(n_pos));
    save->target_logit.resize(size_t(n_pos));
    save->lse.resize(size_t(n_pos));
    save->p_rest.resize(size_t(n_pos));
    save->top_id.resize(size_t(n_pos) * k);
    save->top_logit.resize(size_t(n_pos) * k);
  }
  const int n_threads = resolve_threads(opts.n_threads);
  Runner rb(base, w.n_ctx, opts.n_threads);
  std::unique_ptr<Runner> rq;
  if (quant) rq = std::make_unique<Runner>(*quant, w.n_ctx, opts.n_threads);
  std::vector<int32_t> window;
  std::vector<float> lb, lq;  // [n_ctx, n_vocab]
  std::vector<PosStats> st(size_t(quant ? n_pos : 0));
  auto t0 = std::chrono::steady_clock::now();
  for (int c = 0; c < w.n_chunks; ++c) {
    w.fill(c, window);
    rb.forward(window, 0, /*all_logits=*/true, lb);
    if (rq) rq->forward(window, 0, /*all_logits=*/true, lq);
#pragma omp parallel num_threads(n_threads) if (n_vocab >= 4096)  // small vocabs: not worth waking threads
    {
      std::vector<int32_t> idx;
      std::vector<char> mask;
#pragma omp for schedule(static)
      for (int j = w.first; j < w.n_ctx - 1; ++j) {
        const int64_t pos = int64_t(c) * pw + (j - w.first);
        const float* pb = &lb[size_t(j) * n_vocab];
        const int32_t target = w.target(c, j);
        const double lse_b = log_sum_exp(pb, n_vocab);
        if (save) {
          top_k(pb, n_vocab, k, idx, &save->top_id[size_t(pos) * k], &save->top_logit[size_t(pos) * k]);
          mask.assign(size_t(n_vocab), 0);
          for (int i = 0; i < k; ++i) mask[save->top_id[size_t(pos) * k + i]] = 1;
          double rest = 0;
          for (int i = 0; i < n_vocab; ++i)
            if (!mask[size_t(i)]) rest += std::exp(double(pb[i]) - lse_b);
          save->target[size_t(pos)] = uint32_t(target);
          save->target_logit[size_t(pos)] = pb[target];
          save->lse[size_t(pos)] = lse_b;
          save->p_rest[size_t(pos)] = rest;
        }
        if (!quant) continue;
        const float* pq = &lq[size_t(j) * n_vocab];
        const double lse_q = log_sum_exp(pq, n_vocab);
        PosStats& s = st[size_t(pos)];
        exact_figures(pq, n_vocab, lse_q, target, pb[target], lse_b, argmax(pb, n_vocab), s);
        double kl = 0;
        for (int i = 0; i < n_vocab; ++i) {
          const double lp = double(pb[i]) - lse_b;
          const double lqi = double(pq[i]) - lse_q;
          kl += std::exp(lp) * (lp - lqi);
        }
        s.kld = kl;
      }
    }
    if (on_chunk) on_chunk(c + 1, w.n_chunks);
  }
  KldResult r = quant ? aggregate(st) : KldResult{};
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.n_text_tokens = int64_t(w.tokens.size());
  r.n_chunks = w.n_chunks;
  r.n_scored = n_pos;
  return r;
}

// ---- file I/O ----

template <class T>
void put(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.append(b, sizeof(T));
}

struct Reader {
  const std::string& path;
  const std::string& data;
  size_t off = 0;
  template <class T>
  T get(const char* field) {
    if (data.size() - off < sizeof(T))
      fail(path, fmt::format("truncated: the file ends inside the field '{}' (offset {})", field, off),
           "the file is incomplete or not a lowbit kld base; save it again with --save-base");
    T v;
    std::memcpy(&v, data.data() + off, sizeof(T));
    off += sizeof(T);
    return v;
  }
};

}  // namespace

void write_kld_base(const std::string& path, const KldBase& b) {
  const int64_t n = b.n_positions();
  LOWBIT_ASSERT(b.k >= 1 && b.top_id.size() == size_t(n) * b.k && b.top_logit.size() == b.top_id.size());
  LOWBIT_ASSERT(b.target_logit.size() == size_t(n) && b.lse.size() == size_t(n) && b.p_rest.size() == size_t(n));
  LOWBIT_ASSERT(b.text_sha256.size() == 64);
  std::string hdr;
  hdr.append(kMagic, 8);
  put<uint32_t>(hdr, kVersion);
  put<uint32_t>(hdr, b.n_vocab);
  put<uint32_t>(hdr, uint32_t(b.n_ctx));
  put<uint32_t>(hdr, b.protocol == PplProtocol::LlamaCpp ? 0u : 1u);
  put<uint32_t>(hdr, uint32_t(b.k));
  put<uint32_t>(hdr, uint32_t(b.n_chunks));
  put<uint64_t>(hdr, uint64_t(n));
  put<uint64_t>(hdr, uint64_t(b.n_text_tokens));
  hdr += b.text_sha256;
  const std::string model = b.base_model.substr(0, kMaxPathLen);
  put<uint32_t>(hdr, uint32_t(model.size()));
  hdr += model;

  const std::string tmp = path + ".tmp";
  std::error_code ec;
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) fail(tmp, "cannot create the file", "check that the folder exists and is writable");
    f.write(hdr.data(), std::streamsize(hdr.size()));
    std::string rec;
    for (int64_t p = 0; p < n && f; ++p) {
      rec.clear();
      put<uint32_t>(rec, b.target[size_t(p)]);
      put<float>(rec, b.target_logit[size_t(p)]);
      put<double>(rec, b.lse[size_t(p)]);
      put<double>(rec, b.p_rest[size_t(p)]);
      for (int i = 0; i < b.k; ++i) {
        put<uint32_t>(rec, b.top_id[size_t(p) * b.k + i]);
        put<float>(rec, b.top_logit[size_t(p) * b.k + i]);
      }
      f.write(rec.data(), std::streamsize(rec.size()));
    }
    f.flush();
    if (!f) {
      f.close();
      std::filesystem::remove(tmp, ec);
      fail(tmp, "write failed", "is the disk full?");
    }
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    fail(path, "cannot rename " + tmp + " to the final name: " + ec.message());
  }
}

KldBase read_kld_base(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) fail(path, "no such file", "check the --base-logits path");
  const uintmax_t size = std::filesystem::file_size(path, ec);
  if (ec) fail(path, "cannot read the file size: " + ec.message());
  std::string data;
  {
    std::ifstream f(path, std::ios::binary);
    if (!f) fail(path, "cannot open the file");
    data.resize(size_t(size));
    f.read(data.data(), std::streamsize(size));
    if (!f) fail(path, "read failed");
  }
  const std::string hint = "save the base again with `lowbit kld BASE -f TEXT --save-base FILE`";
  if (data.size() < 8 || std::memcmp(data.data(), kMagic, 8) != 0)
    fail(path, "not a lowbit kld base file (magic 'LBKLD1' missing)", hint);
  Reader rd{path, data, 8};
  KldBase b;
  const uint32_t version = rd.get<uint32_t>("version");
  if (version != kVersion) fail(path, fmt::format("version {} is not supported (this lowbit reads {})", version, kVersion), hint);
  b.n_vocab = rd.get<uint32_t>("n_vocab");
  const uint32_t n_ctx = rd.get<uint32_t>("n_ctx");
  const uint32_t protocol = rd.get<uint32_t>("protocol");
  const uint32_t k = rd.get<uint32_t>("k");
  const uint32_t n_chunks = rd.get<uint32_t>("n_chunks");
  const uint64_t n_pos = rd.get<uint64_t>("n_positions");
  const uint64_t n_text = rd.get<uint64_t>("n_text_tokens");
  if (b.n_vocab == 0 || b.n_vocab > (1u << 24)) fail(path, fmt::format("field n_vocab: {} is out of range", b.n_vocab), hint);
  if (n_ctx < 4 || n_ctx > (1u << 24)) fail(path, fmt::format("field n_ctx: {} is out of range", n_ctx), hint);
  if (protocol > 1) fail(path, fmt::format("field protocol: {} is not 0 (llama.cpp) or 1 (gptq)", protocol), hint);
  if (k < 1 || k > b.n_vocab) fail(path, fmt::format("field k: {} is not in 1..n_vocab ({})", k, b.n_vocab), hint);
  b.n_ctx = int(n_ctx);
  b.protocol = protocol == 0 ? PplProtocol::LlamaCpp : PplProtocol::Gptq;
  b.k = int(k);
  if (n_chunks < 1 || n_chunks > (1u << 30)) fail(path, fmt::format("field n_chunks: {} is out of range", n_chunks), hint);
  b.n_chunks = int(n_chunks);
  if (n_pos != uint64_t(n_chunks) * uint64_t(scored_per_window(b.n_ctx, b.protocol)))
    fail(path, fmt::format("field n_positions: {} does not match {} chunks of {} ({} protocol)", n_pos, n_chunks,
                           n_ctx, ppl_protocol_name(b.protocol)), hint);
  if (n_text < uint64_t(n_chunks) * n_ctx)
    fail(path, fmt::format("field n_text_tokens: {} is fewer than {} chunks of {}", n_text, n_chunks, n_ctx), hint);
  b.n_text_tokens = int64_t(n_text);
  if (data.size() - rd.off < 64) fail(path, "truncated: the file ends inside the field 'text sha256'", hint);
  b.text_sha256 = data.substr(rd.off, 64);
  rd.off += 64;
  for (char ch : b.text_sha256)
    if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
      fail(path, "field text sha256: not 64 lowercase hex digits", hint);
  const uint32_t len = rd.get<uint32_t>("base model length");
  if (len > kMaxPathLen) fail(path, fmt::format("field base model length: {} exceeds {}", len, kMaxPathLen), hint);
  if (data.size() - rd.off < len) fail(path, "truncated: the file ends inside the field 'base model'", hint);
  b.base_model = data.substr(rd.off, len);
  rd.off += len;

  const size_t rb = record_bytes(b.k);
  const size_t have = data.size() - rd.off;
  if (have / rb < n_pos)
    fail(path, fmt::format("truncated: {} bytes of records, {} positions of {} bytes need {}", have, n_pos, rb,
                           uint64_t(n_pos) * rb), hint);
  if (have != n_pos * rb)
    fail(path, fmt::format("{} unexpected bytes after the last record", have - n_pos * rb), hint);
  const size_t n = size_t(n_pos);
  b.target.resize(n);
  b.target_logit.resize(n);
  b.lse.resize(n);
  b.p_rest.resize(n);
  b.top_id.resize(n * b.k);
  b.top_logit.resize(n * b.k);
  for (size_t p = 0; p < n; ++p) {
    auto bad = [&](const std::string& what) {
      fail(path, fmt::format("position {}: {}", p, what), hint);
    };
    b.target[p] = rd.get<uint32_t>("target");
    b.target_logit[p] = rd.get<float>("target logit");
    b.lse[p] = rd.get<double>("log-sum-exp");
    b.p_rest[p] = rd.get<double>("rest mass");
    if (b.target[p] >= b.n_vocab) bad(fmt::format("target token {} is not below n_vocab {}", b.target[p], b.n_vocab));
    if (!std::isfinite(b.target_logit[p]) || !std::isfinite(b.lse[p]) || b.target_logit[p] > b.lse[p] + 1e-3)
      bad("target logit / log-sum-exp not finite or inconsistent");
    if (!(b.p_rest[p] >= 0 && b.p_rest[p] <= 1)) bad(fmt::format("rest mass {} is not in [0, 1]", b.p_rest[p]));
    for (int i = 0; i < b.k; ++i) {
      const uint32_t id = rd.get<uint32_t>("top token");
      const float v = rd.get<float>("top logit");
      if (id >= b.n_vocab) bad(fmt::format("top token {} is not below n_vocab {}", id, b.n_vocab));
      if (!std::isfinite(v) || v > b.lse[p] + 1e-3) bad("top logit not finite or above the log-sum-exp");
      if (i > 0 && v > b.top_logit[p * b.k + i - 1]) bad("top logits are not sorted in descending order");
      b.top_id[p * b.k + i] = id;
      b.top_logit[p * b.k + i] = v;
    }
  }
  return b;
}

KldResult kld(const Model& base, const Model& quant, const std::string& text, const KldOptions& opts, KldBase* save,
              const KldProgress& on_chunk) {
  return run_live(base, &quant, text, opts, save, on_chunk);
}

KldBase kld_base_logits(const Model& base, const std::string& text, const KldOptions& opts,
                        const KldProgress& on_chunk) {
  KldBase b;
  run_live(base, nullptr, text, opts, &b, on_chunk);
  return b;
}

KldResult kld_from_saved(const KldBase& b, const Model& quant, const std::string& text, const KldOptions& opts,
                         const std::string& base_path, const KldProgress& on_chunk) {
  const std::string hint = "save the base again with this text, context and protocol (--save-base)";
  const std::string sha = sha256_hex(text);
  if (sha != b.text_sha256)
    fail(base_path, fmt::format("field text sha256: saved for text {}, this text is {}", b.text_sha256, sha), hint);
  if (opts.n_ctx > 0 && opts.n_ctx != b.n_ctx)
    fail(base_path, fmt::format("field n_ctx: saved with -c {}, asked for -c {}", b.n_ctx, opts.n_ctx),
         fmt::format("use -c {} or save the base again", b.n_ctx));
  if (opts.protocol != b.protocol)
    fail(base_path, fmt::format("field protocol: saved with {}, asked for {}", ppl_protocol_name(b.protocol),
                                ppl_protocol_name(opts.protocol)), hint);
  const int n_vocab = quant.config.n_vocab;
  if (uint32_t(n_vocab) != b.n_vocab)
    fail(base_path, fmt::format("field n_vocab: the base has {} tokens, {} has {}", b.n_vocab, quant.path, n_vocab),
         "compare models that share one tokenizer");
  if (opts.max_chunks > b.n_chunks)
    fail(base_path, fmt::format("field n_chunks: holds {} chunks, --chunks {} asked", b.n_chunks, opts.max_chunks),
         "use fewer chunks or save the base again");
  std::vector<int32_t> tokens = tokenize(quant, text);
  if (int64_t(tokens.size()) != b.n_text_tokens)
    fail(base_path, fmt::format("field n_text_tokens: the base has {} tokens, {} tokenizes the text into {}",
                                b.n_text_tokens, quant.path, tokens.size()),
         "compare models that share one tokenizer");
  const int max_chunks = opts.max_chunks >= 0 ? opts.max_chunks : b.n_chunks;
  Windows w = make_windows(quant, std::move(tokens), b.n_ctx, b.protocol, max_chunks);
  const int pw = w.per_window();
  LOWBIT_ASSERT(pw == scored_per_window(b.n_ctx, b.protocol));
  const int64_t n_pos = int64_t(w.n_chunks) * pw;
  for (int c = 0; c < w.n_chunks; ++c)
    for (int j = w.first; j < w.n_ctx - 1; ++j) {
      const int64_t pos = int64_t(c) * pw + (j - w.first);
      if (uint32_t(w.target(c, j)) != b.target[size_t(pos)])
        fail(base_path, fmt::format("field target: position {} holds token {}, {} has token {} there", pos,
                                    b.target[size_t(pos)], quant.path, w.target(c, j)),
             "compare models that share one tokenizer");
    }
  const int k = b.k;
  const int n_threads = resolve_threads(opts.n_threads);
  Runner rq(quant, w.n_ctx, opts.n_threads);
  std::vector<int32_t> window;
  std::vector<float> lq;
  std::vector<PosStats> st(static_cast<size_t>(n_pos));
  auto t0 = std::chrono::steady_clock::now();
  for (int c = 0; c < w.n_chunks; ++c) {
    w.fill(c, window);
    rq.forward(window, 0, /*all_logits=*/true, lq);
#pragma omp parallel num_threads(n_threads) if (n_vocab >= 4096)  // small vocabs: not worth waking threads
    {
      std::vector<char> mask;
#pragma omp for schedule(static)
      for (int j = w.first; j < w.n_ctx - 1; ++j) {
        const size_t pos = size_t(int64_t(c) * pw + (j - w.first));
        const float* pq = &lq[size_t(j) * n_vocab];
        const double lse_q = log_sum_exp(pq, n_vocab);
        PosStats& s = st[pos];
        const uint32_t* ids = &b.top_id[pos * k];
        const float* vals = &b.top_logit[pos * k];
        exact_figures(pq, n_vocab, lse_q, int32_t(b.target[pos]), b.target_logit[pos], b.lse[pos], int(ids[0]), s);
        mask.assign(size_t(n_vocab), 0);
        double kl = 0;
        for (int i = 0; i < k; ++i) {
          mask[ids[i]] = 1;
          const double lp = double(vals[i]) - b.lse[pos];
          const double lqi = double(pq[ids[i]]) - lse_q;
          kl += std::exp(lp) * (lp - lqi);
        }
        double q_rest = 0;
        for (int i = 0; i < n_vocab; ++i)
          if (!mask[size_t(i)]) q_rest += std::exp(double(pq[i]) - lse_q);
        const double p_rest = b.p_rest[pos];
        if (p_rest > 0) kl += p_rest * (std::log(p_rest) - std::log(std::max(q_rest, std::numeric_limits<double>::min())));
        s.kld = kl;
      }
    }
    if (on_chunk) on_chunk(c + 1, w.n_chunks);
  }
  KldResult r = aggregate(st);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.n_text_tokens = int64_t(w.tokens.size());
  r.n_chunks = w.n_chunks;
  r.n_scored = n_pos;
  r.kld_from_topk = true;
  r.top_k = k;
  return r;
}

}  // namespace lowbit
