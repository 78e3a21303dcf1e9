// Statistics of one linear layer's calibration inputs X [n_tokens, n_in],
// accumulated over calls (one per sample): what GPTQ (the Hessian) and AWQ
// (per-channel activation magnitude) need.
#pragma once
#include <cstdint>
#include <vector>

namespace lowbit {

class HessianAccumulator {
 public:
  explicit HessianAccumulator(int64_t n_in, bool hessian = true);
  // Adds X [n_tok, n_in]: X^T X is computed in f32 per call (one sample, a few
  // hundred tokens) and accumulated in double.
  void add(const float* X, int64_t n_tok);

  int64_t n_in() const { return n_in_; }
  int64_t n_tokens() const { return n_tokens_; }
  // H = 2 X^T X / n_tokens [n_in, n_in] row-major, symmetric (GPTQ's Hessian of ||WX - QX||^2, averaged).
  std::vector<double> hessian() const;
  std::vector<float> mean_abs() const;  // [n_in] mean |x| per input channel (AWQ's activation scale)
  std::vector<float> max_abs() const;   // [n_in] max |x|
  std::vector<float> mean_sq() const;   // [n_in] mean x^2 (= diag(H) / 2; llama.cpp's imatrix value)

 private:
  int64_t n_in_;
  bool with_hessian_;
  int64_t n_tokens_ = 0;
  std::vector<double> xtx_;      // [n_in, n_in], upper triangle filled
  std::vector<double> sum_abs_;  // [n_in]
  std::vector<double> sum_sq_;   // [n_in]
  std::vector<float> max_abs_;   // [n_in]
  std::vector<float> scratch_;   // [n_in, n_in] f32 X^T X of one call
};

}  // namespace lowbit
