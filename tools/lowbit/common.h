// Small helpers shared by the subcommands (no algorithms here).
#pragma once
#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "io/model_loader.h"

namespace lowbit::cli {

struct ModelArgs {
  std::string path;
  std::string tokenizer;
  int threads = 0;
  bool pack_for_cpu = true;  // commands that only read weights (inspect, quant-stats) turn it off
};

// Adds MODEL (positional), --tokenizer and -t/--threads to a subcommand.
void add_model_args(CLI::App* cmd, ModelArgs& a, bool with_threads = true);
std::unique_ptr<Model> open_model(const ModelArgs& a);
int resolve_threads(int threads);  // <= 0: all cores

}  // namespace lowbit::cli
