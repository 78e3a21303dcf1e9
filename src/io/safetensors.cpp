#include "io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/log.h"
#include "core/json_brief.h"
#include "core/read_file.h"
#include "lowbit/error.h"

namespace lowbit {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

constexpr const char* kCorruptHint = "the file is corrupt, truncated or not a safetensors file";

struct DTypeName {
  DType dtype;
  std::string_view name;
};
// The safetensors dtype strings lowbit can view. (U16/U32/U64 and the F8
// types are valid safetensors but have no lowbit::DType yet: they are refused.)
constexpr DTypeName kDTypeNames[] = {
    {DType::F64, "F64"}, {DType::F32, "F32"}, {DType::F16, "F16"}, {DType::BF16, "BF16"},
    {DType::I64, "I64"}, {DType::I32, "I32"}, {DType::I16, "I16"}, {DType::I8, "I8"},
    {DType::U8, "U8"},   {DType::BOOL, "BOOL"},
};


uint64_t read_le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// A non-negative JSON integer, or nullopt (negative, float, string, too large).
std::optional<uint64_t> as_u64(const json& v) {
  if (!v.is_number_unsigned()) return std::nullopt;
  return v.get<uint64_t>();
}

// Parses the JSON text; refuses duplicate top-level keys, which nlohmann would
// otherwise silently collapse (two entries for one tensor name).
json parse_header_json(const uint8_t* begin, const uint8_t* end, const std::string& path) {
  std::set<std::string> seen;
  std::string duplicate;
  auto on_event = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::key && depth == 1 && duplicate.empty()) {
      auto key = parsed.get<std::string>();
      if (!seen.insert(key).second) duplicate = key;
    }
    return true;
  };
  json header;
  try {
    header = json::parse(begin, end, on_event);
  } catch (const json::exception& e) {
    fail(path, std::string("header is not valid JSON: ") + e.what(), kCorruptHint);
  }
  if (!duplicate.empty()) fail(path, "header lists tensor '" + duplicate + "' twice", kCorruptHint);
  if (!header.is_object()) fail(path, "header is not a JSON object", kCorruptHint);
  return header;
}

void parse_metadata(const json& meta, const std::string& path, std::map<std::string, std::string>& out) {
  if (!meta.is_object()) fail(path, "header field '__metadata__' is not an object of strings", kCorruptHint);
  for (const auto& [key, value] : meta.items()) {
    if (!value.is_string())
      fail(path, fmt::format("header field '__metadata__.{}' is not a string", key),
           "safetensors metadata values must be strings");
    out[key] = value.get<std::string>();
  }
}

// One tensor entry: types, shape product vs byte range, range inside the data section.
SafetensorsEntry parse_entry(const std::string& name, const json& v, uint64_t data_size, const std::string& path) {
  const std::string where = fmt::format("{}: tensor '{}'", path, name);
  if (!v.is_object()) fail(where, "header entry is not an object with dtype/shape/data_offsets", kCorruptHint);
  for (const char* field : {"dtype", "shape", "data_offsets"})
    if (!v.contains(field)) fail(where, fmt::format("header field '{}' is missing", field), kCorruptHint);

  SafetensorsEntry e;
  e.name = name;
  const json& dt = v["dtype"];
  std::optional<DType> dtype = dt.is_string() ? safetensors_dtype_from_name(dt.get<std::string>()) : std::nullopt;
  if (!dtype)
    fail(where, fmt::format("header field 'dtype' = {} is not a dtype lowbit reads", json_brief(dt)),
         "supported: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL");
  e.dtype = *dtype;

  const json& shape = v["shape"];
  if (!shape.is_array()) fail(where, "header field 'shape' is not an array", kCorruptHint);
  uint64_t numel = 1;
  bool overflow = false;
  for (const json& d : shape) {
    std::optional<uint64_t> n = as_u64(d);
    if (!n || *n > uint64_t(INT64_MAX))
      fail(where, fmt::format("header field 'shape' = {} holds a value that is not a non-negative integer", json_brief(shape)),
           kCorruptHint);
    e.shape.push_back(int64_t(*n));
    overflow |= __builtin_mul_overflow(numel, *n, &numel);
  }
  uint64_t nbytes = 0;
  overflow |= __builtin_mul_overflow(numel, uint64_t(dtype_size(e.dtype)), &nbytes);
  if (overflow || numel > uint64_t(INT64_MAX))
    fail(where, fmt::format("header field 'shape' = {} overflows 64-bit sizes", json_brief(shape)), kCorruptHint);

  const json& off = v["data_offsets"];
  std::optional<uint64_t> b, en;
  if (off.is_array() && off.size() == 2) b = as_u64(off[0]), en = as_u64(off[1]);
  if (!b || !en) fail(where, fmt::format("header field 'data_offsets' = {} is not [begin, end]", json_brief(off)), kCorruptHint);
  if (*b > *en) fail(where, fmt::format("header field 'data_offsets' = [{}, {}] has begin > end", *b, *en), kCorruptHint);
  if (*en > data_size)
    fail(where,
         fmt::format("header field 'data_offsets' = [{}, {}] runs past the data section ({} bytes)", *b, *en, data_size),
         "the file is truncated or corrupt");
  if (*en - *b != nbytes)
    fail(where,
         fmt::format("header field 'shape' = {} of dtype {} needs {} bytes but 'data_offsets' = [{}, {}] spans {}",
                     json_brief(shape), dt.get<std::string>(), nbytes, *b, *en, *en - *b),
         kCorruptHint);
  e.begin = *b;
  e.end = *en;
  return e;
}

// Ranges sorted by begin must not overlap (empty tensors take no bytes and never overlap).
void check_no_overlap(const std::vector<SafetensorsEntry>& entries, const std::string& path) {
  const SafetensorsEntry* last = nullptr;  // the non-empty entry reaching furthest so far
  for (const auto& e : entries) {
    if (e.begin == e.end) continue;
    if (last && e.begin < last->end)
      fail(fmt::format("{}: tensor '{}'", path, e.name),
           fmt::format("header field 'data_offsets' = [{}, {}] overlaps tensor '{}' at [{}, {}]", e.begin, e.end,
                       last->name, last->begin, last->end),
           kCorruptHint);
    if (!last || e.end > last->end) last = &e;
  }
}

// The shards of a sharded checkpoint, seen as one source.
class SafetensorsFolder : public TensorSource {
 public:
  SafetensorsFolder(std::string dir, std::vector<std::unique_ptr<SafetensorsFile>> shards)
      : dir_(std::move(dir)), shards_(std::move(shards)) {
    for (const auto& s : shards_) tensors_.insert(tensors_.end(), s->tensors().begin(), s->tensors().end());
  }
  const std::vector<TensorView>& tensors() const override { return tensors_; }
  const std::string& path() const override { return dir_; }

 private:
  std::string dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> shards_;
  std::vector<TensorView> tensors_;  // views into shards_, shard after shard
};

std::unique_ptr<TensorSource> open_sharded(const std::string& dir, const std::string& index_path) {
  const json index = read_json_file(index_path);
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
    fail(index_path, "field 'weight_map' is missing or not an object", "a sharded checkpoint index maps tensor -> shard file");
  std::map<std::string, std::string> placement;  // tensor -> shard file, as the index says
  std::set<std::string> shard_names;             // sorted: model-00001-of-00003, ...
  for (const auto& [tensor, shard] : index["weight_map"].items()) {
    const std::string where = fmt::format("{}: weight_map['{}']", index_path, tensor);
    if (!shard.is_string()) fail(where, "is not a file name", "weight_map values are shard file names");
    const std::string name = shard.get<std::string>();
    // Shards live beside the index: refuse paths that would leave the folder.
    if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
      fail(where, "'" + name + "' is not a plain file name", "shards must sit in the model folder");
    placement[tensor] = name;
    shard_names.insert(name);
  }
  if (shard_names.empty()) fail(index_path, "field 'weight_map' is empty", "the index lists no shards");

  std::vector<std::unique_ptr<SafetensorsFile>> shards;
  std::map<std::string, std::string> found;  // tensor -> shard that holds it
  for (const std::string& name : shard_names) {
    const std::string shard_path = (fs::path(dir) / name).string();
    if (!fs::is_regular_file(shard_path))
      fail(index_path, fmt::format("field 'weight_map' names shard '{}', which is missing from {}", name, dir),
           "download every shard listed in the index");
    shards.push_back(std::make_unique<SafetensorsFile>(shard_path));
    for (const TensorView& t : shards.back()->tensors()) {
      auto [it, inserted] = found.emplace(t.name, name);
      if (!inserted)
        fail(shard_path, fmt::format("tensor '{}' is also stored in shard '{}'", t.name, it->second),
             "a tensor must live in exactly one shard");
    }
  }
  for (const auto& [tensor, shard] : placement) {
    auto it = found.find(tensor);
    if (it == found.end() || it->second != shard)
      fail(index_path,
           fmt::format("field 'weight_map' puts tensor '{}' in '{}', which does not contain it", tensor, shard),
           "the index does not match the shards");
  }
  if (found.size() != placement.size())
    log(LogLevel::Debug, fmt::format("{}: {} tensors in shards are not listed in weight_map", index_path,
                                     found.size() - placement.size()));
  return std::make_unique<SafetensorsFolder>(dir, std::move(shards));
}

}  // namespace

std::string_view safetensors_dtype_name(DType t) {
  for (const auto& d : kDTypeNames)
    if (d.dtype == t) return d.name;
  LOWBIT_ASSERT(false && "dtype without a safetensors name");
  return "";
}

std::optional<DType> safetensors_dtype_from_name(std::string_view name) {
  for (const auto& d : kDTypeNames)
    if (d.name == name) return d.dtype;
  return std::nullopt;
}

SafetensorsHeader parse_safetensors_header(const uint8_t* data, size_t size, const std::string& path) {
  if (size < 8)
    fail(path, fmt::format("file is {} bytes, too small for the 8-byte header length", size), kCorruptHint);
  const uint64_t n = read_le64(data);
  if (n > kSafetensorsMaxHeader)
    fail(path, fmt::format("header length {} is above the 100 MB limit", n), kCorruptHint);
  if (n > size - 8)
    fail(path, fmt::format("header length {} runs past the end of the file ({} bytes)", n, size),
         "the file is truncated or not a safetensors file");
  if (n < 2 || data[8] != '{') fail(path, "header does not start with '{'", kCorruptHint);

  SafetensorsHeader h;
  h.data_start = 8 + n;
  const uint64_t data_size = size - h.data_start;
  const json header = parse_header_json(data + 8, data + 8 + n, path);
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__")
      parse_metadata(value, path, h.metadata);
    else
      h.entries.push_back(parse_entry(key, value, data_size, path));
  }
  std::sort(h.entries.begin(), h.entries.end(), [](const SafetensorsEntry& a, const SafetensorsEntry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  check_no_overlap(h.entries, path);
  return h;
}

SafetensorsFile::SafetensorsFile(const std::string& path) : file_(path) {
  SafetensorsHeader h = parse_safetensors_header(file_.data(), file_.size(), path);
  metadata_ = std::move(h.metadata);
  tensors_.reserve(h.entries.size());
  const uint8_t* data = file_.data() + h.data_start;
  for (auto& e : h.entries) {
    TensorView t;
    t.name = std::move(e.name);
    t.dtype = e.dtype;
    t.shape = std::move(e.shape);
    t.data = data + e.begin;
    t.nbytes = size_t(e.end - e.begin);
    tensors_.push_back(std::move(t));
  }
}

std::unique_ptr<TensorSource> open_safetensors_folder(const std::string& dir) {
  if (!fs::is_directory(dir)) fail(dir, "is not a folder", "pass a Hugging Face model folder");
  const fs::path index = fs::path(dir) / "model.safetensors.index.json";
  if (fs::exists(index)) return open_sharded(dir, index.string());
  const fs::path single = fs::path(dir) / "model.safetensors";
  if (fs::exists(single)) return std::make_unique<SafetensorsFile>(single.string());

  std::vector<fs::path> candidates;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.path().extension() == ".safetensors") candidates.push_back(entry.path());
  if (candidates.size() == 1) return std::make_unique<SafetensorsFile>(candidates[0].string());
  fail(dir,
       candidates.empty() ? "holds no model.safetensors or model.safetensors.index.json"
                          : fmt::format("holds {} .safetensors files but no model.safetensors.index.json", candidates.size()),
       "a Hugging Face model folder has model.safetensors, or shards listed in model.safetensors.index.json");
}

}  // namespace lowbit
