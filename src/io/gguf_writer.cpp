#include "io/gguf_writer.h"

#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

#include "lowbit/error.h"

namespace lowbit {

namespace {

constexpr size_t kMaxNameBytes = 63;  // ggml's GGML_MAX_NAME (64) includes the terminating NUL
constexpr int kMaxArrayDepth = 8;     // what GgufFile accepts

// A FILE* that counts what it wrote (for padding) and fails loudly.
class OutFile {
 public:
  explicit OutFile(const std::string& path) : path_(path) {
    f_ = std::fopen(path.c_str(), "wb");
    if (!f_)
      fail(path, std::string("cannot create file: ") + std::strerror(errno),
           "check that the folder exists and is writable");
    std::setvbuf(f_, nullptr, _IOFBF, 1 << 20);
  }
  ~OutFile() {
    if (f_) std::fclose(f_);
  }

  void bytes(const void* p, size_t n) {
    if (n && std::fwrite(p, 1, n, f_) != n)
      fail(path_, std::string("write failed: ") + std::strerror(errno), "is the disk full?");
    pos_ += n;
  }
  template <class T>
  void put(T x) { bytes(&x, sizeof(T)); }
  void str(const std::string& s) {
    put<uint64_t>(s.size());
    bytes(s.data(), s.size());
  }
  void pad_to(uint64_t alignment) {
    static const uint8_t zeros[256] = {};
    uint64_t n = (alignment - pos_ % alignment) % alignment;
    while (n) {
      size_t k = size_t(std::min<uint64_t>(n, sizeof zeros));
      bytes(zeros, k);
      n -= k;
    }
  }

  // Flushes to disk and closes; throws on any deferred write error.
  void close() {
    bool ok = std::fflush(f_) == 0 && ::fsync(fileno(f_)) == 0;
    int err = errno;
    ok = std::fclose(f_) == 0 && ok;
    f_ = nullptr;
    if (!ok) fail(path_, std::string("write failed: ") + std::strerror(err), "is the disk full?");
  }

 private:
  std::string path_;
  std::FILE* f_ = nullptr;
  uint64_t pos_ = 0;
};

std::string shape_string(const std::vector<int64_t>& shape) {
  TensorView v;
  v.shape = shape;
  return v.shape_str();
}

// Arrays are checked when set, so write() never meets a malformed one.
// `what` names the element: "metadata key 'k'", then "metadata key 'k[2][0]'" when nested.
void validate_array(const std::string& path, const GgufArray& a, const std::string& key, const std::string& idx,
                    int depth) {
  const std::string what = fmt::format("metadata key '{}{}'", key, idx);
  if (uint32_t(a.type) >= kGgufTypeCount) fail(path, what + ": array has an invalid element type");
  if (a.type == GgufType::Array) {
    if (depth >= kMaxArrayDepth) fail(path, fmt::format("{}: arrays nested deeper than {} levels", what, kMaxArrayDepth));
    for (size_t i = 0; i < a.arrays.size(); ++i) {
      const std::string sub = fmt::format("{}[{}]", idx, i);
      const GgufArray* inner = a.arrays[i].get_if<GgufArray>();
      if (!inner)
        fail(path, fmt::format("metadata key '{}{}': an array of arrays holds a {}", key, sub, gguf_type_name(a.arrays[i].type())),
             "build nested arrays with GgufArray::of_arrays");
      validate_array(path, *inner, key, sub, depth + 1);
    }
  } else if (a.type != GgufType::String && a.raw.size() % gguf_scalar_size(a.type) != 0) {
    fail(path, fmt::format("{}: array of {} holds {} bytes, not a whole number of elements", what,
                           gguf_type_name(a.type), a.raw.size()),
         "build arrays with GgufArray::of");
  }
}

void write_array(OutFile& out, const GgufArray& a) {
  out.put<uint32_t>(uint32_t(a.type));
  out.put<uint64_t>(a.size());
  if (a.type == GgufType::String) {
    for (const auto& s : a.strings) out.str(s);
  } else if (a.type == GgufType::Array) {
    for (const auto& v : a.arrays) write_array(out, *v.get_if<GgufArray>());
  } else {
    out.bytes(a.raw.data(), a.raw.size());
  }
}

void write_value(OutFile& out, const GgufValue& v) {
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::string>) out.str(x);
        else if constexpr (std::is_same_v<T, GgufArray>) write_array(out, x);
        else if constexpr (std::is_same_v<T, bool>) out.put<uint8_t>(x ? 1 : 0);
        else out.put<T>(x);
      },
      v.storage());
}

}  // namespace

GgufWriter::GgufWriter(std::string path, GgufWriteOptions opts) : path_(std::move(path)), opts_(opts) {
  if (opts_.version != 2 && opts_.version != 3)
    fail(path_, fmt::format("cannot write GGUF version {}", opts_.version), "lowbit writes versions 2 and 3");
  if (opts_.alignment == 0 || !std::has_single_bit(opts_.alignment))
    fail(path_, fmt::format("alignment {} is not a power of 2", opts_.alignment));
}

void GgufWriter::set(const std::string& key, GgufValue value) {
  if (key.empty()) fail(path_, "metadata key is empty");
  if (const GgufArray* a = value.get_if<GgufArray>()) validate_array(path_, *a, key, "", 0);
  if (key == "general.alignment") {
    const uint32_t* al = value.get_if<uint32_t>();
    if (!al || *al != opts_.alignment)
      fail(path_, fmt::format("metadata key 'general.alignment' = {} ({}) disagrees with the writer's alignment {}",
                              value.to_string(), gguf_type_name(value.type()), opts_.alignment),
           "set GgufWriteOptions::alignment instead; the writer stores the key itself");
  }
  auto it = kv_index_.find(key);
  if (it != kv_index_.end()) {
    kv_[it->second].value = std::move(value);
    return;
  }
  kv_index_.emplace(key, kv_.size());
  kv_.push_back({key, std::move(value)});
}

const GgufValue* GgufWriter::find(const std::string& key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].value;
}

uint64_t GgufWriter::tensor_nbytes(GgmlType type, const std::vector<int64_t>& shape, const std::string& where) {
  const GgmlTypeInfo* gt = ggml_type_info(uint32_t(type));
  if (!gt) fail(where, fmt::format("unknown ggml type id {}", uint32_t(type)));
  if (shape.empty() || shape.size() > 4)
    fail(where, fmt::format("shape has {} dimensions; GGUF tensors have 1 to 4", shape.size()));
  int64_t numel = 1;
  for (int64_t d : shape)
    if (d < 0 || __builtin_mul_overflow(numel, d, &numel))
      fail(where, fmt::format("invalid shape dimension {}", d));
  if (shape.back() % gt->block_size != 0)
    fail(where, fmt::format("rows of {} elements are not a multiple of the {} block size {}", shape.back(), gt->name,
                            gt->block_size),
         "choose a format whose block size divides the row length, or keep this tensor in f16/f32");
  return uint64_t(numel) / gt->block_size * gt->type_size;
}

void GgufWriter::add_pending(PendingTensor t) {
  std::string where = fmt::format("{}: tensor '{}'", path_, t.name);
  if (t.name.empty()) fail(path_, "tensor name is empty");
  if (t.name.size() > kMaxNameBytes)
    fail(where, fmt::format("name is {} bytes long; llama.cpp allows at most {}", t.name.size(), kMaxNameBytes));
  if (tensor_index_.count(t.name)) fail(where, "added twice");
  t.nbytes = tensor_nbytes(t.type, t.shape, where);
  tensor_index_.emplace(t.name, tensors_.size());
  tensors_.push_back(std::move(t));
}

void GgufWriter::add_tensor(const std::string& name, GgmlType type, std::vector<int64_t> shape, const void* data,
                            size_t nbytes) {
  PendingTensor t;
  t.name = name;
  t.type = type;
  t.shape = std::move(shape);
  t.data = data;
  add_pending(std::move(t));
  const PendingTensor& added = tensors_.back();
  if (added.nbytes != nbytes || (!data && nbytes))
    fail(fmt::format("{}: tensor '{}'", path_, name),
         fmt::format("got {} bytes of data, but a {} tensor of shape {} takes {}", nbytes,
                     ggml_type_name(uint32_t(type)), shape_string(added.shape),
                     added.nbytes));
}

void GgufWriter::add_tensor(const std::string& name, GgmlType type, std::vector<int64_t> shape, TensorFill fill) {
  if (!fill) fail(fmt::format("{}: tensor '{}'", path_, name), "no data callback given");
  PendingTensor t;
  t.name = name;
  t.type = type;
  t.shape = std::move(shape);
  t.fill = std::move(fill);
  add_pending(std::move(t));
}

void GgufWriter::add_tensor(const TensorView& v) {
  auto type = v.dtype == DType::QUANT ? std::optional<GgmlType>(GgmlType(uint32_t(v.format))) : dtype_to_ggml_type(v.dtype);
  if (!type)
    fail(fmt::format("{}: tensor '{}'", path_, v.name), fmt::format("element type {} has no GGUF type", dtype_name(v.dtype)));
  add_tensor(v.name, *type, v.shape, v.data, v.nbytes);
}

void GgufWriter::write() {
  if (written_) fail(path_, "GgufWriter::write called twice");
  written_ = true;
  const uint64_t align = opts_.alignment;

  // Assign data offsets: each tensor starts at a multiple of the alignment.
  uint64_t offset = 0;
  for (auto& t : tensors_) {
    t.offset = offset;
    offset = (offset + t.nbytes + align - 1) / align * align;
  }
  std::vector<const GgufKV*> kvs;
  for (const auto& kv : kv_) kvs.push_back(&kv);
  GgufKV alignment_kv{"general.alignment", GgufValue(opts_.alignment)};
  if (align != 32 && !find("general.alignment")) kvs.push_back(&alignment_kv);

  const std::string tmp = path_ + ".tmp";
  try {
    OutFile out(tmp);
    out.bytes("GGUF", 4);
    out.put<uint32_t>(opts_.version);
    out.put<uint64_t>(tensors_.size());
    out.put<uint64_t>(kvs.size());
    for (const GgufKV* kv : kvs) {
      out.str(kv->key);
      out.put<uint32_t>(uint32_t(kv->value.type()));
      write_value(out, kv->value);
    }
    for (const auto& t : tensors_) {
      out.str(t.name);
      out.put<uint32_t>(uint32_t(t.shape.size()));
      for (auto it = t.shape.rbegin(); it != t.shape.rend(); ++it) out.put<uint64_t>(uint64_t(*it));  // ne[]: innermost first
      out.put<uint32_t>(uint32_t(t.type));
      out.put<uint64_t>(t.offset);
    }
    out.pad_to(align);

    // Tensor data, one at a time; callback tensors share one reusable buffer.
    std::vector<uint8_t> buf;
    for (auto& t : tensors_) {
      if (t.fill) {
        buf.resize(size_t(t.nbytes));
        t.fill(std::span<uint8_t>(buf.data(), buf.size()));
        out.bytes(buf.data(), buf.size());
        t.fill = nullptr;  // release whatever the callback captured
      } else {
        out.bytes(t.data, size_t(t.nbytes));
      }
      out.pad_to(align);
    }
    out.close();
    std::error_code ec;
    std::filesystem::rename(tmp, path_, ec);
    if (ec) fail(path_, "cannot rename " + tmp + " to the final name: " + ec.message());
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    throw;
  }
}

}  // namespace lowbit
