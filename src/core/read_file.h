// Whole small files (configs, texts) into memory, with a clear error.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace lowbit {
// Throws lowbit::Error naming `path` when it cannot be read. `max_bytes` guards
// against accidentally slurping a huge file.
std::string read_text_file(const std::string& path, size_t max_bytes = size_t(1) << 31);
// A small JSON file (config.json, an index, a quantization config), parsed; errors
// name `path` (not found, unreadable, not valid JSON).
nlohmann::json read_json_file(const std::string& path);
}  // namespace lowbit
