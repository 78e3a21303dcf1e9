// lowbit imatrix MODEL -f TEXT -o FILE [-c CTX] [--chunks N] [--process-output] [--no-ppl] [-t THREADS]
// Computes an importance matrix the way llama-imatrix does and writes it in
// llama.cpp's imatrix.dat format (for `lowbit quantize --imatrix` and
// `llama-quantize --imatrix`).
#include <optional>

#include <fmt/format.h>

#include "commands.h"
#include "common.h"
#include "core/log.h"
#include "core/read_file.h"
#include "core/sha256.h"
#include "eval/imatrix.h"

namespace lowbit::cli {

void register_imatrix(CLI::App& app) {
  auto* cmd = app.add_subcommand("imatrix", "importance matrix: mean squared activation per input column of every linear");
  static ModelArgs a;
  static std::string text_path, out_path;
  static ImatrixOptions o;
  static bool no_ppl = false;
  add_model_args(cmd, a);
  cmd->add_option("-f,--file", text_path, "calibration text")->required();
  cmd->add_option("-o,--output", out_path, "imatrix.dat to write (llama.cpp's format)")->required();
  cmd->add_option("-c,--ctx", o.n_ctx, "chunk length in tokens")->capture_default_str();
  cmd->add_option("--chunks", o.max_chunks, "run at most N chunks (default: all)");
  cmd->add_flag("--process-output", o.process_output, "also collect the output head");
  cmd->add_flag("--no-ppl", no_ppl, "do not compute perplexity on the chunks");
  cmd->callback([] {
    o.n_threads = resolve_threads(a.threads);
    o.compute_ppl = !no_ppl;
    o.dataset = text_path;
    auto m = open_model(a);
    const std::string text = read_text_file(text_path);
    fmt::print("model     {} ({})\n", m->path, m->format);
    fmt::print("text      {} sha256 {}\n", text_path, sha256_hex(text));
    std::optional<Progress> bar;
    ImatrixResult r = compute_imatrix(*m, text, o, [&](int i, int n) {
      if (!bar) bar.emplace("imatrix chunks", n);
      bar->update(i);
    });
    if (bar) bar->finish();
    write_imatrix(r.data, out_path);
    fmt::print("tokens    {} in the text; {} chunks of {} = {} tokens run (threads {})\n", r.n_text_tokens,
               r.n_chunks, o.n_ctx, r.n_tokens, o.n_threads);
    fmt::print("time      {:.2f} s ({:.1f} tokens/s)\n", r.seconds, double(r.n_tokens) / r.seconds);
    if (o.compute_ppl) fmt::print("PPL       {:.4f} (second half of each chunk)\n", r.ppl);
    fmt::print("entries   {} (calls per entry: {}{})\n", r.data.entries.size(), r.data.last_call,
               o.process_output ? ", output head included" : "");
    fmt::print("wrote {}\n", out_path);
  });
}

}  // namespace lowbit::cli
