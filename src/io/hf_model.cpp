#include "io/hf_model.h"

#include <algorithm>
#include <cctype>
#include <climits>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/log.h"
#include "io/hf_quant_folder.h"
#include "io/hf_quant_layouts.h"
#include "methods/int_group_linear.h"
#include "methods/quantizer.h"
#include "io/safetensors.h"
#include "core/json_brief.h"
#include "core/read_file.h"
#include "lowbit/error.h"

namespace lowbit {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

// ---------------------------------------------------------------- name tables

// Llama, Mistral, Qwen2 (and SmolLM, TinyLlama: all LlamaForCausalLM).
constexpr HfNameRule kLlamaRules[] = {
    {"token_embd.weight", "model.embed_tokens.weight"},
    {"output_norm.weight", "model.norm.weight"},
    {"output.weight", "lm_head.weight"},
    {"blk.{i}.attn_norm.weight", "model.layers.{i}.input_layernorm.weight"},
    {"blk.{i}.attn_q.weight", "model.layers.{i}.self_attn.q_proj.weight"},
    {"blk.{i}.attn_k.weight", "model.layers.{i}.self_attn.k_proj.weight"},
    {"blk.{i}.attn_v.weight", "model.layers.{i}.self_attn.v_proj.weight"},
    {"blk.{i}.attn_q.bias", "model.layers.{i}.self_attn.q_proj.bias", false, true},
    {"blk.{i}.attn_k.bias", "model.layers.{i}.self_attn.k_proj.bias", false, true},
    {"blk.{i}.attn_v.bias", "model.layers.{i}.self_attn.v_proj.bias", false, true},
    {"blk.{i}.attn_output.weight", "model.layers.{i}.self_attn.o_proj.weight"},
    {"blk.{i}.ffn_norm.weight", "model.layers.{i}.post_attention_layernorm.weight"},
    {"blk.{i}.ffn_gate.weight", "model.layers.{i}.mlp.gate_proj.weight"},
    {"blk.{i}.ffn_up.weight", "model.layers.{i}.mlp.up_proj.weight"},
    {"blk.{i}.ffn_down.weight", "model.layers.{i}.mlp.down_proj.weight"},
};

// GPT2LMHeadModel; checkpoints name these with or without "transformer.".
constexpr HfNameRule kGpt2Rules[] = {
    {"token_embd.weight", "wte.weight"},
    {"position_embd.weight", "wpe.weight"},
    {"output_norm.weight", "ln_f.weight"},
    {"output_norm.bias", "ln_f.bias"},
    {"output.weight", "lm_head.weight"},
    {"blk.{i}.attn_norm.weight", "h.{i}.ln_1.weight"},
    {"blk.{i}.attn_norm.bias", "h.{i}.ln_1.bias"},
    {"blk.{i}.attn_qkv.weight", "h.{i}.attn.c_attn.weight", true},
    {"blk.{i}.attn_qkv.bias", "h.{i}.attn.c_attn.bias"},
    {"blk.{i}.attn_output.weight", "h.{i}.attn.c_proj.weight", true},
    {"blk.{i}.attn_output.bias", "h.{i}.attn.c_proj.bias"},
    {"blk.{i}.ffn_norm.weight", "h.{i}.ln_2.weight"},
    {"blk.{i}.ffn_norm.bias", "h.{i}.ln_2.bias"},
    {"blk.{i}.ffn_up.weight", "h.{i}.mlp.c_fc.weight", true},
    {"blk.{i}.ffn_up.bias", "h.{i}.mlp.c_fc.bias"},
    {"blk.{i}.ffn_down.weight", "h.{i}.mlp.c_proj.weight", true},
    {"blk.{i}.ffn_down.bias", "h.{i}.mlp.c_proj.bias"},
};

// Buffers some exporters save that carry no weights (RoPE tables, causal masks).
constexpr std::string_view kIgnoredNames[] = {
    "model.layers.{i}.self_attn.rotary_emb.inv_freq",
    "h.{i}.attn.bias",
    "h.{i}.attn.masked_bias",
};

struct ArchEntry {
  std::string_view hf_name;
  Arch arch;
};
constexpr ArchEntry kArchitectures[] = {
    {"LlamaForCausalLM", Arch::Llama},
    {"MistralForCausalLM", Arch::Llama},
    {"Qwen2ForCausalLM", Arch::Llama},
    {"GPT2LMHeadModel", Arch::GPT2},
};

// The layer number when `name` fits `pattern` ("{i}" = decimal digits), -1 for
// a pattern without "{i}" that matches exactly, nullopt otherwise.
std::optional<int> match_pattern(std::string_view pattern, std::string_view name) {
  const size_t at = pattern.find("{i}");
  if (at == std::string_view::npos) return pattern == name ? std::optional<int>(-1) : std::nullopt;
  const std::string_view pre = pattern.substr(0, at), post = pattern.substr(at + 3);
  if (name.size() <= pre.size() + post.size() || !name.starts_with(pre) || !name.ends_with(post)) return std::nullopt;
  const std::string_view digits = name.substr(pre.size(), name.size() - pre.size() - post.size());
  if (digits.size() > 7 || (digits.size() > 1 && digits[0] == '0')) return std::nullopt;
  int layer = 0;
  for (char c : digits) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
    layer = layer * 10 + (c - '0');
  }
  return layer;
}

std::string expand_pattern(std::string_view pattern, int layer) {
  std::string s(pattern);
  if (size_t at = s.find("{i}"); at != std::string::npos) s.replace(at, 3, std::to_string(layer));
  return s;
}

// ---------------------------------------------------------------- config.json


// Typed access to the keys of one JSON object; errors name the file and the key.
class Fields {
 public:
  Fields(const json& obj, std::string path, std::string prefix = "")
      : obj_(obj), path_(std::move(path)), prefix_(std::move(prefix)) {}

  // Present and not null ("head_dim": null means "use the default").
  bool has(const char* key) const { return obj_.contains(key) && !obj_[key].is_null(); }

  int need_int(const char* key) const {
    require(key);
    return to_int(key, obj_[key]);
  }
  int get_int(const char* key, int def) const { return has(key) ? to_int(key, obj_[key]) : def; }
  float need_float(const char* key) const {
    require(key);
    return get_float(key, 0);
  }
  float get_float(const char* key, float def) const {
    if (!has(key)) return def;
    if (!obj_[key].is_number()) bad(key, "is not a number");
    return obj_[key].get<float>();
  }
  bool get_bool(const char* key, bool def) const {
    if (!has(key)) return def;
    if (!obj_[key].is_boolean()) bad(key, "is not true or false");
    return obj_[key].get<bool>();
  }
  std::string get_string(const char* key, const std::string& def) const {
    if (!has(key)) return def;
    if (!obj_[key].is_string()) bad(key, "is not a string");
    return obj_[key].get<std::string>();
  }
  // bos/eos ids: an integer, or a list whose first entry is used (Llama 3.1 lists several eos ids).
  int get_token_id(const char* key, int def) const {
    if (!has(key)) return def;
    const json& v = obj_[key];
    if (v.is_array()) return v.empty() ? def : to_int(key, v[0]);
    return to_int(key, v);
  }

  [[noreturn]] void bad(const char* key, const std::string& what, const std::string& hint = "") const {
    const std::string value = obj_.contains(key) ? json_brief(obj_[key]) : "(missing)";
    fail(path_, fmt::format("field '{}{}' = {} {}", prefix_, key, value, what),
         hint.empty() ? "config.json is corrupt or not a Hugging Face config" : hint);
  }

 private:
  void require(const char* key) const {
    if (!has(key))
      fail(path_, fmt::format("field '{}{}' is missing", prefix_, key), "config.json of this architecture must set it");
  }
  int to_int(const char* key, const json& v) const {
    // Integral floats (2048.0) are accepted: some exporters write them.
    if (!v.is_number() || v.get<double>() != std::floor(v.get<double>()) || std::abs(v.get<double>()) > INT_MAX)
      bad(key, "is not an integer");
    return int(v.get<double>());
  }

  const json& obj_;
  std::string path_;
  std::string prefix_;
};

Arch parse_architecture(const json& j, const std::string& path, std::string& name) {
  const std::string hint = fmt::format("supported: {}", hf_supported_architectures());
  if (!j.contains("architectures") || !j["architectures"].is_array() || j["architectures"].empty() ||
      !j["architectures"][0].is_string())
    fail(path, "field 'architectures' is missing or not a list of names", hint);
  name = j["architectures"][0].get<std::string>();
  for (const auto& a : kArchitectures)
    if (a.hf_name == name) return a.arch;
  fail(path, fmt::format("field 'architectures' = \"{}\" is not supported", name), hint);
}

void parse_rope_scaling(const json& j, const std::string& path, RopeScaling& out) {
  if (!j.contains("rope_scaling") || j["rope_scaling"].is_null()) return;
  if (!j["rope_scaling"].is_object()) Fields(j, path).bad("rope_scaling", "is not an object");
  Fields r(j["rope_scaling"], path, "rope_scaling.");
  // Newer configs say "rope_type", older ones "type".
  const char* type_key = r.has("rope_type") ? "rope_type" : "type";
  const std::string type = r.get_string(type_key, "");
  if (type == "llama3") {
    out.type = type;
    out.factor = r.need_float("factor");
    out.low_freq_factor = r.need_float("low_freq_factor");
    out.high_freq_factor = r.need_float("high_freq_factor");
    out.original_max_position = r.need_int("original_max_position_embeddings");
  } else if (type == "linear") {
    out.type = type;
    out.factor = r.need_float("factor");
  } else if (!type.empty() && type != "default") {
    r.bad(type_key, "is not supported", "supported rope_scaling types: llama3, linear");
  }
  if (!out.type.empty() && !(out.factor > 0))
    r.bad("factor", "must be positive");
}

void parse_llama_family(const Fields& f, const std::string& path, ModelConfig& c) {
  c.n_vocab = f.need_int("vocab_size");
  c.dim = f.need_int("hidden_size");
  c.n_layers = f.need_int("num_hidden_layers");
  c.n_heads = f.need_int("num_attention_heads");
  c.n_kv_heads = f.get_int("num_key_value_heads", c.n_heads);
  c.hidden_dim = f.need_int("intermediate_size");
  c.max_seq = f.get_int("max_position_embeddings", 2048);  // transformers' LlamaConfig default
  c.norm_eps = f.get_float("rms_norm_eps", 1e-6f);          // transformers' default
  c.rope_theta = f.get_float("rope_theta", 10000.0f);
  if (f.has("head_dim")) {
    c.head_dim = f.get_int("head_dim", 0);
  } else {
    if (c.n_heads <= 0 || c.dim % c.n_heads != 0)
      f.bad("num_attention_heads", fmt::format("does not divide hidden_size = {}", c.dim), "set head_dim");
    c.head_dim = c.dim / c.n_heads;
  }
  // HF Llama checkpoints keep q/k rows in the rotate-half order: pair (i, i + d/2).
  c.rope_style = RopeStyle::NeoX;
  c.tied_embeddings = f.get_bool("tie_word_embeddings", false);
  c.bos_id = f.get_token_id("bos_token_id", 1);
  c.eos_id = f.get_token_id("eos_token_id", 2);
  c.attn_qkv_bias = c.arch_name == "Qwen2ForCausalLM";  // Qwen2 always has q/k/v biases

  // Variants the Llama forward pass does not implement: refuse rather than run them wrongly.
  if (std::string act = f.get_string("hidden_act", "silu"); act != "silu")
    f.bad("hidden_act", "is not supported", "the Llama family forward pass implements silu");
  if (f.get_bool("attention_bias", false))
    f.bad("attention_bias", "is not supported", "lowbit's Llama forward pass has no attention biases");
  if (f.get_bool("mlp_bias", false))
    f.bad("mlp_bias", "is not supported", "lowbit's Llama forward pass has no MLP biases");
  // Sliding-window attention equals full attention up to the window: say so instead of refusing.
  const bool sliding = c.arch_name == "Qwen2ForCausalLM" ? f.get_bool("use_sliding_window", false)
                                                         : f.has("sliding_window");
  if (sliding && f.has("sliding_window") && f.get_int("sliding_window", 0) < c.max_seq)
    log_warn(fmt::format("{}: sliding_window = {} is not applied: results match the reference only for contexts "
                         "up to {} tokens",
                         path, f.get_int("sliding_window", 0), f.get_int("sliding_window", 0)));
}

void parse_gpt2(const Fields& f, ModelConfig& c) {
  c.n_vocab = f.need_int("vocab_size");
  c.dim = f.need_int("n_embd");
  c.n_layers = f.need_int("n_layer");
  c.n_heads = f.need_int("n_head");
  c.n_kv_heads = c.n_heads;
  if (c.n_heads <= 0 || c.dim % c.n_heads != 0)
    f.bad("n_head", fmt::format("does not divide n_embd = {}", c.dim));
  c.head_dim = c.dim / c.n_heads;
  c.hidden_dim = f.get_int("n_inner", 4 * c.dim);  // null -> 4 * n_embd
  c.max_seq = f.get_int("n_positions", f.get_int("n_ctx", 1024));
  c.norm_eps = f.get_float("layer_norm_epsilon", 1e-5f);
  c.tied_embeddings = f.get_bool("tie_word_embeddings", true);
  c.bos_id = f.get_token_id("bos_token_id", 50256);
  c.eos_id = f.get_token_id("eos_token_id", 50256);
  const std::string act = f.get_string("activation_function", "gelu_new");
  if (act != "gelu_new" && act != "gelu_pytorch_tanh")
    f.bad("activation_function", "is not supported", "GPT-2's forward pass implements gelu_new (tanh approximation)");
  if (!f.get_bool("scale_attn_weights", true))
    f.bad("scale_attn_weights", "is not supported", "attention scores are always scaled by 1/sqrt(head_dim)");
  if (f.get_bool("scale_attn_by_inverse_layer_idx", false))
    f.bad("scale_attn_by_inverse_layer_idx", "is not supported", "GPT-2's forward pass does not scale by layer");
}

// ---------------------------------------------------------------- quantization_config

// The GPTQ / AWQ scheme of a quantized checkpoint: config.json's
// "quantization_config", else AutoGPTQ's quantize_config.json beside it (older
// AutoGPTQ folders have only that); nullopt for a plain checkpoint. Other
// methods (bitsandbytes, hqq, aqlm, ...) are refused.
std::optional<HfQuantScheme> parse_quant_config(const json& config, const std::string& dir, const std::string& config_path) {
  const fs::path qc_path = fs::path(dir) / "quantize_config.json";
  json side;  // quantize_config.json, when present
  if (fs::is_regular_file(qc_path)) side = read_json_file(qc_path.string());
  const bool in_config = config.contains("quantization_config") && !config["quantization_config"].is_null();
  if (!in_config && side.is_null()) return std::nullopt;
  const json& qc = in_config ? config["quantization_config"] : side;
  const std::string path = in_config ? config_path : qc_path.string();
  const std::string prefix = in_config ? "quantization_config." : "";
  if (!qc.is_object()) Fields(config, config_path).bad("quantization_config", "is not an object");
  const Fields f(qc, path, prefix);
  std::string method = f.get_string("quant_method", in_config ? "" : "gptq");
  std::transform(method.begin(), method.end(), method.begin(), [](unsigned char ch) { return char(std::tolower(ch)); });

  HfQuantScheme s;
  if (method == "gptq") {
    s.method = HfQuantMethod::Gptq;
    s.spec.bits = f.need_int("bits");
    s.spec.group_size = f.get_int("group_size", -1);  // AutoGPTQ's default
    s.spec.sym = f.get_bool("sym", true);              // AutoGPTQ's default
    s.desc_act = f.get_bool("desc_act", false);
    // checkpoint_format (AutoGPTQ, GPTQModel, transformers), or GPTQModel's "format";
    // quantization_config may lack it while quantize_config.json has it.
    std::string format;
    for (const json* obj : {&qc, static_cast<const json*>(&side)})
      if (obj->is_object() && format.empty())
        for (const char* key : {"checkpoint_format", "format"})
          if (obj->contains(key) && (*obj)[key].is_string() && format.empty()) format = (*obj)[key].get<std::string>();
    if (f.get_bool("is_marlin_format", false)) format = "marlin";
    if (format.empty() || format == "gptq") {
      s.gptq_v2 = false;
    } else if (format == "gptq_v2") {
      s.gptq_v2 = true;
    } else {
      fail(path, fmt::format("field '{}checkpoint_format' = \"{}\" is not supported", prefix, format),
           "lowbit reads the gptq (v1) and gptq_v2 layouts; re-save the model in the gptq format");
    }
  } else if (method == "awq") {
    s.method = HfQuantMethod::Awq;
    s.spec.bits = f.has("bits") ? f.get_int("bits", 4) : f.get_int("w_bit", 4);
    s.spec.group_size = f.has("group_size") ? f.get_int("group_size", 128) : f.get_int("q_group_size", 128);
    s.spec.sym = false;
    std::string version = f.get_string("version", "gemm");
    std::transform(version.begin(), version.end(), version.begin(), [](unsigned char ch) { return char(std::tolower(ch)); });
    if (version != "gemm")
      f.bad("version", "is not supported", "lowbit reads AWQ's gemm layout (AutoAWQ version \"gemm\")");
    if (!f.get_bool("zero_point", true))
      f.bad("zero_point", "is not supported", "lowbit reads AWQ checkpoints with zero points (zero_point: true)");
    if (s.spec.bits != 4) f.bad(f.has("bits") ? "bits" : "w_bit", "is not supported", "AWQ's gemm layout stores 4 bits");
  } else {
    f.bad("quant_method", "is not supported",
          "lowbit loads Hugging Face checkpoints quantized with gptq or awq; load the original (unquantized) model");
  }
  if (s.spec.bits != 2 && s.spec.bits != 3 && s.spec.bits != 4 && s.spec.bits != 8)
    f.bad("bits", "is not supported", "GPTQ checkpoints use 2, 3, 4 or 8 bits");
  if (s.spec.group_size == 0 || s.spec.group_size < -1) f.bad("group_size", "is not valid", "use -1 or a positive size");
  return s;
}

// ---------------------------------------------------------------- tensors

// GPT-2 Conv1D weight [in, out] -> f32 [out, in] owned by the model.
TensorView transpose_conv1d(const TensorView& t, const std::string& canonical, const std::string& src_path, Model& m) {
  if (t.shape.size() != 2)
    fail(src_path, fmt::format("tensor '{}' has shape {}, expected a 2-D Conv1D weight [in, out]", t.name, t.shape_str()),
         "the checkpoint does not match its config");
  const int64_t n_in = t.shape[0], n_out = t.shape[1];
  std::vector<float> src(size_t(n_in * n_out));  // [n_in, n_out]
  to_f32(t, 0, n_in * n_out, src.data());
  std::vector<float> dst(src.size());  // [n_out, n_in]
  for (int64_t i = 0; i < n_in; ++i)
    for (int64_t o = 0; o < n_out; ++o) dst[size_t(o * n_in + i)] = src[size_t(i * n_out + o)];
  m.owned.push_back(std::move(dst));  // moving a vector keeps its buffer: the view stays valid
  TensorView v;
  v.name = canonical;
  v.dtype = DType::F32;
  v.shape = {n_out, n_in};
  v.data = m.owned.back().data();
  v.nbytes = m.owned.back().size() * sizeof(float);
  return v;
}

bool is_ignored(std::string_view name) {
  return std::any_of(std::begin(kIgnoredNames), std::end(kIgnoredNames),
                     [&](std::string_view p) { return match_pattern(p, name).has_value(); });
}

// The tensors of one GPTQ / AWQ module ("model.layers.0.self_attn.q_proj").
struct QuantModule {
  const TensorView* qweight = nullptr;
  const TensorView* qzeros = nullptr;
  const TensorView* scales = nullptr;
  const TensorView* g_idx = nullptr;
};

// "<module>.qweight" etc.: recorded under its module (true), or not a GPTQ / AWQ part (false).
bool quant_part(std::string_view name, std::map<std::string, QuantModule>& modules, const TensorView& t) {
  static constexpr std::pair<std::string_view, const TensorView* QuantModule::*> kParts[] = {
      {".qweight", &QuantModule::qweight},
      {".qzeros", &QuantModule::qzeros},
      {".scales", &QuantModule::scales},
      {".g_idx", &QuantModule::g_idx},
  };
  for (const auto& [suffix, slot] : kParts)
    if (name.ends_with(suffix)) {
      modules[std::string(name.substr(0, name.size() - suffix.size()))].*slot = &t;
      return true;
    }
  return false;
}

// A checkpoint in a layout one of the registry's methods reads (bitsandbytes,
// HQQ, lowbit's own): its config and method, and the modules stored quantized
// (HF module name -> suffix -> tensor), found by the method's marker suffixes.
struct RegistryLayout {
  QuantConfig cfg;
  const Quantizer* method = nullptr;
  std::vector<std::string> suffixes;  // longest first
  std::map<std::string, std::map<std::string, const TensorView*>> modules;

  // "model.layers.0.mlp.up_proj.weight.absmax" -> {"model.layers.0.mlp.up_proj", "weight.absmax"}.
  std::optional<std::pair<std::string, std::string>> split(std::string_view name) const {
    for (const std::string& suf : suffixes)
      if (name.size() > suf.size() + 1 && name.ends_with(suf) && name[name.size() - suf.size() - 1] == '.')
        return std::pair{std::string(name.substr(0, name.size() - suf.size() - 1)), suf};
    return std::nullopt;
  }
};

// Which modules of `src` the layout stores quantized: those holding a marker suffix.
void find_registry_modules(const TensorSource& src, RegistryLayout& rl) {
  rl.suffixes = rl.method->hf_module_suffixes();
  std::sort(rl.suffixes.begin(), rl.suffixes.end(), [](const auto& a, const auto& b) { return a.size() > b.size(); });
  const std::vector<std::string> markers = rl.method->hf_marker_suffixes();
  std::set<std::string> quantized;
  for (const TensorView& t : src.tensors())
    if (auto part = rl.split(t.name); part && std::find(markers.begin(), markers.end(), part->second) != markers.end())
      quantized.insert(part->first);
  for (const TensorView& t : src.tensors())
    if (auto part = rl.split(t.name); part && quantized.contains(part->first)) rl.modules[part->first][part->second] = &t;
}

// [n_out, n_in] of block linear `canonical` under config c.
std::pair<int64_t, int64_t> block_linear_shape(const ModelConfig& c, const std::string& canonical) {
  const int64_t d = c.dim, h = c.hidden_dim;
  if (canonical.ends_with(".attn_q.weight")) return {c.q_dim(), d};
  if (canonical.ends_with(".attn_k.weight") || canonical.ends_with(".attn_v.weight")) return {c.kv_dim(), d};
  if (canonical.ends_with(".attn_output.weight")) return {d, c.q_dim()};
  if (canonical.ends_with(".ffn_gate.weight") || canonical.ends_with(".ffn_up.weight")) return {h, d};
  if (canonical.ends_with(".ffn_down.weight")) return {d, h};
  return {0, 0};
}

// Maps every tensor of `src` onto a canonical name in m.weights. With a
// quantization scheme, GPTQ / AWQ modules become IntGroupLinear layers (QLINEAR views).
void map_tensors(const TensorSource& src, const json& config, const HfQuantScheme* qs, const RegistryLayout* rl, Model& m) {
  const ModelConfig& c = m.config;
  const std::string unknown_hint =
      config.contains("quantization_config") && !qs && !rl
          ? "config.json has a quantization_config lowbit does not read"
          : fmt::format("the checkpoint holds weights {} does not use", c.arch_name);
  std::map<std::string, QuantModule> quant_modules;
  // Finds the rule for an HF name; fails like any unknown tensor.
  auto find_rule = [&](std::string_view name, const std::string& shown, int& layer) -> const HfNameRule* {
    const HfNameRule* rule = nullptr;
    for (const HfNameRule& r : hf_name_rules(c.arch)) {
      if (auto l = match_pattern(r.hf, name)) {
        rule = &r;
        layer = *l;
        break;
      }
    }
    if (!rule || (rule->qkv_bias && !c.attn_qkv_bias))
      fail(src.path(), fmt::format("tensor '{}' is not part of {}", shown, c.arch_name), unknown_hint);
    if (layer >= c.n_layers)
      fail(src.path(),
           fmt::format("tensor '{}' belongs to layer {}, but config.json has {} layers", shown, layer, c.n_layers),
           "the checkpoint does not match its config");
    return rule;
  };
  for (const TensorView& t : src.tensors()) {
    std::string_view name = t.name;
    if (c.arch == Arch::GPT2 && name.starts_with("transformer.")) name.remove_prefix(12);
    if (is_ignored(name)) continue;
    if (qs && quant_part(name, quant_modules, t)) continue;
    if (rl)
      if (auto part = rl->split(name); part && rl->modules.contains(part->first)) continue;

    int layer = -1;
    const HfNameRule* rule = find_rule(name, t.name, layer);
    const std::string canonical = expand_pattern(rule->canonical, layer);
    if (canonical == "output.weight" && c.tied_embeddings) {
      // transformers ties lm_head to the embeddings and ignores a stored copy; so do we.
      log(LogLevel::Debug, fmt::format("{}: ignoring '{}' (tie_word_embeddings)", src.path(), t.name));
      continue;
    }
    TensorView v = rule->conv1d ? transpose_conv1d(t, canonical, src.path(), m) : t;
    v.name = canonical;
    if (!m.weights.emplace(canonical, std::move(v)).second)
      fail(src.path(), fmt::format("tensor '{}' is stored twice (as '{}' and another name)", canonical, t.name),
           "GPT-2 names appear with or without 'transformer.', not both");
  }
  for (const auto& [module, parts] : quant_modules) {
    const std::string weight_name = module + ".weight";
    if (!parts.qweight || !parts.qzeros || !parts.scales) {
      const char* missing = !parts.qweight ? "qweight" : !parts.qzeros ? "qzeros" : "scales";
      fail(src.path(), fmt::format("tensor '{}.{}' is missing", module, missing),
           "a GPTQ / AWQ module stores qweight, qzeros and scales; the checkpoint is incomplete");
    }
    int layer = -1;
    const HfNameRule* rule = find_rule(weight_name, parts.qweight->name, layer);
    if (rule->conv1d)
      fail(src.path(), fmt::format("tensor '{}': quantized GPT-2 checkpoints are not supported", parts.qweight->name),
           "load the original GPT-2 checkpoint");
    const std::string canonical = expand_pattern(rule->canonical, layer);
    if (canonical == "output.weight" && c.tied_embeddings) continue;
    const IntGroupQuant q = read_hf_quant_linear(*qs, *parts.qweight, *parts.qzeros, *parts.scales,
                                                 qs->method == HfQuantMethod::Gptq ? parts.g_idx : nullptr, src.path());
    if (m.weights.contains(canonical))
      fail(src.path(), fmt::format("tensor '{}' is stored twice (as '{}' and '{}')", canonical, weight_name,
                                   parts.qweight->name),
           "a module is either quantized or not");
    // Kept quantized (methods/int_group_linear.h): packed codes, f16 scales, u8 zeros.
    m.set_qlinear(canonical, std::make_shared<IntGroupLinear>(q, qs->method == HfQuantMethod::Gptq ? "gptq" : "awq"));
  }
  if (rl)
    for (const auto& [module, parts] : rl->modules) {
      int layer = -1;
      const std::string weight_name = module + ".weight";
      const HfNameRule* rule = find_rule(weight_name, weight_name, layer);
      const std::string canonical = expand_pattern(rule->canonical, layer);
      if (!parse_block_linear(canonical) || rule->conv1d)
        fail(src.path(), fmt::format("module '{}' is stored quantized ({}), but lowbit runs quantized block linears only",
                                     module, rl->cfg.describe()),
             "keep embeddings and lm_head unquantized (skip_modules)");
      const auto [n_out, n_in] = block_linear_shape(c, canonical);
      auto q = rl->method->load_hf_module(rl->cfg, parts, n_out, n_in, src.path() + ": " + module);
      if (m.weights.contains(canonical))
        fail(src.path(), fmt::format("tensor '{}' is stored twice (quantized as '{}' and plain)", canonical, module),
             "a module is either quantized or not");
      m.set_qlinear(canonical, std::move(q));
    }
  if (!c.tied_embeddings && !m.weights.contains("output.weight"))
    fail(src.path(), "tensor 'lm_head.weight' is missing and config.json sets tie_word_embeddings = false",
         "the checkpoint is incomplete or its config is wrong");
}

// tokenizer.model (SentencePiece) first: Llama-2-style folders also ship a
// tokenizer.json that is not byte-level BPE. Then tokenizer.json, then GPT-2's pair.
std::unique_ptr<Tokenizer> find_tokenizer(const std::string& dir, int n_vocab, std::string& found) {
  const fs::path d(dir);
  for (const char* name : {"tokenizer.model", "tokenizer.json", "vocab.json"}) {
    const fs::path p = d / name;
    if (!fs::is_regular_file(p)) continue;
    if (std::string_view(name) == "vocab.json" && !fs::is_regular_file(d / "merges.txt")) continue;
    try {
      auto tok = open_tokenizer(p.string(), n_vocab);
      found = p.string();
      return tok;
    } catch (const Error& e) {
      // The weights are still usable (quantize, inspect); Model::tok() reports the missing tokenizer.
      log_warn(fmt::format("tokenizer not loaded: {}", e.what()));
      return nullptr;
    }
  }
  return nullptr;
}

// config.json (already parsed) -> ModelConfig.
ModelConfig parse_config(const json& j, const std::string& config_path) {
  if (!j.is_object()) fail(config_path, "is not a JSON object", "config.json is corrupt");
  ModelConfig c;
  c.arch = parse_architecture(j, config_path, c.arch_name);
  const Fields f(j, config_path);
  if (c.arch == Arch::GPT2) {
    parse_gpt2(f, c);
  } else {
    parse_llama_family(f, config_path, c);
    parse_rope_scaling(j, config_path, c.rope_scaling);
  }
  return c;
}

}  // namespace

std::string_view hf_supported_architectures() {
  return "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, GPT2LMHeadModel";
}

std::span<const HfNameRule> hf_name_rules(Arch arch) {
  if (arch == Arch::GPT2) return kGpt2Rules;
  return kLlamaRules;
}

std::optional<std::string> hf_tensor_name(Arch arch, std::string_view canonical) {
  for (const HfNameRule& r : hf_name_rules(arch))
    if (auto layer = match_pattern(r.canonical, canonical)) return expand_pattern(r.hf, *layer);
  return std::nullopt;
}

ModelConfig read_hf_config(const std::string& config_path) {
  return parse_config(read_json_file(config_path), config_path);
}

void load_hf_model(const std::string& dir, Model& m) {
  if (!fs::is_directory(dir)) fail(dir, "is not a folder", "pass a Hugging Face model folder (config.json + *.safetensors)");
  const std::string config_path = (fs::path(dir) / "config.json").string();
  if (!fs::is_regular_file(config_path))
    fail(dir, "has no config.json", "a Hugging Face model folder holds config.json beside its *.safetensors");
  if (m.path.empty()) m.path = dir;
  m.format = "safetensors";
  const json config = read_json_file(config_path);
  m.config = parse_config(config, config_path);
  m.config.validate(config_path);

  // bitsandbytes / hqq / lowbit layouts go to the method registry; gptq / awq to HfQuantScheme.
  std::optional<RegistryLayout> registry;
  if (config.contains("quantization_config") && config["quantization_config"].is_object()) {
    const json& qc = config["quantization_config"];
    const std::string qm = qc.contains("quant_method") && qc["quant_method"].is_string() ? qc["quant_method"].get<std::string>() : "";
    if (qm == "bitsandbytes" || qm == "hqq" || qm == "lowbit") {
      registry.emplace();
      registry->cfg = quant_config_from_json(qc, config_path + ": quantization_config");
      registry->method = &find_quantizer(registry->cfg.method);
    }
  }
  const std::optional<HfQuantScheme> quant =
      registry ? std::nullopt : parse_quant_config(config, dir, config_path);
  m.sources.push_back(open_safetensors_folder(dir));
  if (registry) find_registry_modules(*m.sources.back(), *registry);
  map_tensors(*m.sources.back(), config, quant ? &*quant : nullptr, registry ? &*registry : nullptr, m);
  if (quant) m.metadata["quantization"] = quant->describe();
  if (registry) m.metadata["quantization"] = registry->cfg.describe();
  m.validate_weights();

  m.metadata["architecture"] = m.config.arch_name;
  for (const char* key : {"model_type", "torch_dtype", "transformers_version"})
    if (config.contains(key) && config[key].is_string()) m.metadata[key] = config[key].get<std::string>();

  std::string tok_path;
  m.tokenizer = find_tokenizer(dir, m.config.n_vocab, tok_path);
  if (m.tokenizer) m.metadata["tokenizer.path"] = tok_path;
}

}  // namespace lowbit
