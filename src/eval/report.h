// The report of a `lowbit compare` sweep (eval/compare.h): one row per
// candidate, written three ways into the output folder:
//
//   report.md    setup block, then a markdown table sorted by bits per weight:
//                candidate, bpw, size, PPL ± err, ΔPPL %, KLD ± err, top-1 %,
//                quantize s, tg t/s, note; footnotes define every column.
//   report.json  {"setup": {...}, "rows": [{...}, ...]} with the same values
//                (full precision; the md rounds them), rows in the same order.
//   pareto.svg   bits per weight (x, linear) against one measure (y, log10
//                scale), chosen with PlotY: mean KLD (default) or ΔPPL %. One
//                labelled point per candidate, and the Pareto front: the rows
//                no other row beats in both (a row is dominated when another
//                has bpw <= and measure <= with one strictly smaller), drawn as
//                a polyline in bpw order. Rows whose measure is not positive
//                (the base itself: KLD 0, ΔPPL 0; a candidate that happened to
//                lower the PPL) cannot sit on a log axis: they are left out of
//                the plot and named in its caption, but still count when
//                deciding who is dominated (a candidate with ΔPPL -0.1 % at
//                8.5 bpw dominates one with +0.01 % at 16 bpw).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace lowbit {

// What every row was measured with; two sweeps reuse each other's rows only
// when this is equal (CompareRow files carry a copy).
struct CompareSetup {
  std::string model;          // as given
  std::string text;           // path as given
  std::string text_sha256;
  int64_t text_tokens = 0;    // tokens of the whole text (BOS included)
  int n_ctx = 0;
  int chunks = -1;            // as asked (-1: all)
  std::string protocol;       // "llama.cpp" | "gptq"
  int top_k = 0;              // logits per position kept in base.lbkld
  std::string calib;          // "" when no candidate needs calibration
  int nsamples = 0, seqlen = 0;
  int tg = 0;                 // generated tokens per tg test (0: not measured)
  int threads = 0;            // not part of the reuse key (recorded only)
  std::string version;        // lowbit version
  std::string cpu;            // recorded only
  // The fields a reused row must match (everything but threads, cpu, the text's path and token count).
  nlohmann::json key() const;
};

struct CompareRow {
  std::string name;           // candidate as written ("base" for the model itself)
  std::string kind;           // "base" | "gguf" | "method"
  std::string detail;         // recipe type, or the integer-group spec
  double bpw = 0;             // bits per weight (see compare.h for the method formula)
  uint64_t bytes = 0;         // weight bytes
  double ppl = 0, ppl_err = 0;
  double dppl_pct = 0;        // (PPL / PPL(base) - 1) * 100
  double kld = 0, kld_err = 0;
  double top1_pct = 0, top1_err_pct = 0;
  double quantize_s = -1;     // < 0: n/a
  double tg_tps = -1;         // < 0: n/a
  std::string note;
  bool reused = false;        // read back from a previous run (not serialised into the row file)
};

nlohmann::json row_to_json(const CompareRow& r);
// Throws lowbit::Error naming `where` when a field is missing or of the wrong type.
CompareRow row_from_json(const nlohmann::json& j, const std::string& where);
nlohmann::json setup_to_json(const CompareSetup& s);

// The markdown table cells of a row, in column order (shared by report.md and the tests).
std::vector<std::string> report_cells(const CompareRow& r);

// The y axis of pareto.svg (and the measure its Pareto front is computed on).
enum class PlotY { Kld, DPpl };
// "kld" | "dppl"; anything else throws lowbit::Error naming `where`.
PlotY parse_plot_y(const std::string& s, const std::string& where = "--y");
const char* plot_y_name(PlotY y);      // "kld" | "dppl"
double plot_measure(const CompareRow& r, PlotY y);  // r.kld | r.dppl_pct

// Names of the rows no other row dominates on (bpw, measure), in bpw order
// (rows with a non-finite bpw or measure take no part).
std::vector<std::string> pareto_front(const std::vector<CompareRow>& rows, PlotY y);

std::string report_markdown(const CompareSetup& s, const std::vector<CompareRow>& rows, PlotY y = PlotY::Kld);
// {"setup", "rows", "plot": {"file", "y", "front"}}.
nlohmann::json report_json(const CompareSetup& s, const std::vector<CompareRow>& rows, PlotY y = PlotY::Kld);
// The SVG carries class attributes for tools and tests: "title", "subtitle",
// "legend", "xtick" / "ytick" (tick labels; y ticks hold the plotted value,
// not its log), "grid", "axis-title", "marker" (one circle per plotted row,
// data-name = row name), "label" (its name), "front" (the polyline), "caption".
std::string pareto_svg(const CompareSetup& s, const std::vector<CompareRow>& rows, PlotY y = PlotY::Kld);

// Writes DIR/report.md, DIR/report.json and DIR/pareto.svg (each via a .tmp
// file and rename). `rows` are sorted by bits per weight first.
void write_compare_report(const std::string& dir, const CompareSetup& s, std::vector<CompareRow> rows,
                          PlotY y = PlotY::Kld);

// Writes `bytes` to `path` through PATH.tmp + rename; throws lowbit::Error on failure.
void write_file_atomic(const std::string& path, const std::string& bytes);

}  // namespace lowbit
