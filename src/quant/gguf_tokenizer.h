// The tokenizer.* metadata of a GGUF file lowbit writes, laid out as
// llama.cpp's own converter lays it out, so llama.cpp tokenizes the file as
// the source tokenizer does:
//
//  - byte-level BPE (HF tokenizer.json, GPT-2 vocab.json + merges.txt):
//    tokenizer.ggml.model = "gpt2", tokenizer.ggml.pre = llama.cpp's name of
//    the pre-tokenizer regex ("gpt-2", "llama-bpe", "qwen2"), tokens,
//    token_type, merges ("a b");
//  - SentencePiece-style (tokenizer.model, llama2.c tok*.bin):
//    tokenizer.ggml.model = "llama", tokens, scores, token_type, add_space_prefix;
//  - both: special-token ids, add_bos_token / add_eos_token and the chat
//    template, from tokenizer_config.json / config.json where the folder has them.
//
// Token list rules (llama.cpp's converter): the list has exactly the model's
// vocab size; ids no tokenizer entry names become "[PAD{id}]" of type unused;
// an added token is control when it is special or looks special ("<|...|>"),
// user-defined otherwise.
//
// A GGUF input's tokenizer.* keys are copied unchanged.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "io/gguf_writer.h"
#include "io/tokenizer_bpe.h"
#include "io/tokenizer_spm.h"
#include "model/model.h"

namespace lowbit {

// What a Hugging Face folder says about special tokens besides the vocab itself.
struct HfTokenizerExtras {
  int32_t bos_id = -1, eos_id = -1, unk_id = -1, sep_id = -1, pad_id = -1, mask_id = -1;  // -1 = not given
  std::optional<bool> add_bos, add_eos;  // tokenizer_config.json add_bos_token / add_eos_token
  std::string chat_template;             // "" = none
};

// Reads `dir`/tokenizer_config.json (special token names resolved to ids by
// `id_of`, -1 when unknown; add_*_token; chat_template, else chat_template.jinja)
// and, for ids it leaves unset, `config_dir`/config.json's {bos,eos,...}_token_id.
// Missing files are fine; malformed JSON throws lowbit::Error naming the file.
HfTokenizerExtras read_hf_tokenizer_extras(const std::string& dir, const std::string& config_dir, int n_vocab,
                                           const std::function<int32_t(const std::string&)>& id_of);

// llama.cpp's tokenizer.ggml.pre name for lowbit's pre-tokenizer regex, after a digit split
// ("smollm" for GPT-2's regex after single digits). A digit split llama.cpp has no name for
// gives the regex's name: gguf_digit_split of the result then differs from `digits`.
const char* gguf_pre_tokenizer_name(PreTokenizer pre, DigitSplit digits = DigitSplit::None);

// The GGUF token type llama.cpp's converter gives an added token.
int32_t added_token_type(const std::string& text, bool special);

// Writes a byte-level BPE vocab padded to `n_vocab` tokens. `where` names the
// source in errors and warnings.
void write_bpe_tokenizer(GgufWriter& w, const BpeVocab& v, int n_vocab, const HfTokenizerExtras& x,
                         const std::string& where);
// Writes a SentencePiece-style vocab padded to `n_vocab` tokens.
void write_spm_tokenizer(GgufWriter& w, const SpmVocab& v, int n_vocab, const HfTokenizerExtras& x,
                         const std::string& where);

// The whole step for export: copies a GGUF input's tokenizer.* keys (unless
// `vocab_path` is given), else reads `vocab_path` or the tokenizer file that
// came with the model (tokenizer.model, tokenizer.json, vocab.json + merges.txt,
// tok{N}.bin / tokenizer.bin) and writes it. With none, warns that llama.cpp
// will not load the file. Throws lowbit::Error for a vocab that does not fit the model.
void write_gguf_tokenizer(GgufWriter& w, const Model& m, const std::string& vocab_path);

}  // namespace lowbit
