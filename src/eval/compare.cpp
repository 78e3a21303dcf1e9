#include "eval/compare.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "core/log.h"
#include "core/read_file.h"
#include "core/sha256.h"
#include "eval/kld.h"
#include "eval/speed_bench.h"
#include "formats/format.h"
#include "io/model_loader.h"
#include "lowbit/error.h"
#include "methods/quantizer.h"
#include "quant/gguf_export.h"
#include "quant/method_quantize.h"
#include "quant/recipe.h"

namespace lowbit {

using nlohmann::json;

namespace {

std::string method_names() {
  std::string names;
  for (const Quantizer* q : all_quantizers()) names += (names.empty() ? "" : ", ") + q->name();
  return names;
}

std::string syntax_hint() {
  return "a candidate is base, a GGUF type (" + recipe_type_names() +
         ") or <method>[<bits>][g<group>|row][a<axis>][sym][dq] with a method of `lowbit quantize --list` (" + method_names() +
         "): rtn4g64, gptq3g-1, gptq3row, awq4g128sym, hqq3g64, hqq2g64a0, kmeans4row, nf4, nf4dq, fp4, llm.int8, w8a8, w4a8row";
}

// The llama.cpp mix names, read from recipe_type_names() ("Q2_K Q3_K_S ... (mixes), or one format: ...").
std::set<std::string> mix_names() {
  std::set<std::string> names;
  std::istringstream in(recipe_type_names());
  for (std::string w; in >> w;) {
    if (w.front() == '(') break;
    names.insert(w);
  }
  return names;
}

std::string upper(std::string s) {
  for (char& c : s) c = char(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

std::string Candidate::detail() const {
  switch (kind) {
    case Kind::Base: return "the model as loaded";
    case Kind::Gguf: return mix_names().count(type) ? type + " mix (GGUF)" : type + " pure (GGUF)";
    case Kind::Method: return cfg.describe() + " (in memory)";
  }
  return "";
}

bool Candidate::needs_calib() const { return kind == Kind::Method && find_quantizer(method).needs_calibration(); }

Candidate parse_candidate(const std::string& s) {
  const std::string where = "candidate '" + s + "'";
  if (s.empty()) fail("--candidates", "empty candidate name", syntax_hint());
  static const std::regex allowed("[A-Za-z0-9_.-]+");
  if (!std::regex_match(s, allowed))
    fail(where, "may only contain letters, digits, '_', '.' and '-' (it names files)", syntax_hint());
  Candidate c;
  c.name = s;
  if (s == "base") {
    c.kind = Candidate::Kind::Base;
    return c;
  }
  // A registry method, longest name first ("w4a8" before "w"), then its knobs.
  std::vector<const Quantizer*> methods = all_quantizers();
  std::sort(methods.begin(), methods.end(), [](const Quantizer* a, const Quantizer* b) { return a->name().size() > b->name().size(); });
  static const std::regex knobs_re("(\\d+)?(?:g(-?\\d+)|(row))?(?:a([01]))?(sym)?(dq)?");
  for (const Quantizer* q : methods) {
    if (!s.starts_with(q->name())) continue;
    std::smatch m;
    const std::string rest = s.substr(q->name().size());
    if (!std::regex_match(rest, m, knobs_re)) continue;
    c.kind = Candidate::Kind::Method;
    c.method = q->name();
    c.cfg = q->default_config();
    if (m[1].matched) {
      if (m[1].length() > 2) fail(where, m[1].str() + " bits is not supported", syntax_hint());
      c.cfg.bits = std::stoi(m[1].str());
    }
    if (m[3].matched) {
      c.cfg.group_size = -1;
    } else if (m[2].matched) {
      const std::string g = m[2].str();
      if (g.size() > 6) fail(where, "group size " + g + " is too large", syntax_hint());
      c.cfg.group_size = std::stoi(g);
      if (c.cfg.group_size == 0 || c.cfg.group_size < -1)
        fail(where, "group size " + g + " must be positive or -1 (one group per row)", syntax_hint());
    }
    if (m[4].matched) c.cfg.axis = std::stoi(m[4].str());
    c.cfg.sym = c.cfg.sym || m[5].matched;
    c.cfg.double_quant = m[6].matched;
    try {
      q->validate(c.cfg);
    } catch (const Error& e) {
      fail(where, e.what(), syntax_hint());
    }
    return c;
  }
  // GGUF: an exact mix name, a format in any case unless it is a mix in lower case (q4_k_m).
  const std::set<std::string> mixes = mix_names();
  c.kind = Candidate::Kind::Gguf;
  if (mixes.count(s)) {
    c.type = s;
    return c;
  }
  const FormatTraits* f = find_format(s);
  if (f && f->id != FormatId::Q8_K && f->id != FormatId::Q8_1) {
    c.type = std::string(f->name);
    return c;
  }
  if (mixes.count(upper(s))) {
    c.type = upper(s);
    return c;
  }
  fail(where, "unknown candidate", syntax_hint());
}

std::vector<Candidate> parse_candidates(const std::string& list) {
  std::vector<Candidate> out;
  std::set<std::string> seen;
  if (list.empty()) fail("--candidates", "empty list", syntax_hint());
  size_t start = 0;
  while (true) {
    const size_t comma = list.find(',', start);
    const std::string item = list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    Candidate c = parse_candidate(item);
    if (!seen.insert(c.name).second) fail("candidate '" + c.name + "'", "listed twice", "name each candidate once");
    out.push_back(std::move(c));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// The setup fields a candidate's row depends on.
json row_key(const CompareSetup& s, const Candidate& c) {
  json k = s.key();
  if (!c.needs_calib()) k.erase("calib"), k.erase("nsamples"), k.erase("seqlen");
  k["candidate"] = c.name;
  k["detail"] = c.detail();
  return k;
}

std::optional<CompareRow> reusable_row(const std::string& path, const json& key, int64_t* text_tokens) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return std::nullopt;
  json j;
  try {
    j = json::parse(read_text_file(path));
  } catch (const json::exception& e) {
    fail(path, std::string("not valid JSON: ") + e.what(), "delete the file to recompute the candidate");
  }
  if (!j.is_object() || !j.contains("key") || !j.contains("row"))
    fail(path, "not a lowbit compare row file (needs \"key\" and \"row\")", "delete the file to recompute the candidate");
  if (j["key"] != key) {
    log_info(fmt::format("{}: measured with another setup, recomputing", path));
    return std::nullopt;
  }
  CompareRow r = row_from_json(j["row"], path);
  r.reused = true;
  if (j.contains("text_tokens") && j["text_tokens"].is_number_integer()) *text_tokens = j["text_tokens"].get<int64_t>();
  return r;
}

// The setup the base's saved logits depend on: the row key without the candidate-only fields.
json base_logits_key(const CompareSetup& s) {
  json k = s.key();
  for (const char* f : {"calib", "nsamples", "seqlen", "tg"}) k.erase(f);
  return k;
}

// "n_ctx 128 (saved) vs 64 (now), ..." for every field that differs.
std::string key_difference(const json& saved, const json& now) {
  std::string d;
  for (auto it = now.begin(); it != now.end(); ++it) {
    const auto s = saved.find(it.key());
    if (s != saved.end() && *s == it.value()) continue;
    d += fmt::format("{}{} {} (saved) vs {} (now)", d.empty() ? "" : ", ", it.key(),
                     s == saved.end() ? std::string("missing") : s->dump(), it.value().dump());
  }
  for (auto it = saved.begin(); it != saved.end(); ++it)
    if (!now.contains(it.key())) d += fmt::format("{}{} not expected", d.empty() ? "" : ", ", it.key());
  return d;
}

// Base logits a previous run left in DIR, when they were computed with `key`; nullopt (and a log line
// saying why, unless there is nothing at all) otherwise.
std::optional<KldBase> reusable_base_logits(const std::string& lbkld, const std::string& meta, const json& key,
                                            const CompareSetup& s) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const bool have_lbkld = fs::exists(lbkld, ec), have_meta = fs::exists(meta, ec);
  if (!have_lbkld && !have_meta) return std::nullopt;
  auto skip = [](const std::string& why) -> std::optional<KldBase> {
    log_info("compare: recomputing base logits: " + why);
    return std::nullopt;
  };
  if (!have_lbkld) return skip(lbkld + " is missing");
  if (!have_meta) return skip(meta + " (the setup " + lbkld + " was computed with) is missing");
  json j;
  try {
    j = json::parse(read_text_file(meta));
  } catch (const std::exception& e) {
    return skip(meta + " does not parse: " + e.what());
  }
  if (!j.is_object() || !j.contains("key") || !j.contains("lbkld_bytes") || !j["lbkld_bytes"].is_number_unsigned())
    return skip(meta + " lacks \"key\" or \"lbkld_bytes\"");
  if (j["key"] != key) return skip("computed with another setup: " + key_difference(j["key"], key));
  const uint64_t size = fs::file_size(lbkld, ec);
  if (ec || size != j["lbkld_bytes"].get<uint64_t>())
    return skip(fmt::format("{} holds {} bytes, {} recorded {}", lbkld, ec ? 0 : size, meta,
                            j["lbkld_bytes"].get<uint64_t>()));
  KldBase b;
  try {
    b = read_kld_base(lbkld);
  } catch (const Error& e) {
    return skip(e.what());
  }
  // The file must agree with the key it sits next to.
  if (b.text_sha256 != s.text_sha256 || b.n_ctx != s.n_ctx || b.k != s.top_k || b.base_model != s.model ||
      ppl_protocol_name(b.protocol) != s.protocol || (s.chunks >= 0 && b.n_chunks > s.chunks))
    return skip(lbkld + " does not match " + meta + " (text, ctx, top-k, model, protocol or chunks)");
  log_info(fmt::format("compare: reusing base logits {} ({} positions, top-{})", lbkld, b.n_positions(), b.k));
  return b;
}

std::string linear_kind(const std::string& name) {  // "blk.3.ffn_down.weight" -> "ffn_down"
  std::string k = name;
  if (k.rfind("blk.", 0) == 0) k = k.substr(k.find('.', 4) + 1);
  const size_t dot = k.rfind(".weight");
  return dot == std::string::npos ? k : k.substr(0, dot);
}

}  // namespace

CompareResult run_compare(const std::vector<Candidate>& candidates, const CompareOptions& o) {
  namespace fs = std::filesystem;
  // Checks that need no work first.
  for (const Candidate& c : candidates) {
    if (c.needs_calib() && o.calib.empty())
      fail("candidate '" + c.name + "'", c.method + " needs calibration text",
           "pass --calib FILE (e.g. ../shared/text/c4_sample.jsonl; not the evaluation text)");
  }
  if (!o.calib.empty() && !fs::exists(o.calib)) fail(o.calib, "calibration file not found");
  if (o.tg < 0) fail("--tg", fmt::format("{} must be 0 (skip) or positive", o.tg));
  const int threads = o.threads > 0 ? o.threads : std::max(1, int(std::thread::hardware_concurrency()));
  const std::string cand_dir = o.out_dir + "/cand";
  std::error_code ec;
  fs::create_directories(cand_dir, ec);
  if (ec) fail(cand_dir, "cannot create folder: " + ec.message());

  const std::string text = read_text_file(o.text);
  CompareResult res;
  CompareSetup& s = res.setup;
  s.model = o.model;
  s.text = o.text;
  s.text_sha256 = sha256_hex(text);
  s.n_ctx = o.n_ctx;
  s.chunks = o.chunks < 0 ? -1 : o.chunks;
  s.protocol = ppl_protocol_name(parse_ppl_protocol(o.protocol));
  s.top_k = o.top_k;
  s.calib = o.calib;
  s.nsamples = o.nsamples;
  s.seqlen = o.seqlen;
  s.tg = o.tg;
  s.threads = threads;
  s.version = LOWBIT_VERSION;
  s.cpu = cpu_model_name();

  std::vector<Candidate> all{parse_candidate("base")};
  for (const Candidate& c : candidates)
    if (c.kind != Candidate::Kind::Base) all.push_back(c);

  LoadOptions lo;
  lo.tokenizer_path = o.tokenizer;
  std::unique_ptr<Model> base;
  std::optional<KldBase> base_logits;
  const std::string base_logits_path = o.out_dir + "/base.lbkld";
  const std::string base_meta_path = o.out_dir + "/base.json";
  KldOptions ko;
  ko.n_ctx = o.n_ctx;
  ko.max_chunks = o.chunks;
  ko.protocol = parse_ppl_protocol(o.protocol);
  ko.n_threads = threads;
  ko.top_k = o.top_k;
  auto need_model = [&] {
    if (!base) base = load_model(o.model, lo);
  };
  auto tg_speed = [&](const Model& m) {
    if (o.tg <= 0) return -1.0;
    SpeedTest t;
    t.kind = SpeedTest::Kind::Generation;
    t.n_tokens = o.tg;
    SpeedBenchOptions so;
    so.threads = threads;
    so.reps = 1;
    return run_speed_test(m, t, so).mean_tps();
  };

  // Rows an earlier run finished with the same setup are reused; the progress
  // bar (and its ETA) covers the candidates left to compute.
  std::vector<std::optional<CompareRow>> rows(all.size());
  int64_t todo = 0;
  for (size_t i = 0; i < all.size(); ++i) {
    int64_t tokens = 0;
    rows[i] = reusable_row(cand_dir + "/" + all[i].name + ".json", row_key(s, all[i]), &tokens);
    if (rows[i]) {
      if (tokens > 0 && s.text_tokens == 0) s.text_tokens = tokens;
      ++res.n_reused;
    } else {
      ++todo;
    }
  }
  if (res.n_reused)
    log_info(fmt::format("compare: {} of {} candidates reused from {}", res.n_reused, all.size(), cand_dir));
  // One bar over the whole sweep in units of kStep per step (the base logits when computed, each candidate
  // left to compute), advanced per evaluated window; a candidate's quantization is its first kQuant units.
  constexpr int64_t kStep = 1000, kQuant = 300;
  if (todo > 0) {
    base_logits = reusable_base_logits(base_logits_path, base_meta_path, base_logits_key(s), s);
    if (base_logits) s.text_tokens = base_logits->n_text_tokens;
  }
  std::optional<Progress> bar;
  if (todo > 0) bar.emplace("compare", (todo + (base_logits ? 0 : 1)) * kStep);
  int64_t step = 0;  // steps finished
  auto advance = [&](int64_t units, const std::string& what) { bar->update(step * kStep + units, what); };
  auto on_window = [&](int64_t from, const std::string& what) {
    return [&, from, what](int c, int n) { advance(from + (kStep - from) * c / std::max(1, n), what); };
  };
  if (todo > 0 && !base_logits) {
    need_model();
    std::error_code rm;
    std::filesystem::remove(base_meta_path, rm);  // never a key next to other logits
    log_info(fmt::format("compare: base logits of {} (top-{}) into {}", o.model, o.top_k, base_logits_path));
    advance(0, "base logits");
    base_logits = kld_base_logits(*base, text, ko, on_window(0, "base logits"));
    write_kld_base(base_logits_path, *base_logits);
    const json meta{{"key", base_logits_key(s)},
                    {"text_tokens", base_logits->n_text_tokens},
                    {"lbkld_bytes", uint64_t(fs::file_size(base_logits_path))}};
    write_file_atomic(base_meta_path, meta.dump(2) + "\n");
    s.text_tokens = base_logits->n_text_tokens;
    ++step;
  }
  for (size_t i = 0; i < all.size(); ++i) {
    const Candidate& c = all[i];
    if (rows[i]) {
      res.rows.push_back(std::move(*rows[i]));
      continue;
    }
    const std::string row_path = cand_dir + "/" + c.name + ".json";
    const json key = row_key(s, c);
    if (c.kind != Candidate::Kind::Method) need_model();
    if (c.kind != Candidate::Kind::Base) advance(0, c.name + ": quantizing");
    CompareRow row;
    row.name = c.name;
    row.detail = c.detail();
    std::unique_ptr<Model> owned;
    const Model* evaluated = nullptr;
    if (c.kind == Candidate::Kind::Base) {
      row.kind = "base";
      row.bytes = weight_bytes(*base);
      row.bpw = base->n_params() ? 8.0 * double(row.bytes) / double(base->n_params()) : 0.0;
      row.detail = base->format + " as loaded";
      evaluated = base.get();
    } else if (c.kind == Candidate::Kind::Gguf) {
      row.kind = "gguf";
      const std::string gguf = cand_dir + "/" + c.name + ".gguf";
      const auto t0 = Clock::now();
      RecipeOptions ro;
      ro.type = c.type;
      const QuantPlan plan = make_plan(*base, ro);
      ExportOptions eo;
      eo.threads = threads;
      eo.vocab_path = o.tokenizer;  // "" = the model's
      export_gguf(*base, plan, gguf, eo);
      row.quantize_s = seconds_since(t0);
      row.bytes = plan.total_bytes;
      row.bpw = plan.bits_per_weight();
      int n_fallback = 0;
      for (const TensorPlan& t : plan.tensors) n_fallback += t.fallback ? 1 : 0;
      if (n_fallback)
        row.note = fmt::format("{} tensors fell back to another format (lowbit quantize --dry-run lists them)",
                               n_fallback);
      if (!plan.warning.empty()) row.note += (row.note.empty() ? "" : "; ") + std::string("requantized");
      LoadOptions run_lo = lo;
      run_lo.pack_for_cpu = true;  // as lowbit bench / ppl load it
      owned = load_model(gguf, run_lo);
      evaluated = owned.get();
    } else {
      row.kind = "method";
      owned = load_model(o.model, lo);
      CalibrationOptions calib;
      calib.path = o.calib;
      calib.nsamples = o.nsamples;
      calib.seqlen = o.seqlen;
      const auto t0 = Clock::now();
      const QuantizeReport rep = quantize_with_registry(*owned, c.cfg, calib, threads, "");
      row.quantize_s = seconds_since(t0);
      row.bytes = weight_bytes(*owned);  // QLinear layers count their packed state
      row.bpw = owned->n_params() ? 8.0 * double(row.bytes) / double(owned->n_params()) : 0.0;
      std::set<std::string> left;
      for (const std::string& skipped : rep.skipped) left.insert(linear_kind(skipped.substr(0, skipped.find(' '))));
      if (!left.empty()) {
        std::string kinds;
        for (const std::string& k : left) kinds += (kinds.empty() ? "" : ", ") + k;
        row.note = "left unquantized (shape does not fit): " + kinds;
      }
      evaluated = owned.get();
    }
    const int64_t eval_from = c.kind == Candidate::Kind::Base ? 0 : kQuant;
    advance(eval_from, c.name + ": evaluating");
    const KldResult r = kld_from_saved(*base_logits, *evaluated, text, ko, base_logits_path,
                                       on_window(eval_from, c.name + ": evaluating"));
    row.ppl = r.ppl_quant;
    row.ppl_err = r.ppl_quant_err;
    row.dppl_pct = (r.ppl_quant / r.ppl_base - 1.0) * 100.0;
    row.kld = r.kld_mean;
    row.kld_err = r.kld_err;
    row.top1_pct = 100.0 * r.top1;
    row.top1_err_pct = 100.0 * r.top1_err;
    if (c.kind == Candidate::Kind::Base) row.kld = row.kld_err = 0.0;  // the reference itself, by definition
    row.tg_tps = tg_speed(*evaluated);
    json file{{"key", key}, {"text_tokens", r.n_text_tokens}, {"row", row_to_json(row)}};
    write_file_atomic(row_path, file.dump(2) + "\n");
    res.rows.push_back(std::move(row));
    ++step;
    advance(0, c.name + ": done");
  }
  if (bar) bar->finish();
  write_compare_report(o.out_dir, s, res.rows, o.y);
  return res;
}

}  // namespace lowbit
