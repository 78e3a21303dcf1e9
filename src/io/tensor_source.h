// A file (or folder of files) that holds named tensors: safetensors, GGUF, llama2.c.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/tensor.h"

namespace lowbit {

class TensorSource {
 public:
  virtual ~TensorSource() = default;
  // Every tensor, in file order. Views stay valid while the source lives.
  virtual const std::vector<TensorView>& tensors() const = 0;
  // Path of the file or folder, for error messages.
  virtual const std::string& path() const = 0;

  const TensorView* find(std::string_view name) const;
  // Throws lowbit::Error naming the file and the tensor when it is missing.
  const TensorView& get(std::string_view name) const;
};

}  // namespace lowbit
