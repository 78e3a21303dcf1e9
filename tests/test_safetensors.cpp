// Safetensors: writer -> reader round trip, shard folders, the stories260K
// checkpoint, and a table of corrupt headers that must each fail cleanly.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "lowbit/error.h"
#include "paths.h"

namespace lowbit {
namespace {

namespace fs = std::filesystem;

std::string tmp_path(const std::string& name) { return (fs::path(test::temp_dir()) / name).string(); }

std::string fresh_dir(const std::string& name) {
  fs::path d = fs::path(test::temp_dir()) / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d.string();
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = char(uint8_t(v >> (8 * i)));
  return s;
}

// [u64 len][header][data]
std::string st_file(const std::string& header, const std::string& data) { return le64(header.size()) + header + data; }

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> b(n);
  for (auto& x : b) x = uint8_t(rng());
  return b;
}

// Message check: names the file and every expected fragment.
void expect_error(const std::function<void()>& f, const std::vector<std::string>& fragments) {
  try {
    f();
    ADD_FAILURE() << "expected lowbit::Error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const auto& frag : fragments) EXPECT_NE(msg.find(frag), std::string::npos) << "'" << frag << "' not in: " << msg;
  }
}

const DType kAllDTypes[] = {DType::F32, DType::F16, DType::BF16, DType::F64, DType::I8,
                            DType::I16, DType::I32, DType::I64,  DType::U8,  DType::BOOL};

TEST(Safetensors, DTypeNamesRoundTrip) {
  for (DType t : kAllDTypes) {
    auto back = safetensors_dtype_from_name(safetensors_dtype_name(t));
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(*back, t);
  }
  EXPECT_FALSE(safetensors_dtype_from_name("F8_E4M3").has_value());
  EXPECT_FALSE(safetensors_dtype_from_name("f32").has_value());
}

TEST(Safetensors, WriterReaderRoundTripEveryDType) {
  const std::string path = tmp_path("roundtrip.safetensors");
  struct Expect {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;
  };
  std::vector<Expect> expect;
  uint32_t seed = 1;
  for (DType t : kAllDTypes) {
    // Odd element counts put small types between large ones: the writer must re-align.
    std::vector<int64_t> shape = {3, 5};
    std::vector<uint8_t> bytes = random_bytes(15 * dtype_size(t), seed++);
    if (t == DType::BOOL)
      for (auto& b : bytes) b &= 1;
    expect.push_back({"t." + std::string(dtype_name(t)), t, shape, bytes});
  }
  expect.push_back({"scalar", DType::F32, {}, random_bytes(4, 99)});
  expect.push_back({"empty", DType::F16, {0, 4}, {}});

  {
    SafetensorsWriter w(path);
    for (const auto& e : expect) w.add(e.name, e.dtype, e.shape, e.bytes);
    w.set_metadata("format", "pt");
    w.set_metadata("lowbit.recipe", "none");
    w.finish();
  }
  EXPECT_FALSE(fs::exists(path + ".tmp"));

  SafetensorsFile f(path);
  EXPECT_EQ(f.path(), path);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.metadata().at("lowbit.recipe"), "none");
  ASSERT_EQ(f.tensors().size(), expect.size());
  for (const auto& e : expect) {
    SCOPED_TRACE(e.name);
    const TensorView& t = f.get(e.name);
    EXPECT_EQ(t.dtype, e.dtype);
    EXPECT_EQ(t.shape, e.shape);
    ASSERT_EQ(t.nbytes, e.bytes.size());
    if (!e.bytes.empty()) {
      EXPECT_EQ(std::memcmp(t.data, e.bytes.data(), t.nbytes), 0);
    }
  }

  // Layout as the reference writer: header padded to 8 bytes, every tensor aligned to its element size.
  std::ifstream in(path, std::ios::binary);
  std::string head(8, '\0');
  in.read(head.data(), 8);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | uint8_t(head[i]);
  EXPECT_EQ(n % 8, 0u);
  const auto* data_start = static_cast<const uint8_t*>(f.tensors().front().data);
  for (const TensorView& t : f.tensors())
    EXPECT_EQ(size_t(static_cast<const uint8_t*>(t.data) - data_start) % dtype_size(t.dtype), 0u) << t.name;
}

TEST(Safetensors, WriterComputedAndViewTensors) {
  const std::string path = tmp_path("computed.safetensors");
  std::vector<float> vals = {1, 2, 3, 4, 5, 6};
  TensorView view;
  view.name = "viewed";
  view.shape = {2, 3};
  view.data = vals.data();
  view.nbytes = vals.size() * 4;
  SafetensorsWriter w(path);
  w.add_view(view);
  w.add_computed("computed", DType::I32, {4}, [](std::span<uint8_t> out) {
    ASSERT_EQ(out.size(), 16u);
    for (int32_t i = 0; i < 4; ++i) std::memcpy(out.data() + 4 * i, &i, 4);
  });
  w.finish();

  SafetensorsFile f(path);
  EXPECT_TRUE(f.metadata().empty());
  const TensorView& v = f.get("viewed");
  float got[6];
  to_f32(v, 0, 6, got);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(got[i], vals[i]);
  const auto* c = static_cast<const int32_t*>(f.get("computed").data);
  for (int32_t i = 0; i < 4; ++i) {
    int32_t x;
    std::memcpy(&x, c + i, 4);
    EXPECT_EQ(x, i);
  }
}

TEST(Safetensors, WriterLeavesNoFileWhenItFails) {
  const std::string path = tmp_path("failed.safetensors");
  fs::remove(path);
  {
    SafetensorsWriter w(path);
    w.add_f32("a", {2}, std::vector<float>{1, 2});
    w.add_computed("b", DType::F32, {2}, [](std::span<uint8_t>) { throw Error("quantizer failed"); });
    EXPECT_THROW(w.finish(), Error);
  }
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

TEST(Safetensors, WriterRejectsBadInput) {
  SafetensorsWriter w(tmp_path("bad-input.safetensors"));
  w.add_f32("a", {2}, std::vector<float>{1, 2});
  expect_error([&] { w.add_f32("a", {2}, std::vector<float>{1, 2}); }, {"'a'", "twice"});
  expect_error([&] { w.add_f32("b", {3}, std::vector<float>{1, 2}); }, {"'b'", "bytes"});
  expect_error([&] { w.add_f32("__metadata__", {1}, std::vector<float>{1}); }, {"__metadata__"});
  expect_error([&] { w.add_f32("c", {-1}, std::vector<float>{}); }, {"'c'", "shape"});
}

TEST(Safetensors, ReadsStories260K) {
  SafetensorsFile f(test::shared("models/stories260K-hf/model.safetensors"));
  EXPECT_EQ(f.tensors().size(), 47u);  // 5 layers x 9 + embeddings + final norm
  EXPECT_EQ(f.metadata().at("format"), "pt");
  const TensorView& emb = f.get("model.embed_tokens.weight");
  EXPECT_EQ(emb.dtype, DType::F32);
  EXPECT_EQ(emb.shape, (std::vector<int64_t>{512, 64}));
  int64_t n = 0;
  for (const auto& t : f.tensors()) n += t.numel();
  EXPECT_EQ(n, 260032);
  // File order: offsets increase.
  for (size_t i = 1; i < f.tensors().size(); ++i) EXPECT_LT(f.tensors()[i - 1].data, f.tensors()[i].data);
}

// ---------------------------------------------------------------- corrupt headers

struct CorruptCase {
  std::string name;
  std::string bytes;
  std::vector<std::string> fragments;  // besides the file path
};

std::vector<CorruptCase> corrupt_cases() {
  const std::string ok_entry = R"("w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  const std::string data8(8, '\x01');
  auto one = [&](const std::string& entry, const std::string& data) { return st_file("{" + entry + "}", data); };
  return {
      {"too_small", std::string("\x05\x00\x00", 3), {"file is 3 bytes", "8-byte header length"}},
      {"length_past_eof", le64(1000) + "{}", {"header length 1000", "past the end"}},
      {"absurd_length", le64(UINT64_MAX) + "{}", {"header length", "100 MB"}},
      {"just_over_limit", le64(kSafetensorsMaxHeader + 1) + "{}", {"header length", "100 MB"}},
      {"bad_json", st_file(R"({"w":{"dtype":"F32",)", data8), {"JSON"}},
      {"not_an_object", st_file("[1, 2]  ", ""), {"header", "'{'"}},
      {"entry_not_object", one(R"("w":[1,2])", data8), {"'w'", "dtype/shape/data_offsets"}},
      {"missing_dtype", one(R"("w":{"shape":[2],"data_offsets":[0,8]})", data8), {"'w'", "'dtype'"}},
      {"missing_shape", one(R"("w":{"dtype":"F32","data_offsets":[0,8]})", data8), {"'w'", "'shape'"}},
      {"missing_offsets", one(R"("w":{"dtype":"F32","shape":[2]})", data8), {"'w'", "'data_offsets'"}},
      {"unknown_dtype", one(R"("w":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]})", data8), {"'w'", "'dtype'", "Q4"}},
      {"negative_dim", one(R"("w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]})", data8), {"'w'", "'shape'"}},
      {"float_dim", one(R"("w":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]})", data8), {"'w'", "'shape'"}},
      {"shape_overflow",
       one(R"("w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]})", data8),
       {"'w'", "'shape'", "overflow"}},
      {"shape_bytes_mismatch", one(R"("w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]})", data8),
       {"'w'", "'shape'", "12 bytes"}},
      {"offsets_out_of_range", one(R"("w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]})", data8),
       {"'w'", "'data_offsets'", "past the data section"}},
      {"offsets_begin_after_end", one(R"("w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]})", data8),
       {"'w'", "'data_offsets'", "begin > end"}},
      {"offsets_not_pair", one(R"("w":{"dtype":"F32","shape":[2],"data_offsets":[0]})", data8),
       {"'w'", "'data_offsets'"}},
      {"offsets_negative", one(R"("w":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]})", data8),
       {"'w'", "'data_offsets'"}},
      {"overlapping_ranges",
       one(R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]})",
           std::string(12, '\0')),
       {"'b'", "'data_offsets'", "overlaps tensor 'a'"}},
      {"duplicate_tensor", one(ok_entry + "," + ok_entry, data8), {"'w'", "twice"}},
      {"metadata_not_string", one(R"("__metadata__":{"format":1},)" + ok_entry, data8), {"'__metadata__.format'"}},
      {"truncated_file", one(ok_entry, data8.substr(0, 5)), {"'w'", "'data_offsets'", "truncated"}},
  };
}

TEST(Safetensors, CorruptHeadersFailWithFileAndField) {
  for (const auto& c : corrupt_cases()) {
    SCOPED_TRACE(c.name);
    const std::string path = tmp_path("corrupt-" + c.name + ".safetensors");
    write_bytes(path, c.bytes);
    std::vector<std::string> fragments = c.fragments;
    fragments.push_back(path);
    expect_error([&] { SafetensorsFile f(path); }, fragments);
  }
}

TEST(Safetensors, EmptyTensorsDoNotOverlap) {
  const std::string path = tmp_path("empties.safetensors");
  write_bytes(path, st_file(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},)"
                            R"("b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                            std::string(8, '\0')));
  SafetensorsFile f(path);
  EXPECT_EQ(f.tensors().size(), 2u);
}

// ---------------------------------------------------------------- folders

std::string shard_name(size_t i, size_t n) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", i + 1, n);
  return buf;
}

// Writes one shard file per list of tensor names (each tensor [2] f32 = {shard, name length}).
void write_shards(const std::string& dir, const std::vector<std::vector<std::string>>& shards) {
  for (size_t s = 0; s < shards.size(); ++s) {
    SafetensorsWriter w((fs::path(dir) / shard_name(s, shards.size())).string());
    for (const auto& name : shards[s]) w.add_f32(name, {2}, std::vector<float>{float(s), float(name.size())});
    w.finish();
  }
}

// An index that places each tensor where write_shards put it (2 shards).
const char* kTwoShardIndex = R"({
  "metadata": {"total_size": 32},
  "weight_map": {
    "a": "model-00001-of-00002.safetensors",
    "b": "model-00001-of-00002.safetensors",
    "c": "model-00002-of-00002.safetensors",
    "d": "model-00002-of-00002.safetensors"
  }
})";

TEST(SafetensorsFolder, OpensShardsListedInIndex) {
  const std::string dir = fresh_dir("sharded");
  write_shards(dir, {{"a", "b"}, {"c", "d"}});
  write_bytes(dir + "/model.safetensors.index.json", kTwoShardIndex);
  auto src = open_safetensors_folder(dir);
  EXPECT_EQ(src->path(), dir);
  ASSERT_EQ(src->tensors().size(), 4u);
  for (auto [name, shard] : {std::pair{"a", 0.f}, {"b", 0.f}, {"c", 1.f}, {"d", 1.f}}) {
    float v[2];
    to_f32(src->get(name), 0, 2, v);
    EXPECT_EQ(v[0], shard) << name;
  }
}

TEST(SafetensorsFolder, SingleFile) {
  const std::string dir = fresh_dir("single");
  SafetensorsWriter w(dir + "/model.safetensors");
  w.add_f32("x", {1}, std::vector<float>{7});
  w.finish();
  auto src = open_safetensors_folder(dir);
  EXPECT_EQ(src->tensors().size(), 1u);
  EXPECT_NE(src->find("x"), nullptr);
}

TEST(SafetensorsFolder, TensorInTwoShardsFails) {
  const std::string dir = fresh_dir("sharded-dup");
  write_shards(dir, {{"a", "b"}, {"b", "c", "d"}});
  write_bytes(dir + "/model.safetensors.index.json", kTwoShardIndex);
  expect_error([&] { open_safetensors_folder(dir); }, {"model-00002-of-00002.safetensors", "tensor 'b'", "also stored"});
}

TEST(SafetensorsFolder, MissingShardFails) {
  const std::string dir = fresh_dir("sharded-missing");
  write_shards(dir, {{"a", "b"}, {"c", "d"}});
  fs::remove(dir + "/model-00002-of-00002.safetensors");
  write_bytes(dir + "/model.safetensors.index.json", kTwoShardIndex);
  expect_error([&] { open_safetensors_folder(dir); },
               {"model.safetensors.index.json", "weight_map", "model-00002-of-00002.safetensors", "missing"});
}

TEST(SafetensorsFolder, IndexPointingAtWrongShardFails) {
  const std::string dir = fresh_dir("sharded-wrong");
  write_shards(dir, {{"a", "b", "c"}, {"d"}});
  write_bytes(dir + "/model.safetensors.index.json", kTwoShardIndex);
  expect_error([&] { open_safetensors_folder(dir); }, {"model.safetensors.index.json", "tensor 'c'"});
}

TEST(SafetensorsFolder, ShardOutsideFolderRefused) {
  const std::string dir = fresh_dir("sharded-escape");
  write_bytes(dir + "/model.safetensors.index.json", R"({"weight_map": {"a": "../x.safetensors"}})");
  expect_error([&] { open_safetensors_folder(dir); }, {"weight_map['a']", "plain file name"});
}

TEST(SafetensorsFolder, EmptyFolderFails) {
  const std::string dir = fresh_dir("no-weights");
  expect_error([&] { open_safetensors_folder(dir); }, {dir, "model.safetensors"});
}

}  // namespace
}  // namespace lowbit
