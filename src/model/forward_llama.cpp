// Llama-family decoder layer (Llama 1/2/3, Mistral, Qwen2 with q/k/v bias, llama2.c):
//   x += Wo · Attention(RoPE(Wq·n1 + bq), RoPE(Wk·n1 + bk), Wv·n1 + bv),   n1 = RMSNorm(x) * attn_norm
//   x += Wdown · (silu(Wgate·n2) * (Wup·n2)),                             n2 = RMSNorm(x) * ffn_norm
#include <fmt/format.h>

#include <cmath>
#include <numbers>

#include "lowbit/error.h"
#include "model/forward_state.h"

namespace lowbit::fwd {

// inv_freq[i] = rope_theta^(-2i / head_dim), i < head_dim/2, then rope_scaling:
//   "linear": positions divided by `factor`  ==  inv_freq / factor.
//   "llama3": long wavelengths (> original_max_position / low_freq_factor) are
//             divided by `factor`, short ones (< original_max_position / high_freq_factor)
//             kept, and the band in between interpolated smoothly (Llama 3.1).
void init_rope(ForwardState& s) {
  const ModelConfig& c = s.c;
  const int half = c.head_dim / 2;
  const RopeScaling& rs = c.rope_scaling;
  if (!rs.type.empty() && rs.type != "linear" && rs.type != "llama3")
    fail(s.model.path, fmt::format("rope_scaling type '{}' is not supported", rs.type),
         "supported: none, 'linear', 'llama3'");
  if (!rs.type.empty() && !(rs.factor > 0))
    fail(s.model.path, fmt::format("rope_scaling factor {} must be positive", rs.factor), "check config.json");
  if (rs.type == "llama3" && !(rs.high_freq_factor > rs.low_freq_factor))
    fail(s.model.path, "rope_scaling: high_freq_factor must exceed low_freq_factor", "check config.json");

  s.inv_freq.resize(size_t(half));
  for (int i = 0; i < half; ++i) {
    double f = std::pow(double(c.rope_theta), -2.0 * i / double(c.head_dim));
    if (rs.type == "linear") {
      f /= rs.factor;
    } else if (rs.type == "llama3") {
      const double old_ctx = rs.original_max_position;
      const double low_freq_wavelen = old_ctx / rs.low_freq_factor;
      const double high_freq_wavelen = old_ctx / rs.high_freq_factor;
      const double wavelen = 2.0 * std::numbers::pi / f;
      if (wavelen > low_freq_wavelen) {
        f /= rs.factor;
      } else if (wavelen >= high_freq_wavelen) {
        const double smooth = (old_ctx / wavelen - rs.low_freq_factor) / (rs.high_freq_factor - rs.low_freq_factor);
        f = (1.0 - smooth) * f / rs.factor + smooth * f;
      }
    }
    s.inv_freq[size_t(i)] = float(f);
  }
}

// cos/sin of angle (pos + i) * inv_freq[j] for the batch: [n, head_dim/2].
// f32 angles, as llama.cpp and transformers compute them.
void rope_tables(ForwardState& s, int n, int pos) {
  const int half = s.c.head_dim / 2;
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < half; ++j) {
      const float angle = float(pos + i) * s.inv_freq[size_t(j)];
      s.rope_cos[size_t(i) * half + j] = std::cos(angle);
      s.rope_sin[size_t(i) * half + j] = std::sin(angle);
    }
}

namespace {

// Rotates n rows (row i at position pos+i; row stride `stride`) of `n_heads`
// concatenated heads in place. Pairs per head: Interleaved (2j, 2j+1), NeoX (j, j + hd/2).
void apply_rope(ForwardState& s, float* rows, int64_t stride, int n_heads, int n) {
  const int hd = s.c.head_dim, half = hd / 2;
  const bool neox = s.c.rope_style == RopeStyle::NeoX;
#pragma omp parallel for num_threads(s.n_threads) if (int64_t(n) * n_heads * hd >= (1 << 16))
  for (int i = 0; i < n; ++i) {
    const float* cs = s.rope_cos.data() + int64_t(i) * half;
    const float* sn = s.rope_sin.data() + int64_t(i) * half;
    for (int h = 0; h < n_heads; ++h) {
      float* v = rows + i * stride + int64_t(h) * hd;
      for (int j = 0; j < half; ++j) {
        float& a = neox ? v[j] : v[2 * j];
        float& b = neox ? v[j + half] : v[2 * j + 1];
        const float a0 = a, b0 = b;
        a = a0 * cs[j] - b0 * sn[j];
        b = a0 * sn[j] + b0 * cs[j];
      }
    }
  }
}

}  // namespace

void llama_attention(ForwardState& s, int l, int n, int pos) {
  const ModelConfig& c = s.c;
  const ForwardState::Layer& w = s.layers[size_t(l)];
  const int dim = c.dim, q_dim = c.q_dim(), kv_dim = c.kv_dim();
  const int nt = s.n_threads;
  float* x = s.x.data();      // [n, dim]
  float* xb = s.xb.data();    // [n, dim]
  float* q = s.q.data();      // [n, q_dim]
  float* att = s.att.data();  // [n, q_dim]
  float* k = s.k_row(l, pos); // [n, kv_dim], rows pos.. of the cache
  float* v = s.v_row(l, pos); // [n, kv_dim]

  rmsnorm(x, w.attn_norm_w, n, dim, c.norm_eps, xb, nt);
  linear(s, *w.wq, xb, n, q);
  linear(s, *w.wk, xb, n, k);
  linear(s, *w.wv, xb, n, v);
  add_bias(q, w.bq, n, q_dim);
  add_bias(k, w.bk, n, kv_dim);
  add_bias(v, w.bv, n, kv_dim);
  apply_rope(s, q, q_dim, c.n_heads, n);
  apply_rope(s, k, kv_dim, c.n_kv_heads, n);
  attention(s, l, q, q_dim, n, pos, att);
  linear(s, *w.wo, att, n, xb);  // [n, dim]
  add_inplace(x, xb, int64_t(n) * dim, nt);
}

void llama_ffn(ForwardState& s, int l, int n) {
  const ModelConfig& c = s.c;
  const ForwardState::Layer& w = s.layers[size_t(l)];
  const int dim = c.dim, hidden = c.hidden_dim;
  const int nt = s.n_threads;
  float* x = s.x.data();      // [n, dim]
  float* xb = s.xb.data();    // [n, dim]
  float* hb = s.hb.data();    // [n, hidden]
  float* hb2 = s.hb2.data();  // [n, hidden]

  rmsnorm(x, w.ffn_norm_w, n, dim, c.norm_eps, xb, nt);
  linear(s, *w.w_gate, xb, n, hb);
  linear(s, *w.w_up, xb, n, hb2);
  const int64_t count = int64_t(n) * hidden;
#pragma omp parallel for num_threads(nt) if (count >= (1 << 16))
  for (int64_t i = 0; i < count; ++i) {
    const float g = hb[i];
    hb[i] = g / (1.0f + std::exp(-g)) * hb2[i];  // silu(gate) * up
  }
  linear(s, *w.w_down, hb, n, xb);  // [n, dim]
  add_inplace(x, xb, int64_t(n) * dim, nt);
}

void llama_layer(ForwardState& s, int l, int n, int pos) {
  llama_attention(s, l, n, pos);
  llama_ffn(s, l, n);
}

}  // namespace lowbit::fwd
