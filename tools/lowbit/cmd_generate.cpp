#include "commands.h"

namespace lowbit::cli {
void register_generate(CLI::App& app) { app.add_subcommand("generate", "(not yet)"); }
}  // namespace lowbit::cli
