// LLM.int8(): the mixed-precision product of Int8Linear (mode LlmInt8) and the
// "llm.int8" quantizer with the bitsandbytes layout (see llm_int8.h).
#include "methods/llm_int8.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "kernels/int8_gemm.h"
#include "lowbit/error.h"

namespace lowbit {

// Sec. 3.3: feature dimensions with at least one |x| >= threshold in this X.
// threshold 0 means "no decomposition" as in bitsandbytes (Linear8bitLt's default).
std::vector<int64_t> Int8Linear::outlier_columns_of(const float* X, int n_tok) const {
  std::vector<int64_t> cols;
  if (mode_ != Int8Mode::LlmInt8 || !(threshold_ > 0.0f) || std::isinf(threshold_)) return cols;
  std::vector<uint8_t> hit(size_t(n_in_), 0);
  for (int t = 0; t < n_tok; ++t) {
    const float* x = X + int64_t(t) * n_in_;
    for (int64_t i = 0; i < n_in_; ++i) hit[size_t(i)] |= uint8_t(std::fabs(x[i]) >= threshold_);
  }
  for (int64_t i = 0; i < n_in_; ++i)
    if (hit[size_t(i)]) cols.push_back(i);
  return cols;
}

void Int8Linear::matmul_llm_int8(const float* X, int n_tok, float* Y, int n_threads) const {
  const std::vector<int64_t> cols = outlier_columns_of(X, n_tok);
  calls_.fetch_add(1);
  outlier_cols_.fetch_add(cols.size());
  std::vector<uint8_t> skip;  // [n_in] 1 = outlier column (f32 path)
  if (!cols.empty()) {
    skip.assign(size_t(n_in_), 0);
    for (int64_t c : cols) skip[size_t(c)] = 1;
  }

  // int8 part: X8 [n_tok, n_in] (outlier columns 0) · W8^T, rescaled per token and row.
  std::vector<int8_t> Q(size_t(n_tok) * size_t(n_in_));
  std::vector<float> sx(static_cast<size_t>(n_tok));
  quantize_activations_i8(X, n_tok, n_in_, skip.empty() ? nullptr : skip.data(), Q.data(), sx.data(), "llm.int8 matmul");
  gemm_w8a8(Q.data(), sx.data(), q8_.data(), scale_.data(), rsum_.data(), n_tok, n_out_, n_in_, Y, n_threads,
            active_int8_isa());
  if (cols.empty()) return;

  // f32 part: X[:, O] · Wdeq[:, O]^T, Wdeq = code * SCB / 127; one fixed summation order
  // (columns ascending) per output, so any thread count gives the same bits.
  const int64_t nc = int64_t(cols.size());
  std::vector<float> Xo(size_t(n_tok) * size_t(nc));  // [n_tok, n_outlier]
  for (int t = 0; t < n_tok; ++t)
    for (int64_t j = 0; j < nc; ++j) Xo[size_t(t * nc + j)] = X[int64_t(t) * n_in_ + cols[size_t(j)]];
  const int nt = n_threads > 0 ? n_threads : omp_get_max_threads();
  const bool par = nt > 1 && int64_t(n_tok) * n_out_ * nc >= (int64_t(1) << 16);
#pragma omp parallel num_threads(nt) if (par)
  {
    std::vector<float> w(static_cast<size_t>(nc));  // [n_outlier] one row's dequantized outlier columns
#pragma omp for schedule(static)
    for (int64_t o = 0; o < n_out_; ++o) {
      for (int64_t j = 0; j < nc; ++j) w[size_t(j)] = float(q8_[size_t(o * n_in_ + cols[size_t(j)])]) * scale_[size_t(o)];
      for (int t = 0; t < n_tok; ++t) {
        const float* xo = Xo.data() + int64_t(t) * nc;
        float acc = 0.0f;
        for (int64_t j = 0; j < nc; ++j) acc += xo[j] * w[size_t(j)];
        Y[int64_t(t) * n_out_ + o] += acc;
      }
    }
  }
}

namespace {

class LlmInt8Quantizer final : public Quantizer {
 public:
  std::string name() const override { return "llm.int8"; }
  std::string summary() const override {
    return "LLM.int8(): int8 rows + f32 absmax (bitsandbytes load_in_8bit), outlier input columns "
           "(|x| >= threshold) in f32 at run time";
  }
  std::vector<int> supported_bits() const override { return {8}; }
  QuantConfig default_config() const override {
    QuantConfig c;
    c.method = "llm.int8";
    c.bits = 8;
    c.group_size = -1;
    c.threshold = 6.0f;
    return c;
  }
  void validate(const QuantConfig& cfg) const override {
    if (cfg.bits != 8) fail("cfg.bits", fmt::format("llm.int8 stores 8-bit weights, not {}", cfg.bits), "use bits 8 (load_in_8bit)");
    if (!(cfg.threshold >= 0.0f))
      fail("cfg.threshold", fmt::format("llm_int8_threshold {} is not >= 0", cfg.threshold),
           "6.0 as in the paper; 0 or inf turns the outlier decomposition off");
  }
  double bits_per_weight(const QuantConfig&, int64_t, int64_t n_in) const override {
    return 8.0 + 32.0 / double(n_in);  // int8 codes + f32 SCB per row
  }
  std::shared_ptr<QLinear> quantize_linear(const std::string& name, const float* W, int64_t n_out, int64_t n_in,
                                           const QuantConfig& cfg, const float*) const override {
    validate(cfg);
    if (n_out <= 0 || n_in <= 0) fail(name, fmt::format("empty weight [{}, {}]", n_out, n_in), "");
    std::vector<int8_t> q;
    std::vector<float> scb;
    quantize_rows_int8(name, W, n_out, n_in, q, scb);
    return std::make_shared<Int8Linear>(Int8Mode::LlmInt8, n_out, n_in, std::move(q), std::move(scb), cfg.threshold);
  }
  std::vector<HfModuleTensor> hf_module_tensors(const QLinear& ql, const QuantConfig&) const override {
    const auto* q = dynamic_cast<const Int8Linear*>(&ql);
    if (q == nullptr || q->mode() != Int8Mode::LlmInt8)
      fail("llm.int8 writer", fmt::format("layer of type {} is not an llm.int8 layer", ql.type_name()),
           "quantize it with --method llm.int8");
    HfModuleTensor w{"weight", DType::I8, {q->n_out(), q->n_in()}, {}};
    w.bytes.resize(q->codes8().size());
    std::memcpy(w.bytes.data(), q->codes8().data(), w.bytes.size());
    HfModuleTensor s{"SCB", DType::F32, {q->n_out()}, {}};
    s.bytes.resize(q->scb().size() * sizeof(float));
    std::memcpy(s.bytes.data(), q->scb().data(), s.bytes.size());
    HfModuleTensor f{"weight_format", DType::U8, {}, {0}};  // "row"
    return {std::move(w), std::move(s), std::move(f)};
  }
  std::vector<std::string> hf_marker_suffixes() const override { return {"SCB"}; }
  std::vector<std::string> hf_module_suffixes() const override { return {"weight", "SCB", "weight_format"}; }
  std::shared_ptr<QLinear> load_hf_module(const QuantConfig& cfg, const std::map<std::string, const TensorView*>& parts,
                                          int64_t n_out, int64_t n_in, const std::string& where) const override {
    validate(cfg);
    const TensorView& w = int8_layout_part(parts, "weight", DType::I8, {n_out, n_in}, where);
    // SCB is f32 in every bitsandbytes version we know of; f16 / bf16 copies (a model cast
    // after quantization) are read too.
    DType scb_dtype = DType::F32;
    if (auto it = parts.find("SCB"); it != parts.end() && it->second != nullptr &&
                                     (it->second->dtype == DType::F16 || it->second->dtype == DType::BF16))
      scb_dtype = it->second->dtype;
    const TensorView& s = int8_layout_part(parts, "SCB", scb_dtype, {n_out}, where);
    if (auto it = parts.find("weight_format"); it != parts.end() && it->second != nullptr) {
      const TensorView& f = *it->second;
      if (f.dtype != DType::U8 || f.numel() != 1 || f.data == nullptr || f.nbytes != 1)
        fail(where + ".weight_format", fmt::format("is {} {}, expected one uint8", dtype_name(f.dtype), f.shape_str()),
             "bitsandbytes stores torch.tensor(format, dtype=torch.uint8)");
      const uint8_t fmt_id = *static_cast<const uint8_t*>(f.data);
      if (fmt_id != 0)
        fail(where + ".weight_format", fmt::format("weight format {} is a GPU tile layout (1 col32, 2 col_turing, 3 col_ampere)", fmt_id),
             "only the row-major format 0 can be read; re-save the model with a recent bitsandbytes");
    }
    std::vector<int8_t> q(size_t(n_out * n_in));
    std::memcpy(q.data(), w.data, q.size());
    for (size_t i = 0; i < q.size(); ++i)
      if (q[i] == -128)
        fail(where + ".weight", fmt::format("code -128 at [{}, {}]", int64_t(i) / n_in, int64_t(i) % n_in),
             "LLM.int8() codes are round(w * 127 / SCB), in [-127, 127]; the file is corrupt");
    std::vector<float> scb;
    if (scb_dtype == DType::F32) {
      scb = int8_layout_scales(s, where + ".SCB");
    } else {
      std::vector<float> f(static_cast<size_t>(n_out));
      to_f32(s, 0, n_out, f.data());
      TensorView fv{s.name, DType::F32, {n_out}, f.data(), f.size() * sizeof(float)};
      scb = int8_layout_scales(fv, where + ".SCB");
    }
    return std::make_shared<Int8Linear>(Int8Mode::LlmInt8, n_out, n_in, std::move(q), std::move(scb), cfg.threshold);
  }
};

}  // namespace

std::unique_ptr<Quantizer> make_llm_int8_quantizer() { return std::make_unique<LlmInt8Quantizer>(); }

}  // namespace lowbit
