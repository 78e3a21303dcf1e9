#include "model/model.h"

#include <fmt/format.h>

#include "lowbit/error.h"
#include "model/qlinear.h"

namespace lowbit {

const TensorView* Model::find_weight(const std::string& name) const {
  auto it = weights.find(name);
  return it == weights.end() ? nullptr : &it->second;
}

const TensorView& Model::weight(const std::string& name) const {
  const TensorView* t = find_weight(name);
  if (!t) fail(path, "tensor '" + name + "' is missing", "the checkpoint does not match its architecture");
  return *t;
}

const Tokenizer& Model::tok() const {
  if (!tokenizer)
    fail(path, "no tokenizer found with this model",
         "pass --tokenizer PATH (tokenizer.model, tokenizer.json, vocab.json or a llama2.c tokenizer .bin)");
  return *tokenizer;
}

int64_t Model::n_params() const {
  int64_t n = 0;
  for (const auto& [name, t] : weights) n += t.numel();
  return n;
}

void Model::set_qlinear(const std::string& name, std::shared_ptr<const QLinear> q) {
  LOWBIT_ASSERT(q != nullptr);
  TensorView v;
  v.name = name;
  v.dtype = DType::QLINEAR;
  v.shape = {q->n_out(), q->n_in()};
  v.nbytes = q->nbytes();
  v.qlinear = q.get();
  qlinears.push_back(std::move(q));
  weights[name] = std::move(v);
}

void Model::validate_weights() const {
  const ModelConfig& c = config;
  auto expect = [&](const std::string& name, std::vector<int64_t> shape, bool required = true) {
    const TensorView* t = find_weight(name);
    if (!t) {
      if (required) fail(path, "tensor '" + name + "' is missing", "the checkpoint does not match its config");
      return;
    }
    if (t->shape != shape) {
      TensorView want;
      want.shape = shape;
      fail(path, fmt::format("tensor '{}' has shape {}, expected {}", name, t->shape_str(), want.shape_str()),
           "the checkpoint does not match its config");
    }
    const bool matrix = shape.size() == 2;
    if (t->dtype != DType::F32 && t->dtype != DType::F16 && t->dtype != DType::BF16 &&
        !(matrix && (t->dtype == DType::QUANT || t->dtype == DType::QLINEAR)))
      fail(path, fmt::format("tensor '{}' has type {}, which lowbit cannot run", name, t->type_name()),
           matrix ? "weight matrices must be f32, f16, bf16 or a quantized format of the formats table"
                  : "norm and bias vectors must be f32, f16 or bf16");
  };
  const int64_t d = c.dim, v = c.n_vocab, h = c.hidden_dim;
  expect("token_embd.weight", {v, d});
  if (!c.tied_embeddings) expect("output.weight", {v, d});
  if (c.arch == Arch::Llama) {
    expect("output_norm.weight", {d});
    for (int l = 0; l < c.n_layers; ++l) {
      auto n = [&](const char* s) { return layer_tensor_name(l, s); };
      expect(n("attn_norm.weight"), {d});
      expect(n("attn_q.weight"), {c.q_dim(), d});
      expect(n("attn_k.weight"), {c.kv_dim(), d});
      expect(n("attn_v.weight"), {c.kv_dim(), d});
      expect(n("attn_output.weight"), {d, c.q_dim()});
      if (c.attn_qkv_bias) {
        expect(n("attn_q.bias"), {c.q_dim()});
        expect(n("attn_k.bias"), {c.kv_dim()});
        expect(n("attn_v.bias"), {c.kv_dim()});
      }
      expect(n("ffn_norm.weight"), {d});
      expect(n("ffn_gate.weight"), {h, d});
      expect(n("ffn_up.weight"), {h, d});
      expect(n("ffn_down.weight"), {d, h});
    }
  } else {
    expect("position_embd.weight", {c.max_seq, d});
    expect("output_norm.weight", {d});
    expect("output_norm.bias", {d});
    for (int l = 0; l < c.n_layers; ++l) {
      auto n = [&](const char* s) { return layer_tensor_name(l, s); };
      expect(n("attn_norm.weight"), {d});
      expect(n("attn_norm.bias"), {d});
      expect(n("attn_qkv.weight"), {3 * d, d});
      expect(n("attn_qkv.bias"), {3 * d});
      expect(n("attn_output.weight"), {d, d});
      expect(n("attn_output.bias"), {d});
      expect(n("ffn_norm.weight"), {d});
      expect(n("ffn_norm.bias"), {d});
      expect(n("ffn_up.weight"), {h, d});
      expect(n("ffn_up.bias"), {h});
      expect(n("ffn_down.weight"), {d, h});
      expect(n("ffn_down.bias"), {d});
    }
  }
}

}  // namespace lowbit
