// Importance matrices: the collector against a naive recomputation of
// layer 0's input, llama-imatrix golden values, the imatrix.dat reader/writer
// (round trip, corrupt files), quantizing with an imatrix, and the CLI.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/read_file.h"
#include "core/sha256.h"
#include "eval/imatrix.h"
#include "formats/format.h"
#include "io/gguf.h"
#include "io/model_loader.h"
#include "lowbit/error.h"
#include "model/synthetic.h"
#include "paths.h"
#include "quant/gguf_export.h"
#include "quant/recipe.h"

using namespace lowbit;
namespace fs = std::filesystem;

namespace {

using lowbit::test::CmdResult;
using lowbit::test::run_cli;

std::string S(const std::string& rel) { return lowbit::test::shared(rel); }
std::string tmp(const std::string& name) { return lowbit::test::temp_dir() + "/" + name; }
const std::string kGguf = "models/stories260K/stories260K-f32.gguf";

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

// The first `n_bytes` of TinyStories validation, cut after a newline (so the
// tokens of every whole line equal those of the full text).
std::string text_prefix(size_t n_bytes) {
  std::string t = read_text_file(S("text/tinystories_val.txt"));
  size_t cut = t.find('\n', n_bytes);
  return t.substr(0, cut == std::string::npos ? t.size() : cut + 1);
}

const Model& stories() {
  static std::unique_ptr<Model> m = load_model(S(kGguf));
  return *m;
}

ImatrixData small_imatrix(int n_ctx = 32, int chunks = 3) {
  ImatrixOptions o;
  o.n_ctx = n_ctx;
  o.max_chunks = chunks;
  o.compute_ppl = false;
  o.dataset = "tinystories_val.txt";
  return compute_imatrix(stories(), text_prefix(4000), o).data;
}

RecipeOptions q4_0() {
  RecipeOptions r;
  r.type = "Q4_0";
  return r;
}

// llama-imatrix's stored values for blk.0.attn_q.weight (ncall 20), from the
// run described at MatchesLlamaImatrixGolden: [64].
const float kLlamaBlk0AttnQ[64] = {
    8.726078987121582f, 9.492998123168945f, 7.230193138122559f, 23.745973587036133f,
    33.09584045410156f, 62.239540100097656f, 47.78961944580078f, 31.012351989746094f,
    16.59806251525879f, 21.918848037719727f, 13.361551284790039f, 6.595907688140869f,
    39.79050064086914f, 19.555278778076172f, 29.207372665405273f, 79.60960388183594f,
    15.866722106933594f, 16.72569465637207f, 72.70111846923828f, 38.591156005859375f,
    73.77729034423828f, 12.528233528137207f, 34.89365768432617f, 22.803356170654297f,
    24.63475799560547f, 18.79300308227539f, 15.362357139587402f, 17.620914459228516f,
    22.043365478515625f, 41.71895980834961f, 27.631229400634766f, 8.757597923278809f,
    17.89482879638672f, 45.52479553222656f, 8.030136108398438f, 14.333108901977539f,
    10.199478149414062f, 35.069583892822266f, 13.641225814819336f, 11.298177719116211f,
    11.22026252746582f, 11.861303329467773f, 15.344327926635742f, 52.34318542480469f,
    25.15192985534668f, 30.331588745117188f, 8.133710861206055f, 49.836952209472656f,
    6.112288475036621f, 10.920499801635742f, 21.42288589477539f, 41.47932434082031f,
    18.474855422973633f, 21.452861785888672f, 20.250871658325195f, 6.286053657531738f,
    74.67330932617188f, 24.70139503479004f, 26.146650314331055f, 15.198508262634277f,
    6.2534260749816895f, 21.852745056152344f, 43.85791015625f, 11.210906982421875f,
};

void put_i32(std::vector<uint8_t>& b, int32_t v) {
  uint8_t c[4];
  std::memcpy(c, &v, 4);
  b.insert(b.end(), c, c + 4);
}
void set_i32(std::vector<uint8_t>& b, size_t at, int32_t v) { std::memcpy(b.data() + at, &v, 4); }

}  // namespace

// Layer 0's attention input is RMSNorm(embedding) * attn_norm: recompute the
// mean of x^2 per column from the weights alone, in double, and compare.
TEST(Imatrix, Blk0AttnMatchesNaiveRecomputation) {
  const Model& m = stories();
  const int n_ctx = 32, chunks = 3, dim = m.config.dim;
  std::vector<int32_t> tokens = m.tok().encode(text_prefix(4000), true);
  ImatrixOptions o;
  o.n_ctx = n_ctx;
  o.max_chunks = chunks;
  ImatrixResult r = compute_imatrix_tokens(m, tokens, o);
  EXPECT_EQ(r.n_chunks, chunks);
  EXPECT_GT(r.ppl, 1.0);

  const TensorView& emb = m.weight("token_embd.weight");   // [n_vocab, dim]
  const TensorView& norm = m.weight("blk.0.attn_norm.weight");  // [dim]
  std::vector<float> w(static_cast<size_t>(dim)), e(static_cast<size_t>(dim));
  to_f32(norm, 0, dim, w.data());
  std::vector<double> sum(static_cast<size_t>(dim), 0.0);
  for (int c = 0; c < chunks; ++c)
    for (int i = 0; i < n_ctx; ++i) {
      const int32_t tok = i == 0 ? m.tok().bos_id() : tokens[size_t(c * n_ctx + i)];
      to_f32(emb, int64_t(tok) * dim, dim, e.data());
      double ss = 0;
      for (float v : e) ss += double(v) * v;
      const double scale = 1.0 / std::sqrt(ss / dim + m.config.norm_eps);
      for (int j = 0; j < dim; ++j) {
        const double x = e[size_t(j)] * scale * w[size_t(j)];
        sum[size_t(j)] += x * x;
      }
    }
  for (const char* name : {"blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.0.attn_v.weight"}) {
    const ImatrixEntry* en = r.data.find(name);
    ASSERT_NE(en, nullptr) << name;
    EXPECT_EQ(en->ncall, chunks) << name;  // one call per 32-token chunk
    std::vector<float> imp = r.data.importance(name);
    ASSERT_EQ(imp.size(), size_t(dim));
    for (int j = 0; j < dim; ++j) {
      const double mean = sum[size_t(j)] / (chunks * n_ctx);
      EXPECT_NEAR(imp[size_t(j)], mean, 1e-5 * mean + 1e-9) << name << " column " << j;
      EXPECT_NEAR(en->values[size_t(j)], mean * chunks, 1e-5 * mean * chunks + 1e-9) << name << " column " << j;
    }
  }
  // 5 layers x (q, k, v, output, gate, up, down); the head only with process_output.
  EXPECT_EQ(r.data.entries.size(), 35u);
  EXPECT_EQ(r.data.find("output.weight"), nullptr);
  EXPECT_EQ(r.data.last_call, chunks);
  EXPECT_EQ(r.data.entries.front().name, "blk.0.attn_q.weight");  // first-observed order
  EXPECT_EQ(r.data.find("blk.0.ffn_down.weight")->values.size(), size_t(m.config.hidden_dim));
}

// Golden values from llama.cpp (commit c392e50), produced with
//   llama-imatrix -m stories260K-f32.gguf -f tinystories_val.txt -c 128 --chunks 20 -t 1 -o llama.dat
// (stored values, i.e. mean x^2 * ncall; it printed "Final estimate: PPL = 3.7372").
// Layer 0's q input depends on the weights alone and agrees to f32 rounding;
// deeper inputs pass through llama.cpp's f16 KV cache (measured: <= 8e-4 relative).
TEST(Imatrix, MatchesLlamaImatrixGolden) {
  ImatrixOptions o;
  o.n_ctx = 128;
  o.max_chunks = 20;
  o.n_threads = 1;
  ImatrixResult r = compute_imatrix(stories(), text_prefix(12000), o);  // the first 2560 tokens of the text
  EXPECT_NEAR(r.ppl, 3.7372, 2e-3);
  EXPECT_EQ(r.data.entries.size(), 35u);
  EXPECT_EQ(r.data.last_call, 20);
  struct Golden {
    const char* name;
    std::array<float, 4> v;
    double rel;
  };
  const Golden golden[] = {
      {"blk.2.attn_output.weight", {2.0879547595977783f, 2.670351505279541f, 4.14222526550293f, 2.412851095199585f}, 2e-3},
      {"blk.4.ffn_down.weight", {5.870744705200195f, 5.273386001586914f, 4.445827960968018f, 3.446338415145874f}, 2e-3},
  };
  const ImatrixEntry* q = r.data.find("blk.0.attn_q.weight");
  ASSERT_NE(q, nullptr);
  for (size_t j = 0; j < 64; ++j) EXPECT_NEAR(q->values[j], kLlamaBlk0AttnQ[j], 2e-6 * kLlamaBlk0AttnQ[j]) << j;
  for (const Golden& g : golden) {
    const ImatrixEntry* e = r.data.find(g.name);
    ASSERT_NE(e, nullptr) << g.name;
    EXPECT_EQ(e->ncall, 20) << g.name;
    for (size_t j = 0; j < 4; ++j) EXPECT_NEAR(e->values[j], g.v[j], g.rel * g.v[j]) << g.name << " column " << j;
  }
}

TEST(Imatrix, ProcessOutputAddsTheHead) {
  ImatrixOptions o;
  o.n_ctx = 32;
  o.max_chunks = 2;
  o.process_output = true;
  o.compute_ppl = false;
  ImatrixResult r = compute_imatrix(stories(), text_prefix(4000), o);
  const std::string head = stories().config.tied_embeddings ? "token_embd.weight" : "output.weight";
  const ImatrixEntry* e = r.data.find(head);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->ncall, 2);
  EXPECT_EQ(e->values.size(), size_t(stories().config.dim));
}

// Calls under 16 tokens are ignored, as llama-imatrix does: -c 40 is one call
// of 40 per chunk; a collector fed 15-token calls keeps nothing.
TEST(Imatrix, SmallCallsAreIgnored) {
  ImatrixCollector col;
  std::vector<float> x(15 * 8, 1.0f);
  col.observe("blk.0.attn_q.weight", x.data(), 15, 8);
  EXPECT_EQ(col.n_entries(), 0u);
  col.observe("output.weight", x.data(), 15, 8);
  col.observe("blk.0.attn_q.weight", x.data(), 16, 7);
  EXPECT_EQ(col.n_entries(), 1u);
  EXPECT_THROW(col.observe("blk.0.attn_q.weight", x.data(), 16, 8), Error);  // width changed
  ImatrixData d = col.result("x");
  ASSERT_EQ(d.entries.size(), 1u);
  EXPECT_EQ(d.entries[0].ncall, 1);
  EXPECT_FLOAT_EQ(d.entries[0].values[3], 1.0f);  // 16 * 1 / 16 tokens * 1 call
}

TEST(Imatrix, WriteReadRoundTripIsByteIdentical) {
  ImatrixData d = small_imatrix();
  const std::string path = tmp("rt.dat");
  write_imatrix(d, path);
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  std::vector<uint8_t> bytes = read_bytes(path);
  EXPECT_EQ(bytes, serialize_imatrix(d));
  ImatrixData back = read_imatrix(path);
  EXPECT_EQ(serialize_imatrix(back), bytes);
  EXPECT_EQ(back.dataset, "tinystories_val.txt");
  EXPECT_EQ(back.last_call, 3);
  ASSERT_EQ(back.entries.size(), d.entries.size());
  for (size_t i = 0; i < d.entries.size(); ++i) {
    EXPECT_EQ(back.entries[i].name, d.entries[i].name);
    EXPECT_EQ(back.entries[i].values, d.entries[i].values);
  }
  // Header layout: n_entries, then the first entry's name length and name.
  int32_t n, len;
  std::memcpy(&n, bytes.data(), 4);
  std::memcpy(&len, bytes.data() + 4, 4);
  EXPECT_EQ(n, 35);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(bytes.data() + 8), size_t(len)), "blk.0.attn_q.weight");
  // A file without the trailer (older llama-imatrix) reads too.
  d.has_trailer = false;
  std::vector<uint8_t> old = serialize_imatrix(d);
  EXPECT_EQ(old.size(), bytes.size() - 8 - std::string("tinystories_val.txt").size());
  ImatrixData o = parse_imatrix(old, "old.dat");
  EXPECT_FALSE(o.has_trailer);
  EXPECT_EQ(o.last_call, 0);
}

// Every truncation either parses (only the cut right before the trailer
// does) or throws lowbit::Error; huge and negative counts are refused.
TEST(Imatrix, CorruptFilesThrowErrors) {
  ImatrixData d;
  d.entries.push_back({"blk.0.attn_q.weight", 2, {1.0f, 2.0f, 3.0f}});
  d.entries.push_back({"blk.0.attn_k.weight", 2, {4.0f, 5.0f}});
  d.last_call = 2;
  d.dataset = "t.txt";
  const std::vector<uint8_t> good = serialize_imatrix(d);
  const size_t entries_end = good.size() - 8 - 5;
  for (size_t cut = 0; cut < good.size(); ++cut) {
    std::vector<uint8_t> b(good.begin(), good.begin() + cut);
    if (cut == entries_end) {
      EXPECT_NO_THROW(parse_imatrix(b, "cut.dat"));
      continue;
    }
    EXPECT_THROW(parse_imatrix(b, "cut.dat"), Error) << "cut at " << cut;
  }
  auto expect_error = [&](size_t at, int32_t v, const char* needle) {
    std::vector<uint8_t> b = good;
    set_i32(b, at, v);
    try {
      parse_imatrix(b, "bad.dat");
      ADD_FAILURE() << "no error for value " << v << " at " << at;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("bad.dat"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  const size_t name0 = 4, ncall0 = 8 + 19, nval0 = ncall0 + 4;
  expect_error(0, INT32_MAX, "entry count");
  expect_error(0, 0, "entry count");
  expect_error(0, -5, "entry count");
  expect_error(name0, INT32_MAX, "entry 0: name length");
  expect_error(name0, -1, "entry 0: name length");
  expect_error(ncall0, -3, "blk.0.attn_q.weight");
  expect_error(nval0, INT32_MAX, "entry 0 'blk.0.attn_q.weight': value count");
  expect_error(nval0, 0, "value count");
  expect_error(nval0 + 4, 0x7fc00000, "value 0");  // NaN
  expect_error(entries_end + 4, INT32_MAX, "dataset name length");
  expect_error(entries_end + 4, 4, "unexpected bytes");
  // Trailing garbage, a duplicate name, a NUL in a name.
  std::vector<uint8_t> b = good;
  b.push_back(0);
  EXPECT_THROW(parse_imatrix(b, "x.dat"), Error);
  ImatrixData dup = d;
  dup.entries[1].name = dup.entries[0].name;
  dup.entries[1].values = {1, 2, 3};
  EXPECT_THROW(parse_imatrix(serialize_imatrix(dup), "dup.dat"), Error);
  b.clear();
  put_i32(b, 1);
  put_i32(b, 2);
  b.push_back('a');
  b.push_back(0);
  put_i32(b, 1);
  put_i32(b, 1);
  put_i32(b, 0);
  EXPECT_THROW(parse_imatrix(b, "nul.dat"), Error);
  EXPECT_THROW(read_imatrix(tmp("missing.dat")), Error);
}

// Quantizing with the imatrix changes the bytes and lowers the error the
// imatrix weighs (sum over columns of importance * squared error).
TEST(Imatrix, QuantizeWithImatrixLowersWeightedError) {
  const Model& m = stories();
  ImatrixData im = small_imatrix(64, 4);
  QuantPlan plan = make_plan(m, q4_0());
  ExportOptions plain, with;
  with.imatrix = &im;
  with.imatrix_path = "small.dat";
  export_gguf(m, plan, tmp("plain.gguf"), plain);
  export_gguf(m, plan, tmp("with.gguf"), with);
  EXPECT_NE(read_bytes(tmp("plain.gguf")), read_bytes(tmp("with.gguf")));
  GgufFile a(tmp("plain.gguf")), b(tmp("with.gguf"));
  EXPECT_EQ(b.get_str("quantize.imatrix.file"), "small.dat");
  EXPECT_EQ(b.get_str("quantize.imatrix.dataset"), "tinystories_val.txt");
  EXPECT_EQ(b.get_i32("quantize.imatrix.entries_count"), 35);
  EXPECT_EQ(b.get_i32("quantize.imatrix.chunks_count"), 4);
  EXPECT_FALSE(a.has("quantize.imatrix.file"));
  int n_compared = 0, n_better = 0;
  double err_plain = 0, err_with = 0;
  for (const TensorPlan& t : plan.tensors) {
    std::vector<float> imp = im.importance(t.name);
    if (imp.empty() || !format_traits(t.type).quantized) continue;
    const TensorView& src = m.weight(t.name);
    const int64_t cols = src.cols(), rows = src.rows();
    const size_t rb = row_bytes(t.type, cols);
    std::vector<float> x(static_cast<size_t>(cols)), ya(static_cast<size_t>(cols)), yb(static_cast<size_t>(cols));
    double ea = 0, eb = 0;
    for (int64_t r = 0; r < rows; ++r) {
      to_f32(src, r * cols, cols, x.data());
      format_traits(t.type).dequantize_row(a.raw_data(a.info(t.name)) + size_t(r) * rb, ya.data(), cols);
      format_traits(t.type).dequantize_row(b.raw_data(b.info(t.name)) + size_t(r) * rb, yb.data(), cols);
      for (int64_t j = 0; j < cols; ++j) {
        ea += imp[size_t(j)] * double(x[j] - ya[j]) * (x[j] - ya[j]);
        eb += imp[size_t(j)] * double(x[j] - yb[j]) * (x[j] - yb[j]);
      }
    }
    ++n_compared;
    n_better += eb < ea;
    err_plain += ea;
    err_with += eb;
  }
  EXPECT_GE(n_compared, 20);               // the attention tensors (64 wide) are q4_0
  EXPECT_GE(n_better, n_compared * 3 / 4);  // per tensor, most improve
  EXPECT_LT(err_with, 0.9 * err_plain);     // and the total clearly does
}

// With llama-imatrix's entry for blk.0.attn_q, lowbit writes the bytes
// llama-quantize wrote: `llama-quantize --imatrix llama.dat stories260K-f32.gguf
// out.gguf Q3_K_S` stores that tensor as iq4_nl (64 columns do not fit q3_K);
// sha256 of its 2304 bytes below.
TEST(Imatrix, QuantizeMatchesLlamaQuantizeBytes) {
  ImatrixData im;
  im.entries.push_back({"blk.0.attn_q.weight", 20, std::vector<float>(std::begin(kLlamaBlk0AttnQ), std::end(kLlamaBlk0AttnQ))});
  im.last_call = 20;
  ExportOptions o;
  o.imatrix = &im;
  RecipeOptions ro;
  ro.type = "Q3_K_S";
  QuantPlan plan = make_plan(stories(), ro);
  ASSERT_EQ(plan.find("blk.0.attn_q.weight")->type, FormatId::IQ4_NL);
  export_gguf(stories(), plan, tmp("q3ks.gguf"), o);
  GgufFile g(tmp("q3ks.gguf"));
  const GgufTensorInfo& info = g.info("blk.0.attn_q.weight");
  ASSERT_EQ(info.nbytes, 2304u);
  EXPECT_EQ(sha256_hex(std::string_view(reinterpret_cast<const char*>(g.raw_data(info)), info.nbytes)),
            "93814ba5696b4465cdfda5e454caf8fd9e3ed8787f90433f785555db0925cf27");
}

TEST(Imatrix, QuantizeRefusesAMismatchedEntry) {
  ImatrixData im;
  im.entries.push_back({"blk.0.attn_q.weight", 1, std::vector<float>(10, 1.0f)});
  ExportOptions o;
  o.imatrix = &im;
  QuantPlan plan = make_plan(stories(), q4_0());
  try {
    export_gguf(stories(), plan, tmp("mismatch.gguf"), o);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("blk.0.attn_q.weight"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("10 values"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(tmp("mismatch.gguf")));
}

// `quantize --imatrix` plans with llama.cpp's imatrix rules: on a 16-layer
// model the Q4_0 mix stores blk.0/1.ffn_down as q4_1, and says why.
TEST(Imatrix, CliQuantizeWithImatrixPlansQ4_1FfnDown) {
  const std::string model = tmp("synth16.gguf"), dat = tmp("synth16.dat");
  SyntheticGgufOptions so;
  so.config = synthetic_llama_config(16, 64, 128, 2, 2, 256);
  so.threads = 1;
  write_synthetic_gguf(model, so);
  ImatrixData im;
  im.entries.push_back({"blk.0.ffn_down.weight", 1, std::vector<float>(128, 1.0f)});
  im.last_call = 1;
  write_imatrix(im, dat);
  auto line_of = [](const std::string& out, const std::string& name) {
    const size_t at = out.find(name + " ");
    return at == std::string::npos ? std::string() : out.substr(at, out.find('\n', at) - at);
  };
  CmdResult r = run_cli("quantize " + model + " -o " + tmp("synth16_q.gguf") + " --type Q4_0 --dry-run --imatrix " + dat);
  ASSERT_EQ(r.code, 0) << r.out;
  for (const char* t : {"blk.0.ffn_down.weight", "blk.1.ffn_down.weight"}) {
    EXPECT_NE(line_of(r.out, t).find("q4_1"), std::string::npos) << r.out;
    EXPECT_NE(line_of(r.out, t).find("with an imatrix"), std::string::npos) << r.out;
  }
  EXPECT_EQ(line_of(r.out, "blk.2.ffn_down.weight").find("q4_1"), std::string::npos) << r.out;
  r = run_cli("quantize " + model + " -o " + tmp("synth16_q.gguf") + " --type Q4_0 --dry-run");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out.find("q4_1"), std::string::npos) << r.out;
}

TEST(Imatrix, CliComputesAndQuantizeUsesIt) {
  const std::string text = tmp("calib.txt"), dat = tmp("cli.dat"), out = tmp("cli_q.gguf");
  {
    std::ofstream f(text, std::ios::binary);
    f << text_prefix(6000);
  }
  CmdResult r = run_cli("imatrix " + S(kGguf) + " -f " + text + " -o " + dat + " -c 64 --chunks 4 -t 1");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("entries   35"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("4 chunks of 64 = 256 tokens"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("PPL"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(dat + ".tmp"));
  ImatrixData d = read_imatrix(dat);
  EXPECT_EQ(d.entries.size(), 35u);
  EXPECT_EQ(d.last_call, 4);
  EXPECT_EQ(d.dataset, text);

  r = run_cli("quantize " + S(kGguf) + " -o " + out + " --type Q4_0 --imatrix " + dat);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("imatrix has no entry for token_embd.weight"), std::string::npos) << r.out;
  GgufFile g(out);
  EXPECT_EQ(g.get_str("quantize.imatrix.file"), dat);
  EXPECT_EQ(g.get_i32("quantize.imatrix.chunks_count"), 4);

  // A damaged imatrix: one line naming the file, non-zero exit, no output.
  std::vector<uint8_t> bytes = read_bytes(dat);
  bytes.resize(bytes.size() / 2);
  std::ofstream(tmp("half.dat"), std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  r = run_cli("quantize " + S(kGguf) + " -o " + tmp("half.gguf") + " --type Q4_0 --imatrix " + tmp("half.dat"));
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("half.dat"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("truncated"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(tmp("half.gguf")));

  // Too short a text for the context: a clear error.
  r = run_cli("imatrix " + S(kGguf) + " -f " + text + " -o " + tmp("short.dat") + " -c 4096");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("needs at least 8192"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(tmp("short.dat")));
}
