// Element types as stored in checkpoint files, and a non-owning view of one tensor.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lowbit {

// Plain element types of safetensors / GGUF / llama2.c files, plus QUANT: a
// block-quantized tensor whose layout is TensorView::format, a row of the
// formats traits table (src/formats/format.h).
// QLINEAR: a linear weight held by a method-specific layout (model/qlinear.h:
// per-row int8 with outlier columns, bitsandbytes NF4 blocks, HQQ groups,
// k-means codebooks); TensorView::qlinear runs and dequantizes it.
enum class DType : uint8_t { F32, F16, BF16, F64, I8, I16, I32, I64, U8, BOOL, QUANT, QLINEAR };

class QLinear;  // model/qlinear.h
struct PackedWeights;  // model/packed_weights.h

// Format ids equal ggml's type ids; defined in src/formats/format.h.
enum class FormatId : uint32_t;

size_t dtype_size(DType t);            // bytes per element (0 for QUANT: see row_bytes)
std::string_view dtype_name(DType t);  // "f32", "f16", ..., "quant"

// A tensor inside a mapped file (or in memory owned elsewhere).
// `shape` is row-major, outermost dimension first, as in PyTorch: a linear
// weight is [n_out, n_in]. (GGUF stores ne[] innermost first; its reader reverses.)
struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  size_t nbytes = 0;
  FormatId format{};  // block layout when dtype == QUANT (rows are cut into blocks along the last dim)
  const QLinear* qlinear = nullptr;  // dtype == QLINEAR: the layer (owned by the Model); data is unused
  // QUANT: an interleaved copy of `data` that matmul reads instead (owned by the
  // Model, model/packed_weights.h); used only while its source is this view's data.
  const PackedWeights* packed = nullptr;

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  int64_t rows() const {  // product of all dims but the last (1 for a scalar); well defined when a dim is 0
    int64_t r = 1;
    for (size_t i = 0; i + 1 < shape.size(); ++i) r *= shape[i];
    return r;
  }
  int64_t cols() const { return shape.empty() ? 1 : shape.back(); }
  std::string shape_str() const;  // "[172, 64]"
  std::string type_name() const;  // dtype name, or the format's ("q4_K") when QUANT
};

// Converts `n` elements starting at element `offset` of a view to f32. For a
// QUANT view, offset and n must be whole blocks (whole rows always are); for a
// QLINEAR view, whole rows.
void to_f32(const TensorView& t, int64_t offset, int64_t n, float* out);

}  // namespace lowbit
