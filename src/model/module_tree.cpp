#include "model/module_tree.h"

#include <vector>

#include <fmt/format.h>

#include "eval/memory_estimate.h"
#include "model/qlinear.h"

namespace lowbit {
namespace {

struct Lines {
  std::vector<std::string> text;  // module text, indented
  std::vector<std::string> note;  // "f32 16.00 KiB" or ""
  void add(int indent, std::string s, std::string n = "") {
    text.push_back(std::string(size_t(indent) * 2, ' ') + std::move(s));
    note.push_back(std::move(n));
  }
  void append(const Lines& o) {
    text.insert(text.end(), o.text.begin(), o.text.end());
    note.insert(note.end(), o.note.begin(), o.note.end());
  }
  bool operator==(const Lines& o) const { return text == o.text && note == o.note; }
};

// "f32 16.00 KiB" for the named tensors summed (weight + bias).
std::string note_for(const Model& m, std::initializer_list<std::string> names) {
  std::string type;
  double bytes = 0;
  for (const auto& n : names) {
    if (const TensorView* t = m.find_weight(n)) {
      if (type.empty()) type = t->type_name();
      bytes += double(t->nbytes);
    }
  }
  return type.empty() ? "" : fmt::format("{} {}", type, format_bytes(bytes));
}

std::string linear(const Model& m, const std::string& w, const std::string& b) {
  const TensorView& t = m.weight(w);
  if (t.dtype == DType::QLINEAR && t.qlinear) return qlinear_repr(*t.qlinear, m.find_weight(b) != nullptr);
  return fmt::format("Linear(in_features={}, out_features={}, bias={})", t.shape[1], t.shape[0],
                     m.find_weight(b) ? "True" : "False");
}

Lines llama_layer(const Model& m, int l) {
  const ModelConfig& c = m.config;
  auto n = [&](const char* s) { return layer_tensor_name(l, s); };
  auto lin = [&](int ind, const char* field, const char* base) {
    std::string w = n((std::string(base) + ".weight").c_str()), b = n((std::string(base) + ".bias").c_str());
    return std::pair<std::string, std::string>(fmt::format("({}): {}", field, linear(m, w, b)), note_for(m, {w, b}));
  };
  Lines L;
  L.add(0, "(self_attn): LlamaAttention(");
  for (auto [f, base] : {std::pair{"q_proj", "attn_q"}, {"k_proj", "attn_k"}, {"v_proj", "attn_v"}, {"o_proj", "attn_output"}}) {
    auto [s, note] = lin(1, f, base);
    L.add(1, s, note);
  }
  L.add(0, ")");
  L.add(0, "(mlp): LlamaMLP(");
  for (auto [f, base] : {std::pair{"gate_proj", "ffn_gate"}, {"up_proj", "ffn_up"}, {"down_proj", "ffn_down"}}) {
    auto [s, note] = lin(1, f, base);
    L.add(1, s, note);
  }
  L.add(1, "(act_fn): SiLU()");
  L.add(0, ")");
  // A norm whose output the linears it feeds quantize (W8A8, LLM.int8) prints as
  // quanto's quantized-activation module does.
  auto norm = [&](const char* field, const char* feeds) {
    const TensorView* w = m.find_weight(n(feeds));
    const bool q = w && w->dtype == DType::QLINEAR && w->qlinear && w->qlinear->quantizes_activations();
    return fmt::format("({}): {}LlamaRMSNorm(({},), eps={:g}{})", field, q ? "Q" : "", c.dim, c.norm_eps,
                       q ? ", activations=qint8" : "");
  };
  L.add(0, norm("input_layernorm", "attn_q.weight"), note_for(m, {n("attn_norm.weight")}));
  L.add(0, norm("post_attention_layernorm", "ffn_up.weight"), note_for(m, {n("ffn_norm.weight")}));
  return L;
}

Lines gpt2_layer(const Model& m, int l) {
  const ModelConfig& c = m.config;
  auto n = [&](const char* s) { return layer_tensor_name(l, s); };
  auto conv = [&](const char* base) {
    const TensorView& t = m.weight(n((std::string(base) + ".weight").c_str()));
    return fmt::format("Conv1D(nf={}, nx={})", t.shape[0], t.shape[1]);
  };
  auto note = [&](const char* base) {
    return note_for(m, {n((std::string(base) + ".weight").c_str()), n((std::string(base) + ".bias").c_str())});
  };
  std::string ln = fmt::format("LayerNorm(({},), eps={:g}, elementwise_affine=True)", c.dim, c.norm_eps);
  Lines L;
  L.add(0, "(ln_1): " + ln, note("attn_norm"));
  L.add(0, "(attn): GPT2Attention(");
  L.add(1, "(c_attn): " + conv("attn_qkv"), note("attn_qkv"));
  L.add(1, "(c_proj): " + conv("attn_output"), note("attn_output"));
  L.add(0, ")");
  L.add(0, "(ln_2): " + ln, note("ffn_norm"));
  L.add(0, "(mlp): GPT2MLP(");
  L.add(1, "(c_fc): " + conv("ffn_up"), note("ffn_up"));
  L.add(1, "(c_proj): " + conv("ffn_down"), note("ffn_down"));
  L.add(1, "(act): NewGELUActivation()");
  L.add(0, ")");
  return L;
}

// Appends the layer list, collapsing runs of identical layers.
void add_layers(Lines& out, int indent, const char* block_name, const std::vector<Lines>& layers) {
  size_t i = 0;
  while (i < layers.size()) {
    size_t j = i + 1;
    while (j < layers.size() && layers[j] == layers[i]) ++j;
    std::string head = j - i == 1 ? fmt::format("({}): {}(", i, block_name)
                                  : fmt::format("({}-{}): {} x {}(", i, j - 1, j - i, block_name);
    out.add(indent, head);
    for (size_t k = 0; k < layers[i].text.size(); ++k) out.add(indent + 1, layers[i].text[k], layers[i].note[k]);
    out.add(indent, ")");
    i = j;
  }
}

}  // namespace

std::string module_tree(const Model& m) {
  const ModelConfig& c = m.config;
  Lines L;
  std::vector<Lines> layers;
  std::string lm_note = c.tied_embeddings ? "tied to the token embedding" : note_for(m, {"output.weight"});
  if (c.arch == Arch::Llama) {
    for (int l = 0; l < c.n_layers; ++l) layers.push_back(llama_layer(m, l));
    L.add(0, "LlamaForCausalLM(");
    L.add(1, "(model): LlamaModel(");
    L.add(2, fmt::format("(embed_tokens): Embedding({}, {})", c.n_vocab, c.dim), note_for(m, {"token_embd.weight"}));
    L.add(2, "(layers): ModuleList(");
    add_layers(L, 3, "LlamaDecoderLayer", layers);
    L.add(2, ")");
    L.add(2, fmt::format("(norm): LlamaRMSNorm(({},), eps={:g})", c.dim, c.norm_eps), note_for(m, {"output_norm.weight"}));
    L.add(1, ")");
  } else {
    for (int l = 0; l < c.n_layers; ++l) layers.push_back(gpt2_layer(m, l));
    L.add(0, "GPT2LMHeadModel(");
    L.add(1, "(transformer): GPT2Model(");
    L.add(2, fmt::format("(wte): Embedding({}, {})", c.n_vocab, c.dim), note_for(m, {"token_embd.weight"}));
    L.add(2, fmt::format("(wpe): Embedding({}, {})", c.max_seq, c.dim), note_for(m, {"position_embd.weight"}));
    L.add(2, "(h): ModuleList(");
    add_layers(L, 3, "GPT2Block", layers);
    L.add(2, ")");
    L.add(2, fmt::format("(ln_f): LayerNorm(({},), eps={:g}, elementwise_affine=True)", c.dim, c.norm_eps),
          note_for(m, {"output_norm.weight", "output_norm.bias"}));
    L.add(1, ")");
  }
  L.add(1, fmt::format("(lm_head): Linear(in_features={}, out_features={}, bias=False)", c.dim, c.n_vocab), lm_note);
  L.add(0, ")");

  size_t width = 0;
  for (const auto& t : L.text) width = std::max(width, t.size());
  std::string out;
  for (size_t i = 0; i < L.text.size(); ++i) {
    out += L.text[i];
    if (!L.note[i].empty()) out += std::string(width + 2 - L.text[i].size(), ' ') + "# " + L.note[i];
    out += "\n";
  }
  return out;
}

}  // namespace lowbit
