// The AVX-512 dot-product kernels (kernels/dot_avx512.cpp) on any x86-64 CPU:
// this test links a second build of them in which SIMDe executes every AVX-512
// intrinsic in software (LOWBIT_AVX512_EMULATED, see CMakeLists.txt), and checks,
// for every format with an AVX-512 kernel:
//  * emulated kernel == scalar reference (format_traits(id).vec_dot_ref) within
//    test_kernels' bound, 1e-5 of sum_i |x_i * y_i| over the dequantized values:
//    quantized random rows, raw random blocks (every bit pattern of the quants and
//    sub-block scales), the stories260K weights; 1, 2, 3, 5, 8, 17 blocks (odd counts
//    take the kernels' single-block tail), unaligned buffers;
//  * the result is deterministic (same bits on a second call, at another address);
//  * the 4-row kernels give vec_dot's floats bit for bit;
//  * on a CPU with AVX-512 + VNNI: the native kernel gives the emulated one's
//    floats bit for bit (skipped elsewhere).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "core/half.h"
#include "formats/blocks_legacy.h"
#include "formats/format.h"
#include "formats/k_quants.h"
#include "io/gguf.h"
#include "kernels/dispatch.h"
#include "paths.h"
#include "test_random.h"

using namespace lowbit;

namespace lowbit {
// Test names and failure messages show "q4_K", not the enum's bytes.
inline void PrintTo(FormatId id, std::ostream* os) { *os << format_traits(id).name; }
}  // namespace lowbit

#ifdef LOWBIT_NO_SIMDE
TEST(Avx512Emulated, NeedsSimde) { GTEST_SKIP() << "built without SIMDe (Debian: libsimde-dev)"; }
#else

namespace {

const FormatId kFormats[] = {FormatId::Q8_0, FormatId::Q4_0, FormatId::Q4_1, FormatId::Q5_0, FormatId::Q5_1,
                             FormatId::IQ4_NL, FormatId::Q2_K, FormatId::Q3_K, FormatId::Q4_K, FormatId::Q5_K,
                             FormatId::Q6_K, FormatId::F16, FormatId::BF16};

std::string name_of(const testing::TestParamInfo<FormatId>& info) { return format_traits(info.param).name; }

// A byte buffer whose data starts `misalign` bytes past a 64-byte boundary.
struct Buffer {
  std::vector<uint8_t> bytes;
  size_t offset;
  Buffer(const void* src, size_t n, size_t misalign) : bytes(n + 128), offset(0) {
    while ((reinterpret_cast<uintptr_t>(bytes.data() + offset) & 63) != misalign) ++offset;
    std::memcpy(data(), src, n);
  }
  uint8_t* data() { return bytes.data() + offset; }
};

// kind 0: Gaussian; 1: uniform in [-0.5, 1.5) (offset formats); 2: Gaussian with 2% outliers x20.
std::vector<float> random_row(test::SplitMix64& rng, int64_t n, int kind) {
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) {
    if (kind == 1) x = float(rng.uniform() * 2.0 - 0.5);
    else x = float(rng.gauss()) * (kind == 2 && rng.next() % 50 == 0 ? 20.f : 1.f);
  }
  return v;
}

// A random f16 of magnitude in [0.5, 1), random sign when `signed_`.
uint16_t random_half(test::SplitMix64& rng, bool signed_) {
  return uint16_t(0x3800 | (rng.next() & 0x3ff) | (signed_ && (rng.next() & 1) ? 0x8000 : 0));
}

// `blocks` raw random blocks of `id`: every quant and sub-block-scale bit random, the
// f16 super-block / block scales set to finite values.
std::vector<uint8_t> random_blocks(test::SplitMix64& rng, FormatId id, int64_t blocks) {
  const FormatTraits& f = format_traits(id);
  std::vector<uint8_t> q(size_t(blocks) * f.block_bytes);
  for (auto& b : q) b = uint8_t(rng.next());
  for (int64_t i = 0; i < blocks; ++i) {
    uint8_t* p = q.data() + size_t(i) * f.block_bytes;
    auto set = [&](auto* block) {
      block->d = random_half(rng, true);
      if constexpr (requires { block->dmin; }) block->dmin = random_half(rng, false);
      if constexpr (requires { block->m; }) block->m = random_half(rng, true);
    };
    switch (id) {
      case FormatId::Q8_0: set(reinterpret_cast<BlockQ8_0*>(p)); break;
      case FormatId::Q4_0: set(reinterpret_cast<BlockQ4_0*>(p)); break;
      case FormatId::Q4_1: set(reinterpret_cast<BlockQ4_1*>(p)); break;
      case FormatId::Q5_0: set(reinterpret_cast<BlockQ5_0*>(p)); break;
      case FormatId::Q5_1: set(reinterpret_cast<BlockQ5_1*>(p)); break;
      case FormatId::IQ4_NL: set(reinterpret_cast<BlockIQ4_NL*>(p)); break;
      case FormatId::Q2_K: set(reinterpret_cast<BlockQ2_K*>(p)); break;
      case FormatId::Q3_K: set(reinterpret_cast<BlockQ3_K*>(p)); break;
      case FormatId::Q4_K: set(reinterpret_cast<BlockQ4_K*>(p)); break;
      case FormatId::Q5_K: set(reinterpret_cast<BlockQ5_K*>(p)); break;
      case FormatId::Q6_K: set(reinterpret_cast<BlockQ6_K*>(p)); break;
      case FormatId::F16: reinterpret_cast<uint16_t*>(p)[0] = random_half(rng, true); break;
      case FormatId::BF16: reinterpret_cast<uint16_t*>(p)[0] = f32_to_bf16(float(rng.gauss())); break;
      default: ADD_FAILURE() << "no raw-block recipe for " << f.name;
    }
  }
  if (id == FormatId::Q8_0)  // q8_0 quants are -127..127
    for (int64_t i = 0; i < blocks; ++i)
      for (int j = 0; j < kLegacyBlock; ++j) {
        auto* b = reinterpret_cast<BlockQ8_0*>(q.data() + size_t(i) * f.block_bytes);
        if (b->qs[j] == -128) b->qs[j] = -127;
      }
  return q;
}

// One row pair: x of format `id` (bytes), y quantized from yf with the activation format.
struct Case {
  std::vector<uint8_t> x, y;
  int64_t n;
  std::string what;
};

Case make_case(FormatId id, std::vector<uint8_t> x, const std::vector<float>& yf, std::string what) {
  const FormatTraits& act = format_traits(format_traits(id).dot_with);
  const int64_t n = int64_t(yf.size());
  Case c{std::move(x), std::vector<uint8_t>(row_bytes(act.id, n)), n, std::move(what)};
  act.quantize_row_ref(yf.data(), c.y.data(), n, nullptr);
  return c;
}

Case quantized_case(FormatId id, const std::vector<float>& xf, const std::vector<float>& yf, std::string what) {
  const FormatTraits& f = format_traits(id);
  std::vector<uint8_t> x(row_bytes(id, int64_t(xf.size())));
  f.quantize_row_ref(xf.data(), x.data(), int64_t(xf.size()), nullptr);
  return make_case(id, std::move(x), yf, std::move(what));
}

std::vector<int64_t> row_lengths(const FormatTraits& f) {
  if (f.block_size == 1) return {1, 15, 16, 17, 31, 32, 33, 100, 257, 1031};  // float formats: tails
  std::vector<int64_t> n;
  for (int blocks : {1, 2, 3, 5, 8, 17}) n.push_back(int64_t(blocks) * f.block_size);
  return n;
}

// Random cases for `id`: quantized rows of three kinds and raw random blocks, each length.
std::vector<Case> random_cases(FormatId id) {
  const FormatTraits& f = format_traits(id);
  test::SplitMix64 rng{uint64_t(id) * 7919 + 1};
  std::vector<Case> cases;
  for (int64_t n : row_lengths(f)) {
    for (int kind = 0; kind < 3; ++kind)
      cases.push_back(quantized_case(id, random_row(rng, n, kind), random_row(rng, n, (kind + 1) % 3),
                                     "n = " + std::to_string(n) + ", kind " + std::to_string(kind)));
    cases.push_back(make_case(id, random_blocks(rng, id, n / f.block_size), random_row(rng, n, 0),
                              "n = " + std::to_string(n) + ", raw random blocks"));
  }
  return cases;
}

// sum_i |x_i * y_i| over the dequantized rows: the scale of the allowed float error.
double magnitude(FormatId id, const Case& c) {
  const FormatTraits& f = format_traits(id);
  const FormatTraits& act = format_traits(f.dot_with);
  std::vector<float> xd(size_t(c.n)), yd(size_t(c.n));
  f.dequantize_row(c.x.data(), xd.data(), c.n);
  act.dequantize_row(c.y.data(), yd.data(), c.n);
  double mag = 0;
  for (int64_t i = 0; i < c.n; ++i) mag += std::fabs(double(xd[i]) * yd[i]);
  return mag;
}

// Emulated kernel vs reference, deterministic at another (misaligned) address.
void check_against_reference(FormatId id, const Case& c) {
  const VecDotFn emu = avx512_emulated_vec_dot(id);
  ASSERT_NE(emu, nullptr);
  const double ref = format_traits(id).vec_dot_ref(c.n, c.x.data(), c.y.data());
  const float got = emu(c.n, c.x.data(), c.y.data());
  EXPECT_NEAR(got, ref, 1e-5 * magnitude(id, c) + 1e-30) << format_traits(id).name << ", " << c.what;
  // off 64-byte alignment, keeping the block structs' own (2 bytes for f16 fields, 4 for q8_K)
  Buffer bx(c.x.data(), c.x.size(), 2), by(c.y.data(), c.y.size(), 36);
  const float again = emu(c.n, bx.data(), by.data());
  EXPECT_EQ(0, std::memcmp(&got, &again, sizeof(float))) << format_traits(id).name << ", " << c.what;
}

class Avx512Emulated : public testing::TestWithParam<FormatId> {};

TEST_P(Avx512Emulated, MatchesReferenceOnRandomRows) {
  for (const Case& c : random_cases(GetParam())) check_against_reference(GetParam(), c);
}

// The stories260K weights, flattened, as x; the next tensor's values as y.
TEST_P(Avx512Emulated, MatchesReferenceOnModelWeights) {
  const FormatTraits& f = format_traits(GetParam());
  GgufFile file(test::shared("models/stories260K/stories260K-f32.gguf"));
  std::vector<float> all;
  for (const TensorView& t : file.tensors())
    if (t.dtype == DType::F32) all.insert(all.end(), static_cast<const float*>(t.data), static_cast<const float*>(t.data) + t.numel());
  const int64_t n = 8 * 256;  // a multiple of every block size
  ASSERT_GE(int64_t(all.size()), 2 * n);
  int checked = 0;
  for (int64_t start = 0; start + 2 * n <= int64_t(all.size()) && checked < 24; start += int64_t(all.size()) / 24, ++checked) {
    std::vector<float> xf(all.begin() + start, all.begin() + start + n), yf(all.begin() + start + n, all.begin() + start + 2 * n);
    check_against_reference(f.id, quantized_case(f.id, xf, yf, "weights at " + std::to_string(start)));
  }
  EXPECT_GT(checked, 10);
}

// The 4-row kernel (legacy formats) gives vec_dot's floats bit for bit, row by row.
TEST_P(Avx512Emulated, FourRowsEqualVecDot) {
  const FormatId id = GetParam();
  const VecDot4RowsFn four = avx512_emulated_vec_dot_4rows(id);
  if (format_traits(id).block_size != kLegacyBlock) {
    EXPECT_EQ(four, nullptr);
    return;
  }
  ASSERT_NE(four, nullptr);
  const std::vector<Case> cases = random_cases(id);
  for (size_t i = 0; i + 4 <= cases.size(); i += 4) {  // 4 cases of one length: 3 quantized rows + 1 raw
    const int64_t n = cases[i].n;
    const size_t rb = cases[i].x.size();
    std::vector<uint8_t> w;
    for (size_t r = 0; r < 4; ++r) w.insert(w.end(), cases[i + r].x.begin(), cases[i + r].x.end());
    float out[4];
    four(n, w.data(), rb, cases[i].y.data(), out);
    for (size_t r = 0; r < 4; ++r) {
      const float one = avx512_emulated_vec_dot(id)(n, cases[i + r].x.data(), cases[i].y.data());
      EXPECT_EQ(0, std::memcmp(&out[r], &one, sizeof(float))) << format_traits(id).name << " n = " << n << " row " << r;
    }
  }
}

TEST_P(Avx512Emulated, NativeGivesTheSameBits) {
  if (!cpu_features().has_avx512_level()) GTEST_SKIP() << "no AVX-512 + VNNI on this CPU: " << cpu_features_string();
  const VecDotFn native = avx512_vec_dot(GetParam()), emu = avx512_emulated_vec_dot(GetParam());
  ASSERT_NE(native, nullptr);
  for (const Case& c : random_cases(GetParam())) {
    const float a = native(c.n, c.x.data(), c.y.data()), b = emu(c.n, c.x.data(), c.y.data());
    EXPECT_EQ(0, std::memcmp(&a, &b, sizeof(float))) << format_traits(GetParam()).name << ", " << c.what << ": " << a << " vs " << b;
  }
  if (const VecDot4RowsFn four = avx512_vec_dot_4rows(GetParam())) {
    const Case& c = random_cases(GetParam()).back();
    const size_t rb = c.x.size();
    std::vector<uint8_t> w;
    for (int r = 0; r < 4; ++r) w.insert(w.end(), c.x.begin(), c.x.end());
    float a[4], b[4];
    four(c.n, w.data(), rb, c.y.data(), a);
    avx512_emulated_vec_dot_4rows(GetParam())(c.n, w.data(), rb, c.y.data(), b);
    EXPECT_EQ(0, std::memcmp(a, b, sizeof(a))) << format_traits(GetParam()).name << " 4 rows";
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, Avx512Emulated, testing::ValuesIn(kFormats), name_of);

}  // namespace

// The two builds have the same tables: vec_dot for exactly kFormats (the rest keep AVX2
// or the reference), 4 rows for the legacy 32-value ones.
TEST(Avx512Dispatch, KernelTable) {
  for (const FormatTraits& f : all_formats()) {
    const bool listed = std::find(std::begin(kFormats), std::end(kFormats), f.id) != std::end(kFormats);
    EXPECT_EQ(avx512_emulated_vec_dot(f.id) != nullptr, listed) << f.name;
    EXPECT_EQ(avx512_vec_dot(f.id) != nullptr, listed) << f.name;
    const bool four = listed && f.block_size == kLegacyBlock;
    EXPECT_EQ(avx512_emulated_vec_dot_4rows(f.id) != nullptr, four) << f.name;
    EXPECT_EQ(avx512_vec_dot_4rows(f.id) != nullptr, four) << f.name;
  }
}

// At the AVX-512 level the AVX-512 kernels are chosen (where the CPU has them), and
// no AVX2 4-row kernel stands next to an AVX-512 vec_dot (those equal the AVX2 vec_dot only).
TEST(Avx512Dispatch, PrefersAvx512AtThatLevel) {
  if (best_isa_supported() < IsaLevel::Avx512) GTEST_SKIP() << "no AVX-512 + VNNI on this CPU";
  for (FormatId id : kFormats) EXPECT_EQ(vec_dot_for_isa(id, IsaLevel::Avx512), avx512_vec_dot(id));
  if (active_isa() == IsaLevel::Avx512) {
    for (FormatId id : kFormats) EXPECT_EQ(format_traits(id).vec_dot_4rows, avx512_vec_dot_4rows(id)) << format_traits(id).name;
  }
}

#endif  // LOWBIT_NO_SIMDE
