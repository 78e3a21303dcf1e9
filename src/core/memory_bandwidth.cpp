// Memory read bandwidth: see memory_bandwidth.h.
#include "core/memory_bandwidth.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <memory>

#include "lowbit/error.h"

namespace lowbit {

double measure_memory_read_gbs(const MemoryBandwidthOptions& opts) {
  constexpr size_t kChunk = 4096;  // floats per parallel-loop iteration
  const size_t n = std::max(kChunk, opts.bytes / sizeof(float) / kChunk * kChunk);
  const int threads = opts.threads > 0 ? opts.threads : omp_get_max_threads();
  std::unique_ptr<float[]> buf(new float[n]);  // uninitialised: first touched below, by the readers
  float* p = buf.get();
#pragma omp parallel for schedule(static) num_threads(threads)
  for (size_t i = 0; i < n; i += kChunk)
    for (size_t j = 0; j < kChunk; ++j) p[i + j] = 1.0f;
  double best = 0;
  for (int rep = 0; rep < std::max(1, opts.reps); ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    double total = 0;
#pragma omp parallel for schedule(static) num_threads(threads) reduction(+ : total)
    for (size_t i = 0; i < n; i += kChunk) {
      float acc[16] = {};
      for (size_t j = 0; j < kChunk; j += 16)
        for (int k = 0; k < 16; ++k) acc[k] += p[i + j + size_t(k)];
      for (float a : acc) total += a;
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // Every element is 1.0: the sum proves the reads happened (and keeps them from being optimised out).
    LOWBIT_ASSERT(total == double(n));
    best = std::max(best, double(n * sizeof(float)) / s / 1e9);
  }
  return best;
}

}  // namespace lowbit
