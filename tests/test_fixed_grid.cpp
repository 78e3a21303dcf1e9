// Fixed-scale grids of the quantized weight formats (FormatTraits::block_grid /
// encode_fixed, format.h), table-driven over every row that has one:
//  1. every value dequantize_row gives for quantize_row_ref's blocks is exactly
//     (bit for bit) offset + step * grid(k) for a code k in code_min..code_max;
//  2. encode_fixed of a block's own dequantized values changes neither its values
//     nor its grid (nor its bytes, where no step is 0);
//  3. encode_fixed of arbitrary values keeps the grid (scales / mins) and stores,
//     for each value, the nearest grid point (brute force over every code, ties
//     to the lower code), clamped at the ends;
//  4. NaN inputs store the zero code (the grid point nearest 0).
// offset + step * grid(k) is computed in f32 without FMA contraction, as the
// library computes dequantize_row (x86-64-v2, legacy formats with contraction off).
#include <gtest/gtest.h>

#include "test_random.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "formats/format.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

using namespace lowbit;

namespace {

// The formats that must have a grid: every quantized weight format of the table.
const std::set<std::string> kWithGrid = {"q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "iq4_nl",
                                         "q2_K", "q3_K", "q4_K", "q5_K", "q6_K"};

constexpr int64_t kN = 1024;  // values per row: 32 legacy blocks or 4 super-blocks

using lowbit::test::SplitMix64;

struct Row {
  std::string name;
  std::vector<float> x;
};

// Rows of kN values in several distributions; blocks of all zeros, constants,
// outliers, tiny values (the f16 scale underflows) and one-signed data included.
std::vector<Row> make_rows() {
  SplitMix64 rng{42};
  std::vector<Row> rows;
  auto add = [&](const char* name, auto gen) {
    Row r{name, std::vector<float>(kN)};
    for (int64_t i = 0; i < kN; ++i) r.x[i] = float(gen(i));
    rows.push_back(std::move(r));
  };
  add("gauss", [&](int64_t) { return rng.gauss(); });
  add("gauss_small", [&](int64_t) { return 0.01 * rng.gauss(); });
  add("uniform_positive", [&](int64_t) { return 1.0 + rng.uniform(); });
  add("uniform_negative", [&](int64_t) { return -0.5 - 2.0 * rng.uniform(); });
  add("outliers", [&](int64_t) { return rng.uniform() < 0.02 ? 30.0 * rng.gauss() : rng.gauss(); });
  add("heavy", [&](int64_t) { return 0.02 * rng.gauss() * std::exp(1.5 * rng.gauss()); });
  // First 256 values zero (a zero block / super-block), then a constant run, then Gaussian.
  add("zeros_const", [&](int64_t i) { return i < 256 ? 0.0 : i < 512 ? 0.75 : rng.gauss(); });
  // Tiny: f16 scales underflow to subnormal or zero.
  add("tiny", [&](int64_t i) { return (i < 512 ? 1e-7 : 1e-9) * rng.gauss(); });
  add("sparse", [&](int64_t) { return rng.uniform() < 0.1 ? rng.gauss() : 0.0; });
  return rows;
}

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }
// Where step is 0 every code decodes to the offset, up to the sign of a zero
// (0 * grid(k) is -0 for negative grid points): any code will do there.
bool same_value(float a, float b, float step) { return step == 0.0f ? a == b : same_bits(a, b); }

class FixedGridTest : public ::testing::TestWithParam<std::string> {
 protected:
  const FormatTraits* fmt_ = nullptr;  // set in SetUp (a name lookup per value would dominate the run time)
  const FormatTraits& f() const { return *fmt_; }
  float grid(int k) const { return f().grid_table ? f().grid_table[k - f().code_min] : float(k); }
  // The value code k decodes to, in the f32 operations of the interface.
  float value(float step, float offset, int k) const { return offset + step * grid(k); }

  // Nearest code to x by brute force: minimum |x - value| (double), ties to the lower code.
  int brute_nearest(float x, float step, float offset) const {
    int best = f().code_min;
    double best_d = std::fabs(double(x) - double(value(step, offset, best)));
    for (int k = f().code_min + 1; k <= f().code_max; ++k) {
      const double d = std::fabs(double(x) - double(value(step, offset, k)));
      if (d < best_d) {
        best_d = d;
        best = k;
      }
    }
    return best;
  }

  // Quantized row (with and without a random importance vector) and its dequantized values.
  struct Quantized {
    std::vector<uint8_t> q;
    std::vector<float> y;
  };
  Quantized quantize(const std::vector<float>& x, const float* importance) const {
    Quantized r{std::vector<uint8_t>(size_t(kN / f().block_size) * f().block_bytes), std::vector<float>(kN)};
    f().quantize_row_ref(x.data(), r.q.data(), kN, importance);
    f().dequantize_row(r.q.data(), r.y.data(), kN);
    return r;
  }

  void grid_of(const uint8_t* block, std::vector<float>& step, std::vector<float>& offset) const {
    step.assign(f().block_size, NAN);
    offset.assign(f().block_size, NAN);
    f().block_grid(block, step.data(), offset.data());
  }

  template <class Body>
  void for_each_quantized_block(Body body) const {
    SplitMix64 rng{7};
    std::vector<float> importance(kN);
    for (auto& w : importance) w = float(0.1 + rng.uniform() * rng.uniform() * 10);
    for (const Row& row : make_rows()) {
      for (const float* imp : {static_cast<const float*>(nullptr), static_cast<const float*>(importance.data())}) {
        const Quantized qz = quantize(row.x, imp);
        for (int64_t b = 0; b < kN / f().block_size; ++b) {
          SCOPED_TRACE(row.name + (imp ? " +importance" : "") + " block " + std::to_string(b));
          body(row.x.data() + b * f().block_size, qz.q.data() + b * f().block_bytes, qz.y.data() + b * f().block_size);
          if (::testing::Test::HasFatalFailure()) return;
        }
      }
    }
  }

  void SetUp() override {
    fmt_ = find_format(GetParam());
    ASSERT_NE(fmt_, nullptr);
    ASSERT_NE(f().block_grid, nullptr) << GetParam() << " must have a fixed-scale grid";
    ASSERT_NE(f().encode_fixed, nullptr);
    ASSERT_LT(f().code_min, f().code_max);
  }
};

std::vector<std::string> grid_names() { return {kWithGrid.begin(), kWithGrid.end()}; }

TEST(FixedGrid, ExactlyTheQuantizedWeightFormatsHaveOne) {
  std::set<std::string> have;
  for (const auto& f : all_formats()) {
    if (f.block_grid || f.encode_fixed) have.insert(f.name);
    EXPECT_EQ(f.block_grid == nullptr, f.encode_fixed == nullptr) << f.name;
    if (!f.block_grid) {
      EXPECT_EQ(f.grid_table, nullptr) << f.name;
    }
  }
  EXPECT_EQ(have, kWithGrid);
}

TEST_P(FixedGridTest, CodeRangeAndGridTable) {
  const std::string n = GetParam();
  const int range = f().code_max - f().code_min + 1;
  if (n == "iq4_nl") {
    ASSERT_NE(f().grid_table, nullptr);
    EXPECT_EQ(range, 16);
    for (int k = 1; k < range; ++k) EXPECT_LT(f().grid_table[k - 1], f().grid_table[k]);
  } else {
    EXPECT_EQ(f().grid_table, nullptr);
    EXPECT_TRUE(range == 4 || range == 8 || range == 16 || range == 32 || range == 64 || range == 255) << range;
  }
}

// 1. Every dequantized value is a grid point of its block, bit for bit.
TEST_P(FixedGridTest, DequantizedValuesAreGridPoints) {
  std::vector<float> step, offset;
  for_each_quantized_block([&](const float*, const uint8_t* block, const float* y) {
    grid_of(block, step, offset);
    for (int i = 0; i < f().block_size; ++i) {
      bool found = false;
      for (int k = f().code_min; k <= f().code_max && !found; ++k)
        found = same_bits(value(step[i], offset[i], k), y[i]);
      ASSERT_TRUE(found) << "value " << i << " = " << y[i] << " is not offset + step * grid(k) (step " << step[i]
                         << ", offset " << offset[i] << ")";
    }
  });
}

// 2. Re-encoding a block's own values changes nothing.
TEST_P(FixedGridTest, EncodeOwnValuesIsIdentity) {
  std::vector<float> step, offset, step2, offset2, y2(f().block_size);
  std::vector<uint8_t> copy(f().block_bytes);
  for_each_quantized_block([&](const float*, const uint8_t* block, const float* y) {
    grid_of(block, step, offset);
    std::memcpy(copy.data(), block, f().block_bytes);
    f().encode_fixed(y, copy.data());
    grid_of(copy.data(), step2, offset2);
    f().dequantize_row(copy.data(), y2.data(), f().block_size);
    for (int i = 0; i < f().block_size; ++i) {
      ASSERT_TRUE(same_value(y2[i], y[i], step[i])) << "value " << i << ": " << y2[i] << " != " << y[i];
      ASSERT_TRUE(same_bits(step2[i], step[i]) && same_bits(offset2[i], offset[i])) << "grid changed at " << i;
    }
    if (std::none_of(step.begin(), step.end(), [](float s) { return s == 0.0f; })) {
      ASSERT_EQ(std::memcmp(copy.data(), block, f().block_bytes), 0) << "bytes changed";
    }
  });
}

// 3. Arbitrary values: grid kept, each value the nearest grid point (clamped at the ends).
TEST_P(FixedGridTest, EncodeArbitraryValuesRoundsToNearest) {
  SplitMix64 rng{99};
  std::vector<float> step, offset, step2, offset2, x(f().block_size), y2(f().block_size);
  std::vector<uint8_t> copy(f().block_bytes);
  int ends = 0, ties = 0;
  for_each_quantized_block([&](const float* orig, const uint8_t* block, const float* y) {
    grid_of(block, step, offset);
    for (int variant = 0; variant < 4; ++variant) {
      for (int i = 0; i < f().block_size; ++i) {
        const float lo = value(step[i], offset[i], f().code_min), hi = value(step[i], offset[i], f().code_max);
        const double span = std::fabs(double(hi) - double(lo)) + 1e-30;
        switch (variant) {
          case 0:  // the original data plus noise of a few grid steps
            x[i] = float(orig[i] + 0.05 * span * rng.gauss());
            break;
          case 1:  // anywhere in and well beyond the grid's range
            x[i] = float(std::min(lo, hi) + span * (3.0 * rng.uniform() - 1.0));
            break;
          case 2: {  // midpoints of neighbouring grid points (ties where they are exact in f32)
            const int k = f().code_min + int(rng.next() % uint64_t(f().code_max - f().code_min));
            x[i] = float(0.5 * (double(value(step[i], offset[i], k)) + double(value(step[i], offset[i], k + 1))));
            break;
          }
          default:  // far out on both sides, and grid points themselves
            x[i] = i % 3 == 0 ? float((i % 2 ? std::max(lo, hi) + 40 * span : std::min(lo, hi) - 40 * span))
                              : value(step[i], offset[i], f().code_min + int(rng.next() % 7));
            break;
        }
      }
      std::memcpy(copy.data(), block, f().block_bytes);
      f().encode_fixed(x.data(), copy.data());
      grid_of(copy.data(), step2, offset2);
      f().dequantize_row(copy.data(), y2.data(), f().block_size);
      for (int i = 0; i < f().block_size; ++i) {
        ASSERT_TRUE(same_bits(step2[i], step[i]) && same_bits(offset2[i], offset[i]))
            << "encode_fixed changed the grid of value " << i;
        const int k = brute_nearest(x[i], step[i], offset[i]);
        const float want = value(step[i], offset[i], k);
        ASSERT_TRUE(same_value(y2[i], want, step[i]))
            << "variant " << variant << " value " << i << ": x " << x[i] << " stored " << y2[i]
            << ", nearest grid point " << want << " (code " << k << ")";
        if (step[i] != 0 && (k == f().code_min || k == f().code_max)) ++ends;
        if (step[i] != 0 && k < f().code_max) {
          const float next = value(step[i], offset[i], k + 1);
          if (std::fabs(double(x[i]) - double(want)) == std::fabs(double(x[i]) - double(next)) && next != want) ++ties;
        }
      }
    }
  });
  EXPECT_GT(ends, 0) << "no value clamped at an end: the test data does not reach the ends";
  EXPECT_GT(ties, 0) << "no exact tie in the test data";
}

// NaN inputs (never from GPTQ, which rejects non-finite weights) store the code a
// zero value takes when the scale is 0: the grid point nearest to 0 - never garbage.
TEST_P(FixedGridTest, NanStoresTheZeroCode) {
  int zero = std::clamp(0, f().code_min, f().code_max);
  if (f().grid_table)
    for (int k = f().code_min; k <= f().code_max; ++k)
      if (std::fabs(grid(k)) < std::fabs(grid(zero))) zero = k;
  std::vector<float> x(f().block_size, NAN), y(f().block_size), step, offset;
  int checked = 0;
  for_each_quantized_block([&](const float*, const uint8_t* block, const float*) {
    if (++checked > 8) return;
    std::vector<uint8_t> copy(block, block + f().block_bytes);
    grid_of(block, step, offset);
    f().encode_fixed(x.data(), copy.data());
    f().dequantize_row(copy.data(), y.data(), f().block_size);
    for (int i = 0; i < f().block_size; ++i)
      ASSERT_TRUE(same_value(y[i], value(step[i], offset[i], zero), step[i])) << "value " << i << ": " << y[i];
  });
}

INSTANTIATE_TEST_SUITE_P(WeightFormats, FixedGridTest, ::testing::ValuesIn(grid_names()),
                         [](const auto& info) { return info.param; });

}  // namespace
