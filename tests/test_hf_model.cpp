// Hugging Face folders: stories260K-hf, synthetic GPT-2 (Conv1D transposes),
// Qwen2 biases, shards, rope_scaling, and config errors.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/half.h"
#include "io/hf_model.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "lowbit/error.h"
#include "paths.h"

namespace lowbit {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string fresh_dir(const std::string& name) {
  fs::path d = fs::path(test::temp_dir()) / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d.string();
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

void expect_error(const std::function<void()>& f, const std::vector<std::string>& fragments) {
  try {
    f();
    ADD_FAILURE() << "expected lowbit::Error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const auto& frag : fragments) EXPECT_NE(msg.find(frag), std::string::npos) << "'" << frag << "' not in: " << msg;
  }
}

// A deterministic value per (tensor, element), exactly representable in f16 and bf16.
float value_at(size_t tensor, int64_t k) { return float(int(tensor % 7) - 3) + float(k % 64) / 8.0f; }

std::vector<uint8_t> encode(DType t, const std::vector<float>& v) {
  std::vector<uint8_t> out(v.size() * dtype_size(t));
  for (size_t i = 0; i < v.size(); ++i) {
    if (t == DType::F32) {
      std::memcpy(&out[4 * i], &v[i], 4);
    } else {
      const uint16_t h = t == DType::F16 ? f32_to_f16(v[i]) : f32_to_bf16(v[i]);
      std::memcpy(&out[2 * i], &h, 2);
    }
  }
  return out;
}

int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

struct Spec {
  std::string name;
  std::vector<int64_t> shape;
};

// Writes `tensors` (values from value_at) into `n_shards` files (+ index when > 1).
void write_tensors(const std::string& dir, const std::vector<Spec>& tensors, int n_shards = 1,
                   DType dtype = DType::F32) {
  json weight_map = json::object();
  for (int s = 0; s < n_shards; ++s) {
    const std::string file = n_shards == 1 ? "model.safetensors"
                                           : "model-0000" + std::to_string(s + 1) + "-of-0000" +
                                                 std::to_string(n_shards) + ".safetensors";
    SafetensorsWriter w(dir + "/" + file);
    w.set_metadata("format", "pt");
    for (size_t i = 0; i < tensors.size(); ++i) {
      if (int(i % size_t(n_shards)) != s) continue;
      std::vector<float> v(size_t(numel(tensors[i].shape)));
      for (size_t k = 0; k < v.size(); ++k) v[k] = value_at(i, int64_t(k));
      w.add(tensors[i].name, dtype, tensors[i].shape, encode(dtype, v));
      weight_map[tensors[i].name] = file;
    }
    w.finish();
  }
  if (n_shards > 1) write_text(dir + "/model.safetensors.index.json", json{{"weight_map", weight_map}}.dump(2));
}

// ---------------------------------------------------------------- stories260K

TEST(HfModel, LoadsStories260K) {
  Model m;
  load_hf_model(test::shared("models/stories260K-hf"), m);
  const ModelConfig& c = m.config;
  EXPECT_EQ(c.arch, Arch::Llama);
  EXPECT_EQ(c.arch_name, "LlamaForCausalLM");
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.hidden_dim, 172);
  EXPECT_EQ(c.n_layers, 5);
  EXPECT_EQ(c.n_heads, 8);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.n_vocab, 512);
  EXPECT_EQ(c.max_seq, 512);
  EXPECT_FLOAT_EQ(c.norm_eps, 1e-5f);
  EXPECT_FLOAT_EQ(c.rope_theta, 10000.0f);
  EXPECT_EQ(c.rope_style, RopeStyle::NeoX);
  EXPECT_TRUE(c.rope_scaling.type.empty());
  EXPECT_TRUE(c.tied_embeddings);
  EXPECT_FALSE(c.attn_qkv_bias);
  EXPECT_EQ(c.bos_id, 1);
  EXPECT_EQ(c.eos_id, 2);
  EXPECT_EQ(m.n_params(), 260032);
  EXPECT_EQ(m.find_weight("output.weight"), nullptr);
  EXPECT_EQ(m.tokenizer, nullptr);  // the folder ships no tokenizer file
  EXPECT_EQ(m.format, "safetensors");
  EXPECT_EQ(m.metadata.at("architecture"), "LlamaForCausalLM");
  EXPECT_EQ(m.metadata.at("torch_dtype"), "float32");

  // Canonical weights are views of the file's tensors (no copy), under the HF names of the table.
  SafetensorsFile f(test::shared("models/stories260K-hf/model.safetensors"));
  for (const auto& [name, w] : m.weights) {
    SCOPED_TRACE(name);
    auto hf = hf_tensor_name(Arch::Llama, name);
    ASSERT_TRUE(hf.has_value());
    const TensorView& raw = f.get(*hf);
    EXPECT_EQ(raw.shape, w.shape);
    ASSERT_EQ(raw.nbytes, w.nbytes);
    EXPECT_EQ(std::memcmp(raw.data, w.data, w.nbytes), 0);
  }
}

TEST(HfModel, NameTable) {
  EXPECT_EQ(hf_tensor_name(Arch::Llama, "blk.3.attn_q.weight"), "model.layers.3.self_attn.q_proj.weight");
  EXPECT_EQ(hf_tensor_name(Arch::Llama, "blk.12.ffn_down.weight"), "model.layers.12.mlp.down_proj.weight");
  EXPECT_EQ(hf_tensor_name(Arch::Llama, "output.weight"), "lm_head.weight");
  EXPECT_EQ(hf_tensor_name(Arch::Llama, "token_embd.weight"), "model.embed_tokens.weight");
  EXPECT_EQ(hf_tensor_name(Arch::Llama, "output_norm.weight"), "model.norm.weight");
  EXPECT_EQ(hf_tensor_name(Arch::GPT2, "blk.0.attn_qkv.weight"), "h.0.attn.c_attn.weight");
  EXPECT_EQ(hf_tensor_name(Arch::GPT2, "position_embd.weight"), "wpe.weight");
  EXPECT_FALSE(hf_tensor_name(Arch::Llama, "blk.x.attn_q.weight").has_value());
  EXPECT_FALSE(hf_tensor_name(Arch::Llama, "position_embd.weight").has_value());
}

// ---------------------------------------------------------------- GPT-2

constexpr int kGptVocab = 16, kGptDim = 8, kGptLayers = 2, kGptCtx = 12, kGptHidden = 32;

std::vector<Spec> gpt2_tensors(const std::string& prefix) {
  std::vector<Spec> t = {{prefix + "wte.weight", {kGptVocab, kGptDim}}, {prefix + "wpe.weight", {kGptCtx, kGptDim}},
                         {prefix + "ln_f.weight", {kGptDim}},           {prefix + "ln_f.bias", {kGptDim}}};
  for (int l = 0; l < kGptLayers; ++l) {
    const std::string h = prefix + "h." + std::to_string(l) + ".";
    for (const char* ln : {"ln_1", "ln_2"}) {
      t.push_back({h + ln + ".weight", {kGptDim}});
      t.push_back({h + ln + ".bias", {kGptDim}});
    }
    // Conv1D weights: [in, out].
    t.push_back({h + "attn.c_attn.weight", {kGptDim, 3 * kGptDim}});
    t.push_back({h + "attn.c_attn.bias", {3 * kGptDim}});
    t.push_back({h + "attn.c_proj.weight", {kGptDim, kGptDim}});
    t.push_back({h + "attn.c_proj.bias", {kGptDim}});
    t.push_back({h + "mlp.c_fc.weight", {kGptDim, kGptHidden}});
    t.push_back({h + "mlp.c_fc.bias", {kGptHidden}});
    t.push_back({h + "mlp.c_proj.weight", {kGptHidden, kGptDim}});
    t.push_back({h + "mlp.c_proj.bias", {kGptDim}});
    t.push_back({h + "attn.bias", {1, 1, kGptCtx, kGptCtx}});  // causal-mask buffer: ignored
  }
  return t;
}

json gpt2_config() {
  return {{"architectures", {"GPT2LMHeadModel"}},
          {"model_type", "gpt2"},
          {"vocab_size", kGptVocab},
          {"n_embd", kGptDim},
          {"n_layer", kGptLayers},
          {"n_head", 2},
          {"n_positions", kGptCtx},
          {"n_inner", nullptr},
          {"layer_norm_epsilon", 1e-5},
          {"activation_function", "gelu_new"}};
}

struct Gpt2Case {
  std::string prefix;
  DType dtype;
};

class HfGpt2 : public ::testing::TestWithParam<Gpt2Case> {};

TEST_P(HfGpt2, LoadsWithTransposedConv1D) {
  const auto& p = GetParam();
  const std::string dir = fresh_dir("gpt2-" + std::string(dtype_name(p.dtype)) + (p.prefix.empty() ? "" : "-prefixed"));
  write_text(dir + "/config.json", gpt2_config().dump(2));
  const std::vector<Spec> specs = gpt2_tensors(p.prefix);
  write_tensors(dir, specs, 1, p.dtype);

  Model m;
  load_hf_model(dir, m);
  const ModelConfig& c = m.config;
  EXPECT_EQ(c.arch, Arch::GPT2);
  EXPECT_EQ(c.dim, kGptDim);
  EXPECT_EQ(c.n_layers, kGptLayers);
  EXPECT_EQ(c.n_heads, 2);
  EXPECT_EQ(c.n_kv_heads, 2);
  EXPECT_EQ(c.head_dim, 4);
  EXPECT_EQ(c.hidden_dim, kGptHidden);  // n_inner null -> 4 * n_embd
  EXPECT_EQ(c.max_seq, kGptCtx);
  EXPECT_TRUE(c.tied_embeddings);        // GPT-2 default
  EXPECT_EQ(m.find_weight("output.weight"), nullptr);

  // Every Conv1D weight [in, out] appears as f32 [out, in] with W'[o][i] == W[i][o].
  const std::pair<const char*, const char*> conv1d[] = {{"attn_qkv.weight", "attn.c_attn.weight"},
                                                        {"attn_output.weight", "attn.c_proj.weight"},
                                                        {"ffn_up.weight", "mlp.c_fc.weight"},
                                                        {"ffn_down.weight", "mlp.c_proj.weight"}};
  for (int l = 0; l < kGptLayers; ++l) {
    for (auto [canon, hf] : conv1d) {
      const std::string hf_name = p.prefix + "h." + std::to_string(l) + "." + hf;
      SCOPED_TRACE(hf_name);
      size_t idx = 0;
      while (specs[idx].name != hf_name) ++idx;
      const int64_t n_in = specs[idx].shape[0], n_out = specs[idx].shape[1];
      const TensorView& w = m.weight(layer_tensor_name(l, canon));
      EXPECT_EQ(w.dtype, DType::F32);
      ASSERT_EQ(w.shape, (std::vector<int64_t>{n_out, n_in}));
      const float* d = static_cast<const float*>(w.data);
      for (int64_t o = 0; o < n_out; ++o)
        for (int64_t i = 0; i < n_in; ++i) ASSERT_EQ(d[o * n_in + i], value_at(idx, i * n_out + o)) << o << "," << i;
    }
  }
  // Non-Conv1D tensors stay views in the file's dtype.
  EXPECT_EQ(m.weight("token_embd.weight").dtype, p.dtype);
  EXPECT_EQ(m.weight("blk.1.ffn_up.bias").shape, (std::vector<int64_t>{kGptHidden}));
}

INSTANTIATE_TEST_SUITE_P(Layouts, HfGpt2,
                         ::testing::Values(Gpt2Case{"", DType::F32}, Gpt2Case{"transformer.", DType::F32},
                                           Gpt2Case{"", DType::F16}, Gpt2Case{"transformer.", DType::BF16}),
                         [](const auto& info) {
                           return std::string(dtype_name(info.param.dtype)) +
                                  (info.param.prefix.empty() ? "_bare" : "_prefixed");
                         });

TEST(HfModel, FindsGpt2TokenizerBesideWeights) {
  const std::string dir = fresh_dir("gpt2-with-tokenizer");
  json cfg = gpt2_config();
  cfg["vocab_size"] = 50257;
  write_text(dir + "/config.json", cfg.dump(2));
  std::vector<Spec> specs = gpt2_tensors("");
  specs[0].shape = {50257, kGptDim};  // wte
  write_tensors(dir, specs);
  // Link (not copy) the shared GPT-2 vocabulary into the temp folder.
  fs::create_symlink(test::shared("tokenizers/gpt2/vocab.json"), dir + "/vocab.json");
  fs::create_symlink(test::shared("tokenizers/gpt2/merges.txt"), dir + "/merges.txt");
  Model m;
  load_hf_model(dir, m);
  ASSERT_NE(m.tokenizer, nullptr);
  EXPECT_EQ(m.tokenizer->n_vocab(), 50257);
  EXPECT_EQ(m.metadata.at("tokenizer.path"), dir + "/vocab.json");
}

TEST(HfModel, UnreadableTokenizerLeavesWeightsUsable) {
  const std::string dir = fresh_dir("gpt2-bad-tokenizer");
  write_text(dir + "/config.json", gpt2_config().dump(2));
  write_tensors(dir, gpt2_tensors(""));
  write_text(dir + "/tokenizer.json", "{ not json");
  Model m;
  load_hf_model(dir, m);  // warns; Model::tok() reports the missing tokenizer when one is needed
  EXPECT_EQ(m.tokenizer, nullptr);
  EXPECT_THROW(m.tok(), Error);
}

TEST(HfModel, Gpt2NamesWithAndWithoutPrefixTogetherFail) {
  const std::string dir = fresh_dir("gpt2-both-prefixes");
  write_text(dir + "/config.json", gpt2_config().dump());
  std::vector<Spec> specs = gpt2_tensors("");
  specs.push_back({"transformer.wte.weight", {kGptVocab, kGptDim}});
  write_tensors(dir, specs);
  Model m;
  expect_error([&] { load_hf_model(dir, m); }, {"token_embd.weight", "twice"});
}

// ---------------------------------------------------------------- Llama family

constexpr int kVocab = 32, kDim = 16, kLayers = 2, kHeads = 4, kKvHeads = 2, kHidden = 24;

json llama_config(const std::string& arch = "LlamaForCausalLM") {
  return {{"architectures", {arch}},     {"vocab_size", kVocab},         {"hidden_size", kDim},
          {"num_hidden_layers", kLayers}, {"num_attention_heads", kHeads}, {"num_key_value_heads", kKvHeads},
          {"intermediate_size", kHidden}, {"max_position_embeddings", 64}, {"rms_norm_eps", 1e-6},
          {"rope_theta", 10000.0},        {"tie_word_embeddings", true},   {"torch_dtype", "float32"}};
}

std::vector<Spec> llama_tensors(bool qkv_bias, bool lm_head) {
  const int64_t hd = kDim / kHeads, q = kHeads * hd, kv = kKvHeads * hd;
  std::vector<Spec> t = {{"model.embed_tokens.weight", {kVocab, kDim}}, {"model.norm.weight", {kDim}}};
  if (lm_head) t.push_back({"lm_head.weight", {kVocab, kDim}});
  for (int l = 0; l < kLayers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    t.push_back({p + "input_layernorm.weight", {kDim}});
    t.push_back({p + "post_attention_layernorm.weight", {kDim}});
    t.push_back({p + "self_attn.q_proj.weight", {q, kDim}});
    t.push_back({p + "self_attn.k_proj.weight", {kv, kDim}});
    t.push_back({p + "self_attn.v_proj.weight", {kv, kDim}});
    t.push_back({p + "self_attn.o_proj.weight", {kDim, q}});
    if (qkv_bias) {
      t.push_back({p + "self_attn.q_proj.bias", {q}});
      t.push_back({p + "self_attn.k_proj.bias", {kv}});
      t.push_back({p + "self_attn.v_proj.bias", {kv}});
    }
    t.push_back({p + "self_attn.rotary_emb.inv_freq", {hd / 2}});  // old exporters: ignored
    t.push_back({p + "mlp.gate_proj.weight", {kHidden, kDim}});
    t.push_back({p + "mlp.up_proj.weight", {kHidden, kDim}});
    t.push_back({p + "mlp.down_proj.weight", {kDim, kHidden}});
  }
  return t;
}

std::string llama_folder(const std::string& name, const json& config, const std::vector<Spec>& tensors,
                         int n_shards = 1) {
  const std::string dir = fresh_dir(name);
  write_text(dir + "/config.json", config.dump(2));
  write_tensors(dir, tensors, n_shards);
  return dir;
}

TEST(HfModel, Qwen2HasQkvBias) {
  const std::string dir = llama_folder("qwen2", llama_config("Qwen2ForCausalLM"), llama_tensors(true, false));
  Model m;
  load_hf_model(dir, m);
  EXPECT_TRUE(m.config.attn_qkv_bias);
  EXPECT_EQ(m.config.rope_style, RopeStyle::NeoX);
  EXPECT_EQ(m.weight("blk.1.attn_q.bias").shape, (std::vector<int64_t>{kDim}));
  EXPECT_EQ(m.weight("blk.1.attn_k.bias").shape, (std::vector<int64_t>{kKvHeads * kDim / kHeads}));
}

TEST(HfModel, Qwen2WithoutBiasTensorsFails) {
  const std::string dir = llama_folder("qwen2-nobias", llama_config("Qwen2ForCausalLM"), llama_tensors(false, false));
  Model m;
  expect_error([&] { load_hf_model(dir, m); }, {"blk.0.attn_q.bias", "missing"});
}

TEST(HfModel, LlamaWithUnexpectedBiasFails) {
  // Biases the config does not announce would be silently ignored by the forward pass: refuse.
  const std::string dir = llama_folder("llama-stray-bias", llama_config(), llama_tensors(true, false));
  Model m;
  expect_error([&] { load_hf_model(dir, m); }, {"model.layers.0.self_attn.q_proj.bias", "not part of LlamaForCausalLM"});
}

TEST(HfModel, MistralLoadsSharded) {
  json cfg = llama_config("MistralForCausalLM");
  cfg["tie_word_embeddings"] = false;
  const std::string dir = llama_folder("mistral-sharded", cfg, llama_tensors(false, true), 2);
  ASSERT_TRUE(fs::exists(dir + "/model.safetensors.index.json"));
  Model m;
  load_hf_model(dir, m);
  EXPECT_FALSE(m.config.tied_embeddings);
  EXPECT_EQ(m.weight("output.weight").shape, (std::vector<int64_t>{kVocab, kDim}));
  EXPECT_EQ(m.weights.size(), size_t(3 + 9 * kLayers));
}

TEST(HfModel, UntiedWithoutLmHeadFails) {
  json cfg = llama_config();
  cfg["tie_word_embeddings"] = false;
  const std::string dir = llama_folder("llama-no-lm-head", cfg, llama_tensors(false, false));
  Model m;
  expect_error([&] { load_hf_model(dir, m); }, {"lm_head.weight", "tie_word_embeddings"});
}

TEST(HfModel, TiedIgnoresStoredLmHead) {
  const std::string dir = llama_folder("llama-tied-lm-head", llama_config(), llama_tensors(false, true));
  Model m;
  load_hf_model(dir, m);
  EXPECT_TRUE(m.config.tied_embeddings);
  EXPECT_EQ(m.find_weight("output.weight"), nullptr);
}

TEST(HfModel, ExtraLayerFails) {
  json cfg = llama_config();
  cfg["num_hidden_layers"] = 1;
  const std::string dir = llama_folder("llama-extra-layer", cfg, llama_tensors(false, false));
  Model m;
  expect_error([&] { load_hf_model(dir, m); }, {"model.layers.1.", "layer 1", "1 layers"});
}

TEST(HfModel, WrongShapeFails) {
  json cfg = llama_config();
  cfg["intermediate_size"] = kHidden + 1;
  const std::string dir = llama_folder("llama-wrong-shape", cfg, llama_tensors(false, false));
  Model m;
  expect_error([&] { load_hf_model(dir, m); }, {"ffn_gate.weight", "shape"});
}

// ---------------------------------------------------------------- config.json

std::string config_file(const std::string& name, const json& cfg) {
  const std::string dir = fresh_dir(name);
  write_text(dir + "/config.json", cfg.dump(2));
  return dir + "/config.json";
}

TEST(HfConfig, UnsupportedArchitecture) {
  json cfg = llama_config("MambaForCausalLM");
  const std::string path = config_file("mamba", cfg);
  expect_error([&] { read_hf_config(path); },
               {path, "'architectures'", "MambaForCausalLM", "LlamaForCausalLM", "GPT2LMHeadModel"});
  Model m;
  expect_error([&] { load_hf_model(fs::path(path).parent_path().string(), m); }, {"config.json", "MambaForCausalLM"});
}

TEST(HfConfig, MissingArchitectures) {
  json cfg = llama_config();
  cfg.erase("architectures");
  const std::string path = config_file("no-arch", cfg);
  expect_error([&] { read_hf_config(path); }, {path, "'architectures'", "missing"});
}

TEST(HfConfig, MissingRequiredKey) {
  for (const char* key : {"hidden_size", "vocab_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"}) {
    SCOPED_TRACE(key);
    json cfg = llama_config();
    cfg.erase(key);
    const std::string path = config_file("missing-key", cfg);
    expect_error([&] { read_hf_config(path); }, {path, std::string("'") + key + "'", "missing"});
  }
  json cfg = gpt2_config();
  cfg.erase("n_embd");
  const std::string path = config_file("missing-key-gpt2", cfg);
  expect_error([&] { read_hf_config(path); }, {path, "'n_embd'", "missing"});
}

TEST(HfConfig, WrongTypeNamesKey) {
  json cfg = llama_config();
  cfg["num_attention_heads"] = "four";
  const std::string path = config_file("wrong-type", cfg);
  expect_error([&] { read_hf_config(path); }, {path, "'num_attention_heads'", "not an integer"});
}

TEST(HfConfig, Defaults) {
  json cfg = llama_config();
  for (const char* key : {"num_key_value_heads", "rope_theta", "tie_word_embeddings"}) cfg.erase(key);
  cfg["head_dim"] = nullptr;  // null = default
  ModelConfig c = read_hf_config(config_file("defaults", cfg));
  EXPECT_EQ(c.n_kv_heads, kHeads);
  EXPECT_EQ(c.head_dim, kDim / kHeads);
  EXPECT_FLOAT_EQ(c.rope_theta, 10000.0f);
  EXPECT_FALSE(c.tied_embeddings);
  EXPECT_FLOAT_EQ(c.norm_eps, 1e-6f);
}

TEST(HfConfig, ExplicitHeadDim) {
  json cfg = llama_config();
  cfg["head_dim"] = 8;
  ModelConfig c = read_hf_config(config_file("head-dim", cfg));
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.q_dim(), 32);
}

TEST(HfConfig, Llama3RopeScaling) {
  json cfg = llama_config();
  cfg["rope_theta"] = 500000.0;
  cfg["max_position_embeddings"] = 131072;
  cfg["rope_scaling"] = {{"factor", 8.0},
                         {"low_freq_factor", 1.0},
                         {"high_freq_factor", 4.0},
                         {"original_max_position_embeddings", 8192},
                         {"rope_type", "llama3"}};
  cfg["bos_token_id"] = 128000;
  cfg["eos_token_id"] = {128001, 128008, 128009};
  ModelConfig c = read_hf_config(config_file("llama3", cfg));
  EXPECT_EQ(c.rope_scaling.type, "llama3");
  EXPECT_FLOAT_EQ(c.rope_scaling.factor, 8.0f);
  EXPECT_FLOAT_EQ(c.rope_scaling.low_freq_factor, 1.0f);
  EXPECT_FLOAT_EQ(c.rope_scaling.high_freq_factor, 4.0f);
  EXPECT_EQ(c.rope_scaling.original_max_position, 8192);
  EXPECT_FLOAT_EQ(c.rope_theta, 500000.0f);
  EXPECT_EQ(c.max_seq, 131072);
  EXPECT_EQ(c.bos_id, 128000);
  EXPECT_EQ(c.eos_id, 128001);  // first of the list

  cfg["rope_scaling"].erase("low_freq_factor");
  const std::string path = config_file("llama3-incomplete", cfg);
  expect_error([&] { read_hf_config(path); }, {path, "'rope_scaling.low_freq_factor'", "missing"});
}

TEST(HfConfig, LinearAndUnsupportedRopeScaling) {
  json cfg = llama_config();
  cfg["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
  ModelConfig c = read_hf_config(config_file("rope-linear", cfg));
  EXPECT_EQ(c.rope_scaling.type, "linear");
  EXPECT_FLOAT_EQ(c.rope_scaling.factor, 2.0f);

  cfg["rope_scaling"] = nullptr;
  EXPECT_TRUE(read_hf_config(config_file("rope-null", cfg)).rope_scaling.type.empty());

  cfg["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  const std::string path = config_file("rope-yarn", cfg);
  expect_error([&] { read_hf_config(path); }, {path, "'rope_scaling.rope_type'", "yarn", "llama3"});
}

TEST(HfConfig, UnsupportedVariantsRefused) {
  json cfg = llama_config();
  cfg["hidden_act"] = "gelu";
  std::string path = config_file("gelu-llama", cfg);
  expect_error([&] { read_hf_config(path); }, {path, "'hidden_act'", "gelu"});

  json g = gpt2_config();
  g["activation_function"] = "relu";
  path = config_file("relu-gpt2", g);
  expect_error([&] { read_hf_config(path); }, {path, "'activation_function'", "relu"});
}

TEST(HfModel, NotAFolder) {
  Model m;
  expect_error([&] { load_hf_model(test::shared("models/stories260K-hf/model.safetensors"), m); }, {"not a folder"});
  const std::string dir = fresh_dir("no-config");
  expect_error([&] { load_hf_model(dir, m); }, {dir, "config.json"});
}

}  // namespace
}  // namespace lowbit
