// The physical limit the benchmarks are measured against: memory read
// bandwidth (src/core/memory_bandwidth.h: a 1 GiB f32 buffer summed with all
// threads, best of 5), measured once per process, in GB/s (1e9 bytes).
#pragma once
#include "core/memory_bandwidth.h"

namespace lowbit::bench {

inline double memory_read_gbs() {
  static const double gbs = lowbit::measure_memory_read_gbs();
  return gbs;
}

}  // namespace lowbit::bench
