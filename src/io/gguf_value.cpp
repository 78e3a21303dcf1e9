// GGUF metadata values and the ggml type table (see gguf.h).
#include <fmt/format.h>

#include "io/gguf.h"
#include "lowbit/error.h"

namespace lowbit {

// ---------------------------------------------------------------- ggml types

namespace {
// ggml's block geometry: block_size elements stored in type_size bytes.
// K-quants and i-quants use super-blocks of 256 (QK_K); the legacy formats 32.
constexpr GgmlTypeInfo kGgmlTypes[] = {
    {GgmlType::F32, "f32", 1, 4},          {GgmlType::F16, "f16", 1, 2},
    {GgmlType::Q4_0, "q4_0", 32, 18},      {GgmlType::Q4_1, "q4_1", 32, 20},
    {GgmlType::Q5_0, "q5_0", 32, 22},      {GgmlType::Q5_1, "q5_1", 32, 24},
    {GgmlType::Q8_0, "q8_0", 32, 34},      {GgmlType::Q8_1, "q8_1", 32, 36},
    {GgmlType::Q2_K, "q2_K", 256, 84},     {GgmlType::Q3_K, "q3_K", 256, 110},
    {GgmlType::Q4_K, "q4_K", 256, 144},    {GgmlType::Q5_K, "q5_K", 256, 176},
    {GgmlType::Q6_K, "q6_K", 256, 210},    {GgmlType::Q8_K, "q8_K", 256, 292},
    {GgmlType::IQ2_XXS, "iq2_xxs", 256, 66}, {GgmlType::IQ2_XS, "iq2_xs", 256, 74},
    {GgmlType::IQ3_XXS, "iq3_xxs", 256, 98}, {GgmlType::IQ1_S, "iq1_s", 256, 50},
    {GgmlType::IQ4_NL, "iq4_nl", 32, 18},  {GgmlType::IQ3_S, "iq3_s", 256, 110},
    {GgmlType::IQ2_S, "iq2_s", 256, 82},   {GgmlType::IQ4_XS, "iq4_xs", 256, 136},
    {GgmlType::I8, "i8", 1, 1},            {GgmlType::I16, "i16", 1, 2},
    {GgmlType::I32, "i32", 1, 4},          {GgmlType::I64, "i64", 1, 8},
    {GgmlType::F64, "f64", 1, 8},          {GgmlType::IQ1_M, "iq1_m", 256, 56},
    {GgmlType::BF16, "bf16", 1, 2},        {GgmlType::TQ1_0, "tq1_0", 256, 54},
    {GgmlType::TQ2_0, "tq2_0", 256, 66},   {GgmlType::MXFP4, "mxfp4", 32, 17},
};
}  // namespace

const GgmlTypeInfo* ggml_type_info(uint32_t id) {
  for (const auto& t : kGgmlTypes)
    if (uint32_t(t.type) == id) return &t;
  return nullptr;
}

std::string ggml_type_name(uint32_t id) {
  const GgmlTypeInfo* t = ggml_type_info(id);
  return t ? std::string(t->name) : fmt::format("unknown type {}", id);
}

std::optional<DType> ggml_type_to_dtype(uint32_t id) {
  switch (GgmlType(id)) {
    case GgmlType::F32: return DType::F32;
    case GgmlType::F16: return DType::F16;
    case GgmlType::BF16: return DType::BF16;
    case GgmlType::F64: return DType::F64;
    case GgmlType::I8: return DType::I8;
    case GgmlType::I16: return DType::I16;
    case GgmlType::I32: return DType::I32;
    case GgmlType::I64: return DType::I64;
    default: return std::nullopt;
  }
}

std::optional<GgmlType> dtype_to_ggml_type(DType t) {
  switch (t) {
    case DType::F32: return GgmlType::F32;
    case DType::F16: return GgmlType::F16;
    case DType::BF16: return GgmlType::BF16;
    case DType::F64: return GgmlType::F64;
    case DType::I8: return GgmlType::I8;
    case DType::I16: return GgmlType::I16;
    case DType::I32: return GgmlType::I32;
    case DType::I64: return GgmlType::I64;
    default: return std::nullopt;  // u8 / bool have no ggml type
  }
}

// ---------------------------------------------------------------- value types

std::string_view gguf_type_name(GgufType t) {
  static constexpr std::string_view kNames[kGgufTypeCount] = {
      "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"};
  uint32_t i = uint32_t(t);
  return i < kGgufTypeCount ? kNames[i] : std::string_view("unknown");
}

size_t gguf_scalar_size(GgufType t) {
  switch (t) {
    case GgufType::U8: case GgufType::I8: case GgufType::Bool: return 1;
    case GgufType::U16: case GgufType::I16: return 2;
    case GgufType::U32: case GgufType::I32: case GgufType::F32: return 4;
    case GgufType::U64: case GgufType::I64: case GgufType::F64: return 8;
    default: return 0;
  }
}

size_t GgufArray::size() const {
  if (type == GgufType::String) return strings.size();
  if (type == GgufType::Array) return arrays.size();
  size_t s = gguf_scalar_size(type);
  return s ? raw.size() / s : 0;
}

GgufArray GgufArray::of(std::vector<std::string> v) {
  GgufArray a;
  a.type = GgufType::String;
  a.strings = std::move(v);
  return a;
}

GgufArray GgufArray::of_arrays(std::vector<GgufArray> v) {
  GgufArray a;
  a.type = GgufType::Array;
  a.arrays.reserve(v.size());
  for (auto& x : v) a.arrays.emplace_back(std::move(x));
  return a;
}

bool operator==(const GgufArray& a, const GgufArray& b) {
  return a.type == b.type && a.raw == b.raw && a.strings == b.strings && a.arrays == b.arrays;
}

bool GgufValue::is_integer() const {
  switch (type()) {
    case GgufType::U8: case GgufType::I8: case GgufType::U16: case GgufType::I16:
    case GgufType::U32: case GgufType::I32: case GgufType::U64: case GgufType::I64: return true;
    default: return false;
  }
}

std::optional<int64_t> GgufValue::as_int() const {
  return std::visit(
      [](const auto& x) -> std::optional<int64_t> {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, uint64_t>) {
          if (x > uint64_t(INT64_MAX)) return std::nullopt;
          return int64_t(x);
        } else if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
          return int64_t(x);
        } else {
          return std::nullopt;
        }
      },
      v_);
}

std::string GgufValue::to_string() const {
  return std::visit(
      [](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::string>) return x;
        else if constexpr (std::is_same_v<T, GgufArray>) return fmt::format("[{} items]", x.size());
        else if constexpr (std::is_same_v<T, bool>) return x ? "true" : "false";
        else if constexpr (std::is_same_v<T, uint8_t> || std::is_same_v<T, int8_t>) return std::to_string(int(x));
        else return fmt::format("{}", x);
      },
      v_);
}

}  // namespace lowbit
