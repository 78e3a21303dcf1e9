#include "methods/int_group_quantizers.h"

#include <chrono>

#include <fmt/format.h>

#include "core/log.h"
#include "io/hf_quant_layouts.h"
#include "io/hf_quant_writer.h"
#include "lowbit/error.h"
#include "methods/calibrated.h"
#include "methods/int_group_linear.h"
#include "quant/method_quantize.h"

namespace lowbit {

IntGroupSpec int_group_spec(const QuantConfig& cfg) {
  IntGroupSpec s;
  s.bits = cfg.bits;
  s.group_size = cfg.group_size;
  s.sym = cfg.sym;
  return s;
}

namespace {

class IntGroupQuantizer : public Quantizer {
 public:
  explicit IntGroupQuantizer(std::string name) : name_(std::move(name)) {}
  std::string name() const override { return name_; }
  std::string summary() const override {
    if (name_ == "rtn") return "round to nearest, integer groups (AutoGPTQ's grid): the baseline; HF GPTQ layout";
    if (name_ == "gptq") return "GPTQ (Frantar et al. 2022): second-order error feedback from calibration data; HF GPTQ layout";
    return "AWQ (Lin et al. 2023): activation-aware per-channel scales from calibration data; HF AWQ layout";
  }
  bool needs_calibration() const override { return name_ != "rtn"; }
  QuantConfig default_config() const override {
    QuantConfig c;
    c.method = name_;
    c.bits = 4;
    c.group_size = 128;  // AutoGPTQ's and AutoAWQ's usual group
    return c;
  }
  std::vector<int> supported_bits() const override { return {2, 3, 4, 8}; }

  void validate(const QuantConfig& cfg) const override {
    if (cfg.bits != 2 && cfg.bits != 3 && cfg.bits != 4 && cfg.bits != 8)
      fail("bits", fmt::format("{} stores 2, 3, 4 or 8 bits, not {}", name_, cfg.bits), "use --bits 2, 3, 4 or 8");
    if (cfg.group_size == 0 || cfg.group_size < -1)
      fail("group_size", fmt::format("{} is not a group size", cfg.group_size), "a column count (32, 64, 128) or -1 for one group per row");
  }
  bool fits(const QuantConfig& cfg, int64_t n_out, int64_t n_in, std::string* why) const override {
    if (cfg.group_size <= 0 || n_in % cfg.group_size == 0) return true;
    if (why) *why = fmt::format("group size {} does not divide its {} inputs", cfg.group_size, n_in);
    return false;
  }
  // The HF layouts pack widths into 32-bit words (GPTQ: codes along the inputs,
  // zeros along the outputs; AWQ: 8 outputs per word).
  bool layout_fits(const QuantConfig& cfg, int64_t n_out, int64_t n_in, std::string* why) const override {
    std::string reason;
    if (name_ == "awq" && (n_out % 8 != 0 || cfg.bits != 4))
      reason = fmt::format("AWQ's layout packs 8 4-bit outputs per word; {} outputs at {} bits do not", n_out, cfg.bits);
    else if (name_ != "awq" && (!gptq_packable(n_in, cfg.bits) || !gptq_packable(n_out, cfg.bits)))
      reason = fmt::format("the GPTQ layout cannot pack {}-bit codes of [{}, {}] into 32-bit words", cfg.bits, n_out, n_in);
    if (why) *why = reason;
    return reason.empty();
  }
  double bits_per_weight(const QuantConfig& cfg, int64_t n_out, int64_t n_in) const override {
    const double g = cfg.group_size < 0 ? double(n_in) : double(cfg.group_size);
    return cfg.bits + (16.0 + cfg.bits) / g;  // codes + an f16 scale and a bits-wide zero per group (the GPTQ layout)
  }

  std::shared_ptr<QLinear> quantize_linear(const std::string& name, const float* W, int64_t n_out, int64_t n_in,
                                           const QuantConfig& cfg, const float* importance) const override {
    if (name_ != "rtn")
      fail(name, fmt::format("{} needs calibration data and runs over the whole model", name_),
           "use quantize_model with a calibration set (--calib FILE)");
    const IntGroupSpec spec = int_group_spec(cfg);
    spec.validate(n_in, name);
    return std::make_shared<IntGroupLinear>(rtn_int_groups(W, n_out, n_in, spec), "rtn");
  }

  QuantizeReport quantize_model(Model& m, const QuantConfig& cfg, const QuantizeContext& ctx) const override {
    if (name_ == "rtn") return Quantizer::quantize_model(m, cfg, ctx);
    validate(cfg);
    if (!ctx.calib)
      fail("--calib", fmt::format("{} needs calibration text", name_), "pass --calib FILE (.txt or .jsonl); hold out your eval text");
    QuantizeReport rep;
    const auto t0 = std::chrono::steady_clock::now();
    const IntGroupSpec spec = int_group_spec(cfg);
    CalibratedOptions opts;
    opts.method = name_;
    opts.threads = ctx.threads;
    opts.gptq.act_order = cfg.extra_or<bool>("desc_act", cfg.extra_or<bool>("act_order", false));
    opts.gptq.static_groups = cfg.extra_or<bool>("static_groups", false);
    opts.gptq.damp = cfg.extra_or<double>("damp_percent", 0.01);
    opts.true_sequential = cfg.extra_or<bool>("true_sequential", true);
    opts.awq.n_grid = cfg.extra_or<int>("n_grid", 20);
    opts.awq.clip = cfg.extra_or<bool>("clip", true);
    for (const auto& [name, v] : m.weights) {
      if (!is_block_linear(name)) continue;
      std::string why;
      if (is_skipped_module(cfg, name)) rep.skipped.push_back(name + ": in skip_modules");
      else if (!fits(cfg, v.shape.at(0), v.shape.at(1), &why) ||
               (ctx.hf_layout && !layout_fits(cfg, v.shape.at(0), v.shape.at(1), &why)))
        rep.skipped.push_back(fmt::format("{} {}: {}", name, v.shape_str(), why));
    }
    for (const std::string& s : rep.skipped) log_warn(fmt::format("{}: left unquantized ({})", name_, s));
    const TargetOf target = [&](const std::string& name) -> std::optional<GptqTarget> {
      const TensorView* v = m.find_weight(name);
      if (!v || !is_block_linear(name) || is_skipped_module(cfg, name) || !fits(cfg, v->shape[0], v->shape[1], nullptr) ||
          (ctx.hf_layout && !layout_fits(cfg, v->shape[0], v->shape[1], nullptr)))
        return std::nullopt;
      GptqTarget t;
      t.ints = spec;
      return t;
    };
    const CalibratedResult r = quantize_calibrated(m, *ctx.calib, opts, target);
    for (const auto& [name, q] : r.ints) {
      m.set_qlinear(name, std::make_shared<IntGroupLinear>(q, name_));
      rep.quantized.push_back(name);
    }
    for (const LinearReport& l : r.linears)
      rep.notes.push_back(fmt::format("{} [{}, {}] {}: proxy loss rtn {:.4g} -> {} {:.4g}", l.name, l.n_out, l.n_in, l.target,
                                      l.loss_rtn, name_, l.loss_method));
    rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return rep;
  }

  nlohmann::json hf_quantization_config(const QuantConfig& cfg) const override {
    QuantConfig c = cfg;
    if (name_ == "rtn") c.method = "gptq";  // RTN groups are stored in the GPTQ layout
    nlohmann::json j = quant_config_to_json(c);
    if (name_ != "awq") {
      j["checkpoint_format"] = "gptq";
      if (!j.contains("desc_act")) j["desc_act"] = false;
    }
    return j;
  }
  std::vector<HfModuleTensor> hf_module_tensors(const QLinear& q, const QuantConfig& cfg) const override {
    const auto* l = dynamic_cast<const IntGroupLinear*>(&q);
    if (!l) fail(q.type_name(), "is not an integer-group layer", "this is a bug in the caller");
    return name_ == "awq" ? awq_module_tensors(l->to_int_groups(), q.type_name())
                          : gptq_module_tensors(l->to_int_groups(), q.type_name());
  }
  std::vector<std::string> hf_marker_suffixes() const override { return {"qweight"}; }
  std::vector<std::string> hf_module_suffixes() const override {
    return name_ == "awq" ? std::vector<std::string>{"qweight", "qzeros", "scales"}
                          : std::vector<std::string>{"qweight", "qzeros", "scales", "g_idx"};
  }
  std::shared_ptr<QLinear> load_hf_module(const QuantConfig& cfg, const std::map<std::string, const TensorView*>& parts,
                                          int64_t n_out, int64_t n_in, const std::string& where) const override {
    HfQuantScheme s;
    s.method = name_ == "awq" ? HfQuantMethod::Awq : HfQuantMethod::Gptq;
    s.spec = int_group_spec(cfg);
    auto need = [&](const char* suffix) -> const TensorView& {
      auto it = parts.find(suffix);
      if (it == parts.end() || !it->second)
        fail(where, fmt::format("tensor '{}' is missing", suffix), "a GPTQ / AWQ module stores qweight, qzeros and scales");
      return *it->second;
    };
    auto g = parts.find("g_idx");
    IntGroupQuant q = read_hf_quant_linear(s, need("qweight"), need("qzeros"), need("scales"),
                                           s.method == HfQuantMethod::Gptq && g != parts.end() ? g->second : nullptr, where);
    if (q.n_out != n_out || q.n_in != n_in)
      fail(where, fmt::format("unpacks to [{}, {}], expected [{}, {}]", q.n_out, q.n_in, n_out, n_in), "the checkpoint does not match its config");
    return std::make_shared<IntGroupLinear>(q, name_);
  }

 private:
  std::string name_;
};

}  // namespace

std::unique_ptr<Quantizer> make_rtn_quantizer() { return std::make_unique<IntGroupQuantizer>("rtn"); }
std::unique_ptr<Quantizer> make_gptq_quantizer() { return std::make_unique<IntGroupQuantizer>("gptq"); }
std::unique_ptr<Quantizer> make_awq_quantizer() { return std::make_unique<IntGroupQuantizer>("awq"); }

}  // namespace lowbit
