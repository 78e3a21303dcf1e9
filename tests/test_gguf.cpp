// GGUF: reading llama.cpp's own output (stories260K), writer -> reader round
// trips of every value type, hostile/corrupt files, and loading GGUF models.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "core/log.h"
#include "formats/format.h"
#include "io/gguf.h"
#include "io/gguf_model.h"
#include "io/gguf_writer.h"
#include "lowbit/error.h"
#include "model/model.h"
#include "paths.h"

using namespace lowbit;
namespace fs = std::filesystem;

namespace {

const std::string kStories = "models/stories260K/stories260K-f32.gguf";

std::string tmp(const std::string& name) { return lowbit::test::temp_dir() + "/" + name; }

void write_bytes(const std::string& path, const std::vector<uint8_t>& b) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

// Runs `fn`, requires a lowbit::Error whose message contains every one of `parts`.
template <class F>
void expect_error(F&& fn, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "no error; expected one mentioning '" << parts.front() << "'";
  } catch (const Error& e) {
    std::string msg = e.what();
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  }
}

}  // namespace

// ---------------------------------------------------------------- a file llama.cpp wrote

TEST(GgufRead, StoriesFileFromLlamaCpp) {
  GgufFile f(test::shared(kStories));
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  EXPECT_EQ(f.kvs().size(), 19u);
  EXPECT_EQ(f.tensors().size(), 48u);
  EXPECT_EQ(f.data_offset() % 32, 0u);
  EXPECT_EQ(f.get_str("general.architecture"), "llama");
  EXPECT_EQ(f.get_u32("llama.embedding_length"), 64u);
  EXPECT_EQ(f.get_u32("llama.feed_forward_length"), 172u);
  EXPECT_EQ(f.get_u32("llama.block_count"), 5u);
  EXPECT_EQ(f.get_u32("llama.attention.head_count"), 8u);
  EXPECT_EQ(f.get_u32("llama.attention.head_count_kv"), 4u);
  EXPECT_FLOAT_EQ(f.get_f32("llama.attention.layer_norm_rms_epsilon"), 1e-5f);
  EXPECT_EQ(f.get_int("tokenizer.ggml.bos_token_id"), 1);
  EXPECT_EQ(f.get_arr_str("tokenizer.ggml.tokens").size(), 512u);
  EXPECT_EQ(f.get_arr_str("tokenizer.ggml.tokens")[1], "<s>");
  EXPECT_EQ(f.get_arr_f32("tokenizer.ggml.scores").size(), 512u);
  EXPECT_EQ(f.get_arr_i32("tokenizer.ggml.token_type")[3], 6);  // <0x00> is a byte token

  // Shapes outermost-first: a linear weight is [n_out, n_in]; the file's ne[] is the reverse.
  const TensorView& gate = f.view("blk.0.ffn_gate.weight");
  EXPECT_EQ(gate.shape, (std::vector<int64_t>{172, 64}));
  EXPECT_EQ(f.info("blk.0.ffn_gate.weight").ne, (std::vector<int64_t>{64, 172}));
  EXPECT_EQ(gate.dtype, DType::F32);
  EXPECT_EQ(gate.nbytes, 172u * 64 * 4);
  EXPECT_EQ(f.view("blk.0.attn_k.weight").shape, (std::vector<int64_t>{32, 64}));
  EXPECT_EQ(f.view("token_embd.weight").shape, (std::vector<int64_t>{512, 64}));
  EXPECT_EQ(f.view("output_norm.weight").shape, (std::vector<int64_t>{64}));

  // The embedding equals the llama2.c checkpoint's (after its 7 x int32 header).
  std::vector<uint8_t> bin = read_bytes(test::shared("models/stories260K/stories260K.bin"));
  const TensorView& emb = f.view("token_embd.weight");
  ASSERT_GE(bin.size(), 28 + emb.nbytes);
  EXPECT_EQ(std::memcmp(bin.data() + 28, emb.data, emb.nbytes), 0);
}

TEST(GgufRead, TypedAccessorErrorsNameFileKeyAndType) {
  std::string path = test::shared(kStories);
  GgufFile f(path);
  expect_error([&] { f.get_str("llama.block_count"); }, {path, "llama.block_count", "has type u32, expected string"});
  expect_error([&] { f.get_i32("llama.block_count"); }, {path, "llama.block_count", "expected i32"});
  expect_error([&] { f.get_u32("no.such.key"); }, {path, "no.such.key", "missing"});
  expect_error([&] { f.get_arr_f32("tokenizer.ggml.tokens"); }, {path, "array of string, expected array of f32"});
  expect_error([&] { f.get_float("general.name"); }, {path, "general.name", "expected f32 or f64"});
  expect_error([&] { f.view("nope.weight"); }, {path, "nope.weight", "missing"});
  EXPECT_EQ(f.get_int("no.such.key", 7), 7);
  EXPECT_TRUE(f.get_bool("no.such.key", true));
}

// ---------------------------------------------------------------- writer -> reader round trips

namespace {

std::vector<GgufKV> every_value_type() {
  std::vector<GgufKV> kv;
  auto add = [&](std::string k, GgufValue v) { kv.push_back({std::move(k), std::move(v)}); };
  add("t.u8", uint8_t(200));
  add("t.i8", int8_t(-100));
  add("t.u16", uint16_t(60000));
  add("t.i16", int16_t(-30000));
  add("t.u32", uint32_t(4000000000u));
  add("t.i32", int32_t(-2000000000));
  add("t.f32", 1.5f);
  add("t.bool_true", true);
  add("t.bool_false", false);
  add("t.string", "h\xc3\xa9llo \xe2\x96\x81world\n");
  add("t.string_empty", "");
  add("t.u64", (uint64_t(1) << 63) | 5);
  add("t.i64", std::numeric_limits<int64_t>::min() + 1);
  add("t.f64", 3.141592653589793);
  add("a.u8", GgufArray::of(std::vector<uint8_t>{0, 1, 255}));
  add("a.i8", GgufArray::of(std::vector<int8_t>{-128, 0, 127}));
  add("a.u16", GgufArray::of(std::vector<uint16_t>{65535, 1}));
  add("a.i16", GgufArray::of(std::vector<int16_t>{-32768, 32767}));
  add("a.u32", GgufArray::of(std::vector<uint32_t>{4294967295u, 0}));
  add("a.i32", GgufArray::of(std::vector<int32_t>{-1, 2, 3}));
  add("a.f32", GgufArray::of(std::vector<float>{0.5f, -1e30f, 1e-40f}));
  add("a.bool", GgufArray::of(std::vector<bool>{true, false, true}));
  add("a.string", GgufArray::of(std::vector<std::string>{"a", "", "\xe2\x96\x81" "b", std::string("n\0ul", 4)}));
  add("a.u64", GgufArray::of(std::vector<uint64_t>{~uint64_t(0)}));
  add("a.i64", GgufArray::of(std::vector<int64_t>{-5, std::numeric_limits<int64_t>::max()}));
  add("a.f64", GgufArray::of(std::vector<double>{1e300, -0.0}));
  add("a.empty", GgufArray::of(std::vector<int32_t>{}));
  add("a.empty_strings", GgufArray::of(std::vector<std::string>{}));
  add("a.nested", GgufArray::of_arrays({GgufArray::of(std::vector<int32_t>{1, 2}),
                                        GgufArray::of(std::vector<std::string>{"x", "yz"}),
                                        GgufArray::of_arrays({GgufArray::of(std::vector<uint8_t>{7}),
                                                              GgufArray::of(std::vector<double>{})})}));
  return kv;
}

}  // namespace

class GgufRoundTrip : public ::testing::TestWithParam<std::tuple<uint32_t, uint32_t>> {};

TEST_P(GgufRoundTrip, EveryValueTypeAndTensorData) {
  auto [version, alignment] = GetParam();
  std::string path = tmp("roundtrip_v" + std::to_string(version) + "_a" + std::to_string(alignment) + ".gguf");
  const auto kvs = every_value_type();

  std::vector<float> a(3 * 5);
  for (size_t i = 0; i < a.size(); ++i) a[i] = float(i) * 0.25f - 1.0f;
  std::vector<uint16_t> h = {0x3c00, 0xc000, 0x7bff, 0x0001};  // f16 bits
  std::vector<uint16_t> bf(2 * 3 * 4);
  for (size_t i = 0; i < bf.size(); ++i) bf[i] = uint16_t(0x3f80 + i);
  std::vector<int32_t> ints = {7, -8, 9};
  std::vector<uint8_t> q4(2 * 2 * 18);  // q4_0 [2, 64]: 2 rows x 2 blocks x 18 bytes
  for (size_t i = 0; i < q4.size(); ++i) q4[i] = uint8_t(i * 7 + 1);

  {
    GgufWriter w(path, {version, alignment});
    for (const auto& kv : kvs) w.set(kv.key, kv.value);
    w.add_tensor("a.weight", GgmlType::F32, {3, 5}, a.data(), a.size() * 4);
    w.add_tensor("h.weight", GgmlType::F16, {4}, h.data(), h.size() * 2);
    w.add_tensor("bf.weight", GgmlType::BF16, {2, 3, 4}, bf.data(), bf.size() * 2);
    w.add_tensor("i.weight", GgmlType::I32, {3}, ints.data(), ints.size() * 4);
    w.add_tensor("q.weight", GgmlType::Q4_0, {2, 64}, [&](std::span<uint8_t> out) {
      ASSERT_EQ(out.size(), q4.size());
      std::memcpy(out.data(), q4.data(), q4.size());
    });
    w.write();
  }
  EXPECT_FALSE(fs::exists(path + ".tmp"));

  GgufFile f(path);
  EXPECT_EQ(f.version(), version);
  EXPECT_EQ(f.alignment(), alignment);
  EXPECT_EQ(f.data_offset() % alignment, 0u);
  // Every key comes back with its type and value, in order (plus general.alignment when not 32).
  ASSERT_EQ(f.kvs().size(), kvs.size() + (alignment != 32 ? 1 : 0));
  for (size_t i = 0; i < kvs.size(); ++i) {
    EXPECT_EQ(f.kvs()[i].key, kvs[i].key);
    EXPECT_EQ(f.kvs()[i].value.type(), kvs[i].value.type()) << kvs[i].key;
    EXPECT_TRUE(f.kvs()[i].value == kvs[i].value) << kvs[i].key;
  }
  if (alignment != 32) {
    EXPECT_EQ(f.get_u32("general.alignment"), alignment);
  }
  EXPECT_EQ(f.get_u8("t.u8"), 200);
  EXPECT_EQ(f.get_i64("t.i64"), std::numeric_limits<int64_t>::min() + 1);
  EXPECT_EQ(f.get_f64("t.f64"), 3.141592653589793);
  EXPECT_EQ(f.get_str("t.string_empty"), "");
  EXPECT_EQ(f.get_arr_str("a.string")[3], std::string("n\0ul", 4));
  EXPECT_EQ(f.get_arr_i32("a.i16"), (std::vector<int32_t>{-32768, 32767}));
  EXPECT_EQ(f.get_arr("a.bool").at<bool>(1), false);
  EXPECT_EQ(f.get_arr("a.nested").arrays[2].get_if<GgufArray>()->arrays[0].get_if<GgufArray>()->at<uint8_t>(0), 7);
  expect_error([&] { f.get_arr_i32("a.u64"); }, {path, "a.u64", "int32"});
  EXPECT_EQ(f.get_kv("a.string").to_string(), "[4 items]");
  EXPECT_EQ(f.get_kv("t.bool_true").to_string(), "true");
  EXPECT_EQ(f.get_kv("t.i8").to_string(), "-100");

  // Tensor data, shapes and alignment.
  ASSERT_EQ(f.tensors().size(), 5u);
  for (const auto& ti : f.infos()) EXPECT_EQ(ti.offset % alignment, 0u) << ti.name;
  const TensorView& va = f.view("a.weight");
  EXPECT_EQ(va.shape, (std::vector<int64_t>{3, 5}));
  EXPECT_EQ(std::memcmp(va.data, a.data(), a.size() * 4), 0);
  EXPECT_EQ(f.view("h.weight").dtype, DType::F16);
  EXPECT_EQ(std::memcmp(f.view("h.weight").data, h.data(), 8), 0);
  EXPECT_EQ(f.view("bf.weight").shape, (std::vector<int64_t>{2, 3, 4}));
  EXPECT_EQ(f.info("bf.weight").ne, (std::vector<int64_t>{4, 3, 2}));
  EXPECT_EQ(std::memcmp(f.view("bf.weight").data, bf.data(), bf.size() * 2), 0);
  EXPECT_EQ(f.view("i.weight").dtype, DType::I32);
  // A quantized tensor of the formats table is a QUANT view of its raw blocks.
  const TensorView& vq = f.view("q.weight");
  EXPECT_EQ(vq.name, "q.weight");
  EXPECT_EQ(vq.shape, (std::vector<int64_t>{2, 64}));
  EXPECT_EQ(vq.nbytes, q4.size());
  EXPECT_EQ(vq.dtype, DType::QUANT);
  EXPECT_EQ(vq.format, FormatId::Q4_0);
  EXPECT_EQ(vq.type_name(), "q4_0");
  EXPECT_EQ(f.info("q.weight").ggml_type, uint32_t(GgmlType::Q4_0));
  EXPECT_EQ(vq.data, f.raw_data(f.info("q.weight")));
  EXPECT_EQ(std::memcmp(vq.data, q4.data(), q4.size()), 0);
}

INSTANTIATE_TEST_SUITE_P(VersionsAndAlignments, GgufRoundTrip,
                         ::testing::Combine(::testing::Values(2u, 3u), ::testing::Values(32u, 64u)));

TEST(GgufWrite, CopyOfStoriesFileIsIdenticalInContent) {
  GgufFile src(test::shared(kStories));
  std::string path = tmp("stories_copy.gguf");
  GgufWriter w(path);
  for (const auto& kv : src.kvs()) w.set(kv.key, kv.value);
  for (const auto& t : src.tensors()) w.add_tensor(t);
  w.write();
  // Same layout rules as llama.cpp's writer: the copy is byte-identical.
  EXPECT_EQ(read_bytes(path), read_bytes(test::shared(kStories)));
}

TEST(GgufWrite, StreamsTensorsInOrderAndRenamesOnlyOnSuccess) {
  std::string path = tmp("streamed.gguf");
  std::vector<std::string> calls;
  {
    GgufWriter w(path);
    for (int i = 0; i < 3; ++i)
      w.add_tensor("t" + std::to_string(i), GgmlType::F32, {4, 8}, [&calls, i](std::span<uint8_t> out) {
        calls.push_back("t" + std::to_string(i));
        std::vector<float> v(out.size() / 4, float(i));
        std::memcpy(out.data(), v.data(), out.size());
      });
    w.write();
  }
  EXPECT_EQ(calls, (std::vector<std::string>{"t0", "t1", "t2"}));
  GgufFile f(path);
  float x;
  std::memcpy(&x, f.view("t2").data, 4);
  EXPECT_EQ(x, 2.0f);

  // A failing callback leaves neither a temp file nor a half file under the final name,
  // and an existing file of that name is untouched.
  auto before = read_bytes(path);
  GgufWriter w2(path);
  w2.add_tensor("ok", GgmlType::F32, {4}, [](std::span<uint8_t> out) { std::fill(out.begin(), out.end(), 0); });
  w2.add_tensor("bad", GgmlType::F32, {4}, [](std::span<uint8_t>) { fail("quantizer", "boom"); });
  expect_error([&] { w2.write(); }, {"boom"});
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  EXPECT_EQ(read_bytes(path), before);
}

TEST(GgufWrite, RefusesInvalidInput) {
  std::string path = tmp("invalid.gguf");
  std::vector<float> d(64);
  expect_error([&] { GgufWriter w(path, {1, 32}); }, {path, "version 1"});
  expect_error([&] { GgufWriter w(path, {3, 48}); }, {path, "not a power of 2"});
  GgufWriter w(path);
  w.add_tensor("x", GgmlType::F32, {64}, d.data(), 256);
  expect_error([&] { w.add_tensor("x", GgmlType::F32, {64}, d.data(), 256); }, {path, "'x'", "twice"});
  expect_error([&] { w.add_tensor("y", GgmlType::F32, {64}, d.data(), 255); }, {path, "'y'", "255 bytes", "256"});
  expect_error([&] { w.add_tensor("z", GgmlType::Q4_K, {2, 172}, d.data(), 0); }, {"'z'", "172", "q4_K", "256"});
  expect_error([&] { w.add_tensor(std::string(64, 'n'), GgmlType::F32, {1}, d.data(), 4); }, {"64 bytes"});
  expect_error([&] { w.add_tensor("5d", GgmlType::F32, {1, 1, 1, 1, 1}, d.data(), 4); }, {"'5d'", "5 dimensions"});
  expect_error([&] { w.set("general.alignment", uint32_t(64)); }, {path, "general.alignment"});
  GgufArray bad = GgufArray::of_arrays({});
  bad.arrays.push_back(GgufValue(uint32_t(1)));  // a number inside an array of arrays
  expect_error([&] { w.set("bad", bad); }, {path, "bad[0]"});
  GgufArray ragged = GgufArray::of(std::vector<uint32_t>{1});
  ragged.raw.push_back(0);
  expect_error([&] { w.set("ragged", ragged); }, {path, "ragged", "whole number"});
}

// ---------------------------------------------------------------- corrupt and hostile files

namespace {

// Little-endian byte builder for hand-made files.
struct Bytes {
  std::vector<uint8_t> b;
  template <class T>
  Bytes& put(T x) {
    const auto* p = reinterpret_cast<const uint8_t*>(&x);
    b.insert(b.end(), p, p + sizeof(T));
    return *this;
  }
  Bytes& str(const std::string& s) {
    put<uint64_t>(s.size());
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  Bytes& raw(const std::vector<uint8_t>& x) {
    b.insert(b.end(), x.begin(), x.end());
    return *this;
  }
};

std::vector<uint8_t> kv_str(const std::string& k, const std::string& v) {
  return Bytes().str(k).put<uint32_t>(8).str(v).b;
}
std::vector<uint8_t> kv_u32(const std::string& k, uint32_t v) { return Bytes().str(k).put<uint32_t>(4).put(v).b; }
std::vector<uint8_t> tensor_info(const std::string& name, std::vector<uint64_t> ne, uint32_t type, uint64_t offset) {
  Bytes b;
  b.str(name).put<uint32_t>(uint32_t(ne.size()));
  for (auto n : ne) b.put(n);
  return b.put(type).put(offset).b;
}

// A GGUF file from parts; counts default to the number of parts given.
struct Craft {
  std::string magic = "GGUF";
  uint32_t version = 3;
  std::vector<std::vector<uint8_t>> kvs = {kv_str("general.architecture", "llama")};
  std::vector<std::vector<uint8_t>> tensors = {tensor_info("t", {2}, 0, 0)};
  int64_t n_kv = -1, n_tensors = -1;
  size_t alignment = 32;
  size_t data_bytes = 8;

  std::vector<uint8_t> build() const {
    Bytes b;
    b.b.insert(b.b.end(), magic.begin(), magic.end());
    b.put(version).put<uint64_t>(n_tensors >= 0 ? uint64_t(n_tensors) : tensors.size());
    b.put<uint64_t>(n_kv >= 0 ? uint64_t(n_kv) : kvs.size());
    for (const auto& kv : kvs) b.raw(kv);
    for (const auto& t : tensors) b.raw(t);
    while (b.b.size() % alignment) b.b.push_back(0);
    b.b.resize(b.b.size() + data_bytes, 0x11);
    return b.b;
  }
};

// Opens `bytes` as a file: must either succeed or throw lowbit::Error naming the file.
// Returns the error message ("" on success).
// (The file is removed afterwards: rewriting one file in place is slow on some filesystems.)
std::string open_result(const std::string& path, const std::vector<uint8_t>& bytes) {
  write_bytes(path, bytes);
  std::string msg;
  try {
    GgufFile f(path);
  } catch (const Error& e) {
    msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << "error does not name the file: " << msg;
  }
  fs::remove(path);
  return msg;
}

}  // namespace

TEST(GgufCorrupt, CraftedBaselineIsValid) {
  std::string path = tmp("craft_ok.gguf");
  EXPECT_EQ(open_result(path, Craft().build()), "");
  write_bytes(path, Craft().build());
  GgufFile f(path);
  EXPECT_EQ(f.get_str("general.architecture"), "llama");
  EXPECT_EQ(f.view("t").shape, (std::vector<int64_t>{2}));
}

TEST(GgufCorrupt, TableOfBadFiles) {
  auto with = [](auto edit) {
    Craft c;
    edit(c);
    return c.build();
  };
  auto nested = [](int depth) {  // array of array of ... of u8[0]
    Bytes b;
    b.str("deep").put<uint32_t>(9);
    for (int i = 0; i < depth; ++i) b.put<uint32_t>(9).put<uint64_t>(1);
    b.put<uint32_t>(0).put<uint64_t>(0);
    return b.b;
  };
  struct Case {
    std::string name;
    std::vector<uint8_t> bytes;
    std::string expect;
  };
  const uint64_t huge = uint64_t(1) << 62;
  std::vector<Case> cases = {
      {"empty", {}, "not a GGUF file"},
      {"bad_magic", with([](Craft& c) { c.magic = "GGML"; }), "not a GGUF file"},
      {"version1", with([](Craft& c) { c.version = 1; }), "version 1 is not supported"},
      {"version4", with([](Craft& c) { c.version = 4; }), "unsupported GGUF version 4"},
      {"big_endian", with([](Craft& c) { c.version = 0x03000000; }), "big-endian"},
      {"huge_n_tensors", with([&](Craft& c) { c.n_tensors = int64_t(huge); }), "tensors"},
      {"huge_n_kv", with([&](Craft& c) { c.n_kv = int64_t(huge); }), "metadata entries"},
      {"huge_key_length", with([&](Craft& c) { c.kvs = {Bytes().put<uint64_t>(huge).b}; }), "claims a length"},
      {"huge_string_value",
       with([&](Craft& c) { c.kvs = {Bytes().str("k").put<uint32_t>(8).put<uint64_t>(huge).b}; }), "claims a length"},
      {"huge_array_u32",
       with([&](Craft& c) { c.kvs = {Bytes().str("k").put<uint32_t>(9).put<uint32_t>(4).put<uint64_t>(huge).b}; }),
       "claims an array"},
      {"huge_array_strings",
       with([&](Craft& c) { c.kvs = {Bytes().str("k").put<uint32_t>(9).put<uint32_t>(8).put<uint64_t>(huge).b}; }),
       "claims an array"},
      {"huge_array_arrays",
       with([&](Craft& c) { c.kvs = {Bytes().str("k").put<uint32_t>(9).put<uint32_t>(9).put<uint64_t>(1000).b}; }),
       "claims an array"},
      {"nested_too_deep", with([&](Craft& c) { c.kvs = {nested(20)}; }), "nests arrays"},
      {"unknown_value_type", with([](Craft& c) { c.kvs = {Bytes().str("k").put<uint32_t>(13).put<uint32_t>(0).b}; }),
       "unknown value type 13"},
      {"unknown_array_type",
       with([](Craft& c) { c.kvs = {Bytes().str("k").put<uint32_t>(9).put<uint32_t>(77).put<uint64_t>(0).b}; }),
       "unknown value type 77"},
      {"duplicate_key", with([](Craft& c) { c.kvs.push_back(c.kvs[0]); }), "appears twice"},
      {"offset_past_eof", with([](Craft& c) { c.tensors = {tensor_info("t", {2}, 0, 4096)}; }), "past the end"},
      {"offset_overflow", with([](Craft& c) { c.tensors = {tensor_info("t", {2}, 0, ~uint64_t(31))}; }), "past the end"},
      {"size_past_eof", with([](Craft& c) { c.tensors = {tensor_info("t", {1000}, 0, 0)}; }), "past the end"},
      {"n_dims_5", with([](Craft& c) { c.tensors = {tensor_info("t", {1, 1, 1, 1, 2}, 0, 0)}; }), "n_dims = 5"},
      {"huge_dims", with([&](Craft& c) { c.tensors = {tensor_info("t", {huge, huge}, 0, 0)}; }), "absurd"},
      {"negative_dim", with([&](Craft& c) { c.tensors = {tensor_info("t", {~uint64_t(0)}, 0, 0)}; }), "absurd"},
      {"size_overflow", with([&](Craft& c) { c.tensors = {tensor_info("t", {uint64_t(1) << 62}, 0, 0)}; }), "absurd"},
      {"unknown_ggml_type", with([](Craft& c) { c.tensors = {tensor_info("t", {2}, 99, 0)}; }), "unknown ggml type id 99"},
      {"bad_block_row", with([](Craft& c) { c.tensors = {tensor_info("t", {33}, 2, 0)}; }), "block size 32"},
      {"misaligned_offset", with([](Craft& c) { c.tensors = {tensor_info("t", {1}, 0, 4)}; }), "not a multiple of the alignment"},
      {"duplicate_tensor", with([](Craft& c) { c.tensors.push_back(c.tensors[0]); }), "appears twice"},
      {"alignment_not_pow2", with([](Craft& c) { c.kvs.push_back(kv_u32("general.alignment", 48)); }), "not a power of 2"},
      {"alignment_zero", with([](Craft& c) { c.kvs.push_back(kv_u32("general.alignment", 0)); }), "not a power of 2"},
      {"alignment_wrong_type",
       with([](Craft& c) { c.kvs.push_back(Bytes().str("general.alignment").put<uint32_t>(10).put<uint64_t>(32).b); }),
       "expected u32"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    std::string msg = open_result(tmp("bad_" + c.name + ".gguf"), c.bytes);
    EXPECT_NE(msg.find(c.expect), std::string::npos) << "got: " << (msg.empty() ? "(opened fine)" : msg);
  }
}

namespace {
// A small valid file from the writer: several value kinds and two tensors.
std::vector<uint8_t> small_valid_file() {
  std::string path = tmp("small_valid.gguf");
  GgufWriter w(path);
  w.set("general.architecture", "llama");
  w.set("x.u32", uint32_t(5));
  w.set("x.f64", 2.5);
  w.set("x.strs", GgufArray::of(std::vector<std::string>{"ab", "c"}));
  w.set("x.nested", GgufArray::of_arrays({GgufArray::of(std::vector<int16_t>{1, 2})}));
  std::vector<float> a(6, 1.0f);
  std::vector<uint8_t> q(34, 3);  // one q8_0 block
  w.add_tensor("a", GgmlType::F32, {2, 3}, a.data(), 24);
  w.add_tensor("q", GgmlType::Q8_0, {1, 32}, [&](std::span<uint8_t> out) { std::memcpy(out.data(), q.data(), 34); });
  w.write();
  return read_bytes(path);
}
}  // namespace

TEST(GgufCorrupt, EveryTruncationFailsCleanly) {
  auto full = small_valid_file();
  ASSERT_GT(full.size(), 100u);
  std::string path = tmp("truncated.gguf");
  size_t first_ok = full.size();
  for (size_t n = 0; n < full.size(); ++n) {
    std::vector<uint8_t> prefix(full.begin(), full.begin() + long(n));
    if (open_result(path, prefix).empty()) first_ok = std::min(first_ok, n);
  }
  // Only the trailing padding after the last tensor may be cut.
  EXPECT_GE(first_ok, full.size() - 32);
  EXPECT_EQ(open_result(path, full), "");
}

TEST(GgufCorrupt, EverySingleByteCorruptionFailsCleanly) {
  auto full = small_valid_file();
  std::string path = tmp("mutated.gguf");
  // Overwrite each byte with a few hostile values; anything may happen except a crash or a non-lowbit error.
  for (size_t i = 0; i < full.size(); ++i)
    for (uint8_t v : {uint8_t(0x00), uint8_t(0x7f), uint8_t(0xff)}) {
      auto m = full;
      m[i] = v;
      open_result(path, m);
    }
}

// ---------------------------------------------------------------- loading models

TEST(GgufModel, Stories260K) {
  Model m;
  std::string path = test::shared(kStories);
  load_gguf_model(path, m);
  const ModelConfig& c = m.config;
  EXPECT_EQ(m.format, "gguf");
  EXPECT_EQ(m.path, path);
  EXPECT_EQ(c.arch, Arch::Llama);
  EXPECT_EQ(c.arch_name, "llama");
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.hidden_dim, 172);
  EXPECT_EQ(c.n_layers, 5);
  EXPECT_EQ(c.n_heads, 8);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.n_vocab, 512);
  EXPECT_EQ(c.max_seq, 128);  // what llama.cpp's converter wrote (the llama2.c checkpoint says 512)
  EXPECT_FLOAT_EQ(c.norm_eps, 1e-5f);
  EXPECT_FLOAT_EQ(c.rope_theta, 10000.0f);
  EXPECT_EQ(c.rope_style, RopeStyle::Interleaved);
  EXPECT_FALSE(c.attn_qkv_bias);
  // The converter wrote the shared embedding twice; the duplicate is recognised as tied.
  EXPECT_TRUE(c.tied_embeddings);
  EXPECT_EQ(m.find_weight("output.weight"), nullptr);
  EXPECT_EQ(m.n_params(), 260032);
  EXPECT_EQ(c.bos_id, 1);
  EXPECT_EQ(c.eos_id, 2);
  EXPECT_EQ(m.metadata.at("general.architecture"), "llama");
  EXPECT_EQ(m.metadata.at("llama.block_count"), "5");
  EXPECT_EQ(m.metadata.at("tokenizer.ggml.tokens"), "[512 items]");
  ASSERT_NE(m.tokenizer, nullptr);
  EXPECT_EQ(m.tokenizer->n_vocab(), 512);
  EXPECT_EQ(m.tokenizer->bos_id(), 1);
  EXPECT_EQ(m.weight("blk.4.ffn_down.weight").shape, (std::vector<int64_t>{64, 172}));
}

namespace {

// A tiny random-valued model of `arch` written with GgufWriter; `edit` may change metadata before writing.
struct TinyModel {
  std::string arch = "llama";
  int dim = 8, heads = 2, kv_heads = 1, hidden = 12, layers = 2, ctx = 16;
  bool with_output = true;
  GgmlType type = GgmlType::F32;
  std::vector<std::vector<float>> bufs;

  std::string write(const std::string& name, const std::function<void(GgufWriter&)>& edit = {}) {
    std::string path = tmp(name);
    GgufWriter w(path);
    const std::string a = arch;
    w.set("general.architecture", a);
    w.set(a + ".context_length", uint32_t(ctx));
    w.set(a + ".embedding_length", uint32_t(dim));
    w.set(a + ".block_count", uint32_t(layers));
    w.set(a + ".feed_forward_length", uint32_t(hidden));
    w.set(a + ".attention.head_count", uint32_t(heads));
    if (a != "gpt2") {
      w.set(a + ".attention.head_count_kv", uint32_t(kv_heads));
      w.set(a + ".attention.layer_norm_rms_epsilon", 1e-6f);
      w.set(a + ".rope.freq_base", 500000.0f);
    } else {
      w.set(a + ".attention.layer_norm_epsilon", 1e-5f);
    }
    // Byte-level BPE needs a token for every byte: GPT-2's byte -> code point map, then "ab", then a special.
    std::vector<std::string> tokens;
    for (int b = 0, extra = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae);
      uint32_t cp = printable ? uint32_t(b) : uint32_t(256 + extra++);
      tokens.push_back(cp < 0x80 ? std::string(1, char(cp))
                                 : std::string{char(0xc0 | (cp >> 6)), char(0x80 | (cp & 0x3f))});
    }
    tokens.push_back("ab");
    tokens.push_back("<|endoftext|>");
    if (a == "llama") {
      w.set("tokenizer.ggml.model", "llama");
      tokens = {"<unk>", "<s>", "</s>", "\xe2\x96\x81", "a", "\xe2\x96\x81" "a"};
      w.set("tokenizer.ggml.scores", GgufArray::of(std::vector<float>{0, 0, 0, -1, -2, -3}));
      w.set("tokenizer.ggml.token_type", GgufArray::of(std::vector<int32_t>{2, 3, 3, 1, 1, 1}));
    } else {
      w.set("tokenizer.ggml.model", "gpt2");
      w.set("tokenizer.ggml.pre", a == "qwen2" ? "qwen2" : "gpt-2");
      w.set("tokenizer.ggml.merges", GgufArray::of(std::vector<std::string>{"a b"}));
    }
    w.set("tokenizer.ggml.tokens", GgufArray::of(tokens));
    const uint32_t special = a == "llama" ? 1 : uint32_t(tokens.size() - 1);
    w.set("tokenizer.ggml.bos_token_id", special);
    w.set("tokenizer.ggml.eos_token_id", a == "llama" ? 2 : special);
    if (edit) edit(w);

    const int64_t v = int64_t(tokens.size()), d = dim, h = hidden, hd = dim / heads;
    const int64_t q = heads * hd, kv = kv_heads * hd;
    auto add = [&](const std::string& n, std::vector<int64_t> shape) {
      int64_t numel = 1;
      for (auto s : shape) numel *= s;
      bufs.emplace_back(size_t(numel));
      for (size_t i = 0; i < bufs.back().size(); ++i) bufs.back()[i] = float((i * 37 + bufs.size()) % 17) / 17.0f;
      if (type == GgmlType::F32) w.add_tensor(n, GgmlType::F32, shape, bufs.back().data(), size_t(numel) * 4);
      else w.add_tensor(n, type, shape, [](std::span<uint8_t> out) { std::fill(out.begin(), out.end(), 0); });
    };
    add("token_embd.weight", {v, d});
    if (a == "gpt2") add("position_embd.weight", {ctx, d});
    add("output_norm.weight", {d});
    if (a == "gpt2") add("output_norm.bias", {d});
    if (with_output) add("output.weight", {v, d});
    for (int l = 0; l < layers; ++l) {
      auto n = [&](const char* s) { return "blk." + std::to_string(l) + "." + s; };
      add(n("attn_norm.weight"), {d});
      add(n("ffn_norm.weight"), {d});
      if (a == "gpt2") {
        for (const char* s : {"attn_norm.bias", "ffn_norm.bias", "attn_output.bias", "ffn_down.bias"}) add(n(s), {d});
        add(n("attn_qkv.weight"), {3 * d, d});
        add(n("attn_qkv.bias"), {3 * d});
        add(n("attn_output.weight"), {d, d});
        add(n("ffn_up.weight"), {h, d});
        add(n("ffn_up.bias"), {h});
        add(n("ffn_down.weight"), {d, h});
        continue;
      }
      add(n("attn_q.weight"), {q, d});
      add(n("attn_k.weight"), {kv, d});
      add(n("attn_v.weight"), {kv, d});
      if (a == "qwen2") {
        add(n("attn_q.bias"), {q});
        add(n("attn_k.bias"), {kv});
        add(n("attn_v.bias"), {kv});
      }
      add(n("attn_output.weight"), {d, q});
      add(n("ffn_gate.weight"), {h, d});
      add(n("ffn_up.weight"), {h, d});
      add(n("ffn_down.weight"), {d, h});
    }
    w.write();
    return path;
  }
};

}  // namespace

TEST(GgufModel, TinyLlamaQwen2Gpt2) {
  {
    TinyModel t;
    Model m;
    load_gguf_model(t.write("tiny_llama.gguf"), m);
    EXPECT_EQ(m.config.arch, Arch::Llama);
    EXPECT_EQ(m.config.rope_style, RopeStyle::Interleaved);
    EXPECT_FLOAT_EQ(m.config.rope_theta, 500000.0f);
    EXPECT_FLOAT_EQ(m.config.norm_eps, 1e-6f);
    EXPECT_EQ(m.config.n_kv_heads, 1);
    EXPECT_EQ(m.config.head_dim, 4);
    EXPECT_EQ(m.config.n_vocab, 6);
    EXPECT_EQ(m.config.bos_id, 1);
    EXPECT_FALSE(m.config.tied_embeddings);  // output.weight differs from token_embd.weight
    ASSERT_NE(m.tokenizer, nullptr);
  }
  {
    TinyModel t;
    t.arch = "qwen2";
    t.with_output = false;
    Model m;
    load_gguf_model(t.write("tiny_qwen2.gguf"), m);
    EXPECT_EQ(m.config.arch, Arch::Llama);
    EXPECT_EQ(m.config.arch_name, "qwen2");
    EXPECT_EQ(m.config.rope_style, RopeStyle::NeoX);
    EXPECT_TRUE(m.config.attn_qkv_bias);
    EXPECT_TRUE(m.config.tied_embeddings);
    ASSERT_NE(m.tokenizer, nullptr);
    EXPECT_EQ(m.tokenizer->kind(), "byte-bpe");
    EXPECT_EQ(m.config.n_vocab, 258);
    EXPECT_EQ(m.config.bos_id, 257);
    EXPECT_EQ(m.tokenizer->encode("ab", false), (std::vector<int32_t>{256}));
  }
  {
    TinyModel t;
    t.arch = "gpt2";
    t.heads = 2;
    t.kv_heads = 2;
    Model m;
    load_gguf_model(t.write("tiny_gpt2.gguf"), m);
    EXPECT_EQ(m.config.arch, Arch::GPT2);
    EXPECT_EQ(m.config.n_kv_heads, 2);  // head_count_kv defaults to head_count
    EXPECT_FLOAT_EQ(m.config.norm_eps, 1e-5f);
    ASSERT_NE(m.tokenizer, nullptr);
  }
}

TEST(GgufModel, ErrorsNameFileAndKey) {
  TinyModel t;
  std::string p = t.write("arch_mamba.gguf", [](GgufWriter& w) { w.set("general.architecture", "mamba"); });
  Model m1;
  expect_error([&] { load_gguf_model(p, m1); }, {p, "'mamba'", "llama, qwen2, gpt2"});

  p = t.write("missing_key.gguf", [](GgufWriter& w) {
    w.set("llama.block_count", "five");  // wrong type
  });
  Model m2;
  expect_error([&] { load_gguf_model(p, m2); }, {p, "llama.block_count", "expected an integer"});

  // Quantized matrices load; quantized norm vectors are refused by name.
  TinyModel q;
  q.type = GgmlType::Q8_0;
  q.dim = 32;
  q.hidden = 64;
  p = q.write("quantized.gguf");
  Model m3;
  expect_error([&] { load_gguf_model(p, m3); }, {p, "'output_norm.weight' has type q8_0", "must be f32, f16 or bf16"});
  // A ggml type without lowbit kernels is named, with the supported list.
  TinyModel iq;
  iq.type = GgmlType::IQ2_XXS;
  iq.dim = 256;
  iq.hidden = 256;
  p = iq.write("iq2_xxs.gguf");
  Model m5;
  expect_error([&] { load_gguf_model(p, m5); }, {p, "has ggml type iq2_xxs, which lowbit does not support", "q4_0"});

  TinyModel s;
  p = s.write("bad_shape.gguf", [](GgufWriter& w) { w.set("llama.feed_forward_length", uint32_t(13)); });
  Model m4;
  expect_error([&] { load_gguf_model(p, m4); }, {p, "ffn_gate.weight"});
}

TEST(GgufModel, UnsupportedEmbeddedTokenizerIsAWarningNotAnError) {
  TinyModel t;
  t.arch = "qwen2";
  std::string p = t.write("pre_unknown.gguf", [](GgufWriter& w) { w.set("tokenizer.ggml.pre", "deepseek-llm"); });
  std::vector<std::string> warnings;
  set_log_sink([&](LogLevel level, const std::string& msg) {
    if (level == LogLevel::Warn) warnings.push_back(msg);
  });
  Model m;
  load_gguf_model(p, m);
  set_log_sink([](LogLevel, const std::string& msg) { std::fprintf(stderr, "%s\n", msg.c_str()); });
  EXPECT_EQ(m.tokenizer, nullptr);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("deepseek-llm"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[0].find(p), std::string::npos) << warnings[0];
  expect_error([&] { m.tok(); }, {"--tokenizer"});
}
