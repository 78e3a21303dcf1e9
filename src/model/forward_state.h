// Internal to the forward pass (forward.cpp, forward_llama.cpp, forward_gpt2.cpp):
// the Runner's state — resolved weights, KV cache, scratch buffers — and the
// building blocks the per-family layers share. Not part of the library API.
#pragma once
#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <memory>
#include <vector>

#include "model/forward.h"
#include "model/matmul.h"

namespace lowbit {

// (Runner::State is private to Runner; it derives from this so the layer
// functions below, which are not Runner members, can take it.)
struct ForwardState {
  // kv_layers: layers the KV cache holds (-1: all; 1: one shared slot, for
  // layer-by-layer calibration, which runs one layer at a time over a sample).
  ForwardState(const Model& model, int n_ctx, int n_threads, int kv_layers = -1);

  const Model& model;
  const ModelConfig& c;
  int n_ctx;
  int n_threads;
  int n_past = 0;  // tokens currently in the KV cache

  // Weights of one decoder layer. Matrices stay TensorViews (any of f32/f16/bf16,
  // read by matmul); small vectors (norms, biases) are f32 pointers, converted
  // once at construction when the file stores them as f16/bf16. Absent -> null.
  struct Layer {
    const float* attn_norm_w = nullptr;  // [dim]
    const float* attn_norm_b = nullptr;  // [dim]          GPT-2
    const TensorView* wq = nullptr;      // [q_dim, dim]   Llama
    const TensorView* wk = nullptr;      // [kv_dim, dim]  Llama
    const TensorView* wv = nullptr;      // [kv_dim, dim]  Llama
    const float* bq = nullptr;           // [q_dim]        Qwen2
    const float* bk = nullptr;           // [kv_dim]       Qwen2
    const float* bv = nullptr;           // [kv_dim]       Qwen2
    const TensorView* wqkv = nullptr;    // [3*dim, dim]   GPT-2 (rows: q, k, v)
    const float* bqkv = nullptr;         // [3*dim]        GPT-2
    const TensorView* wo = nullptr;      // [dim, q_dim]
    const float* bo = nullptr;           // [dim]          GPT-2
    const float* ffn_norm_w = nullptr;   // [dim]
    const float* ffn_norm_b = nullptr;   // [dim]          GPT-2
    const TensorView* w_gate = nullptr;  // [hidden, dim]  Llama
    const TensorView* w_up = nullptr;    // [hidden, dim]
    const float* b_up = nullptr;         // [hidden]       GPT-2
    const TensorView* w_down = nullptr;  // [dim, hidden]
    const float* b_down = nullptr;       // [dim]          GPT-2
  };
  std::vector<Layer> layers;
  const TensorView* tok_embd = nullptr;  // [n_vocab, dim]
  const TensorView* pos_embd = nullptr;  // [max_seq, dim]  GPT-2
  const TensorView* output = nullptr;    // [n_vocab, dim]  (token_embd when tied)
  const float* out_norm_w = nullptr;     // [dim]
  const float* out_norm_b = nullptr;     // [dim]  GPT-2

  // KV cache, f32 [n_layers][n_ctx][kv_dim]. Rows of consecutive positions are
  // contiguous, so a batch's K/V projections are written straight into it.
  std::unique_ptr<float[]> k_cache, v_cache;
  int kv_slots = 0;  // layers held; layer l uses slot l % kv_slots
  float* k_row(int layer, int pos) { return k_cache.get() + (int64_t(layer % kv_slots) * n_ctx + pos) * c.kv_dim(); }
  float* v_row(int layer, int pos) { return v_cache.get() + (int64_t(layer % kv_slots) * n_ctx + pos) * c.kv_dim(); }

  // RoPE (Llama): inverse frequencies [head_dim/2] after rope_scaling, and the
  // cos/sin of the current batch's positions [cap, head_dim/2].
  std::vector<float> inv_freq;
  std::vector<float> rope_cos, rope_sin;

  // Scratch, grown (never shrunk) to `cap` rows by reserve(); no per-token allocation.
  int cap = 0;
  std::vector<float> x;       // [cap, dim]          residual stream
  std::vector<float> xb;      // [cap, dim]          normed input / projection output
  std::vector<float> q;       // [cap, q_width]      Llama: q [q_dim]; GPT-2: fused qkv [3*dim]
  std::vector<float> att;     // [cap, q_dim]        attention output (heads concatenated)
  std::vector<float> hb, hb2; // [cap, hidden]       FFN activations
  int att_block = 1;          // query rows per attention task (depends on n_ctx only)
  std::vector<float> scores;  // [n_threads, att_block, n_ctx]  attention scores, one block per thread
  void reserve(int n_rows);

  // Calibration hook (Runner::set_matmul_observer) and the canonical name of
  // each weight view it reports.
  MatmulObserver observer;
  std::map<const TensorView*, std::string> weight_names;

  // f32 copies of small vectors stored as f16/bf16 (deque: addresses stay put).
  std::deque<std::vector<float>> converted;
  const float* vector_f32(const TensorView* t);  // null -> null; f32 -> the view's data
};

struct Runner::State : ForwardState {
  using ForwardState::ForwardState;
};

namespace fwd {

// Y[n, n_out] = X[n, n_in] · W^T, reporting X to the observer first when one is set.
void linear(ForwardState& s, const TensorView& W, const float* X, int n, float* Y);

// out[n, dim] = RMSNorm(x[n, dim]) * w
void rmsnorm(const float* x, const float* w, int n, int dim, float eps, float* out, int n_threads);
// out[n, dim] = LayerNorm(x[n, dim]) * w + b
void layernorm(const float* x, const float* w, const float* b, int n, int dim, float eps, float* out, int n_threads);
// y[n, width] += b[width] (row-wise); no-op when b is null
void add_bias(float* y, const float* b, int n, int width);
// x[i] += y[i]
void add_inplace(float* x, const float* y, int64_t count, int n_threads);
// Causal attention of n query rows (q[i] at position pos+i, row stride q_stride,
// heads concatenated) over the layer's KV cache rows [0, pos+i]. GQA: query head
// h reads KV head h / (n_heads / n_kv_heads). out: [n, q_dim].
void attention(ForwardState& s, int layer, const float* q, int64_t q_stride, int n, int pos, float* out);

// Llama family (forward_llama.cpp).
void init_rope(ForwardState& s);                  // fills inv_freq; throws on unknown rope_scaling
void rope_tables(ForwardState& s, int n, int pos); // rope_cos/sin for positions [pos, pos+n), once per batch
void llama_layer(ForwardState& s, int layer, int n, int pos);      // = attention then ffn
void llama_attention(ForwardState& s, int layer, int n, int pos);  // x += attention block (needs rope_tables)
void llama_ffn(ForwardState& s, int layer, int n);                 // x += feed-forward block
// GPT-2 (forward_gpt2.cpp).
void gpt2_layer(ForwardState& s, int layer, int n, int pos);
void gpt2_attention(ForwardState& s, int layer, int n, int pos);
void gpt2_ffn(ForwardState& s, int layer, int n);

// x[n, dim] = token_embd[tokens] (+ position_embd[pos + i] for GPT-2)  (forward.cpp)
void embed(ForwardState& s, const int32_t* tokens, int n, int pos);

}  // namespace fwd
}  // namespace lowbit
