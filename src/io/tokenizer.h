// Text <-> token ids. Implementations: SentencePiece model (libsentencepiece),
// score-based BPE (llama2.c vocab, GGUF `llama` vocab), byte-level BPE
// (HF tokenizer.json, GPT-2 vocab.json + merges.txt, GGUF `gpt2` vocab).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace lowbit {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Token ids for `text`; BOS first when `add_bos` and the tokenizer has one.
  virtual std::vector<int32_t> encode(std::string_view text, bool add_bos) const = 0;
  // The bytes token `id` stands for (SentencePiece "▁" shown as a space, byte
  // tokens as their byte). `prev` is the token before it (-1 at the start), so
  // a leading space after BOS can be dropped as SentencePiece does.
  virtual std::string decode_token(int32_t id, int32_t prev) const = 0;
  virtual int32_t n_vocab() const = 0;
  virtual int32_t bos_id() const = 0;  // -1 when the tokenizer has none
  virtual int32_t eos_id() const = 0;
  virtual std::string kind() const = 0;  // "sentencepiece", "spm-bpe", "byte-bpe"
  // Whether encode(text, add_bos=true) puts BOS first (llama.cpp's add_bos_token):
  // SentencePiece-style vocabs do; GPT-2 has a BOS id (<|endoftext|>) but does not add it.
  virtual bool adds_bos() const { return bos_id() >= 0; }

  // Concatenated decode_token(ids[i], ids[i-1]) (prev = -1 for the first).
  std::string decode(const std::vector<int32_t>& ids) const;
};

// Opens a tokenizer file by its kind: SentencePiece `tokenizer.model`, HF
// `tokenizer.json`, GPT-2 `vocab.json` (with `merges.txt` beside it), or a
// llama2.c `tokenizer.bin` / `tokNNN.bin` (needs `n_vocab`, which the file does not store).
std::unique_ptr<Tokenizer> open_tokenizer(const std::string& path, int n_vocab_hint = 0);

}  // namespace lowbit
