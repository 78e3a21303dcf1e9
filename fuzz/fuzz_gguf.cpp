// Fuzzes the GGUF reader (GgufFile) and the GGUF model loader (load_gguf_model:
// config from {arch}.* metadata, weights, embedded tokenizer). GgufFile only
// opens paths, so the input is written to a per-process temp file.
// After a successful parse every tensor view and every metadata value is
// touched through each accessor; a loaded tokenizer encodes a fixed text.
// Seeds: fuzz/corpus/gguf/ and ../shared's stories260K-f32.gguf.
#include <climits>

#include "fuzz_common.h"
#include "io/gguf.h"
#include "io/gguf_model.h"
#include "model/model.h"

using namespace lowbit;
using namespace lowbit_fuzz;

namespace {

// Nested arrays, element by element, through the typed reader.
void touch_array(const GgufArray& a, int depth) {
  FUZZ_CHECK(depth <= 16, "arrays nested %d deep", depth);
  const size_t n = a.size();
  switch (a.type) {
    case GgufType::String: FUZZ_CHECK(n == a.strings.size(), "string array size"); break;
    case GgufType::Array:
      FUZZ_CHECK(n == a.arrays.size(), "nested array size");
      for (const GgufValue& v : a.arrays) {
        const GgufArray* inner = v.get_if<GgufArray>();
        FUZZ_CHECK(inner != nullptr, "a nested array element is not an array");
        touch_array(*inner, depth + 1);
      }
      break;
    default: {
      const size_t w = gguf_scalar_size(a.type);
      FUZZ_CHECK(w > 0 && a.raw.size() == n * w, "packed array of %zu elements holds %zu bytes", n, a.raw.size());
      double acc = 0;
      for (size_t i = 0; i < n; ++i) {
        switch (a.type) {
          case GgufType::U8: acc += a.at<uint8_t>(i); break;
          case GgufType::I8: acc += a.at<int8_t>(i); break;
          case GgufType::U16: acc += a.at<uint16_t>(i); break;
          case GgufType::I16: acc += a.at<int16_t>(i); break;
          case GgufType::U32: acc += a.at<uint32_t>(i); break;
          case GgufType::I32: acc += a.at<int32_t>(i); break;
          case GgufType::F32: acc += double(a.at<float>(i)); break;
          case GgufType::Bool: acc += a.at<bool>(i); break;
          case GgufType::U64: acc += double(a.at<uint64_t>(i)); break;
          case GgufType::I64: acc += double(a.at<int64_t>(i)); break;
          case GgufType::F64: acc += a.at<double>(i); break;
          default: break;
        }
      }
      (void)acc;
    }
  }
}

void touch_file(const GgufFile& f) {
  // ---- metadata: every value through the generic and the typed accessors.
  for (const GgufKV& kv : f.kvs()) {
    const std::string& k = kv.key;
    FUZZ_CHECK(f.find_kv(k) == &kv.value, "find_kv('%s') does not find the entry", k.c_str());
    (void)kv.value.to_string();
    if (kv.value.is_integer()) (void)kv.value.as_int();
    if (const GgufArray* a = kv.value.get_if<GgufArray>()) touch_array(*a, 0);
    // Each accessor either returns or throws lowbit::Error (wrong type, out of range).
    expect_ok_or_error([&] { (void)f.get_int(k); });
    expect_ok_or_error([&] { (void)f.get_int(k, 0); });
    expect_ok_or_error([&] { (void)f.get_float(k); });
    expect_ok_or_error([&] { (void)f.get_bool(k); });
    expect_ok_or_error([&] { (void)f.get_str(k); });
    expect_ok_or_error([&] { (void)f.get_arr_str(k); });
    expect_ok_or_error([&] { (void)f.get_arr_f32(k); });
    expect_ok_or_error([&] { (void)f.get_arr_i32(k); });
    switch (kv.value.type()) {
      case GgufType::U8: (void)f.get_u8(k); break;
      case GgufType::I8: (void)f.get_i8(k); break;
      case GgufType::U16: (void)f.get_u16(k); break;
      case GgufType::I16: (void)f.get_i16(k); break;
      case GgufType::U32: (void)f.get_u32(k); break;
      case GgufType::I32: (void)f.get_i32(k); break;
      case GgufType::F32: (void)f.get_f32(k); break;
      case GgufType::Bool: (void)f.get_bool(k); break;
      case GgufType::String: (void)f.get_str(k); break;
      case GgufType::Array: (void)f.get_arr(k); break;
      case GgufType::U64: (void)f.get_u64(k); break;
      case GgufType::I64: (void)f.get_i64(k); break;
      case GgufType::F64: (void)f.get_f64(k); break;
    }
  }

  // ---- tensors: infos and views agree, data lies inside the file.
  FUZZ_CHECK(f.infos().size() == f.tensors().size(), "%zu infos but %zu views", f.infos().size(), f.tensors().size());
  FUZZ_CHECK(f.data_offset() <= f.file_size() || f.infos().empty(), "data section starts past the end");
  for (size_t i = 0; i < f.infos().size(); ++i) {
    const GgufTensorInfo& ti = f.infos()[i];
    const TensorView& v = f.tensors()[i];
    FUZZ_CHECK(v.name == ti.name, "view %zu is '%s', info '%s'", i, v.name.c_str(), ti.name.c_str());
    FUZZ_CHECK(f.find_info(ti.name) == &ti, "find_info('%s')", ti.name.c_str());
    FUZZ_CHECK(ggml_type_info(ti.ggml_type) != nullptr, "tensor '%s' has an unknown type", ti.name.c_str());
    FUZZ_CHECK(ti.offset % f.alignment() == 0, "tensor '%s' is misaligned", ti.name.c_str());
    const uint64_t fsize = f.file_size(), start = f.data_offset();
    FUZZ_CHECK(start <= fsize && ti.offset <= fsize - start && ti.nbytes <= fsize - start - ti.offset,
               "tensor '%s' data [%llu + %llu, +%llu) lies past the end of the %llu-byte file", ti.name.c_str(),
               (unsigned long long)f.data_offset(), (unsigned long long)ti.offset, (unsigned long long)ti.nbytes,
               (unsigned long long)f.file_size());
    FUZZ_CHECK(v.nbytes == ti.nbytes, "tensor '%s': view nbytes %zu, info %llu", ti.name.c_str(), v.nbytes,
               (unsigned long long)ti.nbytes);
    if (v.data) FUZZ_CHECK(v.data == f.raw_data(ti), "tensor '%s': view does not point at its data", ti.name.c_str());
    touch_view(v);
    (void)ggml_type_name(ti.ggml_type);
    expect_ok_or_error([&] { touch_view(f.view(ti.name)); });
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  quiet_logs();
  static TempDir dir("gguf");
  const std::string path = dir.write("model.gguf", data, size);

  expect_ok_or_error([&] {
    GgufFile f(path);
    touch_file(f);
  });

  expect_ok_or_error([&] {
    Model m;
    load_gguf_model(path, m);
    for (const auto& [name, t] : m.weights) {
      FUZZ_CHECK(t.data != nullptr || t.nbytes == 0, "model weight '%s' has no data", name.c_str());
      touch_view(t);
    }
    (void)m.n_params();
    if (m.tokenizer) {
      const Tokenizer& tok = *m.tokenizer;
      encode_checked(tok, "Once upon a time, there was a little girl named Lily. \xC3\xA9t\xC3\xA9 <s> 123", true);
      encode_checked(tok, std::string_view("\xFF\xFE\x00 broken \xE2\x96", 14), false);
      const int32_t n = std::min<int32_t>(tok.n_vocab(), 1024);
      for (int32_t id = 0; id < n; ++id) (void)tok.decode_token(id, id - 1);
    }
  });
  return 0;
}
