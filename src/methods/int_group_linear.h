// Integer groups (the GPTQ / AWQ / RTN grid, methods/int_groups.h) kept
// quantized at run time: W[o, i] = scale[o, g(i)] * (q[o, i] - zero[o, g(i)]).
//
// Storage (bits per weight = bits + (16 + 8) / group columns, + 32 / n_out with act-order):
//   codes   [n_out, row_bytes]   each row's codes bit-packed, `bits` bits per value,
//                                value i at bit offset i * bits, least significant bit first
//   scales  [n_out, n_groups]    f16
//   zeros   [n_out, n_groups]    u8
//   g_idx   [n_in] int32         group of each input column; empty when g(i) = i / group_columns
// Products expand rows (or row panels) into f32 and use the tiled regime of
// model/matmul.h, so a layer costs its packed bytes in memory, not 4 bytes per weight.
#pragma once
#include <memory>
#include <vector>

#include "methods/int_groups.h"
#include "model/qlinear.h"

namespace lowbit {

class IntGroupLinear : public QLinear {
 public:
  // `method` names the producer for type_name(): "rtn", "gptq", "awq".
  IntGroupLinear(const IntGroupQuant& q, std::string method);

  int64_t n_out() const override { return n_out_; }
  int64_t n_in() const override { return n_in_; }
  void matmul(const float* X, int n_tok, float* Y, int n_threads) const override;
  void dequantize_rows(int64_t row0, int64_t n_rows, float* W) const override;
  size_t nbytes() const override;
  std::string type_name() const override;  // "gptq4g128", "rtn3row"
  std::string describe() const override;   // "gptq, bits=4, group_size=128, sym=False"
  std::shared_ptr<QLinear> with_rows_permuted(std::span<const int64_t> perm) const override;

  // The codes, scales, zeros and g_idx back as an IntGroupQuant (for the GPTQ / AWQ writers).
  IntGroupQuant to_int_groups() const;
  const IntGroupSpec& spec() const { return spec_; }
  const std::string& method() const { return method_; }

 private:
  void row_to_f32(int64_t r, float* dst) const;
  IntGroupSpec spec_;
  std::string method_;
  int64_t n_out_ = 0, n_in_ = 0, n_groups_ = 0, group_cols_ = 0;
  size_t row_bytes_ = 0;
  std::vector<uint8_t> codes_;    // [n_out, row_bytes_]
  std::vector<uint16_t> scales_;  // [n_out, n_groups] f16
  std::vector<uint8_t> zeros_;    // [n_out, n_groups]
  std::vector<int32_t> g_idx_;    // [n_in] or empty
};

}  // namespace lowbit
