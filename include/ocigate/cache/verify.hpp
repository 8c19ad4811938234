#pragma once
// `ocigate cache verify`: rehashes every committed blob and every cached manifest against the
// digest it is stored under, and removes the entries that do not match (or cannot be read).
// The store must be opened by the caller; the server must not run on the same directory
// (RocksDB's LOCK prevents that: see lock_holder).

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "ocigate/cache/store.hpp"
#include "ocigate/common/result.hpp"

namespace ocigate::cache {

struct BadEntry {
  std::string kind;    // "blob" or "manifest"
  std::string digest;  // the key it was stored under
  std::string why;     // "digest mismatch: sha256:...", "chunk 3 ... is missing", ...
  bool removed = false;
  std::string remove_error;  // why removing it failed, when it did
};

struct VerifyReport {
  std::uint64_t blobs = 0;      // committed blobs checked
  std::uint64_t blob_bytes = 0;  // bytes rehashed
  std::uint64_t manifests = 0;  // manifests checked
  std::vector<BadEntry> bad;
};

// Checks everything; on_bad (optional) hears of each bad entry as soon as it is handled.
// Fails only when the store cannot even be listed.
Result<VerifyReport> verify(Store& store, const std::function<void(const BadEntry&)>& on_bad = {});

// The process holding the RocksDB LOCK of the cache directory at path (a running `ocigate serve`),
// or nullopt when none does (or the directory has no database yet).
std::optional<pid_t> lock_holder(const std::string& path);

}  // namespace ocigate::cache
