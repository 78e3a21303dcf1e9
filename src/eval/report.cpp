#include "eval/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>

#include <fmt/format.h>

#include "lowbit/error.h"

namespace lowbit {

using nlohmann::json;

json CompareSetup::key() const {
  json j = setup_to_json(*this);
  j.erase("threads");
  j.erase("cpu");
  j.erase("text");         // the path: the sha256 identifies the text
  j.erase("text_tokens");  // follows from model + text
  return j;
}

json setup_to_json(const CompareSetup& s) {
  return json{{"model", s.model},       {"text", s.text},         {"text_sha256", s.text_sha256},
              {"text_tokens", s.text_tokens}, {"n_ctx", s.n_ctx}, {"chunks", s.chunks},
              {"protocol", s.protocol}, {"top_k", s.top_k},       {"calib", s.calib},
              {"nsamples", s.nsamples}, {"seqlen", s.seqlen},     {"tg", s.tg},
              {"threads", s.threads},   {"version", s.version},   {"cpu", s.cpu}};
}

json row_to_json(const CompareRow& r) {
  return json{{"name", r.name},
              {"kind", r.kind},
              {"detail", r.detail},
              {"bpw", r.bpw},
              {"bytes", r.bytes},
              {"ppl", r.ppl},
              {"ppl_err", r.ppl_err},
              {"dppl_pct", r.dppl_pct},
              {"kld", r.kld},
              {"kld_err", r.kld_err},
              {"top1_pct", r.top1_pct},
              {"top1_err_pct", r.top1_err_pct},
              {"quantize_s", r.quantize_s < 0 ? json(nullptr) : json(r.quantize_s)},
              {"tg_tps", r.tg_tps < 0 ? json(nullptr) : json(r.tg_tps)},
              {"note", r.note}};
}

CompareRow row_from_json(const json& j, const std::string& where) {
  if (!j.is_object()) fail(where, "not a JSON object", "delete the file to recompute the candidate");
  auto get = [&](const char* key) -> const json& {
    auto it = j.find(key);
    if (it == j.end()) fail(where + ": " + key, "missing", "delete the file to recompute the candidate");
    return *it;
  };
  auto num = [&](const char* key) {
    const json& v = get(key);
    if (v.is_null()) return -1.0;
    if (!v.is_number()) fail(where + ": " + key, "not a number", "delete the file to recompute the candidate");
    return v.get<double>();
  };
  auto str = [&](const char* key) {
    const json& v = get(key);
    if (!v.is_string()) fail(where + ": " + key, "not a string", "delete the file to recompute the candidate");
    return v.get<std::string>();
  };
  CompareRow r;
  r.name = str("name");
  r.kind = str("kind");
  r.detail = str("detail");
  r.bpw = num("bpw");
  r.bytes = uint64_t(std::max(0.0, num("bytes")));
  r.ppl = num("ppl");
  r.ppl_err = num("ppl_err");
  r.dppl_pct = num("dppl_pct");
  r.kld = num("kld");
  r.kld_err = num("kld_err");
  r.top1_pct = num("top1_pct");
  r.top1_err_pct = num("top1_err_pct");
  r.quantize_s = num("quantize_s");
  r.tg_tps = num("tg_tps");
  r.note = str("note");
  return r;
}

namespace {

std::string human_bytes(uint64_t b) {
  if (b < (uint64_t(1) << 20)) return fmt::format("{:.1f} KiB", double(b) / 1024.0);
  if (b < (uint64_t(1) << 30)) return fmt::format("{:.2f} MiB", double(b) / 1024.0 / 1024.0);
  return fmt::format("{:.2f} GiB", double(b) / 1024.0 / 1024.0 / 1024.0);
}

std::string xml_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      default: o += c;
    }
  }
  return o;
}

std::vector<CompareRow> sorted_by_bpw(std::vector<CompareRow> rows) {
  std::stable_sort(rows.begin(), rows.end(), [](const CompareRow& a, const CompareRow& b) { return a.bpw < b.bpw; });
  return rows;
}

}  // namespace

std::vector<std::string> report_cells(const CompareRow& r) {
  std::string note = r.note;
  if (r.reused) note = note.empty() ? "reused" : "reused; " + note;
  return {r.name,
          fmt::format("{:.3f}", r.bpw),
          human_bytes(r.bytes),
          fmt::format("{:.4f} ± {:.4f}", r.ppl, r.ppl_err),
          fmt::format("{:+.2f}", r.dppl_pct),
          fmt::format("{:.6f} ± {:.6f}", r.kld, r.kld_err),
          fmt::format("{:.2f} ± {:.2f}", r.top1_pct, r.top1_err_pct),
          r.quantize_s < 0 ? "n/a" : fmt::format("{:.2f}", r.quantize_s),
          r.tg_tps < 0 ? "n/a" : fmt::format("{:.1f}", r.tg_tps),
          note};
}

std::string report_markdown(const CompareSetup& s, const std::vector<CompareRow>& rows_in) {
  const std::vector<CompareRow> rows = sorted_by_bpw(rows_in);
  std::string md = "# lowbit compare\n\n```\n";
  md += fmt::format("model     {}\n", s.model);
  md += fmt::format("text      {} sha256 {}\n", s.text, s.text_sha256);
  md += fmt::format("tokens    {} (protocol {}, ctx {}, chunks {}, threads {})\n", s.text_tokens, s.protocol, s.n_ctx,
                    s.chunks < 0 ? std::string("all") : std::to_string(s.chunks), s.threads);
  md += fmt::format("kld       against the base's saved top-{} logits + one rest bucket (a lower bound)\n", s.top_k);
  if (!s.calib.empty())
    md += fmt::format("calib     {} ({} samples x {} tokens, seed 0)\n", s.calib, s.nsamples, s.seqlen);
  md += fmt::format("speed     {}\n", s.tg > 0 ? fmt::format("tg{}, 1 run after a warm-up", s.tg) : "not measured");
  md += fmt::format("lowbit    {}\n", s.version);
  md += fmt::format("cpu       {}\n", s.cpu);
  md += "```\n\n";
  md += "| candidate | bpw | size | PPL | ΔPPL % | KLD | top-1 % | quantize s | tg t/s | note |\n";
  md += "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n";
  for (const CompareRow& r : rows) {
    std::string line = "|";
    for (const std::string& c : report_cells(r)) line += " " + c + " |";
    md += line + "\n";
  }
  md += "\n";
  md += "- bpw: bits per weight over all weight tensors. GGUF candidates: the file's tensor bytes. "
        "Method candidates (`<method><bits>g<group>`): each quantized linear costs bits + (16 + bits) / group "
        "(an f16 scale and a bits-wide zero per group of `group` inputs; group -1 = the whole row), every other "
        "tensor its stored size in the model.\n";
  md += "- PPL ± its standard error; ΔPPL % = (PPL / PPL(base) - 1) × 100; KLD = mean KL divergence from the base "
        "± standard error; top-1 % = positions where both models' most likely token agree.\n";
  md += "- quantize s: wall seconds of the quantization step (plan + GGUF write, or the method in memory).\n";
  md += "- tg t/s: generation tokens/s of the GGUF candidate. Method candidates are evaluated in memory with "
        "dequantized f32 weights, so their speed says nothing about the quantized format: n/a.\n";
  md += "- reused: read back from DIR/cand/<name>.json of an earlier run with the same setup.\n";
  md += "- pareto.svg: bpw against KLD (log scale); the base (KLD 0) is left out of the log plot.\n";
  return md;
}

json report_json(const CompareSetup& s, const std::vector<CompareRow>& rows_in) {
  json rows = json::array();
  for (const CompareRow& r : sorted_by_bpw(rows_in)) {
    json j = row_to_json(r);
    j["reused"] = r.reused;
    rows.push_back(std::move(j));
  }
  return json{{"setup", setup_to_json(s)}, {"rows", std::move(rows)}};
}

std::string pareto_svg(const std::vector<CompareRow>& rows_in) {
  const std::vector<CompareRow> rows = sorted_by_bpw(rows_in);
  std::vector<const CompareRow*> pts, left_out;
  for (const CompareRow& r : rows) (r.kld > 0 && std::isfinite(r.kld) ? pts : left_out).push_back(&r);

  const double W = 800, H = 520, ml = 80, mr = 40, mt = 40, mb = 70;
  const double pw = W - ml - mr, ph = H - mt - mb;
  // x: linear over bpw, padded; y: log10 KLD over whole decades.
  double xmin = 0, xmax = 1, ymin = -3, ymax = 0;
  if (!pts.empty()) {
    xmin = xmax = pts[0]->bpw;
    double lmin = std::log10(pts[0]->kld), lmax = lmin;
    for (const CompareRow* p : pts) {
      xmin = std::min(xmin, p->bpw), xmax = std::max(xmax, p->bpw);
      lmin = std::min(lmin, std::log10(p->kld)), lmax = std::max(lmax, std::log10(p->kld));
    }
    const double pad = std::max(0.5, 0.08 * (xmax - xmin));
    xmin = std::max(0.0, xmin - pad), xmax += pad;
    ymin = std::floor(lmin), ymax = std::ceil(lmax);
    if (ymax <= ymin) ymax = ymin + 1;
  }
  auto X = [&](double bpw) { return ml + (bpw - xmin) / (xmax - xmin) * pw; };
  auto Y = [&](double kld) { return mt + (ymax - std::log10(kld)) / (ymax - ymin) * ph; };

  std::string s = fmt::format(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n"
      "<rect x=\"0\" y=\"0\" width=\"{0}\" height=\"{1}\" fill=\"white\"/>\n"
      "<text x=\"{2}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">lowbit compare: KLD against bits per weight "
      "(Pareto front in red)</text>\n",
      W, H, W / 2);
  // Axes box, ticks and grid.
  s += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"black\"/>\n", ml, mt, pw,
                   ph);
  const double xstep = (xmax - xmin) > 12 ? 2.0 : (xmax - xmin) > 5 ? 1.0 : 0.5;
  for (double t = std::ceil(xmin / xstep) * xstep; t <= xmax + 1e-9; t += xstep) {
    const double x = X(t);
    s += fmt::format("<line x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" y2=\"{2}\" stroke=\"#ddd\"/>\n", x, mt, mt + ph);
    s += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{:g}</text>\n", x, mt + ph + 18, t);
  }
  for (int e = int(ymin); e <= int(ymax); ++e) {
    const double y = Y(std::pow(10.0, e));
    s += fmt::format("<line x1=\"{0}\" y1=\"{1:.1f}\" x2=\"{2}\" y2=\"{1:.1f}\" stroke=\"#ddd\"/>\n", ml, y, ml + pw);
    s += fmt::format("<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">1e{}</text>\n", ml - 6, y + 4, e);
  }
  s += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">bits per weight</text>\n", ml + pw / 2, H - 30);
  s += fmt::format(
      "<text x=\"18\" y=\"{0}\" text-anchor=\"middle\" transform=\"rotate(-90 18 {0})\">mean KLD (log scale)</text>\n",
      mt + ph / 2);
  // Pareto front: in bpw order, a point is on the front when its KLD is below every point with smaller bpw
  // (ties in bpw: the lower KLD only).
  std::vector<const CompareRow*> front;
  double best = std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < pts.size(); ++i) {
    const CompareRow* p = pts[i];
    bool dominated = p->kld >= best;
    for (size_t j = 0; j < pts.size() && !dominated; ++j)
      if (j != i && pts[j]->bpw == p->bpw && pts[j]->kld < p->kld) dominated = true;
    if (!dominated) front.push_back(p), best = p->kld;
  }
  std::string poly;
  for (const CompareRow* p : front) poly += fmt::format("{:.1f},{:.1f} ", X(p->bpw), Y(p->kld));
  if (!poly.empty()) poly.pop_back();
  s += fmt::format("<polyline points=\"{}\" fill=\"none\" stroke=\"#c00\" stroke-width=\"2\"/>\n", poly);
  for (const CompareRow* p : pts) {
    const bool on_front = std::find(front.begin(), front.end(), p) != front.end();
    s += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"4\" fill=\"{}\"/>\n", X(p->bpw), Y(p->kld),
                     on_front ? "#c00" : "#246");
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\">{}</text>\n", X(p->bpw) + 6, Y(p->kld) - 6, xml_escape(p->name));
  }
  std::string caption = "x: bits per weight; y: mean KL divergence from the base, log10 scale.";
  if (!left_out.empty()) {
    caption += " Not plotted (KLD 0):";
    for (const CompareRow* p : left_out) caption += " " + p->name;
  }
  s += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"#555\">{}</text>\n", ml, H - 10,
                   xml_escape(caption));
  s += "</svg>\n";
  return s;
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) fail(tmp, "cannot open for writing", "check the folder exists and is writable");
    f.write(bytes.data(), std::streamsize(bytes.size()));
    if (!f) fail(tmp, "write failed", "check free disk space");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) fail(path, "cannot rename " + tmp + ": " + ec.message());
}

void write_compare_report(const std::string& dir, const CompareSetup& s, std::vector<CompareRow> rows) {
  rows = sorted_by_bpw(std::move(rows));
  write_file_atomic(dir + "/report.md", report_markdown(s, rows));
  write_file_atomic(dir + "/report.json", report_json(s, rows).dump(2) + "\n");
  write_file_atomic(dir + "/pareto.svg", pareto_svg(rows));
}

}  // namespace lowbit
