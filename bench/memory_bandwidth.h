// The physical limit the benchmarks are measured against: memory read
// bandwidth, measured here by summing a 1 GiB f32 buffer with all threads
// (16 independent accumulators per thread, so the adds are not latency bound;
// pages first touched by the threads that read them). Best of 5, in GB/s (1e9 bytes).
#pragma once
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <vector>

namespace lowbit::bench {

inline double memory_read_gbs() {
  static const double gbs = [] {
    const size_t n = size_t(1) << 28;
    std::vector<float> buf(n);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; ++i) buf[i] = 1.0f;
    double best = 0;
    for (int rep = 0; rep < 5; ++rep) {
      const auto t0 = std::chrono::steady_clock::now();
      double total = 0;
#pragma omp parallel for schedule(static) reduction(+ : total)
      for (size_t i = 0; i < n; i += 4096) {
        float acc[16] = {};
        for (size_t j = 0; j < 4096; j += 16)
          for (int k = 0; k < 16; ++k) acc[k] += buf[i + j + size_t(k)];
        for (float a : acc) total += a;
      }
      benchmark::DoNotOptimize(total);
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      best = std::max(best, double(n * sizeof(float)) / s / 1e9);
    }
    return best;
  }();
  return gbs;
}

}  // namespace lowbit::bench
