// Fuzzes the llama2.c tokenizer reader (read_llama2c_vocab) and the score-based
// BPE tokenizer built from what it returns (make_spm_tokenizer).
// Input: byte 0 = n_vocab - 1 (the file does not store the count), the rest is
// the tokenizer .bin, written to a per-process temp file.
// Seeds: fuzz/corpus/llama2c_vocab/ and the first 256 pieces of ../shared's tok512.bin.
#include "fuzz_common.h"
#include "io/tokenizer_spm.h"

using namespace lowbit;
using namespace lowbit_fuzz;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  quiet_logs();
  static TempDir dir("llama2c-vocab");
  if (size < 1) return 0;
  const int n_vocab = int(data[0]) + 1;
  const std::string path = dir.write("tokenizer.bin", data + 1, size - 1);

  SpmVocab v;
  if (!expect_ok_or_error([&] { v = read_llama2c_vocab(path, n_vocab); })) return 0;
  FUZZ_CHECK(int(v.pieces.size()) == n_vocab && v.scores.size() == v.pieces.size() &&
                 (v.types.empty() || v.types.size() == v.pieces.size()),
             "vocab of %d pieces came back with %zu pieces, %zu scores, %zu types", n_vocab, v.pieces.size(),
             v.scores.size(), v.types.size());

  expect_ok_or_error([&] {
    auto tok = make_spm_tokenizer(std::move(v));
    FUZZ_CHECK(tok->n_vocab() == n_vocab, "tokenizer has %d pieces, vocab %d", tok->n_vocab(), n_vocab);
    encode_checked(*tok, "Once upon a time, there was a little girl. \xE2\x96\x81 <0x41> \xF0\x9F\x98\x80", true);
    encode_checked(*tok, std::string_view("\x00\xFF\xC0\x80 a  b", 9), false);
    std::vector<int32_t> all(static_cast<size_t>(n_vocab));
    for (int i = 0; i < n_vocab; ++i) all[size_t(i)] = i;
    (void)tok->decode(all);
  });
  return 0;
}
