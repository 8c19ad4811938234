// server/blob_fetch: single-flight fetches against a scripted upstream and a real cache.
#include "blob_fetch.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include "../support.hpp"
#include "../upstream/test_server.hpp"
#include "ocigate/oci/digest.hpp"

namespace ocigate::server {
namespace {

using namespace std::chrono_literals;
namespace asio = boost::asio;
using UpstreamReply = upstream::test::Reply;
using upstream::test::ServerRequest;
using upstream::test::TestServer;

// A writer whose commit fails, as a sync on a failing disk would; the rest is the real writer's.
class CommitFailsWriter final : public cache::BlobWriter {
 public:
  explicit CommitFailsWriter(std::unique_ptr<cache::BlobWriter> inner) : inner_(std::move(inner)) {}
  Status append(std::string_view bytes) override { return inner_->append(bytes); }
  std::uint64_t appended() const override { return inner_->appended(); }
  std::uint64_t staged() const override { return inner_->staged(); }
  std::uint32_t chunk_size() const override { return inner_->chunk_size(); }
  Result<std::size_t> read_staged(std::uint64_t offset, std::size_t max, std::string& out) override {
    return inner_->read_staged(offset, max, out);
  }
  int file_descriptor() const override { return inner_->file_descriptor(); }
  Status commit() override { return Error{Errc::storage_error, "test: cannot sync the blob's file"}; }

 private:
  std::unique_ptr<cache::BlobWriter> inner_;
};

// The real cache, but every blob commit fails.
class CommitFailsStore final : public cache::Store {
 public:
  explicit CommitFailsStore(cache::Store& inner) : inner_(inner) {}
  std::optional<cache::ManifestEntry> get_manifest(const std::string& d) override { return inner_.get_manifest(d); }
  Status put_manifest(const std::string& d, const cache::ManifestEntry& e) override {
    return inner_.put_manifest(d, e);
  }
  std::optional<cache::TagEntry> get_tag(const std::string& r, const std::string& t) override {
    return inner_.get_tag(r, t);
  }
  Status put_tag(const std::string& r, const std::string& t, const cache::TagEntry& e) override {
    return inner_.put_tag(r, t, e);
  }
  std::optional<std::uint64_t> blob_size(const std::string& d) override { return inner_.blob_size(d); }
  std::unique_ptr<cache::BlobReader> open_blob(const std::string& d) override { return inner_.open_blob(d); }
  Result<std::unique_ptr<cache::BlobWriter>> begin_blob(const std::string& d) override {
    auto writer = inner_.begin_blob(d);
    if (!writer) return writer.error();
    return std::unique_ptr<cache::BlobWriter>(std::make_unique<CommitFailsWriter>(std::move(*writer)));
  }
  Status remove_blob(const std::string& d) override { return inner_.remove_blob(d); }
  std::optional<std::string> get_record(std::string_view s, std::string_view k) override {
    return inner_.get_record(s, k);
  }
  Status put_record(std::string_view s, std::string_view k, std::string_view v) override {
    return inner_.put_record(s, k, v);
  }
  Status remove_record(std::string_view s, std::string_view k) override { return inner_.remove_record(s, k); }
  Status remove_records_outside(std::string_view s, std::string_view keep) override {
    return inner_.remove_records_outside(s, keep);
  }
  Result<std::vector<std::string>> blob_digests() override { return inner_.blob_digests(); }
  Result<std::vector<std::string>> manifest_digests() override { return inner_.manifest_digests(); }
  std::unique_ptr<cache::BlobReader> inspect_blob(const std::string& d) override { return inner_.inspect_blob(d); }
  Status remove_manifest(const std::string& d) override { return inner_.remove_manifest(d); }
  cache::Stats stats() const override { return inner_.stats(); }
  void close() override { inner_.close(); }

 private:
  cache::Store& inner_;
};

struct Followed {
  std::string bytes;
  Status status = ok_status();
  bool done = false;
};

// Reads a follower to its end (or its error) with next(), the path TLS sessions take.
asio::awaitable<void> read_follower(std::unique_ptr<BodySource> source, std::shared_ptr<Followed> out) {
  std::string piece;
  for (;;) {
    auto n = co_await source->next(piece);
    if (!n) {
      out->status = n.error();
      break;
    }
    if (*n == 0) break;
    out->bytes += piece;
  }
  out->done = true;
}

class BlobFetchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = cache::Store::open(cache::Options{.path = dir_.path(), .max_size = 1ull << 30,
                                                    .chunk_size = 1u << 20, .on_lost_file = {}});
    ASSERT_TRUE(opened) << opened.error().message;
    store_ = std::move(*opened);
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

  // Runs io_ until the fetch reaches a final phase, within 10 s.
  BlobFetch::Snapshot settle(const std::shared_ptr<BlobFetch>& fetch) {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    for (;;) {
      auto snap = fetch->snapshot();
      if (snap.ended() || std::chrono::steady_clock::now() >= deadline) return snap;
      io_.restart();
      io_.run_one_until(std::min(deadline, std::chrono::steady_clock::now() + 10ms));
    }
  }

  test::TempDir dir_;
  asio::io_context io_;
  std::unique_ptr<cache::Store> store_;
  metrics::Metrics metrics_;
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
  CommitFailsStore failing(*store_);
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

}  // namespace ocigate::server
