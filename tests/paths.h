// Where tests find ../shared and the built CLI.
#pragma once
#include <string>

namespace lowbit::test {
std::string shared(const std::string& rel);  // ../shared/<rel>, absolute
std::string cli();                           // path of the built `lowbit` binary
std::string temp_dir();                      // a fresh per-test-process temp folder
}  // namespace lowbit::test
