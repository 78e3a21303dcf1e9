// Tokenizer -> GGUF tokenizer.* metadata (see gguf_tokenizer.h for the layout).
#include "quant/gguf_tokenizer.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>

#include "core/log.h"
#include "io/gguf.h"
#include "lowbit/error.h"

namespace lowbit {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr float kAddedTokenScore = -1000.0f;  // llama.cpp's converter: added and padding tokens

std::string read_text(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) fail(p.string(), "cannot open", "check the file's permissions");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// The file's JSON object, or null when the file is absent.
json read_json_if_present(const fs::path& p) {
  std::error_code ec;
  if (!fs::is_regular_file(p, ec)) return json();
  try {
    json j = json::parse(read_text(p));
    if (!j.is_object()) fail(p.string(), "is not a JSON object", "the file is corrupt");
    return j;
  } catch (const json::exception& e) {
    fail(p.string(), std::string("invalid JSON: ") + e.what(), "the file is corrupt");
  }
}

// bos_token etc. of tokenizer_config.json: a string or {"content": "..."}; "" otherwise.
std::string token_content(const json& cfg, const std::string& key) {
  auto it = cfg.find(key);
  if (it == cfg.end()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) return (*it)["content"].get<std::string>();
  return "";
}

void write_chat_template(GgufWriter& w, const HfTokenizerExtras& x) {
  if (!x.chat_template.empty()) w.set("tokenizer.chat_template", x.chat_template);
}

void write_special_ids(GgufWriter& w, const HfTokenizerExtras& x, int32_t bos, int32_t eos, int32_t unk) {
  if (bos >= 0) w.set("tokenizer.ggml.bos_token_id", uint32_t(bos));
  if (eos >= 0) w.set("tokenizer.ggml.eos_token_id", uint32_t(eos));
  if (unk >= 0) w.set("tokenizer.ggml.unknown_token_id", uint32_t(unk));
  if (x.sep_id >= 0) w.set("tokenizer.ggml.seperator_token_id", uint32_t(x.sep_id));  // sic: llama.cpp's key
  if (x.pad_id >= 0) w.set("tokenizer.ggml.padding_token_id", uint32_t(x.pad_id));
  if (x.mask_id >= 0) w.set("tokenizer.ggml.mask_token_id", uint32_t(x.mask_id));
}

std::string pad_token(int i) { return fmt::format("[PAD{}]", i); }

// tokens that fit the model: at most n_vocab, padded with "[PAD{i}]" (unused).
void check_fits(size_t n_tokens, int n_vocab, const std::string& where) {
  if (n_vocab > 0 && n_tokens > size_t(n_vocab))
    fail(where, fmt::format("the tokenizer has {} tokens but the model's vocab is {}", n_tokens, n_vocab),
         "pass the vocab that belongs to this model with --vocab");
}

// A file the model came with: what its loader found, else a known name beside it.
std::string find_vocab(const Model& m) {
  if (auto it = m.metadata.find("tokenizer.path"); it != m.metadata.end() && !it->second.empty()) return it->second;
  std::error_code ec;
  const fs::path p(m.path);
  const fs::path dir = fs::is_directory(p, ec) ? p : p.parent_path();
  for (const std::string& name : {fmt::format("tok{}.bin", m.config.n_vocab), std::string("tokenizer.bin"),
                                  std::string("tokenizer.model"), std::string("tokenizer.json")})
    if (fs::is_regular_file(dir / name, ec)) return (dir / name).string();
  if (fs::is_regular_file(dir / "vocab.json", ec) && fs::is_regular_file(dir / "merges.txt", ec))
    return (dir / "vocab.json").string();
  return "";
}

const GgufFile* gguf_source(const Model& m) {
  for (const auto& s : m.sources)
    if (auto* g = dynamic_cast<const GgufFile*>(s.get())) return g;
  return nullptr;
}

// HF added tokens of a SentencePiece folder (tokenizer_config.json added_tokens_decoder,
// added_tokens.json) placed into `v` as llama.cpp's converter does.
void add_spm_added_tokens(SpmVocab& v, const fs::path& dir, int n_vocab) {
  auto put = [&](int64_t id, const std::string& text, int32_t type, const std::string& where) {
    if (id < 0 || (n_vocab > 0 && id >= n_vocab)) {
      log_warn(fmt::format("{}: added token {} '{}' is outside the model's vocab of {}; ignored", where, id, text, n_vocab));
      return;
    }
    if (size_t(id) >= v.pieces.size()) {
      for (size_t i = v.pieces.size(); i <= size_t(id); ++i) {
        v.pieces.push_back(pad_token(int(i)));
        v.scores.push_back(kAddedTokenScore);
        v.types.push_back(kTokUnused);
      }
    }
    std::string t;
    for (size_t k = 0; k < text.size(); ++k) {  // user-defined pieces hold spaces, not "▁"
      if (type == kTokUserDefined && text.compare(k, 3, "\xE2\x96\x81") == 0) t += ' ', k += 2;
      else t += text[k];
    }
    v.pieces[size_t(id)] = t;
    v.scores[size_t(id)] = kAddedTokenScore;
    v.types[size_t(id)] = type;
  };
  json added = read_json_if_present(dir / "added_tokens.json");
  if (added.is_object())
    for (auto& [text, id] : added.items())
      if (id.is_number_integer()) put(id.get<int64_t>(), text, kTokUserDefined, (dir / "added_tokens.json").string());
  json cfg = read_json_if_present(dir / "tokenizer_config.json");
  if (cfg.is_object() && cfg.contains("added_tokens_decoder") && cfg["added_tokens_decoder"].is_object()) {
    for (auto& [key, tok] : cfg["added_tokens_decoder"].items()) {
      const std::string where = (dir / "tokenizer_config.json").string() + ": added_tokens_decoder[\"" + key + "\"]";
      if (!tok.is_object() || !tok.contains("content") || !tok["content"].is_string())
        fail(where, "has no string 'content'", "the file is corrupt");
      int64_t id = -1;
      try {
        id = std::stoll(key);
      } catch (const std::exception&) {
        fail(where, "the key is not a token id", "the file is corrupt");
      }
      const std::string text = tok["content"].get<std::string>();
      put(id, text, added_token_type(text, tok.value("special", false)), where);
    }
  }
}

}  // namespace

const char* gguf_pre_tokenizer_name(PreTokenizer pre, DigitSplit digits) {
  if (pre == PreTokenizer::GPT2 && digits == DigitSplit::Individual) return "smollm";
  switch (pre) {
    case PreTokenizer::GPT2: return "gpt-2";
    case PreTokenizer::Llama3: return "llama-bpe";
    case PreTokenizer::Qwen2: return "qwen2";
  }
  return "default";
}

int32_t added_token_type(const std::string& t, bool special) {
  auto wrapped = [&](std::string_view open, std::string_view close) {
    return t.size() >= open.size() + close.size() && t.starts_with(open) && t.ends_with(close);
  };
  const bool looks_special = t == "<pad>" || t == "<mask>" || t == "<2mass>" || t == "[@BOS@]" ||
                             wrapped("<|", "|>") || wrapped("<\xEF\xBD\x9C", "\xEF\xBD\x9C>") ||  // <｜...｜>
                             wrapped("<unused", ">");
  return special || looks_special ? kTokControl : kTokUserDefined;
}

HfTokenizerExtras read_hf_tokenizer_extras(const std::string& dir, const std::string& config_dir, int n_vocab,
                                           const std::function<int32_t(const std::string&)>& id_of) {
  HfTokenizerExtras x;
  struct Slot {
    const char* name;
    int32_t* id;
  };
  const Slot slots[] = {{"bos", &x.bos_id}, {"eos", &x.eos_id}, {"unk", &x.unk_id},
                        {"sep", &x.sep_id}, {"pad", &x.pad_id}, {"mask", &x.mask_id}};
  const fs::path cfg_path = fs::path(dir) / "tokenizer_config.json";
  if (json cfg = read_json_if_present(cfg_path); cfg.is_object()) {
    for (const Slot& s : slots) {
      const std::string content = token_content(cfg, std::string(s.name) + "_token");
      if (!content.empty()) *s.id = id_of(content);
    }
    if (auto it = cfg.find("add_bos_token"); it != cfg.end() && it->is_boolean()) x.add_bos = it->get<bool>();
    if (auto it = cfg.find("add_eos_token"); it != cfg.end() && it->is_boolean()) x.add_eos = it->get<bool>();
    if (auto it = cfg.find("chat_template"); it != cfg.end()) {
      if (it->is_string()) {
        x.chat_template = it->get<std::string>();
      } else if (it->is_array()) {  // [{"name": ..., "template": ...}]: the "default" one
        for (const json& t : *it)
          if (t.is_object() && t.value("name", "") == "default" && t.contains("template") && t["template"].is_string())
            x.chat_template = t["template"].get<std::string>();
        if (x.chat_template.empty())
          log_warn(cfg_path.string() + ": chat_template is a list without a 'default' entry; no template written");
      } else if (!it->is_null()) {
        log_warn(cfg_path.string() + ": chat_template is neither a string nor a list; ignored");
      }
    }
  }
  if (x.chat_template.empty()) {
    std::error_code ec;
    if (fs::path jinja = fs::path(dir) / "chat_template.jinja"; fs::is_regular_file(jinja, ec))
      x.chat_template = read_text(jinja);
  }
  if (json cfg = read_json_if_present(fs::path(config_dir) / "config.json"); cfg.is_object()) {
    for (const Slot& s : slots) {
      auto it = cfg.find(std::string(s.name) + "_token_id");
      if (*s.id >= 0 || it == cfg.end() || !it->is_number_integer()) continue;  // a list (several EOS) is skipped
      int64_t id = it->get<int64_t>();
      if (id >= 0 && (n_vocab <= 0 || id < n_vocab)) *s.id = int32_t(id);
    }
  }
  return x;
}

void write_bpe_tokenizer(GgufWriter& w, const BpeVocab& v, int n_vocab, const HfTokenizerExtras& x,
                         const std::string& where) {
  check_fits(v.tokens.size(), n_vocab, where);
  if (!v.types.empty() && v.types.size() != v.tokens.size())
    fail(where, fmt::format("{} token types for {} tokens", v.types.size(), v.tokens.size()), "the vocab is corrupt");
  const size_t n = std::max(v.tokens.size(), size_t(std::max(n_vocab, 0)));
  std::vector<std::string> tokens(n);
  std::vector<int32_t> types(n, kTokUnused);
  for (size_t i = 0; i < n; ++i) {
    const bool present = i < v.tokens.size() && !v.tokens[i].empty() &&
                         (v.types.empty() || v.types[i] != kTokUnused);
    if (!present) {
      tokens[i] = pad_token(int(i));
      continue;
    }
    tokens[i] = v.tokens[i];
    const int32_t t = v.types.empty() ? kTokNormal : v.types[i];
    // lowbit marks special added tokens control and the others user-defined; llama.cpp's
    // converter also makes control an added token that merely looks special ("<|x|>").
    types[i] = t == kTokUserDefined ? added_token_type(tokens[i], false) : t;
  }
  if (v.add_prefix_space)
    log_warn(where + ": the ByteLevel pre-tokenizer adds a prefix space; llama.cpp's gpt2 vocab has no such "
                     "option, so llama.cpp will tokenize the start of a text differently");
  const char* pre_name = gguf_pre_tokenizer_name(v.pre, v.digits);
  if (gguf_digit_split(pre_name) != v.digits)
    log_warn(fmt::format("{}: llama.cpp has no pre-tokenizer that splits {} before the '{}' regex; '{}' is written, "
                         "so llama.cpp will tokenize numbers differently",
                         where, v.digits == DigitSplit::Runs ? "runs of digits" : "single digits", pre_name, pre_name));
  const bool llama_ignores_merges = gguf_ignores_merges(pre_name);  // llama.cpp sets ignore_merges for llama-bpe only
  if (v.ignore_merges != llama_ignores_merges)
    log_warn(fmt::format("{}: ignore_merges is {} but llama.cpp's '{}' pre-tokenizer {} it; a word in the vocab "
                         "that merges do not build may tokenize differently in llama.cpp",
                         where, v.ignore_merges, pre_name, llama_ignores_merges ? "sets" : "does not set"));

  const int32_t bos = x.bos_id >= 0 ? x.bos_id : v.bos_id;
  const int32_t eos = x.eos_id >= 0 ? x.eos_id : v.eos_id;
  // What the source tokenizer does (its post-processor adds BOS), unless tokenizer_config.json says otherwise.
  const bool add_bos = x.add_bos.value_or(v.add_bos);
  if (add_bos && bos < 0) fail(where, "the tokenizer adds BOS but names no BOS token", "check tokenizer_config.json");

  w.set("tokenizer.ggml.model", "gpt2");
  w.set("tokenizer.ggml.pre", pre_name);
  w.set("tokenizer.ggml.tokens", GgufArray::of(std::move(tokens)));
  w.set("tokenizer.ggml.token_type", GgufArray::of(types));
  w.set("tokenizer.ggml.merges", GgufArray::of(v.merges));
  write_special_ids(w, x, bos, eos, x.unk_id);
  w.set("tokenizer.ggml.add_bos_token", add_bos);
  if (x.add_eos) w.set("tokenizer.ggml.add_eos_token", *x.add_eos);
  write_chat_template(w, x);
}

void write_spm_tokenizer(GgufWriter& w, const SpmVocab& v, int n_vocab, const HfTokenizerExtras& x,
                         const std::string& where) {
  check_fits(v.pieces.size(), n_vocab, where);
  if (v.scores.size() != v.pieces.size())
    fail(where, fmt::format("{} scores for {} pieces", v.scores.size(), v.pieces.size()), "the vocab file is corrupt");
  std::vector<std::string> pieces = v.pieces;
  std::vector<float> scores = v.scores;
  std::vector<int32_t> types = v.types;
  if (types.empty()) types.assign(pieces.size(), kTokNormal);
  if (types.size() != pieces.size())
    fail(where, fmt::format("{} token types for {} pieces", types.size(), pieces.size()), "the vocab file is corrupt");
  for (size_t i = pieces.size(); n_vocab > 0 && i < size_t(n_vocab); ++i) {
    pieces.push_back(pad_token(int(i)));
    scores.push_back(kAddedTokenScore);
    types.push_back(kTokUnused);
  }
  w.set("tokenizer.ggml.model", "llama");
  w.set("tokenizer.ggml.pre", "default");
  w.set("tokenizer.ggml.tokens", GgufArray::of(std::move(pieces)));
  w.set("tokenizer.ggml.scores", GgufArray::of(scores));
  w.set("tokenizer.ggml.token_type", GgufArray::of(types));
  write_special_ids(w, x, x.bos_id >= 0 ? x.bos_id : v.bos_id, x.eos_id >= 0 ? x.eos_id : v.eos_id,
                    x.unk_id >= 0 ? x.unk_id : v.unk_id);
  if (x.add_bos) w.set("tokenizer.ggml.add_bos_token", *x.add_bos);
  if (x.add_eos) w.set("tokenizer.ggml.add_eos_token", *x.add_eos);
  w.set("tokenizer.ggml.add_space_prefix", v.add_space_prefix);
  write_chat_template(w, x);
}

namespace {

void write_vocab_file(GgufWriter& w, const Model& m, const std::string& path) {
  std::error_code ec;
  const fs::path p(path);
  const std::string dir = p.parent_path().string();
  const std::string config_dir = fs::is_directory(m.path, ec) ? m.path : dir;
  const int n_vocab = m.config.n_vocab;
  const std::string name = p.filename().string();

  if (p.extension() == ".json") {
    BpeVocab v = name.ends_with("vocab.json") ? read_gpt2_vocab(path, (p.parent_path() / "merges.txt").string())
                                              : read_hf_tokenizer_json(path);
    std::unordered_map<std::string, int32_t> ids;
    for (size_t i = 0; i < v.tokens.size(); ++i)
      if (!v.tokens[i].empty()) ids.emplace(v.tokens[i], int32_t(i));
    auto id_of = [&](const std::string& t) {
      auto it = ids.find(t);
      return it == ids.end() ? int32_t(-1) : it->second;
    };
    write_bpe_tokenizer(w, v, n_vocab, read_hf_tokenizer_extras(dir, config_dir, n_vocab, id_of), path);
    return;
  }
  SpmVocab v;
  HfTokenizerExtras x;
  if (p.extension() == ".model") {
    SentencePieceModelInfo info;
    v = read_sentencepiece_vocab(path, &info);
    if (std::string why = spm_bpe_incompatibility(info); !why.empty())
      log_warn(fmt::format("{}: {}; llama.cpp's 'llama' vocab (score-based BPE) may tokenize it differently", path, why));
    add_spm_added_tokens(v, p.parent_path(), n_vocab);
    std::unordered_map<std::string, int32_t> ids;
    for (size_t i = 0; i < v.pieces.size(); ++i) ids.emplace(v.pieces[i], int32_t(i));
    x = read_hf_tokenizer_extras(dir, config_dir, n_vocab, [&](const std::string& t) {
      auto it = ids.find(t);
      return it == ids.end() ? int32_t(-1) : it->second;
    });
  } else {
    v = read_llama2c_vocab(path, n_vocab);
  }
  if (int(v.pieces.size()) != n_vocab && p.extension() != ".model")
    fail(path, fmt::format("vocab has {} tokens, the model {}", v.pieces.size(), n_vocab),
         "pass the vocab that belongs to this model with --vocab");
  write_spm_tokenizer(w, v, n_vocab, x, path);
}

}  // namespace

void write_gguf_tokenizer(GgufWriter& w, const Model& m, const std::string& vocab_path) {
  if (const GgufFile* g = gguf_source(m); g && vocab_path.empty()) {
    for (const auto& kv : g->kvs())
      if (kv.key.starts_with("tokenizer.")) w.set(kv.key, kv.value);
    return;
  }
  if (!vocab_path.empty()) return write_vocab_file(w, m, vocab_path);  // errors are the user's to see
  const std::string path = find_vocab(m);
  const char* no_tokenizer = "the GGUF has no tokenizer and llama.cpp will not load it. Pass --vocab FILE";
  if (path.empty()) {
    log_warn(m.path + ": no vocab found (tokenizer.json, tokenizer.model, vocab.json + merges.txt, tok{N}.bin, "
                      "tokenizer.bin); " + no_tokenizer);
    return;
  }
  // A tokenizer file lowbit cannot read (an unsupported pre-tokenizer, say) does not stop quantization.
  // (Every check throws before the first key is set, so a failure leaves no partial vocab.)
  try {
    write_vocab_file(w, m, path);
  } catch (const Error& e) {
    log_warn(fmt::format("tokenizer not embedded: {}; {}", e.what(), no_tokenizer));
  }
}

}  // namespace lowbit
