// `lowbit compare`: quantize one model with every candidate of a list,
// evaluate each against the base model, and write a report (eval/report.h).
//
// Candidate syntax (comma-separated list, names are case-sensitive as below):
//   base                 the model itself (always measured; listing it is a no-op)
//   TYPE                 a GGUF recipe (quant/recipe.h), written to DIR/cand/<name>.gguf
//                        and loaded back: a llama.cpp mix (Q4_K_M, Q3_K_S, Q8_0, ...;
//                        lower case accepted: q4_K_M) or one format of the traits table
//                        in ggml's spelling (q8_0, q4_0, q6_K, iq4_nl, f16, ...: every
//                        quantizable matrix in that format). A name that is both a
//                        format and a mix (q8_0 / Q8_0, q6_K / Q6_K) is the pure format
//                        in ggml's lower-case spelling and the mix in upper case.
//   <method>[<bits>][g<group>|row][a<axis>][sym][dq]
//                        a method of the registry (methods/quantizer.h, `lowbit
//                        quantize --list`) run in memory on a fresh copy of the model
//                        (quant/method_quantize.h quantize_with_registry): the method's
//                        default config with the bits, group (a column count, -1 or
//                        "row": one group per row), the axis groups run along (a0, a1:
//                        HQQ), "sym" (symmetric groups) and "dq"
//                        (double quantization) the name gives. rtn4g64, gptq3g-1 (=
//                        gptq3row), awq4g128sym, hqq3g64, hqq2g64a0, kmeans4row, nf4, nf4dq,
//                        llm.int8, w8a8, w4a8row. Methods that need calibration (gptq,
//                        awq) need calibration text (CompareOptions::calib).
// Names must be unique and made of [A-Za-z0-9_.-] (they name files).
//
// Bits per weight of a method candidate: the bytes every weight holds in the
// quantized model (a QLinear layer: its packed state; any other tensor:
// embeddings, norms, the head, linears the method could not take, as stored);
// bpw = 8 * total bytes / total weights.
//
// Per candidate: quantize (timed, wall), evaluate with kld_from_saved against
// the base's top-k logits (DIR/base.lbkld, computed at most once per run), measure tgN
// tokens/s of the model as evaluated (method candidates run their QLinear layers),
// then write the row to DIR/cand/<name>.json with the setup it was measured
// with. A rerun reuses every row whose file holds the same setup key
// (CompareSetup::key: model path, text sha256, ctx, chunks, protocol, top-k,
// lowbit version, tg; plus calib, nsamples, seqlen for gptq / awq candidates)
// and the same candidate; the report marks it "reused".
// A row file that does not parse is an error naming it.
//
// Base logits across runs: DIR/base.json records the setup base.lbkld was
// computed with (CompareSetup::key() without the candidate-only fields calib,
// nsamples, seqlen, tg), its token count and its size in bytes. When some
// candidate must be computed, base.lbkld is reused if base.json holds the same
// key and the file reads back consistent with it ("reusing base logits" in the
// log); otherwise (no base.json, another setup, a damaged file) the log says
// why and the base is recomputed. base.json is removed before base.lbkld is
// rewritten, so an interrupted run never leaves a key describing other logits.
//
// Progress: one bar ("compare") over the whole sweep, advanced per evaluated
// window: each step (the base logits when they are computed, each candidate
// left to compute) is an equal share, a candidate's quantization the first
// 30 % of its share; the ETA covers what is left.
#pragma once
#include <string>
#include <vector>

#include "eval/report.h"
#include "methods/quant_config.h"

namespace lowbit {

struct Candidate {
  enum class Kind { Base, Gguf, Method };
  std::string name;    // as written
  Kind kind = Kind::Gguf;
  std::string type;    // Gguf: recipe type passed to make_plan ("Q4_K_M", "q8_0")
  std::string method;  // Method: a registry name (methods/quantizer.h)
  QuantConfig cfg;     // Method: the method's defaults with the name's bits / group / sym / dq
  bool needs_calib() const;
  std::string detail() const;  // "Q4_K_M mix", "q8_0 pure", "rtn int4 g64 asym"
};

// Throws lowbit::Error naming the candidate, with the syntax as hint.
Candidate parse_candidate(const std::string& s);
// Splits on commas; throws on an empty list, an empty item or a duplicate name.
std::vector<Candidate> parse_candidates(const std::string& list);

struct CompareOptions {
  std::string model;       // MODEL path
  std::string tokenizer;   // "" = the model's
  std::string text;        // evaluation text file
  std::string out_dir;     // DIR (created)
  int n_ctx = 512;
  int chunks = -1;         // < 0: all windows
  std::string protocol = "llama.cpp";
  int top_k = 32;
  int threads = 0;         // <= 0: all cores
  std::string calib;       // required when a candidate needs calibration
  int nsamples = 128, seqlen = 512;
  int tg = 32;             // tokens per tg test; 0: skip speed
  PlotY y = PlotY::Kld;    // the measure pareto.svg plots (not part of any reuse key)
};

struct CompareResult {
  CompareSetup setup;
  std::vector<CompareRow> rows;  // base first, then candidates in list order
  int n_reused = 0;
};

// Runs the sweep and writes DIR/report.{md,json}, DIR/pareto.svg. Throws
// lowbit::Error before any work for a gptq/awq candidate without calibration text.
CompareResult run_compare(const std::vector<Candidate>& candidates, const CompareOptions& opts);

}  // namespace lowbit
