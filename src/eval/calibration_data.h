// Calibration samples for data-aware methods (GPTQ, AWQ): token windows drawn
// reproducibly from a text, as the GPTQ reference code (datautils.py) draws them.
//
//  - plain text: the whole file is tokenized once (no BOS) and each sample is
//    a window of seqlen tokens at a uniformly random start (GPTQ's wikitext2
//    protocol);
//  - JSON lines with a "text" field (.jsonl, e.g. a C4 sample): for each
//    sample, random documents are drawn until one has more than seqlen tokens,
//    and a random window of it is taken (GPTQ's c4 protocol).
// Randomness: std::mt19937_64 seeded with `seed`; the same file, tokenizer,
// nsamples, seqlen and seed give the same samples on any machine.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "io/tokenizer.h"

namespace lowbit {

struct CalibrationOptions {
  std::string path;   // .txt or .jsonl
  int nsamples = 128;
  int seqlen = 512;
  uint64_t seed = 0;
};

struct CalibrationSet {
  std::vector<std::vector<int32_t>> samples;  // nsamples x [seqlen]
  int64_t n_tokens = 0;                       // nsamples * seqlen
  std::string text_sha256;                    // of the file
  std::string protocol;                       // "text windows" or "jsonl documents"
  std::string describe() const;               // one line for logs and metadata
};

// Throws lowbit::Error naming the file for a missing/empty file, a line that is
// not JSON with a string "text", or a text too short for one window.
CalibrationSet load_calibration(const Tokenizer& tok, const CalibrationOptions& opts);

}  // namespace lowbit
