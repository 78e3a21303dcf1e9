// Runner: state setup, the batch loop (embedding -> layers -> head), and the
// building blocks both families share (norms, attention). The per-family layers
// are in forward_llama.cpp and forward_gpt2.cpp.
//
// Threads: n_threads OpenMP threads for attention and elementwise loops
// (num_threads(n_threads); small loops stay on the calling thread) and for the
// generation-regime matmul tiles; n_threads OpenBLAS threads for prompt-sized
// matmuls (matmul.cpp sets and restores openblas_set_num_threads per call).
#include <cblas.h>
#include <fmt/format.h>
#include <omp.h>
#include <smmintrin.h>

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
// Loops smaller than this run on the calling thread: a parallel region costs
// microseconds on a quiet machine and far more on a loaded one.
constexpr int64_t kParallelMinElems = 1 << 16;       // elementwise loops
constexpr int64_t kParallelMinAttention = 1 << 18;   // attention multiply-adds
}  // namespace

// ---------------------------------------------------------------- state ----

ForwardState::ForwardState(const Model& m, int n_ctx_, int n_threads_, int kv_layers)
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

  kv_slots = std::max(1, kv_layers > 0 ? std::min(kv_layers, L) : L);
  const size_t kv = size_t(kv_slots) * size_t(n_ctx) * size_t(c.kv_dim());
  try {
    // Not zero-filled: attention reads only rows already written, and untouched pages cost no RAM.
    k_cache.reset(new float[kv]);
    v_cache.reset(new float[kv]);
  } catch (const std::bad_alloc&) {
    fail(model.path, fmt::format("cannot allocate the KV cache ({:.2f} GiB for {} tokens)", 2.0 * kv * 4 / (1 << 30), n_ctx),
         "use a smaller context (--ctx)");
  }
  // Attention query blocks: up to 64 rows, fewer for long contexts so that each
  // thread's score block [att_block, n_ctx] stays within 1M floats.
  att_block = int(std::clamp<int64_t>((int64_t(1) << 20) / n_ctx, 1, 64));
  scores.resize(size_t(n_threads) * size_t(att_block) * size_t(n_ctx));
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

void linear(ForwardState& s, const TensorView& W, const float* X, int n, float* Y) {
  if (s.observer) {
    auto it = s.weight_names.find(&W);
    s.observer(it != s.weight_names.end() ? it->second : W.name, X, n, W.cols());
  }
  matmul(W, X, n, Y, s.n_threads);
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

namespace {

// e^x for x <= 0, accurate to a few ulp: e^x = 2^n * e^r with n = round(x / ln 2),
// |r| <= ln(2)/2, e^r by its degree-6 Taylor polynomial (truncation error < 2e-8
// there). libm's expf is a scalar call and was the hot spot of softmax for small
// heads; this runs 4 lanes at once with SSE4.1 (in the x86-64-v2 baseline). The
// scalar version below computes the same thing for loop tails.
inline __m128 exp_nonpositive_ps(__m128 x) {
  x = _mm_max_ps(x, _mm_set1_ps(-87.0f));  // e^-87 ~ 1.6e-38, the smallest normal float: below it 0 is as good
  const __m128 n = _mm_round_ps(_mm_mul_ps(x, _mm_set1_ps(1.44269504f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  // r = x - n ln 2, with ln 2 split in two so that n * ln2_hi is exact
  const __m128 r = _mm_sub_ps(_mm_sub_ps(x, _mm_mul_ps(n, _mm_set1_ps(0.693145752f))),
                              _mm_mul_ps(n, _mm_set1_ps(1.42860677e-6f)));
  __m128 p = _mm_set1_ps(1.0f / 720.0f);
  for (float coef : {1.0f / 120.0f, 1.0f / 24.0f, 1.0f / 6.0f, 0.5f, 1.0f, 1.0f})
    p = _mm_add_ps(_mm_mul_ps(p, r), _mm_set1_ps(coef));
  const __m128i two_n = _mm_slli_epi32(_mm_add_epi32(_mm_cvtps_epi32(n), _mm_set1_epi32(127)), 23);  // 2^n
  return _mm_mul_ps(p, _mm_castsi128_ps(two_n));
}

inline float exp_nonpositive(float x) { return _mm_cvtss_f32(exp_nonpositive_ps(_mm_set_ss(x))); }

// row[0, valid) = softmax(row[0, valid)); row[valid, width) = 0 (the causal mask).
void softmax_masked(float* row, int valid, int width) {
  __m128 vmax = _mm_set1_ps(-std::numeric_limits<float>::infinity());
  int t = 0;
  for (; t + 4 <= valid; t += 4) vmax = _mm_max_ps(vmax, _mm_loadu_ps(row + t));
  float lanes[4];
  _mm_storeu_ps(lanes, vmax);
  float mx = std::max(std::max(lanes[0], lanes[1]), std::max(lanes[2], lanes[3]));
  for (; t < valid; ++t) mx = std::max(mx, row[t]);
  const __m128 vmx = _mm_set1_ps(mx);
  __m128 vsum = _mm_setzero_ps();
  t = 0;
  for (; t + 4 <= valid; t += 4) {
    const __m128 e = exp_nonpositive_ps(_mm_sub_ps(_mm_loadu_ps(row + t), vmx));
    _mm_storeu_ps(row + t, e);
    vsum = _mm_add_ps(vsum, e);
  }
  _mm_storeu_ps(lanes, vsum);
  float sum = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
  for (; t < valid; ++t) {
    row[t] = exp_nonpositive(row[t] - mx);
    sum += row[t];
  }
  const float inv = 1.0f / sum;
  for (int i = 0; i < valid; ++i) row[i] *= inv;
  std::fill(row + valid, row + width, 0.0f);
}

}  // namespace

// Per task = (head h, block of up to att_block query rows [i0, i1)), with BLAS:
//   S[b, n_keys] = scale · Q_h[i0:i1] · K_h[0:n_keys]^T      (n_keys = pos + i1)
//   row r of S: softmax over its causal keys [0, pos + i0 + r], zeros after
//   out_h[i0:i1] = S · V_h[0:n_keys]
// (Q_h, K_h, V_h are strided column slices: heads are concatenated in each row.)
// One query row (decoding) uses sgemv. Blocks depend on n_ctx only, never on
// the thread count, so results are identical for any n_threads.
void attention(ForwardState& s, int layer, const float* q, int64_t q_stride, int n, int pos, float* out) {
  const ModelConfig& c = s.c;
  const int hd = c.head_dim, n_heads = c.n_heads, group = c.n_heads / c.n_kv_heads;
  const int kv_dim = c.kv_dim(), q_dim = c.q_dim();
  const float* K = s.k_row(layer, 0);  // [n_ctx, kv_dim]
  const float* V = s.v_row(layer, 0);  // [n_ctx, kv_dim]
  const float scale = 1.0f / std::sqrt(float(hd));
  const int B = s.att_block;
  const int n_blocks = (n + B - 1) / B;
  const int64_t n_tasks = int64_t(n_heads) * n_blocks;
  const int64_t work = int64_t(n) * n_heads * (pos + n) * hd;  // multiply-adds, roughly
  ScopedBlasThreads single(1);  // BLAS runs inside the OpenMP loop
  // Later blocks see more keys: dynamic schedule.
#pragma omp parallel for num_threads(s.n_threads) schedule(dynamic, 1) if (n_tasks > 1 && work >= kParallelMinAttention)
  for (int64_t task = 0; task < n_tasks; ++task) {
    const int h = int(task % n_heads), blk = int(task / n_heads);
    const int i0 = blk * B, b = std::min(B, n - i0), n_keys = pos + i0 + b;
    const int64_t kv_off = int64_t(h / group) * hd;  // GQA: the KV head this query head reads
    const float* Qh = q + i0 * q_stride + int64_t(h) * hd;  // [b, hd], row stride q_stride
    float* Oh = out + int64_t(i0) * q_dim + int64_t(h) * hd;  // [b, hd], row stride q_dim
    float* S = s.scores.data() + int64_t(omp_get_thread_num()) * B * s.n_ctx;  // [b, n_keys]
    if (b == 1) {
      cblas_sgemv(CblasRowMajor, CblasNoTrans, n_keys, hd, scale, K + kv_off, kv_dim, Qh, 1, 0.0f, S, 1);
      softmax_masked(S, n_keys, n_keys);
      cblas_sgemv(CblasRowMajor, CblasTrans, n_keys, hd, 1.0f, V + kv_off, kv_dim, S, 1, 0.0f, Oh, 1);
      continue;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, b, n_keys, hd, scale, Qh, int(q_stride), K + kv_off, kv_dim,
                0.0f, S, n_keys);
    for (int r = 0; r < b; ++r) softmax_masked(S + int64_t(r) * n_keys, pos + i0 + r + 1, n_keys);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, b, hd, n_keys, 1.0f, S, n_keys, V + kv_off, kv_dim, 0.0f,
                Oh, q_dim);
  }
}

}  // namespace fwd

// --------------------------------------------------------------- Runner ----

namespace {

int resolve_threads(int n_threads) { return n_threads > 0 ? n_threads : std::max(1, omp_get_num_procs()); }

}  // namespace

void fwd::embed(ForwardState& s, const int32_t* tokens, int n, int pos) {
  const int dim = s.c.dim;
  float* x = s.x.data();
  for (int i = 0; i < n; ++i) to_f32(*s.tok_embd, int64_t(tokens[i]) * dim, dim, x + int64_t(i) * dim);
  if (s.pos_embd) {
    // Positions pos..pos+n-1 are consecutive rows of the table: convert them into xb, then add.
    to_f32(*s.pos_embd, int64_t(pos) * dim, int64_t(n) * dim, s.xb.data());
    fwd::add_inplace(x, s.xb.data(), int64_t(n) * dim, s.n_threads);
  }
}

namespace {

// logits[rows, n_vocab] for rows [first, first + rows) of the residual stream.
void head(ForwardState& s, int first, int rows, float* logits) {
  const int dim = s.c.dim;
  const float* x = s.x.data() + int64_t(first) * dim;
  float* xb = s.xb.data();  // [rows, dim]
  if (s.c.arch == Arch::GPT2)
    fwd::layernorm(x, s.out_norm_w, s.out_norm_b, rows, dim, s.c.norm_eps, xb, s.n_threads);
  else
    fwd::rmsnorm(x, s.out_norm_w, rows, dim, s.c.norm_eps, xb, s.n_threads);
  fwd::linear(s, *s.output, xb, rows, logits);
}

}  // namespace

Runner::Runner(const Model& model, int n_ctx, int n_threads) : model_(model), n_ctx_(n_ctx), state_(nullptr) {
  model.validate_weights();  // every tensor the forward pass reads exists with the right shape
  if (n_ctx <= 0) fail(model.path, fmt::format("context length {} must be positive", n_ctx), "pass --ctx N with N > 0");
  state_ = new State(model, n_ctx, resolve_threads(n_threads));
}

Runner::~Runner() { delete state_; }

void Runner::set_matmul_observer(MatmulObserver observer) {
  State& s = *state_;
  s.observer = std::move(observer);
  s.weight_names.clear();
  if (s.observer)
    for (const auto& [name, view] : model_.weights) s.weight_names.emplace(&view, name);
}

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

  const int64_t V = c.n_vocab;
  logits.resize(size_t(all_logits ? n : 1) * size_t(V));

  for (int c0 = 0; c0 < n; c0 += kMaxBatch) {
    const int m = std::min(kMaxBatch, n - c0);
    const int p = pos + c0;
    s.reserve(m);
    fwd::embed(s, tokens.data() + c0, m, p);
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
