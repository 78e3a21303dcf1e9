// lowbit quant-stats SOURCE QUANT [--layer N] [--sort rmse|name] [--top N] [-t THREADS]
// Per-tensor error of a quantized model against its source (eval/quant_stats.h).
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "commands.h"
#include "common.h"
#include "core/log.h"
#include "eval/quant_stats.h"
#include "lowbit/error.h"

namespace lowbit::cli {
namespace {

std::string fmt_db(double db) { return std::isinf(db) ? "inf" : fmt::format("{:.2f}", db); }
std::string fmt_e(double v) { return std::isinf(v) ? "inf" : fmt::format("{:.4e}", v); }

void print_summary_row(const std::string& label, const ErrorSummary& s) {
  if (s.n_tensors == 0) return;
  fmt::print("| {} | {} | {} | {} | {:.6f} | {} ({}) |\n", label, s.n_tensors, s.numel, fmt_e(s.mean_rel_rmse),
             s.min_cosine, s.worst_tensor, fmt_e(s.worst_rel_rmse));
}

}  // namespace

void register_quant_stats(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "quant-stats", "per-tensor error (rel RMSE, max error, cosine, SNR) of a quantized model against its source");
  static std::vector<std::string> models;
  static std::string sort = "rmse";
  static int layer = -1, top = 0, threads = 0;
  cmd->add_option("models", models, "SOURCE QUANT (GGUF files, HF folders, llama2.c .bin)")->required()->expected(2);
  cmd->add_option("--layer", layer, "only the tensors of layer blk.N");
  cmd->add_option("--sort", sort, "rmse (rel RMSE, largest first) or name (model order)")->capture_default_str();
  cmd->add_option("--top", top, "print only the first N tensors (default: all)");
  cmd->add_option("-t,--threads", threads, "threads (default: all cores; results are identical at any count)");
  cmd->callback([] {
    if (sort != "rmse" && sort != "name") fail("--sort", fmt::format("'{}' is not rmse or name", sort));
    if (top < 0) fail("--top", "must be >= 0");
    ModelArgs a;
    a.pack_for_cpu = false;  // weights are compared, not run
    a.path = models[0];
    auto source = open_model(a);
    a.path = models[1];
    auto quant = open_model(a);
    QuantStatsOptions o;
    o.layer = layer;
    o.n_threads = resolve_threads(threads);
    std::optional<Progress> bar;
    QuantStats r = quant_stats(*source, *quant, o, [&](int i, int n) {
      if (!bar) bar.emplace("quant-stats tensors", n);
      bar->update(i);
    });
    if (bar) bar->finish();
    if (layer >= 0 && r.tensors.empty() && r.only_in_source.empty() && r.only_in_quant.empty())
      fail("--layer", fmt::format("no tensor blk.{}.* in either model", layer));
    sort_tensor_stats(r.tensors, sort == "name" ? QuantStatsSort::Name : QuantStatsSort::RelRmse);

    fmt::print("source    {} ({})\n", r.source_path, r.source_format);
    fmt::print("quant     {} ({})\n", r.quant_path, r.quant_format);
    fmt::print("lowbit    {}\n", LOWBIT_VERSION);
    fmt::print("tensors   {} compared{}, sorted by {}{}\n", r.tensors.size(),
               layer >= 0 ? fmt::format(" (layer {})", layer) : "", sort == "name" ? "name" : "rel RMSE",
               top > 0 && size_t(top) < r.tensors.size() ? fmt::format(", top {} shown", top) : "");
    if (r.rope_permuted)
      fmt::print("note      RoPE layouts differ: attn_q/attn_k rows compared in the same order\n");
    for (const auto& n : r.only_in_source) fmt::print("only in source  {}\n", n);
    for (const auto& n : r.only_in_quant) fmt::print("only in quant   {}\n", n);
    fmt::print("\n");
    fmt::print("| tensor | shape | types | rel RMSE | max err | cosine | SNR dB |\n");
    fmt::print("|---|---|---|---:|---:|---:|---:|\n");
    size_t shown = 0;
    for (const auto& t : r.tensors) {
      if (top > 0 && shown++ >= size_t(top)) break;
      fmt::print("| {} | {} | {} → {} | {} | {:.4e} | {:.6f} | {} |\n", t.name, t.shape_str(), t.source_type,
                 t.quant_type, fmt_e(t.rel_rmse), t.max_abs_err, t.cosine, fmt_db(t.snr_db));
    }
    fmt::print("\n");
    fmt::print("| layer | tensors | numel | mean rel RMSE | min cosine | worst tensor (rel RMSE) |\n");
    fmt::print("|---|---:|---:|---:|---:|---|\n");
    for (const auto& s : r.layers) print_summary_row(fmt::format("blk.{}", s.layer), s);
    print_summary_row("(non-layer)", r.non_layer);
    print_summary_row("**model**", r.model);
  });
}

}  // namespace lowbit::cli
