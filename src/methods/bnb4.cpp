// bitsandbytes NF4 / FP4 (with double quantization): code tables, the
// quantizer, the Bnb4Linear runtime layer and its Hugging Face layout.
// See bnb4.h for the layout and the formulas.
#include "methods/bnb4.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "lowbit/error.h"
#include "model/matmul.h"

namespace lowbit {

// ---- code tables -----------------------------------------------------------

const char* bnb4_type_name(Bnb4Type t) { return t == Bnb4Type::NF4 ? "nf4" : "fp4"; }

const std::array<float, 16>& bnb4_code(Bnb4Type t) {
  // NF4: QLoRA section 3 "4-bit NormalFloat": quantiles of N(0, 1) with an exact
  // zero, normalised to [-1, 1] (bnb create_normal_map(offset=0.9677083)).
  static const std::array<float, 16> nf4 = {
      -1.0f,
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
      1.0f,
  };
  // FP4 (bnb get_4bit_type "fp4"): by bit pattern of the three low bits
  // 0b000 0, 0b001 0.0625, 0b010 8, 0b011 12, 0b100 4, 0b101 6, 0b110 2, 0b111 3,
  // bit 3 the sign, divided by the largest magnitude 12 in f32. bnb builds the
  // negative half from the Python int -0, so code 8 holds +0.
  static const std::array<float, 16> fp4 = [] {
    const float mag[8] = {0.0f, 0.0625f, 8.0f, 12.0f, 4.0f, 6.0f, 2.0f, 3.0f};
    std::array<float, 16> c{};
    for (int i = 0; i < 8; ++i) {
      c[size_t(i)] = mag[i] / 12.0f;
      c[size_t(i + 8)] = i == 0 ? 0.0f : -mag[i] / 12.0f;
    }
    return c;
  }();
  return t == Bnb4Type::NF4 ? nf4 : fp4;
}

namespace {

// torch.linspace(start, end, steps, dtype=float32) as torch's CPU kernel computes
// it with its AVX2 code path (RangeFactoriesKernel.cpp, checked bit for bit
// against torch 1.13 on an AVX2 machine): step in f32; value idx is
// start + step * idx (first half) or end - step * (steps - idx - 1) (second
// half), each one fused multiply-add as GCC contracts it. Whole pairs of 8-lane
// vectors take a base computed that way and add k * step (k = 0..7) rounded
// separately; the leftover tail is computed per element.
std::vector<float> linspace_f32(float start, float end, int steps) {
  std::vector<float> v(static_cast<size_t>(steps));
  const float step = (end - start) / float(steps - 1);
  const int halfway = steps / 2;
  auto at = [&](int idx) {
    return idx < halfway ? std::fma(step, float(idx), start) : std::fma(-step, float(steps - idx - 1), end);
  };
  constexpr int kLanes = 8;
  int i = 0;
  for (; i + 2 * kLanes <= steps; i += 2 * kLanes)
    for (int j = i; j < i + 2 * kLanes; j += kLanes) {
      const float base = at(j);
      for (int k = 0; k < kLanes; ++k) {
        volatile float inc = float(k) * step;  // rounded on its own, never fused with the add
        v[size_t(j + k)] = base + inc;
      }
    }
  for (; i < steps; ++i) v[size_t(i)] = at(i);
  return v;
}

}  // namespace

const std::array<float, 256>& bnb_dynamic_map() {
  // create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8)
  // (Dettmers 2015, "8-Bit Approximations for Parallelism in Deep Learning"):
  // for exponent i = 0..6, 2^i + 1 boundaries linspace(0.1, 1), the means of
  // neighbours scaled by 10^(i - 6), both signs; then 0 and 1.0; sorted.
  // Every step in f32 as torch computes it (the scale is rounded to f32 first,
  // as torch does with a Python float times a float32 tensor).
  static const std::array<float, 256> map = [] {
    std::vector<float> data;
    for (int i = 0; i < 7; ++i) {
      const std::vector<float> b = linspace_f32(0.1f, 1.0f, (1 << i) + 1);
      const float scale = float(std::pow(10.0, double(i - 6)));
      for (size_t k = 0; k + 1 < b.size(); ++k) data.push_back(scale * ((b[k] + b[k + 1]) / 2.0f));
      for (size_t k = 0; k + 1 < b.size(); ++k) data.push_back(-scale * ((b[k] + b[k + 1]) / 2.0f));
    }
    data.push_back(0.0f);
    data.push_back(1.0f);
    LOWBIT_ASSERT(data.size() == 256);
    std::sort(data.begin(), data.end());
    std::array<float, 256> a{};
    std::copy(data.begin(), data.end(), a.begin());
    return a;
  }();
  return map;
}

uint8_t bnb4_quantize_scaled(Bnb4Type t, float x) {
  // bnb's decision trees (csrc/kernels.cu dQuantizeNF4 / dQuantizeFP4): the
  // pivots are the midpoints between neighbouring codes as bnb types them; a
  // value equal to a pivot takes the lower code. Comparisons with NaN are false.
  if (t == Bnb4Type::NF4) {
    if (x > 0.03979014977812767f) {
      if (x > 0.3893125355243683f) {
        if (x > 0.6427869200706482f) return x > 0.8614784181118011f ? 0b1111 : 0b1110;
        return x > 0.5016634166240692f ? 0b1101 : 0b1100;
      }
      if (x > 0.2035212516784668f) return x > 0.2920137718319893f ? 0b1011 : 0b1010;
      return x > 0.1202552504837513f ? 0b1001 : 0b1000;
    }
    if (x > -0.33967943489551544f) {
      if (x > -0.13791173323988914f) return x > -0.045525018125772476f ? 0b0111 : 0b0110;
      return x > -0.23460740596055984f ? 0b0101 : 0b0100;
    }
    if (x > -0.6106329262256622f) return x > -0.4599952697753906f ? 0b0011 : 0b0010;
    return x > -0.8480964004993439f ? 0b0001 : 0b0000;
  }
  // FP4: sign bit, then a tree over |x| with bnb's pivots (note 0.583333, as bnb has it).
  const uint8_t sign = x < 0.0f ? 0b1000 : 0;
  const float a = std::fabs(x);
  uint8_t c;
  if (a > 0.29166667f) {
    if (a > 0.583333f)
      c = a > 0.8333333f ? 0b011 : 0b010;
    else
      c = a > 0.4166667f ? 0b101 : 0b100;
  } else if (a > 0.0859375f) {
    c = a > 0.20833333f ? 0b111 : 0b110;
  } else {
    c = a > 0.00260417f ? 0b001 : 0b000;
  }
  return uint8_t(c + sign);
}

uint8_t bnb_dynamic_quantize_scaled(const float* code, float x) {
  // bnb's dQuantize<0>: binary search from pivot 127 with steps 64..1, keeping
  // the last codes seen above and below x, then the nearer of pivot and that
  // neighbour by the f32 midpoint.
  int pivot = 127, upper_pivot = 255, lower_pivot = 0;
  float lower = -1.0f, upper = 1.0f;
  float val = code[pivot];
  for (int step = 64; step > 0; step >>= 1) {
    if (x > val) {
      lower_pivot = pivot;
      lower = val;
      pivot += step;
    } else {
      upper_pivot = pivot;
      upper = val;
      pivot -= step;
    }
    val = code[pivot];
  }
  if (upper_pivot == 255) upper = code[upper_pivot];
  if (lower_pivot == 0) lower = code[lower_pivot];
  if (x > val) return uint8_t(x > (upper + val) * 0.5f ? upper_pivot : pivot);
  return uint8_t(x < (lower + val) * 0.5f ? lower_pivot : pivot);
}

// ---- quantization ------------------------------------------------------------

namespace {

bool valid_blocksize(int64_t b) { return b >= 32 && b <= 4096 && (b & (b - 1)) == 0; }

int resolve_threads(int n) { return n > 0 ? n : omp_get_max_threads(); }

}  // namespace

size_t bnb4_state_bytes(int64_t n_out, int64_t n_in, int blocksize, bool double_quant, int nested_blocksize) {
  const int64_t n = n_out * n_in;
  const int64_t blocks = (n + blocksize - 1) / blocksize;
  size_t bytes = size_t((n + 1) / 2);
  if (!double_quant) return bytes + size_t(blocks) * 4;
  const int64_t nested = (blocks + nested_blocksize - 1) / nested_blocksize;
  return bytes + size_t(blocks) + size_t(nested) * 4 + 4;  // + the f32 offset
}

Bnb4State quantize_bnb4(const std::string& name, const float* W, int64_t n_out, int64_t n_in, Bnb4Type type,
                        int blocksize, bool double_quant, int n_threads) {
  if (n_out <= 0 || n_in <= 0)
    fail(name, fmt::format("cannot quantize an empty weight [{}, {}]", n_out, n_in), "a linear needs n_out, n_in >= 1");
  if (!valid_blocksize(blocksize))
    fail(name, fmt::format("group_size {} is not a bitsandbytes 4-bit blocksize", blocksize),
         "use a power of two from 32 to 4096 (bitsandbytes' default is 64)");
  Bnb4State s;
  s.type = type;
  s.n_out = n_out;
  s.n_in = n_in;
  s.blocksize = blocksize;
  s.double_quant = double_quant;
  const int64_t n = s.numel(), nb = s.n_blocks();
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(W[i]))
      fail(name, fmt::format("weight [{}, {}] is {}", i / n_in, i % n_in, W[i]),
           "the source tensor holds NaN or Inf; fix the checkpoint before quantizing");

  s.codes.assign(size_t((n + 1) / 2), 0);
  std::vector<float> absmax(static_cast<size_t>(nb));
  const int nt = resolve_threads(n_threads);
  // Blocks are even-sized, so each block owns its bytes: any split is race-free and
  // gives the same bytes.
#pragma omp parallel for num_threads(nt) schedule(static) if (nb > 256 && nt > 1)
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t e0 = b * blocksize, len = std::min<int64_t>(blocksize, n - e0);
    float amax = -FLT_MAX;
    for (int64_t i = 0; i < len; ++i) amax = std::fmax(amax, std::fabs(W[e0 + i]));
    absmax[size_t(b)] = amax;
    // bnb multiplies by the reciprocal (kQuantizeBlockwise: 1.0f / local_abs_max);
    // an all-zero block gives 0 * inf = NaN -> code 0, and decodes to 0 * code = 0.
    const float inv = 1.0f / amax;
    for (int64_t i = 0; i < len; i += 2) {
      const uint8_t hi = bnb4_quantize_scaled(type, W[e0 + i] * inv);
      // An odd tail is padded with a zero value, as bnb's block load does.
      const float second = i + 1 < len ? W[e0 + i + 1] : 0.0f;
      const uint8_t lo = bnb4_quantize_scaled(type, second * inv);
      s.codes[size_t((e0 + i) / 2)] = uint8_t(hi << 4 | lo);
    }
  }
  if (!double_quant) {
    s.absmax = std::move(absmax);
    return s;
  }
  // Double quantization (QLoRA section 3): subtract the mean (the absmax are all
  // positive, centring uses the signed map's both halves), then 8-bit blockwise
  // dynamic quantization in blocks of 256 (bnb quantize_blockwise(blocksize=256)).
  // The mean is summed in double in index order; torch's f32 reduction may differ in the last bit.
  double sum = 0.0;
  for (float a : absmax) sum += a;
  s.offset = float(sum / double(nb));
  s.nested_blocksize = 256;
  s.nested_code = bnb_dynamic_map();
  const int64_t nn = (nb + s.nested_blocksize - 1) / s.nested_blocksize;
  s.absmax_q.assign(size_t(nb), 0);
  s.nested_absmax.assign(size_t(nn), 0.0f);
  std::vector<float> centred(static_cast<size_t>(nb));
  for (int64_t b = 0; b < nb; ++b) centred[size_t(b)] = absmax[size_t(b)] - s.offset;
  for (int64_t g = 0; g < nn; ++g) {
    const int64_t b0 = g * s.nested_blocksize, len = std::min<int64_t>(s.nested_blocksize, nb - b0);
    float amax = -FLT_MAX;
    for (int64_t i = 0; i < len; ++i) amax = std::fmax(amax, std::fabs(centred[size_t(b0 + i)]));
    s.nested_absmax[size_t(g)] = amax;
    const float inv = 1.0f / amax;
    for (int64_t i = 0; i < len; ++i)
      s.absmax_q[size_t(b0 + i)] = bnb_dynamic_quantize_scaled(s.nested_code.data(), centred[size_t(b0 + i)] * inv);
  }
  return s;
}

// ---- kernels (reference) ---------------------------------------------------------

float bnb4_dot_row_ref(const uint8_t* codes, const float* absmax, int64_t n_in, int blocksize, const float* code16,
                       const float* x) {
  float s = 0.0f;
  for (int64_t i = 0; i < n_in; i += 2) {
    const float a = absmax[i / blocksize];
    const uint8_t byte = codes[i / 2];
    s += (code16[byte >> 4] * a) * x[i];
    s += (code16[byte & 15] * a) * x[i + 1];
  }
  return s;
}

void bnb4_dequant_row_ref(const uint8_t* codes, const float* absmax, int64_t n_in, int blocksize, const float* code16,
                          float* w) {
  for (int64_t i = 0; i < n_in; i += 2) {
    const float a = absmax[i / blocksize];
    const uint8_t byte = codes[i / 2];
    w[i] = code16[byte >> 4] * a;
    w[i + 1] = code16[byte & 15] * a;
  }
}

// ---- Bnb4Linear --------------------------------------------------------------------

Bnb4Linear::Bnb4Linear(Bnb4State s) : s_(std::move(s)) {
  const int64_t nb = s_.n_blocks();
  LOWBIT_ASSERT(int64_t(s_.codes.size()) == (s_.numel() + 1) / 2);
  if (s_.double_quant) {
    LOWBIT_ASSERT(int64_t(s_.absmax_q.size()) == nb);
    LOWBIT_ASSERT(int64_t(s_.nested_absmax.size()) == (nb + s_.nested_blocksize - 1) / s_.nested_blocksize);
  } else {
    LOWBIT_ASSERT(int64_t(s_.absmax.size()) == nb);
  }
}

size_t Bnb4Linear::nbytes() const {
  return bnb4_state_bytes(s_.n_out, s_.n_in, s_.blocksize, s_.double_quant, s_.nested_blocksize);
}

std::string Bnb4Linear::type_name() const {
  return std::string(bnb4_type_name(s_.type)) + (s_.double_quant ? "-dq" : "");
}

std::string Bnb4Linear::describe() const {
  return fmt::format("{}, blocksize={}, double_quant={}", bnb4_type_name(s_.type), s_.blocksize,
                     s_.double_quant ? "True" : "False");
}

void Bnb4Linear::dequantize_rows(int64_t row0, int64_t n_rows, float* W) const {
  if (row0 < 0 || n_rows < 0 || row0 + n_rows > s_.n_out)
    fail(type_name(), fmt::format("rows [{}, {}) outside the weight's {} rows", row0, row0 + n_rows, s_.n_out),
         "this is a bug in the caller");
  const float* code16 = bnb4_code(s_.type).data();
  const int64_t e0 = row0 * s_.n_in, e1 = (row0 + n_rows) * s_.n_in;
  int64_t cur_block = -1;
  float a = 0.0f;
  for (int64_t e = e0; e < e1; ++e) {
    const int64_t b = e / s_.blocksize;
    if (b != cur_block) {
      cur_block = b;
      a = s_.block_absmax(b);
    }
    const uint8_t byte = s_.codes[size_t(e / 2)];
    W[e - e0] = code16[(e & 1) ? (byte & 15) : (byte >> 4)] * a;
  }
}

namespace {

constexpr int64_t kRowTile = 64;               // output rows per OpenMP task (fixed: any thread count, same result)
constexpr int kRowDotMinTokens = 4;            // from here on: dequantize a row once, then f32 dots
constexpr int kSgemmMinTokens = 16;            // from here on: dequantize a tile, then sgemm
constexpr int64_t kParallelMinMacs = 1 << 20;  // smaller products stay on the calling thread

float* thread_floats(size_t n, int which) {
  thread_local std::vector<float> buf[2];
  if (buf[which].size() < n) buf[which].resize(n);
  return buf[which].data();
}

}  // namespace

float f32_dot_ref(const float* a, const float* b, int64_t n) {
  float s = 0.0f;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

void Bnb4Linear::matmul(const float* X, int n_tok, float* Y, int n_threads) const {
  matmul_isa(X, n_tok, Y, n_threads, active_isa());
}

void Bnb4Linear::matmul_isa(const float* X, int n_tok, float* Y, int n_threads, IsaLevel isa) const {
  const int64_t n_out = s_.n_out, n_in = s_.n_in;
  if (n_tok <= 0 || n_out == 0) return;
  const int nt = std::max(1, n_threads);
  const bool fast = isa >= IsaLevel::Avx2 && best_isa_supported() >= IsaLevel::Avx2;
  const Bnb4DotRowFn dot_row = fast ? bnb4_dot_row_avx2 : bnb4_dot_row_ref;
  const Bnb4DequantRowFn dequant_row = fast ? bnb4_dequant_row_avx2 : bnb4_dequant_row_ref;
  float (*const dot_f32)(const float*, const float*, int64_t) = fast ? f32_dot_avx2 : f32_dot_ref;
  // Rows start on a block (and byte) boundary: the fused kernels apply.
  const bool aligned = n_in % s_.blocksize == 0;
  const int64_t bpr = aligned ? n_in / s_.blocksize : 0;  // blocks per row
  const float* code16 = bnb4_code(s_.type).data();
  const int64_t n_tiles = (n_out + kRowTile - 1) / kRowTile;
  const int64_t macs = n_out * n_in * n_tok;
  const bool gemm = n_tok >= kSgemmMinTokens;
  ScopedBlasThreads single(1);  // BLAS runs inside the OpenMP loop
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1) if (n_tiles > 1 && nt > 1 && macs >= kParallelMinMacs)
  for (int64_t tile = 0; tile < n_tiles; ++tile) {
    const int64_t r0 = tile * kRowTile, rows = std::min(kRowTile, n_out - r0);
    float* am = thread_floats(size_t(std::max<int64_t>(bpr, 1)), 0);
    auto row_absmax = [&](int64_t r) {  // am [bpr]: the row's decoded block scales
      for (int64_t j = 0; j < bpr; ++j) am[j] = s_.block_absmax(r * bpr + j);
    };
    if (!gemm) {
      // Fewer than 4 tokens: one fused dequant-dot per output element. Otherwise
      // the row is dequantized once (buffer [n_in]) and dotted with each token.
      const bool fused = aligned && n_tok < kRowDotMinTokens;
      float* row = fused ? nullptr : thread_floats(size_t(n_in), 1);
      for (int64_t r = r0; r < r0 + rows; ++r) {
        if (fused) {
          row_absmax(r);
          const uint8_t* c = s_.codes.data() + r * n_in / 2;
          for (int t = 0; t < n_tok; ++t) Y[int64_t(t) * n_out + r] = dot_row(c, am, n_in, s_.blocksize, code16, X + int64_t(t) * n_in);
        } else {
          if (aligned) {
            row_absmax(r);
            dequant_row(s_.codes.data() + r * n_in / 2, am, n_in, s_.blocksize, code16, row);
          } else {
            dequantize_rows(r, 1, row);
          }
          for (int t = 0; t < n_tok; ++t) Y[int64_t(t) * n_out + r] = dot_f32(row, X + int64_t(t) * n_in, n_in);
        }
      }
    } else {
      // Dequantize the tile (panel [rows, n_in]), then one single-threaded sgemm:
      // Y[:, r0:r0+rows] = X · panel^T.
      float* panel = thread_floats(size_t(kRowTile * n_in), 1);
      if (aligned) {
        for (int64_t r = 0; r < rows; ++r) {
          row_absmax(r0 + r);
          dequant_row(s_.codes.data() + (r0 + r) * n_in / 2, am, n_in, s_.blocksize, code16, panel + r * n_in);
        }
      } else {
        dequantize_rows(r0, rows, panel);
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n_tok, int(rows), int(n_in), 1.0f, X, int(n_in), panel,
                  int(n_in), 0.0f, Y + r0, int(n_out));
    }
  }
}

std::shared_ptr<QLinear> Bnb4Linear::with_rows_permuted(std::span<const int64_t> perm) const {
  if (int64_t(perm.size()) != s_.n_out)
    fail(type_name(), fmt::format("row permutation has {} entries for {} rows", perm.size(), s_.n_out),
         "this is a bug in the caller");
  for (int64_t p : perm)
    if (p < 0 || p >= s_.n_out) fail(type_name(), fmt::format("row permutation entry {} out of range", p), "this is a bug in the caller");
  // Exact only when no 64-block straddles rows, and with double quantization
  // when no 256-block of absmax codes straddles rows either (their nested
  // scale and the offset would otherwise have to be re-derived).
  if (s_.n_in % s_.blocksize != 0) return nullptr;
  const int64_t bpr = s_.n_in / s_.blocksize;
  if (s_.double_quant && bpr % s_.nested_blocksize != 0) return nullptr;
  Bnb4State t = s_;
  const int64_t row_bytes = s_.n_in / 2;
  for (int64_t r = 0; r < s_.n_out; ++r) {
    const int64_t src = perm[size_t(r)];
    std::memcpy(t.codes.data() + r * row_bytes, s_.codes.data() + src * row_bytes, size_t(row_bytes));
    if (!s_.double_quant) {
      std::memcpy(t.absmax.data() + r * bpr, s_.absmax.data() + src * bpr, size_t(bpr) * 4);
    } else {
      std::memcpy(t.absmax_q.data() + r * bpr, s_.absmax_q.data() + src * bpr, size_t(bpr));
      const int64_t npr = bpr / s_.nested_blocksize;
      std::memcpy(t.nested_absmax.data() + r * npr, s_.nested_absmax.data() + src * npr, size_t(npr) * 4);
    }
  }
  return std::make_shared<Bnb4Linear>(std::move(t));
}

// ---- Quantizer + Hugging Face layout ----------------------------------------------

namespace {

// Python's json.dumps spelling of a float (shortest round trip).
std::string py_float(double v) {
  std::string s = nlohmann::json(v).dump();
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";  // 0 -> 0.0, as Python writes floats
  return s;
}

template <class T>
HfModuleTensor make_tensor(const std::string& suffix, DType dt, std::vector<int64_t> shape, const T* data, size_t n) {
  HfModuleTensor t;
  t.suffix = suffix;
  t.dtype = dt;
  t.shape = std::move(shape);
  t.bytes.resize(n * sizeof(T));
  if (n) std::memcpy(t.bytes.data(), data, n * sizeof(T));
  return t;
}

class Bnb4Quantizer final : public Quantizer {
 public:
  explicit Bnb4Quantizer(Bnb4Type t) : type_(t) {}

  std::string name() const override { return bnb4_type_name(type_); }
  std::string summary() const override {
    return type_ == Bnb4Type::NF4
               ? "bitsandbytes NF4 (QLoRA NormalFloat4), blocks of 64 absmax, optional double quant; HF bitsandbytes layout"
               : "bitsandbytes FP4 (e2m1), blocks of 64 absmax, optional double quant; HF bitsandbytes layout";
  }
  std::vector<int> supported_bits() const override { return {4}; }

  void validate(const QuantConfig& cfg) const override {
    if (cfg.bits != 4)
      fail("cfg.bits", fmt::format("{} stores 4-bit codes, not {}-bit", name(), cfg.bits), "use bits 4");
    if (!valid_blocksize(cfg.group_size))
      fail("cfg.group_size", fmt::format("{} blocks must be a power of two from 32 to 4096, got {}", name(), cfg.group_size),
           "bitsandbytes uses 64 for 4-bit weights");
  }

  double bits_per_weight(const QuantConfig& cfg, int64_t n_out, int64_t n_in) const override {
    return 8.0 * double(bnb4_state_bytes(n_out, n_in, cfg.group_size, cfg.double_quant)) / double(n_out * n_in);
  }

  std::shared_ptr<QLinear> quantize_linear(const std::string& name, const float* W, int64_t n_out, int64_t n_in,
                                           const QuantConfig& cfg, const float* /*importance*/) const override {
    validate(cfg);
    return std::make_shared<Bnb4Linear>(quantize_bnb4(name, W, n_out, n_in, type_, cfg.group_size, cfg.double_quant));
  }

  std::string state_key() const { return std::string("weight.quant_state.bitsandbytes__") + bnb4_type_name(type_); }

  std::vector<HfModuleTensor> hf_module_tensors(const QLinear& q, const QuantConfig& /*cfg*/) const override {
    const auto* l = dynamic_cast<const Bnb4Linear*>(&q);
    if (!l || l->state().type != type_)
      fail(q.type_name(), fmt::format("layer is not a {} layer", name()), "write it with the method that made it");
    const Bnb4State& s = l->state();
    const int64_t nb = s.n_blocks();
    std::vector<HfModuleTensor> out;
    // Params4bit: the packed codes as a [ceil(n/2), 1] uint8 column.
    out.push_back(make_tensor("weight", DType::U8, {int64_t(s.codes.size()), 1}, s.codes.data(), s.codes.size()));
    // QuantState.as_dict(packed=True), in its key order.
    if (s.double_quant)
      out.push_back(make_tensor("weight.absmax", DType::U8, {nb}, s.absmax_q.data(), s.absmax_q.size()));
    else
      out.push_back(make_tensor("weight.absmax", DType::F32, {nb}, s.absmax.data(), s.absmax.size()));
    const auto& code = bnb4_code(type_);
    out.push_back(make_tensor("weight.quant_map", DType::F32, {16}, code.data(), 16));
    if (s.double_quant) {
      out.push_back(make_tensor("weight.nested_absmax", DType::F32, {int64_t(s.nested_absmax.size())},
                                s.nested_absmax.data(), s.nested_absmax.size()));
      out.push_back(make_tensor("weight.nested_quant_map", DType::F32, {256}, s.nested_code.data(), 256));
    }
    // The non-tensor items as UTF-8 JSON, spelled as Python's json.dumps writes them.
    std::string js = fmt::format(R"({{"quant_type": "{}", "blocksize": {}, "dtype": "{}", "shape": [{}, {}])",
                                 bnb4_type_name(type_), s.blocksize, s.dtype, s.n_out, s.n_in);
    if (s.double_quant)
      js += fmt::format(R"(, "nested_blocksize": {}, "nested_dtype": "float32", "nested_offset": {})", s.nested_blocksize,
                        py_float(double(s.offset)));
    js += "}";
    out.push_back(make_tensor(state_key(), DType::U8, {int64_t(js.size())}, reinterpret_cast<const uint8_t*>(js.data()),
                              js.size()));
    return out;
  }

  std::vector<std::string> hf_marker_suffixes() const override { return {state_key(), "weight.absmax"}; }
  std::vector<std::string> hf_module_suffixes() const override {
    return {"weight", "weight.absmax", "weight.quant_map", "weight.nested_absmax", "weight.nested_quant_map", state_key()};
  }

  std::shared_ptr<QLinear> load_hf_module(const QuantConfig& cfg, const std::map<std::string, const TensorView*>& parts,
                                          int64_t n_out, int64_t n_in, const std::string& where) const override;

 private:
  Bnb4Type type_;
};

// The part `suffix`, checked for dtype and element count (and, when `shape` is
// non-empty, that shape); nullptr when absent and optional.
const TensorView* part(const std::map<std::string, const TensorView*>& parts, const std::string& suffix, DType dt,
                       int64_t numel, const std::string& where, bool required = true) {
  const std::string w = where + "." + suffix;
  auto it = parts.find(suffix);
  if (it == parts.end() || !it->second) {
    if (!required) return nullptr;
    fail(w, "missing tensor", "a bitsandbytes 4-bit module stores weight, weight.absmax, weight.quant_map and weight.quant_state.*");
  }
  const TensorView& v = *it->second;
  if (v.dtype != dt)
    fail(w, fmt::format("dtype {} where bitsandbytes stores {}", dtype_name(v.dtype), dtype_name(dt)),
         dt == DType::U8 && suffix == "weight" ? "only quant_storage=uint8 checkpoints are supported" : "re-save the checkpoint with bitsandbytes");
  if (v.numel() != numel)
    fail(w, fmt::format("has {} elements (shape {}), expected {}", v.numel(), v.shape_str(), numel),
         "the tensor does not match the module's shape and blocksize");
  if (v.nbytes < size_t(numel) * dtype_size(dt) || (numel > 0 && !v.data))
    fail(w, fmt::format("holds {} bytes, expected {}", v.nbytes, size_t(numel) * dtype_size(dt)), "the file is truncated");
  return &v;
}

std::vector<float> read_f32(const TensorView& v) {
  std::vector<float> out(static_cast<size_t>(v.numel()));
  if (!out.empty()) std::memcpy(out.data(), v.data, out.size() * 4);
  return out;
}

std::shared_ptr<QLinear> Bnb4Quantizer::load_hf_module(const QuantConfig& cfg,
                                                       const std::map<std::string, const TensorView*>& parts,
                                                       int64_t n_out, int64_t n_in, const std::string& where) const {
  if (cfg.method != name())
    fail(where, fmt::format("config method '{}' loaded with the {} layout", cfg.method, name()), "this is a bug in the caller");
  if (n_out <= 0 || n_in <= 0) fail(where, fmt::format("module shape [{}, {}]", n_out, n_in), "a linear needs n_out, n_in >= 1");
  // The packed quant_state: its key names the quant type.
  const std::string qs_key = state_key();
  const std::string other = std::string("weight.quant_state.bitsandbytes__") + (type_ == Bnb4Type::NF4 ? "fp4" : "nf4");
  if (!parts.count(qs_key) && parts.count(other))
    fail(where + "." + other, fmt::format("module is {} but the config says {}", other.substr(other.size() - 3), name()),
         "bnb_4bit_quant_type in config.json must match the checkpoint");
  auto it = parts.find(qs_key);
  if (it == parts.end() || !it->second)
    fail(where + "." + qs_key, "missing tensor", "bitsandbytes >= 0.41.3 saves the quant state packed as this uint8 tensor");
  const TensorView& qsv = *it->second;
  const std::string qs_where = where + "." + qs_key;
  if (qsv.dtype != DType::U8 || qsv.shape.size() != 1 || !qsv.data || qsv.nbytes < size_t(qsv.numel()))
    fail(qs_where, fmt::format("expected a 1-D uint8 tensor of JSON bytes, got {} {}", qsv.type_name(), qsv.shape_str()),
         "the file is damaged");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(std::string(static_cast<const char*>(qsv.data), size_t(qsv.numel())));
  } catch (const nlohmann::json::exception& e) {
    fail(qs_where, std::string("quant_state is not valid JSON: ") + e.what(), "the file is damaged");
  }
  if (!j.is_object()) fail(qs_where, "quant_state JSON is not an object", "the file is damaged");
  static const char* known[] = {"quant_type", "blocksize", "dtype", "shape", "nested_blocksize", "nested_dtype", "nested_offset"};
  for (const auto& [k, v] : j.items())
    if (std::find(std::begin(known), std::end(known), k) == std::end(known))
      fail(qs_where, fmt::format("unknown quant_state key '{}'", k), "expected quant_type, blocksize, dtype, shape and nested_*");
  auto get = [&](const char* key) -> const nlohmann::json& {
    auto f = j.find(key);
    if (f == j.end()) fail(qs_where, fmt::format("quant_state has no '{}'", key), "the file is damaged");
    return *f;
  };
  Bnb4State s;
  s.type = type_;
  s.n_out = n_out;
  s.n_in = n_in;
  const auto& qt = get("quant_type");
  if (!qt.is_string() || qt.get<std::string>() != name())
    fail(qs_where, fmt::format("quant_type {} under a {} key", qt.dump(), name()), "the file is damaged");
  const auto& bs = get("blocksize");
  if (!bs.is_number_integer() || !valid_blocksize(bs.get<int64_t>()))
    fail(qs_where, fmt::format("blocksize {} is not a bitsandbytes 4-bit blocksize", bs.dump()), "32..4096, a power of two");
  s.blocksize = bs.get<int>();
  const auto& dt = get("dtype");
  if (!dt.is_string() || (dt != "float32" && dt != "float16" && dt != "bfloat16"))
    fail(qs_where, fmt::format("dtype {} is not float32, float16 or bfloat16", dt.dump()), "the file is damaged");
  s.dtype = dt.get<std::string>();
  const auto& sh = get("shape");
  if (!sh.is_array() || sh.size() != 2 || !sh[0].is_number_integer() || !sh[1].is_number_integer() ||
      sh[0].get<int64_t>() != n_out || sh[1].get<int64_t>() != n_in)
    fail(qs_where, fmt::format("shape {} but the module is [{}, {}]", sh.dump(), n_out, n_in),
         "config.json and the checkpoint disagree on this layer's size");
  const int64_t n = s.numel(), nb = s.n_blocks();
  // Double quantization as the tensors say (bitsandbytes reads it from the state
  // dict, not from config.json's bnb_4bit_use_double_quant).
  s.double_quant = j.contains("nested_offset") || parts.count("weight.nested_absmax");

  const TensorView* w = part(parts, "weight", DType::U8, (n + 1) / 2, where);
  s.codes.resize(size_t((n + 1) / 2));
  std::memcpy(s.codes.data(), w->data, s.codes.size());

  const TensorView* qm = part(parts, "weight.quant_map", DType::F32, 16, where);
  const std::vector<float> qmap = read_f32(*qm);
  const auto& code = bnb4_code(type_);
  for (int i = 0; i < 16; ++i)
    if (!(std::fabs(qmap[size_t(i)] - code[size_t(i)]) <= 1e-6f))  // QuantState.__eq__'s tolerance
      fail(where + ".weight.quant_map", fmt::format("entry {} is {} where bitsandbytes' {} map has {}", i, qmap[size_t(i)], name(), code[size_t(i)]),
           "custom 4-bit code tables are not supported");

  if (!s.double_quant) {
    s.absmax = read_f32(*part(parts, "weight.absmax", DType::F32, nb, where));
    for (int64_t b = 0; b < nb; ++b)
      if (!std::isfinite(s.absmax[size_t(b)]) || s.absmax[size_t(b)] < 0.0f)
        fail(where + ".weight.absmax", fmt::format("block {} has absmax {}", b, s.absmax[size_t(b)]), "the file is damaged");
    return std::make_shared<Bnb4Linear>(std::move(s));
  }

  const std::string nbs_where = qs_where;
  const auto& nbs = get("nested_blocksize");
  if (!nbs.is_number_integer() || nbs.get<int64_t>() < 1 || nbs.get<int64_t>() > 4096)
    fail(nbs_where, fmt::format("nested_blocksize {} is not a blocksize", nbs.dump()), "bitsandbytes uses 256");
  s.nested_blocksize = nbs.get<int>();
  const auto& ndt = get("nested_dtype");
  if (ndt != "float32") fail(qs_where, fmt::format("nested_dtype {} is not float32", ndt.dump()), "the file is damaged");
  const auto& off = get("nested_offset");
  if (!off.is_number() || !std::isfinite(off.get<double>()))
    fail(qs_where, fmt::format("nested_offset {} is not a finite number", off.dump()), "the file is damaged");
  s.offset = float(off.get<double>());
  const TensorView* aq = part(parts, "weight.absmax", DType::U8, nb, where);
  s.absmax_q.resize(size_t(nb));
  std::memcpy(s.absmax_q.data(), aq->data, size_t(nb));
  const int64_t nn = (nb + s.nested_blocksize - 1) / s.nested_blocksize;
  s.nested_absmax = read_f32(*part(parts, "weight.nested_absmax", DType::F32, nn, where));
  for (int64_t g = 0; g < nn; ++g)
    if (!std::isfinite(s.nested_absmax[size_t(g)]))
      fail(where + ".weight.nested_absmax", fmt::format("entry {} is {}", g, s.nested_absmax[size_t(g)]), "the file is damaged");
  const std::vector<float> nmap = read_f32(*part(parts, "weight.nested_quant_map", DType::F32, 256, where));
  for (int i = 0; i < 256; ++i) {
    if (!std::isfinite(nmap[size_t(i)]) || std::fabs(nmap[size_t(i)]) > 1.0f)
      fail(where + ".weight.nested_quant_map", fmt::format("entry {} is {}", i, nmap[size_t(i)]), "the 8-bit map lies in [-1, 1]");
    s.nested_code[size_t(i)] = nmap[size_t(i)];  // used as stored, as bnb's dequantize_blockwise does
  }
  return std::make_shared<Bnb4Linear>(std::move(s));
}

}  // namespace

std::unique_ptr<Quantizer> make_nf4_quantizer() { return std::make_unique<Bnb4Quantizer>(Bnb4Type::NF4); }
std::unique_ptr<Quantizer> make_fp4_quantizer() { return std::make_unique<Bnb4Quantizer>(Bnb4Type::FP4); }

}  // namespace lowbit
