// server/blob_fetch: single-flight fetches against a scripted upstream and a real cache.
#include "pull/blob_fetch.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include "support.hpp"
#include "test_server.hpp"
#include "server_fixtures.hpp"
#include "ocigate/oci/digest.hpp"

namespace ocigate::server {
namespace {

using namespace std::chrono_literals;
namespace asio = boost::asio;
using UpstreamReply = upstream::test::Reply;
using upstream::test::ServerRequest;
using upstream::test::TestServer;
using test::CommitHookStore;
using test::commit_fails;

// Holds every commit until opened, as a stalled disk would, and counts the commits that began.
class CommitGate {
 public:
  Status pass(cache::BlobWriter& inner) {
    {
      std::unique_lock lock(mutex_);
      ++began_;
      changed_.wait_for(lock, 10s, [this] { return open_; });
    }
    return inner.commit();
  }
  void open() {
    std::lock_guard lock(mutex_);
    open_ = true;
    changed_.notify_all();
  }
  unsigned began() {
    std::lock_guard lock(mutex_);
    return began_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  unsigned began_ = 0;
  bool open_ = false;
};

struct Followed {
  std::string bytes;
  Status status = ok_status();
  bool done = false;
};

// Reads a follower to its end (or its error) with next(), the path TLS sessions take.
asio::awaitable<void> read_follower(std::unique_ptr<BodySource> source, std::shared_ptr<Followed> out) {
  out->status = co_await test::read_body(*source, out->bytes);
  out->done = true;
}

class BlobFetchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = test::open_cache(dir_.path());
    ASSERT_TRUE(store_);
  }

  std::shared_ptr<upstream::Client> client_for(const TestServer& server) {
    return upstream::Client::create(io_.get_executor(), upstream::test::upstream_for(server));
  }

  std::shared_ptr<BlobFetch> join(BlobFetches& fetches, upstream::Client& client, const std::string& digest) {
    return fetches.join(digest, client, "lib/app", "repository:lib/app:pull");
  }

  // Follows the fetch from its first byte to the end (or an error), within 10 s.
  std::shared_ptr<Followed> follow(BlobFetches& fetches, const std::shared_ptr<BlobFetch>& fetch) {
    auto out = std::make_shared<Followed>();
    asio::co_spawn(io_, read_follower(fetches.follow(fetch), out), asio::detached);
    io_.restart();
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!out->done && std::chrono::steady_clock::now() < deadline) io_.run_one_until(deadline);
    EXPECT_TRUE(out->done) << "the follower did not finish";
    return out;
  }

  // Runs io_ until done() holds, within 10 s; returns done().
  bool run_until(const std::function<bool()>& done) {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      io_.restart();
      io_.run_one_until(std::min(deadline, std::chrono::steady_clock::now() + 10ms));
    }
    return done();
  }

  // Runs io_ until the fetch reaches a final phase, within 10 s.
  BlobFetch::Snapshot settle(const std::shared_ptr<BlobFetch>& fetch) {
    run_until([&] { return fetch->snapshot().ended(); });
    return fetch->snapshot();
  }

  // io_ last: destroyed first, with any coroutine it still holds, while the cache and the metrics
  // those refer to still exist.
  test::TempDir dir_;
  std::unique_ptr<cache::Store> store_;
  metrics::Metrics metrics_;
  asio::io_context io_;
};

std::string blob_reply_for(const ServerRequest& request, const std::string& digest, const std::string& bytes) {
  return std::string(request.target()) == "/v2/lib/app/blobs/" + digest ? bytes : std::string();
}

}  // namespace

TEST_F(BlobFetchTest, AVerifiedBlobIsServedAndCached) {
  const std::string bytes = test::pattern_bytes(3 * 1024 * 1024 + 5, 11);
  const std::string digest = oci::sha256_digest(bytes);
  TestServer server([&](const ServerRequest& r) { return UpstreamReply::ok(blob_reply_for(r, digest, bytes)); });
  auto client = client_for(server);
  BlobFetches fetches(FetchContext{*store_, metrics_, 5s}, io_.get_executor(), 2);
  auto fetch = join(fetches, *client, digest);
  EXPECT_FALSE(fetches.follow(fetch)->body_at_hand());  // its spans wait for the upstream: not corked
  auto got = follow(fetches, fetch);
  EXPECT_TRUE(got->status) << got->status.error().message;
  EXPECT_TRUE(got->bytes == bytes) << got->bytes.size() << " bytes followed of " << bytes.size();
  EXPECT_EQ(settle(fetch).phase, BlobFetch::Phase::done);
  auto cached = store_->open_blob(digest);
  ASSERT_TRUE(cached);
  EXPECT_EQ(cached->size(), bytes.size());
}

TEST_F(BlobFetchTest, BytesThatDoNotMatchTheDigestAreNeverDeliveredWholeNorCached) {
  const std::string bytes = test::pattern_bytes(2 * 1024 * 1024, 12);
  std::string served = bytes;
  served[served.size() / 2] ^= 0x01;
  const std::string digest = oci::sha256_digest(bytes);
  TestServer server([&](const ServerRequest& r) { return UpstreamReply::ok(blob_reply_for(r, digest, served)); });
  auto client = client_for(server);
  BlobFetches fetches(FetchContext{*store_, metrics_, 5s}, io_.get_executor(), 2);
  auto got = follow(fetches, join(fetches, *client, digest));
  ASSERT_FALSE(got->status);
  EXPECT_EQ(got->status.error().code, Errc::digest_mismatch);
  EXPECT_LT(got->bytes.size(), bytes.size());
  EXPECT_FALSE(store_->open_blob(digest));
  EXPECT_NE(metrics_.render().find("ocigate_digest_mismatches_total{upstream=\"test.local\"} 1"), std::string::npos);
}

TEST_F(BlobFetchTest, AVerifiedBlobWhoseCommitFailsStillReachesItsClient) {
  CommitHookStore failing(*store_, commit_fails);
  const std::string bytes = test::pattern_bytes(3 * 1024 * 1024 + 5, 13);
  const std::string digest = oci::sha256_digest(bytes);
  TestServer server([&](const ServerRequest& r) { return UpstreamReply::ok(blob_reply_for(r, digest, bytes)); });
  auto client = client_for(server);
  BlobFetches fetches(FetchContext{failing, metrics_, 5s}, io_.get_executor(), 2);
  // The fetch ends before its client reads a byte (a slow client, or a commit that failed fast).
  auto fetch = join(fetches, *client, digest);
  auto snap = settle(fetch);
  EXPECT_EQ(snap.phase, BlobFetch::Phase::uncached);
  EXPECT_EQ(snap.error.code, Errc::storage_error);
  EXPECT_FALSE(store_->open_blob(digest));
  EXPECT_NE(metrics_.render().find("ocigate_cache_write_failures_total{stage=\"commit\"} 1"), std::string::npos);
  auto got = follow(fetches, fetch);
  EXPECT_TRUE(got->status) << got->status.error().message;
  EXPECT_TRUE(got->bytes == bytes) << got->bytes.size() << " bytes followed of " << bytes.size();

  // The blob is not cached: the next pull is a new fetch.
  auto next = join(fetches, *client, digest);
  EXPECT_NE(next, fetch);
  EXPECT_TRUE(follow(fetches, next)->bytes == bytes);
  EXPECT_EQ(server.requests().size(), 2U);
}

// At shutdown the I/O threads stop and the fetches are destroyed. A commit still queued behind two
// running ones (the pool has two threads) must run before that returns: its blob was verified
// and served, and dropping it would only make the next pull fetch it again.
TEST_F(BlobFetchTest, CommitsStillQueuedAtShutdownAreWritten) {
  CommitGate gate;
  CommitHookStore slow(*store_, [&gate](cache::BlobWriter& inner) { return gate.pass(inner); });
  std::vector<std::string> blobs;
  std::vector<std::string> digests;
  for (int i = 0; i < 3; ++i) {
    blobs.push_back(test::pattern_bytes(64 * 1024 + i, 20 + i));
    digests.push_back(oci::sha256_digest(blobs.back()));
  }
  TestServer server([&](const ServerRequest& r) {
    for (std::size_t i = 0; i < blobs.size(); ++i) {
      if (!blob_reply_for(r, digests[i], blobs[i]).empty()) return UpstreamReply::ok(blobs[i]);
    }
    return UpstreamReply::ok("");
  });
  auto client = client_for(server);
  auto fetches = std::make_unique<BlobFetches>(FetchContext{slow, metrics_, 5s}, io_.get_executor(), 2);
  std::vector<std::shared_ptr<BlobFetch>> joined;
  for (const auto& digest : digests) joined.push_back(join(*fetches, *client, digest));
  // Every blob verified (so each commit was handed to the pool), two commits holding both threads.
  ASSERT_TRUE(run_until([&] {
    for (const auto& fetch : joined) {
      if (!fetch->snapshot().verified) return false;
    }
    return gate.began() == 2;
  })) << gate.began() << " commits began";

  std::thread opener([&gate] {
    std::this_thread::sleep_for(200ms);
    gate.open();
  });
  fetches.reset();  // as at shutdown: io_ no longer runs, the fetches go
  opener.join();
  EXPECT_EQ(gate.began(), 3U);
  for (const auto& digest : digests) EXPECT_TRUE(store_->open_blob(digest)) << digest << " was not cached";
}

}  // namespace ocigate::server
