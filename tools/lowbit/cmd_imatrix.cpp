// lowbit imatrix (work in progress)
#include "commands.h"

namespace lowbit::cli {

void register_imatrix(CLI::App& app) { app.add_subcommand("imatrix", "importance matrix: mean squared activation per input column of every linear"); }

}  // namespace lowbit::cli
