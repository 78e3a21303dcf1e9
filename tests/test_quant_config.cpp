// One config system for all methods (methods/quant_config.h, methods/quantizer.h):
// Hugging Face quantization_config objects as transformers writes them, the
// errors for unknown and contradictory fields, the registry, and the
// integer-group runtime layer (methods/int_group_linear.h) behind rtn / gptq /
// awq and loaded GPTQ / AWQ checkpoints.
#include <gtest/gtest.h>

#include "test_random.h"

#include <cmath>
#include <vector>

#include <nlohmann/json.hpp>

#include "lowbit/error.h"
#include "methods/int_group_linear.h"
#include "methods/quant_config.h"
#include "methods/quantizer.h"
#include "model/matmul.h"

using namespace lowbit;
using json = nlohmann::json;

namespace {

// Expects quant_config_from_json to throw a message containing `needle`.
void expect_config_error(const json& j, const std::string& needle) {
  try {
    quant_config_from_json(j, "quant.json");
    ADD_FAILURE() << "no error for " << j.dump();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("quant.json"), std::string::npos) << e.what();
  }
}

TEST(QuantConfig, BitsAndBytes4BitAsTransformersWritesIt) {
  // BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True).to_dict()
  const json j = json::parse(R"({
    "_load_in_4bit": true, "_load_in_8bit": false, "bnb_4bit_compute_dtype": "bfloat16",
    "bnb_4bit_quant_storage": "uint8", "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": true,
    "llm_int8_enable_fp32_cpu_offload": false, "llm_int8_has_fp16_weight": false, "llm_int8_skip_modules": null,
    "llm_int8_threshold": 6.0, "load_in_4bit": true, "load_in_8bit": false, "quant_method": "bitsandbytes"})");
  const QuantConfig c = quant_config_from_json(j, "config.json");
  EXPECT_EQ(c.method, "nf4");
  EXPECT_EQ(c.bits, 4);
  EXPECT_EQ(c.group_size, 64);
  EXPECT_TRUE(c.double_quant);
  EXPECT_EQ(c.compute_dtype, "bfloat16");
  // ... and back: the fields a loader needs, same values.
  const json back = quant_config_to_json(c);
  EXPECT_EQ(back["quant_method"], "bitsandbytes");
  EXPECT_EQ(back["load_in_4bit"], true);
  EXPECT_EQ(back["bnb_4bit_quant_type"], "nf4");
  EXPECT_EQ(back["bnb_4bit_use_double_quant"], true);
  const QuantConfig again = quant_config_from_json(back, "round trip");
  EXPECT_EQ(again.method, c.method);
  EXPECT_EQ(again.double_quant, c.double_quant);
}

TEST(QuantConfig, BitsAndBytes8BitIsLlmInt8) {
  const json j = {{"quant_method", "bitsandbytes"}, {"load_in_8bit", true}, {"llm_int8_threshold", 5.0},
                  {"llm_int8_skip_modules", {"lm_head", "mlp.down_proj"}}};
  const QuantConfig c = quant_config_from_json(j, "config.json");
  EXPECT_EQ(c.method, "llm.int8");
  EXPECT_EQ(c.bits, 8);
  EXPECT_FLOAT_EQ(c.threshold, 5.0f);
  ASSERT_EQ(c.skip_modules.size(), 2u);
  EXPECT_TRUE(is_skipped_module(c, "blk.3.ffn_down.weight"));
  EXPECT_TRUE(is_skipped_module(c, "output.weight"));
  EXPECT_FALSE(is_skipped_module(c, "blk.3.ffn_up.weight"));
}

TEST(QuantConfig, GptqAwqHqqLowbit) {
  QuantConfig g = quant_config_from_json(
      {{"quant_method", "gptq"}, {"bits", 3}, {"group_size", 64}, {"sym", true}, {"desc_act", true}, {"damp_percent", 0.02}},
      "q");
  EXPECT_EQ(g.method, "gptq");
  EXPECT_EQ(g.bits, 3);
  EXPECT_EQ(g.group_size, 64);
  EXPECT_TRUE(g.sym);
  EXPECT_TRUE(g.extra_or<bool>("desc_act", false));
  EXPECT_DOUBLE_EQ(g.extra_or<double>("damp_percent", 0.0), 0.02);

  QuantConfig a = quant_config_from_json({{"quant_method", "awq"}, {"bits", 4}, {"group_size", 128}, {"zero_point", true},
                                          {"version", "gemm"}, {"modules_to_not_convert", {"mlp.down_proj"}}},
                                         "q");
  EXPECT_EQ(a.method, "awq");
  EXPECT_FALSE(a.sym);
  EXPECT_TRUE(is_skipped_module(a, "blk.0.ffn_down.weight"));

  // transformers' serialised HqqConfig.
  QuantConfig h = quant_config_from_json(
      json::parse(R"({"quant_method": "hqq", "quant_config": {"weight_quant_params": {"nbits": 3, "group_size": 64,
                     "axis": 0, "view_as_float": false}, "scale_quant_params": null, "zero_quant_params": null,
                     "offload_meta": false}, "skip_modules": ["lm_head"]})"),
      "q");
  EXPECT_EQ(h.method, "hqq");
  EXPECT_EQ(h.bits, 3);
  EXPECT_EQ(h.group_size, 64);
  EXPECT_EQ(h.axis, 0);
  const QuantConfig h2 = quant_config_from_json(quant_config_to_json(h), "round trip");
  EXPECT_EQ(h2.bits, 3);
  EXPECT_EQ(h2.axis, 0);
  // hqq writes group_size null for "the whole axis".
  EXPECT_EQ(quant_config_from_json(json::parse(R"({"quant_method": "hqq", "quant_config": {"weight_quant_params":
                                       {"nbits": 4, "group_size": null, "axis": 1}}})"), "q").group_size, -1);

  QuantConfig k;
  k.method = "kmeans";
  k.bits = 3;
  k.group_size = -1;
  k.extra["iters"] = 12;
  const QuantConfig k2 = quant_config_from_json(quant_config_to_json(k), "round trip");
  EXPECT_EQ(k2.method, "kmeans");
  EXPECT_EQ(k2.bits, 3);
  EXPECT_EQ(k2.group_size, -1);
  EXPECT_EQ(k2.extra_or<int>("iters", 0), 12);
}

TEST(QuantConfig, ClearErrors) {
  expect_config_error({{"bits", 4}}, "quant_method");
  expect_config_error({{"quant_method", "bitsandbytes"}, {"load_in_4bit", true}, {"load_in_8bit", true}}, "both");
  expect_config_error({{"quant_method", "bitsandbytes"}}, "neither");
  expect_config_error({{"quant_method", "bitsandbytes"}, {"load_in_4bit", true}, {"bnb_4bit_quant_type", "nf3"}}, "nf3");
  expect_config_error({{"quant_method", "bitsandbytes"}, {"load_in_4bit", true}, {"bnb_4bit_typo", 1}}, "bnb_4bit_typo");
  expect_config_error({{"quant_method", "gptq"}, {"bits", 5}}, "5 bits");
  expect_config_error({{"quant_method", "gptq"}, {"bits", "four"}}, "bits");
  expect_config_error({{"quant_method", "hqq"}, {"nbits", 5}}, "5 bits");
  expect_config_error({{"quant_method", "hqq"}, {"axis", 2}}, "axis");
  expect_config_error({{"quant_method", "lowbit"}, {"bits", 4}}, "method");
  expect_config_error({{"quant_method", "lowbit"}, {"method", "kmeans"}, {"colour", 4}}, "colour");
  expect_config_error({{"quant_method", "awq"}, {"version", "gemv"}}, "gemv");
  expect_config_error({{"quant_method", "fancy"}}, "fancy");
  expect_config_error(json::array({1, 2}), "not a JSON object");
}

TEST(Registry, FindsEveryMethodAndNamesThemWhenUnknown) {
  for (const Quantizer* q : all_quantizers()) {
    EXPECT_EQ(&find_quantizer(q->name()), q);
    const QuantConfig c = q->default_config();
    EXPECT_EQ(c.method, q->name());
    EXPECT_NO_THROW(q->validate(c)) << q->name();
    EXPECT_GT(q->bits_per_weight(c, 4096, 4096), 0.5) << q->name();
    EXPECT_FALSE(q->summary().empty());
  }
  try {
    find_quantizer("nope");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("rtn"), std::string::npos) << e.what();
  }
}

// W [n_out, n_in] ~ N(0, 1).
std::vector<float> gaussian(int64_t n_out, int64_t n_in, uint64_t seed) {
  test::SplitMix64 rng{seed};
  std::vector<float> w(size_t(n_out * n_in));
  for (float& x : w) x = float(rng.gauss());
  return w;
}

TEST(IntGroupLinear, KeepsTheCodesAndMultipliesLikeTheDequantizedWeight) {
  for (int bits : {2, 3, 4, 8})
    for (int group : {32, -1}) {
      IntGroupSpec spec;
      spec.bits = bits;
      spec.group_size = group;
      spec.sym = bits == 8;
      const int64_t n_out = 40, n_in = 96;
      const std::vector<float> W = gaussian(n_out, n_in, uint64_t(bits * 100 + group + 7));
      const IntGroupQuant q = rtn_int_groups(W.data(), n_out, n_in, spec);
      const IntGroupLinear layer(q, "rtn");
      // Codes, scales, zeros survive the packing exactly.
      const IntGroupQuant back = layer.to_int_groups();
      EXPECT_EQ(back.q, q.q);
      EXPECT_EQ(back.scales, q.scales);
      EXPECT_EQ(back.zeros, q.zeros);
      EXPECT_EQ(back.g_idx, q.g_idx);
      const std::vector<float> ref = q.dequantize();
      std::vector<float> got(ref.size());
      layer.dequantize_rows(0, n_out, got.data());
      EXPECT_EQ(got, ref) << bits << " bits, group " << group;
      const double expect_bytes = double(n_out) * double((n_in * bits + 7) / 8) + double(q.n_groups() * n_out) * 3.0;
      EXPECT_EQ(double(layer.nbytes()), expect_bytes);
      // Y = X W^T against the f32 product of the dequantized weight, at 1 and 2 threads.
      for (int n_tok : {1, 5, 20}) {
        const std::vector<float> X = gaussian(n_tok, n_in, 99);
        std::vector<float> y1(size_t(n_tok * n_out)), y2(y1.size()), yref(y1.size());
        layer.matmul(X.data(), n_tok, y1.data(), 1);
        layer.matmul(X.data(), n_tok, y2.data(), 2);
        EXPECT_EQ(y1, y2);
        for (int t = 0; t < n_tok; ++t)
          for (int64_t o = 0; o < n_out; ++o) {
            double s = 0;
            for (int64_t i = 0; i < n_in; ++i) s += double(X[size_t(t * n_in + i)]) * ref[size_t(o * n_in + i)];
            EXPECT_NEAR(y1[size_t(t * n_out + o)], s, 1e-3 * (1 + std::fabs(s)));
          }
      }
    }
}

TEST(IntGroupLinear, ActOrderGroupsAndRowPermutation) {
  IntGroupSpec spec;
  spec.bits = 4;
  spec.group_size = 16;
  const int64_t n_out = 8, n_in = 64;
  const std::vector<float> W = gaussian(n_out, n_in, 5);
  IntGroupQuant q = rtn_int_groups(W.data(), n_out, n_in, spec);
  for (int64_t i = 0; i < n_in; ++i) q.g_idx[size_t(i)] = int32_t((i * 7) % 4);  // not i / 16: kept explicitly
  const IntGroupLinear layer(q, "gptq");
  EXPECT_EQ(layer.to_int_groups().g_idx, q.g_idx);
  EXPECT_NE(layer.describe().find("desc_act=True"), std::string::npos);
  std::vector<float> a(size_t(n_out * n_in));
  layer.dequantize_rows(0, n_out, a.data());
  EXPECT_EQ(a, q.dequantize());
  const std::vector<int64_t> perm = {3, 1, 7, 0, 2, 6, 5, 4};
  const auto p = layer.with_rows_permuted(perm);
  ASSERT_TRUE(p);
  std::vector<float> b(a.size());
  p->dequantize_rows(0, n_out, b.data());
  for (int64_t r = 0; r < n_out; ++r)
    for (int64_t i = 0; i < n_in; ++i) EXPECT_EQ(b[size_t(r * n_in + i)], a[size_t(perm[size_t(r)] * n_in + i)]);
}

}  // namespace
