// The formats traits table, tested row by row: every row of all_formats() runs
// every test below (a format another engineer adds is covered the moment its
// row exists; it only needs an entry in kExpect). Checked per format:
//  * bits per weight and row_bytes;
//  * round-trip error dequantize(quantize(x)) relative to RMS(x), per data set
//    (Gaussian, uniform, 1% outliers, constant rows, zeros, rows of the real
//    stories260K weights), under the format's bound in kExpect;
//  * determinism (same bytes twice, every output byte written);
//  * that an importance vector lowers the importance-weighted error;
//  * vec_dot_ref against the paired activation format: equal to the dot of the
//    dequantized rows (kernel math), and near the fp32 dot (quantization error);
//    vec_dot (the dispatched kernel) equal to vec_dot_ref within 1e-6;
//  * golden bytes: sha256 of ggml's own output on a fixed matrix (see kGolden).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "core/sha256.h"
#include "formats/format.h"
#include "io/model_loader.h"
#include "lowbit/error.h"
#include "paths.h"

using namespace lowbit;

namespace {

// ---------------------------------------------------------------- expectations per format

struct Expect {
  const char* name;
  double bpw;
  double max_rel_rmse;           // RMSE / RMS(x): Gaussian, uniform, constant and stories rows
  double max_rel_rmse_outliers;  // the same for Gaussian rows with 1% of values x20
};

// Bounds sit ~30% above what ggml's reference quantizers measure on these
// data sets (LOWBIT_TEST_VERBOSE=1 prints the measurements); a single row may
// reach twice the bound (stories260K has a few small-norm rows with outliers).
const Expect kExpect[] = {
    {"f32", 32, 0, 0},
    {"f16", 16, 4e-4, 4e-4},
    {"bf16", 16, 3e-3, 3e-3},
    {"q4_0", 4.5, 0.11, 0.19},
    {"q4_1", 5, 0.10, 0.15},
    {"q5_0", 5.5, 0.056, 0.11},
    {"q5_1", 6, 0.049, 0.07},
    {"q8_0", 8.5, 0.007, 0.014},
    {"q8_1", 9, 0.007, 0.014},
    {"iq4_nl", 4.5, 0.105, 0.16},
    {"q2_K", 2.625, 0.40, 0.45},
    {"q3_K", 3.4375, 0.20, 0.26},
    {"q4_K", 4.5, 0.095, 0.13},
    {"q5_K", 5.5, 0.046, 0.065},
    {"q6_K", 6.5625, 0.022, 0.04},
    {"q8_K", 9.125, 0.0095, 0.034},
};

const Expect& expect_for(const FormatTraits& f) {
  for (const auto& e : kExpect)
    if (e.name == std::string_view(f.name)) return e;
  static const Expect none{nullptr, 0, 0, 0};
  return none;
}

// ---------------------------------------------------------------- deterministic data

// splitmix64 -> uniform doubles -> Box-Muller Gaussians (all in double, so
// every platform with a sane libm yields the same floats).
struct Rng {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  double uniform() { return double(next() >> 11) * (1.0 / 9007199254740992.0); }  // [0, 1)
  double gaussian() {
    const double u1 = 1.0 - uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
};

struct Dataset {
  std::string name;
  int64_t rows = 0, cols = 0;
  std::vector<float> x;  // [rows, cols]
  bool outliers = false;
};

constexpr int64_t kCols = 512;  // a multiple of every block size (1, 32, 256)

std::vector<Dataset> synthetic_sets() {
  Rng rng{12345};
  auto make = [&](const std::string& name, int64_t rows, auto&& gen) {
    Dataset d{name, rows, kCols, std::vector<float>(size_t(rows * kCols))};
    for (auto& v : d.x) v = float(gen());
    return d;
  };
  std::vector<Dataset> sets;
  sets.push_back(make("gaussian", 16, [&] { return rng.gaussian() * 0.02; }));
  sets.push_back(make("uniform", 16, [&] { return rng.uniform() * 2 - 1; }));
  Dataset out = make("outliers", 16, [&] {
    const double g = rng.gaussian();
    return rng.uniform() < 0.01 ? g * 20 : g;
  });
  out.outliers = true;
  sets.push_back(std::move(out));
  Dataset c{"constant", 2, kCols, {}};
  c.x.assign(size_t(kCols), 0.37f);
  c.x.resize(size_t(2 * kCols), -1.25f);
  sets.push_back(std::move(c));
  return sets;
}

// The golden matrix: 10 rows x 512, from splitmix64 (seed 0x6C6F77626974) via
// Box-Muller; row r: 0 N(0,1); 1 N/64; 2 N*8; 3 N with every 37th value x12;
// 4 |N|; 5 N with values 32..63 = 0.3; 6 N with values 0..31 = 0; 7 all zero;
// 8 N/65536 (f16-subnormal scales); 9 N, values 0..31 halved, x[3] = -2, x[17] = 2
// (a tie of magnitudes). Importance [512]: 0.1 + 4u^2, zero at every 53rd column.
constexpr int64_t kGoldenRows = 10, kGoldenCols = 512;

void golden_matrix(std::vector<float>& x, std::vector<float>& imp) {
  Rng rng{0x6C6F77626974ULL};
  x.resize(size_t(kGoldenRows * kGoldenCols));
  imp.resize(size_t(kGoldenCols));
  for (int64_t r = 0; r < kGoldenRows; ++r) {
    for (int64_t c = 0; c < kGoldenCols; ++c) {
      const double g = rng.gaussian();
      double v;
      switch (r) {
        case 0: v = g; break;
        case 1: v = g / 64; break;
        case 2: v = g * 8; break;
        case 3: v = c % 37 == 5 ? g * 12 : g; break;
        case 4: v = std::fabs(g); break;
        case 5: v = c >= 32 && c < 64 ? 0.3 : g; break;
        case 6: v = c < 32 ? 0.0 : g; break;
        case 7: v = 0.0; break;
        case 8: v = g / 65536; break;
        default:
          v = c < 32 ? g / 2 : g;
          if (c == 3) v = -2.0;
          if (c == 17) v = 2.0;
      }
      x[size_t(r * kGoldenCols + c)] = float(v);
    }
  }
  for (int64_t c = 0; c < kGoldenCols; ++c) {
    const double u = rng.uniform();
    imp[size_t(c)] = c % 53 == 0 ? 0.0f : float(0.1 + 4.0 * u * u);
  }
}

// Rows of the real stories260K weights (64 or 172 wide) whose width is a
// multiple of `block`; when `block` is a multiple of the width instead (256 vs
// 64), block/width consecutive rows are taken as one row.
Dataset stories_rows(int block) {
  static const std::unique_ptr<Model> model = load_model(test::shared("models/stories260K/stories260K.bin"));
  Dataset d{"stories260K", 0, 0, {}};
  for (const auto& [name, w] : model->weights) {
    if (w.shape.size() != 2) continue;
    int64_t width = w.cols();
    if (width % block != 0) {
      if (block % width != 0 || w.rows() % (block / width) != 0) continue;
      width = block;  // block / width consecutive rows as one row
    }
    if (d.cols == 0) d.cols = width;
    if (width != d.cols) continue;  // keep one width per data set
    std::vector<float> v(size_t(w.numel()));
    to_f32(w, 0, w.numel(), v.data());
    d.x.insert(d.x.end(), v.begin(), v.end());
    d.rows += w.numel() / width;
  }
  return d;
}

// ---------------------------------------------------------------- helpers

const FormatTraits& fmt_named(const std::string& name) {
  const FormatTraits* f = find_format(name);
  LOWBIT_ASSERT(f != nullptr);
  return *f;
}

// Quantizes each row; the output buffer starts filled with `fill` so unwritten bytes show.
std::vector<uint8_t> quantize(const FormatTraits& f, const std::vector<float>& x, int64_t rows, int64_t cols,
                              const float* importance = nullptr, uint8_t fill = 0) {
  const size_t rb = row_bytes(f.id, cols);
  std::vector<uint8_t> q(rb * size_t(rows), fill);
  for (int64_t r = 0; r < rows; ++r) f.quantize_row_ref(x.data() + r * cols, q.data() + size_t(r) * rb, cols, importance);
  return q;
}

std::vector<float> dequantize(const FormatTraits& f, const std::vector<uint8_t>& q, int64_t rows, int64_t cols) {
  const size_t rb = row_bytes(f.id, cols);
  std::vector<float> y(size_t(rows * cols));
  for (int64_t r = 0; r < rows; ++r) f.dequantize_row(q.data() + size_t(r) * rb, y.data() + r * cols, cols);
  return y;
}

double sum_sq(const float* a, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; ++i) s += double(a[i]) * a[i];
  return s;
}
double sum_sq_diff(const float* a, const float* b, size_t n, const float* w = nullptr, size_t wn = 0) {
  double s = 0;
  for (size_t i = 0; i < n; ++i) s += (w ? w[i % wn] : 1.0) * (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
  return s;
}
double dot(const float* a, const float* b, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; ++i) s += double(a[i]) * b[i];
  return s;
}

std::string hex_sha256(const void* p, size_t n) { return sha256_hex({static_cast<const char*>(p), n}); }

bool verbose() { return std::getenv("LOWBIT_TEST_VERBOSE") != nullptr; }

// ---------------------------------------------------------------- the per-format fixture

std::vector<std::string> table_names() {
  std::vector<std::string> v;
  for (const auto& f : all_formats()) v.emplace_back(f.name);
  return v;
}

class FormatTest : public ::testing::TestWithParam<std::string> {
 protected:
  const FormatTraits& f() const { return fmt_named(GetParam()); }
  void SetUp() override {
    if (!f().quantize_row_ref || !f().dequantize_row) GTEST_SKIP() << GetParam() << " has no quantize/dequantize";
  }
};

TEST_P(FormatTest, HasTestTableEntry) {
  EXPECT_NE(expect_for(f()).name, nullptr) << "add '" << f().name << "' to kExpect in tests/test_formats.cpp";
}

TEST_P(FormatTest, BitsPerWeightAndRowBytes) {
  const FormatTraits& fm = f();
  const Expect& e = expect_for(fm);
  if (!e.name) GTEST_SKIP() << "no kExpect entry";
  EXPECT_DOUBLE_EQ(fm.bits_per_weight(), e.bpw);
  EXPECT_EQ(&format_traits(fm.id), &fm);
  EXPECT_EQ(find_format(fm.name), &fm);
  for (int64_t k : {1, 2, 7}) {
    const int64_t n = k * kCols;
    EXPECT_EQ(row_bytes(fm.id, n), size_t(n / fm.block_size) * fm.block_bytes);
    EXPECT_DOUBLE_EQ(8.0 * double(row_bytes(fm.id, n)) / double(n), e.bpw);
  }
  EXPECT_EQ(row_bytes(fm.id, 0), 0u);
  if (fm.block_size > 1) {
    EXPECT_THROW(row_bytes(fm.id, fm.block_size + 1), Error);
  }
}

TEST_P(FormatTest, RoundTripError) {
  const FormatTraits& fm = f();
  const Expect& e = expect_for(fm);
  if (!e.name) GTEST_SKIP() << "no kExpect entry";
  std::vector<Dataset> sets = synthetic_sets();
  Dataset st = stories_rows(fm.block_size);
  if (st.rows > 0) sets.push_back(std::move(st));
  for (const auto& d : sets) {
    const auto y = dequantize(fm, quantize(fm, d.x, d.rows, d.cols), d.rows, d.cols);
    // Relative RMSE row by row; report the worst row and the whole set.
    double worst = 0;
    for (int64_t r = 0; r < d.rows; ++r) {
      const float* xr = d.x.data() + r * d.cols;
      const double ss = sum_sq(xr, size_t(d.cols));
      if (ss > 0) worst = std::max(worst, std::sqrt(sum_sq_diff(xr, y.data() + r * d.cols, size_t(d.cols)) / ss));
    }
    const double whole = std::sqrt(sum_sq_diff(d.x.data(), y.data(), d.x.size()) / sum_sq(d.x.data(), d.x.size()));
    const double bound = d.outliers ? e.max_rel_rmse_outliers : e.max_rel_rmse;
    if (verbose())
      std::cout << fm.name << " " << d.name << ": whole " << whole << ", worst row " << worst << " (bound " << bound
                << ")\n";
    EXPECT_LE(whole, bound) << fm.name << " on " << d.name;
    EXPECT_LE(worst, 2 * bound) << fm.name << " on " << d.name << " (worst row)";
  }
  // Zeros stay exactly zero.
  const std::vector<float> zeros(size_t(2 * kCols), 0.0f);
  const auto z = dequantize(fm, quantize(fm, zeros, 2, kCols), 2, kCols);
  for (size_t i = 0; i < z.size(); ++i) ASSERT_EQ(z[i], 0.0f) << fm.name << " value " << i;
}

TEST_P(FormatTest, Deterministic) {
  const FormatTraits& fm = f();
  std::vector<float> imp(static_cast<size_t>(kCols));
  Rng rng{7};
  for (auto& v : imp) v = float(0.1 + rng.uniform());
  std::vector<Dataset> sets = synthetic_sets();
  sets.push_back({"zeros", 2, kCols, std::vector<float>(size_t(2 * kCols), 0.0f)});
  Dataset golden{"golden", kGoldenRows, kGoldenCols, {}};
  std::vector<float> golden_imp;
  golden_matrix(golden.x, golden_imp);
  sets.push_back(std::move(golden));
  for (const auto& d : sets) {
    for (const float* importance : {static_cast<const float*>(nullptr), static_cast<const float*>(imp.data())}) {
      const auto a = quantize(fm, d.x, d.rows, d.cols, importance, 0x00);
      const auto b = quantize(fm, d.x, d.rows, d.cols, importance, 0xFF);
      ASSERT_EQ(a, b) << fm.name << " on " << d.name << (importance ? " with importance" : "")
                      << ": different bytes, or some output bytes never written";
      const auto ya = dequantize(fm, a, d.rows, d.cols);
      const auto yb = dequantize(fm, b, d.rows, d.cols);
      ASSERT_EQ(0, std::memcmp(ya.data(), yb.data(), ya.size() * 4)) << fm.name << " on " << d.name;
    }
  }
}

// With an importance vector the quantizer should trade error on unimportant
// values for error on important ones: the importance-weighted error, summed
// over the rows, must not exceed that of the plain quantizer.
TEST_P(FormatTest, ImportanceLowersWeightedError) {
  const FormatTraits& fm = f();
  Rng rng{99};
  std::vector<float> imp(static_cast<size_t>(kCols));
  for (auto& v : imp) v = float(std::exp(1.5 * rng.gaussian()));  // spiky, like a real imatrix
  const Dataset d = synthetic_sets()[0];
  const auto plain = dequantize(fm, quantize(fm, d.x, d.rows, d.cols), d.rows, d.cols);
  const auto weighted = dequantize(fm, quantize(fm, d.x, d.rows, d.cols, imp.data()), d.rows, d.cols);
  const double e_plain = sum_sq_diff(d.x.data(), plain.data(), d.x.size(), imp.data(), imp.size());
  const double e_weighted = sum_sq_diff(d.x.data(), weighted.data(), d.x.size(), imp.data(), imp.size());
  if (verbose()) std::cout << fm.name << " weighted error: plain " << e_plain << ", with importance " << e_weighted << "\n";
  EXPECT_LE(e_weighted, e_plain * (1 + 1e-9)) << fm.name;
}

// Importance that is zero over a whole block (an imatrix column range that
// never saw activations) must not wreck that block: no NaN, and the round-trip
// error stays under the format's bound. (ggml stores a zero or NaN scale there
// for several formats; lowbit quantizes such blocks as without importance.)
TEST_P(FormatTest, ZeroImportanceBlockStaysUsable) {
  const FormatTraits& fm = f();
  const Expect& e = expect_for(fm);
  if (!e.name) GTEST_SKIP() << "no kExpect entry";
  std::vector<float> imp(static_cast<size_t>(kCols), 0.0f);
  Rng rng{5};
  for (size_t c = imp.size() / 2; c < imp.size(); ++c) imp[c] = float(0.1 + rng.uniform());
  const Dataset d = synthetic_sets()[0];
  const auto y = dequantize(fm, quantize(fm, d.x, d.rows, d.cols, imp.data()), d.rows, d.cols);
  for (size_t i = 0; i < y.size(); ++i) ASSERT_TRUE(std::isfinite(y[i])) << fm.name << " value " << i;
  const double rel = std::sqrt(sum_sq_diff(d.x.data(), y.data(), d.x.size()) / sum_sq(d.x.data(), d.x.size()));
  EXPECT_LE(rel, e.max_rel_rmse) << fm.name;
}

TEST_P(FormatTest, DotProduct) {
  const FormatTraits& fm = f();
  if (!fm.vec_dot_ref || !fm.vec_dot) GTEST_SKIP() << fm.name << " has no dot product";
  const FormatTraits& act = format_traits(fm.dot_with);
  const Expect& e = expect_for(fm);
  const Expect& ea = expect_for(act);
  if (!e.name || !ea.name) GTEST_SKIP() << "no kExpect entry";
  Rng rng{2024};
  std::vector<Dataset> sets = synthetic_sets();
  Dataset st = stories_rows(fm.block_size);
  if (st.rows > 0) sets.push_back(std::move(st));
  for (const auto& d : sets) {
    if (d.name == "constant") continue;
    const int64_t rows = std::min<int64_t>(d.rows, 8), n = d.cols;
    std::vector<float> y(size_t(rows * n));
    for (auto& v : y) v = float(rng.gaussian());
    const auto qx = quantize(fm, d.x, rows, n);
    const auto qy = quantize(act, y, rows, n);
    const auto xh = dequantize(fm, qx, rows, n);
    const auto yh = dequantize(act, qy, rows, n);
    for (int64_t r = 0; r < rows; ++r) {
      const float* x0 = d.x.data() + r * n;
      const float* y0 = y.data() + r * n;
      const float* xh0 = xh.data() + r * n;
      const float* yh0 = yh.data() + r * n;
      const void* qx0 = qx.data() + size_t(r) * row_bytes(fm.id, n);
      const void* qy0 = qy.data() + size_t(r) * row_bytes(act.id, n);
      const double ref = fm.vec_dot_ref(n, qx0, qy0);
      const double nx = std::sqrt(sum_sq(x0, size_t(n))), ny = std::sqrt(sum_sq(y0, size_t(n)));
      const double nxh = std::sqrt(sum_sq(xh0, size_t(n))), nyh = std::sqrt(sum_sq(yh0, size_t(n)));
      // 1) the kernel computes the dot of the dequantized rows, up to float
      //    rounding and one more term: an activation format may carry each
      //    block's sum d * sum(q) in f16 (q8_1's s, from the unrounded d),
      //    which the kernel multiplies by the block offset m (|m| <= max |x^|
      //    in the block): two f16 roundings, so allow 2^-9 * sum over blocks
      //    of max|x^| * sum|y^|.
      double slack = 1e-5 * nxh * nyh;
      for (int64_t b = 0; b < n; b += fm.block_size) {
        double mx = 0, sy = 0;
        for (int64_t i = b; i < b + fm.block_size; ++i) {
          mx = std::max(mx, double(std::fabs(xh0[i])));
          sy += std::fabs(yh0[i]);
        }
        slack += std::ldexp(mx * sy, -9);
      }
      EXPECT_NEAR(ref, dot(xh0, yh0, size_t(n)), slack + 1e-30) << fm.name << " on " << d.name << " row " << r;
      // 2) and so lies near the fp32 dot: |x^.y^ - x.y| <= |x^-x||y^| + |x||y^-y|,
      //    with the per-row round-trip bounds (twice the set bounds).
      const double bx = 2 * (d.outliers ? e.max_rel_rmse_outliers : e.max_rel_rmse), by = 2 * ea.max_rel_rmse;
      const double tol = (bx * (1 + by) + by) * nx * ny + slack + 1e-30;
      EXPECT_NEAR(ref, dot(x0, y0, size_t(n)), tol) << fm.name << " on " << d.name << " row " << r;
      // 3) the dispatched kernel agrees with the reference (1e-6 of the sum of |terms|).
      double mag = 0;
      for (int64_t i = 0; i < n; ++i) mag += std::fabs(double(xh0[i]) * yh0[i]);
      const double fast = fm.vec_dot(n, qx0, qy0);
      EXPECT_NEAR(fast, ref, 1e-6 * std::max(mag, std::fabs(ref)) + 1e-30) << fm.name << " on " << d.name;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllFormats, FormatTest, ::testing::ValuesIn(table_names()),
                         [](const auto& info) { return info.param; });

// ---------------------------------------------------------------- golden bytes from ggml

// sha256 of the golden matrix's bytes as ggml produced them. Made with a small
// C program (kept outside the repository) linking libggml-base of llama.cpp
// c392e5094deaf2d1a7c18683214f007fad3fe42b (ggml_init first, to fill its f16 table):
//  ref      quantize_row_<t>_ref(row, out, 512), one call per row
//  imatrix  quantize_<t>(x, out, 10, 512, importance)   (llama-quantize --imatrix's path)
//  dequant  dequantize_row_<t>(ref bytes, out, 512) per row, the f32 bytes
// q8_0 / q8_1 / q8_K have no imatrix path in ggml (importance is ignored), so
// their imatrix hash is the ref hash. ggml's quantize_row_iq4_nl_ref leaves the
// indices of an all-zero block uninitialised; the tool set them to 0x88 (what
// lowbit writes) before hashing. For the record, quantize_iq4_nl(x, out, 10, 512,
// NULL), which llama-quantize uses without an imatrix (a wider scale search),
// gives bee0d5a4397f2b8c94e95c329ca4ed53e857e55932c904569b7eabcdcbaf59a8.
struct Golden {
  const char* name;
  const char* ref;
  const char* imatrix;
  const char* dequant;  // "" when ggml has no dequantize for the type
};
const Golden kGolden[] = {
    {"q4_0", "a4a2ae88385713861c3f69a01e7dea86e2a7c4b3a8dbe0963405d50b2b51b55a",
     "a23203ff6b1a34486fe44b0fb1c5fb6e8df3b0d64deb7b13742ce83588631ced",
     "b8238282c70f57f5fbf49a99118d2849c5058402ff36b933556c6a47c42d02db"},
    {"q4_1", "6c105cdf9bf7d3e38898a38c5adccf1079431929c6baccadf5a7c6a7215271ca",
     "5ec39c4cbdff4ea7ea04ce2240966043740ae12ac9ac8dd145a45d5de9213c9f",
     "914cea87d83c272be3540698b900e755e3f4ddb665e28c77ba0428d04c8ac88e"},
    {"q5_0", "5edbb09c43ba685c6c810ccad795ecc69ab53cf16657624dc76d1e3d740904a1",
     "df3ed77dfbd71192de9adbf6ccd3c58a99b705033c9d34162bdbc5954d330efe",
     "5ccf1e366aa5a5b4fa5a9f7a23980ea8751f154b202b766ae093b3e75d8923c8"},
    {"q5_1", "6168fde15d7953f6dd6098b51aa5233d9df4df17937e3640d6eb483ac050426f",
     "1f0f217ccdc77691c0ac7b7e4fc53284ec260aa0b4d3968a09c17125e20ff3c0",
     "e2ce2981ec3c663a67f42bd9982cba358b9f9dd76c15b748dfc9ec90fefe2477"},
    {"q8_0", "880c7ccccb53791c4c41e1040f949601849acf108487145cfc93ac18d9c00f5a",
     "880c7ccccb53791c4c41e1040f949601849acf108487145cfc93ac18d9c00f5a",
     "36f408e046fc30b186edc78c48f1350a2ece4c80fd02bedae70ef44c22ef46ea"},
    {"q8_1", "a8b69710bee9ea67bca8f23812e23e391cf54264914522ca350b3eff07704352",
     "a8b69710bee9ea67bca8f23812e23e391cf54264914522ca350b3eff07704352", ""},
    {"iq4_nl", "696821e6a993fcf2d6efdc61005274b88baeaf060b96e69553221803ed10605a",
     "675761c681ecf7d3370279521e235aa1805dd7d99062c8e921ef31347a4f82c6",
     "05b6fdfe03d1755f06f89f55c6f98e715a595749b726b1646dc69ae2c5f528ad"},
    // q2_K..q6_K are deliberately not byte-identical to ggml: lowbit's scale/min
    // search finds lower error (tests/test_kquants.cpp checks RMSE <= ggml's and
    // that ggml's own bytes dequantize to ggml's values, i.e. the layout).
    {"q8_K", "a5f880742920593072f7b062c20bfccb3a82c38b0309d76013ded16481d47500",
     "a5f880742920593072f7b062c20bfccb3a82c38b0309d76013ded16481d47500",
     "05524c9c0dbcf80bfcc4433f77df6545d92675ee32866780c5395062d5d1efee"},
};

// The generator itself: if these differ, the platform's libm disagrees, not a format.
TEST(GoldenBytes, InputMatrixMatchesTheOneGgmlQuantized) {
  std::vector<float> x, imp;
  golden_matrix(x, imp);
  EXPECT_EQ(hex_sha256(x.data(), x.size() * 4), "f3f972a62967c0ac10b4db8974c47dfd21bc5ac98d3f840fa98c0d42119dd60d");
  EXPECT_EQ(hex_sha256(imp.data(), imp.size() * 4), "b31f0d9f5dd545a02724c42b067023ba38e265b46fd0bf4c2f400c3aa217132c");
}

void PrintTo(const Golden& g, std::ostream* os) { *os << g.name; }

class GoldenTest : public ::testing::TestWithParam<Golden> {};

TEST_P(GoldenTest, MatchesGgml) {
  const Golden& g = GetParam();
  const FormatTraits* fm = find_format(g.name);
  if (!fm) GTEST_SKIP() << g.name << " is not in the formats table yet";
  std::vector<float> x, imp;
  golden_matrix(x, imp);
  const auto q = quantize(*fm, x, kGoldenRows, kGoldenCols);
  EXPECT_EQ(hex_sha256(q.data(), q.size()), g.ref) << g.name << ": quantize_row_ref differs from ggml's _ref";
  const auto qi = quantize(*fm, x, kGoldenRows, kGoldenCols, imp.data());
  EXPECT_EQ(hex_sha256(qi.data(), qi.size()), g.imatrix) << g.name << ": importance path differs from ggml's imatrix path";
  if (*g.dequant) {
    const auto y = dequantize(*fm, q, kGoldenRows, kGoldenCols);
    EXPECT_EQ(hex_sha256(y.data(), y.size() * 4), g.dequant) << g.name << ": dequantize differs from ggml's";
  }
}

INSTANTIATE_TEST_SUITE_P(Ggml, GoldenTest, ::testing::ValuesIn(kGolden),
                         [](const auto& info) { return std::string(info.param.name); });

// Table-wide invariants: unique ids and names, case-insensitive lookup.
TEST(FormatTable, IdsAndNamesAreUnique) {
  std::map<std::string, int> names;
  std::map<uint32_t, int> ids;
  for (const auto& f : all_formats()) {
    EXPECT_EQ(++names[f.name], 1) << f.name;
    EXPECT_EQ(++ids[uint32_t(f.id)], 1) << f.name;
    EXPECT_GT(f.block_size, 0);
    EXPECT_GT(f.block_bytes, 0u);
  }
  for (const char* n : {"Q4_0", "q4_0", "IQ4_NL", "F16"}) EXPECT_NE(find_format(n), nullptr) << n;
  EXPECT_EQ(find_format("q4_3"), nullptr);
}

}  // namespace
