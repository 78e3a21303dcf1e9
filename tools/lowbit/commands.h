// Each subcommand lives in its own file and registers itself on the CLI app.
#pragma once
#include <CLI/CLI.hpp>

namespace lowbit::cli {
void register_inspect(CLI::App& app);
void register_generate(CLI::App& app);
void register_ppl(CLI::App& app);
void register_kld(CLI::App& app);
void register_compare(CLI::App& app);
void register_quant_stats(CLI::App& app);
void register_estimate(CLI::App& app);
void register_quantize(CLI::App& app);
void register_imatrix(CLI::App& app);
void register_bench(CLI::App& app);
}  // namespace lowbit::cli
