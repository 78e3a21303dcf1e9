#include "eval/calibration_data.h"

#include <random>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/read_file.h"
#include "core/sha256.h"
#include "lowbit/error.h"

namespace lowbit {

std::string CalibrationSet::describe() const {
  return fmt::format("{} samples x {} tokens ({} tokens, {}, sha256 {})", samples.size(),
                     samples.empty() ? 0 : samples[0].size(), n_tokens, protocol, text_sha256.substr(0, 16));
}

namespace {

// Uniform integer in [0, n) from the generator (n > 0).
int64_t uniform(std::mt19937_64& rng, int64_t n) { return std::uniform_int_distribution<int64_t>(0, n - 1)(rng); }

std::vector<std::string> jsonl_texts(const std::string& path, const std::string& content) {
  std::vector<std::string> texts;
  std::istringstream in(content);
  std::string line;
  for (int64_t line_no = 1; std::getline(in, line); ++line_no) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("text") || !j["text"].is_string())
      fail(path, fmt::format("line {} is not a JSON object with a string \"text\"", line_no),
           "calibration files are plain text, or JSON lines like {\"text\": \"...\"}");
    texts.push_back(j["text"].get<std::string>());
  }
  return texts;
}

}  // namespace

CalibrationSet load_calibration(const Tokenizer& tok, const CalibrationOptions& o) {
  if (o.nsamples <= 0 || o.seqlen <= 1)
    fail(o.path, fmt::format("--nsamples {} / --seqlen {} must be positive (seqlen at least 2)", o.nsamples, o.seqlen));
  const std::string content = read_text_file(o.path);
  if (content.empty()) fail(o.path, "the calibration file is empty");
  CalibrationSet set;
  set.text_sha256 = sha256_hex(content);
  std::mt19937_64 rng(o.seed);
  const size_t L = size_t(o.seqlen);
  const bool jsonl = o.path.ends_with(".jsonl") || o.path.ends_with(".json");
  if (jsonl) {
    set.protocol = "jsonl documents";
    const std::vector<std::string> texts = jsonl_texts(o.path, content);
    if (texts.empty()) fail(o.path, "no documents");
    std::vector<int8_t> too_short(texts.size(), 0);  // documents known to have <= seqlen tokens
    size_t n_short = 0;
    for (int s = 0; s < o.nsamples; ++s) {
      std::vector<int32_t> ids;
      while (true) {
        if (n_short == texts.size())
          fail(o.path, fmt::format("no document has more than {} tokens", o.seqlen), "use a smaller --seqlen");
        const size_t d = size_t(uniform(rng, int64_t(texts.size())));
        if (too_short[d]) continue;
        ids = tok.encode(texts[d], false);
        if (ids.size() > L) break;
        too_short[d] = 1;
        ++n_short;
      }
      const size_t start = size_t(uniform(rng, int64_t(ids.size() - L)));
      set.samples.emplace_back(ids.begin() + int64_t(start), ids.begin() + int64_t(start + L));
    }
  } else {
    set.protocol = "text windows";
    const std::vector<int32_t> ids = tok.encode(content, false);
    if (ids.size() <= L)
      fail(o.path, fmt::format("the text has {} tokens, not enough for one window of {}", ids.size(), o.seqlen),
           "use a longer text or a smaller --seqlen");
    for (int s = 0; s < o.nsamples; ++s) {
      const size_t start = size_t(uniform(rng, int64_t(ids.size() - L)));
      set.samples.emplace_back(ids.begin() + int64_t(start), ids.begin() + int64_t(start + L));
    }
  }
  set.n_tokens = int64_t(o.nsamples) * o.seqlen;
  return set;
}

}  // namespace lowbit
