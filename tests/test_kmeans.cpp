// k-means codebook quantization (methods/kmeans.h): the 1-D weighted Lloyd fit
// (hand-computed golden fit, objective never increasing, exactness with few
// distinct values, importance weighting), the KmeansLinear layer (packing
// golden, AVX2 LUT kernel == scalar kernel, matmul == f32 product of the
// dequantized weight, thread-count independence, row permutation), the
// quantizer (bits per weight, validation, layout round trip, corrupt layouts)
// and quality against int4 RTN on Gaussian data and stories260K weights.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "core/half.h"
#include "io/model_loader.h"
#include "kernels/dispatch.h"
#include "lowbit/error.h"
#include "methods/int_groups.h"
#include "methods/kmeans.h"
#include "paths.h"
#include "quant/method_quantize.h"
#include "test_random.h"

using namespace lowbit;

namespace {

using lowbit::test::SplitMix64;

std::vector<float> gaussian(size_t n, uint64_t seed, double sd = 1.0) {
  SplitMix64 rng{seed};
  std::vector<float> v(n);
  for (auto& x : v) x = float(sd * rng.gauss());
  return v;
}

std::vector<float> dequantize(const QLinear& q) {
  std::vector<float> w(size_t(q.n_out() * q.n_in()));
  q.dequantize_rows(0, q.n_out(), w.data());
  return w;
}

// sqrt(sum_ij imp_j (a_ij - b_ij)^2 / sum_ij imp_j); imp nullptr = 1.
double weighted_rmse(const std::vector<float>& a, const std::vector<float>& b, int64_t n_in, const float* imp) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double w = imp ? imp[i % size_t(n_in)] : 1.0;
    num += w * (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += w;
  }
  return std::sqrt(num / den);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

// ------------------------------------------------------------------ the 1-D fit

TEST(KmeansFit, HandComputedWeightedExample) {
  // x = {0, 1, 4, 5}, w = {1, 3, 1, 1}, k = 2. Weighted quantiles 1/4, 3/4 of the
  // total 6 (targets 1.5, 4.5) start at {1, 4}; clusters {0, 1} | {4, 5}; means
  // (0*1 + 1*3) / 4 = 0.75 and 4.5; the midpoint 2.625 keeps the clusters.
  const float x[] = {5, 0, 4, 1}, w[] = {1, 1, 1, 3};
  const KmeansFit f = kmeans_fit_1d(x, w, 4, 2, 30, true);
  ASSERT_EQ(f.centroids.size(), 2u);
  EXPECT_FLOAT_EQ(f.centroids[0], 0.75f);
  EXPECT_FLOAT_EQ(f.centroids[1], 4.5f);
  EXPECT_EQ(f.codes, (std::vector<uint8_t>{1, 0, 1, 0}));
  EXPECT_TRUE(f.converged);
  EXPECT_EQ(f.iterations, 1);
  ASSERT_EQ(f.objective.size(), 2u);
  EXPECT_DOUBLE_EQ(f.objective[0], 1.0 + 0.0 + 0.0 + 1.0);  // init {1, 4}: (0-1)^2 + (5-4)^2
  EXPECT_DOUBLE_EQ(f.objective[1], 0.5625 + 3 * 0.0625 + 0.25 + 0.25);
}

TEST(KmeansFit, ObjectiveNeverIncreases) {
  SplitMix64 rng{11};
  for (int trial = 0; trial < 24; ++trial) {
    const int k = 1 << (1 + trial % 4);  // 2, 4, 8, 16
    const int64_t n = 64 + 97 * (trial % 5);
    std::vector<float> x(static_cast<size_t>(n)), w(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      // heavy tails and repeated values, so clusters move, empty and re-fill
      double g = rng.gauss();
      if (rng.uniform() < 0.05) g *= 8.0;
      if (trial % 3 == 0) g = std::round(g * 4.0) / 4.0;
      x[size_t(i)] = float(g);
      w[size_t(i)] = trial % 2 ? float(std::exp(rng.gauss())) : (rng.uniform() < 0.2 ? 0.0f : 1.0f);
    }
    const KmeansFit f = kmeans_fit_1d(x.data(), w.data(), n, k, 100, true);
    ASSERT_EQ(f.objective.size(), size_t(f.iterations) + 1);
    EXPECT_GE(f.iterations, 1);
    for (size_t i = 1; i < f.objective.size(); ++i)
      EXPECT_LE(f.objective[i], f.objective[i - 1] * (1.0 + 1e-12)) << "trial " << trial << " iteration " << i;
    // The returned codes are the nearest centroids (Lloyd's fixed point when converged).
    double J = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      const float c = f.centroids[f.codes[size_t(i)]];
      for (float other : f.centroids) EXPECT_LE(std::fabs(x[size_t(i)] - c), std::fabs(x[size_t(i)] - other) + 1e-6f);
      J += double(w[size_t(i)]) * (double(x[size_t(i)]) - c) * (double(x[size_t(i)]) - c);
    }
    EXPECT_NEAR(J, f.objective.back(), 1e-5 * (1.0 + J));
    EXPECT_TRUE(std::is_sorted(f.centroids.begin(), f.centroids.end()));
  }
}

TEST(KmeansFit, IterationCapAndDeterminism) {
  const std::vector<float> x = gaussian(500, 3);
  const KmeansFit a = kmeans_fit_1d(x.data(), nullptr, 500, 16, 2, true);
  EXPECT_LE(a.iterations, 2);
  const KmeansFit b = kmeans_fit_1d(x.data(), nullptr, 500, 16, 2, false);
  EXPECT_EQ(a.centroids, b.centroids);
  EXPECT_EQ(a.codes, b.codes);
  EXPECT_TRUE(b.objective.empty());
  const KmeansFit z = kmeans_fit_1d(x.data(), nullptr, 500, 16, 0, true);
  EXPECT_EQ(z.iterations, 0);
  EXPECT_EQ(z.objective.size(), 1u);
}

TEST(Kmeans, ExactWhenCodebookCoversDistinctValues) {
  // Every row draws from at most 2^b distinct f16-representable values.
  for (int bits : {2, 3, 4}) {
    const int K = 1 << bits;
    const int64_t n_out = 6, n_in = 96;
    SplitMix64 rng{uint64_t(bits)};
    std::vector<float> W(size_t(n_out * n_in));
    for (int64_t o = 0; o < n_out; ++o) {
      std::vector<float> levels(size_t(K - (o % 2)));  // some rows have fewer values than K
      for (auto& l : levels) l = float(std::round(rng.gauss() * 64.0) / 128.0);
      for (int64_t i = 0; i < n_in; ++i) W[size_t(o * n_in + i)] = levels[size_t(rng.next() % levels.size())];
    }
    for (int group : {-1, 32}) {
      auto q = kmeans_quantize("w", W.data(), n_out, n_in, bits, group, nullptr, 30, 1);
      EXPECT_EQ(dequantize(*q), W) << "bits " << bits << " group " << group;
    }
  }
}

TEST(Kmeans, ImportanceFavoursHeavyColumns) {
  const int64_t n_out = 16, n_in = 256;
  const std::vector<float> W = gaussian(size_t(n_out * n_in), 21);
  std::vector<float> flat(size_t(n_in), 1.0f), heavy(size_t(n_in), 1.0f);
  for (int64_t i = 0; i < 32; ++i) heavy[size_t(i * 8)] = 100.0f;  // every 8th column matters 100x
  auto err_on_heavy = [&](const float* imp) {
    const std::vector<float> D = dequantize(*kmeans_quantize("w", W.data(), n_out, n_in, 2, -1, imp, 30, 1));
    double e = 0.0;
    for (int64_t o = 0; o < n_out; ++o)
      for (int64_t i = 0; i < n_in; i += 8) e += std::pow(double(W[size_t(o * n_in + i)]) - D[size_t(o * n_in + i)], 2);
    return std::make_pair(e, weighted_rmse(W, D, n_in, heavy.data()));
  };
  const auto [e_flat, w_flat] = err_on_heavy(flat.data());
  const auto [e_heavy, w_heavy] = err_on_heavy(heavy.data());
  const auto [e_none, w_none] = err_on_heavy(nullptr);
  EXPECT_EQ(e_flat, e_none);          // unit importance == no importance
  EXPECT_LT(e_heavy, 0.85 * e_flat);  // measured 0.73
  EXPECT_LT(w_heavy, w_flat);
}

// ------------------------------------------------------------------ layer

TEST(KmeansLinear, PackingGolden) {
  // 2 rows x 8 values, 4-bit: byte j = value 2j (low nibble) | value 2j+1 (high nibble).
  std::vector<uint8_t> codes = {0x10, 0x32, 0x54, 0x76, 0xEF, 0xCD, 0xAB, 0x89};
  std::vector<uint16_t> cb(32);
  for (int j = 0; j < 32; ++j) cb[size_t(j)] = f32_to_f16(float(j) * 0.5f - 4.0f);
  KmeansLinear q(2, 8, 4, -1, codes, cb);
  const std::vector<float> D = dequantize(q);
  const int want_codes[16] = {0, 1, 2, 3, 4, 5, 6, 7, 15, 14, 13, 12, 11, 10, 9, 8};
  for (int i = 0; i < 16; ++i) {
    EXPECT_EQ(q.code(i / 8, i % 8), want_codes[i]);
    EXPECT_EQ(D[size_t(i)], float((i / 8) * 16 + want_codes[i]) * 0.5f - 4.0f);
  }
  // 3-bit, LSB-first bit stream across bytes: values 0..7 = 5,3,7,0,1,6,2,4
  // byte 0 = v0 | v1 << 3 | (v2 & 3) << 6 = 0xDD, byte 1 = v2 >> 2 | v3 << 1 | v4 << 4 | (v5 & 1) << 7 = 0x11,
  // byte 2 = v5 >> 1 | v6 << 2 | v7 << 5 = 0x8B.
  const int v3[8] = {5, 3, 7, 0, 1, 6, 2, 4};
  uint32_t stream = 0;
  for (int i = 0; i < 8; ++i) stream |= uint32_t(v3[i]) << (3 * i);
  std::vector<uint8_t> c3 = {uint8_t(stream), uint8_t(stream >> 8), uint8_t(stream >> 16)};
  EXPECT_EQ(c3, (std::vector<uint8_t>{0xDD, 0x11, 0x8B}));  // worked out by hand above
  std::vector<uint16_t> cb3(8);
  for (int j = 0; j < 8; ++j) cb3[size_t(j)] = f32_to_f16(float(j));
  KmeansLinear q3(1, 8, 3, -1, c3, cb3);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(q3.code(0, i), v3[i]);
  EXPECT_EQ(dequantize(q3), (std::vector<float>{5, 3, 7, 0, 1, 6, 2, 4}));
  EXPECT_EQ(q.type_name(), "kmeans4");
  EXPECT_EQ(q.describe(), "kmeans, bits=4, group_size=row");
  EXPECT_EQ(KmeansLinear(1, 128, 3, 64, std::vector<uint8_t>(48), std::vector<uint16_t>(16)).type_name(), "kmeans3g64");
  EXPECT_EQ(qlinear_repr(q, false),
            "QLinear(in_features=8, out_features=2, bias=False, kmeans, bits=4, group_size=row)");
}

// Y = X · D^T in double from the dequantized weight.
std::vector<double> reference_product(const QLinear& q, const std::vector<float>& X, int n_tok) {
  const std::vector<float> D = dequantize(q);
  const int64_t n_out = q.n_out(), n_in = q.n_in();
  std::vector<double> Y(size_t(n_tok * n_out));
  for (int t = 0; t < n_tok; ++t)
    for (int64_t o = 0; o < n_out; ++o) {
      double s = 0.0;
      for (int64_t i = 0; i < n_in; ++i) s += double(X[size_t(t * n_in + i)]) * D[size_t(o * n_in + i)];
      Y[size_t(t * n_out + o)] = s;
    }
  return Y;
}

TEST(KmeansLinear, MatmulMatchesDequantizedProduct) {
  const int64_t n_out = 70, n_in = 192;  // a partial row tile
  const std::vector<float> W = gaussian(size_t(n_out * n_in), 5, 0.05);
  for (int bits : {2, 3, 4, 8})
    for (int group : {-1, 64}) {
      auto q = kmeans_quantize("w", W.data(), n_out, n_in, bits, group, nullptr, 10, 1);
      for (int n_tok : {1, 3, 17}) {
        const std::vector<float> X = gaussian(size_t(n_tok * n_in), 100 + n_tok);
        const std::vector<double> R = reference_product(*q, X, n_tok);
        for (IsaLevel isa : {IsaLevel::Ref, IsaLevel::Avx2}) {
          std::vector<float> Y(size_t(n_tok * n_out), -1.0f);
          q->matmul_isa(X.data(), n_tok, Y.data(), 1, isa);
          for (size_t i = 0; i < Y.size(); ++i)
            ASSERT_NEAR(Y[i], R[i], 1e-4 * (1.0 + std::fabs(R[i])))
                << "bits " << bits << " group " << group << " n_tok " << n_tok;
        }
      }
    }
}

TEST(KmeansLinear, Avx2LutKernelEqualsReference) {
  if (best_isa_supported() < IsaLevel::Avx2) GTEST_SKIP() << "no AVX2 on this CPU";
  const int64_t n_out = 37, n_in = 256;
  const std::vector<float> W = gaussian(size_t(n_out * n_in), 8);
  for (int group : {-1, 16, 128}) {
    auto q = kmeans_quantize("w", W.data(), n_out, n_in, 4, group, nullptr, 10, 1);
    // The AVX2 row expander gives the very same values (f16 -> f32 is exact).
    std::vector<float> Dr(size_t(n_out * n_in)), Da(Dr.size());
    q->dequantize_rows_isa(0, n_out, Dr.data(), IsaLevel::Ref);
    q->dequantize_rows_isa(0, n_out, Da.data(), IsaLevel::Avx2);
    EXPECT_EQ(Dr, Da) << "group " << group;
    for (int n_tok : {1, 2, 15}) {
      const std::vector<float> X = gaussian(size_t(n_tok * n_in), 7 + n_tok);
      std::vector<float> Yr(size_t(n_tok * n_out)), Ya(Yr.size());
      q->matmul_isa(X.data(), n_tok, Yr.data(), 1, IsaLevel::Ref);
      q->matmul_isa(X.data(), n_tok, Ya.data(), 1, IsaLevel::Avx2);
      // Only the float summation order differs: bound by sum |w x| * n * eps.
      const std::vector<float> D = dequantize(*q);
      for (int t = 0; t < n_tok; ++t)
        for (int64_t o = 0; o < n_out; ++o) {
          double mag = 0.0;
          for (int64_t i = 0; i < n_in; ++i)
            mag += std::fabs(double(D[size_t(o * n_in + i)]) * X[size_t(t * n_in + i)]);
          ASSERT_NEAR(Ya[size_t(t * n_out + o)], Yr[size_t(t * n_out + o)], mag * n_in * 1.2e-7)
              << "group " << group << " n_tok " << n_tok << " row " << o;
        }
    }
  }
}

TEST(KmeansLinear, IdenticalAtAnyThreadCount) {
  const int64_t n_out = 640, n_in = 512;  // >= 2^20 multiply-adds at 4 tokens: the threaded path
  const std::vector<float> W = gaussian(size_t(n_out * n_in), 9);
  auto q1 = kmeans_quantize("w", W.data(), n_out, n_in, 4, 128, nullptr, 8, 1);
  auto q2 = kmeans_quantize("w", W.data(), n_out, n_in, 4, 128, nullptr, 8, 2);
  EXPECT_EQ(q1->codes(), q2->codes());
  EXPECT_EQ(q1->codebook(), q2->codebook());
  for (int n_tok : {4, 16}) {
    const std::vector<float> X = gaussian(size_t(n_tok * n_in), 10);
    std::vector<float> Y1(size_t(n_tok * n_out)), Y2(Y1.size());
    q1->matmul(X.data(), n_tok, Y1.data(), 1);
    q1->matmul(X.data(), n_tok, Y2.data(), 2);
    EXPECT_EQ(0, std::memcmp(Y1.data(), Y2.data(), Y1.size() * 4)) << "n_tok " << n_tok;
  }
}

TEST(KmeansLinear, RowsPermutedExactly) {
  const int64_t n_out = 9, n_in = 64;
  const std::vector<float> W = gaussian(size_t(n_out * n_in), 12);
  auto q = kmeans_quantize("w", W.data(), n_out, n_in, 3, 32, nullptr, 10, 1);
  const std::vector<int64_t> perm = {3, 0, 8, 1, 7, 2, 6, 5, 4};
  auto p = q->with_rows_permuted(perm);
  ASSERT_TRUE(p);
  const std::vector<float> D = dequantize(*q), P = dequantize(*p);
  for (int64_t r = 0; r < n_out; ++r)
    for (int64_t i = 0; i < n_in; ++i) ASSERT_EQ(P[size_t(r * n_in + i)], D[size_t(perm[size_t(r)] * n_in + i)]);
  EXPECT_THROW(q->with_rows_permuted(std::vector<int64_t>{0, 1}), Error);
}

// ------------------------------------------------------------------ quantizer

TEST(KmeansQuantizer, ValidationAndBitsPerWeight) {
  auto qz = make_kmeans_quantizer();
  EXPECT_EQ(qz->name(), "kmeans");
  QuantConfig cfg;
  cfg.method = "kmeans";
  cfg.bits = 5;
  EXPECT_THROW(qz->validate(cfg), Error);
  cfg.bits = 4;
  cfg.group_size = 0;
  EXPECT_THROW(qz->validate(cfg), Error);
  cfg.group_size = -1;
  cfg.extra["iters"] = "many";
  EXPECT_THROW(qz->validate(cfg), Error);
  cfg.extra["iters"] = 5;
  EXPECT_NO_THROW(qz->validate(cfg));
  EXPECT_DOUBLE_EQ(qz->bits_per_weight(cfg, 4096, 4096), 4.0 + 16.0 * 16 / 4096);
  cfg.bits = 3;
  cfg.group_size = 64;
  EXPECT_DOUBLE_EQ(qz->bits_per_weight(cfg, 256, 4096), 3.0 + 16.0 * 8 / 64);
  const std::vector<float> W = gaussian(24 * 128, 13);
  auto q = qz->quantize_linear("blk.0.attn_q.weight", W.data(), 24, 128, cfg, nullptr);
  EXPECT_DOUBLE_EQ(q->bits_per_weight(), qz->bits_per_weight(cfg, 24, 128));
  EXPECT_EQ(q->type_name(), "kmeans3g64");
  cfg.group_size = 48;  // does not divide 128
  EXPECT_NE(error_of([&] {
              qz->quantize_linear("blk.0.attn_q.weight", W.data(), 24, 128, cfg, nullptr);
            }).find("blk.0.attn_q.weight"),
            std::string::npos);
  std::vector<float> bad = W;
  bad[77] = std::nanf("");
  cfg.group_size = 64;
  const std::string e =
      error_of([&] { qz->quantize_linear("blk.1.ffn_up.weight", bad.data(), 24, 128, cfg, nullptr); });
  EXPECT_NE(e.find("blk.1.ffn_up.weight"), std::string::npos) << e;
  std::vector<float> imp(128, 1.0f);
  imp[3] = -1.0f;
  EXPECT_THROW(qz->quantize_linear("w", W.data(), 24, 128, cfg, imp.data()), Error);
  std::vector<float> huge = W;
  for (int i = 0; i < 64; ++i) huge[size_t(i)] = 1e6f;  // a whole group beyond f16
  EXPECT_THROW(qz->quantize_linear("w", huge.data(), 24, 128, cfg, nullptr), Error);
}

namespace {

struct StoredModule {
  std::vector<HfModuleTensor> tensors;
  std::vector<TensorView> views;
  std::map<std::string, const TensorView*> parts() {
    views.clear();
    for (auto& t : tensors) {
      TensorView v;
      v.name = "model.layers.0.mlp.up_proj." + t.suffix;
      v.dtype = t.dtype;
      v.shape = t.shape;
      v.data = t.bytes.data();
      v.nbytes = t.bytes.size();
      views.push_back(v);
    }
    std::map<std::string, const TensorView*> m;
    for (size_t i = 0; i < tensors.size(); ++i) m[tensors[i].suffix] = &views[i];
    return m;
  }
  HfModuleTensor& get(const std::string& s) {
    for (auto& t : tensors)
      if (t.suffix == s) return t;
    throw std::runtime_error("no " + s);
  }
};

}  // namespace

TEST(KmeansQuantizer, LayoutRoundTrip) {
  auto qz = make_kmeans_quantizer();
  EXPECT_EQ(qz->hf_marker_suffixes(), std::vector<std::string>{"codebook"});
  for (auto [bits, group, n_in] : {std::tuple{3, 64, 192}, std::tuple{3, -1, 20}, std::tuple{2, 16, 48},
                                   std::tuple{4, -1, 40}, std::tuple{8, 8, 24}}) {
    QuantConfig cfg;
    cfg.method = "kmeans";
    cfg.bits = bits;
    cfg.group_size = group;
    const int64_t n_out = 5;
    const std::vector<float> W = gaussian(size_t(n_out * n_in), 14 + bits);
    auto q = qz->quantize_linear("w", W.data(), n_out, n_in, cfg, nullptr);
    StoredModule s{qz->hf_module_tensors(*q, cfg), {}};
    ASSERT_EQ(s.tensors.size(), 2u);
    EXPECT_EQ(s.get("codes").shape, (std::vector<int64_t>{n_out, (n_in * bits + 7) / 8}));
    EXPECT_EQ(s.get("codebook").dtype, DType::F16);
    auto back = qz->load_hf_module(cfg, s.parts(), n_out, n_in, "model.safetensors: model.layers.0.mlp.up_proj");
    EXPECT_EQ(dequantize(*back), dequantize(*q)) << "bits " << bits << " group " << group;
    EXPECT_EQ(back->type_name(), q->type_name());
    EXPECT_EQ(back->nbytes(), q->nbytes());
  }
}

TEST(KmeansQuantizer, CorruptLayoutsThrowNamingTheTensor) {
  auto qz = make_kmeans_quantizer();
  QuantConfig cfg;
  cfg.method = "kmeans";
  cfg.bits = 3;
  cfg.group_size = -1;
  const int64_t n_out = 4, n_in = 20;  // 60 bits per row: 4 padding bits
  const std::vector<float> W = gaussian(size_t(n_out * n_in), 15);
  auto q = qz->quantize_linear("w", W.data(), n_out, n_in, cfg, nullptr);
  const std::string where = "m.safetensors: model.layers.0.mlp.up_proj";
  auto expect_fail = [&](const std::function<void(StoredModule&)>& corrupt, const std::string& tensor,
                         const QuantConfig& c) {
    StoredModule s{qz->hf_module_tensors(*q, cfg), {}};
    corrupt(s);
    auto parts = s.parts();
    const std::string e = error_of([&] { qz->load_hf_module(c, parts, n_out, n_in, where); });
    EXPECT_NE(e.find(where + "." + tensor), std::string::npos) << e;
  };
  expect_fail([](StoredModule& s) { s.tensors.erase(s.tensors.begin() + 1); }, "codebook", cfg);
  expect_fail([](StoredModule& s) { s.tensors.erase(s.tensors.begin()); }, "codes", cfg);
  expect_fail([](StoredModule& s) { s.get("codebook").dtype = DType::BF16; }, "codebook", cfg);
  expect_fail([](StoredModule& s) { s.get("codes").shape = {4, 7}; }, "codes", cfg);
  expect_fail([](StoredModule& s) { s.get("codebook").shape = {4, 16}; }, "codebook", cfg);
  expect_fail([](StoredModule& s) { s.get("codebook").bytes.resize(10); }, "codebook", cfg);
  expect_fail([](StoredModule& s) { s.get("codes").bytes.resize(31); }, "codes", cfg);
  expect_fail([](StoredModule& s) { std::memcpy(s.get("codebook").bytes.data() + 6, "\x00\x7e", 2); }, "codebook", cfg);
  expect_fail([](StoredModule& s) { s.get("codes").bytes[7] |= 0x80; }, "codes", cfg);
  QuantConfig g = cfg;
  g.group_size = 8;  // does not divide 20
  StoredModule s{qz->hf_module_tensors(*q, cfg), {}};
  EXPECT_THROW(qz->load_hf_module(g, s.parts(), n_out, n_in, where), Error);
  g = cfg;
  g.bits = 4;  // config disagrees with the tensors' shapes
  expect_fail([](StoredModule&) {}, "codes", g);
  // A layer of another method cannot be written as this layout.
  KmeansLinear other(1, 8, 4, -1, std::vector<uint8_t>(4), std::vector<uint16_t>(16));
  EXPECT_THROW(qz->hf_module_tensors(other, cfg), Error);
}

// ------------------------------------------------------------------ quality vs RTN

TEST(KmeansQuality, BeatsInt4RtnOnGaussian) {
  const int64_t n_out = 64, n_in = 512;
  const std::vector<float> W = gaussian(size_t(n_out * n_in), 16, 0.02);
  SplitMix64 rng{17};
  std::vector<float> imp(static_cast<size_t>(n_in));
  for (auto& v : imp) v = float(std::exp(1.5 * rng.gauss()));
  const IntGroupSpec spec{4, -1, false};
  const std::vector<float> R = rtn_int_groups(W.data(), n_out, n_in, spec).dequantize();
  const std::vector<float> K = dequantize(*kmeans_quantize("w", W.data(), n_out, n_in, 4, -1, nullptr, 30, 1));
  const std::vector<float> Kw = dequantize(*kmeans_quantize("w", W.data(), n_out, n_in, 4, -1, imp.data(), 30, 1));
  const double r = weighted_rmse(W, R, n_in, nullptr), k = weighted_rmse(W, K, n_in, nullptr);
  EXPECT_LT(k, 0.9 * r) << "kmeans " << k << " rtn " << r;
  const double rw = weighted_rmse(W, R, n_in, imp.data()), kw = weighted_rmse(W, Kw, n_in, imp.data());
  EXPECT_LT(kw, 0.85 * rw) << "weighted: kmeans " << kw << " rtn " << rw;
  EXPECT_LT(kw, weighted_rmse(W, K, n_in, imp.data()));
}

TEST(KmeansQuality, BeatsInt4RtnOnStories260K) {
  auto m = load_model(lowbit::test::shared("models/stories260K/stories260K-f32.gguf"));
  double se_k = 0.0, se_r = 0.0;
  int64_t n = 0, layers = 0;
  for (const auto& [name, v] : m->weights) {
    if (!is_block_linear(name)) continue;
    const int64_t n_out = v.shape.at(0), n_in = v.shape.at(1);
    std::vector<float> W(size_t(n_out * n_in));
    to_f32(v, 0, n_out * n_in, W.data());
    const std::vector<float> R = rtn_int_groups(W.data(), n_out, n_in, IntGroupSpec{4, -1, false}).dequantize();
    const std::vector<float> K = dequantize(*kmeans_quantize(name, W.data(), n_out, n_in, 4, -1, nullptr, 30, 1));
    const double rk = weighted_rmse(W, K, n_in, nullptr), rr = weighted_rmse(W, R, n_in, nullptr);
    EXPECT_LT(rk, rr) << name;
    se_k += rk * rk * double(W.size());
    se_r += rr * rr * double(W.size());
    n += int64_t(W.size());
    ++layers;
  }
  ASSERT_GE(layers, 7);
  EXPECT_LT(std::sqrt(se_k / n), 0.9 * std::sqrt(se_r / n));  // measured 0.81
}
