#include "io/safetensors_writer.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <numeric>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "lowbit/error.h"

namespace lowbit {

SafetensorsWriter::SafetensorsWriter(std::string path) : path_(std::move(path)), tmp_path_(path_ + ".tmp") {}

SafetensorsWriter::~SafetensorsWriter() {
  if (tmp_created_ && !finished_) {
    std::error_code ec;  // never throw from a destructor
    std::filesystem::remove(tmp_path_, ec);
  }
}

size_t SafetensorsWriter::checked_nbytes(const std::string& name, DType dtype, const std::vector<int64_t>& shape) {
  const std::string where = fmt::format("{}: tensor '{}'", path_, name);
  if (finished_) fail(where, "added after finish()", "create a new writer");
  if (name.empty() || name == "__metadata__") fail(where, "is not a valid tensor name", "pick another name");
  for (const auto& t : tensors_)
    if (t.name == name) fail(where, "added twice", "tensor names must be unique");
  uint64_t n = dtype_size(dtype);
  for (int64_t d : shape) {
    if (d < 0 || __builtin_mul_overflow(n, uint64_t(d), &n))
      fail(where, "has an invalid shape " + TensorView{name, dtype, shape}.shape_str(), "dimensions must be >= 0");
  }
  return size_t(n);
}

void SafetensorsWriter::add(const std::string& name, DType dtype, std::vector<int64_t> shape,
                            std::span<const uint8_t> bytes) {
  size_t nbytes = checked_nbytes(name, dtype, shape);
  if (bytes.size() != nbytes)
    fail(fmt::format("{}: tensor '{}'", path_, name),
         fmt::format("got {} bytes, shape and dtype need {}", bytes.size(), nbytes), "internal caller error");
  tensors_.push_back({name, dtype, std::move(shape), nbytes, {bytes.begin(), bytes.end()}, nullptr, {}});
}

void SafetensorsWriter::add_f32(const std::string& name, std::vector<int64_t> shape, std::span<const float> values) {
  add(name, DType::F32, std::move(shape),
      {reinterpret_cast<const uint8_t*>(values.data()), values.size() * sizeof(float)});
}

void SafetensorsWriter::add_view(const TensorView& t) {
  size_t nbytes = checked_nbytes(t.name, t.dtype, t.shape);
  if (t.nbytes != nbytes)
    fail(fmt::format("{}: tensor '{}'", path_, t.name),
         fmt::format("view holds {} bytes, shape and dtype need {}", t.nbytes, nbytes), "internal caller error");
  tensors_.push_back({t.name, t.dtype, t.shape, nbytes, {}, t.data, {}});
}

void SafetensorsWriter::add_computed(const std::string& name, DType dtype, std::vector<int64_t> shape,
                                     Producer produce) {
  size_t nbytes = checked_nbytes(name, dtype, shape);
  tensors_.push_back({name, dtype, std::move(shape), nbytes, {}, nullptr, std::move(produce)});
}

void SafetensorsWriter::set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }

void SafetensorsWriter::finish() {
  if (finished_) fail(path_, "finish() called twice", "internal caller error");

  // Layout: larger elements first, so each tensor is aligned to its element size.
  std::vector<size_t> order(tensors_.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return dtype_size(tensors_[a].dtype) > dtype_size(tensors_[b].dtype);
  });

  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata_.empty()) header["__metadata__"] = metadata_;
  uint64_t offset = 0;
  for (size_t i : order) {
    const Pending& t = tensors_[i];
    header[t.name] = {{"dtype", safetensors_dtype_name(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + t.nbytes}}};
    offset += t.nbytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {
    fail(path_, std::string("cannot encode header: ") + e.what(), "tensor names and metadata must be valid UTF-8");
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // pad to 8 bytes, as the reference writer does
  if (text.size() > kSafetensorsMaxHeader)
    fail(path_, fmt::format("header of {} bytes exceeds the 100 MB limit", text.size()), "write fewer tensors per file");

  // Closed on every exit path (a producer may throw); the destructor then removes the temp file.
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(tmp_path_.c_str(), "wb"), &std::fclose);
  if (!f) fail(tmp_path_, std::string("cannot create: ") + std::strerror(errno), "check the folder exists and is writable");
  tmp_created_ = true;
  auto write = [&](const void* p, size_t n) {
    if (n && std::fwrite(p, 1, n, f.get()) != n)
      fail(tmp_path_, std::string("write failed: ") + std::strerror(errno), "check free disk space");
  };
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = uint8_t(uint64_t(text.size()) >> (8 * i));  // little-endian u64
  write(len, 8);
  write(text.data(), text.size());
  std::vector<uint8_t> buf;
  for (size_t i : order) {
    Pending& t = tensors_[i];
    if (t.produce) {
      buf.assign(t.nbytes, 0);
      t.produce(std::span<uint8_t>(buf));
      write(buf.data(), buf.size());
      std::vector<uint8_t>().swap(buf);  // hold one computed tensor at a time
    } else if (t.view) {
      write(t.view, t.nbytes);
    } else {
      write(t.copy.data(), t.copy.size());
    }
  }
  if (std::fflush(f.get()) != 0 || ::fsync(fileno(f.get())) != 0)
    fail(tmp_path_, std::string("flush failed: ") + std::strerror(errno), "check free disk space");
  if (std::fclose(f.release()) != 0)
    fail(tmp_path_, std::string("close failed: ") + std::strerror(errno), "check free disk space");

  std::error_code ec;
  std::filesystem::rename(tmp_path_, path_, ec);
  if (ec) fail(path_, "cannot rename " + tmp_path_ + " onto it: " + ec.message(), "check the folder is writable");
  finished_ = true;
}

}  // namespace lowbit
