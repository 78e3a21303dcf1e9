// One quantization configuration for every method, as data: what `--config
// quant.json`, the CLI flags, `lowbit compare` candidates and a checkpoint's
// `quantization_config` all turn into.
//
// Hugging Face field names are read and written as transformers' config
// classes spell them:
//   BitsAndBytesConfig  quant_method "bitsandbytes": load_in_4bit, load_in_8bit,
//                       bnb_4bit_quant_type (nf4 | fp4), bnb_4bit_use_double_quant,
//                       bnb_4bit_compute_dtype, bnb_4bit_quant_storage,
//                       llm_int8_threshold, llm_int8_skip_modules,
//                       llm_int8_has_fp16_weight, llm_int8_enable_fp32_cpu_offload
//   GPTQConfig          quant_method "gptq": bits, group_size, desc_act, sym,
//                       damp_percent, true_sequential, static_groups,
//                       checkpoint_format, dataset, model_seqlen, ...
//   AwqConfig           quant_method "awq": bits, group_size, zero_point, version,
//                       modules_to_not_convert
//   HqqConfig           quant_method "hqq": nbits, group_size, axis, view_as_float,
//                       quant_zero, quant_scale, offload_meta, skip_modules
//                       (and transformers' serialised form: "quant_config" / "skip_modules")
//   AqlmConfig          quant_method "aqlm": in_group_size, out_group_size,
//                       num_codebooks, nbits_per_codebook, linear_weights_not_to_quantize
//   lowbit's own        quant_method "lowbit": {"method": "kmeans" | "w8a8" | "w4a8" | ...,
//                       "bits", "group_size", ...} for layouts no other tool has.
// Unknown fields and contradictions (load_in_4bit and load_in_8bit, nbits 5)
// are errors naming the field, with a hint.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace lowbit {

struct QuantConfig {
  std::string method;            // a registry name (methods/quantizer.h): rtn, gptq, awq, nf4, fp4, hqq, kmeans,
                                 // llm.int8, w8a8, w4a8
  int bits = 4;
  int group_size = 64;           // values per group / block; -1: one group per row
  bool sym = false;              // integer groups: zero fixed at 2^(bits-1)
  bool double_quant = false;     // nf4 / fp4: quantize the absmax constants (8-bit, blocks of 256)
  float threshold = 6.0f;        // llm.int8: activation magnitude that makes an input column an outlier
  int axis = 1;                  // hqq: 1 = groups run along the input dim (a row), 0 = along the output dim
  std::string compute_dtype = "float32";
  // Modules kept unquantized, as HF names ("lm_head") or suffixes ("mlp.down_proj");
  // matched against the end of the module's HF name or the canonical name.
  std::vector<std::string> skip_modules;
  // Method-specific knobs not listed above, by name: {"iters": 20, "lp_norm": 0.7}
  // (hqq), {"iters": 30} (kmeans), {"damp_percent": 0.01, "desc_act": true} (gptq), ...
  nlohmann::json extra = nlohmann::json::object();

  // "nf4 b64 dq", "hqq 3-bit g64 axis 1", "llm.int8 threshold 6".
  std::string describe() const;
  // The extra field `key` when present, else `fallback`; throws naming the field when the type is wrong.
  template <class T>
  T extra_or(const std::string& key, T fallback) const;
};

// Reads a Hugging Face quantization_config object (or lowbit's own). `where`
// names the file for errors ("quant.json", "model/config.json").
QuantConfig quant_config_from_json(const nlohmann::json& j, const std::string& where);
// The quantization_config a loader of the method's layout expects (HF spelling
// where one exists; quant_method "lowbit" otherwise).
nlohmann::json quant_config_to_json(const QuantConfig& c);

[[noreturn]] void fail_extra_type(const std::string& key, const std::string& what);

template <class T>
T QuantConfig::extra_or(const std::string& key, T fallback) const {
  auto it = extra.find(key);
  if (it == extra.end() || it->is_null()) return fallback;
  try {
    return it->template get<T>();
  } catch (const nlohmann::json::exception& e) {
    fail_extra_type(key, e.what());
  }
}

}  // namespace lowbit
