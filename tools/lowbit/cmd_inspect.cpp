// lowbit inspect MODEL: architecture, hyperparameters, parameter count, module tree.
#include <cstdio>

#include <fmt/format.h>

#include "commands.h"
#include "common.h"
#include "eval/memory_estimate.h"
#include "model/module_tree.h"

namespace lowbit::cli {

void register_inspect(CLI::App& app) {
  auto* cmd = app.add_subcommand("inspect", "describe a model: architecture, hyperparameters, module tree");
  static ModelArgs a;
  add_model_args(cmd, a, /*with_threads=*/false);
  cmd->callback([] {
    a.pack_for_cpu = false;  // nothing runs
    auto m = open_model(a);
    const ModelConfig& c = m->config;
    uint64_t bytes = 0;
    for (const auto& [n, t] : m->weights) bytes += t.nbytes;
    fmt::print("model         {}\n", m->path);
    fmt::print("format        {}\n", m->format);
    fmt::print("architecture  {} ({})\n", c.arch == Arch::Llama ? "llama" : "gpt2", c.arch_name);
    fmt::print("parameters    {} ({:.3f} M)\n", m->n_params(), double(m->n_params()) / 1e6);
    fmt::print("weights       {} ({:.2f} bits per weight)\n", format_bytes(double(bytes)),
               8.0 * double(bytes) / double(m->n_params()));
    fmt::print("hidden        {}\nffn           {}\nlayers        {}\nheads         {} (kv {}, head dim {})\n", c.dim,
               c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim);
    fmt::print("vocab         {}\ncontext       {}\nnorm eps      {:g}\n", c.n_vocab, c.max_seq, c.norm_eps);
    if (c.arch == Arch::Llama) {
      fmt::print("rope          theta {:g}, {}{}\n", c.rope_theta,
                 c.rope_style == RopeStyle::NeoX ? "neox (rotate-half)" : "interleaved",
                 c.rope_scaling.type.empty() ? "" : ", scaling " + c.rope_scaling.type);
    }
    fmt::print("tied output   {}\n", c.tied_embeddings ? "yes" : "no");
    fmt::print("tokenizer     {}\n", m->tokenizer ? m->tokenizer->kind() + fmt::format(" ({} tokens, bos {}, eos {})",
                                                      m->tokenizer->n_vocab(), m->tokenizer->bos_id(),
                                                      m->tokenizer->eos_id())
                                                : std::string("none (pass --tokenizer)"));
    fmt::print("\n{}", module_tree(*m));
  });
}

}  // namespace lowbit::cli
