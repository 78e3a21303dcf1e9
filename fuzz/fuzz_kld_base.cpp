// Fuzzes the saved-base reader of `lowbit kld` (read_kld_base) through a
// per-process temp file. A file that loads must hold consistent arrays, and
// writing it back must give exactly the input bytes (the format has one encoding).
// Seeds: fuzz/corpus/kld_base/.
#include "eval/kld.h"
#include "fuzz_common.h"

using namespace lowbit;
using namespace lowbit_fuzz;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  quiet_logs();
  static TempDir dir("kld_base");
  const std::string path = dir.write("in.lbkld", data, size);
  KldBase b;
  if (!expect_ok_or_error([&] { b = read_kld_base(path); })) return 0;
  const size_t n = size_t(b.n_positions()), k = size_t(b.k);
  FUZZ_CHECK(b.target_logit.size() == n && b.lse.size() == n && b.p_rest.size() == n, "per-position arrays differ");
  FUZZ_CHECK(b.top_id.size() == n * k && b.top_logit.size() == n * k, "top-k arrays are not [n, k]");
  for (uint32_t t : b.target) FUZZ_CHECK(t < b.n_vocab, "target %u outside the vocabulary %u", t, b.n_vocab);
  const std::string again = (dir.path() / "again.lbkld").string();
  expect_ok_or_error([&] { write_kld_base(again, b); });
  std::ifstream f(again, std::ios::binary);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), {});
  FUZZ_CHECK(bytes.size() == size && std::equal(bytes.begin(), bytes.end(), data), "write(read(x)) != x (%zu vs %zu bytes)",
             bytes.size(), size);
  return 0;
}
