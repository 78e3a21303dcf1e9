// The three copies of stories260K (GGUF, Hugging Face folder, llama2.c .bin)
// against values llama.cpp printed for the same GGUF and text. The expected
// values below were produced by llama.cpp (commit c392e50, built beside the
// project, never part of it) with:
//   llama-tokenize -m stories260K-f32.gguf -f TEXT --ids
//   llama-perplexity -m stories260K-f32.gguf -f tinystories_val.txt -c 128 --chunks 20 -ctk f32 -ctv f32
//     -> PPL = 3.7371 +/- 0.18631      (default f16 KV cache: 3.7372 +/- 0.18631)
//   llama-perplexity ... -c 256 --chunks 10 -ctk f32 -ctv f32
//     -> PPL = 3.4980 +/- 0.17001      (default f16 KV cache: 3.4982 +/- 0.17001)
//   llama-cli -m stories260K-f32.gguf -p "" -n 60 --temp 0 --top-k 1   (greedy ids below)
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "core/read_file.h"
#include "core/sha256.h"
#include "eval/perplexity.h"
#include "io/model_loader.h"
#include "model/forward.h"
#include "paths.h"
#include "runtime/generate.h"
#include "runtime/sampler.h"

namespace {

using lowbit::Model;

std::string S(const std::string& rel) { return lowbit::test::shared(rel); }

struct Copy {
  const char* name;
  std::string path;
  std::string tokenizer;  // the HF folder ships no tokenizer file: use the llama2.c one
};

std::vector<Copy> copies() {
  return {{"gguf", S("models/stories260K/stories260K-f32.gguf"), ""},
          {"hf", S("models/stories260K-hf"), S("models/stories260K/tok512.bin")},
          {"llama2c", S("models/stories260K/stories260K.bin"), ""}};
}

std::unique_ptr<Model> load(const Copy& c) {
  lowbit::LoadOptions o;
  o.tokenizer_path = c.tokenizer;
  return lowbit::load_model(c.path, o);
}

std::string ids_text(const std::vector<int32_t>& ids) {
  std::string s;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) s += ' ';
    s += std::to_string(ids[i]);
  }
  return s;
}

// The whole validation text as llama-perplexity reads it (-f drops one trailing '\n').
std::string val_text() {
  std::string t = lowbit::read_text_file(S("text/tinystories_val.txt"));
  if (!t.empty() && t.back() == '\n') t.pop_back();
  return t;
}

TEST(ReferenceLlamaCpp, TokenizationMatchesLlamaTokenize) {
  const std::vector<std::pair<std::string, std::vector<int32_t>>> cases = {
      {"Once upon a time, there was a little girl named Lily.",
       {1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426}},
      {"Hello world", {1, 346, 306, 414, 263, 304, 341}},
      {" leading space", {1, 410, 278, 411, 380, 299, 262, 427, 412, 331}},
      {"a  b\n\nc", {1, 261, 410, 268, 13, 13, 429}},
      {"The cat sat on the mat. 123 4567!",
       {1, 291, 280, 294, 262, 294, 353, 265, 284, 294, 426, 410, 475, 479, 472, 410, 484, 480, 490, 491, 443}},
  };
  for (const Copy& c : copies()) {
    auto m = load(c);
    for (const auto& [text, ids] : cases) EXPECT_EQ(m->tok().encode(text, true), ids) << c.name << ": " << text;
    // The whole validation file: 393018 tokens whose space-joined ids hash to llama.cpp's.
    std::vector<int32_t> all = m->tok().encode(val_text(), true);
    EXPECT_EQ(all.size(), 393018u) << c.name;
    EXPECT_EQ(lowbit::sha256_hex(ids_text(all)), "dc9c3316d4a5aa2e58534f4460a0e9ea595368321741f5dab6c6e846439fe1d0")
        << c.name;
  }
}

TEST(ReferenceLlamaCpp, GreedyGenerationMatchesLlamaCli) {
  const std::vector<int32_t> expected = {
      403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396, 267, 337,
      410, 408, 419, 292, 411, 322, 265, 282, 295, 433, 426, 385, 328, 432, 358, 394, 261, 370, 432, 352,
      266, 268, 388, 426, 338, 391, 266, 267, 337, 335, 312, 432, 398, 312, 286, 267, 414, 270, 333, 415};
  for (const Copy& c : copies()) {
    auto m = load(c);
    for (int threads : {1, 2}) {
      lowbit::Runner runner(*m, 128, threads);
      lowbit::Sampler greedy(lowbit::SamplerParams{.temperature = 0.0f});
      std::vector<int32_t> bos = {1};
      auto r = lowbit::generate(runner, m->tok(), bos, 60, greedy);
      EXPECT_EQ(r.tokens, expected) << c.name << " threads " << threads;
      EXPECT_EQ(m->tok().decode(r.tokens).rfind("Once upon a time, there was a little girl named Lily. She loved to "
                                                "play outside in the park. One day, she saw a big, red ball.", 0),
                0u);
    }
  }
}

TEST(ReferenceLlamaCpp, PerplexityMatchesLlamaPerplexity) {
  const std::string text = val_text();
  struct Case {
    int ctx, chunks;
    double ppl, err;
  };
  for (const Case& k : {Case{128, 20, 3.7371, 0.18631}, Case{256, 10, 3.4980, 0.17001}}) {
    std::vector<double> ppls;
    for (const Copy& c : copies()) {
      auto m = load(c);
      lowbit::PplOptions o;
      o.n_ctx = k.ctx;
      o.max_chunks = k.chunks;
      o.n_threads = 2;
      lowbit::PplResult r = lowbit::perplexity(*m, text, o);
      EXPECT_EQ(r.n_chunks, k.chunks);
      EXPECT_EQ(r.n_scored, int64_t(k.chunks) * (k.ctx / 2 - 1));
      EXPECT_NEAR(r.ppl, k.ppl, 0.5e-4 + 1e-5) << c.name << " ctx " << k.ctx;  // llama.cpp prints 4 decimals
      EXPECT_NEAR(r.ppl_stderr, k.err, 0.5e-5 + 1e-6) << c.name;
      ppls.push_back(r.ppl);
    }
    for (double p : ppls) EXPECT_NEAR(p / ppls[0], 1.0, 1e-4);  // the three copies agree
  }
}

// GPTQ protocol: every token of each window scored. Checked against the
// same sum computed token by token through the KV cache (a different code
// path: single-token forwards instead of one batched window).
TEST(ReferenceLlamaCpp, GptqProtocolEqualsIncrementalScoring) {
  auto m = load(copies()[0]);
  std::vector<int32_t> tokens = m->tok().encode(val_text().substr(0, 4000), true);
  lowbit::PplOptions o;
  o.n_ctx = 64;
  o.max_chunks = 3;
  o.protocol = lowbit::PplProtocol::Gptq;
  lowbit::PplResult r = lowbit::perplexity_tokens(*m, tokens, o);
  EXPECT_EQ(r.n_scored, 3 * 63);
  lowbit::Runner runner(*m, 64, 1);
  std::vector<float> logits;
  double nll = 0;
  for (int w = 0; w < 3; ++w) {
    for (int j = 0; j < 63; ++j) {
      std::vector<int32_t> one = {tokens[size_t(w * 64 + j)]};
      runner.forward(one, j, false, logits);
      nll -= lowbit::log_softmax_at(logits.data(), m->config.n_vocab, tokens[size_t(w * 64 + j + 1)]);
    }
  }
  EXPECT_NEAR(r.ppl, std::exp(nll / (3 * 63)), 1e-4 * r.ppl);
}

}  // namespace
