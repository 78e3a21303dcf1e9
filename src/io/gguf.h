// GGUF: ggml's single-file model format (llama.cpp). Read here; written by gguf_writer.h.
//
// Layout (little-endian, versions 2 and 3; v1 used 32-bit counts and is refused):
//   "GGUF" u32 version, u64 n_tensors, u64 n_kv
//   n_kv x   { string key, u32 value_type, value }
//   n_tensors x { string name, u32 n_dims, u64 ne[n_dims] (innermost first), u32 ggml_type, u64 offset }
//   padding to `general.alignment` (default 32), then the data section;
//   each tensor's offset is relative to the data section and a multiple of the alignment.
// A string is u64 length + bytes (no NUL); an array is u32 element type + u64 count + elements.
#pragma once
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "core/mapped_file.h"
#include "io/tensor_source.h"

namespace lowbit {

// ---------------------------------------------------------------- ggml tensor types

// ggml's tensor type ids as stored in GGUF. Ids not listed here (removed
// experimental types) are refused with the id in the message.
enum class GgmlType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22, IQ4_XS = 23,
  I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
  TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39,
};

// Storage geometry of one ggml type: `block_size` elements take `type_size` bytes.
// (A stopgap until the formats traits table owns this; the numbers are ggml's.)
struct GgmlTypeInfo {
  GgmlType type;
  const char* name;  // ggml's spelling: "f32", "q4_0", "q4_K", "iq2_xxs", ...
  uint32_t block_size;
  uint32_t type_size;
};

const GgmlTypeInfo* ggml_type_info(uint32_t id);  // nullptr for an unknown id
std::string ggml_type_name(uint32_t id);          // "q4_K", or "unknown type 99"
// The plain element type a ggml type maps to (f32/f16/bf16/f64/i8..i64), if any.
std::optional<DType> ggml_type_to_dtype(uint32_t id);
std::optional<GgmlType> dtype_to_ggml_type(DType t);

// ---------------------------------------------------------------- metadata values

// Metadata value types; the numbers are the on-disk ids.
enum class GgufType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, Bool = 7,
  String = 8, Array = 9, U64 = 10, I64 = 11, F64 = 12,
};
constexpr uint32_t kGgufTypeCount = 13;

std::string_view gguf_type_name(GgufType t);  // "u8", ..., "string", "array"
size_t gguf_scalar_size(GgufType t);          // bytes of one number/bool; 0 for string/array

class GgufValue;

// An array value: `count` elements of one type. Numbers and bools stay packed
// as in the file (1, 2, 4 or 8 bytes each, little-endian); strings and nested
// arrays are held one per element.
struct GgufArray {
  GgufType type = GgufType::U8;      // element type
  std::vector<uint8_t> raw;          // numbers / bools, packed
  std::vector<std::string> strings;  // type == String
  std::vector<GgufValue> arrays;     // type == Array; each holds a GgufArray

  size_t size() const;

  // Builders for the writer and tests.
  template <class T>
  static GgufArray of(const std::vector<T>& v);
  static GgufArray of(std::vector<std::string> v);
  static GgufArray of_arrays(std::vector<GgufArray> v);

  // Element `i` of a numeric/bool array, read as T (T must be the element type's C++ type).
  template <class T>
  T at(size_t i) const {
    T x;
    std::memcpy(&x, raw.data() + i * sizeof(T), sizeof(T));
    return x;
  }

  friend bool operator==(const GgufArray& a, const GgufArray& b);  // same type and elements
};

// One metadata value. The variant's alternative index equals the GGUF type id.
class GgufValue {
 public:
  using Storage = std::variant<uint8_t, int8_t, uint16_t, int16_t, uint32_t, int32_t, float, bool,
                               std::string, GgufArray, uint64_t, int64_t, double>;

  GgufValue() = default;
  // Exactly one of the alternative types (int -> i32, unsigned -> u32, size_t -> u64, ...).
  template <class T>
    requires(!std::is_same_v<std::remove_cvref_t<T>, GgufValue> &&
             std::is_constructible_v<Storage, std::in_place_type_t<T>, T> &&
             !std::is_same_v<std::decay_t<T>, const char*>)
  GgufValue(T v) : v_(std::in_place_type<T>, std::move(v)) {}
  GgufValue(const char* s) : v_(std::in_place_type<std::string>, s) {}
  GgufValue(std::string_view s) : v_(std::in_place_type<std::string>, s) {}

  GgufType type() const { return GgufType(v_.index()); }
  template <class T>
  const T* get_if() const { return std::get_if<T>(&v_); }
  const Storage& storage() const { return v_; }

  bool is_integer() const;
  // The value of an integer-typed value (any width/sign), if it fits in int64.
  std::optional<int64_t> as_int() const;
  // Printable form: numbers, strings as-is, arrays as "[N items]".
  std::string to_string() const;

  friend bool operator==(const GgufValue& a, const GgufValue& b) { return a.v_ == b.v_; }

 private:
  Storage v_;
};

template <class T>
GgufArray GgufArray::of(const std::vector<T>& v) {
  static_assert(std::is_arithmetic_v<T>, "GgufArray::of<T>: T must be a number or bool");
  GgufArray a;
  a.type = GgufValue(T{}).type();
  if constexpr (std::is_same_v<T, bool>) {
    for (bool b : v) a.raw.push_back(b ? 1 : 0);
  } else {
    a.raw.resize(v.size() * sizeof(T));
    if (!v.empty()) std::memcpy(a.raw.data(), v.data(), a.raw.size());
  }
  return a;
}

struct GgufKV {
  std::string key;
  GgufValue value;
};

// ---------------------------------------------------------------- tensor infos

struct GgufTensorInfo {
  std::string name;
  uint32_t ggml_type = 0;
  std::vector<int64_t> ne;  // dimensions innermost first, as stored (a linear weight: {n_in, n_out})
  uint64_t offset = 0;      // relative to the data section
  uint64_t nbytes = 0;      // from ne and the type's block geometry
};

// ---------------------------------------------------------------- the reader

// A memory-mapped GGUF file. tensors() lists every tensor in file order with
// its shape outermost-first (the reverse of ne). Tensors of plain element
// types (f32, f16, bf16, f64, i8..i64) are views into the mapping; other
// (quantized) types are listed with data == nullptr, dtype U8 and nbytes set,
// and view() refuses them with a clear message until their format is supported.
class GgufFile : public TensorSource {
 public:
  explicit GgufFile(const std::string& path);  // throws lowbit::Error on any malformed input

  const std::vector<TensorView>& tensors() const override { return views_; }
  const std::string& path() const override { return file_.path(); }

  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // file offset of the data section
  uint64_t file_size() const { return file_.size(); }

  // ---- metadata, in file order
  const std::vector<GgufKV>& kvs() const { return kv_; }
  const GgufValue* find_kv(std::string_view key) const;
  const GgufValue& get_kv(std::string_view key) const;  // throws naming the key when missing
  bool has(std::string_view key) const { return find_kv(key) != nullptr; }

  // Strict typed accessors: the key must exist with exactly this type, else
  // lowbit::Error naming the file, the key and the expected type.
  uint8_t get_u8(std::string_view key) const;
  int8_t get_i8(std::string_view key) const;
  uint16_t get_u16(std::string_view key) const;
  int16_t get_i16(std::string_view key) const;
  uint32_t get_u32(std::string_view key) const;
  int32_t get_i32(std::string_view key) const;
  uint64_t get_u64(std::string_view key) const;
  int64_t get_i64(std::string_view key) const;
  float get_f32(std::string_view key) const;
  double get_f64(std::string_view key) const;
  bool get_bool(std::string_view key) const;
  const std::string& get_str(std::string_view key) const;
  const GgufArray& get_arr(std::string_view key) const;

  // Lenient accessors for values writers disagree on: any integer type (must
  // fit int64), any float type; with a default when the key is absent.
  int64_t get_int(std::string_view key) const;
  int64_t get_int(std::string_view key, int64_t def) const;
  double get_float(std::string_view key) const;
  double get_float(std::string_view key, double def) const;
  bool get_bool(std::string_view key, bool def) const;
  std::string get_str(std::string_view key, const std::string& def) const;

  // Typed arrays: an array of strings; of f32; of any integer type (each must fit int32).
  const std::vector<std::string>& get_arr_str(std::string_view key) const;
  std::vector<float> get_arr_f32(std::string_view key) const;
  std::vector<int32_t> get_arr_i32(std::string_view key) const;

  // ---- tensors
  const std::vector<GgufTensorInfo>& infos() const { return infos_; }
  const GgufTensorInfo* find_info(std::string_view name) const;
  const GgufTensorInfo& info(std::string_view name) const;  // throws when missing
  // A view of a plain-typed tensor; throws "tensor X has ggml type q4_K, not supported yet" otherwise.
  const TensorView& view(std::string_view name) const;
  // The raw bytes of any tensor (info.nbytes of them), e.g. to copy a quantized tensor through.
  const uint8_t* raw_data(const GgufTensorInfo& info) const { return file_.data() + data_offset_ + info.offset; }

 private:
  void parse();

  MappedFile file_;
  uint32_t version_ = 0;
  uint32_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<GgufKV> kv_;
  std::unordered_map<std::string, size_t> kv_index_;
  std::vector<GgufTensorInfo> infos_;
  std::vector<TensorView> views_;  // parallel to infos_
  std::unordered_map<std::string, size_t> tensor_index_;
};

}  // namespace lowbit
