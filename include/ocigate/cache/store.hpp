#pragma once
// The local cache: one RocksDB database holds the index of blobs (size, LRU order), manifests by
// digest, tag->digest answers and small records (verdicts, tag lists); each blob's bytes are one
// plain file under <path>/blobs that the index owns. Thread-safe: every method may be called from
// any thread. Calls block on local disk only; none of them does network I/O.
//
// Invariant: a blob is visible (blob_size/open_blob find it) only once all of it was written and
// synced, the caller verified its digest and called commit(). A crash at any moment leaves at most
// files no index entry owns, which open() deletes.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ocigate/common/result.hpp"

namespace ocigate::cache {

struct Options {
  std::string path;                        // directory; created if missing
  // Bytes of blobs + manifests before LRU eviction. Pinned blobs and the blob just committed are
  // skipped; a blob bigger than the whole budget is evicted once its last reader goes.
  std::uint64_t max_size = 20ull << 30;
  // The piece readers take at a time (BlobReader/BlobWriter::chunk_size): what one stream holds
  // in memory.
  std::uint32_t chunk_size = 1u << 20;
  // Told of every indexed blob dropped because its file is missing or shorter than recorded
  // (deleted by hand, a broken disk, a crash before the file reached the disk), at open or when
  // it is next read. The blob is fetched again; this is for the log and a metric. Called under
  // the cache's lock: it must be quick and must not call the store.
  std::function<void(const std::string& digest, const std::string& why)> on_lost_file;
  // How long close() goes on deleting the files of dropped (evicted, removed) blobs that are still
  // queued. Any left then are orphans the next open deletes: a stop right after a mass eviction
  // must not wait for tens of seconds of unlinks.
  std::chrono::milliseconds close_delete_grace{2000};
  // Tests only: called on the thread that deletes the files of dropped blobs before each batch it
  // deletes, so a test can hold it back. Must not call the store.
  std::function<void()> before_deleting_files;
};

struct ManifestEntry {
  std::string media_type;
  std::string bytes;
};

struct TagEntry {
  std::string digest;
  std::string media_type;
  std::int64_t fetched_at = 0;  // unix seconds when the upstream last confirmed it
};

struct Stats {
  std::uint64_t size_bytes = 0;      // committed blobs + manifests
  std::uint64_t blob_count = 0;
  std::uint64_t evictions = 0;       // blobs evicted since open
  std::uint64_t evicted_bytes = 0;
  std::uint64_t lost_files = 0;      // blobs dropped since open because their file was missing or short
  // Blobs loaded at open whose file has not been checked yet. open() does not stat every file before
  // it returns: a thread checks them after it (and a blob's first use checks its own), dropping
  // those whose file is missing or short; none is ever served unchecked.
  std::uint64_t unchecked_blobs = 0;
};

class Store;

// Reads a committed blob. While a reader is alive the blob is pinned: eviction skips it.
class BlobReader {
 public:
  virtual ~BlobReader() = default;
  virtual std::uint64_t size() const = 0;
  // The piece size readers should ask for.
  virtual std::uint32_t chunk_size() const = 0;
  // Appends up to max bytes starting at offset to out (out is cleared first).
  // Returns the number of bytes read; 0 only when offset >= size().
  // Reads span chunk boundaries: fewer than max bytes come back only at the end of the blob.
  virtual Result<std::size_t> read(std::uint64_t offset, std::size_t max, std::string& out) = 0;
  // The open file holding the blob's bytes from offset 0, for sends that skip the copy through
  // user space (sendfile(2)). Valid while this reader lives; never written to.
  virtual int file_descriptor() const = 0;
};

// Fills one blob. Appended bytes go to the blob's file at once; nothing is visible to open_blob
// until commit(). Destroying an uncommitted writer deletes its file.
class BlobWriter {
 public:
  virtual ~BlobWriter() = default;
  virtual Status append(std::string_view bytes) = 0;
  // Bytes appended so far.
  virtual std::uint64_t appended() const = 0;
  // Bytes readable with read_staged: everything appended.
  virtual std::uint64_t staged() const = 0;
  virtual std::uint32_t chunk_size() const = 0;
  // Reads staged bytes, like BlobReader::read; offset+max is clamped to staged().
  // Safe to call from other threads while append() runs.
  virtual Result<std::size_t> read_staged(std::uint64_t offset, std::size_t max, std::string& out) = 0;
  // The open file the staged bytes are in, from offset 0, like BlobReader::file_descriptor. Bytes
  // up to staged() are in it; valid while this writer lives, even after a failure unlinked it.
  virtual int file_descriptor() const = 0;
  // Syncs the file and makes the blob visible with one synced index write. The caller must have
  // verified the digest of exactly the appended bytes. read_staged keeps working after it.
  virtual Status commit() = 0;
};

class Store {
 public:
  virtual ~Store() = default;

  // Opens (or creates) the database, loads the LRU index, and deletes blob files no entry owns.
  // Entries whose file is missing or short are dropped after it returns (Stats::unchecked_blobs).
  static Result<std::unique_ptr<Store>> open(const Options& options);

  // Manifests, keyed by their digest string ("sha256:...").
  virtual std::optional<ManifestEntry> get_manifest(const std::string& digest) = 0;
  virtual Status put_manifest(const std::string& digest, const ManifestEntry& entry) = 0;

  // Tag answers, keyed by "<upstream>/<repository>" and tag.
  virtual std::optional<TagEntry> get_tag(const std::string& repo_key, const std::string& tag) = 0;
  virtual Status put_tag(const std::string& repo_key, const std::string& tag, const TagEntry& entry) = 0;

  // Blobs.
  virtual std::optional<std::uint64_t> blob_size(const std::string& digest) = 0;
  virtual std::unique_ptr<BlobReader> open_blob(const std::string& digest) = 0;  // nullptr if absent
  virtual Result<std::unique_ptr<BlobWriter>> begin_blob(const std::string& digest) = 0;
  virtual Status remove_blob(const std::string& digest) = 0;

  // Small records in named spaces ("verdict", "tags", "referrers", ...). Not counted for eviction.
  virtual std::optional<std::string> get_record(std::string_view space, std::string_view key) = 0;
  virtual Status put_record(std::string_view space, std::string_view key, std::string_view value) = 0;
  virtual Status remove_record(std::string_view space, std::string_view key) = 0;
  // Removes every record of space whose key does not start with keep (two range deletes, however
  // many records there are). An empty keep keeps everything.
  virtual Status remove_records_outside(std::string_view space, std::string_view keep) = 0;

  // Maintenance (`ocigate cache verify`). Digests of every committed blob and every cached
  // manifest, in key order; a snapshot, so entries may come and go while the caller walks it.
  virtual Result<std::vector<std::string>> blob_digests() = 0;
  virtual Result<std::vector<std::string>> manifest_digests() = 0;
  // Like open_blob, but not a use: the LRU order stays as it was (a full scan must not make every
  // blob the most recently used).
  virtual std::unique_ptr<BlobReader> inspect_blob(const std::string& digest) = 0;
  // Removes a manifest and its size from the budget; tags pointing at it are fetched again.
  virtual Status remove_manifest(const std::string& digest) = 0;

  virtual Stats stats() const = 0;
  // The files of evicted and removed blobs are deleted on a thread of the store's, after the call
  // that dropped them returned. This returns once every file dropped so far is deleted (for tests
  // and benchmarks; nothing else needs to wait).
  virtual void wait_files_deleted() = 0;
  // Flushes and closes cleanly, and deletes the files still to delete (for up to
  // Options::close_delete_grace); further calls fail with storage_error.
  virtual void close() = 0;
};

}  // namespace ocigate::cache
