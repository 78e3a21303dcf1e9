// Tokenizer::decode and open_tokenizer: picks the reader by the file's name.
#include "io/tokenizer.h"

#include <filesystem>

#include "io/tokenizer_bpe.h"
#include "io/tokenizer_spm.h"
#include "lowbit/error.h"

namespace fs = std::filesystem;

namespace lowbit {

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) out += decode_token(ids[i], i == 0 ? -1 : ids[i - 1]);
  return out;
}

namespace {

constexpr const char* kKinds =
    "pass tokenizer.model (SentencePiece), tokenizer.json (HF byte-level BPE), vocab.json (with merges.txt "
    "beside it) or a llama2.c tokenizer .bin";

// Errors from building the tokenizer name the vocab, not the file: add it.
template <class F>
std::unique_ptr<Tokenizer> built_from(const std::string& path, F&& make) {
  try {
    return make();
  } catch (const Error& e) {
    fail(path, e.what());
  }
}

}  // namespace

std::unique_ptr<Tokenizer> open_tokenizer(const std::string& path, int n_vocab_hint) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    // A model folder: the SentencePiece model is the reference when both exist.
    for (const char* name : {"tokenizer.model", "tokenizer.json", "vocab.json"}) {
      fs::path p = fs::path(path) / name;
      if (fs::exists(p, ec)) return open_tokenizer(p.string(), n_vocab_hint);
    }
    fail(path, "no tokenizer.model, tokenizer.json or vocab.json in this folder", kKinds);
  }
  if (!fs::exists(path, ec)) fail(path, "no such file", kKinds);

  const fs::path p(path);
  const std::string name = p.filename().string();
  const std::string ext = p.extension().string();
  if (ext == ".model") return open_sentencepiece(path);
  if (ext == ".json") {
    if (name.size() >= 10 && name.compare(name.size() - 10, 10, "vocab.json") == 0) {
      const std::string merges = (p.parent_path() / "merges.txt").string();
      if (!fs::exists(merges, ec)) fail(path, "no merges.txt beside this vocab.json", "GPT-2 style vocabs come as vocab.json + merges.txt");
      BpeVocab v = read_gpt2_vocab(path, merges);
      return built_from(path, [&] { return make_bpe_tokenizer(std::move(v)); });
    }
    BpeVocab v = read_hf_tokenizer_json(path);
    return built_from(path, [&] { return make_bpe_tokenizer(std::move(v)); });
  }
  if (ext == ".bin") {
    if (n_vocab_hint <= 0)
      fail(path, "a llama2.c tokenizer does not store its vocab size",
           "open it together with its model (lowbit reads the size from the checkpoint) or give the vocab size");
    SpmVocab v = read_llama2c_vocab(path, n_vocab_hint);
    return built_from(path, [&] { return make_spm_tokenizer(std::move(v)); });
  }
  if (ext == ".gguf") fail(path, "a GGUF file's vocab is read with its model", "open the model, or " + std::string(kKinds));
  fail(path, "unknown tokenizer file kind '" + ext + "'", kKinds);
}

}  // namespace lowbit
