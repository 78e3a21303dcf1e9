// The physical limit CPU inference is measured against: memory read
// bandwidth. Measured by summing a large f32 buffer with OpenMP threads
// (16 independent accumulators per thread, so the adds are not latency bound;
// pages first touched by the threads that later read them). Best of `reps`,
// in GB/s (1e9 bytes). Used by `lowbit bench` and the Google Benchmark benches.
#pragma once
#include <cstddef>

namespace lowbit {

struct MemoryBandwidthOptions {
  size_t bytes = size_t(1) << 30;  // buffer size; far beyond any cache
  int reps = 5;                    // best of
  int threads = 0;                 // <= 0: all cores (OpenMP default)
};

// Allocates `bytes`, reads it `reps` times, returns the best rate in GB/s.
double measure_memory_read_gbs(const MemoryBandwidthOptions& opts = {});

}  // namespace lowbit
