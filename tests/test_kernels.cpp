// Fast dot-product kernels (kernels/dispatch.h) against the scalar references,
// for every format with a fast kernel at every ISA level this CPU supports, plus
// the consistency of CPU feature detection.
//
// Per format and level: random rows of 1, 2, 7 and 16 blocks; x quantized with the
// format's quantize_row_ref, y with its dot_with format's; fast == ref within
// 1e-5 of sum_i |x_i * y_i| over the dequantized values.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "formats/format.h"
#include "kernels/dispatch.h"

using namespace lowbit;

namespace {

std::vector<IsaLevel> fast_levels() {
  std::vector<IsaLevel> levels;
  for (IsaLevel l : {IsaLevel::Avx2, IsaLevel::Avx512})
    if (l <= best_isa_supported()) levels.push_back(l);
  return levels;
}

std::vector<int64_t> row_lengths(const FormatTraits& f) {
  if (f.block_size == 1) return {1, 2, 7, 16, 33, 257, 4099};  // float formats: any length, tails included
  std::vector<int64_t> n;
  for (int blocks : {1, 2, 7, 16}) n.push_back(int64_t(blocks) * f.block_size);
  return n;
}

std::vector<float> random_row(std::mt19937& rng, int64_t n, int kind) {
  std::normal_distribution<float> gauss(0.f, 1.f);
  std::uniform_real_distribution<float> uni(-1.f, 1.f);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = kind == 0 ? gauss(rng) : kind == 1 ? uni(rng) + 0.5f : gauss(rng) * (rng() % 50 == 0 ? 20.f : 1.f);
  return v;
}

}  // namespace

TEST(CpuFeatures, Consistent) {
  const CpuFeatures& f = cpu_features();
  std::cout << "[ features ] " << cpu_features_string() << "  best ISA: " << isa_name(best_isa_supported())
            << "  active: " << isa_name(active_isa()) << "\n";
  if (f.has_avx512_level()) {
    EXPECT_TRUE(f.has_avx2_level());
  }
  if (f.avx512bw || f.avx512vl || f.avx512vnni) {
    EXPECT_TRUE(f.avx512f);
  }
  EXPECT_EQ(best_isa_supported() >= IsaLevel::Avx2, f.has_avx2_level());
  EXPECT_EQ(best_isa_supported() == IsaLevel::Avx512, f.has_avx512_level());
  EXPECT_LE(active_isa(), best_isa_supported());
  // The kernel's view agrees with the OS's (Linux lists the flags it enabled).
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream ss(line.substr(line.find(':') + 1));
    std::vector<std::string> flags;
    for (std::string w; ss >> w;) flags.push_back(w);
    auto has = [&](const char* name) { return std::find(flags.begin(), flags.end(), name) != flags.end(); };
    EXPECT_EQ(f.avx2, has("avx2"));
    EXPECT_EQ(f.fma, has("fma"));
    EXPECT_EQ(f.f16c, has("f16c"));
    EXPECT_EQ(f.avx512f, has("avx512f"));
    EXPECT_EQ(f.avx512bw, has("avx512bw"));
    EXPECT_EQ(f.avx512vl, has("avx512vl"));
    EXPECT_EQ(f.avx512vnni, has("avx512_vnni"));
    EXPECT_EQ(f.avx_vnni, has("avx_vnni"));
    break;
  }
}

TEST(Dispatch, RefLevelHasNoKernelsAndTableUsesBest) {
  for (const FormatTraits& f : all_formats()) {
    EXPECT_EQ(vec_dot_for_isa(f.id, IsaLevel::Ref), nullptr) << f.name;
    VecDotFn best = best_vec_dot(f.id);
    EXPECT_EQ(f.vec_dot, best ? best : f.vec_dot_ref) << f.name;
  }
}

TEST(Kernels, MatchReference) {
  const std::vector<IsaLevel> levels = fast_levels();
  if (levels.empty()) GTEST_SKIP() << "no fast ISA level on this CPU";
  std::mt19937 rng(7);
  int checked = 0;
  for (IsaLevel level : levels) {
    for (const FormatTraits& f : all_formats()) {
      VecDotFn fast = vec_dot_for_isa(f.id, level);
      if (!fast || !f.vec_dot_ref) continue;
      const FormatTraits& act = format_traits(f.dot_with);
      for (int64_t n : row_lengths(f)) {
        for (int kind = 0; kind < 3; ++kind) {
          std::vector<float> xf = random_row(rng, n, kind), yf = random_row(rng, n, (kind + 1) % 3);
          std::vector<uint8_t> qx(row_bytes(f.id, n)), qy(row_bytes(act.id, n));
          f.quantize_row_ref(xf.data(), qx.data(), n, nullptr);
          act.quantize_row_ref(yf.data(), qy.data(), n, nullptr);
          std::vector<float> xd(static_cast<size_t>(n)), yd(static_cast<size_t>(n));
          f.dequantize_row(qx.data(), xd.data(), n);
          act.dequantize_row(qy.data(), yd.data(), n);
          double mag = 0;
          for (int64_t i = 0; i < n; ++i) mag += std::fabs(double(xd[i]) * yd[i]);
          const double ref = f.vec_dot_ref(n, qx.data(), qy.data());
          const double got = fast(n, qx.data(), qy.data());
          EXPECT_NEAR(got, ref, 1e-5 * mag + 1e-30)
              << f.name << " at " << isa_name(level) << ", n = " << n << ", data kind " << kind;
          ++checked;
        }
      }
    }
  }
  EXPECT_GT(checked, 0);
}

namespace {

// The fast dequantizers (prompt processing) must give the reference's floats bit for bit.
TEST(Kernels, FastDequantizeIsBitIdentical) {
  std::mt19937 rng(11);
  int checked = 0;
  for (const FormatTraits& f : all_formats()) {
    ASSERT_NE(f.dequantize_row_fast, nullptr) << f.name;
    if (f.dequantize_row_fast == f.dequantize_row) continue;
    for (int64_t n : row_lengths(f)) {
      for (int kind = 0; kind < 3; ++kind) {
        std::vector<float> xf = random_row(rng, n, kind);
        std::vector<uint8_t> q(row_bytes(f.id, n));
        f.quantize_row_ref(xf.data(), q.data(), n, nullptr);
        std::vector<float> ref(static_cast<size_t>(n)), got(static_cast<size_t>(n), NAN);
        f.dequantize_row(q.data(), ref.data(), n);
        f.dequantize_row_fast(q.data(), got.data(), n);
        ASSERT_EQ(0, std::memcmp(ref.data(), got.data(), ref.size() * sizeof(float))) << f.name << " n = " << n;
        ++checked;
      }
    }
  }
  if (best_isa_supported() >= IsaLevel::Avx2) EXPECT_GT(checked, 0);
}

}  // namespace

namespace {

// 4-row kernels (generation matvec) give vec_dot's floats bit for bit, row by row.
TEST(Kernels, FourRowDotIsBitIdentical) {
  std::mt19937 rng(13);
  int checked = 0;
  for (const FormatTraits& f : all_formats()) {
    if (!f.vec_dot_4rows) continue;
    const FormatTraits& act = format_traits(f.dot_with);
    for (int64_t n : row_lengths(f)) {
      const size_t rb = row_bytes(f.id, n);
      std::vector<uint8_t> w(4 * rb), y(row_bytes(act.id, n));
      for (int r = 0; r < 4; ++r) {
        std::vector<float> xf = random_row(rng, n, r % 3);
        f.quantize_row_ref(xf.data(), w.data() + size_t(r) * rb, n, nullptr);
      }
      std::vector<float> yf = random_row(rng, n, 0);
      act.quantize_row_ref(yf.data(), y.data(), n, nullptr);
      float out[4];
      f.vec_dot_4rows(n, w.data(), rb, y.data(), out);
      for (int r = 0; r < 4; ++r) {
        const float one = f.vec_dot(n, w.data() + size_t(r) * rb, y.data());
        EXPECT_EQ(0, std::memcmp(&out[r], &one, sizeof(float))) << f.name << " n = " << n << " row " << r;
      }
      ++checked;
    }
  }
  if (best_isa_supported() >= IsaLevel::Avx2) EXPECT_GT(checked, 0);
}

}  // namespace
