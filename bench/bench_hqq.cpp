// HQQ (methods/hqq.h): time to quantize one [4096, 4096] linear at 4/3/2
// bits, group 64, axis 1, hqq's default solver (lp 0.7, beta 10, kappa 1.01,
// 20 iterations with per-group early stop), threads 1 and 2; and the
// quantized matmul at n_tok = 1 (decoding) as weight bytes read per second.
//
// W: N(0, 0.02) with ~1% of weights x8 (heavy tails, as real layers have).
// Matmul: X ~ N(0, 1); GB/s = HqqLinear::nbytes() / time.
// Also: 3 bits, 2 threads with extra "optimize_scale".
//
// Run: build/bench_hqq [--benchmark_filter=Matmul]
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "methods/hqq.h"

using namespace lowbit;

namespace {

constexpr int64_t kN = 4096;

const std::vector<float>& weights() {
  static const std::vector<float> W = [] {
    std::mt19937 rng(11);
    std::normal_distribution<float> g(0.f, 0.02f);
    std::uniform_real_distribution<float> u(0.f, 1.f);
    std::vector<float> w(size_t(kN * kN));
    for (auto& x : w) x = g(rng) * (u(rng) < 0.01f ? 8.0f : 1.0f);
    return w;
  }();
  return W;
}

HqqOptions options(int nbits) {
  HqqOptions o;
  o.round_zero = nbits == 4;  // hqq's BaseQuantizeConfig default
  return o;
}

void BM_HqqQuantize(benchmark::State& state) {
  const int nbits = int(state.range(0)), threads = int(state.range(1));
  const auto& W = weights();
  for (auto _ : state) {
    auto q = hqq_quantize("bench", W.data(), kN, kN, nbits, 64, 1, options(nbits), threads);
    benchmark::DoNotOptimize(q.get());
  }
  state.SetLabel("4096x4096 g64");
}
BENCHMARK(BM_HqqQuantize)
    ->ArgNames({"bits", "threads"})
    ->ArgsProduct({{4, 3, 2}, {1, 2}})
    ->Unit(benchmark::kSecond)
    ->Iterations(1)
    ->UseRealTime();

// The same with extra "optimize_scale" (129-point scale grid search per group first).
void BM_HqqQuantizeOptimizeScale(benchmark::State& state) {
  const int nbits = int(state.range(0)), threads = int(state.range(1));
  HqqOptions o = options(nbits);
  o.optimize_scale = true;
  for (auto _ : state) {
    auto q = hqq_quantize("bench", weights().data(), kN, kN, nbits, 64, 1, o, threads);
    benchmark::DoNotOptimize(q.get());
  }
  state.SetLabel("4096x4096 g64 optimize_scale");
}
BENCHMARK(BM_HqqQuantizeOptimizeScale)
    ->ArgNames({"bits", "threads"})
    ->Args({3, 2})
    ->Unit(benchmark::kSecond)
    ->Iterations(1)
    ->UseRealTime();

void BM_HqqMatmul(benchmark::State& state) {
  const int nbits = int(state.range(0)), threads = int(state.range(1));
  static std::shared_ptr<HqqLinear> q[9];
  if (!q[nbits]) q[nbits] = hqq_quantize("bench", weights().data(), kN, kN, nbits, 64, 1, options(nbits), 2);
  std::mt19937 rng(3);
  std::normal_distribution<float> g(0.f, 1.f);
  std::vector<float> X(static_cast<size_t>(kN)), Y(static_cast<size_t>(kN));
  for (auto& x : X) x = g(rng);
  for (auto _ : state) {
    q[nbits]->matmul(X.data(), 1, Y.data(), threads);
    benchmark::DoNotOptimize(Y.data());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(q[nbits]->nbytes()));
  state.SetLabel("n_tok=1 4096x4096 g64");
}
BENCHMARK(BM_HqqMatmul)
    ->ArgNames({"bits", "threads"})
    ->ArgsProduct({{4, 3, 2}, {1, 2}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
