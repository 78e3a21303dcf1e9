// lowbit quantize MODEL -o OUT.gguf --type TYPE [--dry-run] [--tensor-type REGEX=TYPE ...]
//                 [--output-type T] [--keep-output] [--vocab FILE] [--imatrix FILE] [--effort fast|best]
//                 [-t THREADS]
#include <fmt/format.h>

#include "commands.h"
#include "eval/imatrix.h"
#include "formats/k_quants.h"
#include "io/model_loader.h"
#include "lowbit/error.h"
#include "quant/gguf_export.h"
#include "quant/recipe.h"

namespace lowbit::cli {

void register_quantize(CLI::App& app) {
  auto* cmd = app.add_subcommand("quantize", "quantize a model and write a GGUF file llama.cpp runs");
  static std::string model_path, out_path, tokenizer;
  static RecipeOptions ro;
  static ExportOptions eo;
  static bool dry_run = false;
  cmd->add_option("model", model_path, "model to quantize (GGUF, HF folder, llama2.c .bin)")->required();
  cmd->add_option("-o,--output", out_path, "output GGUF file");
  cmd->add_option("--type", ro.type, "mix or format: " + recipe_type_names())->required();
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
  cmd->callback([] {
    set_kquant_effort(effort == "best" ? KQuantEffort::Best : KQuantEffort::Fast);
    if (!dry_run && out_path.empty()) fail("quantize", "no output file", "pass -o OUT.gguf, or --dry-run");
    static ImatrixData imatrix;
    if (!imatrix_path.empty()) {
      imatrix = read_imatrix(imatrix_path);
      eo.imatrix = &imatrix;
      eo.imatrix_path = imatrix_path;
      fmt::print("imatrix   {}: {} entries, {} chunks, dataset '{}'\n", imatrix_path, imatrix.entries.size(),
                 imatrix.last_call, imatrix.dataset);
    }
    auto m = load_model(model_path);
    QuantPlan plan = make_plan(*m, ro);
    fmt::print("{}", format_plan(plan));
    if (dry_run) return;
    export_gguf(*m, plan, out_path, eo);
    fmt::print("wrote {}\n", out_path);
  });
}

}  // namespace lowbit::cli
