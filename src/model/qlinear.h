// A linear layer whose weight lives in a method-specific layout that is not
// rows of one block format of the traits table: bitsandbytes NF4/FP4 blocks
// cut across the flattened tensor with double-quantized absmax, LLM.int8()'s
// per-row int8 with outlier columns, W8A8 / W4A8 integer GEMM, HQQ groups with
// float zero points, per-row k-means codebooks. This is optimum-quanto's
// QLinear: the model keeps the quantized state and multiplies with it; nothing
// is expanded to f32 except for a product's working tiles.
//
// A Model holds one through a TensorView of dtype QLINEAR (Model::set_qlinear),
// so the forward pass, to_f32, quant-stats and the writers see it like any
// other weight: matmul() forwards to QLinear::matmul, to_f32 to dequantize_rows.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace lowbit {

class QLinear {
 public:
  virtual ~QLinear() = default;

  virtual int64_t n_out() const = 0;  // W is [n_out, n_in]
  virtual int64_t n_in() const = 0;

  // Y[n_tok, n_out] = X[n_tok, n_in] · W^T with the stored weight (and, for
  // methods that quantize activations, X quantized as the method says).
  // Bit-identical for any n_threads >= 1.
  virtual void matmul(const float* X, int n_tok, float* Y, int n_threads) const = 0;

  // Rows [row0, row0 + n_rows) of the weight as stored, expanded: W [n_rows, n_in].
  virtual void dequantize_rows(int64_t row0, int64_t n_rows, float* W) const = 0;

  // Bytes of the quantized state (codes, scales, zeros, codebooks, outlier columns).
  virtual size_t nbytes() const = 0;

  // Short type for tables and --list: "nf4", "fp4-dq", "llm.int8", "w8a8", "hqq3g64", "kmeans4".
  virtual std::string type_name() const = 0;

  // Arguments of the module's printed form, after in/out features:
  // QLinear(in_features=64, out_features=172, bias=False, <describe()>).
  virtual std::string describe() const = 0;

  // Whether activations are quantized at run time (W8A8, W4A8, LLM.int8()).
  virtual bool quantizes_activations() const { return false; }

  // The same layer with its output rows reordered (row r of the result is row
  // perm[r] of this one), or nullptr when the layout cannot do that exactly
  // (e.g. blocks that straddle rows). Writers use it to turn interleaved-RoPE
  // q/k rows (llama2.c, GGUF sources) into Hugging Face's rotate-half order.
  virtual std::shared_ptr<QLinear> with_rows_permuted(std::span<const int64_t> perm) const = 0;

  double bits_per_weight() const { return 8.0 * double(nbytes()) / double(n_out() * n_in()); }
};

// "QLinear(in_features=64, out_features=172, bias=False, nf4 b64 dq)"; bias as
// the model has one for this layer.
std::string qlinear_repr(const QLinear& q, bool bias);

}  // namespace lowbit
