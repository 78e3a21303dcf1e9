// Element types as stored in checkpoint files, and a non-owning view of one tensor.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lowbit {

// Plain element types of safetensors / GGUF / llama2.c files. Quantized block
// formats join this list with the formats traits table.
enum class DType : uint8_t { F32, F16, BF16, F64, I8, I16, I32, I64, U8, BOOL };

size_t dtype_size(DType t);            // bytes per element
std::string_view dtype_name(DType t);  // "f32", "f16", ...

// A tensor inside a mapped file (or in memory owned elsewhere).
// `shape` is row-major, outermost dimension first, as in PyTorch: a linear
// weight is [n_out, n_in]. (GGUF stores ne[] innermost first; its reader reverses.)
struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  size_t nbytes = 0;

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  int64_t rows() const { return shape.empty() ? 1 : numel() / shape.back(); }
  int64_t cols() const { return shape.empty() ? 1 : shape.back(); }
  std::string shape_str() const;  // "[172, 64]"
};

// Converts `n` elements starting at element `offset` of a plain-typed view to f32.
void to_f32(const TensorView& t, int64_t offset, int64_t n, float* out);

}  // namespace lowbit
