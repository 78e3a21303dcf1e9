// lowbit bench MODEL [-t 1,2] [-p 512] [-n 128] [-r 5] [--no-bandwidth]
//
// Prompt-processing (ppN) and generation (tgN) tokens/s in llama-bench's
// markdown table (method: eval/speed_bench.h). Each tg row also shows the
// weight bytes it implies reading per second and that rate as a share of the
// measured memory read bandwidth (core/memory_bandwidth.h) for its thread count.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "commands.h"
#include "common.h"
#include "core/cpu_features.h"
#include "core/memory_bandwidth.h"
#include "eval/speed_bench.h"
#include "kernels/dispatch.h"
#include "model/packed_weights.h"

namespace lowbit::cli {
namespace {

std::string human_bytes(uint64_t b) {  // llama-bench's size column
  return b < (uint64_t(1) << 30) ? fmt::format("{:.2f} MiB", double(b) / 1024.0 / 1024.0)
                                 : fmt::format("{:.2f} GiB", double(b) / 1024.0 / 1024.0 / 1024.0);
}

std::string human_params(int64_t n) {
  return n < 1000000000 ? fmt::format("{:.2f} M", double(n) / 1e6) : fmt::format("{:.2f} B", double(n) / 1e9);
}

// One markdown row; the first column left-aligned, the rest right-aligned.
void print_row(const std::vector<std::string>& cells, const std::vector<size_t>& width) {
  std::string line = "|";
  for (size_t i = 0; i < cells.size(); ++i)
    line += i == 0 ? fmt::format(" {:<{}} |", cells[i], width[i]) : fmt::format(" {:>{}} |", cells[i], width[i]);
  fmt::print("{}\n", line);
}

}  // namespace

void register_bench(CLI::App& app) {
  auto* cmd = app.add_subcommand("bench", "prompt-processing and generation speed, like llama-bench");
  static ModelArgs a;
  static std::vector<int> threads, prompts{512}, gens{128};
  static int reps = 5;
  static uint64_t seed = 42;
  static bool no_bandwidth = false;
  add_model_args(cmd, a, /*with_threads=*/false);
  cmd->add_option("-t,--threads", threads, "thread counts, comma-separated (default: all cores)")->delimiter(',');
  cmd->add_option("-p,--n-prompt", prompts, "prompt lengths for ppN tests, comma-separated (0: none)")
      ->delimiter(',')->capture_default_str();
  cmd->add_option("-n,--n-gen", gens, "generated tokens for tgN tests, comma-separated (0: none)")
      ->delimiter(',')->capture_default_str();
  cmd->add_option("-r,--repetitions", reps, "timed runs per test")->capture_default_str();
  cmd->add_option("--seed", seed, "seed of the random token ids")->capture_default_str();
  cmd->add_flag("--no-bandwidth", no_bandwidth, "skip measuring memory read bandwidth");
  cmd->callback([] {
    std::vector<int> thread_counts;
    for (int t : threads.empty() ? std::vector<int>{0} : threads) thread_counts.push_back(resolve_threads(t));

    auto m = open_model(a);
    const uint64_t bytes = weight_bytes(*m), per_token = weight_bytes_per_token(*m);
    const std::string backend = fmt::format("CPU {}", isa_name(active_isa()));
    fmt::print("model    {} ({}, {} layers, hidden {}, ffn {}, heads {}/{}, vocab {})\n", m->path, m->format,
               m->config.n_layers, m->config.dim, m->config.hidden_dim, m->config.n_heads, m->config.n_kv_heads,
               m->config.n_vocab);
    fmt::print("cpu      {} ({})\n", cpu_model_name(), cpu_features_string());
    fmt::print("isa      {} (LOWBIT_ISA forces ref|avx2|avx512)\n", isa_name(active_isa()));
    fmt::print("weights  {} bytes read per generated token ({:.3f} GB)\n", per_token, double(per_token) / 1e9);
    uint64_t packed = 0;
    for (const auto& p : m->packed) packed += p->bytes.size();
    fmt::print("packed   {:.1f} MiB of q4_0 / q8_0 repacked 8 rows interleaved at load (LOWBIT_PACK=0 turns it off)\n",
               double(packed) / (1 << 20));
    std::map<int, double> bandwidth;  // threads -> GB/s
    if (!no_bandwidth)
      for (int t : thread_counts) {
        if (bandwidth.count(t)) continue;
        MemoryBandwidthOptions bo;
        bo.threads = t;
        bandwidth[t] = measure_memory_read_gbs(bo);
        fmt::print("memory   {:.1f} GB/s read bandwidth, {} threads (1 GiB f32 sum, best of {})\n", bandwidth[t], t,
                   bo.reps);
      }
    fmt::print("method   warm-up run, then {} timed runs per test from an empty KV cache; t/s = mean ± stddev\n\n",
               reps);

    const std::vector<std::string> head = {"model", "size", "params", "backend", "threads", "test", "t/s",
                                           "weights GB/s", "of mem BW"};
    const std::string name = std::filesystem::path(m->path).filename().string();
    std::vector<size_t> width = {std::max<size_t>(name.size(), 5), 10, 8, std::max<size_t>(backend.size(), 7),
                                 7, 6, 20, 12, 9};
    print_row(head, width);
    std::string rule = "|";
    for (size_t i = 0; i < width.size(); ++i)
      rule += " " + std::string(width[i] - (i == 0 ? 0 : 1), '-') + (i == 0 ? " |" : ": |");
    fmt::print("{}\n", rule);

    for (int t : thread_counts) {
      std::vector<SpeedTest> tests;
      for (int p : prompts)
        if (p > 0) tests.push_back({SpeedTest::Kind::Prompt, p});
      for (int n : gens)
        if (n > 0) tests.push_back({SpeedTest::Kind::Generation, n});
      for (const SpeedTest& test : tests) {
        SpeedBenchOptions o;
        o.threads = t;
        o.reps = reps;
        o.seed = seed;
        SpeedResult r = run_speed_test(*m, test, o);
        std::string gbs = "", share = "";
        if (test.kind == SpeedTest::Kind::Generation) {
          const double g = double(per_token) * r.mean_tps() / 1e9;
          gbs = fmt::format("{:.2f}", g);
          if (bandwidth.count(t)) share = fmt::format("{:.0f}%", 100.0 * g / bandwidth[t]);
        }
        print_row({name, human_bytes(bytes), human_params(m->n_params()), backend, std::to_string(t), test.name(),
                   fmt::format("{:.2f} ± {:.2f}", r.mean_tps(), r.stddev_tps()), gbs, share},
                  width);
        std::fflush(stdout);
      }
    }
  });
}

}  // namespace lowbit::cli
