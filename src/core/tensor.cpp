#include "lowbit/tensor.h"

#include <cstring>

#include <fmt/format.h>

#include "core/half.h"
#include "formats/format.h"
#include "lowbit/error.h"
#include "model/qlinear.h"

namespace lowbit {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F64: case DType::I64: return 8;
    case DType::F32: case DType::I32: return 4;
    case DType::F16: case DType::BF16: case DType::I16: return 2;
    case DType::I8: case DType::U8: case DType::BOOL: return 1;
    case DType::QUANT: case DType::QLINEAR: return 0;
  }
  return 0;
}

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "f32";
    case DType::F16: return "f16";
    case DType::BF16: return "bf16";
    case DType::F64: return "f64";
    case DType::I8: return "i8";
    case DType::I16: return "i16";
    case DType::I32: return "i32";
    case DType::I64: return "i64";
    case DType::U8: return "u8";
    case DType::BOOL: return "bool";
    case DType::QUANT: return "quant";
    case DType::QLINEAR: return "qlinear";
  }
  return "?";
}

std::string TensorView::shape_str() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string TensorView::type_name() const {
  if (dtype == DType::QUANT) return format_traits(format).name;
  if (dtype == DType::QLINEAR && qlinear) return qlinear->type_name();
  return std::string(dtype_name(dtype));
}

namespace {
// Dequantizes whole blocks [offset, offset + n) of a block-quantized view.
void quant_to_f32(const TensorView& t, int64_t offset, int64_t n, float* out) {
  const FormatTraits& f = format_traits(t.format);
  const int64_t bs = f.block_size;
  if (offset % bs != 0 || n % bs != 0)
    fail(t.name, fmt::format("cannot expand elements [{}, +{}) of a {} tensor: not whole blocks of {}", offset, n, f.name, bs),
         "this is a bug in the caller");
  LOWBIT_ASSERT(offset >= 0 && n >= 0 && size_t((offset + n) / bs) * f.block_bytes <= t.nbytes);
  f.dequantize_row(static_cast<const uint8_t*>(t.data) + size_t(offset / bs) * f.block_bytes, out, n);
}
}  // namespace

void to_f32(const TensorView& t, int64_t offset, int64_t n, float* out) {
  if (n == 0) return;  // nothing to expand (out and t.data may both be null)
  if (t.dtype == DType::QUANT) return quant_to_f32(t, offset, n, out);
  if (t.dtype == DType::QLINEAR) {
    const int64_t cols = t.cols();
    if (!t.qlinear || cols == 0 || offset % cols != 0 || n % cols != 0)
      fail(t.name, fmt::format("cannot expand elements [{}, +{}) of a {} layer: not whole rows of {}", offset, n,
                               t.type_name(), cols),
           "this is a bug in the caller");
    return t.qlinear->dequantize_rows(offset / cols, n / cols, out);
  }
  LOWBIT_ASSERT(offset >= 0 && n >= 0 && size_t(offset + n) * dtype_size(t.dtype) <= t.nbytes);
  const auto* base = static_cast<const uint8_t*>(t.data);
  switch (t.dtype) {
    case DType::F32:
      std::memcpy(out, base + offset * 4, size_t(n) * 4);
      return;
    case DType::F16: {
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, base + (offset + i) * 2, 2);
        out[i] = f16_to_f32(h);
      }
      return;
    }
    case DType::BF16: {
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, base + (offset + i) * 2, 2);
        out[i] = bf16_to_f32(h);
      }
      return;
    }
    case DType::F64: {
      for (int64_t i = 0; i < n; ++i) {
        double d;
        std::memcpy(&d, base + (offset + i) * 8, 8);
        out[i] = float(d);
      }
      return;
    }
    default:
      fail(t.name, "cannot convert tensor of type " + std::string(dtype_name(t.dtype)) + " to f32",
           "only floating-point tensors hold weights");
  }
}

}  // namespace lowbit
