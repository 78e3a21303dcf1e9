// SHA-256 of bytes or a file, as lowercase hex (OpenSSL's libcrypto).
#pragma once
#include <string>
#include <string_view>

namespace lowbit {
std::string sha256_hex(std::string_view bytes);
}  // namespace lowbit
