// Speed measurement (eval/speed_bench.h, core/memory_bandwidth.h), the
// `lowbit bench` table, and the synthetic GGUF writer (model/synthetic.h).
// Only counts and shapes are checked here: speed itself lives in benchmarks.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "core/half.h"
#include "core/memory_bandwidth.h"
#include "eval/speed_bench.h"
#include "io/gguf.h"
#include "io/model_loader.h"
#include "lowbit/error.h"
#include "model/forward.h"
#include "model/synthetic.h"
#include "paths.h"

using namespace lowbit;

namespace {

using test::CmdResult;
using test::run_cli;

const std::string kStoriesGguf = "models/stories260K/stories260K-f32.gguf";

const Model& stories() {
  static std::unique_ptr<Model> m = load_model(test::shared(kStoriesGguf));
  return *m;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A tiny Llama (hidden 64, FFN 128, 4 heads, 2 KV heads, 2 layers) with stories260K's vocab.
SyntheticGgufOptions tiny_options(uint64_t seed, int threads) {
  SyntheticGgufOptions o;
  o.config = synthetic_llama_config(2, 64, 128, 4, 2, 0);
  o.seed = seed;
  o.threads = threads;
  o.vocab_gguf = test::shared(kStoriesGguf);
  return o;
}

TEST(SpeedBench, PromptAndGenerationCountTokens) {
  SpeedBenchOptions o;
  o.threads = 1;
  o.reps = 3;
  SpeedResult pp = run_speed_test(stories(), {SpeedTest::Kind::Prompt, 16}, o);
  EXPECT_EQ(pp.test.name(), "pp16");
  EXPECT_EQ(pp.threads, 1);
  ASSERT_EQ(pp.seconds.size(), 3u);
  ASSERT_EQ(pp.tokens_per_s().size(), 3u);
  for (double s : pp.seconds) EXPECT_GT(s, 0.0);
  EXPECT_GT(pp.mean_tps(), 0.0);
  EXPECT_GE(pp.stddev_tps(), 0.0);
  EXPECT_NEAR(pp.tokens_per_s()[0], 16.0 / pp.seconds[0], 1e-9);

  o.reps = 1;
  SpeedResult tg = run_speed_test(stories(), {SpeedTest::Kind::Generation, 8}, o);
  EXPECT_EQ(tg.test.name(), "tg8");
  ASSERT_EQ(tg.seconds.size(), 1u);
  EXPECT_GT(tg.mean_tps(), 0.0);
  EXPECT_EQ(tg.stddev_tps(), 0.0);  // one run: no spread
}

TEST(SpeedBench, RefusesEmptyTests) {
  EXPECT_THROW(run_speed_test(stories(), {SpeedTest::Kind::Prompt, 0}), Error);
  SpeedBenchOptions o;
  o.reps = 0;
  EXPECT_THROW(run_speed_test(stories(), {SpeedTest::Kind::Generation, 4}, o), Error);
}

TEST(SpeedBench, WeightBytesPerToken) {
  const Model& m = stories();
  // stories260K: 260,032 f32 parameters; the embedding [512, 64] is read one row per token
  // unless the output head is tied to it.
  EXPECT_EQ(weight_bytes(m), 260032u * 4u);
  const uint64_t emb = 512u * 64u * 4u;
  const uint64_t expect = m.config.tied_embeddings ? weight_bytes(m) : weight_bytes(m) - emb + emb / 512u;
  EXPECT_EQ(weight_bytes_per_token(m), expect);
}

TEST(SpeedBench, MemoryBandwidthIsPositive) {
  MemoryBandwidthOptions o;
  o.bytes = size_t(16) << 20;
  o.reps = 1;
  o.threads = 1;
  EXPECT_GT(measure_memory_read_gbs(o), 0.0);
}

TEST(SpeedBench, CpuModelName) { EXPECT_FALSE(cpu_model_name().empty()); }

TEST(BenchCli, PrintsTheTable) {
  CmdResult r = run_cli("bench " + test::shared(kStoriesGguf) + " -p 8 -n 4 -r 2 -t 1,2 --no-bandwidth");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("| model"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" test |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("t/s"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("bytes read per generated token"), std::string::npos) << r.out;
  // Two thread counts x (pp8, tg4) = four rows.
  size_t rows = 0;
  for (size_t pos = 0; (pos = r.out.find("| stories260K-f32.gguf", pos)) != std::string::npos; ++pos) ++rows;
  EXPECT_EQ(rows, 4u) << r.out;
  EXPECT_NE(r.out.find(" pp8 |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" tg4 |"), std::string::npos) << r.out;
  // 260,032 f32 parameters = 1,040,128 bytes, as llama-bench prints them.
  EXPECT_NE(r.out.find(" 0.99 MiB |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" 0.26 M |"), std::string::npos) << r.out;
}

TEST(BenchCli, BadModelFailsWithOneLine) {
  CmdResult r = run_cli("bench /nonexistent/model.gguf -p 8 -n 4");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("error:"), std::string::npos) << r.out;
}

TEST(SyntheticGguf, TinyModelLoadsAndRuns) {
  const std::string path = test::temp_dir() + "/synthetic-tiny.gguf";
  const int64_t n_params = write_synthetic_gguf(path, tiny_options(7, 2));
  auto m = load_model(path);
  EXPECT_EQ(m->config.n_vocab, 512);
  EXPECT_EQ(m->config.dim, 64);
  EXPECT_EQ(m->config.n_layers, 2);
  EXPECT_EQ(m->config.n_heads, 4);
  EXPECT_EQ(m->config.n_kv_heads, 2);
  EXPECT_EQ(m->config.hidden_dim, 128);
  EXPECT_EQ(m->n_params(), n_params);
  EXPECT_EQ(m->weight("blk.0.ffn_up.weight").dtype, DType::F16);
  EXPECT_EQ(m->weight("blk.1.attn_norm.weight").dtype, DType::F32);
  ASSERT_NE(m->tokenizer, nullptr);  // copied from stories260K

  Runner r(*m, 16, 2);
  std::vector<int32_t> tokens = {1, 100, 200, 300};
  std::vector<float> logits;
  r.forward(tokens, 0, true, logits);
  ASSERT_EQ(logits.size(), 4u * 512u);
  for (float x : logits) ASSERT_TRUE(std::isfinite(x));
  float spread = 0;
  for (float x : logits) spread = std::max(spread, std::abs(x - logits[0]));
  EXPECT_GT(spread, 0.0f);  // random weights: logits differ

  // Weight scale is as asked: std of a large matrix near 0.02.
  const TensorView& w = m->weight("output.weight");
  double ss = 0;
  for (int64_t i = 0; i < w.numel(); ++i) {
    float v = f16_to_f32(static_cast<const uint16_t*>(w.data)[i]);
    ss += double(v) * v;
  }
  EXPECT_NEAR(std::sqrt(ss / double(w.numel())), 0.02, 0.001);
}

TEST(SyntheticGguf, SameSeedSameBytesAnyThreads) {
  const std::string a = test::temp_dir() + "/syn-a.gguf", b = test::temp_dir() + "/syn-b.gguf",
                    c = test::temp_dir() + "/syn-c.gguf";
  write_synthetic_gguf(a, tiny_options(11, 1));
  write_synthetic_gguf(b, tiny_options(11, 2));
  write_synthetic_gguf(c, tiny_options(12, 2));
  const std::string ba = read_bytes(a);
  EXPECT_GT(ba.size(), 100000u);
  EXPECT_EQ(ba, read_bytes(b));
  EXPECT_NE(ba, read_bytes(c));
}

TEST(SyntheticGguf, RefusesBadShapes) {
  SyntheticGgufOptions o = tiny_options(1, 1);
  o.config = synthetic_llama_config(2, 64, 128, 5, 5, 0);  // 64 not a multiple of 5 heads
  EXPECT_THROW(write_synthetic_gguf(test::temp_dir() + "/bad.gguf", o), Error);
}

}  // namespace
