// pp/tg speed tests on the Runner: see speed_bench.h for the method.
#include "eval/speed_bench.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <numeric>
#include <random>

#include <fmt/format.h>

#include "core/log.h"
#include "lowbit/error.h"
#include "model/forward.h"

namespace lowbit {

std::string SpeedTest::name() const { return fmt::format("{}{}", kind == Kind::Prompt ? "pp" : "tg", n_tokens); }

std::vector<double> SpeedResult::tokens_per_s() const {
  std::vector<double> r;
  for (double s : seconds) r.push_back(double(test.n_tokens) / s);
  return r;
}

double SpeedResult::mean_tps() const {
  std::vector<double> r = tokens_per_s();
  return r.empty() ? 0.0 : std::accumulate(r.begin(), r.end(), 0.0) / double(r.size());
}

double SpeedResult::stddev_tps() const {
  std::vector<double> r = tokens_per_s();
  if (r.size() < 2) return 0.0;
  const double mean = mean_tps();
  double ss = 0;
  for (double x : r) ss += (x - mean) * (x - mean);
  return std::sqrt(ss / double(r.size() - 1));
}

namespace {

using Clock = std::chrono::steady_clock;

// BOS first, then seeded random ids in [0, n_vocab).
std::vector<int32_t> bench_tokens(const Model& m, int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) t[size_t(i)] = int32_t(rng() % uint64_t(m.config.n_vocab));
  if (m.config.bos_id >= 0 && m.config.bos_id < m.config.n_vocab) t[0] = m.config.bos_id;
  return t;
}

// One run of the test from an empty cache; returns seconds.
double run_once(Runner& r, const SpeedTest& test, const std::vector<int32_t>& tokens, int n,
                std::vector<float>& logits) {
  const auto t0 = Clock::now();
  if (test.kind == SpeedTest::Kind::Prompt) {
    r.forward(std::span<const int32_t>(tokens.data(), size_t(n)), 0, false, logits);
  } else {
    for (int i = 0; i < n; ++i) r.forward(std::span<const int32_t>(&tokens[size_t(i)], 1), i, false, logits);
  }
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

SpeedResult run_speed_test(const Model& model, const SpeedTest& test, const SpeedBenchOptions& opts) {
  if (test.n_tokens <= 0)
    fail(model.path, fmt::format("speed test {} has no tokens", test.name()), "use -p N / -n N with N > 0");
  if (opts.reps <= 0) fail(model.path, "speed test needs at least one repetition", "use -r N with N > 0");
  SpeedResult res;
  res.test = test;
  res.threads = opts.threads > 0 ? opts.threads : std::max(1, omp_get_num_procs());
  const std::vector<int32_t> tokens = bench_tokens(model, test.n_tokens, opts.seed);
  Runner runner(model, test.n_tokens, res.threads);
  std::vector<float> logits;
  if (opts.warmup) {
    const int n_warm = test.kind == SpeedTest::Kind::Prompt ? test.n_tokens : 1;
    const double s = run_once(runner, test, tokens, n_warm, logits);
    log(LogLevel::Debug, fmt::format("{}: warm-up {:.3f} s", test.name(), s));
  }
  for (int rep = 0; rep < opts.reps; ++rep) {
    res.seconds.push_back(run_once(runner, test, tokens, test.n_tokens, logits));
    log(LogLevel::Debug, fmt::format("{}: run {}/{} {:.3f} s", test.name(), rep + 1, opts.reps, res.seconds.back()));
  }
  return res;
}

uint64_t weight_bytes(const Model& model) {
  uint64_t b = 0;
  for (const auto& [name, t] : model.weights) b += uint64_t(t.nbytes);
  return b;
}

uint64_t weight_bytes_per_token(const Model& model) {
  uint64_t b = 0;
  for (const auto& [name, t] : model.weights) {
    const bool lookup_table = name == "position_embd.weight" ||
                              (name == "token_embd.weight" && !model.config.tied_embeddings);
    if (lookup_table && !t.shape.empty() && t.shape[0] > 0)
      b += uint64_t(t.nbytes) / uint64_t(t.shape[0]);  // one row
    else
      b += uint64_t(t.nbytes);
  }
  return b;
}

std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (!line.starts_with("model name")) continue;
    size_t colon = line.find(':');
    if (colon == std::string::npos) break;
    size_t start = line.find_first_not_of(" \t", colon + 1);
    return start == std::string::npos ? "unknown CPU" : line.substr(start);
  }
  return "unknown CPU";
}

}  // namespace lowbit
