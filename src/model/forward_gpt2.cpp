// GPT-2 decoder layer (pre-LayerNorm, learned positions added at embedding time):
//   x += Wo · Attention(split(Wqkv · n1 + bqkv)) + bo,   n1 = LayerNorm(x; attn_norm)
//   x += Wdown · gelu_new(Wup · n2 + bup) + bdown,        n2 = LayerNorm(x; ffn_norm)
#include <cmath>
#include <cstring>

#include "model/forward_state.h"

namespace lowbit::fwd {

namespace {

// gelu_new (tanh approximation), as GPT-2 was trained with.
inline float gelu_new(float x) {
  const float k = 0.7978845608028654f;  // sqrt(2 / pi)
  return 0.5f * x * (1.0f + std::tanh(k * (x + 0.044715f * x * x * x)));
}

}  // namespace

void gpt2_attention(ForwardState& s, int l, int n, int pos) {
  const ModelConfig& c = s.c;
  const ForwardState::Layer& w = s.layers[size_t(l)];
  const int dim = c.dim;
  const int nt = s.n_threads;
  float* x = s.x.data();      // [n, dim]
  float* xb = s.xb.data();    // [n, dim]
  float* qkv = s.q.data();    // [n, 3*dim]: q | k | v per row
  float* att = s.att.data();  // [n, dim]

  layernorm(x, w.attn_norm_w, w.attn_norm_b, n, dim, c.norm_eps, xb, nt);
  linear(s, *w.wqkv, xb, n, qkv);
  add_bias(qkv, w.bqkv, n, 3 * dim);
  // GPT-2 has n_kv_heads == n_heads, so kv_dim == dim: copy k and v into the cache.
  for (int i = 0; i < n; ++i) {
    const float* row = qkv + int64_t(i) * 3 * dim;
    std::memcpy(s.k_row(l, pos + i), row + dim, size_t(dim) * sizeof(float));
    std::memcpy(s.v_row(l, pos + i), row + 2 * dim, size_t(dim) * sizeof(float));
  }
  attention(s, l, qkv, 3 * int64_t(dim), n, pos, att);
  linear(s, *w.wo, att, n, xb);
  add_bias(xb, w.bo, n, dim);
  add_inplace(x, xb, int64_t(n) * dim, nt);
}

void gpt2_ffn(ForwardState& s, int l, int n) {
  const ModelConfig& c = s.c;
  const ForwardState::Layer& w = s.layers[size_t(l)];
  const int dim = c.dim, hidden = c.hidden_dim;
  const int nt = s.n_threads;
  float* x = s.x.data();      // [n, dim]
  float* xb = s.xb.data();    // [n, dim]
  float* hb = s.hb.data();    // [n, hidden]

  layernorm(x, w.ffn_norm_w, w.ffn_norm_b, n, dim, c.norm_eps, xb, nt);
  linear(s, *w.w_up, xb, n, hb);
#pragma omp parallel for num_threads(nt) if (int64_t(n) * hidden >= (1 << 16))
  for (int i = 0; i < n; ++i) {
    float* h = hb + int64_t(i) * hidden;
    for (int j = 0; j < hidden; ++j) h[j] = gelu_new(h[j] + w.b_up[j]);
  }
  linear(s, *w.w_down, hb, n, xb);
  add_bias(xb, w.b_down, n, dim);
  add_inplace(x, xb, int64_t(n) * dim, nt);
}

void gpt2_layer(ForwardState& s, int l, int n, int pos) {
  gpt2_attention(s, l, n, pos);
  gpt2_ffn(s, l, n);
}

}  // namespace lowbit::fwd
