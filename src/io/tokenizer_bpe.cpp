// Byte-level BPE (GPT-2, Llama 3, Qwen2) and its readers (HF tokenizer.json,
// GPT-2 vocab.json + merges.txt).
//
// encode(text):
//   1. split out special / added tokens (control and user-defined types),
//      leftmost match, longest first, as HF's added vocabulary does;
//   2. pre-tokenize each remaining segment with the model's regex;
//   3. map each pre-token's bytes to GPT-2's printable code points, one symbol
//      per byte, then repeatedly merge the adjacent pair with the lowest merge
//      rank (leftmost on ties) until no pair has a merge.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <queue>
#include <sstream>
#include <unordered_map>

#include "core/log.h"
#include "io/tokenizer_bpe.h"
#include "io/tokenizer_spm.h"  // TokenType
#include "lowbit/error.h"

namespace lowbit {
namespace {

using nlohmann::json;

struct StrHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using TokenMap = std::unordered_map<std::string, int32_t, StrHash, std::equal_to<>>;

uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

// Decodes one UTF-8 code point at s[i] (lenient: a stray byte is returned as itself).
uint32_t next_cp(std::string_view s, size_t& i) {
  unsigned char c = s[i];
  size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
  if (i + n > s.size()) n = 1;
  uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
  for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  i += n;
  return cp;
}

class BpeTokenizer final : public Tokenizer {
 public:
  explicit BpeTokenizer(BpeVocab v) : v_(std::move(v)) {
    const int32_t n = int32_t(v_.tokens.size());
    if (n == 0) fail("BPE vocab", "no tokens");
    if (!v_.types.empty() && v_.types.size() != v_.tokens.size())
      fail("BPE vocab", "types has " + std::to_string(v_.types.size()) + " entries for " + std::to_string(n) + " tokens");
    if (v_.types.empty()) v_.types.assign(size_t(n), kTokNormal);
    if (v_.bos_id >= n || v_.eos_id >= n) fail("BPE vocab", "bos/eos id outside the vocab");
    if (v_.add_bos && v_.bos_id < 0) fail("BPE vocab", "add_bos is set but there is no BOS token");

    for (int32_t i = 0; i < n; ++i) {
      if (v_.tokens[size_t(i)].empty()) continue;
      token_to_id_.emplace(v_.tokens[size_t(i)], i);  // first wins on duplicates
      int32_t t = v_.types[size_t(i)];
      if (t == kTokControl || t == kTokUserDefined) specials_.push_back({v_.tokens[size_t(i)], i});
    }
    // Longest first, so "<|a|>x" wins over its prefix "<|a|>" at the same position.
    std::stable_sort(specials_.begin(), specials_.end(),
                     [](const Special& a, const Special& b) { return a.text.size() > b.text.size(); });
    for (const Special& s : specials_) special_first_[static_cast<unsigned char>(s.text[0])] = true;

    for (int b = 0; b < 256; ++b) {
      auto it = token_to_id_.find(byte_to_unicode(uint8_t(b)));
      if (it == token_to_id_.end())
        fail("BPE vocab", "no token for byte " + std::to_string(b) + " ('" + byte_to_unicode(uint8_t(b)) + "')",
             "byte-level BPE needs all 256 byte tokens");
      byte_ids_[size_t(b)] = it->second;
    }
    for (size_t r = 0; r < v_.merges.size(); ++r) {
      const std::string& m = v_.merges[r];
      size_t sp = m.find(' ');
      if (sp == std::string::npos || m.find(' ', sp + 1) != std::string::npos)
        fail("BPE merges", "merge " + std::to_string(r) + " '" + m + "' is not two tokens separated by one space");
      auto a = token_to_id_.find(std::string_view(m).substr(0, sp));
      auto b = token_to_id_.find(std::string_view(m).substr(sp + 1));
      auto ab = token_to_id_.find(m.substr(0, sp) + m.substr(sp + 1));
      if (a == token_to_id_.end() || b == token_to_id_.end() || ab == token_to_id_.end())
        fail("BPE merges", "merge " + std::to_string(r) + " '" + m + "' uses or makes a token missing from the vocab");
      merges_.emplace(pair_key(a->second, b->second), Merge{int32_t(r), ab->second});  // first rank wins
    }
  }

  std::vector<int32_t> encode(std::string_view text, bool add_bos) const override {
    std::vector<int32_t> out;
    out.reserve(text.size() / 3 + 2);
    if (add_bos && v_.add_bos) out.push_back(v_.bos_id);
    PieceCache cache;
    size_t seg_begin = 0;
    for (size_t p = 0; p < text.size(); ++p) {
      if (!special_first_[static_cast<unsigned char>(text[p])]) continue;
      for (const Special& s : specials_) {
        if (text.compare(p, s.text.size(), s.text) != 0) continue;
        encode_segment(text.substr(seg_begin, p - seg_begin), out, cache);
        out.push_back(s.id);
        p += s.text.size();
        seg_begin = p;
        --p;  // the loop's ++p
        break;
      }
    }
    encode_segment(text.substr(seg_begin), out, cache);
    return out;
  }

  std::string decode_token(int32_t id, int32_t prev) const override {
    if (id < 0 || id >= n_vocab()) fail("decode", "token id " + std::to_string(id) + " outside the vocab of " + std::to_string(n_vocab()));
    const std::string& t = v_.tokens[size_t(id)];
    int32_t type = v_.types[size_t(id)];
    if (type == kTokControl || type == kTokUnused) return "";
    if (type == kTokUserDefined) return t;  // added tokens hold raw text
    std::string out;
    out.reserve(t.size());
    for (size_t i = 0; i < t.size();) {
      size_t start = i;
      int b = unicode_to_byte(next_cp(t, i));
      if (b >= 0) out += char(b);
      else out.append(t, start, i - start);  // not a byte-level character: keep it as is
    }
    return out;
  }

  int32_t n_vocab() const override { return int32_t(v_.tokens.size()); }
  int32_t bos_id() const override { return v_.bos_id; }
  int32_t eos_id() const override { return v_.eos_id; }
  bool adds_bos() const override { return v_.add_bos; }
  std::string kind() const override { return "byte-bpe"; }

 private:
  struct Merge {
    int32_t rank;
    int32_t id;  // the merged token
  };
  struct Special {
    std::string text;
    int32_t id;
  };

  // Pre-tokens seen earlier in one encode() call -> their ids in `out`
  // (first, count): text repeats words, and a pre-token's ids depend only on it.
  using PieceCache = std::unordered_map<std::string, std::pair<size_t, size_t>, StrHash, std::equal_to<>>;

  void encode_segment(std::string_view seg, std::vector<int32_t>& out, PieceCache& cache) const {
    if (seg.empty()) return;
    std::string prefixed;
    if (v_.add_prefix_space && seg[0] != ' ') {
      prefixed.reserve(seg.size() + 1);
      prefixed.push_back(' ');
      prefixed.append(seg);
      seg = prefixed;
    }
    for (std::string_view piece : pretokenize(v_.pre, seg, v_.digits)) {
      if (auto it = cache.find(piece); it != cache.end()) {
        for (size_t k = 0; k < it->second.second; ++k) {
          int32_t id = out[it->second.first + k];
          out.push_back(id);
        }
        continue;
      }
      size_t first = out.size();
      encode_piece(piece, out);
      cache.emplace(piece, std::make_pair(first, out.size() - first));
    }
  }

  // BPE over one pre-token: a doubly linked list of symbols and a min-heap of
  // candidate merges, so a long pre-token costs O(n log n), not O(n^2).
  void encode_piece(std::string_view piece, std::vector<int32_t>& out) const {
    if (piece.size() == 1) {
      out.push_back(byte_ids_[static_cast<unsigned char>(piece[0])]);
      return;
    }
    if (v_.ignore_merges) {
      std::string mapped;
      for (unsigned char c : piece) mapped += byte_to_unicode(c);
      if (auto it = token_to_id_.find(mapped); it != token_to_id_.end()) {
        out.push_back(it->second);
        return;
      }
    }
    struct Sym {
      int32_t id;  // -1 once merged into its left neighbour
      int prev, next;
    };
    struct Cand {
      int32_t rank, merged;
      int left;
      int32_t left_id, right_id;  // the pair as it was when queued
      bool operator<(const Cand& o) const {  // priority_queue pops the "largest": lowest rank, then leftmost
        return rank != o.rank ? rank > o.rank : left > o.left;
      }
    };
    const int n = int(piece.size());
    std::vector<Sym> sym(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i)
      sym[size_t(i)] = {byte_ids_[static_cast<unsigned char>(piece[size_t(i)])], i - 1, i + 1 < n ? i + 1 : -1};
    std::priority_queue<Cand> heap;
    auto push_pair = [&](int left) {
      if (left < 0) return;
      int right = sym[size_t(left)].next;
      if (right < 0) return;
      auto it = merges_.find(pair_key(sym[size_t(left)].id, sym[size_t(right)].id));
      if (it != merges_.end())
        heap.push({it->second.rank, it->second.id, left, sym[size_t(left)].id, sym[size_t(right)].id});
    };
    for (int i = 0; i + 1 < n; ++i) push_pair(i);
    while (!heap.empty()) {
      Cand c = heap.top();
      heap.pop();
      Sym& l = sym[size_t(c.left)];
      // Stale entry: a symbol only ever grows, so unchanged ids mean an unchanged pair.
      if (l.id != c.left_id || l.next < 0 || sym[size_t(l.next)].id != c.right_id) continue;
      Sym& r = sym[size_t(l.next)];
      l.id = c.merged;
      l.next = r.next;
      if (r.next >= 0) sym[size_t(r.next)].prev = c.left;
      r.id = -1;
      push_pair(l.prev);
      push_pair(c.left);
    }
    for (int i = 0; i >= 0; i = sym[size_t(i)].next) out.push_back(sym[size_t(i)].id);
  }

  BpeVocab v_;
  TokenMap token_to_id_;
  std::unordered_map<uint64_t, Merge> merges_;  // (left id, right id) -> rank, merged id
  std::array<int32_t, 256> byte_ids_{};         // token of each byte's printable character
  std::vector<Special> specials_;               // longest first
  std::array<bool, 256> special_first_{};       // first bytes of specials (fast skip)
};

// ---------------------------------------------------------------- file readers

json load_json(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(path, "cannot open", "check the path");
  std::stringstream ss;
  ss << f.rdbuf();
  try {
    return json::parse(ss.str());
  } catch (const json::exception& e) {
    fail(path, std::string("invalid JSON: ") + e.what());
  }
}

// Known spellings of the three pre-tokenizer regexes (HF's, and llama.cpp's
// case-expanded variants of the contractions).
std::optional<PreTokenizer> match_pattern(const std::string& re) {
  if (re == pretokenizer_pattern(PreTokenizer::GPT2)) return PreTokenizer::GPT2;
  if (re == R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))") return PreTokenizer::GPT2;
  if (re == pretokenizer_pattern(PreTokenizer::Llama3)) return PreTokenizer::Llama3;
  if (re == pretokenizer_pattern(PreTokenizer::Qwen2)) return PreTokenizer::Qwen2;
  const std::string cased = R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD]))";
  const std::string tail3 = R"(|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  const std::string tail1 = R"(|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  if (re == cased + tail3) return PreTokenizer::Llama3;
  if (re == cased + tail1) return PreTokenizer::Qwen2;
  return std::nullopt;
}

// pre_tokenizer: ByteLevel (GPT-2 regex when use_regex), or a Sequence of one
// Split (a known regex, Isolated) and a ByteLevel without regex; either may
// follow a Digits step (SmolLM: Digits individual_digits, ByteLevel use_regex).
void parse_pre_tokenizer(const json& pt, const std::string& path, BpeVocab& v) {
  const std::string hint = "lowbit reads byte-level BPE tokenizers (GPT-2, Llama 3, Qwen2); for SentencePiece models pass tokenizer.model";
  if (!pt.is_object()) fail(path + ": pre_tokenizer", "missing or null: not a byte-level BPE tokenizer", hint);
  std::vector<std::pair<const json*, std::string>> steps;  // (pre-tokenizer, field name)
  std::string type = pt.value("type", "");
  if (type == "Sequence") {
    if (!pt.contains("pretokenizers") || !pt["pretokenizers"].is_array())
      fail(path + ": pre_tokenizer.pretokenizers", "missing or not an array");
    const json& list = pt["pretokenizers"];  // a reference into `pt`: `steps` keeps pointers
    for (size_t i = 0; i < list.size(); ++i)
      steps.push_back({&list[i], "pre_tokenizer.pretokenizers[" + std::to_string(i) + "]"});
  } else {
    steps.push_back({&pt, "pre_tokenizer"});
  }
  bool byte_level = false, have_regex = false;
  for (auto& [step, field] : steps) {
    std::string t = step->value("type", "");
    if (t == "ByteLevel") {
      byte_level = true;
      v.add_prefix_space = step->value("add_prefix_space", true);  // HF's default is true
      if (step->value("use_regex", true)) {
        if (have_regex) fail(path + ": " + field, "a second regex split (use_regex) after a Split", hint);
        v.pre = PreTokenizer::GPT2;
        have_regex = true;
      }
    } else if (t == "Digits") {
      // HF splits every digit off (individual_digits) or every run of digits, before the steps after it.
      if (v.digits != DigitSplit::None) fail(path + ": " + field, "more than one Digits step", hint);
      if (have_regex || byte_level)
        fail(path + ": " + field, "a Digits step after the regex split is not supported", "lowbit runs Digits first, as SmolLM does");
      v.digits = step->value("individual_digits", false) ? DigitSplit::Individual : DigitSplit::Runs;
    } else if (t == "Split") {
      const json& pat = step->value("pattern", json::object());
      if (!pat.contains("Regex") || !pat["Regex"].is_string())
        fail(path + ": " + field + ".pattern", "only a Regex pattern is supported", hint);
      auto pre = match_pattern(pat["Regex"].get<std::string>());
      if (!pre) fail(path + ": " + field + ".pattern.Regex", "unknown regex '" + pat["Regex"].get<std::string>() + "'",
                     "known: the GPT-2, Llama 3 and Qwen2 patterns");
      if (step->value("behavior", "Isolated") != "Isolated" || step->value("invert", false))
        fail(path + ": " + field, "only behavior Isolated without invert is supported", hint);
      if (have_regex) fail(path + ": " + field, "more than one regex split", hint);
      v.pre = *pre;
      have_regex = true;
    } else {
      fail(path + ": " + field + ".type", "pre-tokenizer '" + t + "' is not supported", hint);
    }
  }
  if (!byte_level) fail(path + ": pre_tokenizer", "no ByteLevel step: not a byte-level BPE tokenizer", hint);
  if (!have_regex) fail(path + ": pre_tokenizer", "no regex split (ByteLevel use_regex is false and no Split)", hint);
  // HF's ByteLevel prefixes every piece an earlier step made, not only the text's start.
  if (v.digits != DigitSplit::None && v.add_prefix_space)
    fail(path + ": pre_tokenizer", "a Digits step with ByteLevel add_prefix_space true is not supported", hint);
}

int32_t id_of(const BpeVocab& v, const std::string& text) {
  for (size_t i = 0; i < v.tokens.size(); ++i)
    if (v.tokens[i] == text) return int32_t(i);
  return -1;
}

// post_processor: TemplateProcessing whose single template starts with a
// special token -> that token is BOS and is added. ByteLevel does nothing here.
void parse_post_processor(const json& pp, const std::string& field, const std::string& path, BpeVocab& v) {
  if (pp.is_null()) return;
  std::string t = pp.value("type", "");
  if (t == "Sequence") {
    const json& list = pp.value("processors", json::array());
    for (size_t i = 0; i < list.size(); ++i) parse_post_processor(list[i], field + ".processors[" + std::to_string(i) + "]", path, v);
  } else if (t == "TemplateProcessing") {
    const json& single = pp.value("single", json::array());
    for (size_t i = 0; i < single.size(); ++i) {
      if (!single[i].contains("SpecialToken")) continue;
      std::string content = single[i]["SpecialToken"].value("id", "");
      int32_t id = id_of(v, content);
      if (id < 0) fail(path + ": " + field + ".single[" + std::to_string(i) + "]", "special token '" + content + "' is not in the vocab");
      if (i == 0) {
        v.bos_id = id;
        v.add_bos = true;
      } else {
        log_warn(path + ": " + field + " appends '" + content + "' after the text; lowbit does not add it");
      }
    }
  } else if (t != "ByteLevel") {
    fail(path + ": " + field + ".type", "post-processor '" + t + "' is not supported", "expected TemplateProcessing or ByteLevel");
  }
}

// bos_token / eos_token of tokenizer_config.json: a string or {"content": ...}.
std::string config_token(const json& cfg, const char* key) {
  if (!cfg.contains(key)) return "";
  const json& t = cfg[key];
  if (t.is_string()) return t.get<std::string>();
  if (t.is_object() && t.contains("content") && t["content"].is_string()) return t["content"].get<std::string>();
  return "";
}

}  // namespace

std::unique_ptr<Tokenizer> make_bpe_tokenizer(BpeVocab vocab) { return std::make_unique<BpeTokenizer>(std::move(vocab)); }

BpeVocab read_hf_tokenizer_json(const std::string& path) {
  json j = load_json(path);
  BpeVocab v;
  try {
    if (!j.is_object() || !j.contains("model") || !j["model"].is_object()) fail(path + ": model", "missing");
    const json& model = j["model"];
    std::string type = model.value("type", "BPE");  // old files omit it
    if (type != "BPE")
      fail(path + ": model.type", "'" + type + "' is not supported, only BPE",
           type == "Unigram" ? "pass the SentencePiece tokenizer.model instead" : "");
    if (!model.contains("vocab") || !model["vocab"].is_object()) fail(path + ": model.vocab", "missing or not an object");

    // Ids come from model.vocab and added_tokens; holes stay empty "unused" tokens.
    std::vector<std::pair<std::string, int64_t>> entries;
    for (auto& [tok, id] : model["vocab"].items()) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= (1 << 24))
        fail(path + ": model.vocab[\"" + tok + "\"]", "id is not an integer in [0, 2^24)");
      entries.push_back({tok, id.get<int64_t>()});
    }
    const json& added = j.value("added_tokens", json::array());
    std::vector<std::pair<size_t, bool>> added_special;  // (entry index, special)
    for (size_t i = 0; i < added.size(); ++i) {
      const json& a = added[i];
      if (!a.contains("id") || !a["id"].is_number_integer() || !a.contains("content") || !a["content"].is_string() ||
          a["id"].get<int64_t>() < 0 || a["id"].get<int64_t>() >= (1 << 24))
        fail(path + ": added_tokens[" + std::to_string(i) + "]", "needs an integer id in [0, 2^24) and a string content");
      added_special.push_back({entries.size(), a.value("special", false)});
      entries.push_back({a["content"].get<std::string>(), a["id"].get<int64_t>()});
    }
    int64_t n = 0;
    for (auto& e : entries) n = std::max(n, e.second + 1);
    v.tokens.assign(size_t(n), "");
    v.types.assign(size_t(n), kTokUnused);
    for (auto& [tok, id] : entries) {
      v.tokens[size_t(id)] = tok;
      v.types[size_t(id)] = kTokNormal;
    }
    for (auto& [idx, special] : added_special) v.types[size_t(entries[idx].second)] = special ? kTokControl : kTokUserDefined;

    const json& merges = model.value("merges", json::array());
    for (size_t i = 0; i < merges.size(); ++i) {
      const json& m = merges[i];
      if (m.is_string()) {
        v.merges.push_back(m.get<std::string>());
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        std::string a = m[0].get<std::string>(), b = m[1].get<std::string>();
        if (a.find(' ') != std::string::npos || b.find(' ') != std::string::npos)
          fail(path + ": model.merges[" + std::to_string(i) + "]", "a token contains a space", "not a byte-level vocab");
        v.merges.push_back(a + " " + b);
      } else {
        fail(path + ": model.merges[" + std::to_string(i) + "]", "neither \"a b\" nor [\"a\", \"b\"]");
      }
    }
    v.ignore_merges = model.value("ignore_merges", false);

    const json& norm = j.value("normalizer", json());
    if (!norm.is_null()) {
      std::string nt = norm.value("type", "");
      if (nt == "NFC")
        log_warn(path + ": normalizer NFC is not applied (text already in NFC, as most text is, tokenizes the same)");
      else
        fail(path + ": normalizer.type", "normalizer '" + nt + "' is not supported",
             "a Prepend/Replace normalizer means a SentencePiece-style vocab: pass tokenizer.model");
    }
    parse_pre_tokenizer(j.value("pre_tokenizer", json()), path, v);
    parse_post_processor(j.value("post_processor", json()), "post_processor", path, v);

    // EOS (and BOS when no template adds it): tokenizer_config.json beside, else known names.
    auto cfg_path = std::filesystem::path(path).parent_path() / "tokenizer_config.json";
    std::string bos_name, eos_name;
    if (std::filesystem::exists(cfg_path)) {
      json cfg = load_json(cfg_path.string());
      bos_name = config_token(cfg, "bos_token");
      eos_name = config_token(cfg, "eos_token");
    }
    if (v.bos_id < 0 && !bos_name.empty()) v.bos_id = id_of(v, bos_name);
    if (!eos_name.empty()) v.eos_id = id_of(v, eos_name);
    for (const char* name : {"<|end_of_text|>", "<|endoftext|>", "</s>"})
      if (v.eos_id < 0) v.eos_id = id_of(v, name);
  } catch (const json::exception& e) {
    fail(path, std::string("unexpected JSON structure: ") + e.what());
  }
  return v;
}

BpeVocab read_gpt2_vocab(const std::string& vocab_json, const std::string& merges_txt) {
  json j = load_json(vocab_json);
  if (!j.is_object()) fail(vocab_json, "not a JSON object of token -> id");
  BpeVocab v;
  for (auto& [tok, id] : j.items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= (1 << 24))
      fail(vocab_json + ": \"" + tok + "\"", "id is not an integer in [0, 2^24)");
    size_t i = size_t(id.get<int64_t>());
    if (i >= v.tokens.size()) v.tokens.resize(i + 1);
    v.tokens[i] = tok;
  }
  v.types.assign(v.tokens.size(), kTokNormal);
  for (size_t i = 0; i < v.tokens.size(); ++i)
    if (v.tokens[i].empty()) v.types[i] = kTokUnused;

  std::ifstream f(merges_txt, std::ios::binary);
  if (!f) fail(merges_txt, "cannot open", "GPT-2's vocab.json needs merges.txt beside it");
  std::string line;
  for (int n = 1; std::getline(f, line); ++n) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (n == 1 && line.rfind("#version", 0) == 0)) continue;
    v.merges.push_back(line);
  }
  v.pre = PreTokenizer::GPT2;
  // GPT-2's one special token is both BOS and EOS; it is not added to the text.
  int32_t eot = id_of(v, "<|endoftext|>");
  if (eot >= 0) {
    v.types[size_t(eot)] = kTokControl;
    v.bos_id = v.eos_id = eot;
  }
  return v;
}

}  // namespace lowbit
