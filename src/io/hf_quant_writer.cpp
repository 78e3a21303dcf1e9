#include "io/hf_quant_writer.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/half.h"
#include "core/log.h"
#include "io/hf_model.h"
#include "io/hf_quant_layouts.h"
#include "io/safetensors_writer.h"
#include "lowbit/error.h"

namespace lowbit {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

// Block linears: canonical suffix -> HF module suffix inside "model.layers.N.".
struct BlockLinear {
  const char* canonical;  // "attn_q"
  const char* hf;         // "self_attn.q_proj"
};
constexpr BlockLinear kBlockLinears[] = {
    {"attn_q", "self_attn.q_proj"},   {"attn_k", "self_attn.k_proj"}, {"attn_v", "self_attn.v_proj"},
    {"attn_output", "self_attn.o_proj"}, {"ffn_gate", "mlp.gate_proj"}, {"ffn_up", "mlp.up_proj"},
    {"ffn_down", "mlp.down_proj"},
};

constexpr const char* kTokenizerFiles[] = {"tokenizer.json",          "tokenizer.model",    "tokenizer_config.json",
                                           "special_tokens_map.json", "generation_config.json", "added_tokens.json",
                                           "vocab.json",              "merges.txt"};

// "blk.3.attn_q.weight" -> {3, index into kBlockLinears}; nullopt for anything else.
std::optional<std::pair<int, int>> parse_block_linear(const std::string& name) {
  if (!name.starts_with("blk.") || !name.ends_with(".weight")) return std::nullopt;
  const size_t dot = name.find('.', 4);
  if (dot == std::string::npos) return std::nullopt;
  const std::string digits = name.substr(4, dot - 4);
  if (digits.empty() || digits.size() > 7 || digits.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  const std::string mid = name.substr(dot + 1, name.size() - dot - 1 - 7);
  for (int k = 0; k < int(std::size(kBlockLinears)); ++k)
    if (mid == kBlockLinears[k].canonical) return std::pair{std::stoi(digits), k};
  return std::nullopt;
}

// NeoX (HF) row r of a q/k projection comes from interleaved row h*hd + 2i + p,
// where r = h*hd + p*(hd/2) + i (the inverse of gguf_export's unpermute_row).
int64_t interleaved_source_row(int64_t r, int head_dim) {
  const int64_t h = r / head_dim, j = r % head_dim, half = head_dim / 2, p = j / half, i = j % half;
  return h * head_dim + 2 * i + p;
}

bool needs_rope_permute(const ModelConfig& c, const std::string& canonical) {
  if (c.rope_style != RopeStyle::Interleaved) return false;
  return canonical.ends_with(".attn_q.weight") || canonical.ends_with(".attn_k.weight") ||
         canonical.ends_with(".attn_q.bias") || canonical.ends_with(".attn_k.bias");
}

// The HF source folder of m, or "" when m did not come from one.
std::string hf_source_dir(const Model& m) {
  if (m.format != "safetensors" || m.path.empty()) return "";
  fs::path p(m.path);
  if (!fs::is_directory(p)) p = p.parent_path();
  return fs::is_regular_file(p / "config.json") ? p.string() : "";
}

json read_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    return json::parse(ss.str());
  } catch (const json::exception& e) {
    fail(path, std::string("not valid JSON: ") + e.what(), "the file is corrupt or truncated");
  }
}

void write_text_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  if (!out) fail(path.string(), "cannot create", "check that the folder is writable");
  out << text;
  out.flush();
  if (!out) fail(path.string(), "write failed", "the disk may be full");
}

// config.json for a model that did not come from an HF folder.
json generated_config(const ModelConfig& c) {
  const bool qwen2 = c.attn_qkv_bias;
  json j;
  j["architectures"] = json::array({qwen2 ? "Qwen2ForCausalLM" : "LlamaForCausalLM"});
  j["model_type"] = qwen2 ? "qwen2" : "llama";
  j["hidden_size"] = c.dim;
  j["intermediate_size"] = c.hidden_dim;
  j["num_hidden_layers"] = c.n_layers;
  j["num_attention_heads"] = c.n_heads;
  j["num_key_value_heads"] = c.n_kv_heads;
  j["head_dim"] = c.head_dim;
  j["vocab_size"] = c.n_vocab;
  j["max_position_embeddings"] = c.max_seq;
  j["rms_norm_eps"] = c.norm_eps;
  j["rope_theta"] = c.rope_theta;
  j["hidden_act"] = "silu";
  j["tie_word_embeddings"] = c.tied_embeddings;
  if (c.bos_id >= 0) j["bos_token_id"] = c.bos_id;
  if (c.eos_id >= 0) j["eos_token_id"] = c.eos_id;
  if (!qwen2) {
    j["attention_bias"] = false;
    j["mlp_bias"] = false;
  }
  if (!c.rope_scaling.type.empty()) {
    json r;
    r["rope_type"] = c.rope_scaling.type;
    r["factor"] = c.rope_scaling.factor;
    if (c.rope_scaling.type == "llama3") {
      r["low_freq_factor"] = c.rope_scaling.low_freq_factor;
      r["high_freq_factor"] = c.rope_scaling.high_freq_factor;
      r["original_max_position_embeddings"] = c.rope_scaling.original_max_position;
    }
    j["rope_scaling"] = r;
  }
  return j;
}

// Refuses an OUT_DIR that is a file, or a folder holding anything this writer would not write.
void check_out_dir(const fs::path& out) {
  if (!fs::exists(out)) return;
  if (!fs::is_directory(out))
    fail(out.string(), "exists and is not a folder", "choose another output path or remove the file");
  std::set<std::string> ours = {"config.json", "quantize_config.json", "model.safetensors"};
  for (const char* t : kTokenizerFiles) ours.insert(t);
  for (const auto& e : fs::directory_iterator(out))
    if (!e.is_regular_file() || !ours.contains(e.path().filename().string()))
      fail(out.string(),
           fmt::format("exists and holds '{}', which this writer does not write", e.path().filename().string()),
           "write to a new or empty folder (an earlier lowbit output folder is replaced)");
}

}  // namespace

void write_hf_quantized(const Model& m, const std::map<std::string, IntGroupQuant>& linears, const HfQuantConfig& cfg,
                        const std::string& out_dir) {
  const ModelConfig& c = m.config;
  if (c.arch != Arch::Llama)
    fail(m.path, "the Hugging Face GPTQ / AWQ writer supports the Llama family only",
         "GPT-2 stores its linears as Conv1D [in, out]; write GPT-2 as GGUF (lowbit quantize) instead");
  HfQuantScheme scheme;
  if (cfg.method == "gptq") {
    scheme.method = HfQuantMethod::Gptq;
  } else if (cfg.method == "awq") {
    scheme.method = HfQuantMethod::Awq;
    if (cfg.spec.bits != 4) fail(out_dir, fmt::format("AWQ stores 4-bit weights, not {}-bit", cfg.spec.bits), "use 4 bits or gptq");
  } else {
    fail(out_dir, fmt::format("unknown Hugging Face quantization method '{}'", cfg.method), "use gptq or awq");
  }
  scheme.spec = cfg.spec;
  scheme.desc_act = cfg.desc_act;

  // ---- which linears, and does a per-suffix filter describe them?
  std::set<int> quantized_kinds;
  for (const auto& [name, q] : linears) {
    const auto bl = parse_block_linear(name);
    if (!bl)
      fail(name, "only block linears (attn_q/k/v/output, ffn_gate/up/down) can be stored in the GPTQ / AWQ layout",
           "keep embeddings and the output head in f16");
    const TensorView* w = m.find_weight(name);
    if (!w) fail(m.path, fmt::format("tensor '{}' is quantized but the model has no such weight", name));
    if (w->shape.size() != 2 || w->shape[0] != q.n_out || w->shape[1] != q.n_in)
      fail(name, fmt::format("quantized as [{}, {}] but the model's weight is {}", q.n_out, q.n_in, w->shape_str()));
    if (q.spec.bits != cfg.spec.bits || q.spec.group_size != cfg.spec.group_size || q.spec.sym != cfg.spec.sym)
      fail(name, fmt::format("quantized as {} but the folder is written as {}", q.spec.name(), cfg.spec.name()),
           "one quantization_config describes every linear: quantize them all with the same bits / group / sym");
    quantized_kinds.insert(bl->second);
  }
  for (int l = 0; l < c.n_layers; ++l)
    for (int k : quantized_kinds) {
      const std::string name = fmt::format("blk.{}.{}.weight", l, kBlockLinears[k].canonical);
      if (!linears.contains(name))
        fail(name, fmt::format("is not quantized, but {} is in other layers", kBlockLinears[k].canonical),
             "the config can only say which kinds of linear are quantized: quantize all layers' or none");
    }
  json quant;
  const bool partial = quantized_kinds.size() != std::size(kBlockLinears);
  if (scheme.method == HfQuantMethod::Gptq) {
    quant["quant_method"] = "gptq";
    quant["bits"] = cfg.spec.bits;
    quant["group_size"] = cfg.spec.group_size;
    quant["desc_act"] = cfg.desc_act;
    quant["sym"] = cfg.spec.sym;
    quant["damp_percent"] = cfg.damp;
    quant["true_sequential"] = cfg.true_sequential;
    quant["static_groups"] = cfg.static_groups;
    quant["checkpoint_format"] = "gptq";
    quant["model_name_or_path"] = nullptr;
    quant["model_file_base_name"] = "model";
    if (partial) {
      json kinds = json::array();
      for (int k : quantized_kinds) kinds.push_back(kBlockLinears[k].hf);
      quant["modules_in_block_to_quantize"] = json::array({kinds});
    }
  } else {
    quant["quant_method"] = "awq";
    quant["bits"] = 4;
    quant["group_size"] = cfg.spec.group_size;
    quant["zero_point"] = true;
    quant["version"] = "gemm";
    if (partial) {
      json keep = json::array();
      for (int k = 0; k < int(std::size(kBlockLinears)); ++k)
        if (!quantized_kinds.contains(k)) keep.push_back(kBlockLinears[k].hf);
      quant["modules_to_not_convert"] = keep;
    } else {
      quant["modules_to_not_convert"] = nullptr;
    }
  }

  // ---- folders
  const fs::path out(out_dir);
  check_out_dir(out);
  const fs::path tmp = fs::path(out_dir + ".tmp");
  if (fs::exists(tmp) && !fs::is_directory(tmp))
    fail(tmp.string(), "exists and is not a folder", "remove it; the writer builds the output there");
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  try {
    const std::string src_dir = hf_source_dir(m);

    // ---- model.safetensors
    SafetensorsWriter w((tmp / "model.safetensors").string());
    w.set_metadata("format", "pt");
    w.set_metadata("lowbit.version", LOWBIT_VERSION);
    w.set_metadata("lowbit.quantization", scheme.describe());
    const int hd = c.head_dim;
    auto src_rows = [&](int64_t n) {
      std::vector<int64_t> rows(static_cast<size_t>(n));
      for (int64_t r = 0; r < n; ++r) rows[size_t(r)] = interleaved_source_row(r, hd);
      return rows;
    };
    auto i32_bytes = [](const std::vector<int32_t>& v) {
      return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(v.data()), v.size() * 4);
    };
    for (const auto& [canonical, t] : m.weights) {
      const std::optional<std::string> hf = hf_tensor_name(c.arch, canonical);
      if (!hf) {
        log_warn(fmt::format("{}: tensor '{}' has no Hugging Face name: not written", m.path, canonical));
        continue;
      }
      const bool permute = needs_rope_permute(c, canonical);
      if (permute && (hd % 2 != 0 || t.shape.empty() || t.shape[0] % hd != 0))
        fail(canonical, fmt::format("shape {} does not split into heads of {}", t.shape_str(), hd));
      if (auto it = linears.find(canonical); it != linears.end()) {
        const std::string module = hf->substr(0, hf->size() - 7);  // strip ".weight"
        const IntGroupQuant q = permute ? permute_output_rows(it->second, src_rows(it->second.n_out)) : it->second;
        auto f16_scales = [](const std::vector<float>& s) {
          std::vector<uint16_t> h(s.size());
          for (size_t k = 0; k < s.size(); ++k) h[k] = f32_to_f16(s[k]);
          return h;
        };
        if (scheme.method == HfQuantMethod::Gptq) {
          const GptqTensors p = pack_gptq(q, false, canonical);
          const std::vector<uint16_t> sc = f16_scales(p.scales);
          w.add(module + ".qweight", DType::I32, {p.n_in * p.bits / 32, p.n_out}, i32_bytes(p.qweight));
          w.add(module + ".qzeros", DType::I32, {p.n_groups, p.n_out * p.bits / 32}, i32_bytes(p.qzeros));
          w.add(module + ".scales", DType::F16, {p.n_groups, p.n_out},
                {reinterpret_cast<const uint8_t*>(sc.data()), sc.size() * 2});
          w.add(module + ".g_idx", DType::I32, {p.n_in}, i32_bytes(p.g_idx));
        } else {
          const AwqTensors p = pack_awq(q, canonical);
          const std::vector<uint16_t> sc = f16_scales(p.scales);
          w.add(module + ".qweight", DType::I32, {p.n_in, p.n_out / 8}, i32_bytes(p.qweight));
          w.add(module + ".qzeros", DType::I32, {p.n_groups, p.n_out / 8}, i32_bytes(p.qzeros));
          w.add(module + ".scales", DType::F16, {p.n_groups, p.n_out},
                {reinterpret_cast<const uint8_t*>(sc.data()), sc.size() * 2});
        }
        continue;
      }
      // A plain tensor in f16, its rows (a q/k bias: its elements) permuted when needed.
      const TensorView* src = &t;
      w.add_computed(*hf, DType::F16, t.shape, [src, permute, &src_rows](std::span<uint8_t> outb) {
        const bool is_1d = src->shape.size() == 1;
        const int64_t rows = is_1d ? 1 : src->rows(), cols = src->cols();
        LOWBIT_ASSERT(outb.size() == size_t(rows * cols) * 2);
        const std::vector<int64_t> perm = permute ? src_rows(is_1d ? cols : rows) : std::vector<int64_t>{};
        std::vector<float> x(static_cast<size_t>(cols)), y(static_cast<size_t>(cols));
        for (int64_t r = 0; r < rows; ++r) {  // one row at a time: memory holds a row, not the tensor
          const int64_t sr = permute && !is_1d ? perm[size_t(r)] : r;
          to_f32(*src, sr * cols, cols, x.data());
          if (permute && is_1d)
            for (int64_t e = 0; e < cols; ++e) y[size_t(e)] = x[size_t(perm[size_t(e)])];
          const std::vector<float>& v = permute && is_1d ? y : x;
          for (int64_t k = 0; k < cols; ++k) {
            const uint16_t h = f32_to_f16(v[size_t(k)]);
            std::memcpy(outb.data() + 2 * (r * cols + k), &h, 2);
          }
        }
      });
    }
    w.finish();

    // ---- config.json, quantize_config.json
    json config = src_dir.empty() ? generated_config(c) : read_json((fs::path(src_dir) / "config.json").string());
    config["torch_dtype"] = "float16";
    config["quantization_config"] = quant;
    write_text_file(tmp / "config.json", config.dump(2) + "\n");
    if (scheme.method == HfQuantMethod::Gptq) write_text_file(tmp / "quantize_config.json", quant.dump(2) + "\n");

    // ---- tokenizer
    bool has_tokenizer = false;
    if (!src_dir.empty())
      for (const char* name : kTokenizerFiles) {
        const fs::path p = fs::path(src_dir) / name;
        if (!fs::is_regular_file(p)) continue;
        fs::copy_file(p, tmp / name, fs::copy_options::overwrite_existing);
        const std::string n = name;
        has_tokenizer |= n == "tokenizer.json" || n == "tokenizer.model" || n == "vocab.json";
      }
    if (!has_tokenizer)
      log_warn(fmt::format("{}: no tokenizer written ({} has no Hugging Face tokenizer files): copy tokenizer.json / "
                           "tokenizer.model and tokenizer_config.json from the original model into the folder, or "
                           "pass --tokenizer when running it with lowbit",
                           out_dir, m.path));

    // ---- move into place
    if (fs::exists(out)) {
      const fs::path old = fs::path(out_dir + ".old");
      fs::remove_all(old);
      fs::rename(out, old);
      fs::rename(tmp, out);
      fs::remove_all(old);
    } else {
      fs::rename(tmp, out);
    }
  } catch (const fs::filesystem_error& e) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    fail(out_dir, std::string("cannot write the folder: ") + e.what(), "check the path and free disk space");
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }
  log_info(fmt::format("wrote {} ({}, {} quantized linears)", out_dir, scheme.describe(), linears.size()));
}

}  // namespace lowbit
