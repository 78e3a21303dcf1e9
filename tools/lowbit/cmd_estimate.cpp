#include "commands.h"

namespace lowbit::cli {
void register_estimate(CLI::App& app) { app.add_subcommand("estimate", "(not yet)"); }
}  // namespace lowbit::cli
