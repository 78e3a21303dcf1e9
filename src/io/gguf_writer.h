// Writes GGUF files (v3 by default, v2 on request; the two are laid out
// identically for little-endian files). Tensor data is streamed: each tensor's
// bytes come from a pointer or from a callback invoked during write(), so peak
// memory stays near one tensor while a model is quantized and written.
// The file is written to PATH.tmp and renamed to PATH only when complete.
//
//   GgufWriter w("out.gguf");
//   w.set("general.architecture", "llama");
//   w.set("llama.block_count", uint32_t(5));
//   w.set("tokenizer.ggml.tokens", GgufArray::of(std::vector<std::string>{...}));
//   w.add_tensor("blk.0.attn_q.weight", GgmlType::Q4_K, {4096, 4096},   // [n_out, n_in]
//                [&](std::span<uint8_t> out) { quantize_into(out); });
//   w.write();
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "io/gguf.h"

namespace lowbit {

struct GgufWriteOptions {
  uint32_t version = 3;     // 2 or 3
  uint32_t alignment = 32;  // power of 2; stored as general.alignment (u32) when not 32
};

class GgufWriter {
 public:
  // Fills `out`, exactly the tensor's byte size, with its data. Called once, during write(), in tensor order.
  using TensorFill = std::function<void(std::span<uint8_t> out)>;

  explicit GgufWriter(std::string path, GgufWriteOptions opts = {});

  // Metadata, written in the order keys were first set; setting a key again replaces its value.
  void set(const std::string& key, GgufValue value);
  const GgufValue* find(const std::string& key) const;

  // A tensor of `type` with `shape` outermost-first (a linear weight is [n_out, n_in]); the file
  // stores ne[] innermost-first. Its byte size follows from type and shape.
  // `data` (nbytes of it) must stay valid until write() returns.
  void add_tensor(const std::string& name, GgmlType type, std::vector<int64_t> shape, const void* data,
                  size_t nbytes);
  void add_tensor(const std::string& name, GgmlType type, std::vector<int64_t> shape, TensorFill fill);
  // A plain-typed view (f32/f16/bf16/f64/i8..i64), same name; its data must outlive write().
  void add_tensor(const TensorView& t);

  size_t n_tensors() const { return tensors_.size(); }
  const std::string& path() const { return path_; }

  // Writes PATH.tmp and renames it to PATH. On failure throws lowbit::Error
  // naming the path, and removes the temp file. Call once.
  void write();

  // Bytes of a tensor of `type` and `shape`; throws naming `where` when the
  // shape is invalid or its rows are not a multiple of the type's block size.
  static uint64_t tensor_nbytes(GgmlType type, const std::vector<int64_t>& shape, const std::string& where);

 private:
  struct PendingTensor {
    std::string name;
    GgmlType type = GgmlType::F32;
    std::vector<int64_t> shape;  // outermost-first
    uint64_t nbytes = 0;
    uint64_t offset = 0;         // relative to the data section, assigned by write()
    const void* data = nullptr;  // either data ...
    TensorFill fill;             // ... or fill
  };
  void add_pending(PendingTensor t);

  std::string path_;
  GgufWriteOptions opts_;
  std::vector<GgufKV> kv_;
  std::unordered_map<std::string, size_t> kv_index_;
  std::vector<PendingTensor> tensors_;
  std::unordered_map<std::string, size_t> tensor_index_;
  bool written_ = false;
};

}  // namespace lowbit
