// fp32 forward speed on a synthetic Llama with 7B-class layer shapes
// (hidden 4096, FFN 11008, 32 heads, vocab 32000, 2 layers), plus the two
// physical limits it is measured against: sgemm GFLOP/s and memory read GB/s.
//
//   pp512: one forward over a 512-token prompt        -> tokens/s (compute bound)
//   tg128: 128 single-token steps after a short prompt -> tokens/s (memory bound);
//          also weight bytes read per token / measured read bandwidth.
//
// Run: build/bench_forward [--benchmark_filter=...]; threads = all cores.
#include <benchmark/benchmark.h>
#include <cblas.h>
#include <omp.h>

#include <cstdio>
#include <memory>
#include <numeric>
#include <random>
#include <thread>
#include <vector>

#include "memory_bandwidth.h"
#include "model/forward.h"
#include "model/synthetic.h"

namespace {

const int kThreads = int(std::thread::hardware_concurrency());

lowbit::Model& model7b() {
  static std::unique_ptr<lowbit::Model> m = lowbit::make_synthetic_model(lowbit::llama7b_shaped_config(2), 1234);
  return *m;
}

double weight_bytes(const lowbit::Model& m) {
  double b = 0;
  for (const auto& [n, t] : m.weights) b += double(t.nbytes);
  return b;
}


// sgemm [M x K] * [K x N]^T: the prompt-processing building block.
void BM_sgemm(benchmark::State& state) {
  const int M = int(state.range(0)), N = int(state.range(1)), K = int(state.range(2));
  std::vector<float> a(size_t(M) * K, 0.5f), b(size_t(N) * K, 0.25f), c(size_t(M) * N);
  openblas_set_num_threads(kThreads);
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, a.data(), K, b.data(), K, 0.0f, c.data(), N);
    benchmark::DoNotOptimize(c.data());
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * M * N * K * double(state.iterations()) / 1e9, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_sgemm)->Args({512, 4096, 4096})->Args({512, 11008, 4096})->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_pp512(benchmark::State& state) {
  lowbit::Model& m = model7b();
  lowbit::Runner runner(m, 512, kThreads);
  std::vector<int32_t> prompt(512);
  std::iota(prompt.begin(), prompt.end(), 1);
  std::vector<float> logits;
  for (auto _ : state) runner.forward(prompt, 0, false, logits);
  state.counters["tokens/s"] = benchmark::Counter(512.0 * double(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_pp512)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(2);

void BM_tg128(benchmark::State& state) {
  lowbit::Model& m = model7b();
  lowbit::Runner runner(m, 256, kThreads);
  std::vector<float> logits;
  for (auto _ : state) {
    std::vector<int32_t> tok = {1};
    runner.forward(tok, 0, false, logits);
    for (int i = 1; i <= 128; ++i) {
      tok[0] = 1 + i;
      runner.forward(tok, i, false, logits);
    }
  }
  double tokens = 128.0 * double(state.iterations());
  state.counters["tokens/s"] = benchmark::Counter(tokens, benchmark::Counter::kIsRate);
  // Every generated token reads every weight once (the embedding only one row).
  const lowbit::TensorView& emb = m.weight("token_embd.weight");
  double per_token = weight_bytes(m) - double(emb.nbytes) + double(emb.nbytes) / double(emb.shape[0]);
  state.counters["weight GB/s"] = benchmark::Counter(tokens * per_token / 1e9, benchmark::Counter::kIsRate);
  state.counters["of_mem_bw"] =
      benchmark::Counter(tokens * per_token / 1e9 / lowbit::bench::memory_read_gbs(), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_tg128)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(2);

}  // namespace

int main(int argc, char** argv) {
  std::printf("setup: synthetic Llama 7B-shaped (hidden 4096, ffn 11008, 32 heads, vocab 32000, 2 layers, f32 weights), "
              "%d threads, OpenBLAS %s\n", kThreads, openblas_get_config());
  std::printf("memory read bandwidth: %.1f GB/s (1 GiB f32 sum, all threads, best of 5)\n", lowbit::bench::memory_read_gbs());
  std::printf("compare: pp512 vs BM_sgemm GFLOP/s (2 * params * tokens FLOPs); tg128 'weight GB/s' and 'of_mem_bw' vs that bandwidth\n");
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
