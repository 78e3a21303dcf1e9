// lowbit compare (eval/compare.h, eval/report.h): the candidate syntax and its
// errors, a sweep on stories260K writing report.md / report.json / pareto.svg
// that agree with each other, resuming an interrupted sweep (only the missing
// candidate recomputed, the others reused unchanged), the base's saved logits
// reused by a later run with the same setup (and recomputed, with the reason
// logged, when the setup differs or the files are damaged), one progress bar
// over the sweep, the --y kld|dppl plot option, and the CLI end to end.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "core/read_file.h"
#include "core/log.h"
#include "eval/compare.h"
#include "lowbit/error.h"
#include "paths.h"

using namespace lowbit;
using nlohmann::json;

namespace {

const std::string kF32 = "models/stories260K/stories260K-f32.gguf";

// A prefix of the TinyStories validation text: plenty for 8 windows of 128 tokens, fast to tokenize.
const std::string& text_path() {
  static std::string p = [] {
    const std::string path = test::temp_dir() + "/tinystories-prefix.txt";
    std::ofstream(path) << read_text_file(test::shared("text/tinystories_val.txt")).substr(0, 40000);
    return path;
  }();
  return p;
}

CompareOptions options(const std::string& dir) {
  CompareOptions o;
  o.model = test::shared(kF32);
  o.text = text_path();
  o.out_dir = dir;
  o.n_ctx = 128;
  o.chunks = 8;
  o.threads = 1;
  o.tg = 8;
  return o;
}

std::string error_of(const std::string& list) {
  try {
    parse_candidates(list);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + what.size())) ++n;
  return n;
}

// Collects the log lines (progress lines included: stderr is no tty under ctest) while alive.
struct LogCapture {
  std::string text;
  LogCapture() {
    set_log_sink([this](LogLevel, const std::string& m) { text += m + "\n"; });
  }
  ~LogCapture() {
    set_log_sink([](LogLevel l, const std::string& m) {
      std::fprintf(stderr, "%s%s\n", l == LogLevel::Warn ? "warning: " : l == LogLevel::Error ? "error: " : "",
                   m.c_str());
    });
  }
};

struct FileId {
  ino_t ino = 0;
  std::filesystem::file_time_type mtime;
  bool operator==(const FileId& o) const { return ino == o.ino && mtime == o.mtime; }
};
FileId file_id(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
  return {st.st_ino, std::filesystem::last_write_time(path)};
}

// The figures of a row that do not depend on timing.
json figures(const CompareRow& r) {
  json j = row_to_json(r);
  j.erase("quantize_s");
  j.erase("tg_tps");
  return j;
}

// report.json holds the result's rows (sorted by bpw), the plot measure and the front of that measure.
void expect_json_matches(const std::string& dir, const CompareResult& res, PlotY y) {
  const json j = json::parse(read_text_file(dir + "/report.json"));
  std::vector<CompareRow> sorted = res.rows;
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const CompareRow& a, const CompareRow& b) { return a.bpw < b.bpw; });
  ASSERT_EQ(j["rows"].size(), sorted.size());
  for (size_t i = 0; i < sorted.size(); ++i) {
    json expect = row_to_json(sorted[i]);
    expect["reused"] = sorted[i].reused;
    EXPECT_EQ(j["rows"][i], expect) << sorted[i].name;
  }
  EXPECT_EQ(j["plot"]["y"], plot_y_name(y));
  EXPECT_EQ(j["plot"]["front"].get<std::vector<std::string>>(), pareto_front(res.rows, y));
}

}  // namespace

TEST(Compare, CandidateSyntax) {
  Candidate c = parse_candidate("q8_0");
  EXPECT_EQ(c.kind, Candidate::Kind::Gguf);
  EXPECT_EQ(c.type, "q8_0");
  EXPECT_EQ(parse_candidate("Q8_0").type, "Q8_0");  // the mix
  EXPECT_EQ(parse_candidate("q4_K_M").type, "Q4_K_M");
  EXPECT_EQ(parse_candidate("Q3_K_S").type, "Q3_K_S");
  EXPECT_EQ(parse_candidate("q6_K").type, "q6_K");
  EXPECT_EQ(parse_candidate("f16").type, "f16");
  EXPECT_EQ(parse_candidate("base").kind, Candidate::Kind::Base);

  c = parse_candidate("rtn4g64");
  EXPECT_EQ(c.kind, Candidate::Kind::Method);
  EXPECT_EQ(c.method, "rtn");
  EXPECT_EQ(c.cfg.bits, 4);
  EXPECT_EQ(c.cfg.group_size, 64);
  EXPECT_FALSE(c.cfg.sym);
  EXPECT_FALSE(c.needs_calib());
  c = parse_candidate("gptq3g-1");
  EXPECT_EQ(c.cfg.group_size, -1);
  EXPECT_TRUE(c.needs_calib());
  EXPECT_EQ(parse_candidate("gptq3row").cfg.group_size, -1);
  c = parse_candidate("awq4g128sym");
  EXPECT_EQ(c.method, "awq");
  EXPECT_TRUE(c.cfg.sym);
  // Every registry method, by its name alone (its defaults) or with knobs.
  EXPECT_EQ(parse_candidate("rtn4").cfg.group_size, 128);
  c = parse_candidate("w4a8row");
  EXPECT_EQ(c.method, "w4a8");
  EXPECT_EQ(c.cfg.group_size, -1);
  c = parse_candidate("w8a8");
  EXPECT_EQ(c.method, "w8a8");
  EXPECT_EQ(c.cfg.bits, 8);
  c = parse_candidate("hqq2g64a0");
  EXPECT_EQ(c.method, "hqq");
  EXPECT_EQ(c.cfg.bits, 2);
  EXPECT_EQ(c.cfg.group_size, 64);
  EXPECT_EQ(c.cfg.axis, 0);
  c = parse_candidate("llm.int8");
  EXPECT_EQ(c.method, "llm.int8");
  EXPECT_FALSE(c.needs_calib());

  const auto list = parse_candidates("f16,q8_0,q6_K,q5_K_M,q4_K_M,q3_K_M,q2_K,rtn4g64,gptq4g64,awq4g64");
  EXPECT_EQ(list.size(), 10u);

  // Errors name the candidate and show the syntax.
  EXPECT_NE(error_of("q9_0").find("candidate 'q9_0'"), std::string::npos);
  EXPECT_NE(error_of("q9_0").find("<method>[<bits>][g<group>|row]"), std::string::npos);
  EXPECT_NE(error_of("rtn5g64").find("bits"), std::string::npos);
  EXPECT_NE(error_of("rtn4g0").find("group size"), std::string::npos);
  EXPECT_NE(error_of("rtn4x").find("candidate 'rtn4x'"), std::string::npos);
  EXPECT_NE(error_of("w8a8g64x").find("candidate 'w8a8g64x'"), std::string::npos);
  EXPECT_NE(error_of("q8_0,,q4_0").find("empty"), std::string::npos);
  EXPECT_NE(error_of("q8_0,q8_0").find("twice"), std::string::npos);
  EXPECT_NE(error_of("../x").find("letters"), std::string::npos);
  EXPECT_NE(error_of("").find("empty"), std::string::npos);
  EXPECT_THROW(parse_candidate("q8_K"), Error);  // activation-only format
}

TEST(Compare, CalibratedCandidateNeedsCalib) {
  CompareOptions o = options(test::temp_dir() + "/compare-nocalib");
  try {
    run_compare(parse_candidates("rtn4g-1,gptq4g-1"), o);
    FAIL() << "expected lowbit::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--calib"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(o.out_dir + "/cand"));  // refused before any work
}

TEST(Compare, SweepReportAndResume) {
  const std::string dir = test::temp_dir() + "/compare";
  const CompareOptions o = options(dir);
  const auto cands = parse_candidates("q8_0,q4_0,rtn4g-1");
  const CompareResult first = run_compare(cands, o);
  ASSERT_EQ(first.rows.size(), 4u);  // base + 3
  EXPECT_EQ(first.n_reused, 0);
  EXPECT_EQ(first.rows[0].name, "base");
  EXPECT_EQ(first.rows[0].kld, 0.0);
  EXPECT_EQ(first.rows[0].dppl_pct, 0.0);
  for (const CompareRow& r : first.rows) {
    EXPECT_GT(r.ppl, 1.0) << r.name;
    EXPECT_GT(r.bpw, 0.0) << r.name;
    EXPECT_GT(r.top1_pct, 50.0) << r.name;
    if (r.name != "base") {
      EXPECT_GT(r.kld, 0.0) << r.name;
      EXPECT_GE(r.quantize_s, 0.0) << r.name;
    }
    EXPECT_GT(r.tg_tps, 0.0) << r.name;  // method candidates run their QLinear layers too
  }
  // q4_0 loses more than q8_0, and costs fewer bits.
  auto row = [](const CompareResult& res, const std::string& name) {
    for (const CompareRow& r : res.rows)
      if (r.name == name) return r;
    ADD_FAILURE() << "no row " << name;
    return CompareRow{};
  };
  EXPECT_GT(row(first, "q4_0").kld, row(first, "q8_0").kld);
  EXPECT_LT(row(first, "q4_0").bpw, row(first, "q8_0").bpw);
  // rtn4g-1 on f32: ffn linears are 172 or 64 wide, one group per row fits all of them.
  EXPECT_EQ(row(first, "rtn4g-1").note, "");

  // report.json parses; its rows are the md table's rows, sorted by bpw.
  const json j = json::parse(read_text_file(dir + "/report.json"));
  ASSERT_TRUE(j.contains("setup"));
  EXPECT_EQ(j["setup"]["n_ctx"], 128);
  EXPECT_EQ(j["setup"]["chunks"], 8);
  EXPECT_EQ(j["setup"]["text_sha256"].get<std::string>().size(), 64u);
  ASSERT_EQ(j["rows"].size(), 4u);
  const std::string md = read_text_file(dir + "/report.md");
  EXPECT_NE(md.find("sha256"), std::string::npos);
  double prev_bpw = -1;
  for (const json& jr : j["rows"]) {
    CompareRow r = row_from_json(jr, "report.json");
    r.reused = jr["reused"].get<bool>();
    EXPECT_GE(r.bpw, prev_bpw);
    prev_bpw = r.bpw;
    std::string line = "|";
    for (const std::string& c : report_cells(r)) line += " " + c + " |";
    EXPECT_NE(md.find(line + "\n"), std::string::npos) << "md lacks the row of " << r.name << ": " << line;
  }

  // pareto.svg: an SVG with a front and one label per plotted candidate (base has KLD 0: not plotted).
  const std::string svg = read_text_file(dir + "/pareto.svg");
  EXPECT_NE(svg.find("<svg"), std::string::npos);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  EXPECT_NE(svg.find("<polyline points=\""), std::string::npos);
  for (const char* name : {"q8_0", "q4_0", "rtn4g-1"}) EXPECT_EQ(count(svg, std::string(">") + name + "</text>"), 1u) << name;
  EXPECT_EQ(count(svg, "<svg"), 1u);
  EXPECT_EQ(count(svg, "<text"), count(svg, "</text>"));

  // Interrupted sweep: one candidate's row is missing; the rerun recomputes only it.
  std::filesystem::remove(dir + "/cand/q4_0.json");
  const CompareResult second = run_compare(cands, o);
  ASSERT_EQ(second.rows.size(), 4u);
  EXPECT_EQ(second.n_reused, 3);
  for (size_t i = 0; i < 4; ++i) {
    const CompareRow &a = first.rows[i], &b = second.rows[i];
    EXPECT_EQ(b.reused, b.name != "q4_0") << b.name;
    if (b.reused) {
      EXPECT_EQ(row_to_json(a), row_to_json(b)) << b.name;
    }
    EXPECT_EQ(a.ppl, b.ppl) << b.name;  // deterministic anyway
    EXPECT_EQ(a.kld, b.kld) << b.name;
  }
  EXPECT_NE(read_text_file(dir + "/report.md").find("| reused"), std::string::npos);

  // A different setup (another context) is not reused.
  CompareOptions other = o;
  other.n_ctx = 64;
  other.chunks = 2;
  const CompareResult third = run_compare(parse_candidates("q4_0"), other);
  EXPECT_EQ(third.n_reused, 0);

  // The CLI: the same sweep as the second run, everything reused (row files now hold ctx 64 for base/q4_0).
  const auto r = test::run_cli("compare " + test::shared(kF32) + " -f " + text_path() + " -c 128 --chunks 8 -t 1 --tg 8" +
                               " --candidates q8_0,rtn4g-1 -o " + dir);
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("| q8_0 |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("2 reused"), std::string::npos) << r.out;  // q8_0 and rtn4g-1 (base was remeasured at ctx 64)

  const auto bad = test::run_cli("compare " + test::shared(kF32) + " -f " + text_path() +
                                 " --candidates q8_0,awq4g64 -o " + dir + "/bad");
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.out.find("--calib"), std::string::npos) << bad.out;

  // A damaged row file is an error naming it, not a silent recompute.
  std::ofstream(dir + "/cand/q8_0.json") << "{\"key\": ";
  try {
    run_compare(cands, o);
    ADD_FAILURE() << "expected lowbit::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("q8_0.json"), std::string::npos) << e.what();
  }
}

TEST(Compare, BaseLogitsReusedAcrossRuns) {
  namespace fs = std::filesystem;
  const std::string dir = test::temp_dir() + "/compare-base";
  CompareOptions o = options(dir);
  o.n_ctx = 64;
  o.chunks = 2;
  o.tg = 0;
  const std::string lbkld = dir + "/base.lbkld";

  std::string log1;
  {
    LogCapture cap;
    run_compare(parse_candidates("q8_0"), o);
    log1 = cap.text;
  }
  ASSERT_TRUE(fs::exists(lbkld));
  ASSERT_TRUE(fs::exists(dir + "/base.json"));
  EXPECT_EQ(log1.find("reusing base logits"), std::string::npos) << log1;
  // One progress bar over the whole sweep (base logits + base + q8_0), with an ETA, ending at its total.
  if (!isatty(STDERR_FILENO)) {
    const std::regex line_re("compare (\\d+)/(\\d+) +\\d+% elapsed \\S+ ETA \\S+.*");
    int64_t total = -1, last = -1, n = 0;
    std::istringstream in(log1);
    for (std::string line; std::getline(in, line);) {
      std::smatch m;
      if (!std::regex_match(line, m, line_re)) continue;
      ++n;
      if (total < 0) total = std::stoll(m[2]);
      EXPECT_EQ(std::stoll(m[2]), total) << "a second bar: " << line;
      EXPECT_GE(std::stoll(m[1]), last) << line;
      last = std::stoll(m[1]);
    }
    EXPECT_GE(n, 3) << log1;
    EXPECT_EQ(last, total) << log1;
  }

  // One more candidate: base and q8_0 reused, q4_0 computed against the saved logits, which are not rewritten.
  const FileId before = file_id(lbkld);
  CompareResult second;
  std::string log2;
  {
    LogCapture cap;
    second = run_compare(parse_candidates("q8_0,q4_0"), o);
    log2 = cap.text;
  }
  EXPECT_NE(log2.find("reusing base logits"), std::string::npos) << log2;
  EXPECT_EQ(file_id(lbkld), before);
  EXPECT_EQ(second.n_reused, 2);
  expect_json_matches(dir, second, PlotY::Kld);

  // Same figures as a sweep that computes everything afresh.
  CompareOptions fresh = o;
  fresh.out_dir = dir + "-fresh";
  const CompareResult ref = run_compare(parse_candidates("q8_0,q4_0"), fresh);
  ASSERT_EQ(ref.rows.size(), second.rows.size());
  for (size_t i = 0; i < ref.rows.size(); ++i)
    EXPECT_EQ(figures(ref.rows[i]), figures(second.rows[i])) << ref.rows[i].name;
  EXPECT_EQ(read_text_file(lbkld), read_text_file(fresh.out_dir + "/base.lbkld"));

  // --y dppl: everything reused, the plot and the report switch measure.
  CompareOptions dppl = o;
  dppl.y = PlotY::DPpl;
  const CompareResult third = run_compare(parse_candidates("q8_0,q4_0"), dppl);
  EXPECT_EQ(third.n_reused, 3);
  expect_json_matches(dir, third, PlotY::DPpl);
  EXPECT_NE(read_text_file(dir + "/report.md").find("`--y dppl`"), std::string::npos);
  const std::string svg = read_text_file(dir + "/pareto.svg");
  EXPECT_NE(svg.find("ΔPPL against bits per weight"), std::string::npos);
  for (const CompareRow& r : third.rows) {  // plotted exactly when ΔPPL > 0, else named in the caption
    const bool plotted = svg.find("data-name=\"" + r.name + "\"") != std::string::npos;
    EXPECT_EQ(plotted, r.dppl_pct > 0) << r.name << " ΔPPL " << r.dppl_pct;
  }
  const auto cli = test::run_cli("compare " + test::shared(kF32) + " -f " + text_path() +
                                 " -c 64 --chunks 2 -t 1 --tg 0 --candidates q8_0,q4_0 --y dppl -o " + dir);
  EXPECT_EQ(cli.code, 0) << cli.out;
  EXPECT_NE(cli.out.find("ΔPPL % against bpw"), std::string::npos) << cli.out;
  EXPECT_NE(cli.out.find("3 reused"), std::string::npos) << cli.out;
  const auto bad_y = test::run_cli("compare " + test::shared(kF32) + " -f " + text_path() +
                                   " --candidates q8_0 --y ppl -o " + dir);
  EXPECT_NE(bad_y.code, 0);
  EXPECT_NE(bad_y.out.find("--y"), std::string::npos) << bad_y.out;

  // Another setup (top-16): the log says why, base.lbkld is rewritten.
  CompareOptions k16 = o;
  k16.top_k = 16;
  std::string log3;
  {
    LogCapture cap;
    run_compare(parse_candidates("q4_0"), k16);
    log3 = cap.text;
  }
  EXPECT_NE(log3.find("recomputing base logits: computed with another setup: top_k 32 (saved) vs 16 (now)"),
            std::string::npos)
      << log3;
  EXPECT_FALSE(file_id(lbkld) == before);
  const std::string k16_bytes = read_text_file(lbkld);

  // A damaged base.lbkld (base.json intact) or a damaged base.json: recomputed, with the reason; same bytes.
  fs::remove(dir + "/cand/q4_0.json");
  std::ofstream(lbkld, std::ios::binary | std::ios::trunc) << "LBKLD1";
  {
    LogCapture cap;
    run_compare(parse_candidates("q4_0"), k16);
    EXPECT_NE(cap.text.find("recomputing base logits: " + lbkld + " holds 6 bytes"), std::string::npos) << cap.text;
  }
  EXPECT_EQ(read_text_file(lbkld), k16_bytes);
  fs::remove(dir + "/cand/q4_0.json");
  std::ofstream(dir + "/base.json", std::ios::trunc) << "{\"key\": ";
  {
    LogCapture cap;
    run_compare(parse_candidates("q4_0"), k16);
    EXPECT_NE(cap.text.find("base.json does not parse"), std::string::npos) << cap.text;
  }
  EXPECT_EQ(read_text_file(lbkld), k16_bytes);
  EXPECT_TRUE(json::parse(read_text_file(dir + "/base.json")).contains("key"));
}
