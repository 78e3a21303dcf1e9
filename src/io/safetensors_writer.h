// Writes a .safetensors file: tensors (name, dtype, shape, bytes) + optional __metadata__.
//
// The file appears under its final name only when complete: data goes to
// "PATH.tmp" and is renamed onto PATH by finish(). A writer destroyed before
// finish() (an exception mid-way) removes its temp file.
//
// As the reference implementation does, the JSON header is padded with spaces
// to a multiple of 8 bytes and tensors are laid out by decreasing element size
// (stable: same-size tensors keep the order they were added in), so every
// tensor starts at an offset aligned to its element size.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "lowbit/tensor.h"

namespace lowbit {

class SafetensorsWriter {
 public:
  // Fills exactly nbytes of the tensor's data when the file is written.
  using Producer = std::function<void(std::span<uint8_t> out)>;

  explicit SafetensorsWriter(std::string path);
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  // Copies `bytes` (numel(shape) * dtype_size(dtype) of them) into the writer.
  void add(const std::string& name, DType dtype, std::vector<int64_t> shape, std::span<const uint8_t> bytes);
  // Convenience for f32 data.
  void add_f32(const std::string& name, std::vector<int64_t> shape, std::span<const float> values);
  // References t.data without copying: it must stay valid until finish() returns.
  void add_view(const TensorView& t);
  // Data computed during finish() (e.g. a tensor quantized on demand), so
  // memory holds one tensor at a time. Producers run in file order.
  void add_computed(const std::string& name, DType dtype, std::vector<int64_t> shape, Producer produce);

  // A "__metadata__" entry (string -> string), e.g. {"format": "pt"}.
  void set_metadata(const std::string& key, const std::string& value);

  // Writes PATH.tmp, flushes it and renames it onto PATH. Throws lowbit::Error naming the file.
  void finish();

  const std::string& path() const { return path_; }

 private:
  struct Pending {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    size_t nbytes;
    std::vector<uint8_t> copy;  // when added by add()
    const void* view = nullptr; // when added by add_view()
    Producer produce;           // when added by add_computed()
  };
  size_t checked_nbytes(const std::string& name, DType dtype, const std::vector<int64_t>& shape);

  std::string path_;
  std::string tmp_path_;
  std::vector<Pending> tensors_;
  std::map<std::string, std::string> metadata_;
  bool finished_ = false;
  bool tmp_created_ = false;
};

}  // namespace lowbit
