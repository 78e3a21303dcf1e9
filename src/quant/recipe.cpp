#include "quant/recipe.h"

#include <cstdio>
#include <optional>
#include <regex>

#include <fmt/format.h>

#include "core/log.h"
#include "io/gguf.h"
#include "lowbit/error.h"

namespace lowbit {

namespace {

struct Mix {
  const char* name;
  uint32_t file_type;  // LLAMA_FTYPE_*
  FormatId base;
};

// llama.cpp's mixes (include/llama.h LLAMA_FTYPE ids, default types from llama_model_quantize_impl).
constexpr Mix kMixes[] = {
    {"F16", 1, FormatId::F16},     {"BF16", 32, FormatId::BF16},  {"Q4_0", 2, FormatId::Q4_0},
    {"Q8_0", 7, FormatId::Q8_0},   {"Q2_K", 10, FormatId::Q2_K},  {"Q3_K_S", 11, FormatId::Q3_K},
    {"Q3_K_M", 12, FormatId::Q3_K}, {"Q3_K_L", 13, FormatId::Q3_K}, {"Q4_K_S", 14, FormatId::Q4_K},
    {"Q4_K_M", 15, FormatId::Q4_K}, {"Q5_K_S", 16, FormatId::Q5_K}, {"Q5_K_M", 17, FormatId::Q5_K},
    {"Q6_K", 18, FormatId::Q6_K},
};
enum : uint32_t { kQ4_0 = 2, kQ5_0 = 8, kQ2_K = 10, kQ3_K_S = 11, kQ3_K_M = 12, kQ3_K_L = 13, kQ4_K_S = 14, kQ4_K_M = 15, kQ5_K_S = 16, kQ5_K_M = 17 };

// LLAMA_FTYPE for a "pure" single-format recipe.
uint32_t pure_file_type(FormatId f) {
  switch (f) {
    case FormatId::F32: return 0;
    case FormatId::F16: return 1;
    case FormatId::Q4_0: return 2;
    case FormatId::Q4_1: return 3;
    case FormatId::Q8_0: return 7;
    case FormatId::Q5_0: return 8;
    case FormatId::Q5_1: return 9;
    case FormatId::Q2_K: return kQ2_K;
    case FormatId::Q3_K: return kQ3_K_S;
    case FormatId::Q4_K: return kQ4_K_S;
    case FormatId::Q5_K: return kQ5_K_S;
    case FormatId::Q6_K: return 18;
    case FormatId::IQ4_NL: return 25;
    case FormatId::BF16: return 32;
    default: return 0;
  }
}

bool use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }
bool has(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }
int block_of(FormatId f) { return format_traits(f).block_size; }

// llama.cpp's fallback when rows of `n` do not divide `f`'s block; "" note when no fallback was needed.
FormatId fit_rows(FormatId f, int64_t n, std::string* note) {
  if (n % block_of(f) == 0) return f;
  FormatId g;
  switch (f) {
    case FormatId::Q2_K: case FormatId::Q3_K: g = FormatId::IQ4_NL; break;
    case FormatId::Q4_K: g = FormatId::Q5_0; break;
    case FormatId::Q5_K: g = FormatId::Q5_1; break;
    case FormatId::Q6_K: g = FormatId::Q8_0; break;
    default: g = FormatId::F16; break;
  }
  if (n % block_of(g) != 0) g = FormatId::F16;
  if (note)
    *note = fmt::format("fallback: rows of {} not divisible by {} ({}) -> {}", n, block_of(f), format_traits(f).name,
                        format_traits(g).name);
  return g;
}

const FormatTraits& parse_format(const std::string& name, const std::string& where) {
  const FormatTraits* t = find_format(name);
  if (!t || t->id == FormatId::Q8_K || t->id == FormatId::Q8_1)
    fail(where, fmt::format("unknown storage format '{}'", name), "formats: f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q2_K q3_K q4_K q5_K q6_K iq4_nl");
  return *t;
}

int layer_of(const std::string& name) {
  int l = -1;
  if (std::sscanf(name.c_str(), "blk.%d.", &l) != 1) return -1;
  return l;
}

// The format a tensor kept as it is would be written in.
FormatId source_type(const TensorView& v) {
  if (v.dtype == DType::QUANT) return v.format;
  if (auto g = dtype_to_ggml_type(v.dtype); g && (*g == GgmlType::F16 || *g == GgmlType::BF16)) return FormatId(*g);
  return FormatId::F32;
}

}  // namespace

const TensorPlan* QuantPlan::find(const std::string& name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

std::string recipe_type_names() {
  std::string s;
  for (const auto& m : kMixes) s += std::string(m.name) + " ";
  return s + "(mixes), or one format: f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q2_K q3_K q4_K q5_K q6_K iq4_nl";
}

FormatId mix_tensor_type(uint32_t ft, FormatId base, const std::string& name, int layer, int n_layers, int n_gqa,
                         bool has_output, int64_t row_len, std::string* note, bool has_imatrix) {
  FormatId t = base;
  std::string why;
  const int i = layer, n = n_layers;
  if (name == "output.weight" || (!has_output && name == "token_embd.weight")) {
    if (row_len % block_of(base) != 0) t = FormatId::Q8_0, why = "output: rows do not divide the base block -> q8_0";
    else if (base != FormatId::Q8_0) t = FormatId::Q6_K, why = "output -> q6_K";
  } else if (name == "token_embd.weight") {
    // base type
  } else if (has(name, "attn_v.weight")) {
    if (ft == kQ2_K) t = n_gqa >= 4 ? FormatId::Q4_K : FormatId::Q3_K;
    else if (ft == kQ3_K_M) t = i < 2 ? FormatId::Q5_K : FormatId::Q4_K;
    else if (ft == kQ3_K_L) t = FormatId::Q5_K;
    else if ((ft == kQ4_K_M || ft == kQ5_K_M) && use_more_bits(i, n)) t = FormatId::Q6_K;
    else if (ft == kQ4_K_S && i < 4) t = FormatId::Q5_K;
    if (t != base) why = "attn_v upgrade";
  } else if (has(name, "ffn_down")) {
    if (ft == kQ2_K) t = FormatId::Q3_K;
    else if (ft == kQ3_K_M) t = i < n / 16 ? FormatId::Q5_K : FormatId::Q4_K;
    else if (ft == kQ3_K_L) t = FormatId::Q5_K;
    else if (ft == kQ4_K_M) { if (use_more_bits(i, n)) t = FormatId::Q6_K; }
    else if (ft == kQ5_K_M && use_more_bits(i, n)) t = FormatId::Q6_K;
    else if (ft == kQ4_K_S && i < n / 8) t = FormatId::Q5_K;
    else if ((ft == kQ4_0 || ft == kQ5_0) && has_imatrix && i < n / 8) {
      // llama.cpp guards the first eighth of ffn_down against outliers with the min-carrying
      // variant, but only with an imatrix, so that a plain quantization stays as it always was.
      t = ft == kQ4_0 ? FormatId::Q4_1 : FormatId::Q5_1;
      why = fmt::format("ffn_down of the first n_layer/8 layers with an imatrix -> {}", format_traits(t).name);
    }
    if (t != base && why.empty()) why = "ffn_down upgrade";
  } else if (has(name, "attn_output.weight")) {
    if (ft == kQ2_K) t = FormatId::Q3_K;
    else if (ft == kQ3_K_M) t = FormatId::Q4_K;
    else if (ft == kQ3_K_L) t = FormatId::Q5_K;
    if (t != base) why = "attn_output upgrade";
  } else if (has(name, "attn_qkv.weight")) {
    if (ft == kQ3_K_M || ft == kQ3_K_L) t = FormatId::Q4_K;
    else if (ft == kQ4_K_M) t = FormatId::Q5_K;
    else if (ft == kQ5_K_M) t = FormatId::Q6_K;
    if (t != base) why = "attn_qkv upgrade";
  }
  std::string fb;
  t = fit_rows(t, row_len, &fb);
  if (!fb.empty()) why = why.empty() ? fb : why + "; " + fb;
  if (note) *note = why;
  return t;
}

QuantPlan make_plan(const Model& m, const RecipeOptions& o) {
  QuantPlan p;
  p.recipe = o.type;
  bool is_mix = false;
  for (const auto& mx : kMixes)
    if (o.type == mx.name) is_mix = true, p.file_type = mx.file_type, p.base = mx.base;
  if (!is_mix) {
    const FormatTraits* t = find_format(o.type);
    if (!t || t->id == FormatId::Q8_K || t->id == FormatId::Q8_1)
      fail("--type", fmt::format("unknown quantization type '{}'", o.type), "use one of: " + recipe_type_names());
    p.base = t->id;
    p.file_type = pure_file_type(t->id);
  }
  const bool mix_rules = is_mix && format_traits(p.base).quantized;

  struct Override { std::regex re; FormatId type; };
  std::vector<Override> overrides;
  for (const auto& s : o.tensor_types) {
    auto eq = s.rfind('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == s.size())
      fail("--tensor-type", fmt::format("'{}' is not REGEX=TYPE", s), "e.g. --tensor-type 'attn_v=q8_0'");
    Override ov{std::regex(), parse_format(s.substr(eq + 1), "--tensor-type " + s).id};
    try {
      ov.re = std::regex(s.substr(0, eq));
    } catch (const std::regex_error& e) {
      fail("--tensor-type", fmt::format("bad regular expression '{}': {}", s.substr(0, eq), e.what()));
    }
    overrides.push_back(std::move(ov));
    p.recipe += " --tensor-type " + s;
  }
  std::optional<FormatId> out_type;
  if (!o.output_type.empty()) {
    out_type = parse_format(o.output_type, "--output-type").id;
    p.recipe += " --output-type " + o.output_type;
  }
  if (o.keep_output) p.recipe += " --keep-output";

  const ModelConfig& c = m.config;
  const bool has_output = m.find_weight("output.weight") != nullptr;
  const int n_gqa = c.n_kv_heads > 0 ? c.n_heads / c.n_kv_heads : 1;
  for (const auto& [name, v] : m.weights) {
    TensorPlan t;
    t.name = name;
    t.shape = v.shape;
    const int64_t row = v.cols();
    const bool is_output = name == "output.weight" || (!has_output && name == "token_embd.weight");
    bool quantize = v.shape.size() >= 2 && name.ends_with("weight") && !has(name, "_norm.weight") &&
                    name != "position_embd.weight" && !(o.keep_output && name == "output.weight");
    if (v.shape.size() < 2) {
      t.type = FormatId::F32;
    } else if (!quantize) {
      t.type = source_type(v);
      t.note = o.keep_output && name == "output.weight" ? "--keep-output" : "not quantized";
    } else {
      if (mix_rules) {
        t.type = mix_tensor_type(p.file_type, p.base, name, layer_of(name), c.n_layers, n_gqa, has_output, row, &t.note,
                                 o.has_imatrix);
      } else {
        t.type = fit_rows(p.base, row, &t.note);
      }
      bool overridden = false;
      for (const auto& ov : overrides)
        if (std::regex_search(name, ov.re)) {
          t.type = ov.type, t.note = "--tensor-type", overridden = true;
          break;
        }
      if (out_type && is_output && !overridden) t.type = *out_type, t.note = "--output-type";
      if (overridden || (out_type && is_output)) {
        std::string fb;
        t.type = fit_rows(t.type, row, &fb);
        if (!fb.empty()) t.note += "; " + fb;
      }
    }
    t.source_type = v.type_name();
    if (v.dtype == DType::QUANT && t.type == v.format) {
      t.copy = true;
      t.note = t.note.empty() ? "already " + t.source_type + ": bytes copied unchanged"
                              : t.note + "; already " + t.source_type + ": bytes copied unchanged";
    } else if (v.dtype == DType::QUANT) {
      ++p.n_requantized;
      const std::string rq = "requantized from " + t.source_type + " (lossy)";
      t.note = t.note.empty() ? rq : t.note + "; " + rq;
    }
    t.fallback = has(t.note, "fallback");
    if (t.fallback) log_warn(fmt::format("{} {}: {}", name, v.shape_str(), t.note));
    t.bytes = row_bytes(t.type, row) * uint64_t(v.rows());
    p.total_bytes += t.bytes;
    p.n_weights += v.numel();
    p.tensors.push_back(std::move(t));
  }
  if (p.n_requantized > 0) {
    p.warning = fmt::format(
        "{}: {} of {} tensors are already quantized and will be dequantized and quantized again to {}; "
        "requantizing adds the second quantization's error to the first and loses quality. Quantize the "
        "original f16/bf16 weights instead when they are available",
        m.path, p.n_requantized, p.tensors.size(), o.type);
    log_warn(p.warning);
  }
  return p;
}

std::string format_plan(const QuantPlan& p) {
  size_t w = 6;
  for (const auto& t : p.tensors) w = std::max(w, t.name.size());
  std::string s;
  if (!p.warning.empty()) s += "WARNING: " + p.warning + "\n\n";
  s += fmt::format("{:<{}}  {:<14}  {:<7}  {:<7}  {:>12}  {}\n", "tensor", w, "shape", "source", "type", "bytes", "note");
  for (const auto& t : p.tensors) {
    TensorView v;
    v.shape = t.shape;
    s += fmt::format("{:<{}}  {:<14}  {:<7}  {:<7}  {:>12}  {}\n", t.name, w, v.shape_str(),
                     t.source_type.empty() ? "?" : t.source_type, format_traits(t.type).name, t.bytes, t.note);
  }
  s += fmt::format("\nrecipe {} (file_type {}): {} tensors, {} weights, {} bytes ({:.2f} MiB), {:.3f} bits per weight\n",
                   p.recipe, p.file_type, p.tensors.size(), p.n_weights, p.total_bytes,
                   double(p.total_bytes) / (1024.0 * 1024.0), p.bits_per_weight());
  return s;
}

}  // namespace lowbit
