#include "commands.h"

namespace lowbit::cli {
void register_inspect(CLI::App& app) { app.add_subcommand("inspect", "(not yet)"); }
}  // namespace lowbit::cli
