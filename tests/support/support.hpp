#pragma once
// Helpers every unit test binary may use: a fresh temporary directory per test and seeded bytes.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <random>
#include <string>

namespace ocigate::test {

// A fresh directory under the system's temp dir, removed with everything in it at the end. A
// directory that cannot be made fails the test at once, rather than letting it run on "".
class TempDir {
 public:
  TempDir() {
    // mkdtemp(3) turns the pattern's last six characters into a unique suffix and creates the directory.
    std::string pattern = (std::filesystem::temp_directory_path() / "ocigate-test-XXXXXX").string();
    if (mkdtemp(pattern.data()) != nullptr) {
      path_ = pattern;
    } else {
      ADD_FAILURE() << "cannot make a temporary directory from " << pattern;
    }
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// size pseudo-random bytes, the same for the same seed.
inline std::string pattern_bytes(std::size_t size, std::uint32_t seed) {
  std::mt19937 random(seed);
  std::string out(size, '\0');
  for (auto& c : out) c = static_cast<char>(random() & 0xff);
  return out;
}

}  // namespace ocigate::test
