#include "pull/blob_fetch.hpp"

#include <algorithm>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>

#include "ocigate/oci/digest.hpp"
#include "ocigate/server/log.hpp"
#include "cpus.hpp"
#include "notices.hpp"
#include "pull/pieces.hpp"
#include "pull/piped_hash.hpp"

namespace ocigate::server {

namespace asio = boost::asio;

namespace {

// Readers of the cache ask for the rest of the current chunk: one stream holds one chunk at most.
std::uint64_t to_chunk_end(std::uint64_t offset, std::uint32_t chunk_size) { return chunk_size - offset % chunk_size; }

std::string status_text(unsigned status) { return std::to_string(status); }

asio::awaitable<void> commit_blob(cache::BlobWriter* writer, std::optional<Status>* outcome,
                                  std::atomic<unsigned>* pending) {
  static thread_local const bool named = (name_current_thread("commit"), true);
  (void)named;
  outcome->emplace(writer->commit());
  --*pending;
  co_return;
}

}  // namespace

Error upstream_status_error(const upstream::Response& response, Errc not_found, const std::string& what) {
  const unsigned status = response.status();
  switch (status) {
    case 404: return {not_found, what + " not found upstream"};
    case 401: return {Errc::unauthorized, "upstream refused our credentials for " + what};
    case 403: return {Errc::denied, "upstream denied access to " + what};
    case 429: {
      Error error{Errc::too_many_requests, "upstream rate limit reached for " + what};
      auto it = response.headers().find("Retry-After");
      if (it != response.headers().end()) {
        unsigned long seconds = std::strtoul(std::string(it->value()).c_str(), nullptr, 10);
        error.retry_after = static_cast<unsigned>(std::min<unsigned long>(seconds, 86400));
      }
      if (error.retry_after == 0) error.retry_after = 60;
      return error;
    }
    default: return {Errc::upstream_error, "upstream answered " + status_text(status) + " for " + what};
  }
}

BlobFetch::Snapshot BlobFetch::snapshot() const {
  std::lock_guard lock(mutex_);
  Snapshot s;
  s.phase = phase_;
  s.size_known = size_known_;
  s.size = size_;
  s.error = error_;
  s.writer = writer_;
  s.verified = verified_ || phase_ == Phase::done;
  if ((phase_ == Phase::streaming || phase_ == Phase::uncached) && verified_) {
    s.readable = size_;
  } else if (phase_ == Phase::streaming && writer_ && size_known_ && size_ > 0) {
    // Hold back the last byte until the digest is verified.
    s.readable = std::min<std::uint64_t>(writer_->staged(), size_ - 1);
  } else if (phase_ == Phase::done) {
    s.readable = size_;
  }
  return s;
}

void BlobFetch::start_streaming(std::shared_ptr<cache::BlobWriter> writer, bool size_known, std::uint64_t size) {
  {
    std::lock_guard lock(mutex_);
    writer_ = std::move(writer);
    size_known_ = size_known;
    size_ = size;
    phase_ = Phase::streaming;
  }
  notifier_.notify_all();
}

void BlobFetch::progressed() { notifier_.notify_all(); }

void BlobFetch::verified(std::uint64_t size) {
  {
    std::lock_guard lock(mutex_);
    size_ = size;
    size_known_ = true;
    verified_ = true;
  }
  notifier_.notify_all();
}

void BlobFetch::finish(std::unique_ptr<cache::BlobReader> pin) {
  {
    std::lock_guard lock(mutex_);
    size_ = pin->size();
    size_known_ = true;
    pin_ = std::move(pin);
    phase_ = Phase::done;
  }
  notifier_.notify_all();
}

void BlobFetch::finish_uncached(Error why) {
  {
    std::lock_guard lock(mutex_);
    error_ = std::move(why);
    phase_ = Phase::uncached;  // the writer stays: its file is what followers read
  }
  notifier_.notify_all();
}

void BlobFetch::fail(Error error) {
  {
    std::lock_guard lock(mutex_);
    error_ = std::move(error);
    phase_ = Phase::failed;
    writer_.reset();  // an uncommitted writer deletes its file
  }
  notifier_.notify_all();
}

std::shared_ptr<BlobFetch> BlobFetches::join(const std::string& digest, upstream::Client& client,
                                             const std::string& repo, const std::string& scope) {
  std::lock_guard lock(mutex_);
  auto& slot = fetches_[digest];
  if (slot) return slot;
  slot = std::make_shared<BlobFetch>(digest, client.upstream().name);
  asio::co_spawn(asio::make_strand(executor_), run(slot, client, repo, scope), asio::detached);
  return slot;
}

// asio's thread_pool destructor stops the pool before joining it, which would drop a commit still
// queued behind two running ones. join() first runs the queue out: each commit is a sync, and
// its blob was verified and served.
BlobFetches::~BlobFetches() {
  if (unsigned pending = commits_pending_.load(); pending > 0) {
    log::info("finishing cache commits before exit", {{"commits", pending}});
  }
  commit_pool_.join();
}

void BlobFetches::forget(const std::string& digest) {
  std::lock_guard lock(mutex_);
  fetches_.erase(digest);
}

asio::awaitable<void> BlobFetches::run(std::shared_ptr<BlobFetch> fetch, upstream::Client& client, std::string repo,
                                       std::string scope) {
  const std::string& digest = fetch->digest();
  const std::string& upstream_name = client.upstream().name;
  context_.metrics.record_upstream_fetch(upstream_name, "blob");
  upstream::Request request;
  request.target = "/v2/" + repo + "/blobs/" + digest;
  request.scope = scope;
  request.follow_redirects = true;
  auto started = std::chrono::steady_clock::now();
  auto sent = co_await client.send(request);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (!sent) {
    context_.metrics.record_upstream(upstream_name, "error", seconds);
    log::warn("blob fetch failed", {{"upstream", upstream_name}, {"digest", digest}, {"error", sent.error().message}});
    fetch->fail(sent.error());
    forget(digest);
    co_return;
  }
  auto& response = **sent;
  context_.metrics.record_upstream(upstream_name, status_text(response.status()), seconds);
  if (response.status() != 200) {
    fetch->fail(upstream_status_error(response, Errc::blob_unknown, "blob " + digest));
    forget(digest);
    co_return;
  }
  auto writer_result = context_.store.begin_blob(digest);
  if (!writer_result) {
    context_.metrics.record_cache_write_failure("begin");
    log::error("cache cannot stage blob", {{"digest", digest}, {"error", writer_result.error().message}});
    fetch->fail(writer_result.error());
    forget(digest);
    co_return;
  }
  std::shared_ptr<cache::BlobWriter> writer(std::move(*writer_result));
  auto length = response.content_length();
  fetch->start_streaming(writer, length.has_value(), length.value_or(0));

  std::string actual;
  Status streamed = co_await stream_body(*fetch, response, *writer, actual);
  if (!streamed) {
    if (streamed.error().code == Errc::digest_mismatch) {
      context_.metrics.record_digest_mismatch(upstream_name);
      log::error("digest mismatch: upstream bytes do not match the digest; nothing cached",
                 {{"upstream", upstream_name}, {"served_by", response.served_by()}, {"repository", repo},
                  {"digest", digest}, {"detail", streamed.error().message}});
      notices::digest_mismatch(upstream_name, repo, digest, actual);
    } else {
      log::warn("blob fetch failed", {{"upstream", upstream_name}, {"digest", digest},
                                      {"error", streamed.error().message}});
    }
    writer.reset();
    fetch->fail(streamed.error());
    forget(digest);
    co_return;
  }
  if (Status committed = co_await commit(*writer); !committed) {
    context_.metrics.record_cache_write_failure("commit");
    log::error("cache cannot commit a verified blob; its clients get it from the staged file, the next pull "
               "fetches it again", {{"digest", digest}, {"error", committed.error().message}});
    fetch->finish_uncached(committed.error());
    forget(digest);
    co_return;
  }
  auto pin = context_.store.open_blob(digest);
  if (!pin) {
    fetch->fail({Errc::storage_error, "committed blob vanished from the cache"});
  } else {
    fetch->finish(std::move(pin));
  }
  forget(digest);
}

asio::awaitable<Status> BlobFetches::stream_body(BlobFetch& fetch, upstream::Response& response,
                                                 cache::BlobWriter& writer, std::string& actual) {
  auto expected = oci::Digest::parse(fetch.digest());
  auto length = response.content_length();
  const BigPieceSlot slot(big_piece_fetches_, !length || *length > small_pieces.size);
  const Pieces pieces = slot.pieces();
  // A small blob's buffer is its size: a config or a small layer does not take a whole piece.
  const std::size_t piece =
      length ? static_cast<std::size_t>(std::clamp<std::uint64_t>(*length, 1, pieces.size)) : pieces.size;
  PipedHasher hasher(co_await asio::this_coro::executor, asio::make_strand(hash_pool_), expected->algorithm, piece,
                     pieces.depth);
  // Followers are woken once a quarter chunk more is staged (one cross-thread post and one
  // sendfile of that size, not one per socket read), or when a read drained the socket: the
  // upstream is slower than we are, so they see its bytes as they come.
  const std::uint64_t wake_step = writer.chunk_size() / 4;
  std::uint64_t woken_at = 0;
  for (;;) {
    auto buffer = co_await hasher.next_buffer();
    auto n = co_await response.read_some(asio::buffer(buffer.data(), buffer.size()));
    if (!n) co_return n.error();
    if (*n == 0) break;
    hasher.submit(*n);  // hashed on the pool while the piece is written and the next one read
    if (auto appended = writer.append(std::string_view(buffer.data(), *n)); !appended) {
      context_.metrics.record_cache_write_failure("append");
      co_return appended.error();
    }
    if (length && writer.appended() > *length) {
      co_return Error{Errc::upstream_error, "upstream sent more bytes than its Content-Length"};
    }
    const bool drained = *n < buffer.size();
    if (writer.staged() > woken_at && (drained || writer.staged() - woken_at >= wake_step)) {
      woken_at = writer.staged();
      fetch.progressed();
    }
  }
  if (length && writer.appended() != *length) {
    co_return Error{Errc::upstream_error, "upstream body ended early"};
  }
  actual = co_await hasher.finish();
  if (actual != fetch.digest()) {
    co_return Error{Errc::digest_mismatch, "upstream sent bytes hashing to " + actual};
  }
  fetch.verified(writer.appended());
  co_return ok_status();
}

// On the commit pool: a sync to disk and an index write, tens of ms.
asio::awaitable<Status> BlobFetches::commit(cache::BlobWriter& writer) {
  std::optional<Status> committed;
  ++commits_pending_;
  auto committing =
      asio::co_spawn(commit_pool_, commit_blob(&writer, &committed, &commits_pending_), asio::use_awaitable);
  co_await std::move(committing);
  co_return std::move(*committed);
}

asio::awaitable<BlobFetch::Snapshot> BlobFetches::wait_started(const std::shared_ptr<BlobFetch>& fetch) {
  for (;;) {
    auto seen = fetch->notifier().generation();
    auto snap = fetch->snapshot();
    if (snap.phase != BlobFetch::Phase::connecting) co_return snap;
    co_await fetch->notifier().wait(seen, std::chrono::seconds(1));
  }
}

asio::awaitable<BlobFetch::Snapshot> BlobFetches::wait_finished(const std::shared_ptr<BlobFetch>& fetch) {
  for (;;) {
    auto seen = fetch->notifier().generation();
    auto snap = fetch->snapshot();
    if (snap.ended()) co_return snap;
    co_await fetch->notifier().wait(seen, std::chrono::seconds(1));
  }
}

namespace {

class FollowSource final : public BodySource {
 public:
  FollowSource(std::shared_ptr<BlobFetch> fetch, cache::Store& store, metrics::Metrics& metrics,
               std::chrono::seconds idle_timeout, std::chrono::steady_clock::time_point deadline)
      : fetch_(std::move(fetch)), store_(store), metrics_(metrics), idle_timeout_(idle_timeout), deadline_(deadline) {
    metrics_.fetch_followers().Increment();
  }
  ~FollowSource() override { metrics_.fetch_followers().Decrement(); }

  const char* source() const override { return "upstream"; }

  asio::awaitable<Result<std::size_t>> next(std::string& out) override {
    auto piece = co_await wait_piece();
    if (!piece) co_return piece.error();
    if (piece->length == 0) {
      out.clear();
      co_return std::size_t{0};
    }
    auto n = reader_ ? reader_->read(offset_, piece->length, out) : writer_->read_staged(offset_, piece->length, out);
    if (n) offset_ += *n;
    co_return n;
  }

  bool has_spans() const override { return true; }

  asio::awaitable<Result<FileSpan>> next_span() override {
    auto piece = co_await wait_piece();
    if (piece) offset_ += piece->length;
    co_return piece;
  }

 private:
  // Waits until bytes past offset_ may be read and says where they are: in the writer's file
  // while the fetch runs, in the committed blob's file once it is done. Length 0 at the end.
  asio::awaitable<Result<FileSpan>> wait_piece() {
    auto stalled_since = std::chrono::steady_clock::now();
    for (;;) {
      auto seen = fetch_->notifier().generation();
      auto snap = fetch_->snapshot();
      if (snap.phase == BlobFetch::Phase::failed) co_return snap.error;
      if (snap.phase == BlobFetch::Phase::done) co_return committed_piece();
      if (snap.verified && offset_ >= snap.size) co_return FileSpan{};  // the commit may still be running
      if (offset_ < snap.readable) {
        writer_ = snap.writer;
        const std::uint64_t want = std::min(to_chunk_end(offset_, writer_->chunk_size()), snap.readable - offset_);
        co_return FileSpan{writer_->file_descriptor(), offset_, want};
      }
      const auto now = std::chrono::steady_clock::now();
      if (now - stalled_since > idle_timeout_) {
        co_return Error{Errc::upstream_timeout, "shared fetch made no progress"};
      }
      if (now >= deadline_) co_return Error{Errc::upstream_timeout, "deadline passed while following the fetch"};
      co_await fetch_->notifier().wait(seen, std::min<std::chrono::steady_clock::duration>(std::chrono::seconds(1),
                                                                                          deadline_ - now));
    }
  }

  Result<FileSpan> committed_piece() {
    if (!reader_) {
      reader_ = store_.open_blob(fetch_->digest());
      if (!reader_) return Error{Errc::storage_error, "committed blob vanished from the cache"};
      writer_.reset();
    }
    if (offset_ >= reader_->size()) return FileSpan{};
    const std::uint64_t want = std::min(to_chunk_end(offset_, reader_->chunk_size()), reader_->size() - offset_);
    return FileSpan{reader_->file_descriptor(), offset_, want};
  }

  std::shared_ptr<BlobFetch> fetch_;
  cache::Store& store_;
  metrics::Metrics& metrics_;
  std::chrono::seconds idle_timeout_;
  std::chrono::steady_clock::time_point deadline_;
  std::shared_ptr<cache::BlobWriter> writer_;  // the staged bytes' file, kept open while followed
  std::unique_ptr<cache::BlobReader> reader_;  // the committed blob, once done
  std::uint64_t offset_ = 0;
};

class CacheSource final : public BodySource {
 public:
  CacheSource(std::unique_ptr<cache::BlobReader> reader, std::uint64_t first, std::uint64_t length,
              std::optional<ReadCheck> check)
      : reader_(std::move(reader)), offset_(first), end_(first + length) {
    if (check && first == 0 && length == reader_->size()) {
      if (auto digest = oci::Digest::parse(check->digest)) {
        hasher_.emplace(digest->algorithm);
        check_ = std::move(check);
      }
    }
  }

  const char* source() const override { return "cache"; }

  asio::awaitable<Result<std::size_t>> next(std::string& out) override {
    if (offset_ >= end_) {
      out.clear();
      co_return std::size_t{0};
    }
    auto n = reader_->read(offset_, std::min(to_chunk_end(offset_, reader_->chunk_size()), end_ - offset_), out);
    if (!n) co_return n.error();
    if (*n == 0) co_return Error{Errc::storage_error, "cached blob shorter than recorded"};
    offset_ += *n;
    if (hasher_) {
      hasher_->update(out.data(), *n);
      if (offset_ == end_) {
        if (auto actual = hasher_->finish(); actual != check_->digest) {
          check_->on_mismatch(actual);
          co_return Error{Errc::storage_error, "cached bytes hash to " + actual + "; removed from the cache"};
        }
      }
    }
    co_return *n;
  }

  bool has_spans() const override { return !hasher_; }

  bool body_at_hand() const override { return true; }

  asio::awaitable<Result<FileSpan>> next_span() override {
    const std::uint64_t want = offset_ >= end_ ? 0 : std::min(to_chunk_end(offset_, reader_->chunk_size()), end_ - offset_);
    FileSpan span{reader_->file_descriptor(), offset_, want};
    offset_ += want;
    co_return span;
  }

 private:
  std::unique_ptr<cache::BlobReader> reader_;
  std::uint64_t offset_;
  std::uint64_t end_;
  std::optional<ReadCheck> check_;
  std::optional<oci::Hasher> hasher_;
};

}  // namespace

std::unique_ptr<BodySource> BlobFetches::follow(std::shared_ptr<BlobFetch> fetch,
                                                std::chrono::steady_clock::time_point deadline) {
  return std::make_unique<FollowSource>(std::move(fetch), context_.store, context_.metrics, context_.idle_timeout,
                                        deadline);
}

std::unique_ptr<BodySource> cache_source(std::unique_ptr<cache::BlobReader> reader, std::uint64_t first,
                                         std::uint64_t length, std::optional<ReadCheck> check) {
  return std::make_unique<CacheSource>(std::move(reader), first, length, std::move(check));
}

}  // namespace ocigate::server
