// lowbit quantize MODEL -o OUT.gguf --type TYPE [--dry-run] [--tensor-type REGEX=TYPE ...]
//                 [--output-type T] [--keep-output] [--vocab FILE] [--imatrix FILE] [--effort fast|best]
//                 [--method rtn|gptq|awq --calib FILE --nsamples N --seqlen L --seed S
//                  --bits B --group-size G --sym --act-order --static-groups --damp D --no-true-sequential]
//                 [-t THREADS]
// lowbit quantize MODEL --method nf4|fp4|hqq|kmeans|llm.int8|w8a8|w4a8|... [--bits B] [--group-size G]
//                 [--double-quant] [--threshold T] [--axis A] [--skip-modules M ...] [--set KEY=VALUE ...] -o OUT_DIR
// lowbit quantize MODEL --config quant.json -o OUT_DIR      (an HF quantization_config, any method)
// lowbit quantize --list                                     (every method and format with its bits per weight)
// OUT ending in .gguf writes GGUF (TYPE per tensor); any other OUT writes a
// Hugging Face folder in the method's layout (GPTQ for rtn and gptq, AWQ,
// bitsandbytes, HQQ, or lowbit's own).
#include <fmt/format.h>

#include <fstream>
#include <map>
#include <sstream>

#include "commands.h"
#include "common.h"
#include "core/read_file.h"
#include "eval/perplexity.h"
#include "eval/imatrix.h"
#include "formats/k_quants.h"
#include "io/model_loader.h"
#include "formats/format.h"
#include "lowbit/error.h"
#include "methods/quantizer.h"
#include "methods/w8a8.h"
#include "quant/gguf_export.h"
#include "quant/method_quantize.h"
#include "quant/recipe.h"

namespace lowbit::cli {
namespace {


void print_quantize_list() {
  fmt::print("methods (lowbit quantize MODEL --method NAME; bits per weight of a 4096 x 4096 linear at the defaults)\n");
  fmt::print("  {:<10} {:<12} {:>6} {:>7}  {}\n", "method", "bits", "calib", "bpw", "");
  for (const Quantizer* q : all_quantizers()) {
    const QuantConfig c = q->default_config();
    std::string bits;
    for (int b : q->supported_bits()) bits += (bits.empty() ? "" : ",") + std::to_string(b);
    fmt::print("  {:<10} {:<12} {:>6} {:>7.3f}  {} [{}]\n", q->name(), bits, q->needs_calibration() ? "yes" : "no",
               q->bits_per_weight(c, 4096, 4096), q->summary(), c.describe());
  }
  fmt::print("\nformats (lowbit quantize MODEL -o OUT.gguf --type NAME)\n");
  fmt::print("  {:<8} {:>6} {:>7} {:>7}\n", "format", "block", "bytes", "bpw");
  for (const FormatTraits& f : all_formats())
    if (f.quantize_row_ref) fmt::print("  {:<8} {:>6} {:>7} {:>7.3f}\n", f.name, f.block_size, f.block_bytes, f.bits_per_weight());
  fmt::print("\nGGUF mixes: {}\n", recipe_type_names());
}

void print_quantized_summary(const Model& m, const QuantizeReport& rep) {
  uint64_t bytes = 0, q_bytes = 0;
  int64_t q_weights = 0;
  for (const auto& [name, v] : m.weights) {
    bytes += v.nbytes;
    if (v.dtype == DType::QLINEAR) {
      q_bytes += v.nbytes;
      q_weights += v.numel();
    }
  }
  fmt::print("quantized {} linears in {:.1f} s ({} left as they were): {:.3f} bits per weight over them; model {:.2f} MiB, "
             "{:.3f} bits per weight overall\n",
             rep.quantized.size(), rep.seconds, rep.skipped.size(), q_weights ? 8.0 * double(q_bytes) / double(q_weights) : 0.0,
             double(bytes) / (1 << 20), m.n_params() ? 8.0 * double(bytes) / double(m.n_params()) : 0.0);
  for (const std::string& s : rep.skipped) fmt::print("  not quantized: {}\n", s);
}

// LLM.int8(): the share of input columns each layer routed through f32 during the run.
void print_outlier_shares(const Model& m) {
  std::map<int, std::pair<uint64_t, uint64_t>> per_layer;  // layer -> (outlier columns, columns seen)
  for (const auto& [name, v] : m.weights) {
    const auto* q = dynamic_cast<const Int8Linear*>(v.qlinear);
    if (!q || q->mode() != Int8Mode::LlmInt8 || !name.starts_with("blk.")) continue;
    auto& [outliers, seen] = per_layer[std::stoi(name.substr(4))];
    outliers += q->outlier_columns();
    seen += q->calls() * uint64_t(q->n_in());
  }
  if (per_layer.empty()) return;
  fmt::print("LLM.int8() outlier input columns (|x| >= threshold, routed through f32), share per layer:\n");
  for (const auto& [layer, c] : per_layer)
    fmt::print("  layer {:>3}: {:.3f} %\n", layer, c.second ? 100.0 * double(c.first) / double(c.second) : 0.0);
}

}  // namespace

void register_quantize(CLI::App& app) {
  auto* cmd = app.add_subcommand("quantize",
                                 "quantize a model: a GGUF file llama.cpp runs, or a Hugging Face GPTQ/AWQ folder");
  static std::string model_path, out_path, tokenizer_path;
  static RecipeOptions ro;
  static ExportOptions eo;
  static MethodOptions mo;
  static bool dry_run = false;
  cmd->add_option("model", model_path, "model to quantize (GGUF, HF folder, llama2.c .bin)");
  static bool list = false;
  cmd->add_flag("--list", list, "print every method and format with its bits per weight, and exit");
  static std::string config_path;
  cmd->add_option("--config", config_path,
                  "quantization config JSON (a Hugging Face quantization_config: BitsAndBytesConfig, GPTQConfig, AwqConfig, "
                  "HqqConfig fields, or {\"quant_method\": \"lowbit\", \"method\": ...})");
  cmd->add_option("--tokenizer", tokenizer_path,
                  "tokenizer for calibration / --ppl when the model has none beside it (tokenizer.model, tokenizer.json, "
                  "llama2.c tokenizer .bin)");
  cmd->add_option("-o,--output", out_path, "output: FILE.gguf, or a folder for the HF GPTQ/AWQ layout");
  cmd->add_option("--type", ro.type, "GGUF mix or format: " + recipe_type_names());
  cmd->add_option("--tensor-type", ro.tensor_types, "REGEX=TYPE: format for tensors whose name matches (repeatable)");
  cmd->add_option("--output-type", ro.output_type, "format for output.weight (the embedding when tied)");
  cmd->add_flag("--keep-output", ro.keep_output, "leave output.weight unquantized");
  cmd->add_flag("--dry-run", dry_run, "print the plan (types, sizes, bits per weight) and write nothing");
  cmd->add_option("--vocab", eo.vocab_path, "tokenizer to embed for a non-GGUF input (tokenizer.json, tokenizer.model, vocab.json, llama2.c .bin; default: the model's)");
  static std::string imatrix_path;
  cmd->add_option("--imatrix", imatrix_path, "importance matrix (imatrix.dat from lowbit imatrix or llama-imatrix)");
  static std::string effort = "fast";
  cmd->add_option("--effort", effort,
                  "k-quant scale search: fast (Q4_K_M in about llama-quantize's time, lower error) or best (lower error still, "
                  "several times slower)")
      ->check(CLI::IsMember({"fast", "best"}))
      ->capture_default_str();
  cmd->add_option("-t,--threads", eo.threads, "threads (output is identical at any count)");

  auto* m = cmd->add_option_group("method", "quantization methods (see --list)");
  static std::string method;
  auto* method_opt = m->add_option("--method", method, "a method of --list: rtn, gptq, awq, nf4, fp4, hqq, kmeans, llm.int8, w8a8, w4a8");
  static bool double_quant = false;
  static float threshold = 6.0f;
  static int axis = 1;
  static std::vector<std::string> skip_modules, set_extra;
  m->add_flag("--double-quant", double_quant, "nf4 / fp4: quantize the absmax constants too (8-bit, blocks of 256)");
  auto* threshold_opt = m->add_option("--threshold", threshold, "llm.int8: activation magnitude that routes an input column through f32")
      ->capture_default_str();
  auto* axis_opt = m->add_option("--axis", axis, "hqq: 1 = groups along a row (input dim), 0 = along a column")->capture_default_str();
  m->add_option("--skip-modules", skip_modules, "modules to leave unquantized (HF or lowbit names, e.g. mlp.down_proj)");
  m->add_option("--set", set_extra, "KEY=VALUE method knob (e.g. iters=30, lp_norm=0.7; --list shows methods)");
  m->add_option("--calib", mo.calib.path, "calibration text (.txt, or .jsonl with a \"text\" field); hold out your eval text");
  m->add_option("--nsamples", mo.calib.nsamples, "calibration windows")->capture_default_str();
  m->add_option("--seqlen", mo.calib.seqlen, "tokens per window")->capture_default_str();
  m->add_option("--seed", mo.calib.seed, "seed for the windows")->capture_default_str();
  auto* bits_opt = m->add_option("--bits", mo.spec.bits, "bits per weight of the method's codes (default: the method's)");
  auto* group_opt = m->add_option("--group-size", mo.spec.group_size, "values per group / block (-1: one per row; default: the method's)");
  m->add_flag("--sym", mo.spec.sym, "integer groups: symmetric (zero fixed at 2^(bits-1))");
  m->add_flag("--act-order,--desc-act", mo.run.gptq.act_order, "GPTQ: columns in decreasing Hessian diagonal");
  m->add_flag("--static-groups", mo.run.gptq.static_groups, "GPTQ act-order: group parameters from the original weights");
  m->add_option("--damp", mo.run.gptq.damp, "GPTQ: dampening, a fraction of the Hessian's mean diagonal")->capture_default_str();
  static bool no_true_sequential = false;
  m->add_flag("--no-true-sequential", no_true_sequential, "GPTQ: collect all of a layer's Hessians before quantizing any of it");
  m->add_option("--awq-grid", mo.run.awq.n_grid, "AWQ: scale-search points")->capture_default_str();
  static bool awq_no_clip = false;
  m->add_flag("--awq-no-clip", awq_no_clip, "AWQ: skip the clipping search");

  static std::string ppl_text;
  static int ppl_ctx = 128, ppl_chunks = -1;
  cmd->add_option("--ppl", ppl_text, "after quantizing, perplexity on this text (llama.cpp protocol); with integer groups "
                                     "and no -o, the quantized model is evaluated in memory and nothing is written");
  cmd->add_option("--ppl-ctx", ppl_ctx, "--ppl window length")->capture_default_str();
  cmd->add_option("--ppl-chunks", ppl_chunks, "--ppl windows (default: all)");

  cmd->callback([bits_opt, group_opt, method_opt, threshold_opt, axis_opt] {
    if (list) return print_quantize_list();
    if (model_path.empty()) fail("quantize", "no MODEL", "lowbit quantize MODEL ... (or --list)");
    set_kquant_effort(effort == "best" ? KQuantEffort::Best : KQuantEffort::Fast);
    mo.run.true_sequential = !no_true_sequential;
    mo.run.awq.clip = !awq_no_clip;
    mo.run.threads = eo.threads;
    const bool gguf = out_path.ends_with(".gguf") || (out_path.empty() && !ro.type.empty());
    if (!dry_run && out_path.empty() && (gguf || ppl_text.empty()))
      fail("quantize", "no output", "pass -o OUT.gguf (or -o FOLDER for HF GPTQ/AWQ), --dry-run, or --ppl TEXT without --type");
    auto report_ppl = [](const Model& model) {
      PplOptions po;
      po.n_ctx = ppl_ctx;
      po.max_chunks = ppl_chunks;
      po.n_threads = eo.threads;
      const PplResult r = perplexity(model, read_text_file(ppl_text), po);
      fmt::print("ppl       {:.4f} +/- {:.4f}  ({}, ctx {}, {} chunks, {} scored, protocol llama.cpp)\n", r.ppl, r.ppl_stderr,
                 ppl_text, ppl_ctx, r.n_chunks, r.n_scored);
    };
    // The method's config: --config FILE, or --method with its defaults and the flags given.
    QuantConfig cfg;
    if (!config_path.empty()) {
      if (*method_opt) fail("--method", "given together with --config", "the config names its method (quant_method)");
      cfg = quant_config_from_json(read_json_file(config_path), config_path);
    } else {
      cfg = find_quantizer(method.empty() ? "rtn" : method).default_config();
    }
    if (*bits_opt) cfg.bits = mo.spec.bits;
    if (*group_opt) cfg.group_size = mo.spec.group_size;
    if (mo.spec.sym) cfg.sym = true;
    if (double_quant) cfg.double_quant = true;
    if (*threshold_opt) cfg.threshold = threshold;
    if (*axis_opt) cfg.axis = axis;
    for (const std::string& s : skip_modules) cfg.skip_modules.push_back(s);
    for (const std::string& kv : set_extra) {
      const size_t eq = kv.find('=');
      if (eq == std::string::npos || eq == 0) fail("--set", fmt::format("'{}' is not KEY=VALUE", kv), "e.g. --set iters=30");
      const std::string key = kv.substr(0, eq), value = kv.substr(eq + 1);
      try {
        cfg.extra[key] = nlohmann::json::parse(value);  // numbers, true / false
      } catch (const nlohmann::json::exception&) {
        cfg.extra[key] = value;  // anything else: a string
      }
    }
    const Quantizer& quantizer = find_quantizer(cfg.method);
    quantizer.validate(cfg);
    mo.method = cfg.method;
    mo.spec.bits = cfg.bits;
    mo.spec.group_size = cfg.group_size;
    mo.spec.sym = cfg.sym;
    const bool int_groups = cfg.method == "rtn" || cfg.method == "gptq" || cfg.method == "awq";

    LoadOptions lo;
    lo.tokenizer_path = tokenizer_path;
    auto model = load_model(model_path, lo);
    // The registry runs every method in memory and writes its layout; rtn / gptq / awq
    // folders keep the GPTQ / AWQ writer, which leaves unpackable kinds in f16.
    if (!gguf && (!int_groups || out_path.empty())) {
      if (!ro.type.empty()) fail("quantize", "--type applies to GGUF output", "name the output FILE.gguf, or drop --type for an HF folder");
      fmt::print("method    {} ({}) -> {}\n", cfg.method, cfg.describe(), out_path.empty() ? "memory" : out_path);
      if (dry_run) return;
      const QuantizeReport rep = quantize_with_registry(*model, cfg, mo.calib, eo.threads, out_path);
      for (const std::string& n : rep.notes) fmt::print("  {}\n", n);
      print_quantized_summary(*model, rep);
      if (!out_path.empty()) fmt::print("wrote {}\n", out_path);
      if (!ppl_text.empty()) {
        report_ppl(*model);
        print_outlier_shares(*model);
      }
      return;
    }
    if (gguf && !int_groups)
      fail("--method", fmt::format("{} writes a Hugging Face folder, not GGUF", cfg.method),
           "pass -o FOLDER; GGUF output takes --method rtn, gptq or awq with --type");
    if (!gguf) {
      if (!ro.type.empty()) fail("quantize", "--type applies to GGUF output", "name the output FILE.gguf, or drop --type for an HF folder");
      fmt::print("method    {} -> {} ({} layout, {})\n", mo.method, out_path, mo.method == "awq" ? "AWQ" : "GPTQ",
                 mo.spec.name());
      if (dry_run) return;
      const auto ints = quantize_hf_with_method(*model, mo, out_path);
      fmt::print("quantized {} linears\n", ints.size());
      if (!out_path.empty()) fmt::print("wrote {}\n", out_path);
      if (!ppl_text.empty()) report_ppl(*model);
      return;
    }
    if (ro.type.empty()) fail("quantize", "no --type", "pass --type Q4_K_M (or another mix or format) for GGUF output");
    static ImatrixData imatrix;
    if (!imatrix_path.empty()) {
      imatrix = read_imatrix(imatrix_path);
      eo.imatrix = &imatrix;
      eo.imatrix_path = imatrix_path;
      ro.has_imatrix = true;
      fmt::print("imatrix   {}: {} entries, {} chunks, dataset '{}'\n", imatrix_path, imatrix.entries.size(),
                 imatrix.last_call, imatrix.dataset);
    }
    QuantPlan plan = make_plan(*model, ro);
    fmt::print("{}", format_plan(plan));
    if (dry_run) return;
    quantize_gguf_with_method(*model, plan, mo, out_path, eo);
    fmt::print("wrote {}\n", out_path);
    if (!ppl_text.empty()) report_ppl(*load_model(out_path));
  });
}

}  // namespace lowbit::cli
