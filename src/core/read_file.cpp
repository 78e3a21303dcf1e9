#include "core/read_file.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "lowbit/error.h"

namespace lowbit {

std::string read_text_file(const std::string& path, size_t max_bytes) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) fail(path, "no such file", "check the path");
  auto size = std::filesystem::file_size(path, ec);
  if (ec) fail(path, "cannot stat: " + ec.message());
  if (size > max_bytes) fail(path, "file is too large (" + std::to_string(size) + " bytes)");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, std::string("cannot open: ") + std::strerror(errno));
  std::string data(size, '\0');
  in.read(data.data(), std::streamsize(size));
  if (!in) fail(path, "read failed");
  return data;
}

nlohmann::json read_json_file(const std::string& path) {
  const std::string text = read_text_file(path, size_t(64) << 20);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail(path, std::string("not valid JSON: ") + e.what(), "the file is corrupt or truncated");
  }
}

}  // namespace lowbit
