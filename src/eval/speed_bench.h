// Inference speed the way llama-bench measures it, on lowbit's Runner:
//
//   pp<N> (prompt processing): one forward over N tokens from an empty cache
//          (BOS, then seeded random token ids); tokens/s = N / time.
//   tg<N> (text generation):   N single-token forwards from an empty cache,
//          each at the next position (BOS, then seeded random ids);
//          tokens/s = N / time.
//
// Each test gets its own Runner (KV cache sized for the test), one untimed
// warm-up (the whole prompt for pp, one token for tg), then `reps` timed runs,
// each starting over at position 0. Rates are reported per run, summarised as
// mean ± sample standard deviation (n - 1), as llama-bench does.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/model.h"

namespace lowbit {

struct SpeedTest {
  enum class Kind { Prompt, Generation };
  Kind kind = Kind::Prompt;
  int n_tokens = 0;
  std::string name() const;  // "pp512", "tg128"
};

struct SpeedBenchOptions {
  int threads = 0;      // <= 0: all cores
  int reps = 5;         // timed runs per test
  bool warmup = true;   // one untimed run first
  uint64_t seed = 42;   // token ids
};

struct SpeedResult {
  SpeedTest test;
  int threads = 0;                 // resolved
  std::vector<double> seconds;     // one per timed run
  std::vector<double> tokens_per_s() const;
  double mean_tps() const;
  double stddev_tps() const;       // sample standard deviation (0 for one run)
};

// Runs one test on `model`. Throws lowbit::Error when the model cannot run
// (e.g. a weight type the forward pass does not support yet) or n_tokens is
// not positive.
SpeedResult run_speed_test(const Model& model, const SpeedTest& test, const SpeedBenchOptions& opts = {});

// Bytes of weights one generated token reads: every weight tensor once, except
// the token embedding, of which only one row is read (when the output head is
// tied to it, the whole matrix is read by the head anyway).
uint64_t weight_bytes_per_token(const Model& model);

// Bytes of all weight tensors (tied output counted once).
uint64_t weight_bytes(const Model& model);

// The CPU's "model name" from /proc/cpuinfo ("unknown CPU" when unreadable).
std::string cpu_model_name();

}  // namespace lowbit
