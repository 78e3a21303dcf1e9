#include "io/model_loader.h"

#include <omp.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "io/gguf_model.h"
#include "io/hf_model.h"
#include "io/llama2c.h"
#include "lowbit/error.h"
#include "model/packed_weights.h"

namespace lowbit {

namespace fs = std::filesystem;

namespace {

std::string first_bytes(const std::string& path, size_t n) {
  std::ifstream in(path, std::ios::binary);
  std::string s(n, '\0');
  in.read(s.data(), std::streamsize(n));
  s.resize(size_t(in.gcount()));
  return s;
}

}  // namespace

std::unique_ptr<Model> load_model(const std::string& path, const LoadOptions& opts) {
  auto m = std::make_unique<Model>();
  m->path = path;
  std::error_code ec;
  if (!fs::exists(path, ec)) fail(path, "no such file or folder", "pass a GGUF file, a Hugging Face folder or a llama2.c .bin");
  if (fs::is_directory(path, ec)) {
    if (!fs::exists(fs::path(path) / "config.json", ec))
      fail(path, "folder has no config.json", "a Hugging Face model folder holds config.json and *.safetensors");
    load_hf_model(path, *m);
  } else if (fs::path(path).extension() == ".safetensors" || fs::path(path).filename() == "config.json" ||
             fs::path(path).filename() == "model.safetensors.index.json") {
    load_hf_model(fs::path(path).parent_path().string(), *m);
  } else if (first_bytes(path, 4) == "GGUF") {
    load_gguf_model(path, *m);
  } else if (fs::path(path).extension() == ".bin") {
    load_llama2c_model(path, *m);
  } else {
    fail(path, "unrecognised model file (not GGUF, safetensors or a llama2.c .bin)",
         "pass a GGUF file, a Hugging Face folder or a llama2.c checkpoint");
  }
  if (!opts.tokenizer_path.empty()) {
    m->tokenizer = open_tokenizer(opts.tokenizer_path, m->config.n_vocab);
  }
  if (m->tokenizer && m->tokenizer->n_vocab() > m->config.n_vocab)
    fail(path, fmt::format("the tokenizer has {} tokens but the model only {}", m->tokenizer->n_vocab(),
                           m->config.n_vocab),
         "the tokenizer does not belong to this model");
  if (opts.pack_for_cpu) pack_weights_for_cpu(*m, omp_get_max_threads());  // lowbit bench reports it
  return m;
}

}  // namespace lowbit
