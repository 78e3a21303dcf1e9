#include "model/synthetic.h"

#include <cmath>
#include <random>

namespace lowbit {
namespace {

void add_tensor(Model& m, const std::string& name, std::vector<int64_t> shape, std::mt19937_64& rng, float scale,
                float offset) {
  TensorView t;
  t.name = name;
  t.dtype = DType::F32;
  t.shape = std::move(shape);
  std::vector<float> data(size_t(t.numel()));
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (float& x : data) x = offset + scale * dist(rng);
  m.owned.push_back(std::move(data));
  t.data = m.owned.back().data();
  t.nbytes = m.owned.back().size() * sizeof(float);
  m.weights[name] = t;
}

}  // namespace

std::unique_ptr<Model> make_synthetic_model(const ModelConfig& c, uint64_t seed) {
  c.validate("synthetic model");
  auto m = std::make_unique<Model>();
  m->path = "synthetic";
  m->format = "synthetic";
  m->config = c;
  m->owned.reserve(size_t(16 * c.n_layers + 8));  // views point into these buffers: no reallocation
  std::mt19937_64 rng(seed);
  const int64_t d = c.dim, h = c.hidden_dim, v = c.n_vocab;
  const float s_in = 1.0f / std::sqrt(float(d)), s_hid = 1.0f / std::sqrt(float(h));
  auto layer = [](int l, const char* s) { return layer_tensor_name(l, s); };
  add_tensor(*m, "token_embd.weight", {v, d}, rng, 1.0f, 0.0f);
  if (!c.tied_embeddings) add_tensor(*m, "output.weight", {v, d}, rng, s_in, 0.0f);
  if (c.arch == Arch::Llama) {
    for (int l = 0; l < c.n_layers; ++l) {
      add_tensor(*m, layer(l, "attn_norm.weight"), {d}, rng, 0.05f, 1.0f);
      add_tensor(*m, layer(l, "attn_q.weight"), {c.q_dim(), d}, rng, s_in, 0.0f);
      add_tensor(*m, layer(l, "attn_k.weight"), {c.kv_dim(), d}, rng, s_in, 0.0f);
      add_tensor(*m, layer(l, "attn_v.weight"), {c.kv_dim(), d}, rng, s_in, 0.0f);
      if (c.attn_qkv_bias) {
        add_tensor(*m, layer(l, "attn_q.bias"), {c.q_dim()}, rng, 0.02f, 0.0f);
        add_tensor(*m, layer(l, "attn_k.bias"), {c.kv_dim()}, rng, 0.02f, 0.0f);
        add_tensor(*m, layer(l, "attn_v.bias"), {c.kv_dim()}, rng, 0.02f, 0.0f);
      }
      add_tensor(*m, layer(l, "attn_output.weight"), {d, c.q_dim()}, rng, s_in, 0.0f);
      add_tensor(*m, layer(l, "ffn_norm.weight"), {d}, rng, 0.05f, 1.0f);
      add_tensor(*m, layer(l, "ffn_gate.weight"), {h, d}, rng, s_in, 0.0f);
      add_tensor(*m, layer(l, "ffn_up.weight"), {h, d}, rng, s_in, 0.0f);
      add_tensor(*m, layer(l, "ffn_down.weight"), {d, h}, rng, s_hid, 0.0f);
    }
    add_tensor(*m, "output_norm.weight", {d}, rng, 0.05f, 1.0f);
  } else {
    add_tensor(*m, "position_embd.weight", {c.max_seq, d}, rng, 0.1f, 0.0f);
    for (int l = 0; l < c.n_layers; ++l) {
      add_tensor(*m, layer(l, "attn_norm.weight"), {d}, rng, 0.05f, 1.0f);
      add_tensor(*m, layer(l, "attn_norm.bias"), {d}, rng, 0.02f, 0.0f);
      add_tensor(*m, layer(l, "attn_qkv.weight"), {3 * d, d}, rng, s_in, 0.0f);
      add_tensor(*m, layer(l, "attn_qkv.bias"), {3 * d}, rng, 0.02f, 0.0f);
      add_tensor(*m, layer(l, "attn_output.weight"), {d, d}, rng, s_in, 0.0f);
      add_tensor(*m, layer(l, "attn_output.bias"), {d}, rng, 0.02f, 0.0f);
      add_tensor(*m, layer(l, "ffn_norm.weight"), {d}, rng, 0.05f, 1.0f);
      add_tensor(*m, layer(l, "ffn_norm.bias"), {d}, rng, 0.02f, 0.0f);
      add_tensor(*m, layer(l, "ffn_up.weight"), {h, d}, rng, s_in, 0.0f);
      add_tensor(*m, layer(l, "ffn_up.bias"), {h}, rng, 0.02f, 0.0f);
      add_tensor(*m, layer(l, "ffn_down.weight"), {d, h}, rng, s_hid, 0.0f);
      add_tensor(*m, layer(l, "ffn_down.bias"), {d}, rng, 0.02f, 0.0f);
    }
    add_tensor(*m, "output_norm.weight", {d}, rng, 0.05f, 1.0f);
    add_tensor(*m, "output_norm.bias", {d}, rng, 0.02f, 0.0f);
  }
  m->validate_weights();
  return m;
}

ModelConfig llama7b_shaped_config(int n_layers) {
  ModelConfig c;
  c.arch = Arch::Llama;
  c.arch_name = "synthetic-llama-7b-shaped";
  c.n_vocab = 32000;
  c.dim = 4096;
  c.n_layers = n_layers;
  c.n_heads = 32;
  c.n_kv_heads = 32;
  c.head_dim = 128;
  c.hidden_dim = 11008;
  c.max_seq = 4096;
  c.norm_eps = 1e-5f;
  return c;
}

}  // namespace lowbit
