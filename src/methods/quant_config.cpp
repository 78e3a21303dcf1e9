// QuantConfig <-> Hugging Face quantization_config (see quant_config.h).
#include "methods/quant_config.h"

#include <set>

#include <fmt/format.h>

#include "lowbit/error.h"

namespace lowbit {

using json = nlohmann::json;

[[noreturn]] void fail_extra_type(const std::string& key, const std::string& what) {
  fail("quantization config", fmt::format("field '{}' has the wrong type ({})", key, what),
       "see `lowbit quantize --list` for each method's fields");
}

std::string QuantConfig::describe() const {
  const std::string g = group_size < 0 ? "row" : fmt::format("g{}", group_size);
  if (method == "nf4" || method == "fp4")
    return fmt::format("{} b{}{}", method, group_size, double_quant ? " dq" : "");
  if (method == "llm.int8") return fmt::format("llm.int8 threshold {:g}", threshold);
  if (method == "w8a8") return "w8a8 per-channel";
  if (method == "w4a8") return fmt::format("w4a8 {}", g);
  if (method == "hqq") return fmt::format("hqq {}-bit {} axis {}", bits, g, axis);
  if (method == "kmeans") return fmt::format("kmeans {}-bit {}", bits, g);
  return fmt::format("{} int{} {} {}", method, bits, g, sym ? "sym" : "asym");
}

namespace {

// Reads fields out of one JSON object, remembering which were consumed, so
// that anything left over is reported as unknown.
class Fields {
 public:
  Fields(const json& j, std::string where) : j_(j), where_(std::move(where)) {
    if (!j_.is_object()) fail(where_, "quantization config is not a JSON object", "expected {\"quant_method\": ...}");
  }
  template <class T>
  bool get(const std::string& key, T& out) {
    seen_.insert(key);
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return false;
    try {
      out = it->template get<T>();
    } catch (const json::exception&) {
      fail(where_, fmt::format("quantization config field '{}' has the wrong type: {}", key, it->dump()),
           "check the field against the method's config class (BitsAndBytesConfig, GPTQConfig, AwqConfig, HqqConfig)");
    }
    return true;
  }
  void ignore(std::initializer_list<const char*> keys) {
    for (const char* k : keys) seen_.insert(k);
  }
  // Everything not consumed goes to `extra` (allowed) or is an error (strict).
  void rest_to(json& extra) {
    for (auto it = j_.begin(); it != j_.end(); ++it)
      if (!seen_.contains(it.key())) extra[it.key()] = it.value();
  }
  void reject_rest(const std::string& method, const std::string& known) {
    for (auto it = j_.begin(); it != j_.end(); ++it)
      if (!seen_.contains(it.key()))
        fail(where_, fmt::format("unknown field '{}' in a {} quantization config", it.key(), method), "known fields: " + known);
  }
  const std::string& where() const { return where_; }
  bool is_null(const std::string& key) const { return j_.contains(key) && j_[key].is_null(); }

 private:
  const json& j_;
  std::string where_;
  std::set<std::string> seen_;
};

void check_bits(const std::string& where, const std::string& method, int bits, std::initializer_list<int> allowed) {
  for (int b : allowed)
    if (b == bits) return;
  std::string list;
  for (int b : allowed) list += (list.empty() ? "" : ", ") + std::to_string(b);
  fail(where, fmt::format("{} cannot store {} bits", method, bits), "bits: " + list);
}

QuantConfig from_bitsandbytes(Fields& f) {
  QuantConfig c;
  bool in4 = false, in8 = false, dq = false, fp16_weight = false;
  std::string qtype = "fp4";  // BitsAndBytesConfig's default
  f.get("load_in_4bit", in4);
  f.get("load_in_8bit", in8);
  if (in4 == in8)
    fail(f.where(), in4 ? "bitsandbytes config sets both load_in_4bit and load_in_8bit" : "bitsandbytes config sets neither load_in_4bit nor load_in_8bit",
         "set exactly one of them to true");
  f.get("bnb_4bit_quant_type", qtype);
  f.get("bnb_4bit_use_double_quant", dq);
  f.get("bnb_4bit_compute_dtype", c.compute_dtype);
  f.get("llm_int8_threshold", c.threshold);
  f.get("llm_int8_skip_modules", c.skip_modules);
  f.get("llm_int8_has_fp16_weight", fp16_weight);
  if (fp16_weight) fail(f.where(), "llm_int8_has_fp16_weight = true keeps fp16 weights for training", "set it to false to store int8");
  f.ignore({"bnb_4bit_quant_storage", "llm_int8_enable_fp32_cpu_offload", "_load_in_4bit", "_load_in_8bit"});
  if (in4) {
    if (qtype != "nf4" && qtype != "fp4")
      fail(f.where(), fmt::format("bnb_4bit_quant_type '{}' is not nf4 or fp4", qtype), "bitsandbytes has nf4 and fp4");
    c.method = qtype;
    c.bits = 4;
    c.group_size = 64;  // bitsandbytes' blocksize for 4-bit weights
    c.double_quant = dq;
  } else {
    c.method = "llm.int8";
    c.bits = 8;
    c.group_size = -1;
  }
  return c;
}

QuantConfig from_gptq_awq(Fields& f, const std::string& qm) {
  QuantConfig c;
  c.method = qm;
  f.get("bits", c.bits);
  f.get("group_size", c.group_size);
  check_bits(f.where(), qm, c.bits, {2, 3, 4, 8});
  if (qm == "gptq") {
    f.get("sym", c.sym);
    for (const char* k : {"desc_act", "damp_percent", "true_sequential", "static_groups", "checkpoint_format", "dataset",
                          "model_seqlen", "nsamples", "seqlen"}) {
      json v;
      if (f.get(k, v)) c.extra[k] = v;
    }
  } else {
    bool zero_point = true;
    std::string version = "gemm";
    f.get("zero_point", zero_point);
    c.sym = !zero_point;
    f.get("version", version);
    if (version != "gemm" && version != "GEMM")
      fail(f.where(), fmt::format("AWQ version '{}' is not supported", version), "lowbit reads and writes the GEMM layout");
    f.get("modules_to_not_convert", c.skip_modules);
  }
  f.rest_to(c.extra);  // tools add their own bookkeeping fields (model_name_or_path, ...)
  return c;
}

bool f_has_null(const Fields& f, const std::string& key) { return f.is_null(key); }

QuantConfig from_hqq(Fields& f) {
  QuantConfig c;
  c.method = "hqq";
  json qc;
  // transformers serialises HqqConfig as {"quant_config": {"weight_quant_params": {...}}, "skip_modules": [...]}.
  if (f.get("quant_config", qc)) {
    json w = qc.contains("weight_quant_params") ? qc["weight_quant_params"] : qc;
    Fields g(w, f.where() + ": quant_config.weight_quant_params");
    g.get("nbits", c.bits);
    if (w.contains("group_size") && w["group_size"].is_null()) c.group_size = -1;  // hqq: null = the whole axis
    g.get("group_size", c.group_size);
    g.get("axis", c.axis);
    g.rest_to(c.extra);
  }
  f.get("nbits", c.bits);
  if (f_has_null(f, "group_size")) c.group_size = -1;
  f.get("group_size", c.group_size);
  f.get("axis", c.axis);
  f.get("skip_modules", c.skip_modules);
  f.rest_to(c.extra);
  check_bits(f.where(), "hqq", c.bits, {1, 2, 3, 4, 8});
  if (c.axis != 0 && c.axis != 1) fail(f.where(), fmt::format("hqq axis {} is not 0 or 1", c.axis), "axis 1 groups along a row");
  return c;
}

QuantConfig from_lowbit(Fields& f) {
  QuantConfig c;
  if (!f.get("method", c.method) || c.method.empty())
    fail(f.where(), "lowbit quantization config has no 'method'", "e.g. {\"quant_method\": \"lowbit\", \"method\": \"kmeans\", \"bits\": 4}");
  f.get("bits", c.bits);
  f.get("group_size", c.group_size);
  f.get("sym", c.sym);
  f.get("double_quant", c.double_quant);
  f.get("threshold", c.threshold);
  f.get("axis", c.axis);
  f.get("compute_dtype", c.compute_dtype);
  f.get("skip_modules", c.skip_modules);
  json extra;
  if (f.get("extra", extra)) c.extra = extra;
  f.ignore({"version"});
  f.reject_rest("lowbit", "method, bits, group_size, sym, double_quant, threshold, axis, compute_dtype, skip_modules, extra");
  return c;
}

}  // namespace

QuantConfig quant_config_from_json(const json& j, const std::string& where) {
  Fields f(j, where);
  std::string qm;
  if (!f.get("quant_method", qm))
    fail(where, "quantization config has no 'quant_method'", "one of bitsandbytes, gptq, awq, hqq, aqlm, lowbit");
  if (qm == "bitsandbytes") {
    QuantConfig c = from_bitsandbytes(f);
    f.reject_rest("bitsandbytes",
                  "load_in_4bit, load_in_8bit, bnb_4bit_quant_type, bnb_4bit_use_double_quant, bnb_4bit_compute_dtype, "
                  "bnb_4bit_quant_storage, llm_int8_threshold, llm_int8_skip_modules, llm_int8_has_fp16_weight, "
                  "llm_int8_enable_fp32_cpu_offload");
    return c;
  }
  if (qm == "gptq" || qm == "awq") return from_gptq_awq(f, qm);
  if (qm == "hqq") return from_hqq(f);
  if (qm == "lowbit") return from_lowbit(f);
  if (qm == "aqlm") fail(where, "AQLM checkpoints are not supported yet", "AQLM (additive codebooks) is planned");
  fail(where, fmt::format("unknown quant_method '{}'", qm), "one of bitsandbytes, gptq, awq, hqq, lowbit");
}

json quant_config_to_json(const QuantConfig& c) {
  json j;
  if (c.method == "nf4" || c.method == "fp4") {
    j = {{"quant_method", "bitsandbytes"},       {"load_in_4bit", true},
         {"load_in_8bit", false},                {"bnb_4bit_quant_type", c.method},
         {"bnb_4bit_use_double_quant", c.double_quant}, {"bnb_4bit_compute_dtype", c.compute_dtype},
         {"bnb_4bit_quant_storage", "uint8"},    {"llm_int8_threshold", c.threshold},
         {"llm_int8_skip_modules", c.skip_modules.empty() ? json(nullptr) : json(c.skip_modules)},
         {"llm_int8_has_fp16_weight", false},    {"llm_int8_enable_fp32_cpu_offload", false}};
  } else if (c.method == "llm.int8") {
    j = {{"quant_method", "bitsandbytes"},       {"load_in_4bit", false},
         {"load_in_8bit", true},                 {"llm_int8_threshold", c.threshold},
         {"llm_int8_skip_modules", c.skip_modules.empty() ? json(nullptr) : json(c.skip_modules)},
         {"llm_int8_has_fp16_weight", false},    {"llm_int8_enable_fp32_cpu_offload", false},
         {"bnb_4bit_quant_type", "fp4"},         {"bnb_4bit_use_double_quant", false},
         {"bnb_4bit_compute_dtype", c.compute_dtype}, {"bnb_4bit_quant_storage", "uint8"}};
  } else if (c.method == "gptq" || c.method == "rtn") {
    j = {{"quant_method", "gptq"}, {"bits", c.bits}, {"group_size", c.group_size}, {"sym", c.sym}};
    for (auto it = c.extra.begin(); it != c.extra.end(); ++it) j[it.key()] = it.value();
  } else if (c.method == "awq") {
    j = {{"quant_method", "awq"}, {"bits", c.bits}, {"group_size", c.group_size}, {"zero_point", !c.sym}, {"version", "gemm"},
         {"modules_to_not_convert", c.skip_modules.empty() ? json(nullptr) : json(c.skip_modules)}};
  } else if (c.method == "hqq") {
    json w = {{"nbits", c.bits}, {"group_size", c.group_size}, {"axis", c.axis}, {"view_as_float", false}};
    for (auto it = c.extra.begin(); it != c.extra.end(); ++it) w[it.key()] = it.value();
    j = {{"quant_method", "hqq"}, {"quant_config", {{"weight_quant_params", w}, {"scale_quant_params", nullptr},
                                                    {"zero_quant_params", nullptr}, {"offload_meta", false}}},
         {"skip_modules", c.skip_modules.empty() ? json::array({"lm_head"}) : json(c.skip_modules)}};
  } else {
    j = {{"quant_method", "lowbit"}, {"method", c.method}, {"bits", c.bits}, {"group_size", c.group_size},
         {"sym", c.sym}, {"double_quant", c.double_quant}, {"threshold", c.threshold}, {"axis", c.axis},
         {"compute_dtype", c.compute_dtype}, {"skip_modules", c.skip_modules}, {"extra", c.extra}};
  }
  return j;
}

}  // namespace lowbit
