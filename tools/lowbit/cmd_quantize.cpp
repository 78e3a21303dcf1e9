// lowbit quantize MODEL -o OUT.gguf --type TYPE [--dry-run] [--tensor-type REGEX=TYPE ...]
//                 [--output-type T] [--keep-output] [--vocab FILE] [--imatrix FILE] [--effort fast|best]
//                 [--method rtn|gptq|awq --calib FILE --nsamples N --seqlen L --seed S
//                  --bits B --group-size G --sym --act-order --static-groups --damp D --no-true-sequential]
//                 [-t THREADS]
// OUT ending in .gguf writes GGUF (TYPE per tensor); any other OUT writes a
// Hugging Face folder in the GPTQ layout (rtn, gptq) or the AWQ layout (awq).
#include <fmt/format.h>

#include "commands.h"
#include "common.h"
#include "core/read_file.h"
#include "eval/perplexity.h"
#include "eval/imatrix.h"
#include "formats/k_quants.h"
#include "io/model_loader.h"
#include "lowbit/error.h"
#include "quant/gguf_export.h"
#include "quant/method_quantize.h"
#include "quant/recipe.h"

namespace lowbit::cli {

void register_quantize(CLI::App& app) {
  auto* cmd = app.add_subcommand("quantize",
                                 "quantize a model: a GGUF file llama.cpp runs, or a Hugging Face GPTQ/AWQ folder");
  static std::string model_path, out_path, tokenizer_path;
  static RecipeOptions ro;
  static ExportOptions eo;
  static MethodOptions mo;
  static bool dry_run = false;
  cmd->add_option("model", model_path, "model to quantize (GGUF, HF folder, llama2.c .bin)")->required();
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

  auto* m = cmd->add_option_group("method", "calibration-based methods (GPTQ, AWQ) and integer groups");
  m->add_option("--method", mo.method, "rtn (round to nearest), gptq or awq")
      ->check(CLI::IsMember({"rtn", "gptq", "awq"}))
      ->capture_default_str();
  m->add_option("--calib", mo.calib.path, "calibration text (.txt, or .jsonl with a \"text\" field); hold out your eval text");
  m->add_option("--nsamples", mo.calib.nsamples, "calibration windows")->capture_default_str();
  m->add_option("--seqlen", mo.calib.seqlen, "tokens per window")->capture_default_str();
  m->add_option("--seed", mo.calib.seed, "seed for the windows")->capture_default_str();
  m->add_option("--bits", mo.spec.bits, "HF output: bits per weight (2, 3, 4, 8)")->capture_default_str();
  m->add_option("--group-size", mo.spec.group_size, "HF output: columns per group (-1: per row)")->capture_default_str();
  m->add_flag("--sym", mo.spec.sym, "HF output: symmetric groups (zero fixed at 2^(bits-1))");
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

  cmd->callback([] {
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
    LoadOptions lo;
    lo.tokenizer_path = tokenizer_path;
    auto model = load_model(model_path, lo);
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
