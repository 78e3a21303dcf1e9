// Runner: state setup, the batch loop (embedding -> layers -> head), and the
// building blocks both families share (norms, attention). The per-family layers
// are in forward_llama.cpp and forward_gpt2.cpp.
//
// Threads: one OpenMP pool of n_threads does all parallel work (matmul tiles,
// attention, elementwise loops: num_threads(n_threads)). OpenBLAS is set to one
// thread for the duration of forward() and restored after: each matmul tile is
// one single-threaded BLAS call (see matmul.cpp for why two pools are slower).
// Results do not depend on n_threads.
#include <cblas.h>
#include <fmt/format.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <new>

#include "lowbit/error.h"
#include "model/forward_state.h"
#include "model/matmul.h"

namespace lowbit {

namespace {
// A forward() call is processed in chunks of at most this many tokens, which
// bounds the scratch buffers ([kMaxBatch, hidden]) whatever the prompt length.
constexpr int kMaxBatch = 512;
// Elementwise loops smaller than this run on one thread (a parallel region costs microseconds).
constexpr int64_t kParallelMinElems = 1 << 15;
}  // namespace

// ---------------------------------------------------------------- state ----

ForwardState::ForwardState(const Model& m, int n_ctx_, int n_threads_)
    : model(m), c(m.config), n_ctx(n_ctx_), n_threads(n_threads_) {
  if (c.arch == Arch::GPT2 && (c.n_kv_heads != c.n_heads || c.q_dim() != c.dim))
    fail(model.path,
         fmt::format("GPT-2 needs n_kv_heads == n_heads and n_heads * head_dim == dim (got {}, {}, {} * {} vs {})",
                     c.n_kv_heads, c.n_heads, c.n_heads, c.head_dim, c.dim),
         "the config does not describe a GPT-2 model");
  const int L = c.n_layers;
  auto w = [&](int l, const char* suffix) { return &model.weight(layer_tensor_name(l, suffix)); };
  auto opt = [&](int l, const char* suffix) { return model.find_weight(layer_tensor_name(l, suffix)); };
  layers.resize(size_t(L));
  for (int l = 0; l < L; ++l) {
    Layer& y = layers[size_t(l)];
    y.attn_norm_w = vector_f32(w(l, "attn_norm.weight"));
    y.ffn_norm_w = vector_f32(w(l, "ffn_norm.weight"));
    y.wo = w(l, "attn_output.weight");
    y.w_up = w(l, "ffn_up.weight");
    y.w_down = w(l, "ffn_down.weight");
    if (c.arch == Arch::Llama) {
      y.wq = w(l, "attn_q.weight");
      y.wk = w(l, "attn_k.weight");
      y.wv = w(l, "attn_v.weight");
      y.bq = vector_f32(opt(l, "attn_q.bias"));
      y.bk = vector_f32(opt(l, "attn_k.bias"));
      y.bv = vector_f32(opt(l, "attn_v.bias"));
      y.w_gate = w(l, "ffn_gate.weight");
    } else {
      y.attn_norm_b = vector_f32(w(l, "attn_norm.bias"));
      y.wqkv = w(l, "attn_qkv.weight");
      y.bqkv = vector_f32(w(l, "attn_qkv.bias"));
      y.bo = vector_f32(w(l, "attn_output.bias"));
      y.ffn_norm_b = vector_f32(w(l, "ffn_norm.bias"));
      y.b_up = vector_f32(w(l, "ffn_up.bias"));
      y.b_down = vector_f32(w(l, "ffn_down.bias"));
    }
  }
  tok_embd = &model.weight("token_embd.weight");
  output = c.tied_embeddings ? tok_embd : &model.weight("output.weight");
  out_norm_w = vector_f32(&model.weight("output_norm.weight"));
  if (c.arch == Arch::GPT2) {
    pos_embd = &model.weight("position_embd.weight");
    out_norm_b = vector_f32(&model.weight("output_norm.bias"));
  } else {
    fwd::init_rope(*this);
  }

  const size_t kv = size_t(L) * size_t(n_ctx) * size_t(c.kv_dim());
  try {
    // Not zero-filled: attention reads only rows already written, and untouched pages cost no RAM.
    k_cache.reset(new float[kv]);
    v_cache.reset(new float[kv]);
  } catch (const std::bad_alloc&) {
    fail(model.path, fmt::format("cannot allocate the KV cache ({:.2f} GiB for {} tokens)", 2.0 * kv * 4 / (1 << 30), n_ctx),
         "use a smaller context (--ctx)");
  }
  scores.resize(size_t(n_threads) * size_t(n_ctx));
}

const float* ForwardState::vector_f32(const TensorView* t) {
  if (!t) return nullptr;
  if (t->dtype == DType::F32) return static_cast<const float*>(t->data);
  std::vector<float>& v = converted.emplace_back(size_t(t->numel()));
  to_f32(*t, 0, t->numel(), v.data());
  return v.data();
}

void ForwardState::reserve(int n) {
  if (n <= cap) return;
  const size_t rows = size_t(n);
  const size_t q_width = c.arch == Arch::GPT2 ? size_t(3) * size_t(c.dim) : size_t(c.q_dim());
  x.resize(rows * size_t(c.dim));
  xb.resize(rows * size_t(c.dim));
  q.resize(rows * q_width);
  att.resize(rows * size_t(c.q_dim()));
  hb.resize(rows * size_t(c.hidden_dim));
  hb2.resize(rows * size_t(c.hidden_dim));
  rope_cos.resize(rows * size_t(c.head_dim / 2));
  rope_sin.resize(rows * size_t(c.head_dim / 2));
  cap = n;
}

// ------------------------------------------------------ building blocks ----

namespace fwd {

void rmsnorm(const float* x, const float* w, int n, int dim, float eps, float* out, int nt) {
#pragma omp parallel for num_threads(nt) if (int64_t(n) * dim >= kParallelMinElems)
  for (int i = 0; i < n; ++i) {
    const float* xi = x + int64_t(i) * dim;
    float* oi = out + int64_t(i) * dim;
    float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
    for (int j = 0; j < dim; ++j) ss += xi[j] * xi[j];
    const float scale = 1.0f / std::sqrt(ss / float(dim) + eps);
    for (int j = 0; j < dim; ++j) oi[j] = w[j] * (scale * xi[j]);
  }
}

void layernorm(const float* x, const float* w, const float* b, int n, int dim, float eps, float* out, int nt) {
#pragma omp parallel for num_threads(nt) if (int64_t(n) * dim >= kParallelMinElems)
  for (int i = 0; i < n; ++i) {
    const float* xi = x + int64_t(i) * dim;
    float* oi = out + int64_t(i) * dim;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j < dim; ++j) sum += xi[j];
    const float mean = sum / float(dim);
    float var = 0.0f;
#pragma omp simd reduction(+ : var)
    for (int j = 0; j < dim; ++j) var += (xi[j] - mean) * (xi[j] - mean);
    const float rstd = 1.0f / std::sqrt(var / float(dim) + eps);
    for (int j = 0; j < dim; ++j) oi[j] = (xi[j] - mean) * rstd * w[j] + b[j];
  }
}

void add_bias(float* y, const float* b, int n, int width) {
  if (!b) return;
  for (int i = 0; i < n; ++i) {
    float* yi = y + int64_t(i) * width;
    for (int j = 0; j < width; ++j) yi[j] += b[j];
  }
}

void add_inplace(float* x, const float* y, int64_t count, int nt) {
#pragma omp parallel for num_threads(nt) if (count >= kParallelMinElems)
  for (int64_t i = 0; i < count; ++i) x[i] += y[i];
}

void attention(ForwardState& s, int layer, const float* q, int64_t q_stride, int n, int pos, float* out) {
  const ModelConfig& c = s.c;
  const int hd = c.head_dim, n_heads = c.n_heads, group = c.n_heads / c.n_kv_heads;
  const int64_t kv_dim = c.kv_dim(), q_dim = c.q_dim();
  const float* K = s.k_row(layer, 0);  // [n_ctx, kv_dim]
  const float* V = s.v_row(layer, 0);  // [n_ctx, kv_dim]
  const float scale = 1.0f / std::sqrt(float(hd));
  const int64_t n_tasks = int64_t(n) * n_heads;
  // Multiply-adds, roughly: tiny attentions run on the calling thread.
  const int64_t work = n_tasks * (pos + n) * hd;
  // One task = one (query row, head). Later rows see more keys: dynamic schedule.
#pragma omp parallel for num_threads(s.n_threads) schedule(dynamic, 1) if (n_tasks > 1 && work >= kParallelMinElems)
  for (int64_t task = 0; task < n_tasks; ++task) {
    const int i = int(task / n_heads), h = int(task % n_heads);
    const int n_keys = pos + i + 1;  // causal: keys at positions [0, pos + i]
    const float* qh = q + i * q_stride + int64_t(h) * hd;  // [hd]
    const int64_t kv_off = int64_t(h / group) * hd;
    float* sc = s.scores.data() + int64_t(omp_get_thread_num()) * s.n_ctx;  // [n_keys]

    float mx = -std::numeric_limits<float>::infinity();
    for (int t = 0; t < n_keys; ++t) {
      const float* kt = K + t * kv_dim + kv_off;
      float d = 0.0f;
#pragma omp simd reduction(+ : d)
      for (int e = 0; e < hd; ++e) d += qh[e] * kt[e];
      sc[t] = d * scale;
      mx = std::max(mx, sc[t]);
    }
    float sum = 0.0f;
    for (int t = 0; t < n_keys; ++t) {
      sc[t] = std::exp(sc[t] - mx);
      sum += sc[t];
    }
    const float inv_sum = 1.0f / sum;
    float* oh = out + i * q_dim + int64_t(h) * hd;  // [hd]
    std::fill(oh, oh + hd, 0.0f);
    for (int t = 0; t < n_keys; ++t) {
      const float p = sc[t] * inv_sum;
      const float* vt = V + t * kv_dim + kv_off;
#pragma omp simd
      for (int e = 0; e < hd; ++e) oh[e] += p * vt[e];
    }
  }
}

}  // namespace fwd

// --------------------------------------------------------------- Runner ----

namespace {

int resolve_threads(int n_threads) { return n_threads > 0 ? n_threads : std::max(1, omp_get_num_procs()); }

// x[n, dim] = token_embd[tokens] (+ position_embd[pos + i] for GPT-2)
void embed(ForwardState& s, const int32_t* tokens, int n, int pos) {
  const int dim = s.c.dim;
  float* x = s.x.data();
  for (int i = 0; i < n; ++i) to_f32(*s.tok_embd, int64_t(tokens[i]) * dim, dim, x + int64_t(i) * dim);
  if (s.pos_embd) {
    // Positions pos..pos+n-1 are consecutive rows of the table: convert them into xb, then add.
    to_f32(*s.pos_embd, int64_t(pos) * dim, int64_t(n) * dim, s.xb.data());
    fwd::add_inplace(x, s.xb.data(), int64_t(n) * dim, s.n_threads);
  }
}

// logits[rows, n_vocab] for rows [first, first + rows) of the residual stream.
void head(ForwardState& s, int first, int rows, float* logits) {
  const int dim = s.c.dim, nt = s.n_threads;
  const float* x = s.x.data() + int64_t(first) * dim;
  float* xb = s.xb.data();  // [rows, dim]
  if (s.c.arch == Arch::GPT2)
    fwd::layernorm(x, s.out_norm_w, s.out_norm_b, rows, dim, s.c.norm_eps, xb, s.n_threads);
  else
    fwd::rmsnorm(x, s.out_norm_w, rows, dim, s.c.norm_eps, xb, s.n_threads);
  matmul(*s.output, xb, rows, logits, nt);
}

}  // namespace

Runner::Runner(const Model& model, int n_ctx, int n_threads) : model_(model), n_ctx_(n_ctx), state_(nullptr) {
  model.validate_weights();  // every tensor the forward pass reads exists with the right shape
  if (n_ctx <= 0) fail(model.path, fmt::format("context length {} must be positive", n_ctx), "pass --ctx N with N > 0");
  state_ = new State(model, n_ctx, resolve_threads(n_threads));
}

Runner::~Runner() { delete state_; }

void Runner::forward(std::span<const int32_t> tokens, int pos, bool all_logits, std::vector<float>& logits) {
  State& s = *state_;
  const ModelConfig& c = model_.config;
  const int n = int(tokens.size());
  if (n == 0) fail(model_.path, "forward() was given no tokens", "pass at least one token");
  if (pos < 0 || pos > s.n_past)
    fail(model_.path, fmt::format("position {} is beyond the {} tokens in the KV cache", pos, s.n_past),
         "pos must equal (append) or undercut (rewind) the number of tokens already processed");
  if (int64_t(pos) + n > n_ctx_)
    fail(model_.path,
         fmt::format("{} tokens at position {} do not fit the context of {} tokens", n, pos, n_ctx_),
         "use a larger context (--ctx) or a shorter prompt");
  if (c.arch == Arch::GPT2 && int64_t(pos) + n > c.max_seq)
    fail(model_.path,
         fmt::format("position {} is beyond GPT-2's {} learned positions", pos + n - 1, c.max_seq),
         "GPT-2 cannot run past its max_position_embeddings");
  for (int i = 0; i < n; ++i)
    if (tokens[i] < 0 || tokens[i] >= c.n_vocab)
      fail(model_.path, fmt::format("token id {} (at index {}) is outside the vocabulary [0, {})", tokens[i], i,
                                    c.n_vocab),
           "the tokenizer does not match this model");

  // OpenBLAS single-threaded while we run (matmul tiles are parallel over OpenMP); restored on exit.
  struct BlasThreads {
    int prev = openblas_get_num_threads();
    BlasThreads() { if (prev != 1) openblas_set_num_threads(1); }
    ~BlasThreads() { if (prev != 1) openblas_set_num_threads(prev); }
  } blas_threads;
  const int64_t V = c.n_vocab;
  logits.resize(size_t(all_logits ? n : 1) * size_t(V));

  for (int c0 = 0; c0 < n; c0 += kMaxBatch) {
    const int m = std::min(kMaxBatch, n - c0);
    const int p = pos + c0;
    s.reserve(m);
    embed(s, tokens.data() + c0, m, p);
    if (c.arch == Arch::Llama) fwd::rope_tables(s, m, p);
    for (int l = 0; l < c.n_layers; ++l) {
      if (c.arch == Arch::GPT2)
        fwd::gpt2_layer(s, l, m, p);
      else
        fwd::llama_layer(s, l, m, p);
    }
    s.n_past = p + m;
    if (all_logits)
      head(s, 0, m, logits.data() + int64_t(c0) * V);
    else if (c0 + m == n)
      head(s, m - 1, 1, logits.data());
  }
}

}  // namespace lowbit
