// Requantizing a quantized GGUF input: stories260K -> Q8_0 GGUF -> Q4_0
// (dequantize + quantize again: warned about, error and perplexity close to
// quantizing the f32 original) and -> Q8_0 again (bytes copied unchanged).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/log.h"
#include "eval/perplexity.h"
#include "formats/format.h"
#include "io/gguf.h"
#include "io/model_loader.h"
#include "paths.h"
#include "quant/gguf_export.h"
#include "quant/recipe.h"

namespace lowbit {
namespace {

namespace fs = std::filesystem;

RecipeOptions recipe(const char* type) {
  RecipeOptions o;
  o.type = type;
  return o;
}

std::string tmp(const std::string& name) { return test::temp_dir() + "/" + name; }
std::string f32_model() { return test::shared("models/stories260K/stories260K-f32.gguf"); }

// Warnings logged while `f` runs.
template <class F>
std::vector<std::string> warnings_during(F&& f) {
  std::vector<std::string> w;
  set_log_sink([&](LogLevel l, const std::string& m) {
    if (l == LogLevel::Warn) w.push_back(m);
  });
  try {
    f();
  } catch (...) {
    set_log_sink(nullptr);
    throw;
  }
  set_log_sink(nullptr);
  return w;
}

int count_containing(const std::vector<std::string>& v, const std::string& part) {
  int n = 0;
  for (const auto& s : v) n += s.find(part) != std::string::npos;
  return n;
}

// The Q8_0 GGUF every test starts from (written once per test process).
const std::string& q8_model() {
  static const std::string path = [] {
    auto m = load_model(f32_model());
    const std::string out = tmp("stories260K-q8_0.gguf");
    export_gguf(*m, make_plan(*m, recipe("Q8_0")), out);
    return out;
  }();
  return path;
}

// sqrt(sum (a-b)^2 / sum a^2) over all weights of tensor `name`.
double rel_error(const Model& ref, const Model& q, const std::string& name) {
  const TensorView& a = ref.weight(name);
  const TensorView& b = q.weight(name);
  const int64_t n = a.numel();
  std::vector<float> x(static_cast<size_t>(n)), y(static_cast<size_t>(n));
  to_f32(a, 0, n, x.data());
  to_f32(b, 0, n, y.data());
  double se = 0, ss = 0;
  for (int64_t i = 0; i < n; ++i) se += double(x[i] - y[i]) * (x[i] - y[i]), ss += double(x[i]) * x[i];
  return std::sqrt(se / std::max(ss, 1e-30));
}

double ppl_of(const std::string& path) {
  std::ifstream f(test::shared("text/tinystories_val.txt"), std::ios::binary);
  std::string text(20000, '\0');
  f.read(text.data(), std::streamsize(text.size()));
  text.resize(size_t(f.gcount()));
  PplOptions o;
  o.n_ctx = 128;
  o.max_chunks = 4;
  o.n_threads = 2;
  auto m = load_model(path);
  return perplexity(*m, text, o).ppl;
}

TEST(Requantize, PlanShowsSourceTypeAndWarnsOnce) {
  auto q8 = load_model(q8_model());
  ASSERT_EQ(q8->weight("blk.0.attn_q.weight").dtype, DType::QUANT);
  QuantPlan p;
  auto warns = warnings_during([&] { p = make_plan(*q8, recipe("Q4_0")); });
  EXPECT_EQ(count_containing(warns, "requantizing"), 1) << ::testing::PrintToString(warns);
  EXPECT_EQ(count_containing(warns, "f16/bf16"), 1);
  EXPECT_GT(p.n_requantized, 0);
  const TensorPlan* t = p.find("blk.0.attn_q.weight");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->source_type, "q8_0");
  EXPECT_EQ(t->type, FormatId::Q4_0);
  EXPECT_FALSE(t->copy);
  EXPECT_NE(t->note.find("requantized from q8_0"), std::string::npos) << t->note;
  EXPECT_EQ(p.find("blk.0.ffn_down.weight")->source_type, "f16");  // rows of 172: q8_0 fell back to f16

  const std::string table = format_plan(p);
  EXPECT_EQ(table.find("WARNING"), table.rfind("WARNING"));  // once
  EXPECT_NE(table.find("WARNING"), std::string::npos);
  EXPECT_NE(table.find("q8_0     q4_0"), std::string::npos) << table;  // source, then type

  // An f32 source: no warning, source column f32.
  auto f32 = load_model(f32_model());
  QuantPlan pf;
  warns = warnings_during([&] { pf = make_plan(*f32, recipe("Q4_0")); });
  EXPECT_EQ(count_containing(warns, "requantizing"), 0);
  EXPECT_TRUE(pf.warning.empty());
  EXPECT_EQ(pf.find("blk.0.attn_q.weight")->source_type, "f32");
}

TEST(Requantize, Q8ToQ4CloseToQuantizingTheOriginal) {
  auto f32 = load_model(f32_model());
  auto q8 = load_model(q8_model());
  const std::string direct = tmp("direct-q4_0.gguf"), requant = tmp("requant-q4_0.gguf");
  export_gguf(*f32, make_plan(*f32, recipe("Q4_0")), direct);
  export_gguf(*q8, make_plan(*q8, recipe("Q4_0")), requant);

  auto d = load_model(direct), r = load_model(requant);
  for (const char* name : {"blk.0.attn_q.weight", "blk.2.attn_v.weight", "blk.4.ffn_up.weight", "token_embd.weight"}) {
    SCOPED_TRACE(name);
    EXPECT_EQ(r->weight(name).dtype, d->weight(name).dtype);
    EXPECT_EQ(r->weight(name).format, d->weight(name).format);
    const double e_direct = rel_error(*f32, *d, name), e_requant = rel_error(*f32, *r, name);
    EXPECT_GT(e_direct, 0.0);
    EXPECT_LT(e_requant, 0.2);
    EXPECT_LT(e_requant, 1.25 * e_direct);  // q8_0's own error is small next to q4_0's
  }
  const double p_f32 = ppl_of(f32_model()), p_direct = ppl_of(direct), p_requant = ppl_of(requant);
  EXPECT_TRUE(std::isfinite(p_requant));
  EXPECT_LT(p_requant, 1.5 * p_f32) << p_f32 << " " << p_direct;
  EXPECT_NEAR(p_requant, p_direct, 0.1 * p_direct) << p_f32;
}

TEST(Requantize, SameTypeCopiesBytesUnchanged) {
  auto q8 = load_model(q8_model());
  QuantPlan p;
  auto warns = warnings_during([&] { p = make_plan(*q8, recipe("Q8_0")); });
  EXPECT_EQ(count_containing(warns, "requantizing"), 0);
  EXPECT_EQ(p.n_requantized, 0);
  EXPECT_TRUE(p.warning.empty());
  int copies = 0;
  for (const TensorPlan& t : p.tensors) {
    if (t.source_type != "q8_0") continue;
    EXPECT_TRUE(t.copy) << t.name;
    EXPECT_NE(t.note.find("bytes copied unchanged"), std::string::npos) << t.note;
    ++copies;
  }
  EXPECT_GT(copies, 0);

  const std::string out = tmp("requant-q8_0.gguf");
  export_gguf(*q8, p, out);
  GgufFile a(q8_model()), b(out);
  ASSERT_EQ(a.infos().size(), b.infos().size());
  for (const auto& ia : a.infos()) {
    SCOPED_TRACE(ia.name);
    const GgufTensorInfo& ib = b.info(ia.name);
    EXPECT_EQ(ia.ggml_type, ib.ggml_type);
    ASSERT_EQ(ia.nbytes, ib.nbytes);
    EXPECT_EQ(std::memcmp(a.raw_data(ia), b.raw_data(ib), size_t(ia.nbytes)), 0);
  }
}

TEST(Requantize, CliDryRunWarns) {
  const std::string log = tmp("dry-run.txt");
  const std::string cmd = test::cli() + " quantize " + q8_model() + " --type Q4_K_M --dry-run >" + log + " 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  std::ifstream f(log);
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string out = ss.str();
  EXPECT_NE(out.find("WARNING"), std::string::npos) << out;
  EXPECT_NE(out.find("f16/bf16"), std::string::npos) << out;
  EXPECT_NE(out.find("source"), std::string::npos) << out;
  EXPECT_NE(out.find("q8_0"), std::string::npos) << out;
}

}  // namespace
}  // namespace lowbit
