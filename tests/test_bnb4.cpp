// bitsandbytes NF4 / FP4 (methods/bnb4.h): code tables against the published
// numbers, hand-worked golden bytes, error bounds, double quantization, the
// bits-per-weight formula, AVX2 against the reference kernels, matmul against
// f32 products, thread-count independence, row permutation, the Hugging Face
// layout round trip and its corrupt-input errors, and real stories260K weights
// against an int4 round-to-nearest baseline.
#include <gtest/gtest.h>

#include "paths.h"
#include "test_random.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "io/model_loader.h"
#include "lowbit/error.h"
#include "methods/bnb4.h"

using namespace lowbit;

namespace {

using lowbit::test::SplitMix64;

std::vector<float> gaussian(size_t n, uint64_t seed, double scale = 1.0) {
  SplitMix64 rng{seed};
  std::vector<float> v(n);
  for (auto& x : v) x = float(scale * rng.gauss());
  return v;
}

std::vector<float> dequant(const QLinear& q) {
  std::vector<float> w(static_cast<size_t>(q.n_out() * q.n_in()));
  q.dequantize_rows(0, q.n_out(), w.data());
  return w;
}

double rmse(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0.0;
  for (size_t i = 0; i < a.size(); ++i) s += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
  return std::sqrt(s / double(a.size()));
}

Bnb4Linear make(const std::vector<float>& W, int64_t n_out, int64_t n_in, Bnb4Type t, bool dq, int bs = 64) {
  return Bnb4Linear(quantize_bnb4("test.weight", W.data(), n_out, n_in, t, bs, dq, 2));
}

// Y [n_tok, n_out] = X · W^T in double.
std::vector<double> matmul_ref(const std::vector<float>& W, int64_t n_out, int64_t n_in, const std::vector<float>& X,
                               int n_tok, std::vector<double>* absdot = nullptr) {
  std::vector<double> Y(size_t(n_tok * n_out));
  if (absdot) absdot->assign(Y.size(), 0.0);
  for (int t = 0; t < n_tok; ++t)
    for (int64_t o = 0; o < n_out; ++o) {
      double s = 0.0, a = 0.0;
      for (int64_t i = 0; i < n_in; ++i) {
        s += double(W[size_t(o * n_in + i)]) * X[size_t(t * n_in + i)];
        a += std::fabs(double(W[size_t(o * n_in + i)]) * X[size_t(t * n_in + i)]);
      }
      Y[size_t(t * n_out + o)] = s;
      if (absdot) (*absdot)[size_t(t * n_out + o)] = a;
    }
  return Y;
}

// ---- code tables ----------------------------------------------------------------

TEST(Bnb4Tables, Nf4IsThePublishedNormalFloat) {
  // QLoRA appendix E / bitsandbytes get_4bit_type("nf4").
  const float nf4[16] = {-1.0f,
                         -0.6961928009986877f,
                         -0.5250730514526367f,
                         -0.39491748809814453f,
                         -0.28444138169288635f,
                         -0.18477343022823334f,
                         -0.09105003625154495f,
                         0.0f,
                         0.07958029955625534f,
                         0.16093020141124725f,
                         0.24611230194568634f,
                         0.33791524171829224f,
                         0.44070982933044434f,
                         0.5626170039176941f,
                         0.7229568362236023f,
                         1.0f};
  const auto& c = bnb4_code(Bnb4Type::NF4);
  for (int i = 0; i < 16; ++i) EXPECT_EQ(c[size_t(i)], nf4[i]) << i;
  EXPECT_FALSE(std::signbit(c[7]));
}

TEST(Bnb4Tables, Fp4IsBitsandbytesBitPatternOrder) {
  // bnb's CUDA dequantization LUT (fp4_dequantization_lut, the 3 low bits), bit 3 = sign.
  const float lut[8] = {0.0f, 5.208333333e-03f, 0.66666667f, 1.0f, 0.33333333f, 0.5f, 0.16666667f, 0.25f};
  const auto& c = bnb4_code(Bnb4Type::FP4);
  for (int i = 0; i < 8; ++i) {
    EXPECT_FLOAT_EQ(c[size_t(i)], lut[i]) << i;
    EXPECT_FLOAT_EQ(c[size_t(i + 8)], -lut[i]) << i + 8;
  }
  // Exact values: the e2m1 magnitudes / 12 (exactly representable ones are exact).
  EXPECT_EQ(c[3], 1.0f);
  EXPECT_EQ(c[5], 0.5f);
  EXPECT_EQ(c[7], 0.25f);
  EXPECT_EQ(c[1], 0.0625f / 12.0f);
  EXPECT_EQ(c[8], 0.0f);
  EXPECT_FALSE(std::signbit(c[8]));  // bnb builds code 8 from the Python int -0
}

TEST(Bnb4Tables, DynamicMapMatchesBitsandbytes) {
  // bitsandbytes.functional.create_dynamic_map(signed=True) as printed by
  // torch 1.13.1 (CPU capability AVX2) running bnb's function: repr() of each entry.
  const float expected[256] = {
      -0.992968738079071f, -0.9789062142372131f, -0.96484375f, -0.9507812261581421f,
      -0.9367187023162842f, -0.922656238079071f, -0.9085937738418579f, -0.89453125f,
      -0.8804687261581421f, -0.8664062023162842f, -0.852343738079071f, -0.8382812142372131f,
      -0.82421875f, -0.8101562261581421f, -0.7960937023162842f, -0.782031238079071f,
      -0.7679687738418579f, -0.75390625f, -0.7398437857627869f, -0.725781261920929f,
      -0.7117187976837158f, -0.6976562738418579f, -0.68359375f, -0.6695312857627869f,
      -0.655468761920929f, -0.641406238079071f, -0.6273437738418579f, -0.61328125f,
      -0.5992187261581421f, -0.585156261920929f, -0.5710937976837158f, -0.5570312738418579f,
      -0.54296875f, -0.5289062261581421f, -0.514843761920929f, -0.500781238079071f,
      -0.4867187738418579f, -0.47265625f, -0.4585937261581421f, -0.44453126192092896f,
      -0.43046873807907104f, -0.41640621423721313f, -0.40234375f, -0.3882812261581421f,
      -0.37421876192092896f, -0.36015623807907104f, -0.34609371423721313f, -0.33203125f,
      -0.3179687261581421f, -0.30390626192092896f, -0.28984373807907104f, -0.2757812738418579f,
      -0.26171875f, -0.24765625596046448f, -0.23359376192092896f, -0.21953125298023224f,
      -0.20546874403953552f, -0.19140625f, -0.17734374105930328f, -0.16328124701976776f,
      -0.14921875298023224f, -0.13515624403953552f, -0.12109375f, -0.10703125596046448f,
      -0.09859374910593033f, -0.09578124433755875f, -0.09296875447034836f, -0.09015624970197678f,
      -0.08734375238418579f, -0.08453124761581421f, -0.08171874284744263f, -0.07890625298023224f,
      -0.07609374821186066f, -0.07328125089406967f, -0.07046874612569809f, -0.0676562562584877f,
      -0.06484375149011612f, -0.06203124672174454f, -0.05921875312924385f, -0.05640624836087227f,
      -0.053593751043081284f, -0.05078125f, -0.047968748956918716f, -0.04515625163912773f,
      -0.04234374687075615f, -0.039531249552965164f, -0.03671875223517418f, -0.0339062474668026f,
      -0.031093750149011612f, -0.02828124724328518f, -0.025468749925494194f, -0.02265625074505806f,
      -0.019843749701976776f, -0.017031250521540642f, -0.014218750409781933f, -0.011406250298023224f,
      -0.009718749672174454f, -0.009156249463558197f, -0.008593750186264515f, -0.008031249977648258f,
      -0.0074687497690320015f, -0.006906250026077032f, -0.006343749817460775f, -0.005781250074505806f,
      -0.0052187503315508366f, -0.0046562496572732925f, -0.004093749914318323f, -0.0035312497057020664f,
      -0.002968749962747097f, -0.002406249986961484f, -0.001843750011175871f, -0.001281249918974936f,
      -0.0009437500848434865f, -0.0008312499849125743f, -0.0007187500596046448f, -0.0006062500760890543f,
      -0.000493750034365803f, -0.0003812500217463821f, -0.0002687500382307917f, -0.00015625001105945557f,
      -8.874999912222847e-05f, -6.625000241911039e-05f, -4.374999844003469e-05f, -2.1249998098937795e-05f,
      -7.749999895168003e-06f, -3.250000190746505e-06f, -5.500000384017767e-07f, 0.0f,
      5.500000384017767e-07f, 3.250000190746505e-06f, 7.749999895168003e-06f, 2.1249998098937795e-05f,
      4.374999844003469e-05f, 6.625000241911039e-05f, 8.874999912222847e-05f, 0.00015625001105945557f,
      0.0002687500382307917f, 0.0003812500217463821f, 0.000493750034365803f, 0.0006062500760890543f,
      0.0007187500596046448f, 0.0008312499849125743f, 0.0009437500848434865f, 0.001281249918974936f,
      0.001843750011175871f, 0.002406249986961484f, 0.002968749962747097f, 0.0035312497057020664f,
      0.004093749914318323f, 0.0046562496572732925f, 0.0052187503315508366f, 0.005781250074505806f,
      0.006343749817460775f, 0.006906250026077032f, 0.0074687497690320015f, 0.008031249977648258f,
      0.008593750186264515f, 0.009156249463558197f, 0.009718749672174454f, 0.011406250298023224f,
      0.014218750409781933f, 0.017031250521540642f, 0.019843749701976776f, 0.02265625074505806f,
      0.025468749925494194f, 0.02828124724328518f, 0.031093750149011612f, 0.0339062474668026f,
      0.03671875223517418f, 0.039531249552965164f, 0.04234374687075615f, 0.04515625163912773f,
      0.047968748956918716f, 0.05078125f, 0.053593751043081284f, 0.05640624836087227f,
      0.05921875312924385f, 0.06203124672174454f, 0.06484375149011612f, 0.0676562562584877f,
      0.07046874612569809f, 0.07328125089406967f, 0.07609374821186066f, 0.07890625298023224f,
      0.08171874284744263f, 0.08453124761581421f, 0.08734375238418579f, 0.09015624970197678f,
      0.09296875447034836f, 0.09578124433755875f, 0.09859374910593033f, 0.10703125596046448f,
      0.12109375f, 0.13515624403953552f, 0.14921875298023224f, 0.16328124701976776f,
      0.17734374105930328f, 0.19140625f, 0.20546874403953552f, 0.21953125298023224f,
      0.23359376192092896f, 0.24765625596046448f, 0.26171875f, 0.2757812738418579f,
      0.28984373807907104f, 0.30390626192092896f, 0.3179687261581421f, 0.33203125f,
      0.34609371423721313f, 0.36015623807907104f, 0.37421876192092896f, 0.3882812261581421f,
      0.40234375f, 0.41640621423721313f, 0.43046873807907104f, 0.44453126192092896f,
      0.4585937261581421f, 0.47265625f, 0.4867187738418579f, 0.500781238079071f,
      0.514843761920929f, 0.5289062261581421f, 0.54296875f, 0.5570312738418579f,
      0.5710937976837158f, 0.585156261920929f, 0.5992187261581421f, 0.61328125f,
      0.6273437738418579f, 0.641406238079071f, 0.655468761920929f, 0.6695312857627869f,
      0.68359375f, 0.6976562738418579f, 0.7117187976837158f, 0.725781261920929f,
      0.7398437857627869f, 0.75390625f, 0.7679687738418579f, 0.782031238079071f,
      0.7960937023162842f, 0.8101562261581421f, 0.82421875f, 0.8382812142372131f,
      0.852343738079071f, 0.8664062023162842f, 0.8804687261581421f, 0.89453125f,
      0.9085937738418579f, 0.922656238079071f, 0.9367187023162842f, 0.9507812261581421f,
      0.96484375f, 0.9789062142372131f, 0.992968738079071f, 1.0f};
  const auto& m = bnb_dynamic_map();
  for (int i = 0; i < 256; ++i) EXPECT_EQ(m[size_t(i)], expected[i]) << i;
  // Structure: sorted, exact 0 at 127, 1.0 at 255, the negative half mirrors the positive.
  EXPECT_EQ(m[127], 0.0f);
  EXPECT_EQ(m[255], 1.0f);
  EXPECT_TRUE(std::is_sorted(m.begin(), m.end()));
  for (int i = 0; i < 127; ++i) EXPECT_EQ(m[size_t(i)], -m[size_t(254 - i)]) << i;
}

// ---- value quantizers --------------------------------------------------------------

TEST(Bnb4Quantize, CodesRoundTripAndTiesGoLow) {
  for (Bnb4Type t : {Bnb4Type::NF4, Bnb4Type::FP4}) {
    const auto& c = bnb4_code(t);
    for (int i = 0; i < 16; ++i) {
      if (t == Bnb4Type::FP4 && i == 8) continue;  // +0 twice: quantizes to code 0
      EXPECT_EQ(bnb4_quantize_scaled(t, c[size_t(i)]), i) << bnb4_type_name(t) << " code " << i;
    }
  }
  // NF4 pivots are bnb's: a value on a pivot takes the lower code, just above it the upper.
  EXPECT_EQ(bnb4_quantize_scaled(Bnb4Type::NF4, 0.03979014977812767f), 7);
  EXPECT_EQ(bnb4_quantize_scaled(Bnb4Type::NF4, std::nextafter(0.03979014977812767f, 1.0f)), 8);
  EXPECT_EQ(bnb4_quantize_scaled(Bnb4Type::NF4, -0.8480964004993439f), 0);
  EXPECT_EQ(bnb4_quantize_scaled(Bnb4Type::NF4, 0.5f), 12);
  EXPECT_EQ(bnb4_quantize_scaled(Bnb4Type::NF4, 0.15f), 9);
  EXPECT_EQ(bnb4_quantize_scaled(Bnb4Type::NF4, NAN), 0);  // an all-zero block in bnb's kernel
  // FP4: bnb's pivot between 8/12 and 6/12 is 0.583333 (not 7/12 rounded).
  EXPECT_EQ(bnb4_quantize_scaled(Bnb4Type::FP4, 0.583333f), 0b101);
  EXPECT_EQ(bnb4_quantize_scaled(Bnb4Type::FP4, 0.5833332f), 0b010);
  EXPECT_EQ(bnb4_quantize_scaled(Bnb4Type::FP4, -0.15f), 0b1110);
  EXPECT_EQ(bnb4_quantize_scaled(Bnb4Type::FP4, -0.0f), 0);
  EXPECT_EQ(bnb4_quantize_scaled(Bnb4Type::FP4, 0.002f), 0);
  EXPECT_EQ(bnb4_quantize_scaled(Bnb4Type::FP4, 0.003f), 1);
}

TEST(Bnb4Quantize, DynamicMapNearest) {
  const auto& m = bnb_dynamic_map();
  for (int i = 0; i < 256; ++i) EXPECT_EQ(bnb_dynamic_quantize_scaled(m.data(), m[size_t(i)]), i) << i;
  EXPECT_EQ(bnb_dynamic_quantize_scaled(m.data(), -1.0f), 0);
  EXPECT_EQ(bnb_dynamic_quantize_scaled(m.data(), 0.996f), 254);   // nearer 0.99297 than 1.0
  EXPECT_EQ(bnb_dynamic_quantize_scaled(m.data(), 0.9975f), 255);
  // Nearest neighbour over the whole range, against a linear scan.
  SplitMix64 rng{5};
  for (int k = 0; k < 4000; ++k) {
    const float x = float(2.0 * rng.uniform() - 1.0) * (k % 2 ? 1.0f : 0.01f);
    const int q = bnb_dynamic_quantize_scaled(m.data(), x);
    float best = INFINITY;
    for (int i = 0; i < 256; ++i) best = std::min(best, std::fabs(m[size_t(i)] - x));
    EXPECT_LE(std::fabs(m[size_t(q)] - x), best * (1.0f + 1e-6f) + 1e-12f) << x;
  }
}

// Hand-worked bytes: one row of 64 values [2, -2, 1, 0.3, 0, ..., 0]: absmax 2,
// scaled [1, -1, 0.5, 0.15, 0...]. NF4: 1 -> 15, -1 -> 0, 0.5 -> 12 (pivot
// 0.50166), 0.15 -> 9 (pivot 0.12026), 0 -> 7. FP4: 1 -> 0b0011, -1 -> 0b1011,
// 0.5 -> 0b0101 (6/12), 0.15 -> 0b0110 (2/12, pivot 0.0859), 0 -> 0.
TEST(Bnb4Quantize, GoldenBytes) {
  std::vector<float> W(64, 0.0f);
  W[0] = 2.0f, W[1] = -2.0f, W[2] = 1.0f, W[3] = 0.3f;
  Bnb4State s = quantize_bnb4("w", W.data(), 1, 64, Bnb4Type::NF4, 64, false, 1);
  ASSERT_EQ(s.codes.size(), 32u);
  EXPECT_EQ(s.codes[0], 0xF0);
  EXPECT_EQ(s.codes[1], 0xC9);
  for (size_t i = 2; i < 32; ++i) EXPECT_EQ(s.codes[i], 0x77) << i;
  ASSERT_EQ(s.absmax.size(), 1u);
  EXPECT_EQ(s.absmax[0], 2.0f);
  Bnb4State f = quantize_bnb4("w", W.data(), 1, 64, Bnb4Type::FP4, 64, false, 1);
  EXPECT_EQ(f.codes[0], 0x3B);
  EXPECT_EQ(f.codes[1], 0x56);
  for (size_t i = 2; i < 32; ++i) EXPECT_EQ(f.codes[i], 0x00) << i;
  // Odd element count: the last low nibble is the code of 0; the short last block has its own absmax.
  const float w3[3] = {0.5f, -1.0f, 4.0f};
  Bnb4State o = quantize_bnb4("w", w3, 1, 3, Bnb4Type::NF4, 64, false, 1);
  ASSERT_EQ(o.codes.size(), 2u);
  EXPECT_EQ(o.codes[1], 0xF7);
  EXPECT_EQ(o.absmax[0], 4.0f);
  // An all-zero block: bnb's kernel scales by 1/0 = inf, 0 * inf = NaN, which its
  // trees send to code 0 (NF4 -1.0, FP4 +0); absmax 0 decodes every value to zero.
  const std::vector<float> zeros(128, 0.0f);
  for (Bnb4Type t : {Bnb4Type::NF4, Bnb4Type::FP4})
    for (bool dq : {false, true}) {
      Bnb4Linear z(quantize_bnb4("w", zeros.data(), 2, 64, t, 64, dq, 1));
      for (uint8_t c : z.state().codes) EXPECT_EQ(c, 0x00);
      for (float v : dequant(z)) EXPECT_EQ(v, 0.0f);
      std::vector<float> y(2);
      z.matmul(zeros.data(), 1, y.data(), 1);
      EXPECT_EQ(y[0], 0.0f);
    }
  // Dequantized: code * absmax.
  Bnb4Linear l(std::move(s));
  std::vector<float> d = dequant(l);
  EXPECT_EQ(d[0], 2.0f);
  EXPECT_EQ(d[1], -2.0f);
  EXPECT_EQ(d[2], 0.44070982933044434f * 2.0f);
  EXPECT_EQ(d[3], 0.16093020141124725f * 2.0f);
  EXPECT_EQ(d[4], 0.0f);
}

TEST(Bnb4Quantize, ErrorBoundAndNf4BeatsFp4AndInt4) {
  const int64_t n_out = 64, n_in = 256;
  const std::vector<float> W = gaussian(size_t(n_out * n_in), 11, 0.02);
  double rm[2];
  for (Bnb4Type t : {Bnb4Type::NF4, Bnb4Type::FP4}) {
    const auto& c = bnb4_code(t);
    std::vector<float> sorted(c.begin(), c.end());
    std::sort(sorted.begin(), sorted.end());
    float max_gap = 0.0f;
    for (int i = 0; i + 1 < 16; ++i) max_gap = std::max(max_gap, sorted[size_t(i + 1)] - sorted[size_t(i)]);
    Bnb4Linear l = make(W, n_out, n_in, t, false);
    const std::vector<float> d = dequant(l);
    for (size_t i = 0; i < W.size(); ++i) {
      const float a = l.state().absmax[i / 64];
      ASSERT_LE(std::fabs(d[i] - W[i]), 0.5f * max_gap * a * 1.0001f) << bnb4_type_name(t) << " " << i;
    }
    rm[t == Bnb4Type::NF4 ? 0 : 1] = rmse(d, W);
  }
  // int4 round-to-nearest, symmetric absmax per 64 (levels -7..7).
  std::vector<float> r(W.size());
  for (size_t b = 0; b < W.size(); b += 64) {
    float a = 0.0f;
    for (size_t i = b; i < b + 64; ++i) a = std::max(a, std::fabs(W[i]));
    const float d = a / 7.0f;
    for (size_t i = b; i < b + 64; ++i) r[i] = d * std::round(W[i] / d);
  }
  const double rm_int4 = rmse(r, W);
  EXPECT_LT(rm[0], rm[1]);
  EXPECT_LT(rm[0], rm_int4);
  EXPECT_LT(rm[0] / 0.02, 0.11);  // NF4 on N(0, 1): about 0.1 sigma
  RecordProperty("nf4_rmse", std::to_string(rm[0]));
  RecordProperty("fp4_rmse", std::to_string(rm[1]));
  RecordProperty("int4_rmse", std::to_string(rm_int4));
}

TEST(Bnb4Quantize, RejectsNanAndBadBlocksize) {
  std::vector<float> W(128, 0.5f);
  W[70] = NAN;
  EXPECT_THROW(quantize_bnb4("blk.0.attn_q.weight", W.data(), 2, 64, Bnb4Type::NF4, 64, false), Error);
  try {
    quantize_bnb4("blk.0.attn_q.weight", W.data(), 2, 64, Bnb4Type::NF4, 64, false);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("blk.0.attn_q.weight"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[1, 6]"), std::string::npos) << e.what();
  }
  W[70] = 0.0f;
  EXPECT_THROW(quantize_bnb4("w", W.data(), 2, 64, Bnb4Type::NF4, 48, false), Error);
  EXPECT_THROW(quantize_bnb4("w", W.data(), 2, 64, Bnb4Type::NF4, 8192, false), Error);
}

// ---- double quantization -------------------------------------------------------------

TEST(Bnb4DoubleQuant, AbsmaxWithinDynamicMapErrorAndSameCodes) {
  const int64_t n_out = 96, n_in = 512;  // 768 blocks: three nested blocks of 256
  std::vector<float> W = gaussian(size_t(n_out * n_in), 21, 0.03);
  for (size_t i = 0; i < W.size(); i += 997) W[i] *= 6.0f;  // some outliers -> spread of absmax
  for (Bnb4Type t : {Bnb4Type::NF4, Bnb4Type::FP4}) {
    Bnb4Linear plain = make(W, n_out, n_in, t, false), dq = make(W, n_out, n_in, t, true);
    const Bnb4State &p = plain.state(), &q = dq.state();
    EXPECT_EQ(p.codes, q.codes);  // codes come from the exact absmax, only the scales are compressed
    ASSERT_EQ(q.nested_absmax.size(), 3u);
    double mean = 0.0;
    for (float a : p.absmax) mean += a;
    mean /= double(p.absmax.size());
    EXPECT_NEAR(q.offset, mean, 1e-6 * mean);
    // Largest gap of the dynamic map is 0.9 / 64 (top decade): error <= half of it.
    for (int64_t b = 0; b < p.n_blocks(); ++b) {
      const float nested = q.nested_absmax[size_t(b / 256)];
      ASSERT_LE(std::fabs(q.block_absmax(b) - p.absmax[size_t(b)]), 0.5f * 0.0140625f * nested * 1.001f + 1e-7f) << b;
    }
    const std::vector<float> wp = dequant(plain), wq = dequant(dq);
    float max_nested = *std::max_element(q.nested_absmax.begin(), q.nested_absmax.end());
    for (size_t i = 0; i < W.size(); ++i) ASSERT_LE(std::fabs(wp[i] - wq[i]), 0.0071f * max_nested) << i;
    EXPECT_LT(rmse(wq, W), 1.02 * rmse(wp, W));
  }
}

TEST(Bnb4DoubleQuant, BitsPerWeightFormula) {
  const auto qp = make_nf4_quantizer();
  const Quantizer& q = *qp;
  QuantConfig cfg;
  cfg.method = "nf4";
  cfg.group_size = 64;
  EXPECT_EQ(q.bits_per_weight(cfg, 4096, 4096), 4.5);
  cfg.double_quant = true;
  // 4 + 8/64 + 32 per 256 blocks + the 32-bit offset.
  const double n = 4096.0 * 4096.0, blocks = n / 64.0;
  const double expect = 4.0 + 8.0 / 64.0 + 32.0 * std::ceil(blocks / 256.0) / n + 32.0 / n;
  EXPECT_DOUBLE_EQ(q.bits_per_weight(cfg, 4096, 4096), expect);
  EXPECT_NEAR(expect, 4.127, 5e-4);
  // A real layer's nbytes matches the formula.
  const std::vector<float> W = gaussian(size_t(40 * 200), 3);
  Bnb4Linear l = make(W, 40, 200, Bnb4Type::NF4, true);
  EXPECT_EQ(l.nbytes(), size_t(4000 + 125 + 4 + 4));  // codes, absmax codes, 1 nested absmax, offset
  EXPECT_DOUBLE_EQ(q.bits_per_weight(cfg, 40, 200), l.bits_per_weight());
  Bnb4Linear l2 = make(W, 40, 200, Bnb4Type::FP4, false);
  EXPECT_EQ(l2.nbytes(), size_t(4000 + 125 * 4));
}

// ---- kernels and matmul ------------------------------------------------------------------

struct Case {
  Bnb4Type type;
  bool dq;
  int blocksize;
};
const Case kCases[] = {{Bnb4Type::NF4, false, 64}, {Bnb4Type::NF4, true, 64}, {Bnb4Type::FP4, false, 64},
                       {Bnb4Type::FP4, true, 64},  {Bnb4Type::NF4, false, 32}, {Bnb4Type::NF4, true, 128}};

TEST(Bnb4Kernels, Avx2MatchesReference) {
  if (best_isa_supported() < IsaLevel::Avx2) GTEST_SKIP() << "no AVX2 on this CPU";
  const int64_t n_out = 70, n_in = 384;
  const std::vector<float> W = gaussian(size_t(n_out * n_in), 31, 0.05);
  const std::vector<float> X = gaussian(size_t(20 * n_in), 32);
  for (const Case& c : kCases) {
    Bnb4Linear l = make(W, n_out, n_in, c.type, c.dq, c.blocksize);
    const Bnb4State& s = l.state();
    // Row dequantization: bit-exact.
    const int64_t bpr = n_in / c.blocksize;
    std::vector<float> am(static_cast<size_t>(bpr)), a(static_cast<size_t>(n_in)), b(static_cast<size_t>(n_in));
    for (int64_t r = 0; r < n_out; ++r) {
      for (int64_t j = 0; j < bpr; ++j) am[size_t(j)] = s.block_absmax(r * bpr + j);
      const uint8_t* codes = s.codes.data() + r * n_in / 2;
      bnb4_dequant_row_ref(codes, am.data(), n_in, c.blocksize, bnb4_code(c.type).data(), a.data());
      bnb4_dequant_row_avx2(codes, am.data(), n_in, c.blocksize, bnb4_code(c.type).data(), b.data());
      ASSERT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * 4)) << r;
    }
    const std::vector<float> Wd = dequant(l);
    for (int n_tok : {1, 3, 5, 20}) {
      std::vector<float> yr(size_t(n_tok * n_out)), ya(yr.size());
      l.matmul_isa(X.data(), n_tok, yr.data(), 1, IsaLevel::Ref);
      l.matmul_isa(X.data(), n_tok, ya.data(), 1, IsaLevel::Avx2);
      std::vector<double> absdot;
      matmul_ref(Wd, n_out, n_in, X, n_tok, &absdot);
      for (size_t i = 0; i < yr.size(); ++i)
        ASSERT_NEAR(ya[i], yr[i], 1e-5 * absdot[i] + 1e-30) << bnb4_type_name(c.type) << " dq=" << c.dq << " n_tok=" << n_tok << " " << i;
      if (n_tok >= 16) {
        EXPECT_EQ(0, std::memcmp(ya.data(), yr.data(), ya.size() * 4));  // same panel, same sgemm
      }
    }
  }
}

TEST(Bnb4Kernels, MatmulMatchesF32Products) {
  const int64_t n_out = 48, n_in = 320;
  const std::vector<float> W = gaussian(size_t(n_out * n_in), 41, 0.05);
  const std::vector<float> X = gaussian(size_t(17 * n_in), 42);
  for (const Case& c : kCases) {
    Bnb4Linear l = make(W, n_out, n_in, c.type, c.dq, c.blocksize);
    const std::vector<float> Wd = dequant(l);
    for (int n_tok : {1, 2, 6, 17}) {
      std::vector<float> y(size_t(n_tok * n_out));
      l.matmul(X.data(), n_tok, y.data(), 2);
      std::vector<double> absdot;
      const std::vector<double> yd = matmul_ref(Wd, n_out, n_in, X, n_tok, &absdot);  // dequantized weight: tight
      const std::vector<double> yo = matmul_ref(W, n_out, n_in, X, n_tok);            // original weight: loose
      double err = 0.0, ref = 0.0;
      for (size_t i = 0; i < y.size(); ++i) {
        ASSERT_NEAR(y[i], yd[i], 1e-5 * absdot[i] + 1e-30) << i;
        err += (y[i] - yo[i]) * (y[i] - yo[i]);
        ref += yo[i] * yo[i];
      }
      EXPECT_LT(std::sqrt(err / ref), c.type == Bnb4Type::NF4 ? 0.13 : 0.2) << bnb4_type_name(c.type) << " " << n_tok;
    }
  }
}

TEST(Bnb4Kernels, BlocksStraddlingRows) {
  // n_in = 100: 64-blocks straddle rows; n = 5 * 100 = 500: a short last block.
  const int64_t n_out = 5, n_in = 100;
  const std::vector<float> W = gaussian(size_t(n_out * n_in), 51);
  const std::vector<float> X = gaussian(size_t(16 * n_in), 52);
  for (bool dq : {false, true}) {
    Bnb4Linear l = make(W, n_out, n_in, Bnb4Type::NF4, dq);
    const std::vector<float> Wd = dequant(l);
    for (size_t i = 0; i < W.size(); ++i) ASSERT_NEAR(Wd[i], W[i], 0.16 * 4.0) << i;
    std::vector<float> row(static_cast<size_t>(n_in));
    l.dequantize_rows(3, 1, row.data());
    EXPECT_EQ(0, std::memcmp(row.data(), Wd.data() + 3 * n_in, size_t(n_in) * 4));
    for (int n_tok : {1, 5, 16}) {
      std::vector<float> y(size_t(n_tok * n_out));
      l.matmul(X.data(), n_tok, y.data(), 2);
      std::vector<double> absdot;
      const std::vector<double> yd = matmul_ref(Wd, n_out, n_in, X, n_tok, &absdot);
      for (size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(y[i], yd[i], 1e-5 * absdot[i]) << i;
    }
    EXPECT_EQ(l.with_rows_permuted(std::vector<int64_t>{4, 3, 2, 1, 0}), nullptr);
  }
  // Odd element count: 3 x 5.
  const std::vector<float> w15 = gaussian(15, 53);
  Bnb4Linear o = make(w15, 3, 5, Bnb4Type::FP4, false);
  EXPECT_EQ(o.state().codes.size(), 8u);
  std::vector<float> y(3);
  o.matmul(w15.data(), 1, y.data(), 1);
  const std::vector<float> d = dequant(o);
  for (int r = 0; r < 3; ++r) {
    double s = 0.0;
    for (int i = 0; i < 5; ++i) s += double(d[size_t(r * 5 + i)]) * w15[size_t(i)];
    EXPECT_NEAR(y[size_t(r)], s, 1e-5);
  }
  EXPECT_THROW(o.dequantize_rows(2, 2, y.data()), Error);
}

TEST(Bnb4Kernels, SameBytesAtAnyThreadCount) {
  const int64_t n_out = 512, n_in = 2048;  // 1M weights: the parallel paths run
  const std::vector<float> W = gaussian(size_t(n_out * n_in), 61, 0.02);
  const std::vector<float> X = gaussian(size_t(16 * n_in), 62);
  for (bool dq : {false, true}) {
    Bnb4State s1 = quantize_bnb4("w", W.data(), n_out, n_in, Bnb4Type::NF4, 64, dq, 1);
    Bnb4State s2 = quantize_bnb4("w", W.data(), n_out, n_in, Bnb4Type::NF4, 64, dq, 2);
    EXPECT_EQ(s1.codes, s2.codes);
    EXPECT_EQ(s1.absmax, s2.absmax);
    EXPECT_EQ(s1.absmax_q, s2.absmax_q);
    Bnb4Linear l(std::move(s1));
    for (int n_tok : {1, 4, 16}) {
      std::vector<float> y1(size_t(n_tok * n_out)), y2(y1.size()), y3(y1.size());
      l.matmul(X.data(), n_tok, y1.data(), 1);
      l.matmul(X.data(), n_tok, y2.data(), 2);
      l.matmul(X.data(), n_tok, y3.data(), 3);
      EXPECT_EQ(0, std::memcmp(y1.data(), y2.data(), y1.size() * 4)) << n_tok;
      EXPECT_EQ(0, std::memcmp(y1.data(), y3.data(), y1.size() * 4)) << n_tok;
    }
  }
}

TEST(Bnb4Kernels, RowsPermuted) {
  const int64_t n_out = 6, n_in = 128;
  const std::vector<float> W = gaussian(size_t(n_out * n_in), 71);
  const std::vector<int64_t> perm = {2, 0, 5, 1, 4, 3};
  Bnb4Linear l = make(W, n_out, n_in, Bnb4Type::NF4, false);
  auto p = l.with_rows_permuted(perm);
  ASSERT_NE(p, nullptr);
  const std::vector<float> a = dequant(l), b = dequant(*p);
  for (int64_t r = 0; r < n_out; ++r)
    EXPECT_EQ(0, std::memcmp(b.data() + r * n_in, a.data() + perm[size_t(r)] * n_in, size_t(n_in) * 4)) << r;
  // Double quant with 2 blocks per row: 256-blocks of absmax codes straddle rows.
  EXPECT_EQ(make(W, n_out, n_in, Bnb4Type::NF4, true).with_rows_permuted(perm), nullptr);
  // A row of 256 blocks (n_in = 16384): the nested blocks follow the rows exactly.
  const std::vector<float> W2 = gaussian(size_t(3 * 16384), 72);
  Bnb4Linear l2 = make(W2, 3, 16384, Bnb4Type::FP4, true);
  const std::vector<int64_t> perm2 = {2, 0, 1};
  auto p2 = l2.with_rows_permuted(perm2);
  ASSERT_NE(p2, nullptr);
  const std::vector<float> a2 = dequant(l2), b2 = dequant(*p2);
  for (int64_t r = 0; r < 3; ++r)
    EXPECT_EQ(0, std::memcmp(b2.data() + r * 16384, a2.data() + perm2[size_t(r)] * 16384, 16384 * 4)) << r;
}

TEST(Bnb4Kernels, Names) {
  const std::vector<float> W = gaussian(64 * 64, 81);
  Bnb4Linear a = make(W, 64, 64, Bnb4Type::NF4, true), b = make(W, 64, 64, Bnb4Type::FP4, false);
  EXPECT_EQ(a.type_name(), "nf4-dq");
  EXPECT_EQ(b.type_name(), "fp4");
  EXPECT_EQ(a.describe(), "nf4, blocksize=64, double_quant=True");
  EXPECT_EQ(qlinear_repr(b, false), "QLinear(in_features=64, out_features=64, bias=False, fp4, blocksize=64, double_quant=False)");
}

// ---- Quantizer and the Hugging Face layout ---------------------------------------------------

struct Views {
  std::vector<TensorView> v;
  std::map<std::string, const TensorView*> parts;
  explicit Views(std::vector<HfModuleTensor>& ts) {
    v.reserve(ts.size());
    for (auto& t : ts) {
      TensorView tv;
      tv.name = t.suffix;
      tv.dtype = t.dtype;
      tv.shape = t.shape;
      tv.data = t.bytes.data();
      tv.nbytes = t.bytes.size();
      v.push_back(tv);
    }
    for (size_t i = 0; i < ts.size(); ++i) parts[ts[i].suffix] = &v[i];
  }
};

QuantConfig config(const std::string& method, bool dq) {
  QuantConfig c;
  c.method = method;
  c.bits = 4;
  c.group_size = 64;
  c.double_quant = dq;
  return c;
}

const HfModuleTensor* find(const std::vector<HfModuleTensor>& ts, const std::string& suffix) {
  for (const auto& t : ts)
    if (t.suffix == suffix) return &t;
  return nullptr;
}

TEST(Bnb4Hf, RoundTrip) {
  const int64_t n_out = 40, n_in = 96;
  const std::vector<float> W = gaussian(size_t(n_out * n_in), 91, 0.04);
  for (const char* method : {"nf4", "fp4"})
    for (bool dq : {false, true}) {
      auto q = std::string(method) == "nf4" ? make_nf4_quantizer() : make_fp4_quantizer();
      const QuantConfig cfg = config(method, dq);
      q->validate(cfg);
      auto l = q->quantize_linear("model.layers.0.self_attn.q_proj", W.data(), n_out, n_in, cfg, nullptr);
      std::vector<HfModuleTensor> ts = q->hf_module_tensors(*l, cfg);
      const std::string qs = std::string("weight.quant_state.bitsandbytes__") + method;
      std::vector<std::string> want = {"weight", "weight.absmax", "weight.quant_map"};
      if (dq) want.insert(want.end(), {"weight.nested_absmax", "weight.nested_quant_map"});
      want.push_back(qs);
      ASSERT_EQ(ts.size(), want.size());
      for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(ts[i].suffix, want[i]);
      const auto suffixes = q->hf_module_suffixes();
      for (const auto& t : ts) EXPECT_NE(std::find(suffixes.begin(), suffixes.end(), t.suffix), suffixes.end()) << t.suffix;
      EXPECT_EQ(q->hf_marker_suffixes().front(), qs);
      // Shapes and dtypes as transformers saves them.
      EXPECT_EQ(find(ts, "weight")->shape, (std::vector<int64_t>{n_out * n_in / 2, 1}));
      EXPECT_EQ(find(ts, "weight")->dtype, DType::U8);
      EXPECT_EQ(find(ts, "weight.absmax")->dtype, dq ? DType::U8 : DType::F32);
      EXPECT_EQ(find(ts, "weight.absmax")->shape, (std::vector<int64_t>{n_out * n_in / 64}));
      const HfModuleTensor* js = find(ts, qs);
      const std::string text(js->bytes.begin(), js->bytes.end());
      const std::string head = std::string(R"({"quant_type": ")") + method +
                               R"(", "blocksize": 64, "dtype": "float32", "shape": [40, 96])";
      EXPECT_EQ(text.substr(0, head.size()), head) << text;
      if (dq) {
        EXPECT_EQ(find(ts, "weight.nested_absmax")->shape, (std::vector<int64_t>{1}));
        EXPECT_NE(text.find(R"("nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": )"), std::string::npos)
            << text;
        const auto j = nlohmann::json::parse(text);
        EXPECT_EQ(float(j["nested_offset"].get<double>()), dynamic_cast<const Bnb4Linear&>(*l).state().offset);
      } else {
        EXPECT_EQ(text.back(), '}');
        EXPECT_EQ(text.find("nested"), std::string::npos);
      }
      Views views(ts);
      auto back = q->load_hf_module(cfg, views.parts, n_out, n_in, "model.safetensors: model.layers.0.self_attn.q_proj");
      ASSERT_NE(back, nullptr);
      EXPECT_EQ(back->type_name(), l->type_name());
      EXPECT_EQ(back->nbytes(), l->nbytes());
      const std::vector<float> a = dequant(*l), b = dequant(*back);
      EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * 4));
      // And the written tensors again, byte for byte.
      std::vector<HfModuleTensor> ts2 = q->hf_module_tensors(*back, cfg);
      ASSERT_EQ(ts2.size(), ts.size());
      for (size_t i = 0; i < ts.size(); ++i) EXPECT_EQ(ts2[i].bytes, ts[i].bytes) << ts[i].suffix;
    }
}

TEST(Bnb4Hf, ValidateAndWrongLayer) {
  auto q = make_nf4_quantizer();
  QuantConfig c = config("nf4", false);
  c.bits = 3;
  EXPECT_THROW(q->validate(c), Error);
  c = config("nf4", false);
  c.group_size = 96;
  EXPECT_THROW(q->validate(c), Error);
  c.group_size = 128;
  EXPECT_NO_THROW(q->validate(c));
  EXPECT_EQ(q->name(), "nf4");
  EXPECT_EQ(make_fp4_quantizer()->name(), "fp4");
  const std::vector<float> W = gaussian(64 * 64, 92);
  auto f = make_fp4_quantizer()->quantize_linear("w", W.data(), 64, 64, config("fp4", false), nullptr);
  EXPECT_THROW(q->hf_module_tensors(*f, config("nf4", false)), Error);
}

TEST(Bnb4Hf, CorruptInputsThrow) {
  constexpr int64_t n_out = 16, n_in = 128;
  const std::vector<float> W = gaussian(size_t(n_out * n_in), 93);
  auto q = make_nf4_quantizer();
  const std::string where = "model.safetensors: model.layers.0.mlp.up_proj";
  auto expect_error = [&](std::vector<HfModuleTensor> ts, const QuantConfig& cfg, const std::string& needle,
                          int64_t no = 16, int64_t ni = 128) {
    Views views(ts);
    try {
      q->load_hf_module(cfg, views.parts, no, ni, where);
      ADD_FAILURE() << "no error for: " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  for (bool dq : {false, true}) {
    const QuantConfig cfg = config("nf4", dq);
    auto l = q->quantize_linear("w", W.data(), n_out, n_in, cfg, nullptr);
    const std::vector<HfModuleTensor> good = q->hf_module_tensors(*l, cfg);
    const std::string qs = "weight.quant_state.bitsandbytes__nf4";
    auto edit = [&](const std::string& suffix, auto fn) {
      std::vector<HfModuleTensor> ts = good;
      for (auto& t : ts)
        if (t.suffix == suffix) fn(t);
      return ts;
    };
    auto json_edit = [&](auto fn) {
      return edit(qs, [&](HfModuleTensor& t) {
        nlohmann::ordered_json j = nlohmann::ordered_json::parse(std::string(t.bytes.begin(), t.bytes.end()));
        fn(j);
        const std::string s = j.dump();
        t.bytes.assign(s.begin(), s.end());
        t.shape = {int64_t(s.size())};
      });
    };
    // Wrong absmax length (one block short).
    expect_error(edit("weight.absmax", [](HfModuleTensor& t) {
                   t.shape[0] -= 1;
                   t.bytes.resize(t.bytes.size() - (t.dtype == DType::F32 ? 4 : 1));
                 }),
                 cfg, "weight.absmax");
    // Truncated codes: the shape claims more bytes than the view holds.
    expect_error(edit("weight", [](HfModuleTensor& t) { t.bytes.resize(t.bytes.size() / 2); }), cfg, "truncated");
    // Wrong dtype of the codes.
    expect_error(edit("weight", [](HfModuleTensor& t) { t.dtype = DType::I8; }), cfg, "weight");
    // Bad JSON.
    expect_error(edit(qs, [](HfModuleTensor& t) { t.bytes.resize(t.bytes.size() - 3); t.shape = {int64_t(t.bytes.size())}; }), cfg,
                 "not valid JSON");
    // quant_type inside the JSON does not match.
    expect_error(json_edit([](auto& j) { j["quant_type"] = "fp4"; }), cfg, "quant_type");
    // The shape recorded differs from the module's.
    expect_error(json_edit([](auto& j) { j["shape"] = {16, 256}; }), cfg, "shape");
    expect_error(json_edit([](auto& j) { j["blocksize"] = 48; }), cfg, "blocksize");
    expect_error(json_edit([](auto& j) { j["extra_key"] = 1; }), cfg, "extra_key");
    // Module shape disagreeing with the tensors.
    expect_error(good, cfg, "shape", n_out * 2, n_in);
    // A custom quant_map.
    expect_error(edit("weight.quant_map", [](HfModuleTensor& t) { const float v = 0.5f; std::memcpy(t.bytes.data(), &v, 4); }), cfg,
                 "quant_map");
    // Missing quant state; an fp4 checkpoint read as nf4.
    {
      std::vector<HfModuleTensor> ts = good;
      ts.pop_back();
      expect_error(ts, cfg, "missing tensor");
      HfModuleTensor t = good.back();
      t.suffix = "weight.quant_state.bitsandbytes__fp4";
      ts.push_back(t);
      expect_error(ts, cfg, "bnb_4bit_quant_type");
    }
    if (!dq) {
      expect_error(edit("weight.absmax", [](HfModuleTensor& t) { const float nan = NAN; std::memcpy(t.bytes.data() + 4, &nan, 4); }),
                   cfg, "absmax");
    } else {
      expect_error(json_edit([](auto& j) { j.erase("nested_offset"); }), cfg, "nested_offset");
      expect_error(edit("weight.nested_absmax", [](HfModuleTensor& t) { t.shape[0] = 0; t.bytes.clear(); }), cfg,
                   "nested_absmax");
      expect_error(edit("weight.nested_quant_map", [](HfModuleTensor& t) { const float big = 7.0f; std::memcpy(t.bytes.data(), &big, 4); }),
                   cfg, "nested_quant_map");
      // A double-quantized module whose absmax was stored as f32.
      expect_error(edit("weight.absmax", [](HfModuleTensor& t) { t.dtype = DType::F32; }), cfg, "weight.absmax");
    }
  }
  // A layer quantized by another method's config is a caller bug, still an Error.
  auto l = q->quantize_linear("w", W.data(), n_out, n_in, config("nf4", false), nullptr);
  auto ts = q->hf_module_tensors(*l, config("nf4", false));
  expect_error(ts, config("fp4", false), "fp4");
}

// ---- real weights ----------------------------------------------------------------------------

TEST(Bnb4Real, Stories260KBeatsInt4Rtn) {
  auto m = load_model(lowbit::test::shared("models/stories260K/stories260K-f32.gguf"));
  const TensorView& v = m->weight("blk.0.attn_q.weight");
  const int64_t n_out = v.shape.at(0), n_in = v.shape.at(1);
  std::vector<float> W(static_cast<size_t>(n_out * n_in));
  to_f32(v, 0, n_out * n_in, W.data());
  std::vector<float> r(W.size());  // int4 RTN, symmetric absmax per 64 (levels -7..7)
  for (size_t b = 0; b < W.size(); b += 64) {
    const size_t e = std::min(W.size(), b + 64);
    float a = 0.0f;
    for (size_t i = b; i < e; ++i) a = std::max(a, std::fabs(W[i]));
    const float d = a / 7.0f;
    for (size_t i = b; i < e; ++i) r[i] = d > 0.0f ? d * std::round(W[i] / d) : 0.0f;
  }
  const double base = rmse(r, W);
  for (bool dq : {false, true}) {
    Bnb4Linear l = make(W, n_out, n_in, Bnb4Type::NF4, dq);
    const double e = rmse(dequant(l), W);
    EXPECT_LT(e, base) << "dq=" << dq;
    RecordProperty(dq ? "nf4dq_rmse" : "nf4_rmse", std::to_string(e));
  }
  RecordProperty("int4_rtn_rmse", std::to_string(base));
}

}  // namespace
