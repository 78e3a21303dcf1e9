// HQQ — Half-Quadratic Quantization (Badri & Shaji, 2023), calibration-free.
//
// A linear W [n_out, n_in] is cut into groups of `group_size` values; each
// group stores codes q in [0, 2^nbits), a float scale s and a float zero z
// (both f16 as the hqq library keeps them with compute dtype f16), and a
// weight means  (q - z) * s.  Unlike RTN the zero is not an integer: HQQ
// chooses it by minimising the lp "norm" (p < 1, default 0.7) of the
// quantization error with a half-quadratic splitting solver (see hqq.cpp).
//
// Groups follow the hqq library's reshape (hqq/core/quantize.py Quantizer.quantize):
//   axis 1: W.reshape([-1, group_size]) — group i is the run of group_size
//           consecutive inputs of one row: row i / (n_in / gs), columns
//           (i % (n_in / gs)) * gs ...; scale/zero have shape [n_groups, 1].
//   axis 0: W.reshape([group_size, -1]) — group j takes element k from row
//           k * R + j / n_in, column j % n_in (R = n_out / gs), i.e. rows
//           R apart; scale/zero have shape [1, n_groups].
// lowbit requires group_size to divide n_in (axis 1) or n_out (axis 0);
// group_size -1 means the whole axis (hqq's group_size=None).
//
// Codes are stored exactly as hqq's BitPack packs the reshaped W_q [L, width]
// along dim 0 (L = n_groups for axis 1, group_size for axis 0): with step =
// L / per (per = codes per unit), unit [a % step][b] holds code (a, b) at bit
// shift nbits * (per - 1 - a / step). Units are u8 for 8/4/2/1 bits
// ("8bit_u8", "4bit_u8", "2bit_u8", "1bit_u8"; L must be a multiple of per) and
// int32 with 10 codes for 3 bits ("3bit_32"; L zero-padded to a multiple of 10).
// The HF layout (hqq_layout.cpp) stores these bytes as the module's W_q.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "lowbit/tensor.h"
#include "methods/quant_config.h"
#include "methods/quantizer.h"
#include "model/qlinear.h"

namespace lowbit {

// ---- the optimizer -------------------------------------------------------

// Knobs of hqq/core/optimize.py optimize_weights_proximal_legacy (defaults as there).
struct HqqOptions {
  int iters = 20;          // half-quadratic iterations
  float lp_norm = 0.7f;    // p of the lp error, 0 < p <= 1
  float beta = 10.0f;      // initial penalty of the splitting
  float kappa = 1.01f;     // beta *= kappa after each iteration
  bool early_stop = true;  // stop a group when its error stops decreasing
  bool optimize = true;    // false: min/max init only (plain RTN with a float zero)
  bool round_zero = false; // round the initial zero (hqq does for nbits == 4)
  // Before the zero iterations, pick the scale among 129 evenly spaced values in
  // scale * [0.95, 1.05] that minimises the group's mean |W - W_r| with W_q
  // fixed (hqq optimize.py update_scale_grid_search, its v2 solver's
  // "scale_gridsearch"; hqq spaces the grid by the tensor's mean scale, we by
  // the group's own, so groups stay independent). Off by default, as in hqq.
  bool optimize_scale = false;
};

// Result of one group. `scale` is HQQ's multiplier max_q / (max - min)
// (quantize: q = clamp(round(w * scale + zero))), not yet inverted.
struct HqqGroupFit {
  float scale = 1.0f;
  float zero = 0.0f;
  double init_error = 0.0;  // sum |w - w_r|^p at the min/max initialisation
  double best_error = 0.0;  // the same at the returned zero (<= init_error)
  int iters_run = 0;
};

// Initialises scale/zero from min/max and runs the solver on one group of n
// values (already gathered contiguously). Deterministic (fixed summation order).
HqqGroupFit hqq_fit_group(const float* w, int64_t n, int nbits, const HqqOptions& opt);

// sum over the group of |w - (clamp(round(w * scale + zero)) - zero) / scale|^p with std::pow (for tests).
double hqq_group_lp_error(const float* w, int64_t n, int nbits, float scale, float zero, float p);

// Options from cfg.extra ("iters", "lp_norm", "beta", "kappa", "early_stop",
// "optimize", "round_zero"); round_zero defaults to nbits == 4 as hqq's
// BaseQuantizeConfig does. Throws naming the field for bad values.
HqqOptions hqq_options_from_config(const QuantConfig& cfg);

// ---- the stored layout ---------------------------------------------------

struct HqqShape {
  int nbits = 4;
  int64_t group_size = 64;  // actual values per group (never -1)
  int axis = 1;
  int64_t n_out = 0, n_in = 0;

  int64_t n_groups() const { return n_out * n_in / group_size; }
  int64_t pack_len() const { return axis == 1 ? n_groups() : group_size; }    // L: dim 0 of W_q before packing
  int64_t pack_width() const { return axis == 1 ? group_size : n_groups(); }  // dim 1
  int codes_per_unit() const;                                                 // 1, 2, 10, 4, 8
  int unit_bytes() const { return nbits == 3 ? 4 : 1; }
  int64_t packed_rows() const;                                                // step = ceil(L / per)
  size_t packed_bytes() const { return size_t(packed_rows() * pack_width()) * size_t(unit_bytes()); }
  const char* packing() const;  // hqq's name: "4bit_u8", "3bit_32", ...
  // Throws lowbit::Error naming `where` when nbits/axis/group_size do not fit the shape.
  void validate(const std::string& where) const;
};

// hqq BitPack: codes [L, width] (row-major, values < 2^nbits) <-> packed units.
std::vector<uint8_t> hqq_pack(const HqqShape& s, std::span<const uint8_t> codes);
std::vector<uint8_t> hqq_unpack(const HqqShape& s, std::span<const uint8_t> packed);

// HQQ layout: nbits-bit codes (hqq BitPack) + one scale and one zero per group
// (f16 by default; bf16 / f32 when loaded so). Bits per weight:
// 8 * packed_bytes / (n_out * n_in) + 2 * 16 / group_size (f16 meta),
// e.g. 4.5 for 4-bit g64, 3.2 + 0.5 (+ padding) for 3-bit g64.
class HqqLinear : public QLinear {
 public:
  // packed: hqq BitPack units (HqqShape::packed_bytes); scale, zero: [n_groups]
  // values representable in meta_dtype (F16, BF16 or F32).
  HqqLinear(HqqShape shape, std::vector<uint8_t> packed, std::vector<float> scale, std::vector<float> zero,
            DType meta_dtype = DType::F16, HqqOptions opts = {});

  int64_t n_out() const override { return shape_.n_out; }
  int64_t n_in() const override { return shape_.n_in; }
  void matmul(const float* X, int n_tok, float* Y, int n_threads) const override;
  void dequantize_rows(int64_t row0, int64_t n_rows, float* W) const override;
  size_t nbytes() const override;
  std::string type_name() const override;  // "hqq4g64", "hqq3g128a0"
  std::string describe() const override;   // "hqq, nbits=4, group_size=64, axis=1"
  std::shared_ptr<QLinear> with_rows_permuted(std::span<const int64_t> perm) const override;

  const HqqShape& shape() const { return shape_; }
  const std::vector<uint8_t>& packed() const { return packed_; }  // hqq BitPack units
  const std::vector<float>& scale() const { return scale_; }      // [n_groups] (the dequantization multiplier)
  const std::vector<float>& zero() const { return zero_; }        // [n_groups]
  DType meta_dtype() const { return meta_dtype_; }
  const HqqOptions& options() const { return opts_; }             // as quantized (HF meta round_zero/optimize)
  // Code of weight W[row, col].
  int code(int64_t row, int64_t col) const;

 private:
  // One row of W [n_in] into out.
  void dequantize_row(int64_t r, float* out) const;

  HqqShape shape_;
  std::vector<uint8_t> packed_;
  std::vector<float> scale_, zero_;
  DType meta_dtype_;
  HqqOptions opts_;
};

// Quantizes W [n_out, n_in] (f32) with HQQ. `name` names the tensor in errors.
// OpenMP over fixed tiles of groups: identical bytes at any thread count.
std::shared_ptr<HqqLinear> hqq_quantize(const std::string& name, const float* W, int64_t n_out, int64_t n_in,
                                        int nbits, int64_t group_size, int axis, const HqqOptions& opt,
                                        int n_threads = 0);

// ---- Hugging Face layout (hqq_layout.cpp) --------------------------------

// The tensors hqq's HQQLinear.state_dict() writes for one module (encoded for safetensors).
std::vector<HfModuleTensor> hqq_hf_module_tensors(const HqqLinear& q);
std::vector<std::string> hqq_hf_module_suffixes();
// Rebuilds the layer from HQQLinear state-dict entries; throws naming `where` and the key.
std::shared_ptr<HqqLinear> hqq_load_hf_module(const std::map<std::string, const TensorView*>& parts, int64_t n_out,
                                              int64_t n_in, const std::string& where);

// The "hqq" method for the registry (methods/registry.cpp).
std::unique_ptr<Quantizer> make_hqq_quantizer();

}  // namespace lowbit
