// CPU feature detection (cpuid + xgetbv): which ISA extensions this machine
// *and its OS* support, detected once. Fast kernels are chosen from this
// (kernels/dispatch.h), never from compile-time flags: the library is built
// for x86-64-v2 and one binary runs on any x86-64.
#pragma once
#include <string>

namespace lowbit {

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512vnni = false;
  bool avx_vnni = false;  // VEX-encoded VNNI (Alder Lake+, Zen 5)

  // What our AVX2 kernels need.
  bool has_avx2_level() const { return avx2 && fma && f16c; }
  // What our AVX-512 kernels need (implies the AVX2 level on every real CPU; checked anyway).
  bool has_avx512_level() const { return has_avx2_level() && avx512f && avx512bw && avx512vl && avx512vnni; }
};

// Detected once (thread-safe static); OS support for YMM/ZMM state is checked via xgetbv.
const CpuFeatures& cpu_features();
// One line, e.g. "avx2 fma f16c -avx512f -avx512bw -avx512vl -avx512vnni -avxvnni".
std::string cpu_features_string(const CpuFeatures& f = cpu_features());

}  // namespace lowbit
