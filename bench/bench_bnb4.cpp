// Matrix-vector speed of bitsandbytes NF4 layers (methods/bnb4.h): y = W x with
// one token, the memory-bound step of token generation, next to the f32 weight.
//
// Per call: Bnb4Linear::matmul (OpenMP over fixed 64-row tiles, all threads),
// "fast" with the dispatched kernel (AVX2 fused dequant-dot when the CPU has it;
// force one with LOWBIT_ISA=ref|avx2), "ref" with the scalar reference kernel;
// "f32" is lowbit::matmul on the unquantized f32 weight.
// Reported: GB/s of stored weight bytes read (codes + absmax, or absmax codes +
// nested absmax with double quant), that rate as a share of this machine's
// memory read bandwidth (measured first: a 1 GiB f32 buffer summed with all
// threads, best of 5), and vs_f32 = time of the f32 product / time of this one.
//
// Shapes: [4096 out, 4096 in] (attention) and [4096 out, 14336 in] (an 8B-class FFN).
//
// Run: build/bench_bnb4 [--benchmark_filter=nf4-dq]
#include <benchmark/benchmark.h>

#include "memory_bandwidth.h"
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "kernels/dispatch.h"
#include "lowbit/tensor.h"
#include "methods/bnb4.h"
#include "model/matmul.h"

using namespace lowbit;

namespace {

using bench::memory_read_gbs;

struct Shape {
  int64_t n_out, n_in;
};

// W [n_out, n_in] ~ N(0, 0.02): 16 distinct rows repeated (generating 58M
// Gaussians is slow; the bytes read are the same).
const std::vector<float>& weights(Shape s) {
  static std::map<std::pair<int64_t, int64_t>, std::vector<float>> cache;
  auto& w = cache[{s.n_out, s.n_in}];
  if (w.empty()) {
    w.resize(size_t(s.n_out * s.n_in));
    std::mt19937 rng(42);
    std::normal_distribution<float> g(0.f, 0.02f);
    const int64_t distinct = std::min<int64_t>(16, s.n_out);
    for (int64_t i = 0; i < distinct * s.n_in; ++i) w[size_t(i)] = g(rng);
#pragma omp parallel for schedule(static)
    for (int64_t r = distinct; r < s.n_out; ++r)
      std::copy_n(w.data() + (r % distinct) * s.n_in, s.n_in, w.data() + r * s.n_in);
  }
  return w;
}

const Bnb4Linear& layer(Shape s, bool dq) {
  static std::map<std::tuple<int64_t, int64_t, bool>, std::unique_ptr<Bnb4Linear>> cache;
  auto& l = cache[{s.n_out, s.n_in, dq}];
  if (!l) l = std::make_unique<Bnb4Linear>(quantize_bnb4("W", weights(s).data(), s.n_out, s.n_in, Bnb4Type::NF4, 64, dq));
  return *l;
}

std::vector<float> input(int64_t n_in) {
  std::vector<float> x(static_cast<size_t>(n_in));  // [n_in]
  std::mt19937 rng(1);
  std::normal_distribution<float> g(0.f, 1.f);
  for (auto& v : x) v = g(rng);
  return x;
}

TensorView f32_view(Shape s) {
  TensorView v;
  v.name = "W";
  v.dtype = DType::F32;
  v.shape = {s.n_out, s.n_in};
  v.data = weights(s).data();
  v.nbytes = size_t(s.n_out * s.n_in) * 4;
  return v;
}

// Seconds of one f32 matvec on this shape (best of 5), for the vs_f32 ratio.
double f32_seconds(Shape s) {
  static std::map<std::pair<int64_t, int64_t>, double> cache;
  auto it = cache.find({s.n_out, s.n_in});
  if (it != cache.end()) return it->second;
  const TensorView v = f32_view(s);
  const std::vector<float> x = input(s.n_in);
  std::vector<float> y(static_cast<size_t>(s.n_out));
  double best = 1e30;
  for (int rep = 0; rep < 6; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    matmul(v, x.data(), 1, y.data(), omp_get_max_threads());
    const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (rep > 0) best = std::min(best, t);  // the first run warms up
  }
  return cache[{s.n_out, s.n_in}] = best;
}

void counters(benchmark::State& state, size_t bytes, Shape s) {
  const double gb = double(bytes) / 1e9;
  state.counters["GB/s"] = benchmark::Counter(gb, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["of_mem_bw"] = benchmark::Counter(gb / memory_read_gbs(), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["MiB"] = double(bytes) / (1 << 20);
  state.counters["bpw"] = 8.0 * double(bytes) / double(s.n_out * s.n_in);
  // iterations * f32 seconds / elapsed: how many times faster than the f32 product.
  state.counters["vs_f32"] = benchmark::Counter(f32_seconds(s), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_bnb4(benchmark::State& state, Shape s, bool dq, bool fast) {
  const Bnb4Linear& l = layer(s, dq);
  const std::vector<float> x = input(s.n_in);
  std::vector<float> y(static_cast<size_t>(s.n_out));  // [n_out]
  const int threads = omp_get_max_threads();
  const IsaLevel isa = fast ? active_isa() : IsaLevel::Ref;
  for (auto _ : state) {
    l.matmul_isa(x.data(), 1, y.data(), threads, isa);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  counters(state, l.nbytes(), s);
}

void BM_f32(benchmark::State& state, Shape s) {
  const TensorView v = f32_view(s);
  const std::vector<float> x = input(s.n_in);
  std::vector<float> y(static_cast<size_t>(s.n_out));
  const int threads = omp_get_max_threads();
  for (auto _ : state) {
    matmul(v, x.data(), 1, y.data(), threads);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  counters(state, v.nbytes, s);
}

void register_all() {
  const Shape shapes[] = {{4096, 4096}, {4096, 14336}};
  for (const Shape& s : shapes) {
    const std::string dims = std::to_string(s.n_out) + "x" + std::to_string(s.n_in);
    for (bool dq : {false, true})
      for (bool fast : {true, false}) {
        const std::string name = std::string("matvec/") + (dq ? "nf4-dq/" : "nf4/") + dims + (fast ? "/fast" : "/ref");
        benchmark::RegisterBenchmark(name.c_str(), BM_bnb4, s, dq, fast)
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime()
            ->MinTime(0.3);
      }
    benchmark::RegisterBenchmark(("matvec/f32/" + dims).c_str(), BM_f32, s)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime()
        ->MinTime(0.3);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::printf("cpu features : %s\n", cpu_features_string().c_str());
  std::printf("ISA          : %s (best supported %s; LOWBIT_ISA forces ref|avx2)\n", isa_name(active_isa()),
              isa_name(best_isa_supported()));
  std::printf("threads      : %d (OpenMP, over 64-row tiles)\n", omp_get_max_threads());
  std::printf("memory read  : %.1f GB/s (sum of a 1 GiB f32 buffer, all threads, best of 5)\n", memory_read_gbs());
  std::fflush(stdout);
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
