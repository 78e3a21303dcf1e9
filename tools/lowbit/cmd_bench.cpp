// lowbit bench (work in progress)
#include "commands.h"

namespace lowbit::cli {

void register_bench(CLI::App& app) { app.add_subcommand("bench", "prompt-processing and generation speed, like llama-bench"); }

}  // namespace lowbit::cli
