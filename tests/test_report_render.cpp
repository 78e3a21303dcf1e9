// pareto.svg of `lowbit compare` (eval/report.h), checked as a document and as
// a picture: synthetic rows with known bpw / KLD / ΔPPL (a dominated one, the
// base, a candidate that lowered the PPL) go through pareto_svg; the SVG is
// parsed as XML and its axes, log ticks, markers, labels, front and caption are
// checked against values computed here; then rsvg-convert (Debian librsvg2-bin)
// renders it to PNG, which a small decoder below (zlib inflate, RFC 1950/1951,
// and PNG scanline filters) turns into pixels: markers sit at the colour and
// place the SVG says, nothing runs off the canvas.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "core/read_file.h"
#include "eval/report.h"
#include "lowbit/error.h"
#include "paths.h"

using namespace lowbit;

namespace {

// ---------------------------------------------------------------- a small XML reader (enough for our SVG)

struct Node {
  std::string tag;
  std::map<std::string, std::string> attr;
  std::string text;  // character data directly inside (entities decoded)
  std::vector<std::unique_ptr<Node>> kids;
  std::string get(const std::string& k) const {
    auto it = attr.find(k);
    return it == attr.end() ? "" : it->second;
  }
  double num(const std::string& k) const { return std::stod(get(k)); }
};

std::string unescape(const std::string& s) {
  std::string o;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      o += s[i];
      continue;
    }
    const size_t semi = s.find(';', i);
    if (semi == std::string::npos) throw std::runtime_error("bad entity");
    const std::string e = s.substr(i + 1, semi - i - 1);
    if (e == "amp") o += '&';
    else if (e == "lt") o += '<';
    else if (e == "gt") o += '>';
    else if (e == "quot") o += '"';
    else if (e == "apos") o += '\'';
    else throw std::runtime_error("unknown entity &" + e + ";");
    i = semi;
  }
  return o;
}

class XmlReader {
 public:
  explicit XmlReader(const std::string& s) : s_(s) {}
  std::unique_ptr<Node> document() {
    skip_misc();
    auto root = element();
    skip_misc();
    if (p_ != s_.size()) throw std::runtime_error("content after the root element");
    return root;
  }

 private:
  const std::string& s_;
  size_t p_ = 0;
  void ws() {
    while (p_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[p_]))) ++p_;
  }
  bool starts(const char* t) const { return s_.compare(p_, std::strlen(t), t) == 0; }
  void skip_misc() {  // whitespace, <?...?>, <!-- -->
    for (;;) {
      ws();
      if (starts("<?")) p_ = s_.find("?>", p_) + 2;
      else if (starts("<!--")) p_ = s_.find("-->", p_) + 3;
      else return;
      if (p_ < 2 || p_ > s_.size()) throw std::runtime_error("unterminated <? or <!--");
    }
  }
  std::string name() {
    const size_t b = p_;
    while (p_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[p_])) || s_[p_] == '-' || s_[p_] == ':' ||
                              s_[p_] == '_'))
      ++p_;
    if (b == p_) throw std::runtime_error("expected a name at " + std::to_string(p_));
    return s_.substr(b, p_ - b);
  }
  std::unique_ptr<Node> element() {
    if (!starts("<")) throw std::runtime_error("expected '<' at " + std::to_string(p_));
    ++p_;
    auto n = std::make_unique<Node>();
    n->tag = name();
    for (;;) {
      ws();
      if (starts("/>")) {
        p_ += 2;
        return n;
      }
      if (starts(">")) {
        ++p_;
        break;
      }
      const std::string k = name();
      ws();
      if (!starts("=\"")) throw std::runtime_error("attribute " + k + " without a quoted value");
      p_ += 2;
      const size_t e = s_.find('"', p_);
      if (e == std::string::npos) throw std::runtime_error("unterminated attribute " + k);
      if (!n->attr.emplace(k, unescape(s_.substr(p_, e - p_))).second)
        throw std::runtime_error("attribute " + k + " twice on <" + n->tag + ">");
      p_ = e + 1;
    }
    for (;;) {
      if (p_ >= s_.size()) throw std::runtime_error("<" + n->tag + "> not closed");
      if (starts("</")) {
        p_ += 2;
        if (name() != n->tag) throw std::runtime_error("mismatched </...> for <" + n->tag + ">");
        ws();
        if (!starts(">")) throw std::runtime_error("bad end tag");
        ++p_;
        return n;
      }
      if (starts("<!--")) {
        p_ = s_.find("-->", p_) + 3;
        continue;
      }
      if (starts("<")) {
        n->kids.push_back(element());
        continue;
      }
      const size_t e = s_.find('<', p_);
      n->text += unescape(s_.substr(p_, e - p_));
      p_ = e;
    }
  }
};

void collect(const Node& n, std::vector<const Node*>& out) {
  out.push_back(&n);
  for (const auto& k : n.kids) collect(*k, out);
}
std::vector<const Node*> by_class(const Node& root, const std::string& cls, const std::string& tag = "") {
  std::vector<const Node*> all, out;
  collect(root, all);
  for (const Node* n : all)
    if (n->get("class") == cls && (tag.empty() || n->tag == tag)) out.push_back(n);
  return out;
}

// ---------------------------------------------------------------- rows with known figures

CompareRow row(const std::string& name, double bpw, double kld, double dppl) {
  CompareRow r;
  r.name = name;
  r.kind = name == "base" ? "base" : "gguf";
  r.bpw = bpw;
  r.bytes = uint64_t(bpw * 1000);
  r.ppl = 10.0 * (1 + dppl / 100);
  r.dppl_pct = dppl;
  r.kld = kld;
  return r;
}

// Listed out of bpw order on purpose.
std::vector<CompareRow> rows() {
  return {row("q4_K_M", 4.9, 0.012, 0.9),   row("base", 32.0, 0.0, 0.0),  row("q8_0", 8.5, 0.0004, -0.02),
          row("rtn4g-1", 5.0, 0.05, 3.5),   row("q2_K", 2.6, 0.4, 35.0),  row("f16", 16.0, 1e-5, 0.01),
          row("q6_K", 6.56, 0.002, 0.15),   row("q4_0", 4.5, 0.03, 2.1)};
}

CompareSetup setup() {
  CompareSetup s;
  s.model = "/models/stories260K/stories260K-f32.gguf";
  s.text = "/text/tinystories_val.txt";
  s.text_sha256 = std::string(64, 'a');
  s.n_ctx = 128;
  s.chunks = 8;
  s.protocol = "llama.cpp";
  s.top_k = 32;
  return s;
}

double measure(const CompareRow& r, PlotY y) { return y == PlotY::Kld ? r.kld : r.dppl_pct; }

// Worked out by hand from the rows above (bpw order).
//   KLD:  rtn4g-1 (5.0, 0.05) is dominated by q4_K_M (4.9, 0.012) and q4_0; base (KLD 0) is on the front but
//         not plotted.
//   ΔPPL: q8_0 (8.5, -0.02 %) dominates f16 (16, +0.01 %) and base (32, 0); it is on the front, not plotted.
const std::vector<std::string> kKldFront = {"q2_K", "q4_0", "q4_K_M", "q6_K", "q8_0", "f16", "base"};
const std::vector<std::string> kDpplFront = {"q2_K", "q4_0", "q4_K_M", "q6_K", "q8_0"};

std::vector<std::pair<double, double>> parse_points(const std::string& pts) {
  std::vector<std::pair<double, double>> out;
  std::istringstream in(pts);
  for (std::string p; in >> p;) {
    const size_t comma = p.find(',');
    out.emplace_back(std::stod(p.substr(0, comma)), std::stod(p.substr(comma + 1)));
  }
  return out;
}

// The document checks shared by both measures.
void check_svg(const std::string& svg, PlotY y, const std::vector<std::string>& front) {
  std::unique_ptr<Node> root;
  ASSERT_NO_THROW(root = XmlReader(svg).document()) << svg;
  ASSERT_EQ(root->tag, "svg");
  const double W = root->num("width"), H = root->num("height");
  EXPECT_GE(W, 600);
  EXPECT_GE(H, 400);

  // Title with model, text, ctx.
  const auto title = by_class(*root, "title"), sub = by_class(*root, "subtitle");
  ASSERT_EQ(title.size(), 1u);
  ASSERT_EQ(sub.size(), 1u);
  EXPECT_NE(title[0]->text.find(y == PlotY::Kld ? "KLD" : "ΔPPL"), std::string::npos) << title[0]->text;
  EXPECT_NE(sub[0]->text.find("stories260K-f32.gguf"), std::string::npos) << sub[0]->text;
  EXPECT_NE(sub[0]->text.find("tinystories_val.txt"), std::string::npos) << sub[0]->text;
  EXPECT_NE(sub[0]->text.find("ctx 128"), std::string::npos) << sub[0]->text;

  // Axis titles with units; a legend naming the front.
  const auto axes = by_class(*root, "axis-title");
  ASSERT_EQ(axes.size(), 2u);
  EXPECT_NE(axes[0]->text.find("bits per weight"), std::string::npos);
  EXPECT_NE(axes[1]->text.find(y == PlotY::Kld ? "nats" : "%"), std::string::npos) << axes[1]->text;
  EXPECT_NE(axes[1]->text.find("log scale"), std::string::npos);
  ASSERT_EQ(by_class(*root, "legend").size(), 1u);
  EXPECT_FALSE(by_class(*root, "grid").empty());

  // x ticks: increasing values at increasing x, evenly spaced, covering every row's bpw that is plotted.
  const auto xt = by_class(*root, "xtick", "text");
  ASSERT_GE(xt.size(), 4u);
  for (size_t i = 1; i < xt.size(); ++i) {
    EXPECT_GT(std::stod(xt[i]->text), std::stod(xt[i - 1]->text));
    EXPECT_GT(xt[i]->num("x"), xt[i - 1]->num("x"));
  }
  const double x0 = xt.front()->num("x"), v0 = std::stod(xt.front()->text);
  const double px_per_bpw = (xt.back()->num("x") - x0) / (std::stod(xt.back()->text) - v0);
  auto X = [&](double bpw) { return x0 + (bpw - v0) * px_per_bpw; };

  // y ticks: the decades are powers of ten, equally spaced on screen (log scale), larger values higher up.
  std::vector<std::pair<int, double>> decades;  // exponent, y of the label baseline
  for (const Node* t : by_class(*root, "ytick", "text")) {
    const double v = std::stod(t->text);
    ASSERT_GT(v, 0) << t->text;
    const double e = std::log10(v);
    if (std::fabs(e - std::round(e)) < 1e-9) decades.emplace_back(int(std::lround(e)), t->num("y"));
  }
  ASSERT_GE(decades.size(), 2u);
  std::sort(decades.begin(), decades.end());
  const double px_per_decade = decades[0].second - decades[1].second;
  EXPECT_GT(px_per_decade, 20);
  for (size_t i = 1; i < decades.size(); ++i) {
    EXPECT_EQ(decades[i].first, decades[i - 1].first + 1);
    EXPECT_NEAR(decades[i - 1].second - decades[i].second, px_per_decade, 0.2);
  }
  // Tick label baselines sit 4 px below the grid line they name.
  auto Y = [&](double v) { return decades[0].second - 4 - (std::log10(v) - decades[0].first) * px_per_decade; };

  // One marker and one label per plotted row, at the place its figures say; unplotted rows named in the caption.
  std::vector<CompareRow> rs = rows();
  std::sort(rs.begin(), rs.end(), [](const CompareRow& a, const CompareRow& b) { return a.bpw < b.bpw; });
  const auto markers = by_class(*root, "marker", "circle");
  const auto labels = by_class(*root, "label", "text");
  std::string caption;
  for (const Node* c : by_class(*root, "caption", "text")) caption += c->text + " ";
  const size_t np = caption.find("Not plotted");
  ASSERT_NE(np, std::string::npos) << caption;
  caption = caption.substr(np);  // the list of rows left out
  std::map<std::string, std::pair<double, double>> at;  // name -> marker centre
  size_t plotted = 0;
  for (const CompareRow& r : rs) {
    const double m = measure(r, y);
    size_t n_marker = 0, n_label = 0;
    for (const Node* mk : markers)
      if (mk->get("data-name") == r.name) {
        ++n_marker;
        at[r.name] = {mk->num("cx"), mk->num("cy")};
        EXPECT_NEAR(mk->num("cx"), X(r.bpw), 0.3) << r.name;
        if (m > 0) {
          EXPECT_NEAR(mk->num("cy"), Y(m), 0.3) << r.name;
        }
        const bool on = std::find(front.begin(), front.end(), r.name) != front.end();
        EXPECT_EQ(mk->get("fill"), on ? "#c00" : "#369") << r.name;
      }
    for (const Node* l : labels) n_label += l->text == r.name ? 1 : 0;
    if (m > 0) {
      ++plotted;
      EXPECT_EQ(n_marker, 1u) << r.name;
      EXPECT_EQ(n_label, 1u) << r.name;
      EXPECT_EQ(caption.find(" " + r.name + ","), std::string::npos) << r.name << " plotted and listed: " << caption;
    } else {
      EXPECT_EQ(n_marker, 0u) << r.name;
      EXPECT_EQ(n_label, 0u) << r.name;
      EXPECT_NE(caption.find(r.name), std::string::npos) << r.name << " missing from the caption: " << caption;
    }
  }
  EXPECT_EQ(markers.size(), plotted);

  // Labels stay on the canvas (a conservative width of 0.7 em per character).
  for (const Node* l : labels) {
    const double lx = l->num("x"), ly = l->num("y"), w = 0.7 * 12 * double(l->text.size());
    const std::string anchor = l->get("text-anchor");
    const double left = anchor == "end" ? lx - w : anchor == "middle" ? lx - w / 2 : lx;
    EXPECT_GE(left, 0) << l->text;
    EXPECT_LE(left + w, W) << l->text;
    EXPECT_GE(ly - 12, 0) << l->text;
    EXPECT_LE(ly, H) << l->text;
  }

  // The front polyline passes through exactly the plotted non-dominated rows, in bpw order.
  const auto poly = by_class(*root, "front", "polyline");
  ASSERT_EQ(poly.size(), 1u);
  const auto pts = parse_points(poly[0]->get("points"));
  std::vector<std::string> expect;
  for (const CompareRow& r : rs)
    if (measure(r, y) > 0 && std::find(front.begin(), front.end(), r.name) != front.end()) expect.push_back(r.name);
  ASSERT_EQ(pts.size(), expect.size());
  for (size_t i = 0; i < pts.size(); ++i) {
    EXPECT_NEAR(pts[i].first, at[expect[i]].first, 0.11) << expect[i];
    EXPECT_NEAR(pts[i].second, at[expect[i]].second, 0.11) << expect[i];
  }
}

// ---------------------------------------------------------------- PNG: inflate (RFC 1951) + scanline filters

class Inflater {
 public:
  Inflater(const uint8_t* p, size_t n) : p_(p), n_(n) {}
  std::vector<uint8_t> run() {
    bool last = false;
    while (!last) {
      last = bits(1);
      const int type = int(bits(2));
      if (type == 0) stored();
      else if (type == 1) fixed();
      else if (type == 2) dynamic();
      else throw std::runtime_error("deflate block type 3");
    }
    return out_;
  }

 private:
  const uint8_t* p_;
  size_t n_, pos_ = 0;
  uint32_t buf_ = 0;
  int nbuf_ = 0;
  std::vector<uint8_t> out_;

  // Canonical Huffman code: count[len] codes of each length, symbols in code order.
  struct Huff {
    std::vector<int> count = std::vector<int>(16, 0), sym;
  };
  uint32_t bits(int n) {
    while (nbuf_ < n) {
      if (pos_ >= n_) throw std::runtime_error("deflate stream truncated");
      buf_ |= uint32_t(p_[pos_++]) << nbuf_;
      nbuf_ += 8;
    }
    const uint32_t v = buf_ & ((1u << n) - 1);
    buf_ >>= n;
    nbuf_ -= n;
    return v;
  }
  static Huff build(const int* len, int n) {
    Huff h;
    for (int i = 0; i < n; ++i) h.count[len[i]]++;
    h.count[0] = 0;
    std::vector<int> offs(16, 0);
    for (int l = 1; l < 16; ++l) offs[l] = offs[l - 1] + h.count[l - 1];
    h.sym.assign(n, 0);
    for (int i = 0; i < n; ++i)
      if (len[i]) h.sym[offs[len[i]]++] = i;
    return h;
  }
  // Codes are read MSB-first one bit at a time; at each length the codes of that length form a range.
  int decode(const Huff& h) {
    int code = 0, first = 0, index = 0;
    for (int l = 1; l < 16; ++l) {
      code |= int(bits(1));
      const int c = h.count[l];
      if (code - first < c) return h.sym[index + (code - first)];
      index += c;
      first = (first + c) << 1;
      code <<= 1;
    }
    throw std::runtime_error("bad Huffman code");
  }
  void stored() {
    buf_ = 0, nbuf_ = 0;  // to a byte boundary
    if (pos_ + 4 > n_) throw std::runtime_error("stored block truncated");
    const unsigned len = p_[pos_] | (p_[pos_ + 1] << 8);
    pos_ += 4;
    if (pos_ + len > n_) throw std::runtime_error("stored block truncated");
    out_.insert(out_.end(), p_ + pos_, p_ + pos_ + len);
    pos_ += len;
  }
  void codes(const Huff& lit, const Huff& dist) {
    static const int lbase[29] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31,
                                  35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
    static const int lext[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
    static const int dbase[30] = {1,    2,    3,    4,    5,    7,     9,     13,    17,  25,
                                  33,   49,   65,   97,   129,  193,   257,   385,   513, 769,
                                  1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
    static const int dext[30] = {0, 0, 0, 0, 1, 1, 2, 2,  3,  3,  4,  4,  5,  5,  6,
                                 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};
    for (;;) {
      const int s = decode(lit);
      if (s < 256) {
        out_.push_back(uint8_t(s));
      } else if (s == 256) {
        return;
      } else {
        const int li = s - 257;
        if (li >= 29) throw std::runtime_error("bad length symbol");
        const int len = lbase[li] + int(bits(lext[li]));
        const int di = decode(dist);
        if (di >= 30) throw std::runtime_error("bad distance symbol");
        const size_t d = size_t(dbase[di]) + bits(dext[di]);
        if (d > out_.size()) throw std::runtime_error("distance before the start");
        for (int i = 0; i < len; ++i) out_.push_back(out_[out_.size() - d]);
      }
    }
  }
  void fixed() {
    int len[288];
    for (int i = 0; i < 288; ++i) len[i] = i < 144 ? 8 : i < 256 ? 9 : i < 280 ? 7 : 8;
    int dl[30];
    std::fill(dl, dl + 30, 5);
    codes(build(len, 288), build(dl, 30));
  }
  void dynamic() {
    const int nlen = int(bits(5)) + 257, ndist = int(bits(5)) + 1, ncode = int(bits(4)) + 4;
    static const int order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
    int cl[19] = {0};
    for (int i = 0; i < ncode; ++i) cl[order[i]] = int(bits(3));
    const Huff clh = build(cl, 19);
    std::vector<int> len(size_t(nlen + ndist), 0);
    for (int i = 0; i < nlen + ndist;) {
      const int s = decode(clh);
      if (s < 16) {
        len[size_t(i++)] = s;
        continue;
      }
      int rep = 0, val = 0;
      if (s == 16) {
        if (i == 0) throw std::runtime_error("repeat with no previous length");
        val = len[size_t(i - 1)], rep = 3 + int(bits(2));
      } else if (s == 17) {
        rep = 3 + int(bits(3));
      } else {
        rep = 11 + int(bits(7));
      }
      if (i + rep > nlen + ndist) throw std::runtime_error("too many code lengths");
      while (rep--) len[size_t(i++)] = val;
    }
    codes(build(len.data(), nlen), build(len.data() + nlen, ndist));
  }
};

struct Image {
  uint32_t w = 0, h = 0;
  std::vector<uint8_t> rgba;  // [h, w, 4]
  const uint8_t* px(uint32_t x, uint32_t y) const { return &rgba[(size_t(y) * w + x) * 4]; }
};

uint32_t be32(const uint8_t* p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }

Image decode_png(const std::string& bytes) {
  const auto* b = reinterpret_cast<const uint8_t*>(bytes.data());
  static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (bytes.size() < 8 || !std::equal(sig, sig + 8, b)) throw std::runtime_error("no PNG signature");
  Image img;
  int color = -1, depth = -1;
  std::vector<uint8_t> z;
  for (size_t p = 8; p + 12 <= bytes.size();) {
    const uint32_t len = be32(b + p);
    const std::string type(bytes.data() + p + 4, 4);
    if (p + 12 + len > bytes.size()) throw std::runtime_error("chunk " + type + " truncated");
    const uint8_t* d = b + p + 8;
    if (type == "IHDR") {
      img.w = be32(d), img.h = be32(d + 4), depth = d[8], color = d[9];
      if (d[12] != 0) throw std::runtime_error("interlaced PNG");
    } else if (type == "IDAT") {
      z.insert(z.end(), d, d + len);
    } else if (type == "IEND") {
      break;
    }
    p += 12 + len;
  }
  if (depth != 8 || (color != 6 && color != 2)) throw std::runtime_error("not 8-bit RGB(A)");
  if (z.size() < 6 || (z[0] & 0x0f) != 8) throw std::runtime_error("not a zlib deflate stream");
  const std::vector<uint8_t> raw = Inflater(z.data() + 2, z.size() - 2).run();
  const size_t bpp = color == 6 ? 4 : 3, stride = size_t(img.w) * bpp;
  if (raw.size() != size_t(img.h) * (stride + 1)) throw std::runtime_error("image data of the wrong size");
  std::vector<uint8_t> cur(stride), prev(stride, 0);
  img.rgba.resize(size_t(img.w) * img.h * 4);
  for (uint32_t y = 0; y < img.h; ++y) {
    const uint8_t f = raw[y * (stride + 1)];
    const uint8_t* in = &raw[y * (stride + 1) + 1];
    for (size_t i = 0; i < stride; ++i) {
      const int a = i >= bpp ? cur[i - bpp] : 0, up = prev[i], c = i >= bpp ? prev[i - bpp] : 0;
      int pred = 0;
      switch (f) {
        case 0: pred = 0; break;
        case 1: pred = a; break;
        case 2: pred = up; break;
        case 3: pred = (a + up) / 2; break;
        case 4: {  // Paeth
          const int pp = a + up - c, pa = std::abs(pp - a), pb = std::abs(pp - up), pc = std::abs(pp - c);
          pred = pa <= pb && pa <= pc ? a : pb <= pc ? up : c;
          break;
        }
        default: throw std::runtime_error("bad filter type");
      }
      cur[i] = uint8_t(in[i] + pred);
    }
    for (uint32_t x = 0; x < img.w; ++x)
      for (int k = 0; k < 4; ++k) img.rgba[(size_t(y) * img.w + x) * 4 + k] = k < int(bpp) ? cur[x * bpp + k] : 255;
    std::swap(cur, prev);
  }
  return img;
}

bool near_colour(const uint8_t* p, int r, int g, int b, int tol) {
  return std::abs(p[0] - r) <= tol && std::abs(p[1] - g) <= tol && std::abs(p[2] - b) <= tol;
}

bool have_rsvg() { return std::system("command -v rsvg-convert >/dev/null 2>&1") == 0; }
const char* const kNoRsvg = "rsvg-convert not found: install the Debian package librsvg2-bin (scripts/setup.sh)";

}  // namespace

TEST(ReportRender, FrontMatchesHandWorkedValues) {
  EXPECT_EQ(pareto_front(rows(), PlotY::Kld), kKldFront);
  EXPECT_EQ(pareto_front(rows(), PlotY::DPpl), kDpplFront);
  EXPECT_EQ(parse_plot_y("kld"), PlotY::Kld);
  EXPECT_EQ(parse_plot_y("dppl"), PlotY::DPpl);
  try {
    parse_plot_y("ppl");
    ADD_FAILURE() << "expected lowbit::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--y"), std::string::npos) << e.what();
  }
  // A NaN measure takes no part in the front and is not plotted.
  std::vector<CompareRow> rs = rows();
  rs.push_back(row("broken", 3.0, std::nan(""), std::nan("")));
  EXPECT_EQ(pareto_front(rs, PlotY::Kld), kKldFront);
  const std::string svg = pareto_svg(setup(), rs, PlotY::Kld);
  EXPECT_EQ(svg.find("data-name=\"broken\""), std::string::npos);
  EXPECT_NE(svg.find("broken"), std::string::npos);  // named in the caption
}

TEST(ReportRender, KldPlotDocument) { check_svg(pareto_svg(setup(), rows(), PlotY::Kld), PlotY::Kld, kKldFront); }

TEST(ReportRender, DpplPlotDocument) {
  check_svg(pareto_svg(setup(), rows(), PlotY::DPpl), PlotY::DPpl, kDpplFront);
  // report.md names the measure; report.json carries it and the front.
  const std::string md = report_markdown(setup(), rows(), PlotY::DPpl);
  EXPECT_NE(md.find("`--y dppl`"), std::string::npos);
  EXPECT_NE(md.find("q2_K, q4_0, q4_K_M, q6_K, q8_0."), std::string::npos);
  const auto j = report_json(setup(), rows(), PlotY::DPpl);
  EXPECT_EQ(j["plot"]["y"], "dppl");
  EXPECT_EQ(j["plot"]["front"].get<std::vector<std::string>>(), kDpplFront);
}

TEST(ReportRender, NothingToPlot) {  // a sweep of the base alone: an empty plot that still reads and renders
  const std::string svg = pareto_svg(setup(), {row("base", 32.0, 0.0, 0.0)}, PlotY::Kld);
  std::unique_ptr<Node> root;
  ASSERT_NO_THROW(root = XmlReader(svg).document()) << svg;
  EXPECT_TRUE(by_class(*root, "marker").empty());
  EXPECT_TRUE(by_class(*root, "front").empty());
  ASSERT_FALSE(by_class(*root, "caption").empty());
  EXPECT_NE(by_class(*root, "caption").back()->text.find("base"), std::string::npos);
  EXPECT_GE(by_class(*root, "ytick").size(), 2u);
  if (!have_rsvg()) GTEST_SKIP() << kNoRsvg;
  const std::string dir = test::temp_dir() + "/render-empty";
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/pareto.svg") << svg;
  const std::string cmd = "rsvg-convert -w 400 -o " + dir + "/out.png " + dir + "/pareto.svg";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  Image img;
  ASSERT_NO_THROW(img = decode_png(read_text_file(dir + "/out.png")));
  EXPECT_EQ(img.w, 400u);
}

TEST(ReportRender, RenderedPng) {
  if (!have_rsvg()) GTEST_SKIP() << kNoRsvg;
  const std::string dir = test::temp_dir() + "/render";
  std::filesystem::create_directories(dir);
  write_compare_report(dir, setup(), rows(), PlotY::Kld);  // pareto.svg as the sweep writes it
  std::ofstream(dir + "/pareto_dppl.svg") << pareto_svg(setup(), rows(), PlotY::DPpl);
  for (const std::string name : {"pareto", "pareto_dppl"}) {
    SCOPED_TRACE(name);
    const std::string svg = read_text_file(dir + "/" + name + ".svg");
    const std::string png_path = dir + "/" + name + ".png";
    const std::string cmd = "rsvg-convert -w 800 -o " + png_path + " " + dir + "/" + name + ".svg";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    if (const char* keep = std::getenv("LOWBIT_KEEP_PLOT"))  // a look by eye: LOWBIT_KEEP_PLOT=DIR
      std::filesystem::copy_file(png_path, std::string(keep) + "/" + name + ".png",
                                 std::filesystem::copy_options::overwrite_existing);
    const std::string png = read_text_file(png_path);
    ASSERT_GT(png.size(), 5000u);  // a plot with text, not an empty canvas
    Image img;
    ASSERT_NO_THROW(img = decode_png(png));
    EXPECT_EQ(img.w, 800u);
    const auto root = XmlReader(svg).document();
    const double scale = 800.0 / root->num("width");
    EXPECT_NEAR(double(img.h), root->num("height") * scale, 1.0);

    // Nothing drawn within 3 px of the edges: no label runs off the canvas.
    size_t edge_ink = 0;
    for (uint32_t y = 0; y < img.h; ++y)
      for (uint32_t x = 0; x < img.w; ++x)
        if ((x < 3 || y < 3 || x + 3 >= img.w || y + 3 >= img.h) && !near_colour(img.px(x, y), 255, 255, 255, 8))
          ++edge_ink;
    EXPECT_EQ(edge_ink, 0u);

    // Each marker's centre pixel has its colour: front red, dominated blue.
    size_t n_blue = 0;
    for (const Node* m : by_class(*root, "marker", "circle")) {
      const auto x = uint32_t(std::lround(m->num("cx") * scale)), y = uint32_t(std::lround(m->num("cy") * scale));
      ASSERT_LT(x, img.w);
      ASSERT_LT(y, img.h);
      const bool red = m->get("fill") == "#c00";
      n_blue += red ? 0 : 1;
      EXPECT_TRUE(near_colour(img.px(x, y), red ? 0xcc : 0x33, red ? 0x00 : 0x66, red ? 0x00 : 0x99, 24))
          << m->get("data-name") << " at " << x << "," << y;
    }
    EXPECT_GE(n_blue, 1u);  // rtn4g-1 (and f16 on the ΔPPL plot)
    // The front line is drawn: red ink well beyond the markers' own area.
    size_t red = 0, dark = 0;
    for (uint32_t y = 0; y < img.h; ++y)
      for (uint32_t x = 0; x < img.w; ++x) {
        red += near_colour(img.px(x, y), 0xcc, 0, 0, 40) ? 1 : 0;
        dark += img.px(x, y)[0] < 80 && img.px(x, y)[1] < 80 && img.px(x, y)[2] < 80 ? 1 : 0;
      }
    EXPECT_GT(red, 300u);
    EXPECT_GT(dark, 2000u);  // text, ticks and the frame
  }
}
