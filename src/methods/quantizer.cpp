// Quantizer's default model driver, skip-module matching and the registry.
#include "methods/quantizer.h"

#include <chrono>

#include <fmt/format.h>

#include "core/log.h"
#include "io/hf_model.h"
#include "lowbit/error.h"
#include "methods/registry.h"
#include "quant/method_quantize.h"

namespace lowbit {

bool is_skipped_module(const QuantConfig& cfg, const std::string& canonical) {
  if (cfg.skip_modules.empty()) return false;
  // Compare against the module names (no ".weight"): canonical and HF spellings.
  auto strip = [](std::string s) {
    if (s.ends_with(".weight")) s.resize(s.size() - 7);
    return s;
  };
  const std::string canon = strip(canonical);
  std::string hf;
  for (Arch a : {Arch::Llama, Arch::GPT2})
    if (auto n = hf_tensor_name(a, canonical)) {
      hf = strip(*n);
      break;
    }
  for (const std::string& s : cfg.skip_modules) {
    if (s.empty()) continue;
    auto ends = [&](const std::string& name) {
      return name == s || (name.size() > s.size() && name.ends_with(s) && name[name.size() - s.size() - 1] == '.');
    };
    if (ends(canon) || (!hf.empty() && ends(hf))) return true;
    if (s == "lm_head" && canon == "output") return true;
  }
  return false;
}

QuantizeReport Quantizer::quantize_model(Model& m, const QuantConfig& cfg, const QuantizeContext& ctx) const {
  validate(cfg);
  QuantizeReport rep;
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::string> names;
  for (const auto& [name, v] : m.weights) {
    if (!is_block_linear(name)) continue;
    std::string why;
    if (is_skipped_module(cfg, name))
      rep.skipped.push_back(name + ": in skip_modules");
    else if (v.shape.size() != 2 || !fits(cfg, v.shape[0], v.shape[1], &why) ||
             (ctx.hf_layout && !layout_fits(cfg, v.shape[0], v.shape[1], &why)))
      rep.skipped.push_back(fmt::format("{} {}: {}", name, v.shape_str(), why));
    else
      names.push_back(name);
  }
  for (const std::string& s : rep.skipped) log_warn(fmt::format("{}: left unquantized ({})", this->name(), s));
  Progress progress(fmt::format("{} {}", this->name(), cfg.describe()), int64_t(names.size()));
  std::vector<float> w;
  for (size_t i = 0; i < names.size(); ++i) {
    const TensorView& v = m.weight(names[i]);
    const int64_t n_out = v.shape.at(0), n_in = v.shape.at(1);
    w.resize(size_t(n_out * n_in));
    to_f32(v, 0, n_out * n_in, w.data());
    m.set_qlinear(names[i], quantize_linear(names[i], w.data(), n_out, n_in, cfg, nullptr));
    rep.quantized.push_back(names[i]);
    progress.update(int64_t(i + 1), names[i]);
  }
  progress.finish();
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

const Quantizer& find_quantizer(const std::string& name) {
  std::string names;
  for (const Quantizer* q : all_quantizers()) {
    if (q->name() == name) return *q;
    names += (names.empty() ? "" : ", ") + q->name();
  }
  fail("--method", fmt::format("unknown quantization method '{}'", name), "methods: " + names);
}

std::vector<const Quantizer*> all_quantizers() {
  static const std::vector<std::unique_ptr<Quantizer>> registry = make_registered_quantizers();
  std::vector<const Quantizer*> out;
  for (const auto& q : registry) out.push_back(q.get());
  return out;
}

}  // namespace lowbit
