// Integer GEMM kernels (kernels/int8_gemm.h) and the w8a8 / w4a8 / llm.int8
// layers and quantizers (methods/w8a8.h, methods/llm_int8.h):
//   - every ISA's integer kernels == a plain int64 reference, exactly, over odd
//     shapes (k % 32 != 0, n_tok 1..33) and the saturation-prone extremes;
//   - float results of every ISA bit-identical to the reference ISA;
//   - golden quantization values worked out by hand;
//   - LLM.int8() routes exactly the columns whose max |x| >= threshold, equals the
//     decomposition recomputed in double, and stays within the derived error bound;
//   - W8A8 / W4A8 within their bounds; threshold inf / 0 = pure int8;
//   - identical at 1 and 2 threads; layout round trips; corrupt layouts throw.
#include <gtest/gtest.h>

#include "test_random.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "kernels/int8_gemm.h"
#include "lowbit/error.h"
#include "methods/llm_int8.h"
#include "methods/w8a8.h"

using namespace lowbit;

namespace {

using lowbit::test::SplitMix64;

std::vector<Int8Isa> supported_isas() {
  std::vector<Int8Isa> v;
  for (Int8Isa isa : {Int8Isa::Ref, Int8Isa::Avx2, Int8Isa::AvxVnni, Int8Isa::Avx512Vnni})
    if (int8_isa_supported(isa)) v.push_back(isa);
  return v;
}

std::vector<int8_t> random_i8(size_t n, SplitMix64& rng) {
  std::vector<int8_t> v(n);
  for (auto& x : v) x = int8_t(int(rng.next() % 255) - 127);  // [-127, 127]
  return v;
}

std::vector<float> random_f(size_t n, SplitMix64& rng, double sigma = 1.0) {
  std::vector<float> v(n);
  for (auto& x : v) x = float(sigma * rng.gauss());
  return v;
}

// ---------------------------------------------------------------- integer kernels
TEST(Int8Gemm, EveryIsaEqualsInt64ReferenceOnOddShapes) {
  SplitMix64 rng{101};
  for (Int8Isa isa : supported_isas()) {
    SCOPED_TRACE(int8_isa_name(isa));
    for (int64_t k : {1, 7, 31, 32, 33, 64, 65, 95, 128, 130, 257}) {
      for (int64_t n_out : {1, 3, 4, 5, 17}) {
        for (int n_tok : {1, 2, 3, 8, 33}) {
          const auto A = random_i8(size_t(n_tok * k), rng);
          const auto B = random_i8(size_t(n_out * k), rng);
          std::vector<int32_t> rsum(static_cast<size_t>(n_out));
          int8_row_sums(B.data(), n_out, k, rsum.data());
          std::vector<int32_t> C(size_t(n_tok * n_out), -1);
          gemm_i8_i32(A.data(), B.data(), rsum.data(), n_tok, n_out, k, C.data(), 2, isa);
          for (int t = 0; t < n_tok; ++t)
            for (int64_t o = 0; o < n_out; ++o) {
              int64_t s = 0;
              for (int64_t i = 0; i < k; ++i) s += int64_t(A[size_t(t * k + i)]) * B[size_t(o * k + i)];
              ASSERT_EQ(C[size_t(t * n_out + o)], s) << "k=" << k << " n_out=" << n_out << " t=" << t << " o=" << o;
            }
          if (n_tok == 1) {
            std::vector<int32_t> c(static_cast<size_t>(n_out));
            gemv_i8_i32(A.data(), B.data(), rsum.data(), n_out, k, c.data(), 1, isa);
            for (int64_t o = 0; o < n_out; ++o) ASSERT_EQ(c[size_t(o)], C[size_t(o)]);
          }
        }
      }
    }
  }
}

// +-127 everywhere: the largest maddubs pair sums (2 * 127 * 127 = 32258) and the
// largest VNNI offsets; any saturation or a wrong +128 correction shows here.
TEST(Int8Gemm, ExtremeValuesDoNotSaturate) {
  const int64_t k = 4096 + 37, n_out = 5;
  for (Int8Isa isa : supported_isas()) {
    SCOPED_TRACE(int8_isa_name(isa));
    for (int sa : {127, -127})
      for (int sb : {127, -127}) {
        std::vector<int8_t> A(static_cast<size_t>(k), int8_t(sa)), B(static_cast<size_t>(n_out * k), int8_t(sb));
        std::vector<int32_t> rsum(static_cast<size_t>(n_out));
        int8_row_sums(B.data(), n_out, k, rsum.data());
        std::vector<int32_t> C(static_cast<size_t>(n_out));
        gemm_i8_i32(A.data(), B.data(), rsum.data(), 1, n_out, k, C.data(), 1, isa);
        for (int32_t c : C) EXPECT_EQ(c, int32_t(int64_t(sa) * sb * k));
      }
    // int4: nibble 15 against +-127 in groups of 512 (16 steps of 32: the int16 partial
    // sums of the AVX2 kernels run to their limit of 8 steps, 8 * 3810).
    const Int8Kernels& kern = int8_kernels(isa);
    for (int sa : {127, -127}) {
      const int64_t k4 = 1024, gs = 512;
      std::vector<uint8_t> b(size_t(k4 / 2), 0xFF), n(static_cast<size_t>(k4), 15);
      std::vector<int8_t> a(size_t(4 * k4), int8_t(sa));
      std::vector<int32_t> out(8, 0);
      kern.dot_u4_i8_groups(b.data(), a.data(), k4, gs, out.data());
      EXPECT_EQ(out[0], 15 * sa * gs);
      EXPECT_EQ(out[1], 15 * sa * gs);
      kern.dot_u4_i8s_groups(b.data(), a.data(), k4, gs, out.data());
      EXPECT_EQ(out[0], 15 * sa * gs);
      EXPECT_EQ(out[1], 15 * sa * gs);
      kern.dot_n8_i8_groups_4tok(n.data(), a.data(), k4, k4, gs, out.data());
      for (int32_t v : out) EXPECT_EQ(v, 15 * sa * gs);
    }
  }
}

TEST(Int8Gemm, Int4GroupKernelsEqualReference) {
  SplitMix64 rng{202};
  for (Int8Isa isa : supported_isas()) {
    SCOPED_TRACE(int8_isa_name(isa));
    const Int8Kernels& kern = int8_kernels(isa);
    for (int64_t gs : {2, 6, 32, 34, 64, 96, 128, 258, 512}) {
      for (int64_t ng : {1, 2, 5}) {
        const int64_t k = gs * ng;
        std::vector<uint8_t> b(size_t(k / 2));
        for (auto& x : b) x = uint8_t(rng.next());
        // extremes first: nibble 15 with a = +-127
        b[0] = 0xFF;
        auto a = random_i8(size_t(k), rng);
        a[0] = 127;
        a[1] = -127;
        std::vector<int32_t> out(static_cast<size_t>(ng), -1);
        kern.dot_u4_i8_groups(b.data(), a.data(), k, gs, out.data());
        for (int64_t g = 0; g < ng; ++g) {
          int64_t s = 0;
          for (int64_t i = g * gs; i < (g + 1) * gs; ++i) s += int64_t((b[size_t(i / 2)] >> (4 * (i % 2))) & 0xF) * a[size_t(i)];
          ASSERT_EQ(out[size_t(g)], s) << "gs=" << gs << " g=" << g;
        }
        if (gs % 64 == 0) {  // split-order activations: the same sums
          std::vector<int8_t> as(static_cast<size_t>(k));
          split_even_odd_64(a.data(), k, as.data());
          std::vector<int32_t> outs(static_cast<size_t>(ng), -1);
          kern.dot_u4_i8s_groups(b.data(), as.data(), k, gs, outs.data());
          EXPECT_EQ(outs, out) << "split gs=" << gs;
        }
        // The unpacked-row, 4-token kernel; activation rows strided by lda = k + 3.
        std::vector<uint8_t> nib(static_cast<size_t>(k));
        for (int64_t i = 0; i < k; ++i) nib[size_t(i)] = (b[size_t(i / 2)] >> (4 * (i % 2))) & 0xF;
        const int64_t lda = k + 3;
        auto a4 = random_i8(size_t(4 * lda), rng);
        a4[0] = -127;
        std::vector<int32_t> out4(size_t(4 * ng), -1);
        kern.dot_n8_i8_groups_4tok(nib.data(), a4.data(), lda, k, gs, out4.data());
        for (int t = 0; t < 4; ++t)
          for (int64_t g = 0; g < ng; ++g) {
            int64_t s = 0;
            for (int64_t i = g * gs; i < (g + 1) * gs; ++i) s += int64_t(nib[size_t(i)]) * a4[size_t(t * lda + i)];
            ASSERT_EQ(out4[size_t(t * ng + g)], s) << "4tok gs=" << gs << " t=" << t << " g=" << g;
          }
      }
    }
  }
}

// Float outputs of the W8A8 / W4A8 products: every ISA bit-identical to the reference.
TEST(Int8Gemm, FloatProductsBitIdenticalAcrossIsas) {
  SplitMix64 rng{303};
  const int64_t k = 192, n_out = 37, gs = 64;
  for (int n_tok : {1, 5, 33}) {
    const auto X = random_f(size_t(n_tok * k), rng);
    std::vector<int8_t> Q(X.size());
    std::vector<float> sx(static_cast<size_t>(n_tok));
    quantize_activations_i8(X.data(), n_tok, k, nullptr, Q.data(), sx.data(), "test");
    std::vector<int32_t> asum(size_t(n_tok * (k / gs)));
    activation_group_sums(Q.data(), n_tok, k, gs, asum.data());
    const auto B8 = random_i8(size_t(n_out * k), rng);
    std::vector<int32_t> rsum(static_cast<size_t>(n_out));
    int8_row_sums(B8.data(), n_out, k, rsum.data());
    std::vector<uint8_t> B4(size_t(n_out * k / 2));
    for (auto& x : B4) x = uint8_t(rng.next());
    const auto sw8 = random_f(size_t(n_out), rng, 0.01);
    const auto sw4 = random_f(size_t(n_out * (k / gs)), rng, 0.1);
    std::vector<float> y8_ref(size_t(n_tok * n_out)), y4_ref(y8_ref.size());
    gemm_w8a8(Q.data(), sx.data(), B8.data(), sw8.data(), rsum.data(), n_tok, n_out, k, y8_ref.data(), 1, Int8Isa::Ref);
    gemm_w4a8(Q.data(), sx.data(), asum.data(), B4.data(), sw4.data(), n_tok, n_out, k, gs, y4_ref.data(), 1, Int8Isa::Ref);
    // W4A8 against the formula in double.
    for (int t = 0; t < n_tok; ++t)
      for (int64_t o = 0; o < n_out; ++o) {
        double acc = 0.0, mag = 0.0;
        for (int64_t i = 0; i < k; ++i) {
          const int nib = (B4[size_t(o * k / 2 + i / 2)] >> (4 * (i % 2))) & 0xF;
          const double v = double(Q[size_t(t * k + i)]) * (nib - 8) * sw4[size_t(o * (k / gs) + i / gs)];
          acc += v;
          mag += std::fabs(v);
        }
        EXPECT_NEAR(y4_ref[size_t(t * n_out + o)], acc * sx[size_t(t)], 1e-5 * mag * sx[size_t(t)] + 1e-30);
      }
    for (Int8Isa isa : supported_isas()) {
      SCOPED_TRACE(int8_isa_name(isa));
      std::vector<float> y8(y8_ref.size()), y4(y4_ref.size());
      gemm_w8a8(Q.data(), sx.data(), B8.data(), sw8.data(), rsum.data(), n_tok, n_out, k, y8.data(), 2, isa);
      gemm_w4a8(Q.data(), sx.data(), asum.data(), B4.data(), sw4.data(), n_tok, n_out, k, gs, y4.data(), 2, isa);
      EXPECT_EQ(0, std::memcmp(y8.data(), y8_ref.data(), y8.size() * sizeof(float)));
      EXPECT_EQ(0, std::memcmp(y4.data(), y4_ref.data(), y4.size() * sizeof(float)));
    }
  }
}

// ---------------------------------------------------------------- golden quantization
TEST(Int8Quant, ActivationGolden) {
  // amax 2 -> 127 / 2 = 63.5 exactly: 0.5 -> 31.75 -> 32; -1 -> -63.5 -> -64 (half to even);
  // 0.25 -> 15.875 -> 16; 2 -> 127. Skipped column 4 (value 100) gets 0 and is not in amax.
  const std::vector<float> X = {0.5f, -1.0f, 0.25f, 2.0f, 100.0f};
  std::vector<int8_t> Q(5);
  float sx = 0.0f;
  const uint8_t skip[5] = {0, 0, 0, 0, 1};
  quantize_activations_i8(X.data(), 1, 5, skip, Q.data(), &sx, "test");
  EXPECT_EQ(std::vector<int8_t>(Q.begin(), Q.end()), (std::vector<int8_t>{32, -64, 16, 127, 0}));
  EXPECT_EQ(sx, 2.0f / 127.0f);
  // A zero row: scale 0, codes 0.
  const std::vector<float> Z(5, 0.0f);
  quantize_activations_i8(Z.data(), 1, 5, nullptr, Q.data(), &sx, "test");
  EXPECT_EQ(sx, 0.0f);
  for (int8_t q : Q) EXPECT_EQ(q, 0);
  // A denormal row: 127 / amax overflows float, the codes must still be right.
  const std::vector<float> tiny = {1e-40f, -3e-41f, 0.0f, 0.0f, 0.0f};
  quantize_activations_i8(tiny.data(), 1, 5, nullptr, Q.data(), &sx, "test");
  EXPECT_EQ(Q[0], 127);
  EXPECT_EQ(Q[1], -38);  // -3e-41 / 1e-40 * 127 = -38.1 (up to the denormals' 1e-5 relative spacing)
  std::vector<float> bad = X;
  bad[2] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(quantize_activations_i8(bad.data(), 1, 5, nullptr, Q.data(), &sx, "test"), lowbit::Error);
}

TEST(Int8Quant, WeightGolden) {
  // int8: absmax 127 -> code = round(w): 127, -63.5 -> -64, 31.5 -> 32, 0.5 -> 0 (half to even).
  const std::vector<float> W8 = {127.0f, -63.5f, 31.5f, 0.5f};
  std::vector<int8_t> q;
  std::vector<float> a;
  quantize_rows_int8("w", W8.data(), 1, 4, q, a);
  EXPECT_EQ(q, (std::vector<int8_t>{127, -64, 32, 0}));
  EXPECT_EQ(a, (std::vector<float>{127.0f}));
  // int4: absmax 3.5, scale 0.5, code = round(2w): 7, -2.5 -> -2, 1.5 -> 2, 0 -> nibbles 15, 6, 10, 8.
  const std::vector<float> W4 = {3.5f, -1.25f, 0.75f, 0.0f};
  std::vector<uint8_t> p;
  std::vector<float> s;
  quantize_groups_int4("w", W4.data(), 1, 4, 4, p, s);
  EXPECT_EQ(p, (std::vector<uint8_t>{0x6F, 0x8A}));
  EXPECT_EQ(s, (std::vector<float>{0.5f}));
  Int8Linear l(1, 4, 4, p, s);
  std::vector<float> d(4);
  l.dequantize_rows(0, 1, d.data());
  EXPECT_EQ(d, (std::vector<float>{3.5f, -1.0f, 1.0f, 0.0f}));
  const std::vector<float> nan_w = {1.0f, std::numeric_limits<float>::infinity()};
  EXPECT_THROW(quantize_rows_int8("w", nan_w.data(), 1, 2, q, a), lowbit::Error);
}

// ---------------------------------------------------------------- layers vs fp32
struct Case {
  int64_t n_out, n_in;
  int n_tok;
  std::vector<float> W, X;  // [n_out, n_in], [n_tok, n_in]
};

Case make_case(int64_t n_out, int64_t n_in, int n_tok, uint64_t seed) {
  SplitMix64 rng{seed};
  Case c{n_out, n_in, n_tok, random_f(size_t(n_out * n_in), rng, 0.05), {}};
  c.X.resize(size_t(n_tok) * size_t(n_in));
  for (auto& x : c.X) x = float(std::clamp(rng.gauss(), -3.0, 3.0));  // all below threshold 6
  return c;
}

QuantConfig cfg_for(const std::string& method) {
  QuantConfig c;
  c.method = method;
  c.bits = method == "w4a8" ? 4 : 8;
  c.group_size = method == "w4a8" ? 32 : -1;
  return c;
}

// Error bound of an activation-quantized product against X · W^T (in double):
// |y - y_ref| <= sum_i |x_i| |w_i - wd_i| + sum_{i not outlier} |x_i - xq_i| |wd_i| + rounding,
// with |w - wd| <= s_w / 2 (round to nearest, no clamping since |w| <= absmax) and
// |x - xq| <= amax_t / 254 (amax over the int8 columns). wd = the layer's dequantized weights.
void expect_within_bound(const QLinear& q, const Case& c, const std::vector<float>& Y, const std::vector<uint8_t>& outlier) {
  std::vector<float> Wd(c.W.size());
  q.dequantize_rows(0, c.n_out, Wd.data());
  for (int t = 0; t < c.n_tok; ++t) {
    const float* x = c.X.data() + int64_t(t) * c.n_in;
    double amax = 0.0;
    for (int64_t i = 0; i < c.n_in; ++i)
      if (outlier.empty() || !outlier[size_t(i)]) amax = std::max(amax, double(std::fabs(x[i])));
    for (int64_t o = 0; o < c.n_out; ++o) {
      double ref = 0.0, bound = 0.0, mag = 0.0;
      for (int64_t i = 0; i < c.n_in; ++i) {
        const double w = c.W[size_t(o * c.n_in + i)], wd = Wd[size_t(o * c.n_in + i)];
        ref += double(x[i]) * w;
        bound += std::fabs(x[i]) * std::fabs(w - wd);  // |w - wd| itself (<= s_w / 2, checked below)
        if (outlier.empty() || !outlier[size_t(i)]) bound += amax / 254.0 * std::fabs(wd);
        mag += std::fabs(x[i]) * std::fabs(wd);
      }
      bound += 1e-5 * mag + 1e-6;
      ASSERT_LE(std::fabs(Y[size_t(t * c.n_out + o)] - ref), bound) << "t=" << t << " o=" << o;
    }
  }
}

// |w - wd| <= half a step, for the int8 modes' per-row scale.
void expect_weight_error_half_step(const Int8Linear& q, const Case& c) {
  std::vector<float> Wd(c.W.size());
  q.dequantize_rows(0, c.n_out, Wd.data());
  const int64_t gs = q.group_size(), ng = c.n_in / gs;
  for (int64_t o = 0; o < c.n_out; ++o)
    for (int64_t i = 0; i < c.n_in; ++i) {
      const double s = q.scales()[size_t(o * ng + i / gs)];
      ASSERT_LE(std::fabs(double(c.W[size_t(o * c.n_in + i)]) - Wd[size_t(o * c.n_in + i)]), 0.5 * s * (1 + 1e-6) + 1e-12);
    }
}

TEST(Int8Layers, W8A8AndW4A8WithinBounds) {
  const Case c = make_case(29, 96, 7, 11);
  for (const char* m : {"w8a8", "w4a8"}) {
    SCOPED_TRACE(m);
    const std::unique_ptr<Quantizer> qzp = std::string(m) == "w8a8" ? make_w8a8_quantizer() : make_w4a8_quantizer();
    const Quantizer& qz = *qzp;
    const auto ql = qz.quantize_linear("blk.0.ffn_up.weight", c.W.data(), c.n_out, c.n_in, cfg_for(m), nullptr);
    const auto& q = dynamic_cast<const Int8Linear&>(*ql);
    EXPECT_TRUE(q.quantizes_activations());
    expect_weight_error_half_step(q, c);
    std::vector<float> Y(size_t(c.n_tok * c.n_out));
    q.matmul(c.X.data(), c.n_tok, Y.data(), 2);
    expect_within_bound(q, c, Y, {});
    EXPECT_DOUBLE_EQ(qz.bits_per_weight(cfg_for(m), c.n_out, c.n_in), q.bits_per_weight());
  }
}

TEST(Int8Layers, LlmInt8RoutesExactlyTheOutlierColumns) {
  Case c = make_case(23, 80, 6, 12);
  // Planted: col 3 = 8 (token 0), col 17 = -7.5 (token 5), col 40 = exactly 6.0 (>= threshold),
  // col 41 = 5.99 (not an outlier), col 79 = 1000 (last column).
  c.X[size_t(0 * 80 + 3)] = 8.0f;
  c.X[size_t(5 * 80 + 17)] = -7.5f;
  c.X[size_t(2 * 80 + 40)] = 6.0f;
  c.X[size_t(3 * 80 + 41)] = 5.99f;
  c.X[size_t(4 * 80 + 79)] = 1000.0f;
  const std::vector<int64_t> expect = {3, 17, 40, 79};
  auto qz = make_llm_int8_quantizer();
  QuantConfig cfg = cfg_for("llm.int8");
  cfg.threshold = 6.0f;
  const auto ql = qz->quantize_linear("blk.0.attn_q.weight", c.W.data(), c.n_out, c.n_in, cfg, nullptr);
  const auto& q = dynamic_cast<const Int8Linear&>(*ql);
  EXPECT_EQ(q.outlier_columns_of(c.X.data(), c.n_tok), expect);
  expect_weight_error_half_step(q, c);

  std::vector<float> Y(size_t(c.n_tok * c.n_out));
  q.matmul(c.X.data(), c.n_tok, Y.data(), 2);
  EXPECT_EQ(q.calls(), 1u);
  EXPECT_EQ(q.outlier_columns(), 4u);
  EXPECT_DOUBLE_EQ(q.outlier_share(), 4.0 / 80.0);

  std::vector<uint8_t> outlier(80, 0);
  for (int64_t col : expect) outlier[size_t(col)] = 1;
  expect_within_bound(q, c, Y, outlier);

  // The decomposition recomputed independently in double: f32 columns with the
  // dequantized weights + the int8 columns quantized by their own absmax.
  std::vector<float> Wd(c.W.size());
  q.dequantize_rows(0, c.n_out, Wd.data());
  for (int t = 0; t < c.n_tok; ++t) {
    const float* x = c.X.data() + t * 80;
    double amax = 0.0;
    for (int i = 0; i < 80; ++i)
      if (!outlier[size_t(i)]) amax = std::max(amax, double(std::fabs(x[i])));
    for (int64_t o = 0; o < c.n_out; ++o) {
      double y = 0.0, mag = 0.0;
      for (int i = 0; i < 80; ++i) {
        const double wd = Wd[size_t(o * 80 + i)];
        const double xi = outlier[size_t(i)] ? double(x[i]) : std::nearbyint(double(x[i]) * (127.0 / amax)) * amax / 127.0;
        y += xi * wd;
        mag += std::fabs(xi * wd);
      }
      EXPECT_NEAR(Y[size_t(t * c.n_out + o)], y, 1e-5 * mag + 1e-6) << "t=" << t << " o=" << o;
    }
  }
  // A second call with no outliers: the share halves in columns per call.
  const Case calm = make_case(23, 80, 3, 13);
  q.matmul(calm.X.data(), calm.n_tok, Y.data(), 1);
  EXPECT_EQ(q.calls(), 2u);
  EXPECT_DOUBLE_EQ(q.outlier_share(), 4.0 / 160.0);
  q.reset_outlier_stats();
  EXPECT_EQ(q.outlier_share(), 0.0);
}

TEST(Int8Layers, InfiniteOrZeroThresholdIsThePureInt8Path) {
  Case c = make_case(19, 64, 5, 14);
  c.X[7] = 50.0f;  // would be an outlier at threshold 6
  auto qz = make_llm_int8_quantizer();
  for (float thr : {std::numeric_limits<float>::infinity(), 0.0f}) {
    QuantConfig cfg = cfg_for("llm.int8");
    cfg.threshold = thr;
    const auto ql = qz->quantize_linear("x", c.W.data(), c.n_out, c.n_in, cfg, nullptr);
    const auto& q = dynamic_cast<const Int8Linear&>(*ql);
    EXPECT_TRUE(q.outlier_columns_of(c.X.data(), c.n_tok).empty());
    // The same codes and scales as a w8a8 layer give the same bits.
    Int8Linear w8(Int8Mode::W8A8, c.n_out, c.n_in, q.codes8(), q.scales(), 0.0f);
    std::vector<float> Y(size_t(c.n_tok * c.n_out)), Y8(Y.size());
    q.matmul(c.X.data(), c.n_tok, Y.data(), 2);
    w8.matmul(c.X.data(), c.n_tok, Y8.data(), 2);
    EXPECT_EQ(0, std::memcmp(Y.data(), Y8.data(), Y.size() * sizeof(float)));
    EXPECT_EQ(q.outlier_columns(), 0u);
  }
}

TEST(Int8Layers, IdenticalAtOneAndTwoThreads) {
  Case c = make_case(70, 256, 33, 15);
  c.X[5] = 9.0f;
  c.X[300] = -12.0f;
  for (const char* m : {"w8a8", "w4a8", "llm.int8"}) {
    SCOPED_TRACE(m);
    std::unique_ptr<Quantizer> qz = std::string(m) == "w8a8" ? make_w8a8_quantizer()
                                    : std::string(m) == "w4a8" ? make_w4a8_quantizer() : make_llm_int8_quantizer();
    const auto q = qz->quantize_linear("x", c.W.data(), c.n_out, c.n_in, cfg_for(m), nullptr);
    for (int n_tok : {1, 33}) {
      std::vector<float> Y1(size_t(n_tok * c.n_out)), Y2(Y1.size());
      q->matmul(c.X.data(), n_tok, Y1.data(), 1);
      q->matmul(c.X.data(), n_tok, Y2.data(), 2);
      EXPECT_EQ(0, std::memcmp(Y1.data(), Y2.data(), Y1.size() * sizeof(float)));
    }
  }
}

TEST(Int8Layers, NamesPermutationAndMetadata) {
  const Case c = make_case(6, 64, 2, 16);
  auto l8 = make_llm_int8_quantizer()->quantize_linear("x", c.W.data(), 6, 64, cfg_for("llm.int8"), nullptr);
  auto w8 = make_w8a8_quantizer()->quantize_linear("x", c.W.data(), 6, 64, cfg_for("w8a8"), nullptr);
  QuantConfig g128 = cfg_for("w4a8");
  g128.group_size = 32;
  auto w4 = make_w4a8_quantizer()->quantize_linear("x", c.W.data(), 6, 64, g128, nullptr);
  EXPECT_EQ(l8->type_name(), "llm.int8");
  EXPECT_EQ(l8->describe(), "weights=qint8, activations=qint8, threshold=6.0");
  EXPECT_EQ(w8->type_name(), "w8a8");
  EXPECT_EQ(w4->type_name(), "w4a8g32");
  EXPECT_EQ(w8->nbytes(), size_t(6 * 64 + 6 * 4));
  EXPECT_EQ(w4->nbytes(), size_t(6 * 32 + 6 * 2 * 4));
  EXPECT_DOUBLE_EQ(make_w4a8_quantizer()->bits_per_weight(g128, 6, 64), 5.0);
  EXPECT_DOUBLE_EQ(make_llm_int8_quantizer()->bits_per_weight(cfg_for("llm.int8"), 6, 64), 8.5);
  const std::vector<int64_t> perm = {3, 0, 5, 1, 4, 2};
  for (const auto& q : {l8, w8, w4}) {
    SCOPED_TRACE(q->type_name());
    auto p = q->with_rows_permuted(perm);
    ASSERT_NE(p, nullptr);
    std::vector<float> a(64), b(64);
    for (int r = 0; r < 6; ++r) {
      p->dequantize_rows(r, 1, a.data());
      q->dequantize_rows(perm[size_t(r)], 1, b.data());
      EXPECT_EQ(a, b);
    }
    std::vector<float> Y(12), Yp(12);
    q->matmul(c.X.data(), 2, Y.data(), 1);
    p->matmul(c.X.data(), 2, Yp.data(), 1);
    for (int t = 0; t < 2; ++t)
      for (int r = 0; r < 6; ++r) EXPECT_EQ(Yp[size_t(t * 6 + r)], Y[size_t(t * 6 + perm[size_t(r)])]);
  }
}

TEST(Int8Layers, ValidateRejectsWhatTheMethodCannotDo) {
  QuantConfig c = cfg_for("w8a8");
  c.bits = 4;
  EXPECT_THROW(make_w8a8_quantizer()->validate(c), lowbit::Error);
  c = cfg_for("w4a8");
  c.group_size = 3;
  EXPECT_THROW(make_w4a8_quantizer()->validate(c), lowbit::Error);
  c = cfg_for("llm.int8");
  c.threshold = -1.0f;
  EXPECT_THROW(make_llm_int8_quantizer()->validate(c), lowbit::Error);
  c.threshold = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(make_llm_int8_quantizer()->validate(c), lowbit::Error);
  const Case bad = make_case(4, 30, 1, 17);  // 30 % 32 != 0
  EXPECT_THROW(make_w4a8_quantizer()->quantize_linear("blk.0.x", bad.W.data(), 4, 30, cfg_for("w4a8"), nullptr), lowbit::Error);
  std::vector<float> X(30, std::numeric_limits<float>::quiet_NaN()), Y(4);
  auto q = make_w8a8_quantizer()->quantize_linear("x", bad.W.data(), 4, 30, cfg_for("w8a8"), nullptr);
  EXPECT_THROW(q->matmul(X.data(), 1, Y.data(), 1), lowbit::Error);
}

// ---------------------------------------------------------------- layouts
struct Parts {
  std::vector<HfModuleTensor> tensors;
  std::vector<TensorView> views;
  std::map<std::string, const TensorView*> map() {
    views.clear();
    views.reserve(tensors.size());
    for (const auto& t : tensors)
      views.push_back(TensorView{t.suffix, t.dtype, t.shape, t.bytes.data(), t.bytes.size()});
    std::map<std::string, const TensorView*> m;
    for (const auto& v : views) m[v.name] = &v;
    return m;
  }
  HfModuleTensor& get(const std::string& s) {
    for (auto& t : tensors)
      if (t.suffix == s) return t;
    throw std::runtime_error("no " + s);
  }
};

TEST(Int8Layout, RoundTripsAreExact) {
  const Case c = make_case(12, 64, 3, 18);
  for (const char* m : {"llm.int8", "w8a8", "w4a8"}) {
    SCOPED_TRACE(m);
    std::unique_ptr<Quantizer> qz = std::string(m) == "w8a8" ? make_w8a8_quantizer()
                                    : std::string(m) == "w4a8" ? make_w4a8_quantizer() : make_llm_int8_quantizer();
    const QuantConfig cfg = cfg_for(m);
    const auto q = qz->quantize_linear("x", c.W.data(), 12, 64, cfg, nullptr);
    Parts p{qz->hf_module_tensors(*q, cfg), {}};
    for (const auto& t : p.tensors) {
      size_t n = 1;
      for (int64_t d : t.shape) n *= size_t(d);
      EXPECT_EQ(t.bytes.size(), n * dtype_size(t.dtype)) << t.suffix;
      const auto mods = qz->hf_module_suffixes();
      EXPECT_NE(std::find(mods.begin(), mods.end(), t.suffix), mods.end()) << t.suffix;
    }
    const auto back = qz->load_hf_module(cfg, p.map(), 12, 64, "model.safetensors: layers.0.mlp.up_proj");
    std::vector<float> a(12 * 64), b(a.size());
    q->dequantize_rows(0, 12, a.data());
    back->dequantize_rows(0, 12, b.data());
    EXPECT_EQ(a, b);
    std::vector<float> Y(36), Yb(36);
    q->matmul(c.X.data(), 3, Y.data(), 1);
    back->matmul(c.X.data(), 3, Yb.data(), 1);
    EXPECT_EQ(Y, Yb);
    EXPECT_EQ(back->type_name(), q->type_name());
    // Written again: the same bytes.
    const auto again = qz->hf_module_tensors(*back, cfg);
    ASSERT_EQ(again.size(), p.tensors.size());
    for (size_t i = 0; i < again.size(); ++i) EXPECT_EQ(again[i].bytes, p.tensors[i].bytes) << again[i].suffix;
  }
  // bitsandbytes' names and weight_format 0 ("row").
  auto qz = make_llm_int8_quantizer();
  const auto q = qz->quantize_linear("x", c.W.data(), 12, 64, cfg_for("llm.int8"), nullptr);
  Parts p{qz->hf_module_tensors(*q, cfg_for("llm.int8")), {}};
  EXPECT_EQ(p.get("weight").dtype, DType::I8);
  EXPECT_EQ(p.get("SCB").shape, std::vector<int64_t>{12});
  EXPECT_EQ(p.get("weight_format").bytes, std::vector<uint8_t>{0});
  EXPECT_EQ(qz->hf_marker_suffixes(), std::vector<std::string>{"SCB"});
  // SCB as f16 (a checkpoint cast after quantization): read and converted; SCB values
  // 1, 0.5 in f16 are 0x3C00, 0x3800.
  {
    const std::vector<float> W = {1.0f, -0.5f, 0.25f, 0.5f, 0.0f, -0.25f};  // [2, 3]
    const auto q2 = qz->quantize_linear("x", W.data(), 2, 3, cfg_for("llm.int8"), nullptr);
    Parts p2{qz->hf_module_tensors(*q2, cfg_for("llm.int8")), {}};
    p2.get("SCB").dtype = DType::F16;
    p2.get("SCB").bytes = {0x00, 0x3C, 0x00, 0x38};
    const auto back = qz->load_hf_module(cfg_for("llm.int8"), p2.map(), 2, 3, "m");
    std::vector<float> a(6), b(6);
    q2->dequantize_rows(0, 2, a.data());
    back->dequantize_rows(0, 2, b.data());
    EXPECT_EQ(a, b);
  }
}

// Expects load_hf_module to throw lowbit::Error whose message names `needle`.
void expect_load_error(const Quantizer& qz, const QuantConfig& cfg, Parts& p, int64_t n_out, int64_t n_in,
                       const std::string& needle) {
  try {
    qz.load_hf_module(cfg, p.map(), n_out, n_in, "f.safetensors: m");
    ADD_FAILURE() << "no error; expected one naming " << needle;
  } catch (const lowbit::Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(Int8Layout, CorruptLayoutsThrow) {
  const Case c = make_case(8, 64, 1, 19);
  for (const char* m : {"llm.int8", "w8a8", "w4a8"}) {
    SCOPED_TRACE(m);
    std::unique_ptr<Quantizer> qz = std::string(m) == "w8a8" ? make_w8a8_quantizer()
                                    : std::string(m) == "w4a8" ? make_w4a8_quantizer() : make_llm_int8_quantizer();
    const QuantConfig cfg = cfg_for(m);
    const auto q = qz->quantize_linear("x", c.W.data(), 8, 64, cfg, nullptr);
    const auto good = qz->hf_module_tensors(*q, cfg);
    const std::string wname = good[0].suffix, sname = good[1].suffix;
    {  // missing scales
      Parts p{good, {}};
      p.tensors.erase(p.tensors.begin() + 1);
      expect_load_error(*qz, cfg, p, 8, 64, sname);
    }
    {  // wrong dtype
      Parts p{good, {}};
      p.get(wname).dtype = DType::F16;
      p.get(wname).bytes.resize(p.get(wname).bytes.size() * 2);
      expect_load_error(*qz, cfg, p, 8, 64, wname);
    }
    {  // wrong shape (the module's n_out says 9)
      Parts p{good, {}};
      expect_load_error(*qz, cfg, p, 9, 64, wname);
    }
    {  // truncated
      Parts p{good, {}};
      p.get(sname).bytes.resize(p.get(sname).bytes.size() - 4);
      expect_load_error(*qz, cfg, p, 8, 64, sname);
    }
    {  // NaN scale
      Parts p{good, {}};
      const float nan = std::numeric_limits<float>::quiet_NaN();
      std::memcpy(p.get(sname).bytes.data() + 4, &nan, 4);
      expect_load_error(*qz, cfg, p, 8, 64, sname);
    }
    if (std::string(m) != "w4a8") {  // code -128
      Parts p{good, {}};
      p.get(wname).bytes[17] = 0x80;
      expect_load_error(*qz, cfg, p, 8, 64, wname);
    } else {  // group_size in the config does not match the scales
      Parts p{good, {}};
      QuantConfig other = cfg;
      other.group_size = 16;
      expect_load_error(*qz, other, p, 8, 64, sname);
    }
  }
  auto qz = make_llm_int8_quantizer();
  const auto q = qz->quantize_linear("x", c.W.data(), 8, 64, cfg_for("llm.int8"), nullptr);
  Parts p{qz->hf_module_tensors(*q, cfg_for("llm.int8")), {}};
  p.get("weight_format").bytes[0] = 2;  // col_turing
  expect_load_error(*qz, cfg_for("llm.int8"), p, 8, 64, "weight_format");
  p.get("weight_format").bytes[0] = 0;
  p.get("weight_format").dtype = DType::I32;
  expect_load_error(*qz, cfg_for("llm.int8"), p, 8, 64, "weight_format");
}

}  // namespace
