#pragma once
// Test-only raw access to a cache database, for checking what a crash left behind and for
// simulating corruption. The store at that path must be closed (RocksDB holds a process lock).

#include <string>
#include <string_view>
#include <vector>

#include "ocigate/common/result.hpp"

namespace ocigate::cache::test_access {

// Every key starting with prefix, in order.
Result<std::vector<std::string>> keys_with_prefix(const std::string& path, std::string_view prefix);
Result<std::string> get_raw(const std::string& path, std::string_view key);
Status put_raw(const std::string& path, std::string_view key, std::string_view value);
Status delete_raw(const std::string& path, std::string_view key);

}  // namespace ocigate::cache::test_access
