// Linears whose activations are quantized at run time and multiplied with
// integer kernels (kernels/int8_gemm.h):
//
//   w8a8      optimum-quanto's quantize(model, weights=qint8, activations=qint8)
//             with dynamic activations: weights int8 per output channel
//             (scale = row absmax / 127, f32), each token's activations int8
//             (absmax / 127) at run time; y = acc * s_w[o] * s_x[t].
//             8 + 32 / n_in bits per weight.
//   w4a8      the same with int4 symmetric weights (scale = absmax / 7 per
//             output channel or per group of QuantConfig::group_size inputs,
//             -1 = one group per row), int8 activations.
//             4 + 32 / group_size bits per weight.
//   llm.int8  LLM.int8() (Dettmers et al. 2022), see methods/llm_int8.h:
//             int8 rows + f32 SCB, outlier input columns in f32 at run time.
//             8 + 32 / n_in bits per weight.
//
// Hugging Face layout of w8a8 / w4a8 (quant_method "lowbit"; lowbit's own,
// names chosen not to collide with GPTQ/AWQ "qweight"/"scales", bitsandbytes
// "SCB"/"weight.absmax" or HQQ "W_q"):
//   <module>.w8a8_weight  I8  [n_out, n_in]        int8 codes in [-127, 127]
//   <module>.w8a8_scales  F32 [n_out]              w = code * scale
//   <module>.w4a8_weight  U8  [n_out, n_in / 2]    two int4 codes per byte: byte j of a
//                                                  row holds input 2j in its low nibble,
//                                                  2j + 1 in its high nibble; code =
//                                                  nibble - 8 (quantizer writes -7..7)
//   <module>.w4a8_scales  F32 [n_out, n_in / gs]   w = (nibble - 8) * scale[o, i / gs]
// Markers: "w8a8_weight", "w4a8_weight".
#pragma once
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "methods/quantizer.h"
#include "model/qlinear.h"

namespace lowbit {

enum class Int8Mode { LlmInt8, W8A8, W4A8 };

class Int8Linear final : public QLinear {
 public:
  // int8 weights: codes [n_out, n_in] in [-127, 127] and one f32 per row [n_out]:
  //   llm.int8: row_values = SCB, the row absmax as bitsandbytes stores it; w = code * (SCB / 127).
  //   w8a8:     row_values = the scale itself; w = code * scale.
  // threshold: llm.int8 only.
  Int8Linear(Int8Mode mode, int64_t n_out, int64_t n_in, std::vector<int8_t> codes, std::vector<float> row_values,
             float threshold);
  // int4 weights (w4a8): packed [n_out, n_in / 2] (layout above), scales [n_out, n_in / gs].
  Int8Linear(int64_t n_out, int64_t n_in, int64_t group_size, std::vector<uint8_t> packed, std::vector<float> scales);

  int64_t n_out() const override { return n_out_; }
  int64_t n_in() const override { return n_in_; }
  void matmul(const float* X, int n_tok, float* Y, int n_threads) const override;
  void dequantize_rows(int64_t row0, int64_t n_rows, float* W) const override;
  size_t nbytes() const override;
  std::string type_name() const override;
  std::string describe() const override;
  bool quantizes_activations() const override { return true; }
  std::shared_ptr<QLinear> with_rows_permuted(std::span<const int64_t> perm) const override;

  Int8Mode mode() const { return mode_; }
  int64_t group_size() const { return gs_; }  // w4a8: inputs per scale (n_in for one group per row)
  float threshold() const { return threshold_; }
  const std::vector<int8_t>& codes8() const { return q8_; }     // [n_out, n_in]
  const std::vector<uint8_t>& packed4() const { return q4_; }   // [n_out, n_in / 2]
  const std::vector<float>& scb() const { return scb_; }        // [n_out] llm.int8 only (row absmax)
  const std::vector<float>& scales() const { return scale_; }   // [n_out] or [n_out, n_in / gs]: w = code * scale

  // LLM.int8() statistics since construction (or the last reset): calls of matmul,
  // input columns routed to the f32 path summed over calls, and their share
  // outlier_columns / (calls * n_in). Zero for the other modes.
  uint64_t calls() const { return calls_.load(); }
  uint64_t outlier_columns() const { return outlier_cols_.load(); }
  double outlier_share() const;
  void reset_outlier_stats() const;
  // The outlier input columns of X [n_tok, n_in]: every i with max_t |X[t, i]| >= threshold.
  std::vector<int64_t> outlier_columns_of(const float* X, int n_tok) const;

 private:
  void matmul_llm_int8(const float* X, int n_tok, float* Y, int n_threads) const;  // llm_int8.cpp

  Int8Mode mode_;
  int64_t n_out_, n_in_;
  int64_t gs_ = 0;
  float threshold_ = 0.0f;
  std::vector<int8_t> q8_;     // [n_out, n_in]
  std::vector<uint8_t> q4_;    // [n_out, n_in / 2]
  std::vector<float> scb_;     // [n_out] llm.int8: row absmax (bitsandbytes SCB)
  std::vector<float> scale_;   // [n_out] (llm.int8: SCB / 127) or [n_out, n_groups] (w4a8)
  std::vector<int32_t> rsum_;  // [n_out] sum of a row's int8 codes (VNNI correction; derived, not stored)
  mutable std::atomic<uint64_t> calls_{0};
  mutable std::atomic<uint64_t> outlier_cols_{0};
};

// Symmetric per-row int8: absmax[o] = max_i |W[o, i]|, code = round(W * 127 / absmax)
// (as bitsandbytes' int8_vectorwise_quant). Throws naming `name` on NaN / Inf.
void quantize_rows_int8(const std::string& name, const float* W, int64_t n_out, int64_t n_in, std::vector<int8_t>& codes,
                        std::vector<float>& absmax);
// Symmetric int4 per group of gs inputs: scale = absmax / 7, code = round(W / scale) in
// -7..7, stored as nibble code + 8 (layout above). Throws naming `name` on NaN / Inf.
void quantize_groups_int4(const std::string& name, const float* W, int64_t n_out, int64_t n_in, int64_t gs,
                          std::vector<uint8_t>& packed, std::vector<float>& scales);

// The part `suffix` of a module being loaded, checked: present, of `dtype` and `shape`,
// with all its bytes. Throws naming `where` and the suffix otherwise. (Shared by
// the w8a8 / w4a8 / llm.int8 loaders.)
const TensorView& int8_layout_part(const std::map<std::string, const TensorView*>& parts, const std::string& suffix,
                                   DType dtype, const std::vector<int64_t>& shape, const std::string& where);

// The f32 values of a checked part (any alignment), each finite and >= 0, else fail naming `where`.
std::vector<float> int8_layout_scales(const TensorView& v, const std::string& where);

std::unique_ptr<Quantizer> make_w8a8_quantizer();
std::unique_ptr<Quantizer> make_w4a8_quantizer();

}  // namespace lowbit
