#include "ocigate/cli/cache_verify.hpp"

#include <cstdio>
#include <filesystem>

#include "ocigate/cache/store.hpp"
#include "ocigate/cache/verify.hpp"

namespace ocigate::cli {

int verify_cache(const config::Config& config) {
  const std::string& path = config.storage.path;
  std::error_code ec;
  if (!std::filesystem::exists(std::filesystem::path(path) / "CURRENT", ec)) {
    std::printf("no cache database at %s: nothing to verify\n", path.c_str());
    return 0;
  }
  if (auto holder = cache::lock_holder(path)) {
    std::fprintf(stderr,
                 "ocigate: the cache at %s is in use by process %d (a running `ocigate serve`?); "
                 "stop it before verifying\n",
                 path.c_str(), static_cast<int>(*holder));
    return 2;
  }
  cache::Options options;
  options.path = path;
  options.max_size = config.storage.max_size;
  options.chunk_size = config.storage.chunk_size;
  auto opened = cache::Store::open(options);
  if (!opened) {
    std::fprintf(stderr, "ocigate: %s\n", opened.error().message.c_str());
    return 2;
  }
  auto& store = **opened;
  auto report = cache::verify(store, [](const cache::BadEntry& bad) {
    if (bad.removed) {
      std::printf("bad %s %s: %s (removed)\n", bad.kind.c_str(), bad.digest.c_str(), bad.why.c_str());
    } else {
      std::printf("bad %s %s: %s (NOT removed: %s)\n", bad.kind.c_str(), bad.digest.c_str(), bad.why.c_str(),
                  bad.remove_error.c_str());
    }
    std::fflush(stdout);
  });
  store.close();
  if (!report) {
    std::fprintf(stderr, "ocigate: cannot verify the cache at %s: %s\n", path.c_str(), report.error().message.c_str());
    return 2;
  }
  std::printf("verified %llu blobs (%llu bytes) and %llu manifests in %s: %zu bad\n",
              static_cast<unsigned long long>(report->blobs), static_cast<unsigned long long>(report->blob_bytes),
              static_cast<unsigned long long>(report->manifests), path.c_str(), report->bad.size());
  return report->bad.empty() ? 0 : 1;
}

}  // namespace ocigate::cli
