// GGUF reader (see gguf.h for the layout). Every field is bounds-checked
// against the mapping, and every count is bounded by the bytes that remain
// before anything is allocated, so a hostile file fails with lowbit::Error
// instead of crashing, hanging, or allocating huge amounts of memory.
#include "io/gguf.h"

#include <bit>
#include <limits>

#include <fmt/format.h>

#include "formats/format.h"
#include "lowbit/error.h"

namespace lowbit {

static_assert(std::endian::native == std::endian::little, "the GGUF reader assumes a little-endian host");

namespace {

constexpr uint32_t kMaxDims = 4;        // GGML_MAX_DIMS
constexpr int kMaxArrayDepth = 8;       // nested arrays deeper than this are refused (stack safety)
constexpr const char* kCorruptHint = "the file is truncated or corrupt; re-download or re-convert it";

// Smallest on-disk size of one value of type t (used to bound counts).
size_t min_value_bytes(GgufType t) {
  if (t == GgufType::String) return 8;       // u64 length
  if (t == GgufType::Array) return 4 + 8;    // u32 type + u64 count
  return gguf_scalar_size(t);
}

// Sequential little-endian reads from the mapping; each one checks the bounds.
class Reader {
 public:
  explicit Reader(const MappedFile& f) : f_(f) {}

  size_t pos() const { return pos_; }
  size_t remaining() const { return f_.size() - pos_; }
  const std::string& path() const { return f_.path(); }

  void need(size_t n, const std::string& what) const {
    if (n > remaining())
      fail(path(), fmt::format("truncated: {} needs {} bytes at offset {}, but only {} remain", what, n, pos_,
                               remaining()),
           kCorruptHint);
  }

  template <class T>
  T read(const std::string& what) {
    need(sizeof(T), what);
    T x;
    std::memcpy(&x, f_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return x;
  }

  std::string read_string(const std::string& what) {
    uint64_t n = read<uint64_t>(what + " (length)");
    if (n > remaining())
      fail(path(), fmt::format("{} claims a length of {} bytes at offset {}, but only {} bytes remain", what, n, pos_,
                               remaining()),
           kCorruptHint);
    std::string s(reinterpret_cast<const char*>(f_.data() + pos_), size_t(n));
    pos_ += size_t(n);
    return s;
  }

  void read_bytes(void* dst, size_t n, const std::string& what) {
    need(n, what);
    if (n) std::memcpy(dst, f_.data() + pos_, n);
    pos_ += n;
  }

 private:
  const MappedFile& f_;
  size_t pos_ = 0;
};

GgufType read_type(Reader& r, const std::string& what) {
  uint32_t t = r.read<uint32_t>(what + " (value type)");
  if (t >= kGgufTypeCount)
    fail(r.path(), fmt::format("{} has unknown value type {} (GGUF defines 0..12)", what, t), kCorruptHint);
  return GgufType(t);
}

GgufValue read_value(Reader& r, GgufType t, const std::string& what, int depth);

GgufArray read_array(Reader& r, const std::string& what, int depth) {
  GgufArray a;
  a.type = read_type(r, what + " array elements");
  uint64_t n = r.read<uint64_t>(what + " (array length)");
  // Bound the count by the bytes left before reserving anything.
  size_t min_bytes = min_value_bytes(a.type);
  if (n > r.remaining() / min_bytes)
    fail(r.path(),
         fmt::format("{} claims an array of {} {} elements (at least {} bytes each), but only {} bytes remain", what,
                     n, gguf_type_name(a.type), min_bytes, r.remaining()),
         kCorruptHint);
  if (a.type == GgufType::String) {
    a.strings.reserve(size_t(n));
    for (uint64_t i = 0; i < n; ++i) a.strings.push_back(r.read_string(fmt::format("{}[{}]", what, i)));
  } else if (a.type == GgufType::Array) {
    if (depth >= kMaxArrayDepth)
      fail(r.path(), fmt::format("{} nests arrays more than {} levels deep", what, kMaxArrayDepth), kCorruptHint);
    a.arrays.reserve(size_t(n));
    for (uint64_t i = 0; i < n; ++i)
      a.arrays.emplace_back(read_array(r, fmt::format("{}[{}]", what, i), depth + 1));
  } else {
    a.raw.resize(size_t(n) * min_bytes);
    r.read_bytes(a.raw.data(), a.raw.size(), what + " (array data)");
    if (a.type == GgufType::Bool)  // any non-zero byte is true; keep 0/1 so at<bool>() is well-defined
      for (auto& b : a.raw) b = b ? 1 : 0;
  }
  return a;
}

GgufValue read_value(Reader& r, GgufType t, const std::string& what, int depth) {
  switch (t) {
    case GgufType::U8: return r.read<uint8_t>(what);
    case GgufType::I8: return r.read<int8_t>(what);
    case GgufType::U16: return r.read<uint16_t>(what);
    case GgufType::I16: return r.read<int16_t>(what);
    case GgufType::U32: return r.read<uint32_t>(what);
    case GgufType::I32: return r.read<int32_t>(what);
    case GgufType::F32: return r.read<float>(what);
    case GgufType::Bool: return r.read<uint8_t>(what) != 0;
    case GgufType::String: return r.read_string(what);
    case GgufType::Array: return read_array(r, what, depth);
    case GgufType::U64: return r.read<uint64_t>(what);
    case GgufType::I64: return r.read<int64_t>(what);
    case GgufType::F64: return r.read<double>(what);
  }
  fail(r.path(), what + " has an unknown value type", kCorruptHint);
}

// "array of string" for arrays, the plain type name otherwise.
std::string describe_type(const GgufValue& v) {
  if (const auto* a = v.get_if<GgufArray>()) return fmt::format("array of {}", gguf_type_name(a->type));
  return std::string(gguf_type_name(v.type()));
}

}  // namespace

// ---------------------------------------------------------------- parsing

GgufFile::GgufFile(const std::string& path) : file_(path) { parse(); }

void GgufFile::parse() {
  const std::string& p = path();
  Reader r(file_);
  if (file_.size() < 4 || std::memcmp(file_.data(), "GGUF", 4) != 0) {
    std::string head;
    for (size_t i = 0; i < std::min<size_t>(4, file_.size()); ++i) head += fmt::format("{:02x} ", file_.data()[i]);
    fail(p, fmt::format("not a GGUF file (starts with [{}], expected \"GGUF\")", head.empty() ? "" : head.substr(0, head.size() - 1)),
         "pass a .gguf file written by llama.cpp or lowbit");
  }
  r.read<uint32_t>("magic");
  version_ = r.read<uint32_t>("the version");
  if (version_ == 1)
    fail(p, "GGUF version 1 is not supported (it predates 64-bit counts)",
         "convert the model again with a current llama.cpp (convert_hf_to_gguf.py)");
  if (version_ != 2 && version_ != 3) {
    if ((version_ & 0xffff) == 0 && (version_ >> 16) != 0)
      fail(p, fmt::format("GGUF version field reads {:#x}: this looks like a big-endian GGUF file", version_),
           "lowbit reads little-endian GGUF only");
    fail(p, fmt::format("unsupported GGUF version {}", version_), "lowbit reads GGUF versions 2 and 3");
  }
  uint64_t n_tensors = r.read<uint64_t>("the tensor count");
  uint64_t n_kv = r.read<uint64_t>("the metadata count");
  // Each key/value takes >= 13 bytes (key length, type, 1-byte value); each tensor info >= 24.
  if (n_kv > r.remaining() / 13)
    fail(p, fmt::format("header claims {} metadata entries, but only {} bytes follow", n_kv, r.remaining()),
         kCorruptHint);
  if (n_tensors > r.remaining() / 24 || n_kv * 13 + n_tensors * 24 > r.remaining())
    fail(p, fmt::format("header claims {} tensors and {} metadata entries, but only {} bytes follow", n_tensors,
                        n_kv, r.remaining()),
         kCorruptHint);

  // ---- metadata
  kv_.reserve(size_t(n_kv));
  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key = r.read_string(fmt::format("metadata key #{}", i));
    std::string what = fmt::format("metadata key '{}'", key);
    GgufType t = read_type(r, what);
    GgufValue v = read_value(r, t, what, 0);
    if (kv_index_.count(key)) fail(p, fmt::format("{} appears twice", what), kCorruptHint);
    kv_index_.emplace(key, kv_.size());
    kv_.push_back({std::move(key), std::move(v)});
  }
  if (const GgufValue* a = find_kv("general.alignment")) {
    const uint32_t* al = a->get_if<uint32_t>();
    if (!al) fail(p, fmt::format("metadata key 'general.alignment' has type {}, expected u32", describe_type(*a)),
                  kCorruptHint);
    if (*al == 0 || !std::has_single_bit(*al))
      fail(p, fmt::format("metadata key 'general.alignment' = {} is not a power of 2", *al), kCorruptHint);
    alignment_ = *al;
  }

  // ---- tensor infos
  infos_.reserve(size_t(n_tensors));
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo ti;
    ti.name = r.read_string(fmt::format("tensor #{} name", i));
    std::string what = fmt::format("tensor '{}'", ti.name);
    uint32_t n_dims = r.read<uint32_t>(what + " n_dims");
    if (n_dims > kMaxDims) fail(p, fmt::format("{} has n_dims = {}; GGUF allows at most {}", what, n_dims, kMaxDims), kCorruptHint);
    int64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t ne = r.read<uint64_t>(what + " dimensions");
      if (ne > uint64_t(INT64_MAX) || __builtin_mul_overflow(numel, int64_t(ne), &numel))
        fail(p, fmt::format("{} has absurd dimension ne[{}] = {}", what, d, ne), kCorruptHint);
      ti.ne.push_back(int64_t(ne));
    }
    ti.ggml_type = r.read<uint32_t>(what + " type");
    ti.offset = r.read<uint64_t>(what + " offset");
    const GgmlTypeInfo* gt = ggml_type_info(ti.ggml_type);
    if (!gt) fail(p, fmt::format("{} has unknown ggml type id {}", what, ti.ggml_type),
                  "the file may come from a newer llama.cpp than lowbit knows, or be corrupt");
    int64_t row = ti.ne.empty() ? 1 : ti.ne[0];
    if (row % gt->block_size != 0)
      fail(p, fmt::format("{} of type {} has rows of {} elements, not a multiple of its block size {}", what,
                          gt->name, row, gt->block_size),
           kCorruptHint);
    uint64_t nbytes;
    if (__builtin_mul_overflow(uint64_t(numel) / gt->block_size, uint64_t(gt->type_size), &nbytes))
      fail(p, fmt::format("{} is absurdly large", what), kCorruptHint);
    ti.nbytes = nbytes;
    if (ti.offset % alignment_ != 0)
      fail(p, fmt::format("{} has data offset {}, not a multiple of the alignment {}", what, ti.offset, alignment_),
           kCorruptHint);
    if (tensor_index_.count(ti.name)) fail(p, fmt::format("{} appears twice", what), kCorruptHint);
    tensor_index_.emplace(ti.name, infos_.size());
    infos_.push_back(std::move(ti));
  }

  // ---- data section: starts at the next multiple of the alignment; every tensor must lie inside the file.
  data_offset_ = (uint64_t(r.pos()) + alignment_ - 1) / alignment_ * alignment_;
  const uint64_t size = file_.size();
  for (const auto& ti : infos_) {
    if (data_offset_ > size || ti.offset > size - data_offset_ || ti.nbytes > size - data_offset_ - ti.offset)
      fail(p, fmt::format("tensor '{}' data [{}, +{} bytes) at data section offset {} lies past the end of the file ({} bytes)",
                          ti.name, ti.offset, ti.nbytes, data_offset_, size),
           kCorruptHint);
  }

  // ---- views, shape outermost-first
  views_.reserve(infos_.size());
  for (const auto& ti : infos_) {
    TensorView v;
    v.name = ti.name;
    v.shape.assign(ti.ne.rbegin(), ti.ne.rend());
    v.nbytes = size_t(ti.nbytes);
    if (auto dt = ggml_type_to_dtype(ti.ggml_type)) {
      v.dtype = *dt;
      v.data = raw_data(ti);
    } else if (const FormatTraits* f = find_format_by_id(ti.ggml_type); f && f->quantized) {
      v.dtype = DType::QUANT;  // a block layout of the formats traits table
      v.format = f->id;
      v.data = raw_data(ti);
    } else {
      v.dtype = DType::U8;  // a ggml type lowbit has no kernels for: listed, but no view (see view())
      v.data = nullptr;
    }
    views_.push_back(std::move(v));
  }
}

// ---------------------------------------------------------------- tensors

const GgufTensorInfo* GgufFile::find_info(std::string_view name) const {
  auto it = tensor_index_.find(std::string(name));
  return it == tensor_index_.end() ? nullptr : &infos_[it->second];
}

const GgufTensorInfo& GgufFile::info(std::string_view name) const {
  const GgufTensorInfo* ti = find_info(name);
  if (!ti) fail(path(), fmt::format("tensor '{}' is missing", name), "the file does not hold the expected model");
  return *ti;
}

const TensorView& GgufFile::view(std::string_view name) const {
  const GgufTensorInfo& ti = info(name);
  const TensorView& v = views_[size_t(&ti - infos_.data())];
  if (!v.data && ti.nbytes > 0)
    fail(path(), fmt::format("tensor '{}' has ggml type {}, which lowbit does not support", ti.name, ggml_type_name(ti.ggml_type)),
         "supported quantized types: q4_0 q4_1 q5_0 q5_1 q8_0 q2_K..q6_K iq4_nl; use a GGUF of those, or f16/bf16/f32");
  return v;
}

// ---------------------------------------------------------------- metadata accessors

const GgufValue* GgufFile::find_kv(std::string_view key) const {
  auto it = kv_index_.find(std::string(key));
  return it == kv_index_.end() ? nullptr : &kv_[it->second].value;
}

const GgufValue& GgufFile::get_kv(std::string_view key) const {
  const GgufValue* v = find_kv(key);
  if (!v) fail(path(), fmt::format("metadata key '{}' is missing", key), "the file was not written for this model type, or by an incompatible converter");
  return *v;
}

namespace {
template <class T>
const T& get_typed(const GgufFile& f, std::string_view key, std::string_view expected) {
  const GgufValue& v = f.get_kv(key);
  const T* x = v.get_if<T>();
  if (!x) fail(f.path(), fmt::format("metadata key '{}' has type {}, expected {}", key, describe_type(v), expected),
               "the file does not follow the GGUF conventions for this key");
  return *x;
}
}  // namespace

uint8_t GgufFile::get_u8(std::string_view k) const { return get_typed<uint8_t>(*this, k, "u8"); }
int8_t GgufFile::get_i8(std::string_view k) const { return get_typed<int8_t>(*this, k, "i8"); }
uint16_t GgufFile::get_u16(std::string_view k) const { return get_typed<uint16_t>(*this, k, "u16"); }
int16_t GgufFile::get_i16(std::string_view k) const { return get_typed<int16_t>(*this, k, "i16"); }
uint32_t GgufFile::get_u32(std::string_view k) const { return get_typed<uint32_t>(*this, k, "u32"); }
int32_t GgufFile::get_i32(std::string_view k) const { return get_typed<int32_t>(*this, k, "i32"); }
uint64_t GgufFile::get_u64(std::string_view k) const { return get_typed<uint64_t>(*this, k, "u64"); }
int64_t GgufFile::get_i64(std::string_view k) const { return get_typed<int64_t>(*this, k, "i64"); }
float GgufFile::get_f32(std::string_view k) const { return get_typed<float>(*this, k, "f32"); }
double GgufFile::get_f64(std::string_view k) const { return get_typed<double>(*this, k, "f64"); }
bool GgufFile::get_bool(std::string_view k) const { return get_typed<bool>(*this, k, "bool"); }
const std::string& GgufFile::get_str(std::string_view k) const { return get_typed<std::string>(*this, k, "string"); }
const GgufArray& GgufFile::get_arr(std::string_view k) const { return get_typed<GgufArray>(*this, k, "array"); }

int64_t GgufFile::get_int(std::string_view key) const {
  const GgufValue& v = get_kv(key);
  if (!v.is_integer())
    fail(path(), fmt::format("metadata key '{}' has type {}, expected an integer", key, describe_type(v)),
         "the file does not follow the GGUF conventions for this key");
  auto x = v.as_int();
  if (!x) fail(path(), fmt::format("metadata key '{}' = {} is out of range", key, v.to_string()), kCorruptHint);
  return *x;
}

int64_t GgufFile::get_int(std::string_view key, int64_t def) const { return has(key) ? get_int(key) : def; }

double GgufFile::get_float(std::string_view key) const {
  const GgufValue& v = get_kv(key);
  if (const float* f = v.get_if<float>()) return *f;
  if (const double* d = v.get_if<double>()) return *d;
  fail(path(), fmt::format("metadata key '{}' has type {}, expected f32 or f64", key, describe_type(v)),
       "the file does not follow the GGUF conventions for this key");
}

double GgufFile::get_float(std::string_view key, double def) const { return has(key) ? get_float(key) : def; }
bool GgufFile::get_bool(std::string_view key, bool def) const { return has(key) ? get_bool(key) : def; }
std::string GgufFile::get_str(std::string_view key, const std::string& def) const { return has(key) ? get_str(key) : def; }

const std::vector<std::string>& GgufFile::get_arr_str(std::string_view key) const {
  const GgufArray& a = get_typed<GgufArray>(*this, key, "array of string");
  if (a.type != GgufType::String)
    fail(path(), fmt::format("metadata key '{}' has type array of {}, expected array of string", key, gguf_type_name(a.type)),
         "the file does not follow the GGUF conventions for this key");
  return a.strings;
}

std::vector<float> GgufFile::get_arr_f32(std::string_view key) const {
  const GgufArray& a = get_typed<GgufArray>(*this, key, "array of f32");
  if (a.type != GgufType::F32)
    fail(path(), fmt::format("metadata key '{}' has type array of {}, expected array of f32", key, gguf_type_name(a.type)),
         "the file does not follow the GGUF conventions for this key");
  std::vector<float> out(a.size());
  for (size_t i = 0; i < out.size(); ++i) out[i] = a.at<float>(i);
  return out;
}

std::vector<int32_t> GgufFile::get_arr_i32(std::string_view key) const {
  const GgufArray& a = get_typed<GgufArray>(*this, key, "array of integers");
  std::vector<int32_t> out(a.size());
  for (size_t i = 0; i < out.size(); ++i) {
    int64_t x = 0;
    bool fits = true;
    switch (a.type) {
      case GgufType::U8: x = a.at<uint8_t>(i); break;
      case GgufType::I8: x = a.at<int8_t>(i); break;
      case GgufType::U16: x = a.at<uint16_t>(i); break;
      case GgufType::I16: x = a.at<int16_t>(i); break;
      case GgufType::U32: x = a.at<uint32_t>(i); break;
      case GgufType::I32: x = a.at<int32_t>(i); break;
      case GgufType::I64: x = a.at<int64_t>(i); break;
      case GgufType::U64: {
        uint64_t u = a.at<uint64_t>(i);
        fits = u <= uint64_t(INT32_MAX);
        x = fits ? int64_t(u) : 0;
        break;
      }
      default:
        fail(path(), fmt::format("metadata key '{}' has type array of {}, expected array of integers", key,
                                 gguf_type_name(a.type)),
             "the file does not follow the GGUF conventions for this key");
    }
    if (!fits || x < INT32_MIN || x > INT32_MAX)
      fail(path(), fmt::format("metadata key '{}' element {} is out of the int32 range", key, i), kCorruptHint);
    out[i] = int32_t(x);
  }
  return out;
}

}  // namespace lowbit
