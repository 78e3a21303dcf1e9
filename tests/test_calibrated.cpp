// Calibration-based quantization end to end: calibration windows, the
// layer-by-layer pipeline against the ordinary forward pass, AWQ's scale
// folding (the fp model is unchanged), GPTQ and AWQ against RTN on
// stories260K (proxy loss and perplexity on held-out text), determinism at
// 1 and 2 threads, and the CLI writing GGUF and HF folders.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/read_file.h"
#include "eval/calibration_data.h"
#include "eval/perplexity.h"
#include "io/model_loader.h"
#include "lowbit/error.h"
#include "methods/awq.h"
#include "methods/calibrated.h"
#include "methods/layer_pipeline.h"
#include "model/forward.h"
#include "paths.h"
#include "quant/method_quantize.h"

using namespace lowbit;
namespace fs = std::filesystem;

namespace {

std::string S(const std::string& rel) { return lowbit::test::shared(rel); }
std::string tmp(const std::string& name) { return lowbit::test::temp_dir() + "/" + name; }
const std::string kModel = "models/stories260K/stories260K-f32.gguf";  // has its tokenizer
const std::string kC4 = "text/c4_sample.jsonl";

std::unique_ptr<Model> stories() { return load_model(S(kModel)); }

CalibrationSet calib(const Model& m, int nsamples = 16, int seqlen = 128, uint64_t seed = 0) {
  CalibrationOptions o;
  o.path = S(kC4);
  o.nsamples = nsamples;
  o.seqlen = seqlen;
  o.seed = seed;
  return load_calibration(m.tok(), o);
}

// Perplexity on the first part of TinyStories validation (never used for calibration).
double eval_ppl(const Model& m) {
  static const std::string text = read_text_file(S("text/tinystories_val.txt")).substr(0, 60000);
  PplOptions o;
  o.n_ctx = 128;
  o.max_chunks = 40;
  return perplexity(m, text, o).ppl;
}

TargetOf int_target(int bits, int group) {
  return [=](const std::string& name) -> std::optional<GptqTarget> {
    if (!is_block_linear(name)) return std::nullopt;
    GptqTarget t;
    t.ints = IntGroupSpec{bits, group, false};
    return t;
  };
}

}  // namespace

TEST(Calibration, WindowsAreReproducibleAndSized) {
  auto m = stories();
  CalibrationSet a = calib(*m, 8, 64, 1), b = calib(*m, 8, 64, 1), c = calib(*m, 8, 64, 2);
  ASSERT_EQ(a.samples.size(), 8u);
  for (const auto& s : a.samples) EXPECT_EQ(s.size(), 64u);
  EXPECT_EQ(a.samples, b.samples);
  EXPECT_NE(a.samples, c.samples);
  EXPECT_EQ(a.n_tokens, 8 * 64);
  EXPECT_EQ(a.protocol, "jsonl documents");
  // Plain text: windows of the tokenized file.
  CalibrationOptions o;
  o.path = S("text/wiki.test.raw");
  o.nsamples = 4;
  o.seqlen = 32;
  CalibrationSet w = load_calibration(m->tok(), o);
  EXPECT_EQ(w.protocol, "text windows");
  EXPECT_EQ(w.samples.size(), 4u);
}

TEST(Calibration, BadFilesAreClearErrors) {
  auto m = stories();
  const std::string bad = tmp("bad.jsonl");
  std::ofstream(bad) << "{\"text\": \"fine\"}\nnot json\n";
  CalibrationOptions o;
  o.path = bad;
  try {
    load_calibration(m->tok(), o);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("line 2"), std::string::npos) << e.what();
  }
  const std::string shorty = tmp("short.txt");
  std::ofstream(shorty) << "Once upon a time.";
  o.path = shorty;
  EXPECT_THROW(load_calibration(m->tok(), o), Error);
  o.path = tmp("missing.txt");
  EXPECT_THROW(load_calibration(m->tok(), o), Error);
}

// Running every layer through the pipeline gives the hidden states the
// ordinary forward pass gives: its output-head input is RMSNorm(pipeline state).
TEST(LayerPipeline, MatchesTheForwardPass) {
  auto m = stories();
  CalibrationSet cs = calib(*m, 2, 64);
  LayerPipeline p(*m, cs, 2);
  for (int l = 0; l < p.n_layers(); ++l) p.advance(l);
  const int dim = m->config.dim;
  std::vector<float> head_in;
  Runner r(*m, 64, 2);
  r.set_matmul_observer([&](const std::string& w, const float* X, int n, int64_t n_in) {
    if (w == "output.weight" || (m->config.tied_embeddings && w == "token_embd.weight")) head_in.assign(X, X + int64_t(n) * n_in);
  });
  std::vector<float> logits;
  r.forward(cs.samples[1], 0, true, logits);
  ASSERT_EQ(head_in.size(), size_t(64 * dim));
  std::vector<float> norm(static_cast<size_t>(dim));
  to_f32(m->weight("output_norm.weight"), 0, dim, norm.data());
  const float* x = p.inputs().data() + size_t(64) * dim;  // sample 1
  double max_err = 0.0;
  for (int t = 0; t < 64; ++t) {
    double ss = 0.0;
    for (int j = 0; j < dim; ++j) ss += double(x[t * dim + j]) * x[t * dim + j];
    const double inv = 1.0 / std::sqrt(ss / dim + m->config.norm_eps);
    for (int j = 0; j < dim; ++j)
      max_err = std::max(max_err, std::fabs(norm[size_t(j)] * x[t * dim + j] * inv - head_in[size_t(t * dim + j)]));
  }
  EXPECT_LT(max_err, 1e-4);
}

// AWQ's scales folded into norms and linears (no rounding, no clipping)
// leave the fp32 model's logits unchanged.
TEST(Awq, ScaleFoldingKeepsTheModelsOutputs) {
  auto m = stories();
  CalibrationSet cs = calib(*m, 4, 64);
  Runner before(*m, 64, 1);
  std::vector<float> ref;
  before.forward(cs.samples[0], 0, true, ref);
  LayerPipeline p(*m, cs, 2);
  AwqOptions o;
  o.clip = false;
  std::vector<AwqGroupReport> reports;
  // The search rounds candidates to int3 groups, so the chosen scales are not all 1.
  for (int l = 0; l < p.n_layers(); ++l) p.set_inputs(awq_layer(p, l, o, int_target(3, -1), reports));
  int non_trivial = 0;
  for (const auto& g : reports) non_trivial += g.alpha > 0.0;
  EXPECT_GT(non_trivial, 0) << "every group chose alpha 0: the folding was not exercised";
  Runner after(*m, 64, 1);
  std::vector<float> out;
  after.forward(cs.samples[0], 0, true, out);
  double max_err = 0.0, max_ref = 0.0;
  for (size_t i = 0; i < ref.size(); ++i) {
    max_err = std::max(max_err, double(std::fabs(out[i] - ref[i])));
    max_ref = std::max(max_ref, double(std::fabs(ref[i])));
  }
  EXPECT_LT(max_err, 1e-5 * std::max(1.0, max_ref)) << "max |logit| " << max_ref;
}

// GPTQ and AWQ at 3 bits: lower proxy loss than RTN on every linear (GPTQ) and
// lower held-out perplexity than RTN with the same groups.
TEST(Calibrated, GptqAndAwqBeatRtnAt3Bits) {
  double ppl_rtn, ppl_gptq, ppl_awq;
  {
    auto m = stories();
    for (auto& [name, v] : m->weights)
      if (is_block_linear(name)) {
        std::vector<float> W(size_t(v.numel()));
        to_f32(v, 0, v.numel(), W.data());
        IntGroupQuant q = rtn_int_groups(W.data(), v.rows(), v.cols(), IntGroupSpec{3, -1, false});
        m->owned.push_back(q.dequantize());
        v.dtype = DType::F32;
        v.data = m->owned.back().data();
        v.nbytes = m->owned.back().size() * 4;
      }
    ppl_rtn = eval_ppl(*m);
  }
  {
    auto m = stories();
    CalibratedOptions o;
    o.method = "gptq";
    CalibratedResult r = quantize_calibrated(*m, calib(*m), o, int_target(3, -1));
    EXPECT_EQ(r.ints.size(), size_t(7 * m->config.n_layers));
    for (const auto& l : r.linears) EXPECT_LE(l.loss_method, l.loss_rtn * 1.0001) << l.name;
    ppl_gptq = eval_ppl(*m);
  }
  {
    auto m = stories();
    CalibratedOptions o;
    o.method = "awq";
    quantize_calibrated(*m, calib(*m), o, int_target(3, -1));
    ppl_awq = eval_ppl(*m);
  }
  EXPECT_LT(ppl_gptq, ppl_rtn);
  EXPECT_LT(ppl_awq, ppl_rtn);
  std::printf("int3 per-row: ppl rtn %.3f gptq %.3f awq %.3f\n", ppl_rtn, ppl_gptq, ppl_awq);
}

// The same calibration, recipe and seed give the same GGUF bytes at 1 and 2 threads.
TEST(Calibrated, GgufIsIdenticalAtOneAndTwoThreads) {
  std::string outs[2];
  for (int t : {1, 2}) {
    outs[t - 1] = tmp(fmt::format("gptq-t{}.gguf", t));
    auto r = lowbit::test::run_cli(fmt::format("quantize {} --type q8_0 --method gptq --calib {} --nsamples 8 --seqlen 64 -t {} -o {}",
                                               S(kModel), S(kC4), t, outs[t - 1]));
    ASSERT_EQ(r.code, 0) << r.out;
  }
  EXPECT_EQ(read_text_file(outs[0]), read_text_file(outs[1]));
}

// HF folders through the CLI: GPTQ (act-order) and AWQ layouts written, loaded
// back and evaluated; the folder's perplexity equals the in-memory one
// reported by --ppl up to the f16 storage of the unquantized tensors.
TEST(Calibrated, CliWritesHfFoldersThatLoad) {
  const std::string hf = S("models/stories260K-hf"), tok = S("models/stories260K/tok512.bin");
  const std::string text = S("text/tinystories_val.txt");
  for (const char* method : {"gptq", "awq"}) {
    const std::string out = tmp(std::string("hf-") + method);
    auto q = lowbit::test::run_cli(fmt::format(
        "quantize {} --tokenizer {} --method {} --bits 4 --group-size 32 {} --calib {} --nsamples 8 --seqlen 64 -o {} "
        "--ppl {} --ppl-chunks 20", hf, tok, method, std::string(method) == "gptq" ? "--act-order" : "", S(kC4), out, text));
    ASSERT_EQ(q.code, 0) << q.out;
    EXPECT_NE(q.out.find("left unquantized"), std::string::npos) << "172-wide FFN cannot pack 4-bit words: " << q.out;
    ASSERT_TRUE(fs::exists(out + "/config.json"));
    EXPECT_EQ(fs::exists(out + "/quantize_config.json"), std::string(method) == "gptq");
    auto p = lowbit::test::run_cli(fmt::format("ppl {} --tokenizer {} -f {} -c 128 --chunks 20", out, tok, text));
    ASSERT_EQ(p.code, 0) << p.out;
    auto ppl_of = [](const std::string& s, const std::string& key) {
      const size_t at = s.rfind(key);
      return at == std::string::npos ? -1.0 : std::stod(s.substr(at + key.size()));
    };
    const double in_memory = ppl_of(q.out, "ppl       "), loaded = ppl_of(p.out, "PPL = ");
    EXPECT_GT(in_memory, 1.0);
    EXPECT_NEAR(loaded, in_memory, 0.01 * in_memory) << method;
  }
}

TEST(Calibrated, CliErrorsAreClear) {
  const std::string model = S(kModel);
  auto r = lowbit::test::run_cli(fmt::format("quantize {} --type q8_0 --method gptq -o {}", model, tmp("x.gguf")));
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("--calib"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(tmp("x.gguf")));
  r = lowbit::test::run_cli(fmt::format("quantize {} --method awq --bits 3 --calib {} -o {}", model, S(kC4), tmp("awq3")));
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("4-bit"), std::string::npos) << r.out;
}
