#include "quant/method_quantize.h"

#include <fmt/format.h>

#include "core/log.h"
#include "io/hf_quant_folder.h"
#include "io/hf_quant_layouts.h"
#include "io/hf_quant_writer.h"
#include "lowbit/error.h"

namespace lowbit {

bool is_block_linear(const std::string& name) {
  if (!name.starts_with("blk.")) return false;
  for (const char* s : {".attn_q.weight", ".attn_k.weight", ".attn_v.weight", ".attn_qkv.weight", ".attn_output.weight",
                        ".ffn_gate.weight", ".ffn_up.weight", ".ffn_down.weight"})
    if (name.ends_with(s)) return true;
  return false;
}

namespace {

CalibrationSet calibration(const Model& m, const MethodOptions& mo) {
  if (mo.calib.path.empty())
    fail("quantize", fmt::format("--method {} needs calibration text", mo.method),
         "pass --calib FILE (plain text or JSON lines with \"text\"), e.g. ../shared/text/c4_sample.jsonl");
  CalibrationSet set = load_calibration(m.tok(), mo.calib);
  log_info(fmt::format("calibration {}: {}", mo.calib.path, set.describe()));
  return set;
}

CalibratedOptions run_options(const MethodOptions& mo) {
  CalibratedOptions o = mo.run;
  o.method = mo.method;
  return o;
}

void check_method(const std::string& method) {
  if (method != "rtn" && method != "gptq" && method != "awq")
    fail("quantize", fmt::format("unknown --method '{}'", method), "use rtn, gptq or awq");
}

}  // namespace

void quantize_gguf_with_method(Model& m, const QuantPlan& plan, const MethodOptions& mo, const std::string& out_path,
                               ExportOptions eo) {
  check_method(mo.method);
  CalibratedResult r;
  if (mo.method != "rtn") {
    const CalibrationSet calib = calibration(m, mo);
    TargetOf target = [&](const std::string& name) -> std::optional<GptqTarget> {
      if (!is_block_linear(name)) return std::nullopt;
      const TensorPlan* tp = plan.find(name);
      if (!tp || tp->copy) return std::nullopt;
      const FormatTraits& f = format_traits(tp->type);
      if (!f.quantized || (mo.method == "gptq" && !f.block_grid)) return std::nullopt;
      GptqTarget t;
      t.format = tp->type;
      return t;
    };
    for (const TensorPlan& tp : plan.tensors)
      if (is_block_linear(tp.name) && !target(tp.name))
        log_info(fmt::format("{}: planned {}, rounded to nearest ({} does not apply)", tp.name,
                             format_traits(tp.type).name, mo.method));
    r = quantize_calibrated(m, calib, run_options(mo), target);
    eo.prequantized = &r.blocks;
    eo.extra_metadata["lowbit.method"] = mo.method;
    eo.extra_metadata["lowbit.calibration"] = fmt::format("{}: {}", mo.calib.path, calib.describe());
    if (mo.method == "gptq")
      eo.extra_metadata["lowbit.gptq"] =
          fmt::format("damp {}, block {}, act_order {}, static_groups {}, true_sequential {}", mo.run.gptq.damp,
                      mo.run.gptq.block_size, mo.run.gptq.act_order, mo.run.gptq.static_groups, mo.run.true_sequential);
    else
      eo.extra_metadata["lowbit.awq"] = fmt::format("n_grid {}, clip {}, max_shrink {}", mo.run.awq.n_grid,
                                                    mo.run.awq.clip, mo.run.awq.max_shrink);
    eo.seed = mo.calib.seed;
  }
  export_gguf(m, plan, out_path, eo);
}

namespace {

// The kind of a block linear: "attn_q.weight" for "blk.3.attn_q.weight".
std::string linear_kind(const std::string& name) { return name.substr(name.find('.', 4) + 1); }

// Why a linear of shape [n_out, n_in] cannot be stored with these groups in the layout ("" when it can).
std::string unfit_reason(int64_t n_out, int64_t n_in, const MethodOptions& mo, bool writing) {
  const IntGroupSpec& sp = mo.spec;
  if (sp.group_size > 0 && n_in % sp.group_size != 0)
    return fmt::format("{} inputs are not a multiple of the group size {}", n_in, sp.group_size);
  if (!writing) return "";
  if (mo.method == "awq") {
    if (n_out % 8 != 0) return fmt::format("{} outputs do not pack 8 to an int32 (AWQ layout)", n_out);
  } else if (!gptq_packable(n_in, sp.bits) || !gptq_packable(n_out, sp.bits)) {
    return fmt::format("[{} x {}] does not pack {}-bit values into whole int32 words (GPTQ layout)", n_out, n_in, sp.bits);
  }
  return "";
}

void replace_with_values(Model& m, const std::string& name, std::vector<float> values) {
  TensorView& t = m.weights.at(name);
  std::vector<float>& buf = m.owned.emplace_back(std::move(values));
  t.dtype = DType::F32;
  t.data = buf.data();
  t.nbytes = buf.size() * sizeof(float);
}

}  // namespace

std::map<std::string, IntGroupQuant> quantize_hf_with_method(Model& m, const MethodOptions& mo, const std::string& out_dir) {
  check_method(mo.method);
  const bool writing = !out_dir.empty();
  if (mo.method == "awq" && writing && mo.spec.bits != 4)
    fail("quantize", "the AWQ GEMM layout stores 4-bit weights", "use --bits 4 with --method awq, or evaluate without -o");
  IntGroupSpec probe = mo.spec;
  probe.group_size = -1;
  probe.validate(1, "quantize");  // bits
  // Kinds of linear the groups and the layout can hold in every layer.
  std::map<std::string, std::string> skipped;  // kind -> reason
  for (const auto& [name, view] : m.weights)
    if (is_block_linear(name))
      if (std::string why = unfit_reason(view.rows(), view.cols(), mo, writing); !why.empty())
        skipped.emplace(linear_kind(name), name + ": " + why);
  for (const auto& [kind, why] : skipped) log_warn(fmt::format("every {} left unquantized: {}", kind, why));
  auto chosen = [&](const std::string& name) { return is_block_linear(name) && !skipped.count(linear_kind(name)); };

  std::map<std::string, IntGroupQuant> ints;
  if (mo.method == "rtn") {
    for (auto& [name, view] : m.weights) {
      if (!chosen(name)) continue;
      std::vector<float> W(size_t(view.numel()));
      to_f32(view, 0, view.numel(), W.data());
      IntGroupQuant q = rtn_int_groups(W.data(), view.rows(), view.cols(), mo.spec);
      replace_with_values(m, name, q.dequantize());
      ints[name] = std::move(q);
    }
  } else {
    const CalibrationSet calib = calibration(m, mo);
    TargetOf target = [&](const std::string& name) -> std::optional<GptqTarget> {
      if (!chosen(name)) return std::nullopt;
      GptqTarget t;
      t.ints = mo.spec;
      return t;
    };
    CalibratedResult r = quantize_calibrated(m, calib, run_options(mo), target);
    ints = std::move(r.ints);
  }
  if (!writing) return ints;
  HfQuantConfig cfg;
  cfg.method = mo.method == "awq" ? "awq" : "gptq";
  cfg.spec = mo.spec;
  cfg.desc_act = mo.method == "gptq" && mo.run.gptq.act_order;
  cfg.static_groups = mo.method == "gptq" && mo.run.gptq.static_groups;
  cfg.true_sequential = mo.run.true_sequential;
  cfg.damp = mo.run.gptq.damp;
  write_hf_quantized(m, ints, cfg, out_dir);
  return ints;
}

QuantizeReport quantize_with_registry(Model& m, const QuantConfig& cfg, const CalibrationOptions& calib, int threads,
                                      const std::string& out_dir) {
  const Quantizer& q = find_quantizer(cfg.method);
  q.validate(cfg);
  QuantizeContext ctx;
  ctx.threads = threads;
  ctx.hf_layout = !out_dir.empty();
  std::optional<CalibrationSet> windows;
  if (q.needs_calibration()) {
    if (calib.path.empty())
      fail("--calib", fmt::format("{} needs calibration text", cfg.method), "pass --calib FILE (.txt or .jsonl); hold out your eval text");
    windows = load_calibration(m.tok(), calib);
    log_info("calibration: " + windows->describe());
    ctx.calib = &*windows;
  }
  QuantizeReport rep = q.quantize_model(m, cfg, ctx);
  if (!out_dir.empty()) write_hf_qlinear_folder(m, q, cfg, out_dir);
  return rep;
}

}  // namespace lowbit
