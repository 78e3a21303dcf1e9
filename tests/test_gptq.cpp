// GPTQ (methods/gptq.h) against a slow, plain reference: the column-by-column
// OBS update of the paper in double (explicit H^-1, eliminated one column at a
// time), with AutoGPTQ's rules for when and from what a group's scale/zero are
// chosen. Also: proxy loss below round-to-nearest, dead columns, the damping
// retry, errors, thread-count independence, and ggml-format targets.
#include <gtest/gtest.h>

#include "test_random.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "core/log.h"
#include "formats/format.h"
#include "lowbit/error.h"
#include "methods/gptq.h"

using namespace lowbit;

namespace {

using lowbit::test::SplitMix64;

struct Problem {
  int64_t n_out, n_in;
  std::vector<float> W;   // [n_out, n_in]
  std::vector<double> H;  // [n_in, n_in] = 2 X^T X
};

// W: N(0, 1) * 0.05 with a few large weights. X [n_tok, n_in]: per-column
// scales exp(0.7 g) (so act-order matters), and every 5th column correlated
// with its left neighbour. `dead`: columns whose input is always zero.
Problem make_problem(int64_t n_out, int64_t n_in, uint64_t seed, int64_t n_tok = 0,
                     const std::vector<int64_t>& dead = {}) {
  if (n_tok == 0) n_tok = 2 * n_in;
  SplitMix64 rng{seed * 7919 + 13};
  Problem p{n_out, n_in, std::vector<float>(size_t(n_out * n_in)), std::vector<double>(size_t(n_in * n_in), 0.0)};
  for (auto& w : p.W) w = float(0.05 * rng.gauss() * (rng.uniform() < 0.02 ? 4.0 : 1.0));
  std::vector<double> scale(static_cast<size_t>(n_in));
  for (auto& s : scale) s = std::exp(0.7 * rng.gauss());
  std::vector<double> X(size_t(n_tok * n_in));
  for (int64_t t = 0; t < n_tok; ++t)
    for (int64_t i = 0; i < n_in; ++i) {
      double v = rng.gauss() * scale[size_t(i)];
      if (i % 5 == 4) v = 0.3 * v + 0.9 * X[size_t(t * n_in + i - 1)];
      X[size_t(t * n_in + i)] = v;
    }
  for (int64_t d : dead)
    for (int64_t t = 0; t < n_tok; ++t) X[size_t(t * n_in + d)] = 0.0;
  for (int64_t t = 0; t < n_tok; ++t)
    for (int64_t i = 0; i < n_in; ++i) {
      const double xi = X[size_t(t * n_in + i)];
      if (xi == 0.0) continue;
      for (int64_t j = i; j < n_in; ++j) p.H[size_t(i * n_in + j)] += 2.0 * xi * X[size_t(t * n_in + j)];
    }
  for (int64_t i = 0; i < n_in; ++i)
    for (int64_t j = 0; j < i; ++j) p.H[size_t(i * n_in + j)] = p.H[size_t(j * n_in + i)];
  return p;
}

// tr((W - Q) H (W - Q)^T) / n_out, plainly in double.
double proxy_loss(const Problem& p, const std::vector<float>& Q) {
  double s = 0.0;
  std::vector<double> e(static_cast<size_t>(p.n_in));
  for (int64_t o = 0; o < p.n_out; ++o) {
    for (int64_t i = 0; i < p.n_in; ++i) e[size_t(i)] = double(p.W[size_t(o * p.n_in + i)]) - Q[size_t(o * p.n_in + i)];
    for (int64_t i = 0; i < p.n_in; ++i)
      for (int64_t j = 0; j < p.n_in; ++j) s += e[size_t(i)] * p.H[size_t(i * p.n_in + j)] * e[size_t(j)];
  }
  return s / double(p.n_out);
}

// Inverse by Gauss-Jordan elimination with partial pivoting.
std::vector<double> inverse(std::vector<double> A, int64_t n) {
  std::vector<double> I(size_t(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i) I[size_t(i * n + i)] = 1.0;
  for (int64_t c = 0; c < n; ++c) {
    int64_t piv = c;
    for (int64_t r = c + 1; r < n; ++r)
      if (std::fabs(A[size_t(r * n + c)]) > std::fabs(A[size_t(piv * n + c)])) piv = r;
    for (int64_t k = 0; k < n; ++k) {
      std::swap(A[size_t(c * n + k)], A[size_t(piv * n + k)]);
      std::swap(I[size_t(c * n + k)], I[size_t(piv * n + k)]);
    }
    const double d = A[size_t(c * n + c)];
    for (int64_t k = 0; k < n; ++k) A[size_t(c * n + k)] /= d, I[size_t(c * n + k)] /= d;
    for (int64_t r = 0; r < n; ++r) {
      if (r == c) continue;
      const double m = A[size_t(r * n + c)];
      if (m == 0.0) continue;
      for (int64_t k = 0; k < n; ++k) A[size_t(r * n + k)] -= m * A[size_t(c * n + k)], I[size_t(r * n + k)] -= m * I[size_t(c * n + k)];
    }
  }
  return I;
}

// The reference: one column at a time, OBS update of the remaining weights and
// of the remaining inverse Hessian, everything in double. Group parameters as
// AutoGPTQ chooses them: per row from the whole row before the dead-column fix
// (group -1); up front from the dead-zeroed weights (static groups); else at the
// group's first column (in processing order) from the weights as they were at
// the start of the current lazy batch of `block` columns.
IntGroupQuant reference_gptq(const Problem& p, const IntGroupSpec& spec, bool act_order, bool static_groups,
                             double damp, int block) {
  const int64_t n = p.n_in, n_out = p.n_out;
  const int64_t gc = spec.group_columns(n), ng = n / gc;
  std::vector<double> H = p.H;
  std::vector<double> Wd(p.W.begin(), p.W.end());
  for (int64_t i = 0; i < n; ++i)
    if (H[size_t(i * n + i)] == 0.0) {
      H[size_t(i * n + i)] = 1.0;
      for (int64_t o = 0; o < n_out; ++o) Wd[size_t(o * n + i)] = 0.0;
    }
  std::vector<int64_t> perm(static_cast<size_t>(n));
  std::iota(perm.begin(), perm.end(), int64_t(0));
  if (act_order)
    std::stable_sort(perm.begin(), perm.end(),
                     [&](int64_t a, int64_t b) { return H[size_t(a * n + a)] > H[size_t(b * n + b)]; });
  double mean = 0.0;
  for (int64_t i = 0; i < n; ++i) mean += H[size_t(i * n + i)] / double(n);
  std::vector<double> Hp(size_t(n * n));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) Hp[size_t(i * n + j)] = H[size_t(perm[size_t(i)] * n + perm[size_t(j)])];
  for (int64_t i = 0; i < n; ++i) Hp[size_t(i * n + i)] += damp * mean;
  std::vector<double> Hinv = inverse(Hp, n);
  std::vector<double> Wp(size_t(n_out * n));
  for (int64_t o = 0; o < n_out; ++o)
    for (int64_t j = 0; j < n; ++j) Wp[size_t(o * n + j)] = Wd[size_t(o * n + perm[size_t(j)])];

  IntGroupQuant r;
  r.spec = spec;
  r.n_out = n_out;
  r.n_in = n;
  r.q.assign(size_t(n_out * n), 0);
  r.scales.assign(size_t(ng * n_out), 0.0f);
  r.zeros.assign(size_t(ng * n_out), 0);
  r.g_idx.resize(static_cast<size_t>(n));
  const bool dynamic = spec.group_size > 0 && !static_groups;
  for (int64_t i = 0; i < n; ++i) r.g_idx[size_t(i)] = int32_t(i / gc);
  if (dynamic && act_order)
    for (int64_t k = 0; k < n; ++k) r.g_idx[size_t(perm[size_t(k)])] = int32_t(k / gc);
  std::vector<float> vals(static_cast<size_t>(gc));
  auto set_params = [&](int64_t g, int64_t o, const IntGroupParams& q) {
    r.scales[size_t(g * n_out + o)] = q.scale;
    r.zeros[size_t(g * n_out + o)] = q.zero;
  };
  for (int64_t o = 0; o < n_out; ++o) {
    if (spec.group_size < 0) set_params(0, o, int_group_params(p.W.data() + o * n, n, 1, spec));
    else if (!dynamic)
      for (int64_t g = 0; g < ng; ++g) {
        for (int64_t k = 0; k < gc; ++k) vals[size_t(k)] = float(Wd[size_t(o * n + g * gc + k)]);
        set_params(g, o, int_group_params(vals.data(), gc, 1, spec));
      }
  }
  std::vector<double> snapshot;
  for (int64_t j = 0; j < n; ++j) {
    if (j % block == 0) snapshot = Wp;
    const int64_t c = perm[size_t(j)];
    const double d = Hinv[size_t(j * n + j)];
    for (int64_t o = 0; o < n_out; ++o) {
      int64_t g = spec.group_size < 0 ? 0 : dynamic ? j / gc : c / gc;
      if (dynamic && j % gc == 0) {
        for (int64_t k = 0; k < gc; ++k) vals[size_t(k)] = float(snapshot[size_t(o * n + j + k)]);
        set_params(g, o, int_group_params(vals.data(), gc, 1, spec));
      }
      const IntGroupParams q{r.scales[size_t(g * n_out + o)], r.zeros[size_t(g * n_out + o)]};
      const double x = Wp[size_t(o * n + j)];
      const int32_t code = int_group_code(float(x), q, spec.maxq());
      r.q[size_t(o * n + c)] = uint8_t(code);
      const double err = (x - double(int_group_value(code, q))) / d;
      for (int64_t k = j + 1; k < n; ++k) Wp[size_t(o * n + k)] -= err * Hinv[size_t(j * n + k)];
    }
    // Eliminate column j from the inverse Hessian of the remaining columns.
    for (int64_t a = j + 1; a < n; ++a)
      for (int64_t b = j + 1; b < n; ++b)
        Hinv[size_t(a * n + b)] -= Hinv[size_t(a * n + j)] * Hinv[size_t(j * n + b)] / d;
  }
  return r;
}

// Rows whose codes, scales or zeros differ.
int64_t rows_differing(const IntGroupQuant& a, const IntGroupQuant& b) {
  int64_t rows = 0;
  for (int64_t o = 0; o < a.n_out; ++o) {
    bool differ = std::memcmp(a.q.data() + o * a.n_in, b.q.data() + o * b.n_in, size_t(a.n_in)) != 0;
    for (int64_t g = 0; g < a.n_groups(); ++g)
      differ = differ || a.scales[size_t(g * a.n_out + o)] != b.scales[size_t(g * b.n_out + o)] ||
               a.zeros[size_t(g * a.n_out + o)] != b.zeros[size_t(g * b.n_out + o)];
    rows += differ;
  }
  return rows;
}

// Captures warnings while alive.
struct LogCapture {
  std::vector<std::string> warnings;
  LogCapture() {
    set_log_sink([this](LogLevel l, const std::string& m) {
      if (l == LogLevel::Warn) warnings.push_back(m);
    });
  }
  ~LogCapture() { set_log_sink(nullptr); }
};

bool all_finite(const std::vector<float>& v) {
  return std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); });
}

}  // namespace

// Int grids: identical codes, scales, zeros and g_idx to the reference, over
// bits x group x sym x act-order x static groups x lazy-batch width x seeds.
TEST(Gptq, IntGroupsMatchColumnByColumnReference) {
  const int64_t n_out = 16, n_in = 64;
  int cases = 0;
  int64_t max_rows_differing = 0, total_rows_differing = 0, rows_total = 0;
  double ratio_sum = 0.0;
  for (uint64_t seed = 1; seed <= 3; ++seed) {
    // Seed 3 has two dead columns.
    const Problem p = make_problem(n_out, n_in, seed, 0, seed == 3 ? std::vector<int64_t>{5, 40} : std::vector<int64_t>{});
    for (int bits : {2, 3, 4, 8})
      for (int group : {-1, 16, 32})
        for (bool sym : {false, true})
          for (bool act : {false, true})
            for (bool stat : {false, true}) {
              if (stat && group < 0) continue;
              for (int block : {128, 24}) {
                SCOPED_TRACE(testing::Message() << "seed " << seed << " bits " << bits << " group " << group << " sym "
                                                << sym << " act_order " << act << " static " << stat << " block "
                                                << block);
                const IntGroupSpec spec{bits, group, sym};
                GptqOptions opts;
                opts.act_order = act;
                opts.static_groups = stat;
                opts.block_size = block;
                opts.threads = 1;
                const GptqResult r = gptq_quantize(p.W.data(), n_out, n_in, p.H.data(), GptqTarget{spec, {}}, opts);
                const IntGroupQuant ref = reference_gptq(p, spec, act, stat, opts.damp, block);
                ASSERT_EQ(r.ints.g_idx, ref.g_idx);
                const int64_t rows = rows_differing(r.ints, ref);
                max_rows_differing = std::max(max_rows_differing, rows);
                total_rows_differing += rows;
                EXPECT_LE(rows, 1);
                // dequantized is the codes' values, in original column order.
                ASSERT_EQ(r.dequantized, r.ints.dequantize());
                EXPECT_EQ(r.dead_columns, seed == 3 ? 2 : 0);
                EXPECT_DOUBLE_EQ(r.damp_used, opts.damp);
                // The losses are the plain double proxy losses.
                const double l_gptq = proxy_loss(p, r.dequantized);
                const double l_rtn = proxy_loss(p, rtn_int_groups(p.W.data(), n_out, n_in, spec).dequantize());
                EXPECT_NEAR(r.loss_gptq, l_gptq, 1e-4 * l_gptq + 1e-12);
                EXPECT_NEAR(r.loss_rtn, l_rtn, 1e-4 * l_rtn + 1e-12);
                // GPTQ is greedy, not optimal: at 2 bits with a group's scale chosen from weights
                // not yet updated within the batch (AutoGPTQ's rule, block 24 here) it can end
                // slightly above RTN; everywhere else it must not.
                if (bits >= 3 || block == 128) {
                  EXPECT_LE(r.loss_gptq, r.loss_rtn);
                }
                EXPECT_LE(r.loss_gptq, 1.05 * r.loss_rtn);
                rows_total += n_out;
                ratio_sum += r.loss_gptq / r.loss_rtn;
                ++cases;
              }
            }
  }
  // float32 sweep vs double reference: a code (or an f16-rounded scale) may flip
  // where a value lies within float round-off of a rounding boundary; that
  // changes only its own row (rows are independent in GPTQ). Seen: 1 row of 7680.
  EXPECT_LE(total_rows_differing * 1000, rows_total) << "max rows differing in a case: " << max_rows_differing;
  const double mean_ratio = ratio_sum / cases;
  EXPECT_LT(mean_ratio, 0.8) << "GPTQ loss / RTN loss averaged over " << cases << " cases";
  std::printf("[ gptq ] %d int cases, %lld of %lld rows differ from the reference, mean loss_gptq / loss_rtn = %.3f\n",
              cases, (long long)total_rows_differing, (long long)rows_total, mean_ratio);
}

TEST(Gptq, DeadColumnsAreZeroAndFinite) {
  const Problem p = make_problem(8, 64, 9, 0, {0, 17, 63});
  for (bool act : {false, true}) {
    GptqOptions opts;
    opts.act_order = act;
    const GptqResult r = gptq_quantize(p.W.data(), 8, 64, p.H.data(), GptqTarget{IntGroupSpec{4, 32, false}, {}}, opts);
    EXPECT_EQ(r.dead_columns, 3);
    EXPECT_TRUE(all_finite(r.dequantized));
    for (int64_t o = 0; o < 8; ++o)
      for (int64_t c : {0, 17, 63}) EXPECT_EQ(r.dequantized[size_t(o * 64 + c)], 0.0f) << "row " << o << " col " << c;
  }
}

TEST(Gptq, RankDeficientHessianRetriesDamping) {
  // 24 tokens for 64 inputs: H has rank 24, singular without damping.
  const Problem p = make_problem(8, 64, 4, 24);
  LogCapture logs;
  GptqOptions opts;
  opts.damp = 0.0;
  const GptqResult r = gptq_quantize(p.W.data(), 8, 64, p.H.data(), GptqTarget{IntGroupSpec{4, 16, false}, {}}, opts);
  EXPECT_GT(r.damp_used, 0.0);
  EXPECT_TRUE(all_finite(r.dequantized));
  ASSERT_FALSE(logs.warnings.empty());
  EXPECT_NE(logs.warnings[0].find("damping"), std::string::npos) << logs.warnings[0];
  EXPECT_LE(r.loss_gptq, r.loss_rtn);
  EXPECT_NEAR(r.loss_gptq, proxy_loss(p, r.dequantized), 1e-4 * r.loss_gptq);
  // The same result as asking for that damping directly.
  opts.damp = r.damp_used;
  const GptqResult r2 = gptq_quantize(p.W.data(), 8, 64, p.H.data(), GptqTarget{IntGroupSpec{4, 16, false}, {}}, opts);
  EXPECT_EQ(r.ints.q, r2.ints.q);
}

TEST(Gptq, ErrorsNameTheProblem) {
  Problem p = make_problem(4, 32, 5);
  const GptqTarget t{IntGroupSpec{4, 32, false}, {}};
  {  // Not positive definite at any damping.
    std::vector<double> H(32 * 32, 0.0);
    for (int i = 0; i < 32; ++i) H[size_t(i * 32 + i)] = -1.0;
    LogCapture logs;
    try {
      gptq_quantize(p.W.data(), 4, 32, H.data(), t, GptqOptions{});
      FAIL() << "expected lowbit::Error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("damping 1"), std::string::npos) << e.what();
    }
  }
  p.W[size_t(2 * 32 + 7)] = std::nanf("");
  try {
    gptq_quantize(p.W.data(), 4, 32, p.H.data(), t, GptqOptions{});
    FAIL() << "expected lowbit::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("input column 7"), std::string::npos) << e.what();
  }
  EXPECT_THROW(gptq_quantize(p.W.data(), 4, 32, p.H.data(), GptqTarget{}, GptqOptions{}), Error);
  EXPECT_THROW(gptq_quantize(p.W.data(), 4, 32, p.H.data(), GptqTarget{IntGroupSpec{4, 24, false}, {}}, GptqOptions{}),
               Error);
}

// Large enough for several row chunks and factorisation tiles (3 x 256).
TEST(Gptq, SameResultAtOneAndTwoThreads) {
  const Problem p = make_problem(256, 768, 6, 800);
  for (bool act : {false, true}) {
    GptqOptions o1, o2;
    o1.act_order = o2.act_order = act;
    o1.threads = 1;
    o2.threads = 2;
    const GptqTarget t{IntGroupSpec{4, 32, false}, {}};
    const GptqResult a = gptq_quantize(p.W.data(), 256, 768, p.H.data(), t, o1);
    const GptqResult b = gptq_quantize(p.W.data(), 256, 768, p.H.data(), t, o2);
    EXPECT_EQ(a.ints.q, b.ints.q);
    EXPECT_EQ(a.ints.scales, b.ints.scales);
    EXPECT_EQ(a.ints.zeros, b.ints.zeros);
    EXPECT_EQ(a.dequantized, b.dequantized);
    EXPECT_EQ(a.loss_gptq, b.loss_gptq);
    EXPECT_EQ(a.loss_rtn, b.loss_rtn);
    EXPECT_LT(a.loss_gptq, a.loss_rtn);
    // The loss from GPTQ's own errors agrees with the explicit product at this size too.
    const double l_gptq = proxy_loss(p, a.dequantized);
    EXPECT_NEAR(a.loss_gptq, l_gptq, 1e-4 * l_gptq);
  }
}

// ggml formats: the stored blocks dequantize to `dequantized`, and GPTQ beats
// the format's own quantizer (with diag(H) as importance).
TEST(Gptq, FormatTargets) {
  struct Case {
    FormatId id;
    int64_t n_in;
  };
  const Case cases[] = {{FormatId::Q4_K, 512}, {FormatId::Q4_0, 256}, {FormatId::Q5_0, 256},
                        {FormatId::IQ4_NL, 256}, {FormatId::Q6_K, 512}, {FormatId::Q8_0, 256},
                        {FormatId::Q2_K, 512},   {FormatId::Q3_K, 512}, {FormatId::Q5_K, 512},
                        {FormatId::Q4_1, 256},   {FormatId::Q5_1, 256}};
  int ran = 0;
  for (const Case& c : cases) {
    const FormatTraits& f = format_traits(c.id);
    if (f.block_grid == nullptr || f.encode_fixed == nullptr) {
      std::printf("[ gptq ] %s has no block_grid / encode_fixed yet: skipped\n", f.name);
      continue;
    }
    const int64_t n_out = 16, n_in = c.n_in;
    const Problem p = make_problem(n_out, n_in, 11, n_in + 64);
    std::vector<float> importance(static_cast<size_t>(n_in));
    for (int64_t i = 0; i < n_in; ++i) importance[size_t(i)] = float(p.H[size_t(i * n_in + i)]);
    for (bool act : {false, true}) {
      SCOPED_TRACE(testing::Message() << f.name << " act_order " << act);
      LogCapture logs;
      GptqOptions opts;
      opts.act_order = act;
      const GptqResult r = gptq_quantize(p.W.data(), n_out, n_in, p.H.data(), GptqTarget{{}, c.id}, opts);
      EXPECT_TRUE(logs.warnings.empty()) << logs.warnings[0];
      const size_t rb = row_bytes(c.id, n_in);
      ASSERT_EQ(r.blocks.size(), rb * size_t(n_out));
      std::vector<float> back(size_t(n_out * n_in));
      for (int64_t o = 0; o < n_out; ++o) f.dequantize_row(r.blocks.data() + size_t(o) * rb, back.data() + o * n_in, n_in);
      EXPECT_EQ(back, r.dequantized);
      const GptqResult rtn = rtn_quantize(p.W.data(), n_out, n_in, GptqTarget{{}, c.id}, importance.data());
      const double l_rtn = proxy_loss(p, rtn.dequantized), l_gptq = proxy_loss(p, r.dequantized);
      EXPECT_NEAR(r.loss_rtn, l_rtn, 1e-4 * l_rtn);
      EXPECT_NEAR(r.loss_gptq, l_gptq, 1e-4 * l_gptq);
      EXPECT_LT(r.loss_gptq, r.loss_rtn);
      std::printf("[ gptq ] %-6s act_order %d: loss gptq / rtn = %.3f\n", f.name, int(act), l_gptq / l_rtn);
    }
    ++ran;
  }
  if (ran == 0) GTEST_SKIP() << "no format has block_grid / encode_fixed yet";
}
