// KL divergence against a base model (eval/kld.h): zero against itself, equal
// to a direct computation from full logits, the saved-base file round trip
// (exact figures bit-identical, top-k KLD a close lower bound), bad files and
// mismatched setups refused with lowbit::Error, and the CLI end to end.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "core/read_file.h"
#include "eval/kld.h"
#include "eval/perplexity.h"
#include "io/model_loader.h"
#include "lowbit/error.h"
#include "model/forward.h"
#include "paths.h"

using namespace lowbit;

namespace {

const std::string kF32 = "models/stories260K/stories260K-f32.gguf";

const std::string& text() {
  // A prefix is plenty for 4 windows of 128 tokens and keeps tokenizing fast.
  static std::string t = read_text_file(test::shared("text/tinystories_val.txt")).substr(0, 20000);
  return t;
}

const Model& base_model() {
  static std::unique_ptr<Model> m = load_model(test::shared(kF32));
  return *m;
}

// A Q4_0 GGUF written by the CLI once per process.
const std::string& q4_path() {
  static std::string p = [] {
    const std::string out = test::temp_dir() + "/stories-q4_0.gguf";
    const std::string cmd = test::cli() + " quantize " + test::shared(kF32) + " -o " + out + " --type q4_0 > /dev/null 2>&1";
    EXPECT_EQ(0, std::system(cmd.c_str())) << cmd;
    return out;
  }();
  return p;
}

const Model& quant_model() {
  static std::unique_ptr<Model> m = load_model(q4_path());
  return *m;
}

KldOptions opts(int chunks = 4) {
  KldOptions o;
  o.n_ctx = 128;
  o.max_chunks = chunks;
  o.n_threads = 1;  // the windows are tiny; threads would only wait on each other
  return o;
}

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}
void write_bytes(const std::string& path, const std::string& b) { std::ofstream(path, std::ios::binary) << b; }

TEST(Kld, AgainstItselfIsZero) {
  std::unique_ptr<Model> again = load_model(test::shared(kF32));
  KldResult r = kld(base_model(), *again, text(), opts());
  EXPECT_EQ(r.n_scored, 4 * 63);
  EXPECT_LT(r.kld_max, 1e-12);
  EXPECT_GE(r.kld_mean, 0.0);
  EXPECT_EQ(r.top1, 1.0);
  EXPECT_EQ(r.ppl_ratio, 1.0);
  EXPECT_EQ(r.dp_rms, 0.0);
  EXPECT_EQ(r.ppl_base, r.ppl_quant);
  // Same protocol as `lowbit ppl`.
  PplOptions po;
  po.n_ctx = 128;
  po.max_chunks = 4;
  po.n_threads = 1;
  PplResult p = perplexity(base_model(), text(), po);
  EXPECT_NEAR(r.ppl_base, p.ppl, 1e-12 * p.ppl);
  EXPECT_NEAR(r.ppl_base_err, p.ppl_stderr, 1e-9 * p.ppl_stderr);
}

// Direct computation: windows cut here, softmax in long double, no code shared with kld.cpp.
std::vector<double> direct_kld(const Model& b, const Model& q, int n_ctx, int chunks, double* same_top) {
  std::vector<int32_t> toks = b.tok().encode(text(), true);
  const int V = b.config.n_vocab;
  Runner rb(b, n_ctx, 1), rq(q, n_ctx, 1);
  std::vector<double> out;
  int same = 0;
  for (int c = 0; c < chunks; ++c) {
    std::vector<int32_t> w(toks.begin() + c * n_ctx, toks.begin() + (c + 1) * n_ctx);
    w[0] = b.tok().bos_id();
    std::vector<float> lb, lq;
    rb.forward(w, 0, true, lb);
    rq.forward(w, 0, true, lq);
    for (int j = n_ctx / 2; j < n_ctx - 1; ++j) {
      const float* x = &lb[size_t(j) * V];
      const float* y = &lq[size_t(j) * V];
      long double zx = 0, zy = 0;
      for (int i = 0; i < V; ++i) {
        zx += std::exp((long double)x[i]);
        zy += std::exp((long double)y[i]);
      }
      long double kl = 0;
      int ax = 0, ay = 0;
      for (int i = 0; i < V; ++i) {
        const long double p = std::exp((long double)x[i]) / zx, qq = std::exp((long double)y[i]) / zy;
        kl += p * std::log(p / qq);
        if (x[i] > x[ax]) ax = i;
        if (y[i] > y[ay]) ay = i;
      }
      same += ax == ay;
      out.push_back(double(kl));
    }
  }
  *same_top = double(same) / double(out.size());
  return out;
}

TEST(Kld, MatchesDirectComputation) {
  KldResult r = kld(base_model(), quant_model(), text(), opts(2));
  double same = 0;
  std::vector<double> ref = direct_kld(base_model(), quant_model(), 128, 2, &same);
  ASSERT_EQ(r.kld.size(), ref.size());
  double mean = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    EXPECT_GE(r.kld[i], 0.0) << i;
    EXPECT_NEAR(r.kld[i], ref[i], 1e-9 + 1e-6 * ref[i]) << i;
    mean += ref[i];
  }
  mean /= double(ref.size());
  EXPECT_GT(mean, 1e-4);  // Q4_0 really differs
  EXPECT_NEAR(r.kld_mean, mean, 1e-9);
  EXPECT_EQ(r.top1, same);
  EXPECT_LT(r.top1, 1.0);
  EXPECT_GT(r.ppl_ratio, 1.0);
  EXPECT_LE(r.kld_median, r.kld_p99);
  EXPECT_LE(r.kld_p99, r.kld_max);
}

TEST(Kld, SavedBaseRoundTrip) {
  const std::string path = test::temp_dir() + "/base.lbkld";
  KldBase saved;
  KldResult live = kld(base_model(), quant_model(), text(), opts(), &saved);
  write_kld_base(path, saved);
  KldBase loaded = read_kld_base(path);
  EXPECT_EQ(loaded.k, 32);
  EXPECT_EQ(loaded.n_positions(), live.n_scored);
  EXPECT_EQ(loaded.base_model, base_model().path);
  // Base side only gives the same file.
  write_kld_base(path + "2", kld_base_logits(base_model(), text(), opts()));
  EXPECT_EQ(read_bytes(path), read_bytes(path + "2"));

  KldResult s = kld_from_saved(loaded, quant_model(), text(), opts(), path);
  EXPECT_TRUE(s.kld_from_topk);
  EXPECT_EQ(s.n_scored, live.n_scored);
  EXPECT_EQ(s.ppl_base, live.ppl_base);
  EXPECT_EQ(s.ppl_quant, live.ppl_quant);
  EXPECT_EQ(s.ppl_ratio, live.ppl_ratio);
  EXPECT_EQ(s.ppl_ratio_err, live.ppl_ratio_err);
  EXPECT_EQ(s.top1, live.top1);
  EXPECT_EQ(s.dp_mean, live.dp_mean);
  EXPECT_EQ(s.dp_rms, live.dp_rms);
  for (size_t i = 0; i < s.kld.size(); ++i) {
    EXPECT_GE(s.kld[i], -1e-15) << i;
    EXPECT_LE(s.kld[i], live.kld[i] + 1e-12) << i;  // a lower bound
  }
  EXPECT_LE(s.kld_mean, live.kld_mean);
  EXPECT_GT(s.kld_mean, 0.95 * live.kld_mean);

  // A prefix of the saved chunks, and the saved context when n_ctx <= 0.
  KldOptions o = opts(2);
  o.n_ctx = 0;
  KldResult s2 = kld_from_saved(loaded, quant_model(), text(), o, path);
  EXPECT_EQ(s2.n_scored, 2 * 63);
  EXPECT_EQ(s2.kld[5], s.kld[5]);

  // k = n_vocab: the top-k KLD is the full KLD.
  KldOptions full = opts(1);
  full.top_k = base_model().config.n_vocab;
  KldBase all;
  KldResult live1 = kld(base_model(), quant_model(), text(), full, &all);
  KldResult s3 = kld_from_saved(all, quant_model(), text(), full);
  EXPECT_NEAR(s3.kld_mean, live1.kld_mean, 1e-12);
}

TEST(Kld, MismatchedSetupIsRefused) {
  KldBase saved = kld_base_logits(base_model(), text(), opts(2));
  auto expect_error = [&](const std::string& t, const KldOptions& o, const std::string& field) {
    try {
      kld_from_saved(saved, quant_model(), t, o, "base.lbkld");
      ADD_FAILURE() << "no error for " << field;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
  };
  expect_error(text().substr(0, text().size() - 1), opts(2), "text sha256");
  KldOptions c64 = opts(2);
  c64.n_ctx = 64;
  expect_error(text(), c64, "n_ctx");
  KldOptions gptq = opts(2);
  gptq.protocol = PplProtocol::Gptq;
  expect_error(text(), gptq, "protocol");
  expect_error(text(), opts(3), "n_chunks");

  // Different vocabulary sizes: named with both files.
  std::unique_ptr<Model> other = load_model(q4_path());
  other->config.n_vocab += 1;
  try {
    kld(base_model(), *other, text(), opts(1));
    ADD_FAILURE() << "no vocabulary error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(q4_path()), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(base_model().path), std::string::npos) << e.what();
  }
}

TEST(Kld, CorruptOrTruncatedFileIsAnError) {
  const std::string dir = test::temp_dir();
  const std::string good = dir + "/good.lbkld", bad = dir + "/bad.lbkld";
  KldOptions o = opts(1);
  o.top_k = 4;
  write_kld_base(good, kld_base_logits(base_model(), text(), o));
  const std::string bytes = read_bytes(good);
  ASSERT_NO_THROW(read_kld_base(good));
  const size_t header = 116 + base_model().path.size();
  ASSERT_EQ(bytes.size(), header + 63 * (24 + 8 * 4));
  // Every truncation, and one trailing byte.
  for (size_t n : {size_t(0), size_t(5), size_t(8), size_t(20), size_t(47), size_t(100), size_t(115), header - 1, header,
                   header + 10, bytes.size() - 1}) {
    write_bytes(bad, bytes.substr(0, n));
    EXPECT_THROW(read_kld_base(bad), Error) << n;
  }
  write_bytes(bad, bytes + "x");
  EXPECT_THROW(read_kld_base(bad), Error);
  EXPECT_THROW(read_kld_base(dir + "/missing.lbkld"), Error);
  // Corrupted fields.
  auto patch = [&](size_t off, uint32_t v) {
    std::string b = bytes;
    std::memcpy(b.data() + off, &v, 4);
    write_bytes(bad, b);
  };
  const struct { size_t off; uint32_t v; } fields[] = {
      {0, 0x4b4c424c},           // magic
      {8, 2},                    // version
      {12, 0},                   // n_vocab
      {16, 0xffffffff},          // n_ctx
      {20, 7},                   // protocol
      {24, 0},                   // k
      {24, 1000},                // k > n_vocab
      {28, 1000},                // n_chunks (n_positions disagrees)
      {32, 0xffffffff},          // n_positions
      {112, 0xfffffff0},         // base model length
      {header, 0xffffffff},      // first target token
      {header + 24, 100000},     // first top token id
  };
  for (const auto& f : fields) {
    patch(f.off, f.v);
    EXPECT_THROW(read_kld_base(bad), Error) << "offset " << f.off;
  }
  // A NaN log-sum-exp.
  std::string b = bytes;
  const double nan = std::nan("");
  std::memcpy(b.data() + header + 8, &nan, 8);
  write_bytes(bad, b);
  EXPECT_THROW(read_kld_base(bad), Error);
}

TEST(Kld, CliPrintsSetupAndTable) {
  const std::string dir = test::temp_dir();
  const std::string args = " -f " + test::shared("text/tinystories_val.txt") + " -c 128 --chunks 3 -t 1";
  test::CmdResult r = test::run_cli("kld " + test::shared(kF32) + " " + q4_path() + args + " --save-base " + dir +
                                    "/cli.lbkld");
  ASSERT_EQ(r.code, 0) << r.out;
  for (const char* s : {"sha256 5fc1fb0113df62b567fb271806cd645ce8d75f59c58ca0b764c03d3b6ff34ca6",
                        "protocol llama.cpp, ctx 128, chunks 3, scored 189, threads 1", "lowbit    " LOWBIT_VERSION,
                        "PPL(quant)/PPL(base) = ", "Mean KLD             = ", "99.0% KLD", "Same top-1", "RMS Δp",
                        "top-32 logits"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
  test::CmdResult s = test::run_cli("kld --base-logits " + dir + "/cli.lbkld " + q4_path() + args);
  ASSERT_EQ(s.code, 0) << s.out;
  EXPECT_NE(s.out.find("lower bound"), std::string::npos) << s.out;
  // The exact lines agree with the live run.
  auto line = [](const std::string& out, const std::string& key) {
    size_t p = out.find(key);
    return p == std::string::npos ? std::string() : out.substr(p, out.find('\n', p) - p);
  };
  for (const char* key : {"PPL(base)", "PPL(quant)/PPL(base)", "Same top-1", "Mean Δp", "RMS Δp"})
    EXPECT_EQ(line(r.out, key), line(s.out, key)) << key;
  test::CmdResult e = test::run_cli("kld --base-logits " + dir + "/cli.lbkld " + q4_path() + " -f " +
                                    test::shared("text/wiki.test.raw") + " -c 128");
  EXPECT_EQ(e.code, 1);
  EXPECT_NE(e.out.find("text sha256"), std::string::npos) << e.out;
  EXPECT_EQ(e.out.rfind("error: ", 0), 0u) << e.out;  // one line, nothing printed before it
  EXPECT_EQ(std::count(e.out.begin(), e.out.end(), '\n'), 1) << e.out;
}

}  // namespace
