// Per-tensor quantization error (eval/quant_stats.h): zero against itself and
// against the same model in the other RoPE row order (GGUF vs HF folder),
// q4_0 worse than q8_0 on every quantized tensor, one tensor's figures equal
// a direct computation, thread-count independence, refusals with lowbit::Error,
// and the CLI end to end.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "eval/quant_stats.h"
#include "io/model_loader.h"
#include "lowbit/error.h"
#include "model/synthetic.h"
#include "paths.h"

using namespace lowbit;
using lowbit::test::run_cli;

namespace {

const std::string kF32 = "models/stories260K/stories260K-f32.gguf";
const std::string kHf = "models/stories260K-hf";

const Model& f32_model() {
  static std::unique_ptr<Model> m = load_model(test::shared(kF32));
  return *m;
}

// The f32 GGUF quantized to `type` by the CLI (once per process).
const Model& quantized(const std::string& type) {
  static std::map<std::string, std::unique_ptr<Model>> cache;
  auto& m = cache[type];
  if (!m) {
    const std::string out = test::temp_dir() + "/qs-" + type + ".gguf";
    auto r = run_cli("quantize " + test::shared(kF32) + " --type " + type + " -o " + out);
    EXPECT_EQ(r.code, 0) << r.out;
    m = load_model(out);
  }
  return *m;
}

std::map<std::string, TensorErrorStats> by_name(const QuantStats& s) {
  std::map<std::string, TensorErrorStats> m;
  for (const auto& t : s.tensors) m[t.name] = t;
  return m;
}

}  // namespace

TEST(QuantStats, ModelAgainstItselfIsExact) {
  QuantStats s = quant_stats(f32_model(), f32_model());
  ASSERT_FALSE(s.tensors.empty());
  EXPECT_EQ(s.tensors.size(), f32_model().weights.size());
  EXPECT_TRUE(s.only_in_source.empty());
  EXPECT_TRUE(s.only_in_quant.empty());
  EXPECT_FALSE(s.rope_permuted);
  for (const auto& t : s.tensors) {
    EXPECT_EQ(t.rel_rmse, 0.0) << t.name;
    EXPECT_EQ(t.max_abs_err, 0.0) << t.name;
    EXPECT_NEAR(t.cosine, 1.0, 1e-12) << t.name;
    EXPECT_TRUE(std::isinf(t.snr_db)) << t.name;
  }
  EXPECT_EQ(s.model.mean_rel_rmse, 0.0);
  EXPECT_EQ(s.layers.size(), size_t(f32_model().config.n_layers));
}

TEST(QuantStats, GgufAgainstHfFolderMatchesAfterRopePermutation) {
  auto hf = load_model(test::shared(kHf));
  for (const auto& [src, q] : {std::pair<const Model*, const Model*>{&f32_model(), hf.get()}, {hf.get(), &f32_model()}}) {
    QuantStats s = quant_stats(*src, *q);
    EXPECT_TRUE(s.rope_permuted);
    ASSERT_FALSE(s.tensors.empty());
    int permuted = 0;
    for (const auto& t : s.tensors) {
      EXPECT_EQ(t.rel_rmse, 0.0) << t.name;
      EXPECT_EQ(t.max_abs_err, 0.0) << t.name;
      permuted += t.rows_permuted;
    }
    EXPECT_EQ(permuted, 2 * f32_model().config.n_layers);  // attn_q + attn_k per layer
  }
}

TEST(QuantStats, Q4WorseThanQ8AndMatchesDirectComputation) {
  const Model& q8 = quantized("q8_0");
  const Model& q4 = quantized("q4_0");
  QuantStats s8 = quant_stats(f32_model(), q8), s4 = quant_stats(f32_model(), q4);
  auto m8 = by_name(s8), m4 = by_name(s4);
  int compared = 0;
  for (const auto& [name, t4] : m4) {
    ASSERT_TRUE(m8.count(name)) << name;
    const auto& t8 = m8[name];
    EXPECT_EQ(t4.source_type, "f32");
    if (t4.quant_type != "q4_0" || t8.quant_type != "q8_0") continue;
    EXPECT_GT(t4.rel_rmse, t8.rel_rmse) << name;
    EXPECT_GT(t8.rel_rmse, 0.0) << name;
    EXPECT_LT(t4.cosine, t8.cosine) << name;
    EXPECT_LT(t4.snr_db, t8.snr_db) << name;
    ++compared;
  }
  EXPECT_GE(compared, 6 * f32_model().config.n_layers);

  // One tensor computed directly from whole-tensor dequantization.
  const std::string name = "blk.1.ffn_gate.weight";  // ffn_down (172 columns) falls back to f16
  const TensorView& w = f32_model().weight(name);
  const TensorView& q = q4.weight(name);
  ASSERT_EQ(q.type_name(), "q4_0");
  std::vector<float> a(size_t(w.numel())), b(size_t(q.numel()));
  to_f32(w, 0, w.numel(), a.data());
  to_f32(q, 0, q.numel(), b.data());
  double ww = 0, qq = 0, qw = 0, dd = 0, mx = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    ww += double(a[i]) * a[i];
    qq += double(b[i]) * b[i];
    qw += double(a[i]) * b[i];
    dd += (double(b[i]) - a[i]) * (double(b[i]) - a[i]);
    mx = std::max(mx, std::abs(double(b[i]) - a[i]));
  }
  const auto& t = m4[name];
  const double rel = std::sqrt(dd / ww);
  EXPECT_NEAR(t.rel_rmse, rel, 1e-12 * rel);
  EXPECT_EQ(t.max_abs_err, mx);
  EXPECT_NEAR(t.cosine, qw / std::sqrt(ww * qq), 1e-12);
  EXPECT_NEAR(t.snr_db, -20 * std::log10(rel), 1e-9);
  EXPECT_EQ(t.numel, w.numel());
  EXPECT_EQ(t.shape, w.shape);
  EXPECT_EQ(t.layer, 1);

  // The layer summary is the numel-weighted mean of its tensors.
  double sum = 0;
  int64_t n = 0;
  std::string worst;
  double worst_v = -1;
  for (const auto& x : s4.tensors)
    if (x.layer == 1) {
      sum += x.rel_rmse * double(x.numel);
      n += x.numel;
      if (x.rel_rmse > worst_v) worst_v = x.rel_rmse, worst = x.name;
    }
  ASSERT_EQ(s4.layers.size(), size_t(f32_model().config.n_layers));
  EXPECT_NEAR(s4.layers[1].mean_rel_rmse, sum / double(n), 1e-15);
  EXPECT_EQ(s4.layers[1].numel, n);
  EXPECT_EQ(s4.layers[1].worst_tensor, worst);
}

TEST(QuantStats, SameResultAtAnyThreadCountAndLayerFilter) {
  QuantStatsOptions o1, o3;
  o1.n_threads = 1;
  o3.n_threads = 3;
  QuantStats a = quant_stats(f32_model(), quantized("q4_0"), o1), b = quant_stats(f32_model(), quantized("q4_0"), o3);
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    EXPECT_EQ(a.tensors[i].name, b.tensors[i].name);
    EXPECT_EQ(a.tensors[i].rel_rmse, b.tensors[i].rel_rmse) << a.tensors[i].name;  // bit-identical
    EXPECT_EQ(a.tensors[i].cosine, b.tensors[i].cosine) << a.tensors[i].name;
  }
  QuantStatsOptions ol;
  ol.layer = 2;
  QuantStats l = quant_stats(f32_model(), quantized("q4_0"), ol);
  ASSERT_FALSE(l.tensors.empty());
  for (const auto& t : l.tensors) EXPECT_EQ(t.layer, 2) << t.name;
  ASSERT_EQ(l.layers.size(), 1u);
  EXPECT_EQ(l.non_layer.n_tensors, 0);

  // Sorting: rel RMSE descending; name = model order (blk.2 before blk.10 style numeric order).
  sort_tensor_stats(a.tensors, QuantStatsSort::RelRmse);
  for (size_t i = 1; i < a.tensors.size(); ++i) EXPECT_GE(a.tensors[i - 1].rel_rmse, a.tensors[i].rel_rmse);
  EXPECT_TRUE(quant_stats_name_less("token_embd.weight", "blk.0.attn_q.weight"));
  EXPECT_TRUE(quant_stats_name_less("blk.2.ffn_up.weight", "blk.10.attn_q.weight"));
  EXPECT_TRUE(quant_stats_name_less("blk.10.attn_q.weight", "output_norm.weight"));
}

TEST(QuantStats, RefusesShapeMismatchAndOtherArchitecture) {
  auto a = make_synthetic_model(synthetic_llama_config(1, 16, 32, 2, 2, 32), 1);
  auto b = make_synthetic_model(synthetic_llama_config(1, 16, 48, 2, 2, 32), 1);
  try {
    quant_stats(*a, *b);
    FAIL() << "shape mismatch accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("ffn_"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("shape"), std::string::npos) << e.what();
  }
  ModelConfig g = synthetic_llama_config(1, 16, 32, 2, 2, 32);
  g.arch = Arch::GPT2;
  g.arch_name = "gpt2";
  auto c = make_synthetic_model(g, 1);
  try {
    quant_stats(*a, *c);
    FAIL() << "different architecture accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("architecture"), std::string::npos) << e.what();
  }
  // Tensors present in one model only are listed, not compared.
  auto d = make_synthetic_model(synthetic_llama_config(1, 16, 32, 2, 2, 32), 2);
  d->weights.erase("blk.0.ffn_up.weight");
  QuantStats s = quant_stats(*a, *d);
  ASSERT_EQ(s.only_in_source.size(), 1u);
  EXPECT_EQ(s.only_in_source[0], "blk.0.ffn_up.weight");
  EXPECT_TRUE(s.only_in_quant.empty());
  EXPECT_EQ(s.tensors.size(), a->weights.size() - 1);
}

TEST(QuantStats, CliPrintsSetupAndTables) {
  quantized("q4_0");
  const std::string q4 = test::temp_dir() + "/qs-q4_0.gguf";
  auto r = run_cli("quant-stats " + test::shared(kF32) + " " + q4 + " --top 3 -t 2");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("lowbit    "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| tensor | shape | types | rel RMSE"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("f32 → q4_0"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| blk.4 |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("**model**"), std::string::npos) << r.out;
  r = run_cli("quant-stats " + test::shared(kF32) + " " + q4 + " --sort size");
  EXPECT_NE(r.code, 0);
}
