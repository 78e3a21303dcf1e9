// The `lowbit` binary end to end: output a user reads, exit codes, and
// one-line errors on bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstdio>
#include <fstream>
#include <string>

#include "paths.h"

namespace {

using lowbit::test::CmdResult;
using lowbit::test::run_cli;

std::string S(const std::string& rel) { return lowbit::test::shared(rel); }

TEST(Cli, EstimateFromParameterCount) {
  // 8e9 * 2 bytes = 16e9 bytes = 14.901 GiB; 8e9 * 0.5 = 3.725 GiB; 70e9 * 2 = 130.385 GiB.
  EXPECT_NE(run_cli("estimate --params 8e9 --bits 16").out.find("14.90 GiB"), std::string::npos);
  EXPECT_NE(run_cli("estimate --params 8e9 --bits 4").out.find("3.73 GiB"), std::string::npos);
  EXPECT_NE(run_cli("estimate --params 70e9 --bits 16").out.find("130.39 GiB"), std::string::npos);
}

TEST(Cli, EstimateModelKvCache) {
  // stories260K: 5 layers, kv_dim 32; ctx 512, f16 KV: 2 * 5 * 512 * 32 * 2 bytes = 327680 bytes = 320 KiB.
  CmdResult r = run_cli("estimate " + S("models/stories260K/stories260K-f32.gguf") + " --ctx 512");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("KV cache  320.00 KiB"), std::string::npos) << r.out;
  // 260,032 f32 parameters = 1,040,128 bytes = 1015.75 KiB.
  EXPECT_NE(r.out.find("weights   1015.75 KiB (260032 parameters"), std::string::npos) << r.out;
}

TEST(Cli, InspectPrintsModuleTree) {
  for (const char* m : {"models/stories260K/stories260K-f32.gguf", "models/stories260K-hf",
                        "models/stories260K/stories260K.bin"}) {
    CmdResult r = run_cli("inspect " + S(m));
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("parameters    260032"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("(0-4): 5 x LlamaDecoderLayer("), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("(gate_proj): Linear(in_features=64, out_features=172, bias=False)"), std::string::npos);
    EXPECT_NE(r.out.find("(k_proj): Linear(in_features=64, out_features=32, bias=False)"), std::string::npos);
  }
}

TEST(Cli, PerplexityPrintsSetupAndResult) {
  CmdResult r = run_cli("ppl " + S("models/stories260K/stories260K-f32.gguf") + " -f " + S("text/tinystories_val.txt") +
              " -c 128 --chunks 4 -t 1");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("sha256 5fc1fb0113df62b567fb271806cd645ce8d75f59c58ca0b764c03d3b6ff34ca6"), std::string::npos);
  EXPECT_NE(r.out.find("protocol llama.cpp, ctx 128, chunks 4"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("PPL = "), std::string::npos);
  EXPECT_NE(r.out.find(" +/- "), std::string::npos);
}

TEST(Cli, GreedyGenerationTellsTheDocumentedStory) {
  CmdResult r = run_cli("generate " + S("models/stories260K/stories260K.bin") + " -n 40 --temp 0");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("Once upon a time, there was a little girl named Lily. She loved to play outside in the park."),
            std::string::npos)
      << r.out;
}

// Each bad input gives exit code 1 and a one-line "error: <file>: ..." naming the file.
TEST(Cli, BadInputGivesOneLineError) {
  std::string dir = lowbit::test::temp_dir();
  std::string bad_gguf = dir + "/bad.gguf", bad_bin = dir + "/bad.bin", empty_dir = dir + "/empty_model";
  std::ofstream(bad_gguf) << "GGUF\x03";
  std::ofstream(bad_bin) << "not a checkpoint";
  std::string mk = "mkdir -p " + empty_dir;
  ASSERT_EQ(std::system(mk.c_str()), 0);
  for (const std::string& path : {dir + "/missing.gguf", bad_gguf, bad_bin, empty_dir}) {
    CmdResult r = run_cli("inspect " + path);
    EXPECT_EQ(r.code, 1) << path << ": " << r.out;
    EXPECT_EQ(r.out.rfind("error: ", 0), 0u) << r.out;
    EXPECT_NE(r.out.find(path), std::string::npos) << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  }
  CmdResult r = run_cli("ppl " + S("models/stories260K/stories260K-f32.gguf") + " -f " + dir + "/no-such-text.txt");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("no-such-text.txt"), std::string::npos);
}

}  // namespace
