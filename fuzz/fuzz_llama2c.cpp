// Fuzzes the llama2.c checkpoint loader (load_llama2c_model, looks_like_llama2c)
// through a per-process temp file. The temp folder also holds tok8.bin, an
// 8-piece llama2.c tokenizer, so a checkpoint whose header says vocab_size 8
// exercises the tokenizer lookup beside the model too.
// Seeds: fuzz/corpus/llama2c/ and ../shared's stories260K.bin.
#include <cstring>

#include "fuzz_common.h"
#include "io/llama2c.h"
#include "model/model.h"

using namespace lowbit;
using namespace lowbit_fuzz;

namespace {

// int32 max_token_length, then per piece: f32 score, int32 length, bytes.
std::string tok8_bin() {
  std::string s;
  auto i32 = [&](int32_t v) { s.append(reinterpret_cast<const char*>(&v), 4); };
  auto f32 = [&](float v) { s.append(reinterpret_cast<const char*>(&v), 4); };
  i32(7);
  const char* pieces[] = {"<unk>", "\n<s>\n", "\n</s>\n", " ", "a", "b", " a", "ab"};
  float score = 0;
  for (const char* p : pieces) {
    f32(score -= 1);
    i32(int32_t(std::strlen(p)));
    s += p;
  }
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  quiet_logs();
  static TempDir dir("llama2c");
  static const bool tokenizer_written = (dir.write("tok8.bin", tok8_bin()), true);
  (void)tokenizer_written;
  const std::string path = dir.write("model.bin", data, size);

  const bool looks = looks_like_llama2c(path);  // never throws
  Model m;
  std::string error;
  const bool loaded = expect_ok_or_error([&] { load_llama2c_model(path, m); }, &error);
  // looks_like_llama2c says the header is plausible and the size matches; the
  // loader may still refuse what ModelConfig::validate refuses, never the size.
  if (looks && !loaded)
    FUZZ_CHECK(error.find("field '") != std::string::npos, "looks_like_llama2c accepted a file the loader refused: %s",
               error.c_str());
  if (!loaded) return 0;
  FUZZ_CHECK(looks, "the loader accepted a file looks_like_llama2c refused");

  uint64_t total = 0;
  for (const auto& [name, t] : m.weights) {
    FUZZ_CHECK(t.data != nullptr, "weight '%s' has no data", name.c_str());
    touch_view(t);
    total += t.nbytes;
  }
  FUZZ_CHECK(total + 28 <= size, "weights take %llu bytes of a %zu-byte file", (unsigned long long)total, size);
  (void)m.n_params();
  if (m.tokenizer) {
    encode_checked(*m.tokenizer, "ab a b ba", true);
    std::vector<int32_t> all(static_cast<size_t>(m.tokenizer->n_vocab()));
    for (size_t i = 0; i < all.size(); ++i) all[i] = int32_t(i);
    (void)m.tokenizer->decode(all);
  }
  return 0;
}
