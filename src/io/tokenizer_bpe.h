// Byte-level BPE (GPT-2, Llama 3, Qwen2): text is split by a pre-tokenizer
// regex, each piece's bytes are mapped to printable code points (GPT-2's
// bytes_to_unicode), then merged by merge rank.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "io/tokenizer.h"

namespace lowbit {

enum class PreTokenizer { GPT2, Llama3, Qwen2 };

struct BpeVocab {
  std::vector<std::string> tokens;  // [n_vocab] byte-level strings as in vocab.json ("Ġthe")
  std::vector<std::string> merges;  // "Ġ t" lines, in rank order
  std::vector<int32_t> types;       // [n_vocab] TokenType (see tokenizer_spm.h); empty = all normal
  PreTokenizer pre = PreTokenizer::GPT2;
  int32_t bos_id = -1;
  int32_t eos_id = -1;
  bool add_bos = false;             // GPT-2: no; Llama 3: yes
};

std::unique_ptr<Tokenizer> make_bpe_tokenizer(BpeVocab vocab);

// HF tokenizer.json with "model": {"type": "BPE"} and a ByteLevel pre-tokenizer;
// added_tokens become special tokens matched before pre-tokenization.
BpeVocab read_hf_tokenizer_json(const std::string& path);
// GPT-2's original vocab.json + merges.txt pair.
BpeVocab read_gpt2_vocab(const std::string& vocab_json, const std::string& merges_txt);

}  // namespace lowbit
