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

PlotY parse_plot_y(const std::string& s, const std::string& where) {
  if (s == "kld") return PlotY::Kld;
  if (s == "dppl") return PlotY::DPpl;
  fail(where, "'" + s + "' is not a plot measure", "use kld (mean KL divergence) or dppl (ΔPPL %)");
}

const char* plot_y_name(PlotY y) { return y == PlotY::Kld ? "kld" : "dppl"; }

double plot_measure(const CompareRow& r, PlotY y) { return y == PlotY::Kld ? r.kld : r.dppl_pct; }

std::vector<std::string> pareto_front(const std::vector<CompareRow>& rows_in, PlotY y) {
  const std::vector<CompareRow> rows = sorted_by_bpw(rows_in);
  auto valid = [&](const CompareRow& r) { return std::isfinite(r.bpw) && std::isfinite(plot_measure(r, y)); };
  std::vector<std::string> front;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (!valid(rows[i])) continue;
    const double bi = rows[i].bpw, mi = plot_measure(rows[i], y);
    bool dominated = false;
    for (size_t j = 0; j < rows.size() && !dominated; ++j) {
      if (j == i || !valid(rows[j])) continue;
      const double bj = rows[j].bpw, mj = plot_measure(rows[j], y);
      dominated = bj <= bi && mj <= mi && (bj < bi || mj < mi);
    }
    if (!dominated) front.push_back(rows[i].name);
  }
  return front;
}

namespace {

const char* measure_label(PlotY y) { return y == PlotY::Kld ? "KLD" : "ΔPPL %"; }

std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string o;
  for (const std::string& s : v) o += (o.empty() ? "" : sep) + s;
  return o;
}

}  // namespace

std::string report_markdown(const CompareSetup& s, const std::vector<CompareRow>& rows_in, PlotY y) {
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
        "Method candidates (`<method>[<bits>][g<group>|row]`): the bytes each quantized layer holds in memory "
        "(codes, scales, zeros, codebooks; `lowbit quantize --list` gives each method's formula), every other "
        "tensor its stored size in the model.\n";
  md += "- PPL ± its standard error; ΔPPL % = (PPL / PPL(base) - 1) × 100; KLD = mean KL divergence from the base "
        "± standard error; top-1 % = positions where both models' most likely token agree.\n";
  md += "- quantize s: wall seconds of the quantization step (plan + GGUF write, or the method in memory).\n";
  md += "- tg t/s: generation tokens/s, the model as evaluated: GGUF candidates loaded from their file, method "
        "candidates with their quantized layers in memory (their kernels, not dequantized f32 weights).\n";
  md += "- reused: read back from DIR/cand/<name>.json of an earlier run with the same setup.\n";
  md += fmt::format(
      "- pareto.svg: bpw against {0} (log scale; `--y {1}`). Rows with {0} <= 0 have no place on a log axis: they are "
      "not plotted (the caption names them) but still count for the front.\n",
      measure_label(y), plot_y_name(y));
  md += fmt::format("- Pareto front on {} (no other row has bpw <= and {} <= with one strictly smaller): {}.\n",
                    measure_label(y), measure_label(y), join(pareto_front(rows, y), ", "));
  return md;
}

json report_json(const CompareSetup& s, const std::vector<CompareRow>& rows_in, PlotY y) {
  json rows = json::array();
  for (const CompareRow& r : sorted_by_bpw(rows_in)) {
    json j = row_to_json(r);
    j["reused"] = r.reused;
    rows.push_back(std::move(j));
  }
  json plot{{"file", "pareto.svg"}, {"y", plot_y_name(y)}, {"front", pareto_front(rows_in, y)}};
  return json{{"setup", setup_to_json(s)}, {"rows", std::move(rows)}, {"plot", std::move(plot)}};
}

namespace {

// A tick label of m * 10^e: plain decimals from 1e-4 to 1e4, else "2e-5".
std::string log_tick_label(int m, int e) {
  if (e >= -4 && e <= 4) return fmt::format("{:g}", double(m) * std::pow(10.0, e));
  return fmt::format("{}e{}", m, e);
}

std::string basename_of(const std::string& p) {
  const size_t slash = p.find_last_of('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

std::string shorten(const std::string& s, size_t n) { return s.size() <= n ? s : s.substr(0, n - 1) + "…"; }

// Greedy word wrap at `width` characters.
std::vector<std::string> wrap(const std::string& text, size_t width) {
  std::vector<std::string> lines;
  std::string line;
  size_t start = 0;
  while (start < text.size()) {
    size_t sp = text.find(' ', start);
    if (sp == std::string::npos) sp = text.size();
    const std::string word = text.substr(start, sp - start);
    if (!line.empty() && line.size() + 1 + word.size() > width) lines.push_back(line), line.clear();
    line += (line.empty() ? "" : " ") + word;
    start = sp + 1;
  }
  if (!line.empty()) lines.push_back(line);
  return lines;
}

struct Box {
  double x0, y0, x1, y1;
  double overlap(const Box& o) const {
    const double w = std::min(x1, o.x1) - std::max(x0, o.x0), h = std::min(y1, o.y1) - std::max(y0, o.y0);
    return w > 0 && h > 0 ? w * h : 0.0;
  }
  double area() const { return (x1 - x0) * (y1 - y0); }
};

}  // namespace

std::string pareto_svg(const CompareSetup& setup, const std::vector<CompareRow>& rows_in, PlotY ymode) {
  const std::vector<CompareRow> rows = sorted_by_bpw(rows_in);
  std::vector<const CompareRow*> pts, left_out;
  for (const CompareRow& r : rows) {
    const double m = plot_measure(r, ymode);
    (m > 0 && std::isfinite(m) && std::isfinite(r.bpw) ? pts : left_out).push_back(&r);
  }
  const std::vector<std::string> front_names = pareto_front(rows, ymode);
  auto on_front = [&](const CompareRow* p) {
    return std::find(front_names.begin(), front_names.end(), p->name) != front_names.end();
  };
  const bool kld = ymode == PlotY::Kld;
  const std::string what = kld ? "mean KLD" : "ΔPPL";

  // Caption first: its line count sets the canvas height.
  std::string caption = kld ? "x: bits per weight of all weights; y: mean KL divergence of the next-token "
                              "distribution from the base's (nats), log10 scale."
                            : "x: bits per weight of all weights; y: perplexity increase over the base, "
                              "(PPL / PPL(base) - 1) × 100, log10 scale.";
  if (!left_out.empty()) {
    std::vector<std::string> names;
    for (const CompareRow* p : left_out) names.push_back(p->name);
    caption += fmt::format(" Not plotted ({} <= 0 or not finite: no place on a log axis): {}.",
                           kld ? "KLD" : "ΔPPL", join(names, ", "));
    std::vector<std::string> fronted;  // unplotted rows that still bound the front
    for (const CompareRow* p : left_out)
      if (on_front(p) && p->kind != "base") fronted.push_back(p->name);
    if (!fronted.empty())
      caption += fmt::format(" On the Pareto front all the same (rows with more bits and a higher {} are dominated "
                             "by them): {}.",
                             kld ? "KLD" : "ΔPPL", join(fronted, ", "));
  }
  const double W = 900, ml = 92, mr = 36, mt = 100, fs = 12;
  const std::vector<std::string> cap_lines = wrap(caption, 112);  // 11 px text: ~6.6 px a character
  const double mb = 62 + 15 * double(cap_lines.size());
  const double H = 620 + 15 * double(cap_lines.size());
  const double pw = W - ml - mr, ph = H - mt - mb;

  // x: linear over bpw, padded, "nice" steps; y: log10 over whole decades.
  double xmin = 0, xmax = 8, ymin = -3, ymax = 0;
  if (!pts.empty()) {
    xmin = xmax = pts[0]->bpw;
    double lmin = std::log10(plot_measure(*pts[0], ymode)), lmax = lmin;
    for (const CompareRow* p : pts) {
      const double l = std::log10(plot_measure(*p, ymode));
      xmin = std::min(xmin, p->bpw), xmax = std::max(xmax, p->bpw);
      lmin = std::min(lmin, l), lmax = std::max(lmax, l);
    }
    const double pad = std::max(0.5, 0.06 * (xmax - xmin));
    xmin = std::max(0.0, xmin - pad), xmax += pad;
    ymin = std::floor(lmin - 0.04), ymax = std::ceil(lmax + 0.04);  // no point on the frame
    if (ymax <= ymin) ymax = ymin + 1;
  }
  auto X = [&](double bpw) { return ml + (bpw - xmin) / (xmax - xmin) * pw; };
  auto Y = [&](double v) { return mt + (ymax - std::log10(v)) / (ymax - ymin) * ph; };

  std::string s = fmt::format(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"DejaVu Sans, Arial, sans-serif\" font-size=\"{2}\">\n"
      "<rect x=\"0\" y=\"0\" width=\"{0}\" height=\"{1}\" fill=\"white\"/>\n",
      W, H, fs);
  s += fmt::format("<text class=\"title\" x=\"{}\" y=\"24\" text-anchor=\"middle\" font-size=\"16\" "
                   "font-weight=\"bold\">lowbit compare: {} against bits per weight</text>\n",
                   W / 2, what);
  const std::string sub = fmt::format("model {} · text {} · ctx {}", shorten(basename_of(setup.model), 40),
                                      shorten(basename_of(setup.text), 36), setup.n_ctx);
  std::string how = fmt::format("text sha256 {} · {} chunks · {} protocol", setup.text_sha256.substr(0, 12),
                                setup.chunks < 0 ? std::string("all") : std::to_string(setup.chunks), setup.protocol);
  if (kld) how += fmt::format(" · KLD over the base's top-{} logits + one rest bucket", setup.top_k);
  s += fmt::format("<text class=\"subtitle\" x=\"{}\" y=\"46\" text-anchor=\"middle\">{}</text>\n", W / 2,
                   xml_escape(sub));
  s += fmt::format("<text class=\"setup\" x=\"{}\" y=\"63\" text-anchor=\"middle\" font-size=\"11\" "
                   "fill=\"#555\">{}</text>\n",
                   W / 2, xml_escape(how));
  // Legend, in the top margin where no point can sit.
  const double ly = 84;
  s += fmt::format("<g class=\"legend\">\n<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"#c00\" "
                   "stroke-width=\"2\"/>\n<circle cx=\"{3}\" cy=\"{1}\" r=\"4\" fill=\"#c00\"/>\n"
                   "<text x=\"{4}\" y=\"{5}\">Pareto front: no other row has fewer bits and a lower {6}</text>\n"
                   "<circle cx=\"{7}\" cy=\"{1}\" r=\"4\" fill=\"#369\"/>\n<text x=\"{8}\" y=\"{5}\">dominated</text>\n"
                   "</g>\n",
                   ml, ly, ml + 28, ml + 14, ml + 36, ly + 4, kld ? "KLD" : "ΔPPL", ml + 470, ml + 480);

  // Grid, ticks and the plot frame.
  const double span = xmax - xmin;
  double xstep = 10;
  for (double st : {0.25, 0.5, 1.0, 2.0, 4.0, 5.0, 10.0})
    if (span / st <= 12) {
      xstep = st;
      break;
    }
  for (double t = std::ceil(xmin / xstep - 1e-9) * xstep; t <= xmax + 1e-9; t += xstep) {
    const double x = X(t);
    s += fmt::format("<line class=\"grid\" x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" y2=\"{2}\" stroke=\"#ddd\"/>\n", x,
                     mt, mt + ph);
    s += fmt::format("<line x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" y2=\"{2}\" stroke=\"black\"/>\n", x, mt + ph,
                     mt + ph + 5);
    s += fmt::format("<text class=\"xtick\" x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{:g}</text>\n", x,
                     mt + ph + 19, t);
  }
  const int decades = int(ymax - ymin);
  const int label_every = std::max(1, (decades + 7) / 8);
  for (int e = int(ymin); e <= int(ymax); ++e) {
    const double y = Y(std::pow(10.0, e));
    s += fmt::format("<line class=\"grid\" x1=\"{0}\" y1=\"{1:.1f}\" x2=\"{2}\" y2=\"{1:.1f}\" stroke=\"#bbb\"/>\n",
                     ml, y, ml + pw);
    if ((e - int(ymin)) % label_every == 0) {
      s += fmt::format("<line x1=\"{0}\" y1=\"{1:.1f}\" x2=\"{2}\" y2=\"{1:.1f}\" stroke=\"black\"/>\n", ml - 5, y, ml);
      s += fmt::format("<text class=\"ytick\" x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>\n", ml - 8, y + 4,
                       log_tick_label(1, e));
    }
    if (e == int(ymax)) break;
    for (int m = 2; m <= 9; ++m) {  // minor grid; labelled at 2 and 5 when few decades are shown
      const double ym = Y(m * std::pow(10.0, e));
      s += fmt::format("<line class=\"grid\" x1=\"{0}\" y1=\"{1:.1f}\" x2=\"{2}\" y2=\"{1:.1f}\" stroke=\"#eee\"/>\n",
                       ml, ym, ml + pw);
      if (decades <= 2 && (m == 2 || m == 5))
        s += fmt::format("<text class=\"ytick\" x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\" fill=\"#555\" "
                         "font-size=\"10\">{}</text>\n",
                         ml - 8, ym + 4, log_tick_label(m, e));
    }
  }
  s += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"black\"/>\n", ml, mt, pw,
                   ph);
  s += fmt::format("<text class=\"axis-title\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">bits per weight "
                   "(bpw)</text>\n",
                   ml + pw / 2, mt + ph + 40);
  s += fmt::format("<text class=\"axis-title\" x=\"22\" y=\"{0}\" text-anchor=\"middle\" transform=\"rotate(-90 22 "
                   "{0})\">{1}</text>\n",
                   mt + ph / 2, kld ? "mean KL divergence from the base (nats, log scale)"
                                    : "ΔPPL: perplexity increase over the base (%, log scale)");

  // The front (only its plotted rows can be drawn), then the markers and labels.
  std::string poly;
  for (const CompareRow* p : pts)
    if (on_front(p)) poly += fmt::format("{:.1f},{:.1f} ", X(p->bpw), Y(plot_measure(*p, ymode)));
  if (!poly.empty()) poly.pop_back();
  if (!poly.empty())
    s += fmt::format("<polyline points=\"{}\" class=\"front\" fill=\"none\" stroke=\"#c00\" stroke-width=\"2\"/>\n",
                     poly);
  const Box plot_box{ml, mt, ml + pw, mt + ph};
  std::vector<Box> taken;  // markers and placed labels
  for (const CompareRow* p : pts) {
    const double cx = X(p->bpw), cy = Y(plot_measure(*p, ymode));
    taken.push_back({cx - 5, cy - 5, cx + 5, cy + 5});
  }
  {  // the front line too, as small boxes every few pixels along it
    std::vector<std::pair<double, double>> fp;
    for (const CompareRow* p : pts)
      if (on_front(p)) fp.emplace_back(X(p->bpw), Y(plot_measure(*p, ymode)));
    for (size_t i = 1; i < fp.size(); ++i) {
      const double dx = fp[i].first - fp[i - 1].first, dy = fp[i].second - fp[i - 1].second;
      const int n = std::max(1, int(std::hypot(dx, dy) / 4));
      for (int k = 1; k < n; ++k) {
        const double x = fp[i - 1].first + dx * k / n, y = fp[i - 1].second + dy * k / n;
        taken.push_back({x - 1.5, y - 1.5, x + 1.5, y + 1.5});
      }
    }
  }
  for (const CompareRow* p : pts) {
    const double cx = X(p->bpw), cy = Y(plot_measure(*p, ymode));
    s += fmt::format("<circle class=\"marker\" data-name=\"{}\" cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"4.5\" fill=\"{}\" "
                     "stroke=\"white\"><title>{}: {:.3f} bpw, {} {:.6g}</title></circle>\n",
                     xml_escape(p->name), cx, cy, on_front(p) ? "#c00" : "#369", xml_escape(p->name), p->bpw,
                     kld ? "KLD" : "ΔPPL %", plot_measure(*p, ymode));
  }
  // Labels: the first of eight spots around the point that stays inside the plot and covers no marker or
  // earlier label; failing that, the spot with the least covered area.
  for (const CompareRow* p : pts) {
    const double cx = X(p->bpw), cy = Y(plot_measure(*p, ymode));
    const double w = 0.62 * fs * double(p->name.size()) + 2, h = fs + 2;
    struct Spot {
      double dx, dy;
      const char* anchor;
    };
    const Spot spots[] = {{7, -7, "start"},  {7, 15, "start"},  {-7, -7, "end"},     {-7, 15, "end"},
                          {0, -10, "middle"}, {0, 20, "middle"}, {7, -19, "start"}, {7, 27, "start"}};
    double best = std::numeric_limits<double>::infinity();
    Box chosen{};
    const Spot* pick = &spots[0];
    for (const Spot& sp : spots) {
      const double tx = cx + sp.dx, base = cy + sp.dy;
      const double x0 = sp.anchor[0] == 's' ? tx : sp.anchor[0] == 'e' ? tx - w : tx - w / 2;
      const Box b{x0, base - fs, x0 + w, base - fs + h};
      double cost = 10.0 * (b.area() - b.overlap(plot_box));
      for (size_t k = 0; k < taken.size(); ++k) cost += b.overlap(taken[k]);
      if (cost < best) best = cost, chosen = b, pick = &sp;
      if (cost == 0) break;
    }
    taken.push_back(chosen);
    s += fmt::format("<text class=\"label\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"{}\">{}</text>\n", cx + pick->dx,
                     cy + pick->dy, pick->anchor, xml_escape(p->name));
  }
  for (size_t i = 0; i < cap_lines.size(); ++i)
    s += fmt::format("<text class=\"caption\" x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"#444\">{}</text>\n", ml,
                     mt + ph + 62 + 15 * double(i), xml_escape(cap_lines[i]));
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

void write_compare_report(const std::string& dir, const CompareSetup& s, std::vector<CompareRow> rows, PlotY y) {
  rows = sorted_by_bpw(std::move(rows));
  write_file_atomic(dir + "/report.md", report_markdown(s, rows, y));
  write_file_atomic(dir + "/report.json", report_json(s, rows, y).dump(2) + "\n");
  write_file_atomic(dir + "/pareto.svg", pareto_svg(s, rows, y));
}

}  // namespace lowbit
