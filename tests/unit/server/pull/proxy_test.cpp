// server/proxy: a blob request through the whole pull flow, against a scripted upstream and a real
// cache whose commits can be made to fail.
#include "pull/proxy.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>

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
using upstream::test::ServerRequest;
using upstream::test::TestServer;

// An upstream with one blob of lib/app.
upstream::test::Handler serve_blob(const std::string& digest, const std::string& bytes) {
  return [digest, bytes](const ServerRequest& r) {
    const bool ours = std::string(r.target()) == "/v2/lib/app/blobs/" + digest;
    return ours ? upstream::test::Reply::ok(bytes) : upstream::test::Reply::with_status(404);
  };
}

struct Answer {
  std::optional<Reply> reply;
  std::string body;  // the streamed body, read to its end
  Status read = ok_status();
};

asio::awaitable<void> ask(Proxy& proxy, http::request<http::empty_body> request, std::shared_ptr<Answer> out) {
  Reply reply = co_await proxy.handle(request, "127.0.0.1");
  if (reply.stream) {
    out->read = co_await test::read_body(*reply.stream, out->body);
    reply.stream.reset();
  } else {
    out->body = reply.body;
  }
  out->reply = std::move(reply);
}

class ProxyBlobTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = test::open_cache(dir_.path());
    ASSERT_TRUE(store_);
  }

  // The upstream as "up", the default; the policy serves every blob and scans no layer.
  config::Config config_for(const TestServer& server) {
    config::Config config;
    auto upstream = upstream::test::upstream_for(server);
    upstream.name = "up";
    config.upstreams = {upstream};
    config.default_upstream = "up";
    config.server.idle_timeout = 5s;
    return config;
  }

  static policy::Policy serve_everything() {
    policy::Policy policy;
    policy.blob_access = policy::BlobAccess::any;
    policy.layer_scan = policy::LayerScan::off;
    return policy;
  }

  // Runs one request through the proxy to the end of its body, within 10 s.
  std::shared_ptr<Answer> get(Proxy& proxy, const std::string& target, const std::string& range = "") {
    http::request<http::empty_body> request{http::verb::get, target, 11};
    if (!range.empty()) request.set(http::field::range, range);
    auto out = std::make_shared<Answer>();
    asio::co_spawn(io_, ask(proxy, std::move(request), out), asio::detached);
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!out->reply && std::chrono::steady_clock::now() < deadline) {
      io_.restart();
      io_.run_one_until(std::min(deadline, std::chrono::steady_clock::now() + 10ms));
    }
    EXPECT_TRUE(out->reply) << "no answer within 10 s";
    return out;
  }

  // io_ last: destroyed first, with any coroutine it still holds.
  test::TempDir dir_;
  std::unique_ptr<cache::Store> store_;
  metrics::Metrics metrics_;
  asio::io_context io_;
};

}  // namespace

// The bytes were verified but the cache could not commit them: a whole GET is still served (from
// the staged file), a Range needs the committed blob and gets 503 so the client retries; nothing
// is cached, and every request is a new fetch.
TEST_F(ProxyBlobTest, ARangeOnABlobTheCacheCouldNotCommitIs503AndAWholeGetIsServed) {
  test::CommitHookStore failing(*store_, test::commit_fails);
  const std::string bytes = test::pattern_bytes(512 * 1024 + 3, 31);
  const std::string digest = oci::sha256_digest(bytes);
  TestServer server(serve_blob(digest, bytes));
  const auto config = config_for(server);
  PolicyHolder holder(serve_everything());
  Proxy proxy(config, failing, metrics_, holder, io_.get_executor());
  const std::string target = "/v2/lib/app/blobs/" + digest;

  auto ranged = get(proxy, target, "bytes=0-9");
  ASSERT_TRUE(ranged->reply);
  EXPECT_EQ(ranged->reply->head.result_int(), 503u);
  EXPECT_NE(ranged->body.find("UNAVAILABLE"), std::string::npos) << ranged->body;
  EXPECT_NE(ranged->body.find("cannot sync"), std::string::npos) << ranged->body;

  auto whole = get(proxy, target);
  ASSERT_TRUE(whole->reply);
  EXPECT_EQ(whole->reply->head.result_int(), 200u);
  EXPECT_TRUE(whole->read) << whole->read.error().message;
  EXPECT_TRUE(whole->body == bytes) << whole->body.size() << " bytes of " << bytes.size();

  EXPECT_FALSE(store_->open_blob(digest));
  EXPECT_EQ(server.requests().size(), 2U);
}

// The same requests with a cache that commits: the Range is answered from the committed blob.
TEST_F(ProxyBlobTest, ARangeOnAnUncachedBlobIsAnsweredOnceItIsCommitted) {
  const std::string bytes = test::pattern_bytes(512 * 1024 + 3, 32);
  const std::string digest = oci::sha256_digest(bytes);
  TestServer server(serve_blob(digest, bytes));
  const auto config = config_for(server);
  PolicyHolder holder(serve_everything());
  Proxy proxy(config, *store_, metrics_, holder, io_.get_executor());

  auto ranged = get(proxy, "/v2/lib/app/blobs/" + digest, "bytes=0-9");
  ASSERT_TRUE(ranged->reply);
  EXPECT_EQ(ranged->reply->head.result_int(), 206u);
  EXPECT_TRUE(ranged->read) << ranged->read.error().message;
  EXPECT_EQ(ranged->body, bytes.substr(0, 10));
  EXPECT_TRUE(store_->open_blob(digest));
  EXPECT_EQ(server.requests().size(), 1U);
}

}  // namespace ocigate::server
