// k-means codebook quantization (methods/kmeans.h).
//
//   BM_KmeansFit/<n>/<threads>: kmeans_quantize of W [n, n] ~ N(0, 0.02),
//     4 bits, one codebook per row, 30 Lloyd iterations at most (two starts per
//     row). One iteration (seconds); counters: rows/s.
//   BM_KmeansMatmul/<isa>/<n_tok>/<threads>: KmeansLinear::matmul_isa on a
//     4096 x 4096 4-bit per-row layer (random codes, sorted random codebooks:
//     speed does not depend on the values); isa 0 = scalar LUT kernel, 1 = AVX2
//     pshufb kernel. bytes_per_second counts the layer's stored bytes
//     (codes + codebooks) per product; "bw%" relates that to the machine's
//     measured memory read bandwidth (bench/memory_bandwidth.h).
//
// Run: build/bench_kmeans [--benchmark_filter=Matmul]
#include <benchmark/benchmark.h>

#include <algorithm>
#include <random>
#include <vector>

#include "core/half.h"
#include "kernels/dispatch.h"
#include "memory_bandwidth.h"
#include "methods/kmeans.h"

using namespace lowbit;

namespace {

void BM_KmeansFit(benchmark::State& state) {
  const int64_t n = state.range(0);
  const int threads = int(state.range(1));
  std::mt19937 rng(1);
  std::normal_distribution<float> g(0.f, 0.02f);
  std::vector<float> W(size_t(n * n));
  for (auto& w : W) w = g(rng);
  for (auto _ : state) {
    auto q = kmeans_quantize("bench", W.data(), n, n, 4, -1, nullptr, 30, threads);
    benchmark::DoNotOptimize(q.get());
  }
  state.counters["rows/s"] = benchmark::Counter(double(n) * double(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_KmeansFit)
    ->Args({1024, 1})
    ->Args({4096, 1})
    ->Args({4096, 2})
    ->Iterations(1)
    ->Unit(benchmark::kSecond)
    ->UseRealTime();

const KmeansLinear& layer4096() {
  static const KmeansLinear layer = [] {
    const int64_t n = 4096;
    std::mt19937 rng(2);
    std::vector<uint8_t> codes(size_t(n * n / 2));
    for (auto& c : codes) c = uint8_t(rng());
    std::vector<uint16_t> cb(size_t(n * 16));
    std::normal_distribution<float> g(0.f, 0.02f);
    for (int64_t r = 0; r < n; ++r) {
      float v[16];
      for (float& x : v) x = g(rng);
      std::sort(v, v + 16);
      for (int j = 0; j < 16; ++j) cb[size_t(r * 16 + j)] = f32_to_f16(v[j]);
    }
    return KmeansLinear(n, n, 4, -1, std::move(codes), std::move(cb));
  }();
  return layer;
}

void BM_KmeansMatmul(benchmark::State& state) {
  const IsaLevel isa = state.range(0) ? IsaLevel::Avx2 : IsaLevel::Ref;
  if (isa == IsaLevel::Avx2 && best_isa_supported() < IsaLevel::Avx2) {
    state.SkipWithError("no AVX2");
    return;
  }
  const int n_tok = int(state.range(1)), threads = int(state.range(2));
  const KmeansLinear& q = layer4096();
  std::mt19937 rng(3);
  std::normal_distribution<float> g(0.f, 1.f);
  std::vector<float> X(size_t(n_tok * q.n_in())), Y(size_t(n_tok * q.n_out()));
  for (auto& x : X) x = g(rng);
  for (auto _ : state) {
    q.matmul_isa(X.data(), n_tok, Y.data(), threads, isa);
    benchmark::DoNotOptimize(Y.data());
  }
  const double bytes = double(q.nbytes()) * double(state.iterations());
  state.SetBytesProcessed(int64_t(bytes));
  state.counters["bw%"] =
      benchmark::Counter(100.0 * bytes / (bench::memory_read_gbs() * 1e9), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_KmeansMatmul)
    ->Args({0, 1, 1})
    ->Args({1, 1, 1})
    ->Args({1, 1, 2})
    ->Args({0, 4, 1})
    ->Args({1, 4, 1})
    ->Args({1, 16, 1})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
