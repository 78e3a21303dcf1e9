// Importance matrices: the collector, the llama-imatrix run protocol, and
// the legacy imatrix.dat reader / writer (format described in imatrix.h).
#include "eval/imatrix.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include <fmt/format.h>

#include "core/read_file.h"
#include "eval/perplexity.h"
#include "lowbit/error.h"

namespace lowbit {

namespace {
constexpr int kMinCallTokens = 16;  // llama-imatrix ignores smaller micro-batches
constexpr int kBatch = 2048;        // llama.cpp's default n_batch (capped at n_ctx)
constexpr int kMicroBatch = 512;    // llama.cpp's default n_ubatch
// Smallest entry: name_len + 1 name byte + ncall + nval + 1 value.
constexpr size_t kMinEntryBytes = 4 + 1 + 4 + 4 + 4;
}  // namespace

// ---------------------------------------------------------------- data ----

const ImatrixEntry* ImatrixData::find(const std::string& name) const {
  for (const auto& e : entries)
    if (e.name == name) return &e;
  return nullptr;
}

std::vector<float> ImatrixData::importance(const std::string& name) const {
  const ImatrixEntry* e = find(name);
  if (!e) return {};
  std::vector<float> v = e->values;
  if (e->ncall > 0)  // llama-quantize: value / ncall, in f32
    for (float& x : v) x /= float(e->ncall);
  return v;
}

// ---------------------------------------------------------- file format ----

namespace {

// Bounds-checked little-endian cursor over the file's bytes.
class Reader {
 public:
  Reader(std::span<const uint8_t> b, const std::string& where) : b_(b), where_(where) {}
  size_t left() const { return b_.size() - pos_; }
  size_t pos() const { return pos_; }

  int32_t i32(const std::string& what) {
    need(4, what);
    int32_t v;
    std::memcpy(&v, b_.data() + pos_, 4);
    pos_ += 4;
    return v;
  }
  std::string bytes(size_t n, const std::string& what) {
    need(n, what);
    std::string s(reinterpret_cast<const char*>(b_.data() + pos_), n);
    pos_ += n;
    return s;
  }
  void floats(float* out, size_t n, const std::string& what) {
    if (n > left() / 4) truncated(n * 4, what);
    std::memcpy(out, b_.data() + pos_, n * 4);
    pos_ += n * 4;
  }
  [[noreturn]] void bad(const std::string& what) const {
    fail(where_, what, "the file is not an imatrix.dat written by llama-imatrix / lowbit imatrix, or it is damaged");
  }

 private:
  void need(size_t n, const std::string& what) {
    if (n > left()) truncated(n, what);
  }
  [[noreturn]] void truncated(size_t n, const std::string& what) const {
    bad(fmt::format("truncated: {} needs {} bytes at offset {}, {} left", what, n, pos_, left()));
  }
  std::span<const uint8_t> b_;
  const std::string& where_;
  size_t pos_ = 0;
};

}  // namespace

ImatrixData parse_imatrix(std::span<const uint8_t> bytes, const std::string& where) {
  Reader r(bytes, where);
  ImatrixData d;
  const int32_t n_entries = r.i32("the entry count");
  if (n_entries < 1) r.bad(fmt::format("entry count {} (a file holds at least one entry)", n_entries));
  if (size_t(n_entries) > r.left() / kMinEntryBytes)
    r.bad(fmt::format("truncated: entry count {} cannot fit in the {} bytes that follow", n_entries, r.left()));
  d.entries.reserve(size_t(n_entries));
  std::set<std::string> seen;
  for (int32_t i = 0; i < n_entries; ++i) {
    const std::string at = fmt::format("entry {}", i);
    const int32_t len = r.i32(at + ": name length");
    if (len < 1) r.bad(fmt::format("{}: name length {}", at, len));
    if (size_t(len) > r.left()) r.bad(fmt::format("truncated: {}: name length {}, {} bytes left", at, len, r.left()));
    ImatrixEntry e;
    e.name = r.bytes(size_t(len), at + ": name");
    if (e.name.find('\0') != std::string::npos) r.bad(at + ": name contains a NUL byte");
    const std::string ent = fmt::format("entry {} '{}'", i, e.name);
    if (!seen.insert(e.name).second) r.bad(ent + ": name appears twice");
    e.ncall = r.i32(ent + ": ncall");
    if (e.ncall < 0) r.bad(fmt::format("{}: ncall {} is negative", ent, e.ncall));
    const int32_t nval = r.i32(ent + ": value count");
    if (nval < 1) r.bad(fmt::format("{}: value count {}", ent, nval));
    if (size_t(nval) > r.left() / 4)
      r.bad(fmt::format("truncated: {}: value count {} needs {} bytes, {} left", ent, nval, 4 * int64_t(nval), r.left()));
    e.values.resize(size_t(nval));
    r.floats(e.values.data(), e.values.size(), ent + ": values");
    for (size_t j = 0; j < e.values.size(); ++j)
      if (!std::isfinite(e.values[j]) || e.values[j] < 0)
        r.bad(fmt::format("{}: value {} is {} (sums of squares are finite and >= 0)", ent, j, e.values[j]));
    d.entries.push_back(std::move(e));
  }
  d.has_trailer = r.left() > 0;
  if (d.has_trailer) {
    d.last_call = r.i32("the trailer's last_call");
    if (d.last_call < 0) r.bad(fmt::format("last_call {} is negative", d.last_call));
    const int32_t len = r.i32("the trailer's dataset name length");
    if (len < 0) r.bad(fmt::format("dataset name length {}", len));
    if (size_t(len) > r.left()) r.bad(fmt::format("truncated: dataset name length {}, {} bytes left", len, r.left()));
    d.dataset = r.bytes(size_t(len), "the dataset name");
    if (r.left() != 0) r.bad(fmt::format("{} unexpected bytes after the dataset name", r.left()));
  }
  return d;
}

ImatrixData read_imatrix(const std::string& path) {
  const std::string s = read_text_file(path);  // bytes as-is; the name says "text" but nothing is converted
  return parse_imatrix(std::span(reinterpret_cast<const uint8_t*>(s.data()), s.size()), path);
}

std::vector<uint8_t> serialize_imatrix(const ImatrixData& d) {
  std::vector<uint8_t> out;
  auto put = [&](const void* p, size_t n) {
    const size_t at = out.size();
    out.resize(at + n);
    if (n) std::memcpy(out.data() + at, p, n);
  };
  auto i32 = [&](int64_t v, const std::string& what) {
    if (v < 0 || v > INT32_MAX) fail("imatrix", fmt::format("{} = {} does not fit the file's int32", what, v));
    const int32_t x = int32_t(v);
    put(&x, 4);
  };
  i32(int64_t(d.entries.size()), "entry count");
  for (const auto& e : d.entries) {
    i32(int64_t(e.name.size()), e.name + ": name length");
    put(e.name.data(), e.name.size());
    i32(e.ncall, e.name + ": ncall");
    i32(int64_t(e.values.size()), e.name + ": value count");
    put(e.values.data(), e.values.size() * 4);
  }
  if (d.has_trailer) {
    i32(d.last_call, "last_call");
    i32(int64_t(d.dataset.size()), "dataset name length");
    put(d.dataset.data(), d.dataset.size());
  }
  return out;
}

void write_imatrix(const ImatrixData& d, const std::string& path) {
  const std::vector<uint8_t> bytes = serialize_imatrix(d);
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) fail(tmp, "cannot create the file", "check that the folder exists and is writable");
    f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
    f.close();
    if (!f) {
      std::error_code ec;
      std::filesystem::remove(tmp, ec);
      fail(tmp, "write failed", "is the disk full?");
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    fail(path, "cannot rename " + tmp + " to the final name: " + ec.message());
  }
}

// ------------------------------------------------------------ collector ----

bool ImatrixCollector::wants(const std::string& weight) const {
  if (weight.starts_with("blk.")) return true;
  return process_output_ && (weight == "output.weight" || weight == "token_embd.weight");
}

void ImatrixCollector::observe(const std::string& weight, const float* X, int n_tok, int64_t n_in) {
  if (n_tok < kMinCallTokens || !wants(weight)) return;
  auto [it, added] = stats_.try_emplace(weight);
  Stat& s = it->second;
  if (added) {
    s.sum_x2.assign(size_t(n_in), 0.0f);
    order_.push_back(weight);
  } else if (int64_t(s.sum_x2.size()) != n_in) {
    fail(weight, fmt::format("imatrix: input width changed from {} to {}", s.sum_x2.size(), n_in));
  }
  float* sum = s.sum_x2.data();
  for (int t = 0; t < n_tok; ++t) {  // token by token in f32, as llama-imatrix adds
    const float* x = X + int64_t(t) * n_in;
    for (int64_t j = 0; j < n_in; ++j) sum[j] += x[j] * x[j];
  }
  for (int64_t j = 0; j < n_in; ++j)
    if (!std::isfinite(sum[j]))
      fail(weight, fmt::format("imatrix: the sum of x^2 of column {} is {}", j, sum[j]),
           "the activations overflow: check the model (f16 overflow?) and the text");
  s.n_tokens += n_tok;
  ++s.ncall;
  last_call_ = std::max(last_call_, s.ncall);
}

MatmulObserver ImatrixCollector::observer() {
  return [this](const std::string& w, const float* X, int n_tok, int64_t n_in) { observe(w, X, n_tok, n_in); };
}

ImatrixData ImatrixCollector::result(const std::string& dataset) const {
  ImatrixData d;
  d.last_call = last_call_;
  d.dataset = dataset;
  for (const std::string& name : order_) {
    const Stat& s = stats_.at(name);
    ImatrixEntry e;
    e.name = name;
    e.ncall = s.ncall;
    e.values.resize(s.sum_x2.size());
    for (size_t j = 0; j < s.sum_x2.size(); ++j)  // llama-imatrix: (sum / count) * ncall, in f32
      e.values[j] = (s.sum_x2[j] / float(s.n_tokens)) * float(s.ncall);
    d.entries.push_back(std::move(e));
  }
  return d;
}

// ------------------------------------------------------------- protocol ----

ImatrixResult compute_imatrix(const Model& model, const std::string& text, const ImatrixOptions& opts,
                              const std::function<void(int, int)>& on_chunk) {
  std::vector<int32_t> tokens = model.tok().encode(text, model.tok().adds_bos());
  return compute_imatrix_tokens(model, tokens, opts, on_chunk);
}

ImatrixResult compute_imatrix_tokens(const Model& model, const std::vector<int32_t>& tokens,
                                     const ImatrixOptions& opts, const std::function<void(int, int)>& on_chunk) {
  const int n_ctx = opts.n_ctx;
  if (n_ctx < kMinCallTokens)
    fail("-c", fmt::format("context {} is too small", n_ctx),
         fmt::format("use at least {} tokens (smaller calls are not collected)", kMinCallTokens));
  const int64_t n_text = int64_t(tokens.size());
  if (n_text < 2 * int64_t(n_ctx))
    fail(model.path, fmt::format("the text has {} tokens, imatrix needs at least {} for -c {}", n_text, 2 * n_ctx, n_ctx),
         "use a longer text or a smaller -c");
  int n_chunks = int(n_text / n_ctx);
  if (opts.max_chunks >= 0) n_chunks = std::min(n_chunks, opts.max_chunks);
  if (n_chunks < 1) fail("--chunks", "no chunk to run", "pass --chunks N with N >= 1");
  const int32_t bos = model.tokenizer ? (model.tokenizer->adds_bos() ? model.tokenizer->bos_id() : -1)
                                      : model.config.bos_id;
  const int n_vocab = model.config.n_vocab;
  const int n_batch = std::min(kBatch, n_ctx);
  const bool all_logits = opts.compute_ppl || opts.process_output;  // the head then sees every token

  ImatrixCollector col(opts.process_output);
  Runner runner(model, n_ctx, opts.n_threads);
  runner.set_matmul_observer(col.observer());
  std::vector<int32_t> chunk(static_cast<size_t>(n_ctx));
  std::vector<float> logits;
  double nll = 0;
  int64_t scored = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (int c = 0; c < n_chunks; ++c) {
    const int64_t start = int64_t(c) * n_ctx;
    std::copy(tokens.begin() + start, tokens.begin() + start + n_ctx, chunk.begin());
    if (bos >= 0) chunk[0] = bos;
    for (int b0 = 0; b0 < n_ctx; b0 += n_batch) {  // batches, each cut into micro-batches
      const int b1 = std::min(n_ctx, b0 + n_batch);
      for (int u0 = b0; u0 < b1; u0 += kMicroBatch) {
        const int n = std::min(kMicroBatch, b1 - u0);
        runner.forward(std::span<const int32_t>(chunk).subspan(size_t(u0), size_t(n)), u0, all_logits, logits);
        if (!opts.compute_ppl) continue;
        // Score positions n_ctx/2 .. n_ctx-2 (predicting the next token), as llama-imatrix does.
        for (int j = std::max(u0, n_ctx / 2); j < std::min(u0 + n, n_ctx - 1); ++j) {
          nll -= log_softmax_at(&logits[size_t(j - u0) * size_t(n_vocab)], n_vocab, tokens[size_t(start + j + 1)]);
          ++scored;
        }
      }
    }
    if (on_chunk) on_chunk(c + 1, n_chunks);
  }
  ImatrixResult r;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  runner.set_matmul_observer(nullptr);
  r.data = col.result(opts.dataset);
  r.n_text_tokens = n_text;
  r.n_chunks = n_chunks;
  r.n_tokens = int64_t(n_chunks) * n_ctx;
  r.ppl = scored > 0 ? std::exp(nll / double(scored)) : 0.0;
  if (r.data.entries.empty())
    fail(model.path, "no linear layer was observed", "is this a supported architecture with blk.* weights?");
  return r;
}

}  // namespace lowbit
