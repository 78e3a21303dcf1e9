// Int8Linear (w8a8 / w4a8 / llm.int8 runtime layer) and the w8a8 / w4a8
// quantizers with their lowbit layout (see w8a8.h). The LLM.int8() product
// and quantizer are in llm_int8.cpp.
#include "methods/w8a8.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "kernels/int8_gemm.h"
#include "lowbit/error.h"

namespace lowbit {

// ---------------------------------------------------------------- weight quantization
namespace {

void check_finite_row(const std::string& name, const float* w, int64_t n, int64_t row) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(w[i]))
      fail(name, fmt::format("weight [{}, {}] is {}", row, i, w[i]), "the source weights hold NaN / Inf; requantize from a clean checkpoint");
}

}  // namespace

void quantize_rows_int8(const std::string& name, const float* W, int64_t n_out, int64_t n_in, std::vector<int8_t>& codes,
                        std::vector<float>& absmax) {
  codes.assign(size_t(n_out * n_in), 0);
  absmax.assign(size_t(n_out), 0.0f);
  for (int64_t o = 0; o < n_out; ++o) {
    const float* w = W + o * n_in;
    check_finite_row(name, w, n_in, o);
    float a = 0.0f;
    for (int64_t i = 0; i < n_in; ++i) a = std::max(a, std::fabs(w[i]));
    absmax[size_t(o)] = a;
    if (a == 0.0f) continue;
    const double inv = 127.0 / double(a);  // double: 127 / a overflows float for denormal a
    for (int64_t i = 0; i < n_in; ++i)
      codes[size_t(o * n_in + i)] = int8_t(std::clamp(std::nearbyint(double(w[i]) * inv), -127.0, 127.0));
  }
}

void quantize_groups_int4(const std::string& name, const float* W, int64_t n_out, int64_t n_in, int64_t gs,
                          std::vector<uint8_t>& packed, std::vector<float>& scales) {
  const int64_t ng = n_in / gs;
  packed.assign(size_t(n_out * n_in / 2), 0);
  scales.assign(size_t(n_out * ng), 0.0f);
  for (int64_t o = 0; o < n_out; ++o) {
    const float* w = W + o * n_in;
    check_finite_row(name, w, n_in, o);
    for (int64_t g = 0; g < ng; ++g) {
      float a = 0.0f;
      for (int64_t i = g * gs; i < (g + 1) * gs; ++i) a = std::max(a, std::fabs(w[i]));
      scales[size_t(o * ng + g)] = a / 7.0f;
      const double inv = a > 0.0f ? 7.0 / double(a) : 0.0;
      for (int64_t i = g * gs; i < (g + 1) * gs; ++i) {
        const int code = int(std::clamp(std::nearbyint(double(w[i]) * inv), -7.0, 7.0));
        const uint8_t nib = uint8_t(code + 8);
        uint8_t& byte = packed[size_t(o * (n_in / 2) + i / 2)];
        byte = uint8_t(i % 2 == 0 ? (byte & 0xF0) | nib : (byte & 0x0F) | (nib << 4));
      }
    }
  }
}

// ---------------------------------------------------------------- Int8Linear
Int8Linear::Int8Linear(Int8Mode mode, int64_t n_out, int64_t n_in, std::vector<int8_t> codes, std::vector<float> row_values,
                       float threshold)
    : mode_(mode), n_out_(n_out), n_in_(n_in), gs_(n_in), threshold_(threshold), q8_(std::move(codes)) {
  LOWBIT_ASSERT(mode != Int8Mode::W4A8);
  LOWBIT_ASSERT(int64_t(q8_.size()) == n_out * n_in && int64_t(row_values.size()) == n_out);
  if (mode == Int8Mode::LlmInt8) {
    scb_ = std::move(row_values);
    scale_.resize(size_t(n_out));
    for (int64_t o = 0; o < n_out; ++o) scale_[size_t(o)] = scb_[size_t(o)] / 127.0f;
  } else {
    scale_ = std::move(row_values);
  }
  rsum_.resize(size_t(n_out));
  int8_row_sums(q8_.data(), n_out, n_in, rsum_.data());
}

Int8Linear::Int8Linear(int64_t n_out, int64_t n_in, int64_t group_size, std::vector<uint8_t> packed,
                       std::vector<float> scales)
    : mode_(Int8Mode::W4A8), n_out_(n_out), n_in_(n_in), gs_(group_size), q4_(std::move(packed)),
      scale_(std::move(scales)) {
  LOWBIT_ASSERT(n_in % 2 == 0 && gs_ > 0 && gs_ % 2 == 0 && n_in % gs_ == 0);
  LOWBIT_ASSERT(int64_t(q4_.size()) == n_out * n_in / 2 && int64_t(scale_.size()) == n_out * (n_in / gs_));
}

void Int8Linear::matmul(const float* X, int n_tok, float* Y, int n_threads) const {
  if (n_tok <= 0) return;
  if (mode_ == Int8Mode::LlmInt8) return matmul_llm_int8(X, n_tok, Y, n_threads);
  const Int8Isa isa = active_int8_isa();
  std::vector<int8_t> Q(size_t(n_tok) * size_t(n_in_));  // [n_tok, n_in]
  std::vector<float> sx(static_cast<size_t>(n_tok));     // [n_tok]
  const char* where = mode_ == Int8Mode::W8A8 ? "w8a8 matmul" : "w4a8 matmul";
  quantize_activations_i8(X, n_tok, n_in_, nullptr, Q.data(), sx.data(), where);
  if (mode_ == Int8Mode::W8A8) {
    gemm_w8a8(Q.data(), sx.data(), q8_.data(), scale_.data(), rsum_.data(), n_tok, n_out_, n_in_, Y, n_threads, isa);
    return;
  }
  std::vector<int32_t> asum(size_t(n_tok) * size_t(n_in_ / gs_));  // [n_tok, n_groups]
  activation_group_sums(Q.data(), n_tok, n_in_, gs_, asum.data());
  gemm_w4a8(Q.data(), sx.data(), asum.data(), q4_.data(), scale_.data(), n_tok, n_out_, n_in_, gs_, Y, n_threads, isa);
}

void Int8Linear::dequantize_rows(int64_t row0, int64_t n_rows, float* W) const {
  LOWBIT_ASSERT(row0 >= 0 && n_rows >= 0 && row0 + n_rows <= n_out_);
  for (int64_t r = 0; r < n_rows; ++r) {
    const int64_t o = row0 + r;
    float* w = W + r * n_in_;
    if (mode_ == Int8Mode::W4A8) {
      const int64_t ng = n_in_ / gs_;
      const uint8_t* b = q4_.data() + o * (n_in_ / 2);
      for (int64_t i = 0; i < n_in_; ++i) {
        const int nib = i % 2 == 0 ? (b[i / 2] & 0x0F) : (b[i / 2] >> 4);
        w[i] = float(nib - 8) * scale_[size_t(o * ng + i / gs_)];
      }
    } else {
      const int8_t* q = q8_.data() + o * n_in_;
      for (int64_t i = 0; i < n_in_; ++i) w[i] = float(q[i]) * scale_[size_t(o)];
    }
  }
}

size_t Int8Linear::nbytes() const {
  if (mode_ == Int8Mode::W4A8) return q4_.size() + scale_.size() * sizeof(float);
  return q8_.size() + scale_.size() * sizeof(float);
}

std::string Int8Linear::type_name() const {
  switch (mode_) {
    case Int8Mode::LlmInt8: return "llm.int8";
    case Int8Mode::W8A8: return "w8a8";
    case Int8Mode::W4A8: return gs_ == n_in_ ? "w4a8row" : fmt::format("w4a8g{}", gs_);
  }
  return "?";
}

std::string Int8Linear::describe() const {
  switch (mode_) {
    case Int8Mode::LlmInt8:  // "6.0" as Python prints the float, "6.25" kept whole
      return fmt::format("weights=qint8, activations=qint8, threshold={}",
                         threshold_ == std::floor(threshold_) ? fmt::format("{:.1f}", threshold_) : fmt::format("{:g}", threshold_));
    case Int8Mode::W8A8: return "weights=qint8, activations=qint8";
    case Int8Mode::W4A8:
      return gs_ == n_in_ ? "weights=qint4, activations=qint8" : fmt::format("weights=qint4, group_size={}, activations=qint8", gs_);
  }
  return "?";
}

std::shared_ptr<QLinear> Int8Linear::with_rows_permuted(std::span<const int64_t> perm) const {
  LOWBIT_ASSERT(int64_t(perm.size()) == n_out_);
  if (mode_ == Int8Mode::W4A8) {
    const int64_t rb = n_in_ / 2, ng = n_in_ / gs_;
    std::vector<uint8_t> q(q4_.size());
    std::vector<float> s(scale_.size());
    for (int64_t r = 0; r < n_out_; ++r) {
      const int64_t src = perm[size_t(r)];
      LOWBIT_ASSERT(src >= 0 && src < n_out_);
      std::memcpy(q.data() + r * rb, q4_.data() + src * rb, size_t(rb));
      std::memcpy(s.data() + r * ng, scale_.data() + src * ng, size_t(ng) * sizeof(float));
    }
    return std::make_shared<Int8Linear>(n_out_, n_in_, gs_, std::move(q), std::move(s));
  }
  std::vector<int8_t> q(q8_.size());
  const std::vector<float>& rv = mode_ == Int8Mode::LlmInt8 ? scb_ : scale_;
  std::vector<float> a(rv.size());
  for (int64_t r = 0; r < n_out_; ++r) {
    const int64_t src = perm[size_t(r)];
    LOWBIT_ASSERT(src >= 0 && src < n_out_);
    std::memcpy(q.data() + r * n_in_, q8_.data() + src * n_in_, size_t(n_in_));
    a[size_t(r)] = rv[size_t(src)];
  }
  return std::make_shared<Int8Linear>(mode_, n_out_, n_in_, std::move(q), std::move(a), threshold_);
}

double Int8Linear::outlier_share() const {
  const uint64_t c = calls_.load();
  return c == 0 ? 0.0 : double(outlier_cols_.load()) / (double(c) * double(n_in_));
}

void Int8Linear::reset_outlier_stats() const {
  calls_.store(0);
  outlier_cols_.store(0);
}

// ---------------------------------------------------------------- layout helpers
const TensorView& int8_layout_part(const std::map<std::string, const TensorView*>& parts, const std::string& suffix,
                                   DType dtype, const std::vector<int64_t>& shape, const std::string& where) {
  auto it = parts.find(suffix);
  if (it == parts.end() || it->second == nullptr)
    fail(where, fmt::format("tensor '{}' is missing", suffix), "the module's quantized tensors are incomplete; re-export the checkpoint");
  const TensorView& v = *it->second;
  std::string want = "[";
  for (size_t i = 0; i < shape.size(); ++i) want += (i ? ", " : "") + std::to_string(shape[i]);
  want += "]";
  if (v.dtype != dtype)
    fail(where + "." + suffix, fmt::format("dtype is {}, expected {}", dtype_name(v.dtype), dtype_name(dtype)),
         "the checkpoint was not written by this layout");
  if (v.shape != shape)
    fail(where + "." + suffix, fmt::format("shape is {}, expected {}", v.shape_str(), want),
         "does quantization_config (bits, group_size) match the tensors?");
  if (v.data == nullptr || v.nbytes != size_t(v.numel()) * dtype_size(dtype))
    fail(where + "." + suffix, fmt::format("holds {} bytes, expected {}", v.nbytes, size_t(v.numel()) * dtype_size(dtype)),
         "the file is truncated or corrupt");
  return v;
}

std::vector<float> int8_layout_scales(const TensorView& v, const std::string& where) {
  std::vector<float> s(size_t(v.numel()));
  std::memcpy(s.data(), v.data, s.size() * sizeof(float));
  for (size_t i = 0; i < s.size(); ++i)
    if (!std::isfinite(s[i]) || s[i] < 0.0f)
      fail(where, fmt::format("value {} is {}", i, s[i]), "scales must be finite and >= 0; the file is corrupt");
  return s;
}

namespace {

// ---------------------------------------------------------------- quantizers
class W8A8Quantizer final : public Quantizer {
 public:
  std::string name() const override { return "w8a8"; }
  std::string summary() const override {
    return "int8 weights per output channel + int8 activations per token at run time (optimum-quanto qint8/qint8), "
           "integer GEMM; group_size unused";
  }
  std::vector<int> supported_bits() const override { return {8}; }
  QuantConfig default_config() const override {
    QuantConfig c;
    c.method = "w8a8";
    c.bits = 8;
    c.group_size = -1;
    return c;
  }
  void validate(const QuantConfig& cfg) const override {
    if (cfg.bits != 8) fail("cfg.bits", fmt::format("w8a8 stores 8-bit weights, not {}", cfg.bits), "use bits 8, or --method w4a8 for 4-bit");
  }
  double bits_per_weight(const QuantConfig& cfg, int64_t n_out, int64_t n_in) const override {
    return 8.0 + 32.0 / double(n_in);  // int8 codes + one f32 scale per row
  }
  std::shared_ptr<QLinear> quantize_linear(const std::string& name, const float* W, int64_t n_out, int64_t n_in,
                                           const QuantConfig& cfg, const float*) const override {
    validate(cfg);
    if (n_out <= 0 || n_in <= 0) fail(name, fmt::format("empty weight [{}, {}]", n_out, n_in), "");
    std::vector<int8_t> q;
    std::vector<float> a;
    quantize_rows_int8(name, W, n_out, n_in, q, a);
    for (float& v : a) v /= 127.0f;  // scale = absmax / 127
    return std::make_shared<Int8Linear>(Int8Mode::W8A8, n_out, n_in, std::move(q), std::move(a), 0.0f);
  }
  std::vector<HfModuleTensor> hf_module_tensors(const QLinear& ql, const QuantConfig&) const override {
    const auto* q = dynamic_cast<const Int8Linear*>(&ql);
    if (q == nullptr || q->mode() != Int8Mode::W8A8)
      fail("w8a8 writer", fmt::format("layer of type {} is not a w8a8 layer", ql.type_name()), "quantize it with --method w8a8");
    HfModuleTensor w{"w8a8_weight", DType::I8, {q->n_out(), q->n_in()}, {}};
    w.bytes.resize(q->codes8().size());
    std::memcpy(w.bytes.data(), q->codes8().data(), w.bytes.size());
    HfModuleTensor s{"w8a8_scales", DType::F32, {q->n_out()}, {}};
    s.bytes.resize(q->scales().size() * sizeof(float));
    std::memcpy(s.bytes.data(), q->scales().data(), s.bytes.size());
    return {std::move(w), std::move(s)};
  }
  std::vector<std::string> hf_marker_suffixes() const override { return {"w8a8_weight"}; }
  std::vector<std::string> hf_module_suffixes() const override { return {"w8a8_weight", "w8a8_scales"}; }
  std::shared_ptr<QLinear> load_hf_module(const QuantConfig&, const std::map<std::string, const TensorView*>& parts,
                                          int64_t n_out, int64_t n_in, const std::string& where) const override {
    const TensorView& w = int8_layout_part(parts, "w8a8_weight", DType::I8, {n_out, n_in}, where);
    const TensorView& s = int8_layout_part(parts, "w8a8_scales", DType::F32, {n_out}, where);
    std::vector<int8_t> q(size_t(n_out * n_in));
    std::memcpy(q.data(), w.data, q.size());
    for (size_t i = 0; i < q.size(); ++i)
      if (q[i] == -128)
        fail(where + ".w8a8_weight", fmt::format("code -128 at [{}, {}]", int64_t(i) / n_in, int64_t(i) % n_in),
             "w8a8 codes are symmetric, in [-127, 127]; the file is corrupt");
    return std::make_shared<Int8Linear>(Int8Mode::W8A8, n_out, n_in, std::move(q), int8_layout_scales(s, where + ".w8a8_scales"), 0.0f);
  }
};

class W4A8Quantizer final : public Quantizer {
 public:
  std::string name() const override { return "w4a8"; }
  std::string summary() const override {
    return "int4 symmetric weights per output channel or group (group_size, -1 = row) + int8 activations per token, "
           "integer GEMM";
  }
  std::vector<int> supported_bits() const override { return {4}; }
  QuantConfig default_config() const override {
    QuantConfig c;
    c.method = "w4a8";
    c.bits = 4;
    c.group_size = 128;
    return c;
  }
  bool fits(const QuantConfig& cfg, int64_t n_out, int64_t n_in, std::string* why) const override {
    const int64_t gs = group_of(cfg, n_in);
    if (n_in % 2 == 0 && n_in % gs == 0) return true;
    if (why) *why = fmt::format("w4a8 needs its {} inputs even and a multiple of group_size {}", n_in, gs);
    return false;
  }
  void validate(const QuantConfig& cfg) const override {
    if (cfg.bits != 4) fail("cfg.bits", fmt::format("w4a8 stores 4-bit weights, not {}", cfg.bits), "use bits 4, or --method w8a8 for 8-bit");
    if (cfg.group_size != -1 && (cfg.group_size < 2 || cfg.group_size % 2 != 0))
      fail("cfg.group_size", fmt::format("w4a8 group_size {} is not -1 or an even number >= 2", cfg.group_size),
           "e.g. 128, or -1 for one scale per output channel");
  }
  static int64_t group_of(const QuantConfig& cfg, int64_t n_in) { return cfg.group_size < 0 ? n_in : cfg.group_size; }
  double bits_per_weight(const QuantConfig& cfg, int64_t n_out, int64_t n_in) const override {
    return 4.0 + 32.0 / double(group_of(cfg, n_in));  // int4 codes + one f32 scale per group
  }
  void check_shape(const std::string& name, const QuantConfig& cfg, int64_t n_out, int64_t n_in) const {
    const int64_t gs = group_of(cfg, n_in);
    if (n_out <= 0 || n_in <= 0 || n_in % 2 != 0 || n_in % gs != 0)
      fail(name, fmt::format("w4a8 needs n_in even and a multiple of group_size {}; the weight is [{}, {}]", gs, n_out, n_in),
           "choose a group_size that divides n_in, or -1");
  }
  std::shared_ptr<QLinear> quantize_linear(const std::string& name, const float* W, int64_t n_out, int64_t n_in,
                                           const QuantConfig& cfg, const float*) const override {
    validate(cfg);
    check_shape(name, cfg, n_out, n_in);
    const int64_t gs = group_of(cfg, n_in);
    std::vector<uint8_t> q;
    std::vector<float> s;
    quantize_groups_int4(name, W, n_out, n_in, gs, q, s);
    return std::make_shared<Int8Linear>(n_out, n_in, gs, std::move(q), std::move(s));
  }
  std::vector<HfModuleTensor> hf_module_tensors(const QLinear& ql, const QuantConfig&) const override {
    const auto* q = dynamic_cast<const Int8Linear*>(&ql);
    if (q == nullptr || q->mode() != Int8Mode::W4A8)
      fail("w4a8 writer", fmt::format("layer of type {} is not a w4a8 layer", ql.type_name()), "quantize it with --method w4a8");
    HfModuleTensor w{"w4a8_weight", DType::U8, {q->n_out(), q->n_in() / 2}, q->packed4()};
    HfModuleTensor s{"w4a8_scales", DType::F32, {q->n_out(), q->n_in() / q->group_size()}, {}};
    s.bytes.resize(q->scales().size() * sizeof(float));
    std::memcpy(s.bytes.data(), q->scales().data(), s.bytes.size());
    return {std::move(w), std::move(s)};
  }
  std::vector<std::string> hf_marker_suffixes() const override { return {"w4a8_weight"}; }
  std::vector<std::string> hf_module_suffixes() const override { return {"w4a8_weight", "w4a8_scales"}; }
  std::shared_ptr<QLinear> load_hf_module(const QuantConfig& cfg, const std::map<std::string, const TensorView*>& parts,
                                          int64_t n_out, int64_t n_in, const std::string& where) const override {
    validate(cfg);
    check_shape(where, cfg, n_out, n_in);
    const int64_t gs = group_of(cfg, n_in);
    const TensorView& w = int8_layout_part(parts, "w4a8_weight", DType::U8, {n_out, n_in / 2}, where);
    const TensorView& s = int8_layout_part(parts, "w4a8_scales", DType::F32, {n_out, n_in / gs}, where);
    std::vector<uint8_t> q(size_t(n_out * n_in / 2));
    std::memcpy(q.data(), w.data, q.size());
    return std::make_shared<Int8Linear>(n_out, n_in, gs, std::move(q), int8_layout_scales(s, where + ".w4a8_scales"));
  }
};

}  // namespace

std::unique_ptr<Quantizer> make_w8a8_quantizer() { return std::make_unique<W8A8Quantizer>(); }
std::unique_ptr<Quantizer> make_w4a8_quantizer() { return std::make_unique<W4A8Quantizer>(); }

}  // namespace lowbit
