// lowbit ppl MODEL -f TEXT [-c CTX] [--chunks N] [--protocol llama.cpp|gptq]
#include <optional>

#include <fmt/format.h>

#include "commands.h"
#include "common.h"
#include "core/log.h"
#include "core/read_file.h"
#include "core/sha256.h"
#include "eval/perplexity.h"

namespace lowbit::cli {

void register_ppl(CLI::App& app) {
  auto* cmd = app.add_subcommand("ppl", "perplexity of a model on a text file");
  static ModelArgs a;
  static std::string text_path, protocol = "llama.cpp";
  static int ctx = 512, chunks = -1;
  add_model_args(cmd, a);
  cmd->add_option("-f,--file", text_path, "text file to score")->required();
  cmd->add_option("-c,--ctx", ctx, "window length in tokens")->capture_default_str();
  cmd->add_option("--chunks", chunks, "score at most N windows (default: all)");
  cmd->add_option("--protocol", protocol, "llama.cpp (second half of each window scored) or gptq (all tokens)")
      ->capture_default_str();
  cmd->callback([] {
    PplOptions o;
    o.n_ctx = ctx;
    o.max_chunks = chunks;
    o.protocol = parse_ppl_protocol(protocol);
    o.n_threads = resolve_threads(a.threads);
    auto m = open_model(a);
    std::string text = read_text_file(text_path);
    fmt::print("model     {} ({})\n", m->path, m->format);
    fmt::print("text      {} sha256 {}\n", text_path, sha256_hex(text));
    std::optional<Progress> bar;
    PplResult r = perplexity(*m, text, o, [&](int i, int n, double running) {
      if (!bar) bar.emplace("ppl chunks", n);
      bar->update(i, fmt::format("running PPL {:.4f}", running));
    });
    if (bar) bar->finish();
    fmt::print("tokens    {} (protocol {}, ctx {}, chunks {}, scored {}, threads {})\n", r.n_text_tokens,
               ppl_protocol_name(o.protocol), o.n_ctx, r.n_chunks, r.n_scored, o.n_threads);
    fmt::print("time      {:.2f} s ({:.1f} tokens/s)\n", r.seconds, double(r.n_chunks) * o.n_ctx / r.seconds);
    fmt::print("PPL = {:.4f} +/- {:.5f}\n", r.ppl, r.ppl_stderr);
  });
}

}  // namespace lowbit::cli
