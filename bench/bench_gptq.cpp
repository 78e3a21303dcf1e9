// GPTQ wall time (methods/gptq.h) for 7B-class linear shapes, int4 g128 asym
// (the HF GPTQ layout), no act-order, damping 0.01, lazy batches of 128.
//
// Shapes [n_out, n_in]: [4096, 4096] (attention), [11008, 4096] (gate/up),
// [4096, 11008] (down). Threads 1 and 2. One iteration each (seconds).
// The Hessian H = 2 X^T X is built once per n_in outside the timed loop from
// X [4096 tokens, n_in] of synthetic activations: per-channel scales
// exp(0.7 g), a few outlier channels (x20), every 5th channel correlated with
// its neighbour. (A real run uses e.g. 128 x 2048 calibration tokens; GPTQ's
// cost does not depend on the token count, only H's conditioning does; with
// 4096 tokens H for n_in = 11008 is rank-deficient and lives on its damping.)
// W ~ N(0, 0.02). The time includes everything gptq_quantize does: the
// inverse-Hessian factor, the sweep, and both proxy losses (RTN and GPTQ);
// the split is printed per case (LOWBIT_GPTQ_VERBOSE=0 to silence).
//
// Run: build/bench_gptq [--benchmark_filter=4096x4096]
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "core/log.h"
#include "methods/gptq.h"

using namespace lowbit;

namespace {

const std::vector<double>& hessian(int64_t n_in) {
  static std::map<int64_t, std::vector<double>> cache;
  auto it = cache.find(n_in);
  if (it != cache.end()) return it->second;
  const int64_t n_tok = 4096;
  std::mt19937 rng(7);
  std::normal_distribution<float> g(0.f, 1.f);
  std::vector<float> scale(static_cast<size_t>(n_in));
  for (auto& s : scale) s = std::exp(0.7f * g(rng));
  for (int64_t i = 0; i < n_in; i += 97) scale[size_t(i)] *= 20.0f;
  std::vector<float> X(size_t(n_tok * n_in));
  for (int64_t t = 0; t < n_tok; ++t)
    for (int64_t i = 0; i < n_in; ++i) {
      float v = g(rng) * scale[size_t(i)];
      if (i % 5 == 4) v = 0.3f * v + 0.9f * X[size_t(t * n_in + i - 1)];
      X[size_t(t * n_in + i)] = v;
    }
  std::vector<float> Hf(size_t(n_in * n_in));
  cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, int(n_in), int(n_tok), 2.0f, X.data(), int(n_in), 0.0f,
              Hf.data(), int(n_in));
  std::vector<double> H(size_t(n_in * n_in));
  for (int64_t i = 0; i < n_in; ++i)
    for (int64_t j = i; j < n_in; ++j) H[size_t(i * n_in + j)] = H[size_t(j * n_in + i)] = Hf[size_t(i * n_in + j)];
  return cache.emplace(n_in, std::move(H)).first->second;
}

std::vector<float> weights(int64_t n_out, int64_t n_in) {
  std::mt19937 rng(11);
  std::normal_distribution<float> g(0.f, 0.02f);
  std::vector<float> W(size_t(n_out * n_in));
  for (auto& w : W) w = g(rng);
  return W;
}

void BM_Gptq(benchmark::State& state) {
  const int64_t n_out = state.range(0), n_in = state.range(1);
  const int threads = int(state.range(2));
  const std::vector<double>& H = hessian(n_in);
  const std::vector<float> W = weights(n_out, n_in);
  GptqOptions opts;
  opts.threads = threads;
  const GptqTarget target{IntGroupSpec{4, 128, false}, {}};
  const char* verbose = std::getenv("LOWBIT_GPTQ_VERBOSE");
  if (!verbose || std::string(verbose) != "0") {
    set_log_level(LogLevel::Debug);
    set_log_sink([](LogLevel, const std::string& m) { std::fprintf(stderr, "  %s\n", m.c_str()); });
  }
  GptqResult r;
  for (auto _ : state) {
    r = gptq_quantize(W.data(), n_out, n_in, H.data(), target, opts);
    benchmark::DoNotOptimize(r.dequantized.data());
  }
  set_log_sink(nullptr);
  set_log_level(LogLevel::Info);
  state.counters["loss_ratio"] = r.loss_gptq / r.loss_rtn;
  state.counters["damp"] = r.damp_used;
  state.SetLabel(std::to_string(n_out) + "x" + std::to_string(n_in) + " int4 g128 t" + std::to_string(threads));
}

void setup(benchmark::internal::Benchmark* b) {
  for (auto shape : {std::pair<int64_t, int64_t>{4096, 4096}, {11008, 4096}, {4096, 11008}})
    for (int t : {1, 2}) b->Args({shape.first, shape.second, t});
  b->ArgNames({"n_out", "n_in", "threads"});
  b->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();
}

BENCHMARK(BM_Gptq)->Apply(setup);

}  // namespace

int main(int argc, char** argv) {
  std::printf("bench_gptq: GPTQ int4 g128 asym, damp 0.01, block 128, no act-order; H = 2 X^T X from 4096 synthetic "
              "tokens (built once per n_in, untimed); W ~ N(0, 0.02); time = the whole gptq_quantize call "
              "(factor + sweep + RTN/GPTQ proxy losses)\n");
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
