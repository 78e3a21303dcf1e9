// Fuzzes the HF tokenizer.json reader (read_hf_tokenizer_json) and, when it
// parses, the byte-level BPE tokenizer built from it (make_bpe_tokenizer),
// which then encodes and decodes fixed texts. The input is written to a
// per-process temp folder as tokenizer.json (no tokenizer_config.json beside it).
// Seeds: fuzz/corpus/tokenizer_json/ (small synthetic vocabs with all 256 byte tokens).
#include "fuzz_common.h"
#include "io/tokenizer_bpe.h"
#include "io/tokenizer_spm.h"

using namespace lowbit;
using namespace lowbit_fuzz;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  quiet_logs();
  static TempDir dir("tokenizer-json");
  const std::string path = dir.write("tokenizer.json", data, size);

  BpeVocab v;
  if (!expect_ok_or_error([&] { v = read_hf_tokenizer_json(path); })) return 0;
  FUZZ_CHECK(v.types.empty() || v.types.size() == v.tokens.size(), "%zu types for %zu tokens", v.types.size(),
             v.tokens.size());
  const int32_t n = int32_t(v.tokens.size());
  FUZZ_CHECK(v.bos_id < n && v.eos_id < n, "bos %d / eos %d outside the vocab of %d", v.bos_id, v.eos_id, n);

  expect_ok_or_error([&] {
    auto tok = make_bpe_tokenizer(std::move(v));
    FUZZ_CHECK(tok->n_vocab() == n, "tokenizer has %d tokens, vocab %d", tok->n_vocab(), n);
    encode_checked(*tok, "Hello world! It's 2024: caf\xC3\xA9, na\xC3\xAFve, \xE4\xB8\xAD\xE6\x96\x87 <|endoftext|>\n\n  x",
                   true);
    encode_checked(*tok, std::string_view("\xFF\x00\xC3 'll 'S 12345 \r\n", 19), false);
    const int32_t shown = std::min<int32_t>(n, 4096);
    for (int32_t id = 0; id < shown; ++id) (void)tok->decode_token(id, id - 1);
  });
  return 0;
}
