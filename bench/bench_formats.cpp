// Matrix-vector speed per storage format: y = W x with W [n_out, n_in] in the
// format and x f32, the memory-bound step of token generation.
//
// Per call: x is quantized to the format's dot_with format (included in the
// time), then every row of W is dotted with it (OpenMP over rows, all threads).
// "fast" is the runtime's own product, lowbit::matmul (model/matmul.h) with the
// dispatched kernel; "packed" (q4_0, q8_0) the same after the load-time repack
// into 8-row interleaved blocks (model/packed_weights.h), as models run;
// "ref" is a plain row loop over the scalar reference kernel.
// Reported: GB/s of weight bytes read, and that rate as a share of this
// machine's memory read bandwidth, measured here first (sum a 1 GiB buffer of
// floats with all threads, best of 5).
//
// Shapes: [4096 out, 4096 in] (attention), [4096 out, 14336 in] and
// [14336 out, 4096 in] (an 8B-class FFN).
// Each format runs with the dispatched kernel ("fast", the ISA printed in the
// setup; force one with LOWBIT_ISA=ref|avx2|avx512) and with the scalar reference ("ref").
//
// Run: build/bench_formats [--benchmark_filter=q4_K]
#include <benchmark/benchmark.h>

#include "memory_bandwidth.h"
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "formats/format.h"
#include "kernels/dispatch.h"
#include "lowbit/tensor.h"
#include "model/matmul.h"
#include "model/packed_weights.h"

using namespace lowbit;

namespace {

using bench::memory_read_gbs;

// W [n_out, n_in] in format f: 16 distinct rows quantized with the reference
// quantizer, repeated over all rows (the k-quant searches are too slow to run
// on 58M values; the bytes read are the same).
std::vector<uint8_t> make_weights(const FormatTraits& f, int64_t n_out, int64_t n_in) {
  const size_t rb = row_bytes(f.id, n_in);
  std::vector<uint8_t> w(rb * size_t(n_out));
  std::mt19937 rng(42);
  std::normal_distribution<float> g(0.f, 0.02f);
  std::vector<float> row(static_cast<size_t>(n_in));
  const int64_t distinct = 16;
  for (int64_t r = 0; r < distinct && r < n_out; ++r) {
    for (auto& v : row) v = g(rng);
    f.quantize_row_ref(row.data(), w.data() + size_t(r) * rb, n_in, nullptr);
  }
#pragma omp parallel for schedule(static)
  for (int64_t r = distinct; r < n_out; ++r)
    std::copy_n(w.data() + size_t(r % distinct) * rb, rb, w.data() + size_t(r) * rb);
  return w;
}

enum class Mode { Fast, Packed, Ref };
const char* mode_name(Mode m) { return m == Mode::Fast ? "fast" : m == Mode::Packed ? "packed" : "ref"; }

void BM_matvec(benchmark::State& state, FormatId id, Mode mode, int64_t n_out, int64_t n_in) {
  const FormatTraits& f = format_traits(id);
  const FormatTraits& act = format_traits(f.dot_with);
  const VecDotFn dot = f.vec_dot_ref;
  const std::vector<uint8_t> w = make_weights(f, n_out, n_in);  // [n_out, n_in] in f
  const size_t rb = row_bytes(id, n_in);
  std::vector<float> x(static_cast<size_t>(n_in));               // [n_in]
  std::mt19937 rng(1);
  std::normal_distribution<float> g(0.f, 1.f);
  for (auto& v : x) v = g(rng);
  std::vector<uint8_t> qx(row_bytes(act.id, n_in));              // x in the dot_with format
  std::vector<float> y(static_cast<size_t>(n_out));              // [n_out]
  TensorView view;  // W as the runtime sees it
  view.name = "W";
  view.dtype = f.quantized ? DType::QUANT : (id == FormatId::F16 ? DType::F16 : DType::BF16);
  view.format = id;
  view.shape = {n_out, n_in};
  view.data = w.data();
  view.nbytes = w.size();
  Model packed_model;  // holds the packed copy when mode == Packed
  if (mode == Mode::Packed) {
    view.name = "blk.0.ffn_up.weight";
    packed_model.weights[view.name] = view;
    if (pack_weights_for_cpu(packed_model, omp_get_max_threads()) == 0) {
      state.SkipWithError("no packed layout on this CPU (or LOWBIT_PACK=0)");
      return;
    }
    view = packed_model.weights[view.name];
  }
  const int threads = omp_get_max_threads();
  for (auto _ : state) {
    if (mode != Mode::Ref) {
      matmul(view, x.data(), 1, y.data(), threads);
    } else {
      act.quantize_row_ref(x.data(), qx.data(), n_in, nullptr);
#pragma omp parallel for schedule(static)
      for (int64_t r = 0; r < n_out; ++r) y[size_t(r)] = dot(n_in, w.data() + size_t(r) * rb, qx.data());
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  const double gb = double(w.size()) / 1e9;
  state.counters["GB/s"] = benchmark::Counter(gb, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["of_mem_bw"] = benchmark::Counter(gb / memory_read_gbs(), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["MiB"] = double(w.size()) / (1 << 20);
}

void register_all() {
  const FormatId weights[] = {FormatId::F16,  FormatId::BF16, FormatId::Q8_0, FormatId::Q4_0, FormatId::Q4_1,
                              FormatId::Q5_0, FormatId::Q5_1, FormatId::IQ4_NL, FormatId::Q2_K, FormatId::Q3_K,
                              FormatId::Q4_K, FormatId::Q5_K, FormatId::Q6_K};
  const int64_t shapes[][2] = {{4096, 4096}, {4096, 14336}, {14336, 4096}};  // [n_out, n_in]
  for (FormatId id : weights)
    for (auto& s : shapes)
      for (Mode mode : {Mode::Fast, Mode::Packed, Mode::Ref}) {
        if (mode == Mode::Packed && id != FormatId::Q4_0 && id != FormatId::Q8_0) continue;
        const std::string name = std::string("matvec/") + format_traits(id).name + "/" + std::to_string(s[0]) + "x" +
                                 std::to_string(s[1]) + "/" + mode_name(mode);
        benchmark::RegisterBenchmark(name.c_str(), BM_matvec, id, mode, s[0], s[1])
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime()
            ->MinTime(0.3);
      }
}

}  // namespace

int main(int argc, char** argv) {
  std::printf("cpu features : %s\n", cpu_features_string().c_str());
  std::printf("ISA          : %s (best supported %s; LOWBIT_ISA forces ref|avx2|avx512)\n", isa_name(active_isa()),
              isa_name(best_isa_supported()));
  std::printf("threads      : %d (OpenMP, over rows)\n", omp_get_max_threads());
  std::printf("memory read  : %.1f GB/s (sum of a 1 GiB f32 buffer, all threads, best of 5)\n", memory_read_gbs());
  std::fflush(stdout);
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
