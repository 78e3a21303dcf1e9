// Fuzzes the safetensors reader: parse_safetensors_header on the input bytes
// (the whole file), and, when they are accepted, SafetensorsFile on the same
// bytes and a write -> read round trip through SafetensorsWriter.
// Seeds: fuzz/corpus/safetensors/ and the header of ../shared's model.safetensors.
#include <cstring>
#include <map>
#include <tuple>

#include "fuzz_common.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"

using namespace lowbit;
using namespace lowbit_fuzz;

namespace {

// What a header says about one tensor, for comparing two reads.
using Described = std::map<std::string, std::tuple<DType, std::vector<int64_t>, std::string>>;  // name -> (dtype, shape, bytes)

void check_header(const SafetensorsHeader& h, size_t size) {
  FUZZ_CHECK(h.data_start >= 8 && h.data_start <= size, "data_start %llu outside the %zu-byte file",
             (unsigned long long)h.data_start, size);
  const uint64_t data_size = size - h.data_start;
  uint64_t prev_begin = 0, furthest = 0;
  for (const SafetensorsEntry& e : h.entries) {
    FUZZ_CHECK(e.begin <= e.end && e.end <= data_size, "tensor '%s' [%llu, %llu) outside the data section (%llu)",
               e.name.c_str(), (unsigned long long)e.begin, (unsigned long long)e.end, (unsigned long long)data_size);
    FUZZ_CHECK(e.begin >= prev_begin, "entries not sorted by offset");
    prev_begin = e.begin;
    uint64_t numel = 1;
    for (int64_t d : e.shape) {
      FUZZ_CHECK(d >= 0, "tensor '%s' has a negative dimension", e.name.c_str());
      numel *= uint64_t(d);
    }
    FUZZ_CHECK(numel * dtype_size(e.dtype) == e.end - e.begin, "tensor '%s': byte range does not match shape",
               e.name.c_str());
    if (e.begin != e.end) {
      FUZZ_CHECK(e.begin >= furthest, "tensor '%s' overlaps an earlier tensor", e.name.c_str());
      furthest = e.end;
    }
    // The dtype names round-trip.
    FUZZ_CHECK(safetensors_dtype_from_name(safetensors_dtype_name(e.dtype)) == e.dtype, "dtype name round trip");
  }
}

Described describe(const std::vector<TensorView>& views) {
  Described d;
  for (const TensorView& t : views) {
    touch_view(t);
    d[t.name] = {t.dtype, t.shape, std::string(static_cast<const char*>(t.data), t.nbytes)};
  }
  return d;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  quiet_logs();
  static TempDir dir("safetensors");

  SafetensorsHeader h;
  const bool ok = expect_ok_or_error([&] { h = parse_safetensors_header(data, size, "fuzz.safetensors"); });
  if (!ok) return 0;
  check_header(h, size);

  // The same bytes as a file: SafetensorsFile must accept them too and give the same tensors.
  const std::string path = dir.write("in.safetensors", data, size);
  Described first;
  std::map<std::string, std::string> metadata;
  std::string error;
  bool file_ok = expect_ok_or_error([&] {
    SafetensorsFile f(path);
    FUZZ_CHECK(f.tensors().size() == h.entries.size(), "SafetensorsFile lists %zu tensors, the header %zu",
               f.tensors().size(), h.entries.size());
    first = describe(f.tensors());
    metadata = f.metadata();
  }, &error);
  FUZZ_CHECK(file_ok, "parse_safetensors_header accepted the bytes but SafetensorsFile refused them: %s", error.c_str());
  FUZZ_CHECK(metadata == h.metadata, "metadata differs between header parse and file");

  // Write what was read and read it back: the writer must produce a file the reader accepts, with the same content.
  const std::string out = (dir.path() / "out.safetensors").string();
  const bool written = expect_ok_or_error([&] {
    SafetensorsWriter w(out);
    for (const auto& [name, t] : first) {
      const auto& [dtype, shape, bytes] = t;
      w.add(name, dtype, shape, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
    }
    for (const auto& [k, v] : metadata) w.set_metadata(k, v);
    w.finish();
  }, &error);
  FUZZ_CHECK(written, "SafetensorsWriter refused tensors SafetensorsFile had accepted: %s", error.c_str());
  bool reread_ok = expect_ok_or_error([&] {
    SafetensorsFile f(out);
    FUZZ_CHECK(describe(f.tensors()) == first, "write -> read round trip changed the tensors");
    FUZZ_CHECK(f.metadata() == metadata, "write -> read round trip changed the metadata");
  }, &error);
  FUZZ_CHECK(reread_ok, "SafetensorsFile refused a file SafetensorsWriter wrote: %s", error.c_str());
  std::error_code ec;
  std::filesystem::remove(out, ec);
  return 0;
}
