// Importance matrices ("imatrix"): per input column of every linear layer, the
// mean over calibration tokens of x^2, as llama.cpp's `llama-imatrix` computes
// them, in its legacy `imatrix.dat` file, for the importance-weighted
// quantizers (FormatTraits::quantize_row_ref's `importance` argument).
//
// File format (all integers int32 little-endian, values f32):
//   n_entries
//   n_entries x { name_len, name[name_len] (no NUL), ncall, nval, values[nval] }
//   last_call, dataset_len, dataset[dataset_len]      (the trailer; absent in old files)
// A stored value is sum_x2 / n_tokens * ncall (the sum of x^2 over all tokens,
// divided by the tokens seen and multiplied back by the number of calls), so
// value / ncall = mean x^2 per token; that quotient is what llama-quantize
// passes to the quantizers and what importance() returns. last_call is the
// largest ncall (= chunks when every chunk is one call) and dataset the text
// file's name as given on the command line.
//
// Collection protocol (compute_imatrix), as llama-imatrix runs it:
//  - the text is tokenized once, BOS first when the tokenizer adds one; it
//    must have at least 2 * n_ctx tokens; chunks = tokens / n_ctx (at most
//    max_chunks); each chunk's first token is replaced by BOS (when the
//    tokenizer adds one) and the KV cache starts empty;
//  - a chunk is run in batches of min(2048, n_ctx) tokens, each split into
//    micro-batches of 512; every micro-batch is one "call" of each linear;
//  - a call with fewer than 16 tokens is ignored; only weights named "blk.*"
//    are collected, plus the output head with process_output (llama.cpp only
//    recognizes "output.weight"; lowbit also collects the head when it is the
//    tied "token_embd.weight", whose entry llama-quantize then uses for the
//    embedding tensor);
//  - sums are accumulated in f32, token by token, like llama.cpp's collector.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "model/forward.h"
#include "model/model.h"

namespace lowbit {

struct ImatrixEntry {
  std::string name;           // canonical GGUF weight name, e.g. "blk.0.attn_q.weight"
  int32_t ncall = 0;          // calls (micro-batches) accumulated
  std::vector<float> values;  // [n_in] sum_x2 / n_tokens * ncall, as stored in the file
};

struct ImatrixData {
  std::vector<ImatrixEntry> entries;  // file order
  bool has_trailer = true;            // false: an old file without last_call / dataset
  int32_t last_call = 0;              // largest ncall ("chunks_count" in llama-quantize's metadata)
  std::string dataset;                // calibration text's file name

  const ImatrixEntry* find(const std::string& name) const;
  // Per-column importance [n_in] for `name` (values / ncall: mean x^2 per
  // token; the raw values when ncall is 0), or empty when there is no entry.
  std::vector<float> importance(const std::string& name) const;
};

// Parses imatrix.dat bytes. Every count and length is checked against the
// bytes left; names must be non-empty, NUL-free and unique; values finite and
// >= 0. Throws lowbit::Error naming `where` (the file) and the entry.
ImatrixData parse_imatrix(std::span<const uint8_t> bytes, const std::string& where);
ImatrixData read_imatrix(const std::string& path);
// The exact bytes llama-imatrix writes for `d` (the trailer when has_trailer).
std::vector<uint8_t> serialize_imatrix(const ImatrixData& d);
// Writes to PATH.tmp, then renames; throws lowbit::Error on failure.
void write_imatrix(const ImatrixData& d, const std::string& path);

// Accumulates sum x^2 per input column of each observed weight.
class ImatrixCollector {
 public:
  explicit ImatrixCollector(bool process_output = false) : process_output_(process_output) {}

  // Whether calls for `weight` are collected (blk.*; the head with process_output).
  bool wants(const std::string& weight) const;
  // X [n_tok, n_in] row-major: the input of `weight`'s product. Ignored when
  // !wants(weight) or n_tok < 16. Throws lowbit::Error when n_in changes for a
  // weight or a sum stops being finite.
  void observe(const std::string& weight, const float* X, int n_tok, int64_t n_in);
  // An observer for Runner::set_matmul_observer calling observe() (this must outlive it).
  MatmulObserver observer();

  // Entries in first-observed order, values as the file stores them.
  ImatrixData result(const std::string& dataset) const;
  int32_t last_call() const { return last_call_; }
  size_t n_entries() const { return order_.size(); }

 private:
  struct Stat {
    std::vector<float> sum_x2;  // [n_in]
    int64_t n_tokens = 0;       // rows accumulated (the same for every column)
    int32_t ncall = 0;
  };
  bool process_output_;
  std::map<std::string, Stat> stats_;
  std::vector<std::string> order_;
  int32_t last_call_ = 0;
};

struct ImatrixOptions {
  int n_ctx = 512;
  int max_chunks = -1;          // < 0: every complete chunk
  bool process_output = false;  // also collect the output head
  bool compute_ppl = true;      // score the second half of each chunk, like llama-imatrix
  int n_threads = 0;
  std::string dataset;          // recorded in the file (the text's path as given)
};

struct ImatrixResult {
  ImatrixData data;
  int64_t n_text_tokens = 0;  // tokens of the whole text (incl. BOS)
  int n_chunks = 0;
  int64_t n_tokens = 0;       // tokens run through the model (n_chunks * n_ctx)
  double ppl = 0;             // 0 when !compute_ppl
  double seconds = 0;
};

// Runs `text` through `model` as described at the top and returns the
// collected matrix. `on_chunk(i, n)` is called after each chunk.
ImatrixResult compute_imatrix(const Model& model, const std::string& text, const ImatrixOptions& opts,
                              const std::function<void(int, int)>& on_chunk = {});
ImatrixResult compute_imatrix_tokens(const Model& model, const std::vector<int32_t>& tokens,
                                     const ImatrixOptions& opts, const std::function<void(int, int)>& on_chunk = {});

}  // namespace lowbit
