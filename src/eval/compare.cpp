#include "eval/compare.h"

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
#include "quant/gguf_export.h"
#include "quant/method_quantize.h"
#include "quant/recipe.h"

namespace lowbit {

using nlohmann::json;

namespace {

std::string syntax_hint() {
  return "a candidate is base, a GGUF type (" + recipe_type_names() +
         ") or <method><bits>g<group>[sym] with method rtn|gptq|awq, bits 2|3|4|8, group N or -1 or row "
         "(rtn4g64, gptq3g-1, gptq3row, awq4g128, rtn4g128sym)";
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
    case Kind::Method: return method + " " + spec.name() + " (in memory)";
  }
  return "";
}

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
  static const std::regex method_re("(rtn|gptq|awq)(\\d+)(?:g(-?\\d+)|(row))(sym)?");
  std::smatch m;
  if (std::regex_match(s, m, method_re)) {
    c.kind = Candidate::Kind::Method;
    c.method = m[1].str();
    c.spec.bits = std::stoi(m[2].str());
    if (c.spec.bits != 2 && c.spec.bits != 3 && c.spec.bits != 4 && c.spec.bits != 8)
      fail(where, fmt::format("{} bits is not supported", c.spec.bits), "bits must be 2, 3, 4 or 8");
    if (m[4].matched) {
      c.spec.group_size = -1;
    } else {
      const std::string g = m[3].str();
      if (g.size() > 6) fail(where, "group size " + g + " is too large", syntax_hint());
      c.spec.group_size = std::stoi(g);
      if (c.spec.group_size == 0 || c.spec.group_size < -1)
        fail(where, "group size " + g + " must be positive or -1 (one group per row)", syntax_hint());
    }
    c.spec.sym = m[5].matched;
    return c;
  }
  static const std::regex method_like("(rtn|gptq|awq).*");
  if (std::regex_match(s, method_like))
    fail(where, "not of the form <method><bits>g<group>[sym]", syntax_hint());
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
  if (c.kind == Candidate::Kind::Method) k.erase("tg");  // not measured
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
  KldOptions ko;
  ko.n_ctx = o.n_ctx;
  ko.max_chunks = o.chunks;
  ko.protocol = parse_ppl_protocol(o.protocol);
  ko.n_threads = threads;
  ko.top_k = o.top_k;
  auto need_base = [&] {
    if (base_logits) return;
    base = load_model(o.model, lo);
    log_info(fmt::format("compare: base logits of {} (top-{})", o.model, o.top_k));
    base_logits = kld_base_logits(*base, text, ko);
    write_kld_base(base_logits_path, *base_logits);
    s.text_tokens = base_logits->n_text_tokens;
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
  std::optional<Progress> bar;
  if (todo > 0) bar.emplace("compare", todo);
  int64_t done = 0;
  for (size_t i = 0; i < all.size(); ++i) {
    const Candidate& c = all[i];
    if (rows[i]) {
      res.rows.push_back(std::move(*rows[i]));
      continue;
    }
    const std::string row_path = cand_dir + "/" + c.name + ".json";
    const json key = row_key(s, c);
    need_base();
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
      owned = load_model(gguf, lo);
      evaluated = owned.get();
    } else {
      row.kind = "method";
      owned = load_model(o.model, lo);
      std::map<std::string, uint64_t> stored;  // bytes before quantization
      for (const auto& [name, v] : owned->weights) stored[name] = v.nbytes;
      MethodOptions mo;
      mo.method = c.method;
      mo.spec = c.spec;
      mo.calib.path = o.calib;
      mo.calib.nsamples = o.nsamples;
      mo.calib.seqlen = o.seqlen;
      mo.run.threads = threads;
      const auto t0 = Clock::now();
      const std::map<std::string, IntGroupQuant> ints = quantize_hf_with_method(*owned, mo, "");
      row.quantize_s = seconds_since(t0);
      double bits = 0;
      int64_t n = 0;
      std::set<std::string> left;
      for (const auto& [name, v] : owned->weights) {
        n += v.numel();
        auto q = ints.find(name);
        if (q != ints.end()) {
          const double g = double(c.spec.group_columns(v.cols()));
          bits += double(v.numel()) * (double(c.spec.bits) + (16.0 + double(c.spec.bits)) / g);
        } else {
          bits += 8.0 * double(stored[name]);
          if (is_block_linear(name)) left.insert(linear_kind(name));
        }
      }
      row.bytes = uint64_t(bits / 8.0 + 0.5);
      row.bpw = n ? bits / double(n) : 0.0;
      if (!left.empty()) {
        std::string kinds;
        for (const std::string& k : left) kinds += (kinds.empty() ? "" : ", ") + k;
        row.note = "left unquantized (group does not divide the inputs): " + kinds;
      }
      evaluated = owned.get();
    }
    log_info(fmt::format("compare: evaluating {}", c.name));
    const KldResult r = kld_from_saved(*base_logits, *evaluated, text, ko, base_logits_path);
    row.ppl = r.ppl_quant;
    row.ppl_err = r.ppl_quant_err;
    row.dppl_pct = (r.ppl_quant / r.ppl_base - 1.0) * 100.0;
    row.kld = r.kld_mean;
    row.kld_err = r.kld_err;
    row.top1_pct = 100.0 * r.top1;
    row.top1_err_pct = 100.0 * r.top1_err;
    if (c.kind == Candidate::Kind::Base) row.kld = row.kld_err = 0.0;  // the reference itself, by definition
    if (c.kind != Candidate::Kind::Method) row.tg_tps = tg_speed(*evaluated);
    json file{{"key", key}, {"text_tokens", r.n_text_tokens}, {"row", row_to_json(row)}};
    write_file_atomic(row_path, file.dump(2) + "\n");
    res.rows.push_back(std::move(row));
    bar->update(++done, c.name);
  }
  if (bar) bar->finish();
  write_compare_report(o.out_dir, s, res.rows);
  return res;
}

}  // namespace lowbit
