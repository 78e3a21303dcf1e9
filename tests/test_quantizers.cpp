// Every method of the registry end to end on the real sample model
// (stories260K, HF folder): quantize in memory, write the method's Hugging
// Face layout, load the folder back, and check that the loaded model holds the
// same layers (bit-identical weights and logits) and that its perplexity on
// TinyStories text stays near the original's. Also the CLI: --list, --config,
// --method with flags, and its errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/read_file.h"
#include "eval/perplexity.h"
#include "io/model_loader.h"
#include "lowbit/error.h"
#include "methods/quantizer.h"
#include "model/forward.h"
#include "paths.h"
#include "quant/method_quantize.h"

using namespace lowbit;
namespace fs = std::filesystem;

namespace {

const std::string kHf = "models/stories260K-hf";
const std::string kTok = "models/stories260K/tok512.bin";

std::unique_ptr<Model> load_hf(const std::string& dir) {
  LoadOptions lo;
  lo.tokenizer_path = test::shared(kTok);
  return load_model(dir, lo);
}

std::vector<float> logits_of(const Model& m, const std::vector<int32_t>& ids) {
  Runner r(m, int(ids.size()), 1);
  std::vector<float> out;
  r.forward(ids, 0, true, out);
  return out;
}

double ppl_of(const Model& m, const std::string& text) {
  PplOptions po;
  po.n_ctx = 64;
  po.max_chunks = 8;
  po.n_threads = 1;
  return perplexity(m, text, po).ppl;
}

struct Case {
  std::string method;
  int bits, group;
  bool dq;
  double max_ppl_ratio;  // quantized / original on 8 windows of 64 tokens
};

class EveryMethod : public ::testing::TestWithParam<Case> {};

TEST_P(EveryMethod, WritesItsLayoutAndLoadsTheSameModelBack) {
  const Case& c = GetParam();
  const Quantizer& q = find_quantizer(c.method);
  QuantConfig cfg = q.default_config();
  cfg.bits = c.bits;
  cfg.group_size = c.group;
  cfg.double_quant = c.dq;
  const std::string dir = test::temp_dir() + "/" + c.method + std::to_string(c.bits) + (c.dq ? "dq" : "");
  auto m = load_hf(test::shared(kHf));
  const auto original = load_hf(test::shared(kHf));
  const QuantizeReport rep = quantize_with_registry(*m, cfg, CalibrationOptions{}, 1, dir);
  EXPECT_FALSE(rep.quantized.empty());

  // The folder says what it is, and loads as the same layers.
  const auto config = nlohmann::json::parse(read_text_file(dir + "/config.json"));
  ASSERT_TRUE(config.contains("quantization_config"));
  const QuantConfig back_cfg = quant_config_from_json(config["quantization_config"], dir);
  EXPECT_EQ(back_cfg.method, c.method == "rtn" ? "gptq" : c.method);  // RTN groups are stored in the GPTQ layout
  const auto loaded = load_hf(dir);
  for (const std::string& name : rep.quantized) {
    const TensorView& a = m->weight(name);
    const TensorView& b = loaded->weight(name);
    ASSERT_EQ(b.dtype, DType::QLINEAR) << name;
    if (c.method != "rtn") EXPECT_EQ(a.qlinear->type_name(), b.qlinear->type_name());
    EXPECT_EQ(a.nbytes, b.nbytes) << name;
    std::vector<float> wa(size_t(a.numel())), wb(wa.size());
    to_f32(a, 0, a.numel(), wa.data());
    to_f32(b, 0, b.numel(), wb.data());
    EXPECT_EQ(wa, wb) << name;
  }
  // Logits: the folder stores the unquantized tensors (embeddings, norms) in f16,
  // as transformers' writers do, so they move by f16 rounding only. When
  // activations are quantized per token, such a rounding can move a token's
  // int8 codes and single logits by more; there the perplexities must agree.
  const std::vector<int32_t> ids = m->tok().encode("Once upon a time, there was a little dog.", true);
  const std::vector<float> la = logits_of(*m, ids), lb = logits_of(*loaded, ids);
  ASSERT_EQ(la.size(), lb.size());
  const bool act = m->weight(rep.quantized.front()).qlinear->quantizes_activations();
  if (!act)
    for (size_t i = 0; i < la.size(); ++i) ASSERT_NEAR(la[i], lb[i], 0.02) << i;

  // Quality: near the original.
  const std::string text = read_text_file(test::shared("text/tinystories_val.txt")).substr(0, 40000);
  const double base = ppl_of(*original, text), quant = ppl_of(*loaded, text);
  EXPECT_NEAR(quant, ppl_of(*m, text), 0.01 * quant);
  EXPECT_LT(quant, base * c.max_ppl_ratio) << c.method << ": " << quant << " vs " << base;
  EXPECT_GT(quant, base * 0.9);
}

INSTANTIATE_TEST_SUITE_P(Registry, EveryMethod,
                         ::testing::Values(Case{"rtn", 8, -1, false, 1.01}, Case{"rtn", 4, 32, false, 1.10},
                                           Case{"nf4", 4, 64, false, 1.10}, Case{"nf4", 4, 64, true, 1.10},
                                           Case{"fp4", 4, 64, false, 1.5}, Case{"kmeans", 4, -1, false, 1.15},
                                           Case{"kmeans", 3, -1, false, 1.60}, Case{"llm.int8", 8, -1, false, 1.01},
                                           Case{"w8a8", 8, -1, false, 1.01}, Case{"w4a8", 4, -1, false, 1.30},
                                           Case{"hqq", 4, 64, false, 1.20}, Case{"hqq", 3, 32, false, 1.50},
                                           Case{"hqq", 2, 16, false, 12.0}),
                         [](const auto& info) {
                           std::string n = info.param.method + std::to_string(info.param.bits) + (info.param.dq ? "dq" : "");
                           for (char& ch : n)
                             if (ch == '.') ch = '_';
                           return n;
                         });

TEST(QuantizeCli, ListsEveryMethodAndFormat) {
  const test::CmdResult r = test::run_cli("quantize --list");
  ASSERT_EQ(r.code, 0) << r.out;
  for (const Quantizer* q : all_quantizers()) EXPECT_NE(r.out.find(q->name()), std::string::npos) << q->name();
  for (const char* f : {"q4_K", "q8_0", "iq4_nl", "Q4_K_M"}) EXPECT_NE(r.out.find(f), std::string::npos) << f;
}

TEST(QuantizeCli, ConfigFileAndFlags) {
  const std::string dir = test::temp_dir() + "/cli-config";
  const std::string cfg_path = test::temp_dir() + "/bnb.json";
  std::ofstream(cfg_path) << R"({"quant_method": "bitsandbytes", "load_in_4bit": true, "bnb_4bit_quant_type": "nf4",
                                 "bnb_4bit_use_double_quant": true, "bnb_4bit_compute_dtype": "float32"})";
  const std::string model = test::shared(kHf) + " --tokenizer " + test::shared(kTok);
  test::CmdResult r = test::run_cli("quantize " + model + " --config " + cfg_path + " -o " + dir);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("nf4 b64 dq"), std::string::npos) << r.out;
  r = test::run_cli("inspect " + dir + " --tokenizer " + test::shared(kTok));
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("QLinear(in_features=64, out_features=172, bias=False"), std::string::npos) << r.out;
  // In memory, with --ppl and an LLM.int8() outlier report.
  r = test::run_cli("quantize " + model + " --method llm.int8 --threshold 2 --ppl " +
                    test::shared("text/tinystories_val.txt") + " --ppl-ctx 64 --ppl-chunks 2");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("ppl "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("outlier input columns"), std::string::npos) << r.out;
}

TEST(QuantizeCli, ClearErrors) {
  const std::string model = test::shared(kHf) + " --tokenizer " + test::shared(kTok);
  const std::string bad = test::temp_dir() + "/bad.json";
  std::ofstream(bad) << R"({"quant_method": "bitsandbytes", "load_in_4bit": true, "bnb_4bit_quant_tpye": "nf4"})";
  test::CmdResult r = test::run_cli("quantize " + model + " --config " + bad + " -o " + test::temp_dir() + "/x");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("bnb_4bit_quant_tpye"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(test::temp_dir() + "/x"));
  r = test::run_cli("quantize " + model + " --method nope -o " + test::temp_dir() + "/y");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("nf4"), std::string::npos) << r.out;  // lists the methods
  r = test::run_cli("quantize " + model + " --method w8a8 -o " + test::temp_dir() + "/y.gguf");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("Hugging Face folder"), std::string::npos) << r.out;
  r = test::run_cli("quantize " + model + " --method nf4 --bits 3 -o " + test::temp_dir() + "/z");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("bits"), std::string::npos) << r.out;
}

}  // namespace
