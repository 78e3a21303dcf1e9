// lowbit kld BASE QUANT -f TEXT [-c CTX] [--chunks N] [--save-base FILE] [--top-k K] [-t THREADS]
// lowbit kld BASE -f TEXT --save-base FILE          (base side only, for later comparisons)
// lowbit kld --base-logits FILE QUANT -f TEXT       (compare against a saved base)
#include <filesystem>
#include <optional>
#include <vector>

#include <fmt/format.h>

#include "commands.h"
#include "common.h"
#include "core/log.h"
#include "core/read_file.h"
#include "core/sha256.h"
#include "eval/kld.h"
#include "lowbit/error.h"

namespace lowbit::cli {

void register_kld(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "kld", "KL divergence, top-1 agreement and PPL ratio of a quantized model against its base model");
  static std::vector<std::string> models;
  static std::string tokenizer, text_path, protocol = "llama.cpp", save_base, base_logits;
  static int ctx = 512, chunks = -1, top_k = 32, threads = 0;
  cmd->add_option("models", models, "BASE QUANT (or QUANT with --base-logits, or BASE with --save-base)")
      ->required()
      ->expected(1, 2);
  cmd->add_option("--tokenizer", tokenizer, "tokenizer file when the models do not carry one");
  cmd->add_option("-t,--threads", threads, "threads (default: all cores)");
  cmd->add_option("-f,--file", text_path, "text file to score")->required();
  auto* ctx_opt = cmd->add_option("-c,--ctx", ctx, "window length in tokens (with --base-logits: the saved one)")
                      ->capture_default_str();
  cmd->add_option("--chunks", chunks, "score at most N windows (default: all)");
  auto* protocol_opt =
      cmd->add_option("--protocol", protocol,
                      "llama.cpp (second half of each window scored) or gptq (all tokens); with --base-logits: the saved one")
          ->capture_default_str();
  cmd->add_option("--save-base", save_base, "write the base model's top-k logits to FILE for later comparisons");
  cmd->add_option("--base-logits", base_logits, "compare against a base saved with --save-base instead of BASE");
  cmd->add_option("--top-k", top_k, "logits per position kept by --save-base")->capture_default_str();
  cmd->callback([ctx_opt, protocol_opt] {
    if (!base_logits.empty() && !save_base.empty())
      fail("--save-base", "cannot be combined with --base-logits", "save the base from the base model");
    if (!base_logits.empty() && models.size() != 1)
      fail("--base-logits", "takes exactly one model (QUANT)", "lowbit kld --base-logits FILE QUANT -f TEXT");
    if (base_logits.empty() && models.size() == 1 && save_base.empty())
      fail("kld", "needs BASE and QUANT (or --base-logits FILE QUANT, or BASE --save-base FILE)");
    if (top_k < 1) fail("--top-k", fmt::format("k = {} must be at least 1", top_k));
    KldOptions o;
    o.n_ctx = ctx;
    o.max_chunks = chunks;
    o.protocol = parse_ppl_protocol(protocol);
    o.n_threads = resolve_threads(threads);
    o.top_k = top_k;
    const std::string text = read_text_file(text_path);
    const std::string sha = sha256_hex(text);
    auto open = [](const std::string& path) {
      ModelArgs a;
      a.path = path;
      a.tokenizer = tokenizer;
      return open_model(a);
    };

    std::optional<KldBase> saved;
    std::unique_ptr<Model> base, quant;
    if (!base_logits.empty()) {
      saved = read_kld_base(base_logits);
      if (ctx_opt->count() == 0) o.n_ctx = 0;  // take the saved context and protocol
      if (protocol_opt->count() == 0) o.protocol = saved->protocol;
      quant = open(models[0]);
    } else {
      base = open(models[0]);
      if (models.size() == 2) quant = open(models[1]);
    }

    // The setup is printed with the results, so that a refused input gives a one-line error.
    std::string setup;
    if (saved)
      setup += fmt::format("base      {} (saved from {}, top-{} logits)\n", base_logits, saved->base_model, saved->k);
    else
      setup += fmt::format("base      {} ({})\n", base->path, base->format);
    if (quant) setup += fmt::format("quant     {} ({})\n", quant->path, quant->format);
    setup += fmt::format("text      {} sha256 {}\n", text_path, sha);

    std::optional<Progress> bar;
    auto progress = [&](int i, int n) {
      if (!bar) bar.emplace("kld chunks", n);
      bar->update(i);
    };
    KldResult r;
    KldBase to_save;
    if (saved) {
      r = kld_from_saved(*saved, *quant, text, o, base_logits, progress);
    } else if (quant) {
      r = kld(*base, *quant, text, o, save_base.empty() ? nullptr : &to_save, progress);
    } else {
      to_save = kld_base_logits(*base, text, o, progress);
      r.n_text_tokens = to_save.n_text_tokens;
      r.n_chunks = to_save.n_chunks;
      r.n_scored = to_save.n_positions();
    }
    if (bar) bar->finish();
    const int shown_ctx = saved ? saved->n_ctx : o.n_ctx;
    fmt::print("{}", setup);
    fmt::print("tokens    {} (protocol {}, ctx {}, chunks {}, scored {}, threads {})\n", r.n_text_tokens,
               ppl_protocol_name(o.protocol), shown_ctx, r.n_chunks, r.n_scored, o.n_threads);
    fmt::print("lowbit    {}\n", LOWBIT_VERSION);
    if (!save_base.empty()) {
      write_kld_base(save_base, to_save);
      std::error_code ec;
      const auto bytes = std::filesystem::file_size(save_base, ec);
      fmt::print("saved     {} ({} positions, top-{} logits, {:.2f} MiB)\n", save_base, to_save.n_positions(),
                 to_save.k, double(bytes) / (1024.0 * 1024.0));
    }
    if (!quant) return;
    fmt::print("time      {:.2f} s\n", r.seconds);
    if (r.kld_from_topk)
      fmt::print("note      KLD from the saved top-{} logits + one rest bucket: a lower bound of the full KLD\n",
                 r.top_k);
    fmt::print("\n");
    fmt::print("PPL(base)            = {:.4f} +/- {:.5f}\n", r.ppl_base, r.ppl_base_err);
    fmt::print("PPL(quant)           = {:.4f} +/- {:.5f}\n", r.ppl_quant, r.ppl_quant_err);
    fmt::print("PPL(quant)/PPL(base) = {:.5f} +/- {:.5f}\n", r.ppl_ratio, r.ppl_ratio_err);
    fmt::print("Mean KLD             = {:.6f} +/- {:.6f}\n", r.kld_mean, r.kld_err);
    fmt::print("Median KLD           = {:.6f}\n", r.kld_median);
    fmt::print("99.0% KLD            = {:.6f}\n", r.kld_p99);
    fmt::print("Maximum KLD          = {:.6f}\n", r.kld_max);
    fmt::print("Same top-1           = {:.3f} +/- {:.3f} %\n", 100 * r.top1, 100 * r.top1_err);
    fmt::print("Mean Δp              = {:.3f} +/- {:.3f} %\n", 100 * r.dp_mean, 100 * r.dp_err);
    fmt::print("RMS Δp               = {:.3f} +/- {:.3f} %\n", 100 * r.dp_rms, 100 * r.dp_rms_err);
  });
}

}  // namespace lowbit::cli
