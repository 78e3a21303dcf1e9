#include "common.h"

#include <CLI/CLI.hpp>
#include <thread>

namespace lowbit::cli {

void add_model_args(CLI::App* cmd, ModelArgs& a, bool with_threads) {
  cmd->add_option("model", a.path, "GGUF file, Hugging Face folder, or llama2.c .bin")->required();
  cmd->add_option("--tokenizer", a.tokenizer,
                  "tokenizer file (tokenizer.model, tokenizer.json, vocab.json, llama2.c tokenizer .bin) "
                  "when the model does not carry one");
  if (with_threads) cmd->add_option("-t,--threads", a.threads, "threads (default: all cores)");
}

std::unique_ptr<Model> open_model(const ModelArgs& a) {
  LoadOptions opts;
  opts.tokenizer_path = a.tokenizer;
  opts.pack_for_cpu = a.pack_for_cpu;
  return load_model(a.path, opts);
}

int resolve_threads(int threads) {
  if (threads > 0) return threads;
  unsigned n = std::thread::hardware_concurrency();
  return n ? int(n) : 1;
}

}  // namespace lowbit::cli
