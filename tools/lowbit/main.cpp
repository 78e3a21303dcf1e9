// lowbit — quantize, measure and run large language models on a CPU.
#include <cstdio>
#include <exception>

#include "commands.h"
#include "lowbit/error.h"

int main(int argc, char** argv) {
  CLI::App app{"lowbit: quantize, measure and run large language models on a CPU"};
  app.set_version_flag("--version", std::string("lowbit ") + LOWBIT_VERSION);
  app.require_subcommand(1);
  lowbit::cli::register_inspect(app);
  lowbit::cli::register_generate(app);
  lowbit::cli::register_ppl(app);
  lowbit::cli::register_kld(app);
  lowbit::cli::register_compare(app);
  lowbit::cli::register_quant_stats(app);
  lowbit::cli::register_estimate(app);
  lowbit::cli::register_quantize(app);
  lowbit::cli::register_imatrix(app);
  lowbit::cli::register_bench(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const lowbit::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
