// lowbit compare MODEL -f TEXT --candidates LIST -o DIR [--calib FILE] [-c CTX] [--chunks N] [-t THREADS]
//                [--y kld|dppl]
//
// Quantizes MODEL with every candidate of LIST, evaluates each against the
// base (PPL, KLD, top-1; GGUF candidates also tgN tokens/s) and writes
// DIR/report.md, DIR/report.json and DIR/pareto.svg (eval/compare.h has the
// candidate syntax, eval/report.h the report; --y picks the plot's measure). A
// rerun reuses finished candidates and, when it has to compute any, the base's
// saved logits of an earlier run with the same setup.
#include <string>

#include <fmt/format.h>

#include "commands.h"
#include "common.h"
#include "core/read_file.h"
#include "eval/compare.h"

namespace lowbit::cli {

void register_compare(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "compare", "quantize a model with several candidates, evaluate each, write report.md/.json and pareto.svg");
  static ModelArgs a;
  static CompareOptions o;
  static std::string list;
  static std::string plot_y = "kld";
  add_model_args(cmd, a);
  cmd->add_option("-f,--file", o.text, "evaluation text")->required();
  cmd->add_option("--candidates", list,
                  "comma-separated: GGUF types (q8_0, Q4_K_M, q4_K_M, q6_K, f16, ...) and/or "
                  "<method><bits>g<group>[sym] (rtn4g64, gptq3g-1, gptq3row, awq4g128)")
      ->required();
  cmd->add_option("-o,--out", o.out_dir, "output folder (created; finished candidates in it are reused)")->required();
  cmd->add_option("--calib", o.calib, "calibration text for gptq / awq candidates (.txt or .jsonl)");
  cmd->add_option("--nsamples", o.nsamples, "calibration windows")->capture_default_str();
  cmd->add_option("--seqlen", o.seqlen, "tokens per calibration window")->capture_default_str();
  cmd->add_option("-c,--ctx", o.n_ctx, "evaluation window length in tokens")->capture_default_str();
  cmd->add_option("--chunks", o.chunks, "evaluate at most N windows (default: all)");
  cmd->add_option("--protocol", o.protocol, "llama.cpp or gptq (see lowbit ppl)")->capture_default_str();
  cmd->add_option("--top-k", o.top_k, "base logits kept per position for the KLD")->capture_default_str();
  cmd->add_option("--tg", o.tg, "generated tokens of the speed test of GGUF candidates (0: skip)")
      ->capture_default_str();
  cmd->add_option("--y", plot_y,
                  "what pareto.svg plots against bpw (log scale) and its Pareto front is computed on: "
                  "kld (mean KL divergence) or dppl (ΔPPL %)")
      ->capture_default_str();
  cmd->callback([] {
    const std::vector<Candidate> cands = parse_candidates(list);
    o.model = a.path;
    o.tokenizer = a.tokenizer;
    o.threads = resolve_threads(a.threads);
    o.y = parse_plot_y(plot_y);
    const CompareResult r = run_compare(cands, o);
    fmt::print("{}", read_text_file(o.out_dir + "/report.md"));
    fmt::print("\nwrote {0}/report.md, {0}/report.json, {0}/pareto.svg ({3} against bpw; {1} rows with the base, {2} "
               "reused)\n",
               o.out_dir, r.rows.size(), r.n_reused, o.y == PlotY::Kld ? "KLD" : "ΔPPL %");
  });
}

}  // namespace lowbit::cli
