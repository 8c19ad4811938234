#include "ocigate/cache/verify.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>

#include "ocigate/oci/digest.hpp"

namespace ocigate::cache {

namespace {

constexpr std::size_t read_piece = 1u << 20;

// The digest a blob's bytes actually have, or an error when they cannot all be read.
Result<std::string> rehash_blob(Store& store, const std::string& algorithm, const std::string& digest,
                                std::uint64_t& bytes) {
  auto reader = store.inspect_blob(digest);
  if (!reader) return Error{Errc::blob_unknown, "left the cache while being checked"};
  oci::Hasher hasher(algorithm);
  std::string piece;
  std::uint64_t offset = 0;
  while (offset < reader->size()) {
    auto n = reader->read(offset, read_piece, piece);
    if (!n) return n.error();
    if (*n == 0) return Error{Errc::storage_error, "ends at byte " + std::to_string(offset) + " of " +
                                                        std::to_string(reader->size())};
    hasher.update(piece);
    offset += *n;
  }
  bytes += offset;
  return hasher.finish();
}

}  // namespace

Result<VerifyReport> verify(Store& store, const std::function<void(const BadEntry&)>& on_bad) {
  VerifyReport report;
  auto bad = [&](std::string kind, const std::string& digest, std::string why) {
    BadEntry entry{std::move(kind), digest, std::move(why), false, {}};
    auto removed = entry.kind == "blob" ? store.remove_blob(digest) : store.remove_manifest(digest);
    entry.removed = removed.ok();
    if (!removed) entry.remove_error = removed.error().message;
    if (on_bad) on_bad(entry);
    report.bad.push_back(std::move(entry));
  };

  auto blobs = store.blob_digests();
  if (!blobs) return blobs.error();
  for (const auto& digest : *blobs) {
    auto parsed = oci::Digest::parse(digest);
    if (!parsed) {
      bad("blob", digest, "stored under a digest that cannot be verified");
      continue;
    }
    ++report.blobs;
    auto actual = rehash_blob(store, parsed->algorithm, digest, report.blob_bytes);
    if (!actual) {
      // A blob evicted or removed between the listing and now is not a bad entry.
      if (actual.error().code != Errc::blob_unknown) bad("blob", digest, actual.error().message);
      continue;
    }
    if (*actual != digest) bad("blob", digest, "digest mismatch: the bytes hash to " + *actual);
  }

  auto manifests = store.manifest_digests();
  if (!manifests) return manifests.error();
  for (const auto& digest : *manifests) {
    ++report.manifests;
    auto parsed = oci::Digest::parse(digest);
    if (!parsed) {
      bad("manifest", digest, "stored under a digest that cannot be verified");
      continue;
    }
    auto entry = store.get_manifest(digest);
    if (!entry) {
      bad("manifest", digest, "unreadable entry");
      continue;
    }
    oci::Hasher hasher(parsed->algorithm);
    hasher.update(entry->bytes);
    auto actual = hasher.finish();
    if (actual != digest) bad("manifest", digest, "digest mismatch: the bytes hash to " + actual);
  }
  return report;
}

std::optional<pid_t> lock_holder(const std::string& path) {
  const std::string lock_file = (std::filesystem::path(path) / "LOCK").string();
  int fd = ::open(lock_file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  struct flock probe {};
  probe.l_type = F_WRLCK;
  probe.l_whence = SEEK_SET;
  probe.l_start = 0;
  probe.l_len = 0;
  const int got = ::fcntl(fd, F_GETLK, &probe);
  ::close(fd);
  if (got != 0 || probe.l_type == F_UNLCK) return std::nullopt;
  return probe.l_pid;
}

}  // namespace ocigate::cache
