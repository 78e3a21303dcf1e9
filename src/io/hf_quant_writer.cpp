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
#include "io/hf_quant_folder.h"
#include "io/hf_quant_layouts.h"
#include "io/safetensors_writer.h"
#include "lowbit/error.h"

namespace lowbit {
namespace {

using json = nlohmann::json;

template <class T>
std::vector<uint8_t> bytes_of(const std::vector<T>& v) {
  std::vector<uint8_t> b(v.size() * sizeof(T));
  if (!b.empty()) std::memcpy(b.data(), v.data(), b.size());
  return b;
}

std::vector<uint8_t> f16_bytes(const std::vector<float>& s) {
  std::vector<uint16_t> h(s.size());
  for (size_t k = 0; k < s.size(); ++k) h[k] = f32_to_f16(s[k]);
  return bytes_of(h);
}

}  // namespace

std::vector<HfModuleTensor> gptq_module_tensors(const IntGroupQuant& q, const std::string& canonical) {
  const GptqTensors p = pack_gptq(q, false, canonical);
  return {{"qweight", DType::I32, {p.n_in * p.bits / 32, p.n_out}, bytes_of(p.qweight)},
          {"qzeros", DType::I32, {p.n_groups, p.n_out * p.bits / 32}, bytes_of(p.qzeros)},
          {"scales", DType::F16, {p.n_groups, p.n_out}, f16_bytes(p.scales)},
          {"g_idx", DType::I32, {p.n_in}, bytes_of(p.g_idx)}};
}

std::vector<HfModuleTensor> awq_module_tensors(const IntGroupQuant& q, const std::string& canonical) {
  const AwqTensors p = pack_awq(q, canonical);
  return {{"qweight", DType::I32, {p.n_in, p.n_out / 8}, bytes_of(p.qweight)},
          {"qzeros", DType::I32, {p.n_groups, p.n_out / 8}, bytes_of(p.qzeros)},
          {"scales", DType::F16, {p.n_groups, p.n_out}, f16_bytes(p.scales)}};
}

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

  HfFolderSpec spec;
  spec.quantization_config = quant;
  spec.description = scheme.describe();
  spec.write_quantize_config = scheme.method == HfQuantMethod::Gptq;
  for (const auto& [name, q] : linears) spec.quantized.insert(name);
  spec.module_tensors = [&](const std::string& canonical, const std::vector<int64_t>* perm) {
    const IntGroupQuant& stored = linears.at(canonical);
    const IntGroupQuant q = perm ? permute_output_rows(stored, *perm) : stored;
    return scheme.method == HfQuantMethod::Gptq ? gptq_module_tensors(q, canonical) : awq_module_tensors(q, canonical);
  };
  write_hf_folder(m, spec, out_dir);
}

}  // namespace lowbit
