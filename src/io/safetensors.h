// Safetensors reading: one memory-mapped file, or the shards of a Hugging Face folder.
//
// File layout (https://github.com/huggingface/safetensors, "Format"):
//   [u64 little-endian N][N bytes of UTF-8 JSON header][data section]
// The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]},
// offsets relative to the start of the data section, plus an optional
// "__metadata__" object of string -> string. Every field is checked before a
// view is handed out, so a corrupt or hostile file fails with a lowbit::Error
// naming the file and the field instead of reading out of bounds.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/mapped_file.h"
#include "io/tensor_source.h"
#include "lowbit/tensor.h"

namespace lowbit {

// The safetensors spelling of a dtype ("F32", "BF16", "I64", "BOOL", ...).
std::string_view safetensors_dtype_name(DType t);
// Inverse of safetensors_dtype_name; nullopt for a dtype lowbit does not know.
std::optional<DType> safetensors_dtype_from_name(std::string_view name);

// One header entry, offsets already validated against the data section.
struct SafetensorsEntry {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offset inside the data section
  uint64_t end = 0;    // one past the last byte
};

struct SafetensorsHeader {
  std::vector<SafetensorsEntry> entries;        // sorted by `begin` (file order)
  std::map<std::string, std::string> metadata;  // "__metadata__"
  uint64_t data_start = 0;                      // 8 + header length
};

// Strictly validates the first `size` bytes of a safetensors file (the whole
// file: offsets are checked against it). `path` is only used in messages.
// Exposed separately from SafetensorsFile so fuzzers can drive it from memory.
SafetensorsHeader parse_safetensors_header(const uint8_t* data, size_t size, const std::string& path);

// Largest header the reference implementation accepts (100 MB).
constexpr uint64_t kSafetensorsMaxHeader = 100'000'000;

class SafetensorsFile : public TensorSource {
 public:
  // Maps `path` and validates its header; throws lowbit::Error naming the file and field.
  explicit SafetensorsFile(const std::string& path);

  const std::vector<TensorView>& tensors() const override { return tensors_; }
  const std::string& path() const override { return file_.path(); }
  // The "__metadata__" map (empty when the file has none).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  MappedFile file_;
  std::vector<TensorView> tensors_;  // views into file_
  std::map<std::string, std::string> metadata_;
};

// All tensors of a Hugging Face folder: the shards listed in
// `model.safetensors.index.json` ("weight_map": tensor name -> shard file), or
// the single `model.safetensors` (or, failing both, the folder's only
// *.safetensors file). Throws when a listed shard is missing, a tensor sits in
// two shards, or the index names a tensor its shard lacks.
std::unique_ptr<TensorSource> open_safetensors_folder(const std::string& dir);

}  // namespace lowbit
