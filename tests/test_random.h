// Deterministic test data: splitmix64 -> uniform doubles -> Box-Muller
// Gaussians, all in double, so every platform yields the same floats (the
// golden values in test_kquants were computed from this same sequence).
#pragma once
#include <cmath>
#include <cstdint>

namespace lowbit::test {

struct SplitMix64 {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double uniform() { return double(next() >> 11) * 0x1.0p-53; }  // [0, 1)
  double gauss() {                                                // Box-Muller, cosine branch only
    double u1 = uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(1.0 - u1)) * std::cos(6.283185307179586 * u2);
  }
};

}  // namespace lowbit::test
