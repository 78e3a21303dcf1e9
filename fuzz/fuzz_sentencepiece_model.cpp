// Fuzzes lowbit's own protobuf reader of SentencePiece `tokenizer.model` files
// (parse_sentencepiece_model, in memory) and, for BPE models lowbit can
// reproduce (spm_bpe_incompatibility == ""), the tokenizer built from the
// pieces. libsentencepiece itself is not fuzzed here.
// Seeds: fuzz/corpus/sentencepiece_model/ and ../shared's Llama-2 tokenizer.model.
#include "fuzz_common.h"
#include "io/tokenizer_spm.h"

using namespace lowbit;
using namespace lowbit_fuzz;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  quiet_logs();
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  SpmVocab v;
  SentencePieceModelInfo info;
  if (!expect_ok_or_error([&] { v = parse_sentencepiece_model(bytes, "fuzz.model", &info); })) return 0;
  const int32_t n = int32_t(v.pieces.size());
  FUZZ_CHECK(n > 0 && v.scores.size() == v.pieces.size() && v.types.size() == v.pieces.size(),
             "%d pieces, %zu scores, %zu types", n, v.scores.size(), v.types.size());
  for (int32_t id : {v.unk_id, v.bos_id, v.eos_id}) FUZZ_CHECK(id >= -1 && id < n, "special id %d (vocab %d)", id, n);
  for (int32_t t : v.types) FUZZ_CHECK(t >= kTokNormal && t <= kTokByte, "piece type %d", t);
  for (int32_t i = 0; i < n; ++i) (void)spm_piece_text(v.pieces[size_t(i)], v.types[size_t(i)], i == 0);

  if (!spm_bpe_incompatibility(info).empty()) return 0;
  expect_ok_or_error([&] {
    auto tok = make_spm_tokenizer(std::move(v));
    encode_checked(*tok, "Hello world, \xE2\x96\x81\xE2\x96\x81 once upon a time \xC3\xA9\xF0\x9F\x98\x80", true);
    encode_checked(*tok, std::string_view("\xFF\x00 <s> <unk> <0x41>", 20), false);
  });
  return 0;
}
