#include "io/hf_quant_folder.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "core/half.h"
#include "core/log.h"
#include "io/hf_model.h"
#include "io/safetensors_writer.h"
#include "core/read_file.h"
#include "lowbit/error.h"

namespace lowbit {

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

namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

constexpr const char* kTokenizerFiles[] = {"tokenizer.json",          "tokenizer.model",    "tokenizer_config.json",
                                           "special_tokens_map.json", "generation_config.json", "added_tokens.json",
                                           "vocab.json",              "merges.txt"};


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

void write_hf_folder(const Model& m, const HfFolderSpec& spec, const std::string& out_dir) {
  const ModelConfig& c = m.config;
  if (c.arch != Arch::Llama)
    fail(m.path, "the Hugging Face quantized-folder writer supports the Llama family only",
         "GPT-2 stores its linears as Conv1D [in, out]; write GPT-2 as GGUF (lowbit quantize) instead");
  for (const std::string& name : spec.quantized)
    if (!parse_block_linear(name))
      fail(name, "only block linears (attn_q/k/v/output, ffn_gate/up/down) are stored quantized in a Hugging Face folder",
           "keep embeddings and the output head in f16");
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
    w.set_metadata("lowbit.quantization", spec.description);
    const int hd = c.head_dim;
    auto src_rows = [&](int64_t n) {
      std::vector<int64_t> rows(static_cast<size_t>(n));
      for (int64_t r = 0; r < n; ++r) rows[size_t(r)] = interleaved_source_row(r, hd);
      return rows;
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
      if (spec.quantized.contains(canonical)) {
        const std::string module = hf->substr(0, hf->size() - 7);  // strip ".weight"
        const std::vector<int64_t> perm = permute ? src_rows(t.shape[0]) : std::vector<int64_t>{};
        for (HfModuleTensor& mt : spec.module_tensors(canonical, permute ? &perm : nullptr))
          w.add(module + "." + mt.suffix, mt.dtype, std::move(mt.shape), mt.bytes);
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
    json config = src_dir.empty() ? generated_config(c) : read_json_file((fs::path(src_dir) / "config.json").string());
    config["torch_dtype"] = "float16";
    config["quantization_config"] = spec.quantization_config;
    write_text_file(tmp / "config.json", config.dump(2) + "\n");
    if (spec.write_quantize_config) write_text_file(tmp / "quantize_config.json", spec.quantization_config.dump(2) + "\n");

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
  log_info(fmt::format("wrote {} ({}, {} quantized linears)", out_dir, spec.description, spec.quantized.size()));
}

void write_hf_qlinear_folder(const Model& m, const Quantizer& q, const QuantConfig& cfg, const std::string& out_dir) {
  HfFolderSpec spec;
  spec.quantization_config = q.hf_quantization_config(cfg);
  spec.description = cfg.describe();
  for (const auto& [name, v] : m.weights) {
    if (v.dtype != DType::QLINEAR) continue;
    if (!parse_block_linear(name))
      fail(name, fmt::format("is quantized ({}) but only block linears can be stored in a Hugging Face folder", v.type_name()),
           "keep embeddings and the output head unquantized (skip_modules)");
    spec.quantized.insert(name);
  }
  spec.module_tensors = [&](const std::string& canonical, const std::vector<int64_t>* perm) {
    const QLinear* layer = m.weight(canonical).qlinear;
    LOWBIT_ASSERT(layer != nullptr);
    std::shared_ptr<QLinear> permuted;
    if (perm) {
      permuted = layer->with_rows_permuted(*perm);
      if (!permuted)
        fail(canonical, fmt::format("its {} layout cannot reorder rows exactly, and this source's q/k rows must be "
                                    "permuted into Hugging Face's rotate-half order", layer->type_name()),
             "quantize the Hugging Face checkpoint of the model instead (its rows are already in that order)");
      layer = permuted.get();
    }
    return q.hf_module_tensors(*layer, cfg);
  };
  write_hf_folder(m, spec, out_dir);
}

}  // namespace lowbit
