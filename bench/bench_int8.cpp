// Speed of the integer paths (kernels/int8_gemm.h through Int8Linear::matmul):
// W8A8 and W4A8 (g128) as GEMV (n_tok 1, token generation) and GEMM (n_tok 128,
// prompt processing), against the f32 path (lowbit::matmul on an f32
// TensorView, model/matmul.h) on the same shape.
//
// Per call the activations are quantized per token (included in the time).
// Counters: GOPS = 2 * n_tok * n_out * n_in / s; GB/s = weight bytes read / s
// (codes + scales; f32: 4 bytes per weight); vs_f32 = f32 time / this time
// (the f32 product timed once per setup, best of 3, outside the loop).
// Shapes (n_out x n_in): 4096x4096 (attention), 14336x4096 (FFN up/gate) and
// 4096x14336 (FFN down), so both orientations appear.
// ISA: the dispatched one (printed as the label); force one with LOWBIT_ISA=ref|avx2|avx512.
//
// Run: build/bench_int8 [--benchmark_filter=W8A8]
#include <benchmark/benchmark.h>

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <random>
#include <vector>

#include "kernels/int8_gemm.h"
#include "lowbit/tensor.h"
#include "methods/w8a8.h"
#include "model/matmul.h"

using namespace lowbit;

namespace {

struct Setup {
  std::vector<float> W;  // [n_out, n_in] f32, N(0, 0.02)
  std::vector<float> X;  // [128, n_in]
  std::shared_ptr<QLinear> w8, w4;
  double f32_seconds[2] = {0, 0};  // n_tok 1, 128
};

const Setup& setup(int64_t n_out, int64_t n_in) {
  static std::map<std::pair<int64_t, int64_t>, std::unique_ptr<Setup>> cache;
  auto& s = cache[{n_out, n_in}];
  if (s) return *s;
  s = std::make_unique<Setup>();
  std::mt19937 rng(7);
  std::normal_distribution<float> g(0.f, 0.02f), gx(0.f, 1.f);
  s->W.resize(size_t(n_out * n_in));
  for (auto& v : s->W) v = g(rng);
  s->X.resize(size_t(128 * n_in));
  for (auto& v : s->X) v = gx(rng);
  QuantConfig c8;
  c8.method = "w8a8";
  c8.bits = 8;
  c8.group_size = -1;
  QuantConfig c4 = c8;
  c4.method = "w4a8";
  c4.bits = 4;
  c4.group_size = 128;
  s->w8 = make_w8a8_quantizer()->quantize_linear("bench", s->W.data(), n_out, n_in, c8, nullptr);
  s->w4 = make_w4a8_quantizer()->quantize_linear("bench", s->W.data(), n_out, n_in, c4, nullptr);
  TensorView v{"bench", DType::F32, {n_out, n_in}, s->W.data(), s->W.size() * sizeof(float)};
  std::vector<float> Y(size_t(128 * n_out));
  const int nt = omp_get_max_threads();
  for (int i = 0; i < 2; ++i) {
    const int n_tok = i == 0 ? 1 : 128;
    double best = 1e30;
    for (int rep = 0; rep < 3; ++rep) {
      const auto t0 = std::chrono::steady_clock::now();
      matmul(v, s->X.data(), n_tok, Y.data(), nt);
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    s->f32_seconds[i] = best;
  }
  return *s;
}

// args: n_out, n_in, n_tok, kind (0 = f32, 8 = w8a8, 4 = w4a8)
void BM_Int8(benchmark::State& state) {
  const int64_t n_out = state.range(0), n_in = state.range(1);
  const int n_tok = int(state.range(2));
  const int kind = int(state.range(3));
  const Setup& s = setup(n_out, n_in);
  std::vector<float> Y(size_t(n_tok) * size_t(n_out));
  const int nt = omp_get_max_threads();
  TensorView v{"bench", DType::F32, {n_out, n_in}, s.W.data(), s.W.size() * sizeof(float)};
  const QLinear* q = kind == 8 ? s.w8.get() : kind == 4 ? s.w4.get() : nullptr;
  double seconds = 0.0;  // wall time of the timed calls, for the plain-valued counters below
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    if (q != nullptr)
      q->matmul(s.X.data(), n_tok, Y.data(), nt);
    else
      matmul(v, s.X.data(), n_tok, Y.data(), nt);
    benchmark::DoNotOptimize(Y.data());
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  const double per_call = seconds / double(std::max<int64_t>(1, int64_t(state.iterations())));
  const double bytes = q != nullptr ? double(q->nbytes()) : double(n_out * n_in) * 4.0;
  state.counters["GOPS"] = 2.0 * n_tok * double(n_out) * double(n_in) * 1e-9 / per_call;
  state.counters["GB/s"] = bytes * 1e-9 / per_call;
  state.counters["vs_f32"] = s.f32_seconds[n_tok == 1 ? 0 : 1] / per_call;  // > 1: faster than f32
  state.SetLabel(std::string(kind == 0 ? "f32" : kind == 8 ? "w8a8 " : "w4a8g128 ") +
                 (kind == 0 ? "" : int8_isa_name(active_int8_isa())));
}

void shapes(benchmark::internal::Benchmark* b) {
  for (auto [n_out, n_in] : {std::pair<int64_t, int64_t>{4096, 4096}, {14336, 4096}, {4096, 14336}})
    for (int n_tok : {1, 128})
      for (int kind : {0, 8, 4}) b->Args({n_out, n_in, n_tok, kind});
}

BENCHMARK(BM_Int8)->Apply(shapes)->ArgNames({"n_out", "n_in", "n_tok", "kind"})->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
