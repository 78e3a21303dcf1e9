// Non-uniform (k-means codebook) weight quantization: the "learned
// distribution" alternative to uniform buckets (SqueezeLLM, Kim et al. 2023,
// sec. 3: sensitivity-weighted k-means).
//
// A linear W [n_out, n_in] is cut along its inputs into groups of group_size
// consecutive values of one row (group_size -1: the whole row is one group).
// Each group gets its own codebook of K = 2^b centroids fitted by weighted
// Lloyd iterations (weights: a per-input-column importance such as mean x²
// from an imatrix, else 1) and every weight stores the b-bit index of a
// centroid. Centroids are rounded to f16 after fitting and the codes are then
// re-chosen against the rounded values, so what is stored is what is computed.
//
// Bits per weight: b + 16 * 2^b / group_values (e.g. 4-bit per 4096-value row:
// 4.0625; 3-bit g64: 5.0).
//
// Storage (lowbit's own layout, quant_method "lowbit", method "kmeans"):
//   <module>.codes     uint8 [n_out, row_bytes], row_bytes = ceil(n_in * b / 8).
//                      Each row is a little-endian bit stream: value i of the
//                      row occupies bits [i*b, i*b + b) counted from bit 0 of
//                      byte 0 (LSB first). So for b = 4 byte j holds value 2j in
//                      its low nibble and value 2j+1 in its high nibble; for b = 2
//                      value 4j+m sits in bits 2m..2m+1 of byte j; for b = 8 a
//                      byte is a value; for b = 3 values straddle bytes. Unused
//                      bits at the end of a row are zero.
//   <module>.codebook  f16 [n_out * groups_per_row, 2^b]; row o*groups_per_row + g
//                      is the codebook of group g of output row o (written in
//                      ascending order; decoding does not rely on it).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/dispatch.h"
#include "methods/quantizer.h"
#include "model/qlinear.h"

namespace lowbit {

// ---------------------------------------------------------------- 1-D weighted k-means

// Result of fitting one group.
struct KmeansFit {
  std::vector<float> centroids;   // [k] ascending, as fitted (before f16 rounding)
  std::vector<uint8_t> codes;     // [n] index of each value's centroid (nearest; ties to the lower)
  std::vector<double> objective;  // sum_i w_i (x_i - c_code(i))^2: after the initial assignment,
                                  // then after each Lloyd iteration (filled only when asked)
  int iterations = 0;             // Lloyd iterations run (update + reassign)
  bool converged = false;         // stopped because no assignment changed
};

// Weighted Lloyd k-means of x [n] with weights w [n] (nullptr: all 1; must be
// finite and >= 0) into k centroids (1 <= k <= 256).
//   init: when x has at most k distinct values, those values (then the fit is
//         exact); else two runs, from the weighted quantiles (j + 1/2) / k of x
//         and from the uniform grid over [min x, max x]; the lower final
//         objective wins (its trace is the one recorded).
//   loop: assign each value to the nearest centroid (values sorted, clusters are
//         runs cut at centroid midpoints), move each centroid to the weighted mean
//         of its cluster; a cluster with no weight keeps its centroid, so the
//         objective never increases. Stops when no assignment changes or after
//         max_iters iterations.
// Deterministic: no dependence on threads or on anything but the inputs.
KmeansFit kmeans_fit_1d(const float* x, const float* w, int64_t n, int k, int max_iters, bool record_objective);

// ---------------------------------------------------------------- the runtime layer

// k-means-quantized linear (bits per weight: b + 16 * 2^b / group_values).
class KmeansLinear final : public QLinear {
 public:
  // Takes ownership of the parts; shapes are checked (LOWBIT_ASSERT: callers validate).
  //   codes    [n_out, row_bytes(n_in, bits)]   packed as described at the top of this file
  //   codebook [n_out * n_in / group, 2^bits]   f16 bits
  // group_size: values per group, or -1 for one group per row.
  KmeansLinear(int64_t n_out, int64_t n_in, int bits, int group_size, std::vector<uint8_t> codes,
               std::vector<uint16_t> codebook);

  static int64_t row_bytes(int64_t n_in, int bits) { return (n_in * bits + 7) / 8; }

  int64_t n_out() const override { return n_out_; }
  int64_t n_in() const override { return n_in_; }
  int bits() const { return bits_; }
  int group_size() const { return group_size_; }   // -1: whole row
  int64_t group_values() const { return group_; }  // values per group (n_in for -1)
  int64_t groups_per_row() const { return n_in_ / group_; }
  const std::vector<uint8_t>& codes() const { return codes_; }         // [n_out, row_bytes]
  const std::vector<uint16_t>& codebook() const { return codebook_; }  // [n_out * groups_per_row, 2^bits] f16
  // Code of value i of row o.
  int code(int64_t o, int64_t i) const;

  void matmul(const float* X, int n_tok, float* Y, int n_threads) const override;
  // The same product with the kernel of `isa` (clamped to the CPU): Ref = the scalar
  // lookup-table kernel; Avx2 = the pshufb kernel for 4-bit codes (other widths
  // use the scalar kernel). For n_tok >= kKmeansPanelMinTokens both dequantize row
  // panels (with that ISA's row expander) and multiply with sgemm.
  void matmul_isa(const float* X, int n_tok, float* Y, int n_threads, IsaLevel isa) const;
  void dequantize_rows(int64_t row0, int64_t n_rows, float* W) const override;
  // The same with the row expander of `isa` (AVX2: 4-bit codes); identical values.
  void dequantize_rows_isa(int64_t row0, int64_t n_rows, float* W, IsaLevel isa) const;
  size_t nbytes() const override { return codes_.size() + 2 * codebook_.size(); }
  std::string type_name() const override;  // "kmeans4", "kmeans3g64"
  std::string describe() const override;   // "kmeans, bits=4, group_size=row"
  std::shared_ptr<QLinear> with_rows_permuted(std::span<const int64_t> perm) const override;

 private:
  void matmul_rows_lut(const float* X, int n_tok, float* Y, int n_threads, bool avx2) const;
  void matmul_panels(const float* X, int n_tok, float* Y, int n_threads, IsaLevel isa) const;
  bool avx2_lut(IsaLevel isa) const;  // whether the AVX2 kernels apply (4-bit, group % 16 == 0, CPU has AVX2)

  int64_t n_out_, n_in_;
  int bits_, group_size_;
  int64_t group_;  // values per group
  int64_t row_bytes_;
  std::vector<uint8_t> codes_;      // [n_out, row_bytes]
  std::vector<uint16_t> codebook_;  // [n_out * groups_per_row, 2^bits] f16
};

// From here on matmul dequantizes row panels of 64 rows and uses sgemm.
inline constexpr int kKmeansPanelMinTokens = 16;

// Quantizes W [n_out, n_in] (f32) with per-group weighted k-means. importance:
// [n_in] per-input-column weights or nullptr. iters: Lloyd iterations at most.
// Throws lowbit::Error naming `name` for unsupported bits, a group size that does
// not divide n_in, NaN/Inf weights, bad importance values, or centroids beyond f16.
// Rows run in parallel over `threads` (<= 0: all); results identical at any count.
std::shared_ptr<KmeansLinear> kmeans_quantize(const std::string& name, const float* W, int64_t n_out, int64_t n_in,
                                              int bits, int group_size, const float* importance, int iters,
                                              int threads = 0);

// The "kmeans" method (quant_method "lowbit", method "kmeans"; extra "iters", default 30).
std::unique_ptr<Quantizer> make_kmeans_quantizer();

}  // namespace lowbit
