// Run-time packed weights (model/packed_weights.h, kernels/packed_x8.h):
// packing moves bits without changing them (packed rows dequantize exactly as
// q4_0 rows), the AVX2 kernels equal the scalar references bit for bit, the
// packed product matches q4_0's reference dot within float rounding on random
// and on real stories260K weights, results do not depend on the thread count,
// and a view whose data changed ignores a stale packed copy.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/cpu_features.h"
#include "core/half.h"
#include "formats/format.h"
#include "io/model_loader.h"
#include "kernels/packed_x8.h"
#include "model/matmul.h"
#include "model/packed_weights.h"
#include "paths.h"
#include "test_random.h"

namespace lowbit {
namespace {

using namespace test;

// Gaussian test data from the shared deterministic generator (test_random.h).
std::vector<float> randn(size_t n, uint64_t seed, float scale) {
  SplitMix64 rng{seed};
  std::vector<float> v(n);
  for (auto& x : v) x = float(rng.gauss()) * scale;
  return v;
}

// The packed layouts under test and their kernels.
struct Layout {
  FormatId format;
  void (*pack)(const void*, size_t, int64_t, int64_t, void*);
  void (*dequant_ref)(const void*, int, float*, int64_t);
  void (*dequant_avx2)(const void*, int, float*, int64_t);
  void (*gemv_ref)(int64_t, const void*, const Q8RowSums&, float*);
  void (*gemv_avx2)(int64_t, const void*, const Q8RowSums&, float*);
};
const Layout kLayouts[] = {
    {FormatId::Q4_0, pack_q4_0x8, dequantize_q4_0x8_row_ref, dequantize_q4_0x8_row_avx2, gemv_q4_0x8_ref,
     gemv_q4_0x8_avx2},
    {FormatId::Q8_0, pack_q8_0x8, dequantize_q8_0x8_row_ref, dequantize_q8_0x8_row_avx2, gemv_q8_0x8_ref,
     gemv_q8_0x8_avx2},
};

std::vector<uint8_t> quantize(FormatId id, const std::vector<float>& w, int64_t n_out, int64_t n_in) {
  const FormatTraits& f = format_traits(id);
  const size_t rb = row_bytes(id, n_in);
  std::vector<uint8_t> q(rb * size_t(n_out));
  for (int64_t r = 0; r < n_out; ++r) f.quantize_row_ref(w.data() + r * n_in, q.data() + size_t(r) * rb, n_in, nullptr);
  return q;
}

bool have_avx2() { return cpu_features().has_avx2_level(); }

// One q8_0 activation row with its Q8RowSums side arrays.
struct Activation {
  std::vector<BlockQ8_0> blocks;
  std::vector<float> d;
  std::vector<int32_t> sum8;
  std::vector<int8_t> abs_qs;
  Q8RowSums sums() const { return {blocks.data(), d.data(), sum8.data(), abs_qs.data()}; }
};

Activation quantize_activation(const std::vector<float>& x) {
  Activation a;
  const int64_t nb = int64_t(x.size()) / kLegacyBlock;
  a.blocks.resize(size_t(nb));
  format_traits(FormatId::Q8_0).quantize_row_ref(x.data(), a.blocks.data(), int64_t(x.size()), nullptr);
  for (const BlockQ8_0& b : a.blocks) {
    int32_t s = 0;
    for (int8_t q : b.qs) {
      s += q;
      a.abs_qs.push_back(int8_t(std::abs(q)));
    }
    a.d.push_back(f16_to_f32(b.d));
    a.sum8.push_back(8 * s);
  }
  return a;
}

struct Shape {
  int64_t n_out, n_in;
};
const Shape kShapes[] = {{8, 32}, {16, 64}, {64, 256}, {40, 4096}};

TEST(PackedX8, PackedRowsDequantizeExactlyAsTheFormat) {
  for (const Layout& L : kLayouts)
  for (const Shape& s : kShapes) {
    const auto q = quantize(L.format, randn(size_t(s.n_out * s.n_in), 7, 0.05f), s.n_out, s.n_in);
    const size_t rb = row_bytes(L.format, s.n_in);
    std::vector<uint8_t> packed(q.size());
    L.pack(q.data(), rb, s.n_out, s.n_in, packed.data());
    std::vector<float> want(size_t(s.n_in)), ref(size_t(s.n_in)), fast(size_t(s.n_in));
    for (int64_t r = 0; r < s.n_out; ++r) {
      format_traits(L.format).dequantize_row(q.data() + size_t(r) * rb, want.data(), s.n_in);
      const uint8_t* group = packed.data() + size_t(r / 8) * 8 * rb;
      L.dequant_ref(group, int(r % 8), ref.data(), s.n_in);
      ASSERT_EQ(0, std::memcmp(want.data(), ref.data(), want.size() * 4)) << s.n_out << "x" << s.n_in << " row " << r;
      if (!have_avx2()) continue;
      L.dequant_avx2(group, int(r % 8), fast.data(), s.n_in);
      ASSERT_EQ(0, std::memcmp(want.data(), fast.data(), want.size() * 4)) << s.n_out << "x" << s.n_in << " row " << r;
    }
  }
}

// gemv: AVX2 == reference bit for bit; both within float rounding of q4_0's
// reference dot (same integers, different summation order).
void check_gemv(const Layout& L, const std::vector<uint8_t>& q, int64_t n_out, int64_t n_in,
                const std::vector<float>& x) {
  const size_t rb = row_bytes(L.format, n_in);
  std::vector<uint8_t> packed(q.size());
  L.pack(q.data(), rb, n_out, n_in, packed.data());
  const Activation a = quantize_activation(x);
  const FormatTraits& f = format_traits(L.format);
  for (int64_t g = 0; g < n_out / 8; ++g) {
    float ref[8], fast[8];
    const uint8_t* group = packed.data() + size_t(g) * 8 * rb;
    L.gemv_ref(n_in, group, a.sums(), ref);
    if (have_avx2()) {
      L.gemv_avx2(n_in, group, a.sums(), fast);
      ASSERT_EQ(0, std::memcmp(ref, fast, sizeof ref)) << f.name << " group " << g;
    }
    for (int r = 0; r < 8; ++r) {
      const uint8_t* row = q.data() + size_t(g * 8 + r) * rb;
      // Exact value in double from the dequantized operands; float results of
      // n_in / 32 block terms are within a few ulps per term of the magnitudes.
      std::vector<float> wr(static_cast<size_t>(n_in)), xr(static_cast<size_t>(n_in));
      f.dequantize_row(row, wr.data(), n_in);
      format_traits(FormatId::Q8_0).dequantize_row(a.blocks.data(), xr.data(), n_in);
      double exact = 0, mag = 0;
      for (int64_t i = 0; i < n_in; ++i) {
        exact += double(wr[size_t(i)]) * double(xr[size_t(i)]);
        mag += std::fabs(double(wr[size_t(i)]) * double(xr[size_t(i)]));
      }
      const double tol = 4e-7 * double(n_in / 32 + 2) * mag + 1e-12;
      EXPECT_NEAR(ref[r], exact, tol) << f.name << " " << n_out << "x" << n_in << " row " << g * 8 + r;
      EXPECT_NEAR(f.vec_dot_ref(n_in, row, a.blocks.data()), exact, tol)
          << f.name << " " << n_out << "x" << n_in << " row " << g * 8 + r;
    }
  }
}

TEST(PackedX8, GemvMatchesReferenceDot) {
  for (const Layout& L : kLayouts)
    for (const Shape& s : kShapes)
      check_gemv(L, quantize(L.format, randn(size_t(s.n_out * s.n_in), 11, 0.05f), s.n_out, s.n_in), s.n_out, s.n_in,
                 randn(size_t(s.n_in), 12, 1.0f));
}

// Extreme blocks: in every block of 32 one weight -8/7 and 31 weights 1, so
// q4_0 stores nibble 0 once and nibble 15 (+7) 31 times, q8_0 codes -127 and
// 111; all activations 1 (q8 code 127). The q4_0 kernel's int16 lanes then hold
// 15 sums of 2 * 15 * 127 and one of 15 * 127: 30480 at most, near the int16 limit.
TEST(PackedX8, GemvExtremeValuesDoNotOverflow) {
  const int64_t n_out = 8, n_in = 64;
  std::vector<float> w(static_cast<size_t>(n_out * n_in)), x(static_cast<size_t>(n_in), 1.0f);
  for (size_t i = 0; i < w.size(); ++i) w[i] = (i % 32 == 31) ? -8.0f / 7.0f : 1.0f;
  const auto q4 = quantize(FormatId::Q4_0, w, n_out, n_in);
  const auto* b = reinterpret_cast<const BlockQ4_0*>(q4.data());
  ASSERT_EQ(b->qs[0], 0xFF);   // values 0 and 16: code 15
  ASSERT_EQ(b->qs[15], 0x0F);  // values 15 (code 15) and 31 (code 0)
  for (const Layout& L : kLayouts) check_gemv(L, quantize(L.format, w, n_out, n_in), n_out, n_in, x);
}

TEST(PackedX8, RealStoriesWeights) {
  auto m = load_model(shared("models/stories260K/stories260K-f32.gguf"));
  int checked = 0;
  for (const auto& [name, v] : m->weights) {
    if (v.shape.size() != 2 || v.shape[0] % 8 || v.shape[1] % 32 || v.dtype != DType::F32) continue;
    const auto* w = static_cast<const float*>(v.data);
    for (const Layout& L : kLayouts)
      check_gemv(L, quantize(L.format, std::vector<float>(w, w + v.numel()), v.shape[0], v.shape[1]), v.shape[0],
                 v.shape[1], randn(size_t(v.shape[1]), 3, 1.0f));
    ++checked;
  }
  EXPECT_GE(checked, 20);
}

// The model-level path: pack_weights_for_cpu + matmul in both regimes.
struct PackedModel {
  Model m;
  std::vector<uint8_t> q;
  int64_t n_out = 48, n_in = 512;
  explicit PackedModel(FormatId f = FormatId::Q4_0) {
    q = quantize(f, randn(size_t(n_out * n_in), 5, 0.05f), n_out, n_in);
    TensorView v;
    v.name = "blk.0.ffn_up.weight";
    v.dtype = DType::QUANT;
    v.format = f;
    v.shape = {n_out, n_in};
    v.data = q.data();
    v.nbytes = q.size();
    m.weights[v.name] = v;
  }
  const TensorView& view() { return m.weights.at("blk.0.ffn_up.weight"); }
};

TEST(PackedWeights, MatmulMatchesUnpackedAndIsThreadInvariant) {
  for (const Layout& L : kLayouts) {
  PackedModel pm(L.format);
  if (!can_pack(pm.view())) GTEST_SKIP() << "no AVX2 or LOWBIT_PACK=0";
  TensorView plain = pm.view();
  EXPECT_EQ(pack_weights_for_cpu(pm.m, 2), pm.q.size());
  ASSERT_NE(pm.view().packed, nullptr);
  for (int n_tok : {1, 3, 20}) {
    const auto X = randn(size_t(n_tok * pm.n_in), 9, 1.0f);
    std::vector<float> y_plain(size_t(n_tok * pm.n_out)), y1(y_plain.size()), y2(y_plain.size());
    matmul(plain, X.data(), n_tok, y_plain.data(), 1);
    matmul(pm.view(), X.data(), n_tok, y1.data(), 1);
    matmul(pm.view(), X.data(), n_tok, y2.data(), 2);
    EXPECT_EQ(0, std::memcmp(y1.data(), y2.data(), y1.size() * 4)) << n_tok << " tokens";
    for (size_t i = 0; i < y1.size(); ++i)
      EXPECT_NEAR(y1[i], y_plain[i], 1e-4f * (1 + std::fabs(y_plain[i])))
          << format_traits(L.format).name << ", " << n_tok << " tokens, element " << i;
  }
  }
}

TEST(PackedWeights, StalePackedCopyIsIgnored) {
  PackedModel pm;
  if (!can_pack(pm.view())) GTEST_SKIP() << "no AVX2 or LOWBIT_PACK=0";
  pack_weights_for_cpu(pm.m, 1);
  // A view copied from the packed one but pointing at other weights must use its own data.
  const auto other = quantize(FormatId::Q4_0, randn(size_t(pm.n_out * pm.n_in), 6, 0.05f), pm.n_out, pm.n_in);
  TensorView v = pm.view();
  v.data = other.data();
  TensorView plain = v;
  plain.packed = nullptr;
  const auto X = randn(size_t(pm.n_in), 1, 1.0f);
  std::vector<float> a(size_t(pm.n_out)), b(size_t(pm.n_out));
  matmul(v, X.data(), 1, a.data(), 1);
  matmul(plain, X.data(), 1, b.data(), 1);
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * 4));
}

TEST(PackedWeights, OnlyQ4_0AndQ8_0WithWholeGroupsArePacked) {
  PackedModel pm;
  if (!can_pack(pm.view())) GTEST_SKIP() << "no AVX2 or LOWBIT_PACK=0";
  TensorView odd = pm.view();
  odd.shape = {pm.n_out - 4, pm.n_in};  // 44 rows: not whole groups of 8
  EXPECT_FALSE(can_pack(odd));
  TensorView q8 = pm.view();
  q8.format = FormatId::Q8_0;
  q8.nbytes = size_t(pm.n_out) * row_bytes(FormatId::Q8_0, pm.n_in);
  EXPECT_TRUE(can_pack(q8));
  TensorView q4k = pm.view();
  q4k.format = FormatId::Q4_K;
  EXPECT_FALSE(can_pack(q4k));
}

// A whole model: stories260K quantized to q4_0 / q8_0 by lowbit, greedy
// generation with and without packing gives the same text.
class PackedGeneration : public ::testing::TestWithParam<const char*> {};

TEST_P(PackedGeneration, SameTextWithAndWithoutPacking) {
  const std::string gguf = temp_dir() + "/" + GetParam() + ".gguf";
  ASSERT_EQ(0, run_cli("quantize " + shared("models/stories260K/stories260K-f32.gguf") + " -o " + gguf +
                       " --type " + GetParam()).code);
  const std::string gen = " generate " + gguf + " -p \"Once upon a time\" -n 24 --temp 0 -t 2";
  const CmdResult packed = run_cli(gen);
  setenv("LOWBIT_PACK", "0", 1);
  const CmdResult plain = run_cli(gen);
  unsetenv("LOWBIT_PACK");
  ASSERT_EQ(0, packed.code) << packed.out;
  ASSERT_EQ(0, plain.code) << plain.out;
  // lowbit bench reports the repacked bytes.
  const std::string bench = " bench " + gguf + " -p 0 -n 2 -r 1 -t 1 --no-bandwidth";
  const CmdResult bench_packed = run_cli(bench);
  setenv("LOWBIT_PACK", "0", 1);
  const CmdResult bench_plain = run_cli(bench);
  unsetenv("LOWBIT_PACK");
  EXPECT_NE(bench_packed.out.find("packed   0.1 MiB"), std::string::npos) << bench_packed.out;
  EXPECT_NE(bench_plain.out.find("packed   0.0 MiB"), std::string::npos) << bench_plain.out;
  auto text = [](const std::string& out) { return out.substr(out.find("Once upon a time")); };
  EXPECT_EQ(text(packed.out).substr(0, 80), text(plain.out).substr(0, 80));
}
INSTANTIATE_TEST_SUITE_P(Formats, PackedGeneration, ::testing::Values("q4_0", "q8_0"));

}  // namespace
}  // namespace lowbit
