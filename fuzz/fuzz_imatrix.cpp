// Fuzzes the imatrix.dat reader (parse_imatrix) in memory, and read_imatrix
// through a per-process temp file. A file that parses must serialize back to
// exactly the input bytes (the format has one encoding), and importance()
// must give each entry's length.
// Seeds: fuzz/corpus/imatrix/.
#include "eval/imatrix.h"
#include "fuzz_common.h"

using namespace lowbit;
using namespace lowbit_fuzz;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  quiet_logs();
  static TempDir dir("imatrix");
  ImatrixData d;
  const bool ok = expect_ok_or_error([&] { d = parse_imatrix(std::span<const uint8_t>(data, size), "fuzz.dat"); });
  const std::string path = dir.write("in.dat", data, size);
  ImatrixData f;
  const bool ok_file = expect_ok_or_error([&] { f = read_imatrix(path); });
  FUZZ_CHECK(ok == ok_file, "parse_imatrix and read_imatrix disagree (%d vs %d)", int(ok), int(ok_file));
  if (!ok) return 0;
  FUZZ_CHECK(!d.entries.empty(), "a parsed file has no entries");
  std::vector<uint8_t> again;
  expect_ok_or_error([&] { again = serialize_imatrix(d); });
  FUZZ_CHECK(again.size() == size && std::equal(again.begin(), again.end(), data),
             "serialize(parse(x)) != x (%zu vs %zu bytes)", again.size(), size);
  for (const auto& e : d.entries) {
    std::vector<float> imp = d.importance(e.name);
    FUZZ_CHECK(imp.size() == e.values.size(), "importance('%s') has %zu values, the entry %zu", e.name.c_str(),
               imp.size(), e.values.size());
    for (float v : imp) FUZZ_CHECK(v >= 0 && v == v, "importance('%s') has a negative or NaN value", e.name.c_str());
  }
  return 0;
}
