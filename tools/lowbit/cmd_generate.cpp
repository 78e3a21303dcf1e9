// lowbit generate MODEL -p PROMPT -n N [--temp T] [--top-k K] [--top-p P] [--seed S] [-t THREADS]
// Streams tokens to stdout as they come; timings go to stderr.
#include <cstdio>

#include <fmt/format.h>

#include "commands.h"
#include "common.h"
#include "lowbit/error.h"
#include "model/forward.h"
#include "runtime/generate.h"
#include "runtime/sampler.h"

namespace lowbit::cli {

void register_generate(CLI::App& app) {
  auto* cmd = app.add_subcommand("generate", "generate text (greedy with --temp 0)");
  static ModelArgs a;
  static std::string prompt;
  static int n_new = 128, ctx = 0;
  static SamplerParams sp;
  add_model_args(cmd, a);
  cmd->add_option("-p,--prompt", prompt, "prompt text (default: start from BOS)");
  cmd->add_option("-n,--n-predict", n_new, "tokens to generate")->capture_default_str();
  cmd->add_option("--temp", sp.temperature, "temperature; 0 = greedy")->capture_default_str();
  cmd->add_option("--top-k", sp.top_k, "keep the K most likely tokens (0 = all)")->capture_default_str();
  cmd->add_option("--top-p", sp.top_p, "nucleus sampling threshold (1 = off)")->capture_default_str();
  cmd->add_option("--seed", sp.seed, "random seed")->capture_default_str();
  cmd->add_option("-c,--ctx", ctx, "context length (default: the model's, at most prompt + n)");
  cmd->callback([] {
    if (n_new < 0) fail("-n", "must be >= 0");
    auto m = open_model(a);
    const Tokenizer& tok = m->tok();
    std::vector<int32_t> ids = tok.encode(prompt, /*add_bos=*/true);
    if (ids.empty()) ids.push_back(m->config.bos_id);
    int n_ctx = ctx > 0 ? ctx : std::min(m->config.max_seq, int(ids.size()) + n_new);
    if (int(ids.size()) >= n_ctx)
      fail("-p", fmt::format("the prompt has {} tokens, the context only {}", ids.size(), n_ctx), "use a larger -c");
    Runner runner(*m, n_ctx, resolve_threads(a.threads));
    Sampler sampler(sp);
    // Echo the prompt as the tokenizer will continue it.
    for (size_t i = 1; i < ids.size(); ++i) fmt::print("{}", tok.decode_token(ids[i], ids[i - 1]));
    std::fflush(stdout);
    GenerateResult r = generate(runner, tok, ids, n_new, sampler, [](int32_t, const std::string& piece) {
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
      return true;
    });
    fmt::print("\n");
    std::fflush(stdout);
    std::fprintf(stderr, "prompt %d tokens at %.1f tokens/s, generated %zu tokens at %.1f tokens/s (%s)\n", r.n_prompt,
                 r.prompt_tokens_per_s(), r.tokens.size(), r.gen_tokens_per_s(),
                 r.stopped_at_eos ? "end of text" : r.hit_context_end ? "context full" : "length limit");
  });
}

}  // namespace lowbit::cli
