#include "commands.h"

namespace lowbit::cli {
void register_ppl(CLI::App& app) { app.add_subcommand("ppl", "(not yet)"); }
}  // namespace lowbit::cli
