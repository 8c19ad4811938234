#pragma once
// Single-flight blob fetches. One coroutine per uncached digest streams the upstream body,
// hashes it on the hash pool as it reads, and appends it to a cache BlobWriter. Clients follow the
// staged bytes at their own pace; the final byte is withheld until the digest is verified, so no
// client ever holds a complete wrong blob. The commit (a sync to disk) runs after that, off their
// path. The fetch does not depend on any client: a client that leaves does not stop it.

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>

#include "pull/notifier.hpp"
#include "ocigate/cache/store.hpp"
#include "ocigate/metrics/metrics.hpp"
#include "ocigate/upstream/client.hpp"
#include "reply.hpp"

namespace ocigate::server {

class BlobFetch {
 public:
  // uncached: every byte arrived and matched, but the cache could not commit the blob; its
  // followers read the staged file to the end, and the next pull fetches it again.
  enum class Phase { connecting, streaming, done, uncached, failed };

  struct Snapshot {
    Phase phase = Phase::connecting;
    bool size_known = false;
    std::uint64_t size = 0;
    std::uint64_t readable = 0;  // bytes a follower may read now
    bool verified = false;       // all size bytes are readable and match the digest
    Error error;
    std::shared_ptr<cache::BlobWriter> writer;

    bool ended() const { return phase == Phase::done || phase == Phase::uncached || phase == Phase::failed; }
  };

  BlobFetch(std::string digest, std::string upstream) : digest_(std::move(digest)), upstream_(std::move(upstream)) {}

  Snapshot snapshot() const;
  Notifier& notifier() { return notifier_; }
  const std::string& digest() const { return digest_; }
  const std::string& upstream() const { return upstream_; }

  // Called by the fetch coroutine only.
  void start_streaming(std::shared_ptr<cache::BlobWriter> writer, bool size_known, std::uint64_t size);
  void progressed();
  // Every byte arrived and matches the digest: followers may read to the end while it commits.
  void verified(std::uint64_t size);
  void finish(std::unique_ptr<cache::BlobReader> pin);
  void finish_uncached(Error why);
  void fail(Error error);

 private:
  mutable std::mutex mutex_;
  std::string digest_;
  std::string upstream_;
  Phase phase_ = Phase::connecting;
  bool size_known_ = false;
  bool verified_ = false;
  std::uint64_t size_ = 0;
  Error error_;
  std::shared_ptr<cache::BlobWriter> writer_;
  std::unique_ptr<cache::BlobReader> pin_;  // keeps the committed blob from eviction while followed
  Notifier notifier_;
};

struct FetchContext {
  cache::Store& store;
  metrics::Metrics& metrics;
  std::chrono::seconds idle_timeout;
};

class BlobFetches {
 public:
  BlobFetches(FetchContext context, boost::asio::any_io_executor executor, unsigned hash_threads)
      : context_(context), executor_(std::move(executor)), hash_pool_(std::max(hash_threads, 1U)) {}
  // Runs the commits still queued before it returns (at shutdown: a verified blob stays cached).
  ~BlobFetches();
  BlobFetches(const BlobFetches&) = delete;
  BlobFetches& operator=(const BlobFetches&) = delete;

  // Returns the fetch under way for digest, or starts one on its own strand.
  std::shared_ptr<BlobFetch> join(const std::string& digest, upstream::Client& client, const std::string& repo,
                                  const std::string& scope);

  // Waits until the fetch has a response (streaming, done or failed).
  boost::asio::awaitable<BlobFetch::Snapshot> wait_started(const std::shared_ptr<BlobFetch>& fetch);
  // Waits until the fetch is done, uncached or failed.
  boost::asio::awaitable<BlobFetch::Snapshot> wait_finished(const std::shared_ptr<BlobFetch>& fetch);

  // A body source following the fetch from offset 0. Waiting for bytes past the deadline is an
  // upstream_timeout error.
  std::unique_ptr<BodySource> follow(
      std::shared_ptr<BlobFetch> fetch,
      std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max());

 private:
  boost::asio::awaitable<void> run(std::shared_ptr<BlobFetch> fetch, upstream::Client& client, std::string repo,
                                   std::string scope);
  // On a digest mismatch, actual is what the bytes hashed to.
  boost::asio::awaitable<Status> stream_body(BlobFetch& fetch, upstream::Response& response,
                                             cache::BlobWriter& writer, std::string& actual);
  boost::asio::awaitable<Status> commit(cache::BlobWriter& writer);
  void forget(const std::string& digest);

  FetchContext context_;
  boost::asio::any_io_executor executor_;
  std::mutex mutex_;
  std::unordered_map<std::string, std::shared_ptr<BlobFetch>> fetches_;
  // Each fetch hashes its body on a strand of this pool, beside the I/O thread that reads it.
  boost::asio::thread_pool hash_pool_;
  std::atomic<unsigned> commits_pending_{0};  // queued or running on commit_pool_
  std::atomic<unsigned> big_piece_fetches_{0};  // fetches reading 1 MiB pieces (blob_fetch.cpp)
  // Commits flush and sync to disk (tens of ms): kept off the I/O threads, which carry every other
  // transfer meanwhile. Last member: joined first, while what its work refers to still exists.
  boost::asio::thread_pool commit_pool_{2};
};

// Rehashing a whole cached blob as it is served (storage.verify_reads): the last piece is held
// back until the bytes match digest; on a mismatch on_mismatch hears the actual digest and the
// transfer is cut, so no client gets the whole corrupted blob.
struct ReadCheck {
  std::string digest;
  std::function<void(const std::string& actual)> on_mismatch;
};

// Serves a committed blob from the cache, range-limited, pinned while alive. A check applies only
// to a read of the whole blob.
std::unique_ptr<BodySource> cache_source(std::unique_ptr<cache::BlobReader> reader, std::uint64_t first,
                                         std::uint64_t length, std::optional<ReadCheck> check = std::nullopt);

// Maps a non-2xx upstream status to the client-facing error.
Error upstream_status_error(const upstream::Response& response, Errc not_found, const std::string& what);

}  // namespace ocigate::server
