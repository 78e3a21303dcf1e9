// A printable module tree in the familiar PyTorch style, annotated with each
// tensor's storage type and bytes; identical consecutive layers are collapsed
// ("(0-4): 5 x LlamaDecoderLayer(").
#pragma once
#include <string>

#include "model/model.h"

namespace lowbit {
std::string module_tree(const Model& model);
}  // namespace lowbit
