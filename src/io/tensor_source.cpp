#include "io/tensor_source.h"

#include "lowbit/error.h"

namespace lowbit {

const TensorView* TensorSource::find(std::string_view name) const {
  for (const auto& t : tensors())
    if (t.name == name) return &t;
  return nullptr;
}

const TensorView& TensorSource::get(std::string_view name) const {
  const TensorView* t = find(name);
  if (!t) fail(path(), "tensor '" + std::string(name) + "' is missing", "the checkpoint does not match its config");
  return *t;
}

}  // namespace lowbit
