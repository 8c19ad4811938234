// server/proxy: blob requests through the whole pull flow, against a scripted upstream and a real
// cache whose commits can be made to fail; pull-ahead of an image's layers.
#include "pull/proxy.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
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
  std::shared_ptr<Answer> get(Proxy& proxy, const std::string& target, const std::string& range = "",
                              http::verb method = http::verb::get) {
    http::request<http::empty_body> request{method, target, 11};
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

  // Runs the proxy's background work until done() holds or the time is up; done() at the end.
  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds limit = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      io_.restart();
      io_.run_one_until(std::min(deadline, std::chrono::steady_clock::now() + 10ms));
    }
    return done();
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

// Pull-ahead (upstreams[].pull_ahead): an image of four layers and its config in lib/app.
class PullAheadTest : public ProxyBlobTest {
 protected:
  PullAheadTest() {
    for (std::uint32_t i = 0; i < 4; ++i) {
      layers_.push_back(test::pattern_bytes(300 * 1024 + i, 40 + i));
      digests_.push_back(oci::sha256_digest(layers_.back()));
    }
    const std::string config = R"({"architecture":"amd64","os":"linux","config":{"User":"1000"},"rootfs":{"type":"layers","diff_ids":[]}})";
    config_digest_ = oci::sha256_digest(config);
    std::string layer_list;
    for (std::size_t i = 0; i < layers_.size(); ++i) {
      if (i) layer_list += ",";
      layer_list += R"({"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":")" + digests_[i] +
                    R"(","size":)" + std::to_string(layers_[i].size()) + "}";
    }
    manifest_ = R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" +
                config_digest_ + R"(","size":)" + std::to_string(config.size()) + R"(},"layers":[)" + layer_list + "]}";
    blobs_[config_digest_] = config;
    for (std::size_t i = 0; i < layers_.size(); ++i) blobs_[digests_[i]] = layers_[i];
  }

  // The upstream: the manifest as lib/app:v1, every blob, and a 500 for the digests in failing.
  upstream::test::Handler registry(std::vector<std::string> failing = {}) {
    return [this, failing](const ServerRequest& r) {
      const std::string target(r.target());
      if (target == "/v2/lib/app/manifests/v1") {
        auto reply = upstream::test::Reply::ok(manifest_);
        reply.headers = {{"Content-Type", "application/vnd.oci.image.manifest.v1+json"},
                         {"Docker-Content-Digest", oci::sha256_digest(manifest_)}};
        return reply;
      }
      for (const auto& [digest, bytes] : blobs_) {
        if (target != "/v2/lib/app/blobs/" + digest) continue;
        if (std::find(failing.begin(), failing.end(), digest) != failing.end()) {
          return upstream::test::Reply::with_status(500);
        }
        return upstream::test::Reply::ok(bytes);
      }
      return upstream::test::Reply::with_status(404);
    };
  }

  // The upstream and a proxy in front of it with this pull_ahead; the policy serves everything.
  struct Mirror {
    Mirror(PullAheadTest& test, unsigned pull_ahead, std::vector<std::string> failing, unsigned fetch_slots)
        : server(test.registry(std::move(failing))),
          config(with_pull_ahead(test.config_for(server), pull_ahead, fetch_slots)),
          holder(serve_everything()),
          proxy(config, *test.store_, test.metrics_, holder, test.io_.get_executor()) {}
    static config::Config with_pull_ahead(config::Config config, unsigned pull_ahead, unsigned fetch_slots) {
      config.upstreams[0].pull_ahead = pull_ahead;
      config.upstreams[0].max_concurrent_fetches = fetch_slots;
      return config;
    }
    TestServer server;
    config::Config config;
    PolicyHolder holder;
    Proxy proxy;
  };
  // fetch_slots: upstreams[].max_concurrent_fetches (0: no limit).
  std::unique_ptr<Mirror> mirror_with(unsigned pull_ahead, std::vector<std::string> failing = {},
                                      unsigned fetch_slots = 0) {
    return std::make_unique<Mirror>(*this, pull_ahead, std::move(failing), fetch_slots);
  }

  // How many times the upstream was asked for this blob.
  static std::size_t asked(const TestServer& server, const std::string& digest) {
    std::size_t n = 0;
    for (const auto& r : server.requests()) n += std::string(r.target()) == "/v2/lib/app/blobs/" + digest;
    return n;
  }

  bool cached(std::size_t from, std::size_t to) {
    for (std::size_t i = from; i < to; ++i) {
      if (!store_->blob_size(digests_[i])) return false;
    }
    return true;
  }

  double pulled_ahead(const std::string& result) {
    const std::string series = "ocigate_pull_ahead_layers_total{result=\"" + result + "\",upstream=\"up\"} ";
    const std::string text = metrics_.render();
    auto at = text.find(series);
    return at == std::string::npos ? 0 : std::stod(text.substr(at + series.size()));
  }

  std::string layer_path(std::size_t i) const { return "/v2/lib/app/blobs/" + digests_[i]; }

  std::vector<std::string> layers_, digests_;
  std::string config_digest_, manifest_;
  std::map<std::string, std::string> blobs_;
};

// The walk takes the layers after the one asked for, then those before it, and never that one.
TEST(PullAheadOrder, LayersAfterTheAskedOneComeFirstAndTheAskedOneNever) {
  EXPECT_EQ(pull_ahead_order(4, 0), (std::vector<std::size_t>{1, 2, 3}));
  EXPECT_EQ(pull_ahead_order(4, 2), (std::vector<std::size_t>{3, 0, 1}));
  EXPECT_EQ(pull_ahead_order(4, 3), (std::vector<std::size_t>{0, 1, 2}));
  EXPECT_TRUE(pull_ahead_order(1, 0).empty());
}

// A client that GETs the first layer finds the others cached or under way when it asks for them:
// each is fetched from the upstream once, and the next request is a cache hit.
TEST_F(PullAheadTest, TheFirstLayerAClientGetsBringsTheOthersIntoTheCache) {
  auto mirror = mirror_with(2);
  TestServer& server = mirror->server;
  Proxy& proxy = mirror->proxy;

  ASSERT_EQ(get(proxy, "/v2/lib/app/manifests/v1")->reply->head.result_int(), 200u);
  auto first = get(proxy, layer_path(0));
  ASSERT_EQ(first->reply->head.result_int(), 200u);
  EXPECT_TRUE(first->body == layers_[0]);

  ASSERT_TRUE(run_until([&] { return cached(1, 4); })) << "layers 1-3 were not pulled ahead";
  auto second = get(proxy, layer_path(1));
  EXPECT_EQ(second->reply->cache, "hit");
  EXPECT_TRUE(second->body == layers_[1]);
  for (std::size_t i = 0; i < 4; ++i) EXPECT_EQ(asked(server, digests_[i]), 1U) << "layer " << i;
  EXPECT_TRUE(run_until([&] { return pulled_ahead("fetched") == 3; })) << metrics_.render();
}

// A manifest alone (an inspect, a digest lookup) costs no layer bytes; nor does a HEAD of it
// followed by a layer request: only a manifest a client was sent is remembered.
TEST_F(PullAheadTest, AManifestAloneOrItsHeadFetchesNoOtherLayer) {
  auto mirror = mirror_with(2);
  TestServer& server = mirror->server;
  Proxy& proxy = mirror->proxy;

  ASSERT_EQ(get(proxy, "/v2/lib/app/manifests/v1", "", http::verb::head)->reply->head.result_int(), 200u);
  ASSERT_EQ(get(proxy, layer_path(0))->reply->head.result_int(), 200u);
  run_until([] { return false; }, 300ms);
  for (std::size_t i = 1; i < 4; ++i) EXPECT_EQ(asked(server, digests_[i]), 0U) << "layer " << i;

  ASSERT_EQ(get(proxy, "/v2/lib/app/manifests/v1")->reply->head.result_int(), 200u);
  run_until([] { return false; }, 300ms);
  for (std::size_t i = 1; i < 4; ++i) EXPECT_EQ(asked(server, digests_[i]), 0U) << "layer " << i;
}

// pull_ahead: 0 turns it off: only what clients ask for is fetched.
TEST_F(PullAheadTest, ZeroFetchesOnlyWhatClientsAskFor) {
  auto mirror = mirror_with(0);
  TestServer& server = mirror->server;
  Proxy& proxy = mirror->proxy;

  ASSERT_EQ(get(proxy, "/v2/lib/app/manifests/v1")->reply->head.result_int(), 200u);
  ASSERT_EQ(get(proxy, layer_path(2))->reply->head.result_int(), 200u);
  run_until([] { return false; }, 300ms);
  EXPECT_EQ(asked(server, digests_[2]), 1U);
  for (std::size_t i : {0, 1, 3}) EXPECT_EQ(asked(server, digests_[i]), 0U) << "layer " << i;
}

// A layer the upstream fails stops the walk: the upstream is left alone, the failure is counted,
// and the client's own request for that layer says what went wrong.
TEST_F(PullAheadTest, ALayerTheUpstreamFailsStopsTheWalk) {
  auto mirror = mirror_with(1, {digests_[1]});
  TestServer& server = mirror->server;
  Proxy& proxy = mirror->proxy;

  ASSERT_EQ(get(proxy, "/v2/lib/app/manifests/v1")->reply->head.result_int(), 200u);
  ASSERT_EQ(get(proxy, layer_path(0))->reply->head.result_int(), 200u);
  ASSERT_TRUE(run_until([&] { return pulled_ahead("failed") == 1; })) << metrics_.render();
  run_until([] { return false; }, 300ms);
  EXPECT_EQ(asked(server, digests_[1]), 1U);
  EXPECT_EQ(asked(server, digests_[2]), 0U);
  EXPECT_EQ(asked(server, digests_[3]), 0U);
  EXPECT_EQ(pulled_ahead("fetched"), 0);
  EXPECT_EQ(get(proxy, layer_path(1))->reply->head.result_int(), 502u);
}

// With max_concurrent_fetches, pull-ahead takes a slot only while half of them stay idle besides
// it: with one slot, the client's own fetch holds it, and the walk yields every other layer to the
// client, which still gets each one when it asks.
TEST_F(PullAheadTest, WithTooFewIdleFetchSlotsTheWalkYieldsToTheClient) {
  auto mirror = mirror_with(2, {}, 1);
  TestServer& server = mirror->server;
  Proxy& proxy = mirror->proxy;

  ASSERT_EQ(get(proxy, "/v2/lib/app/manifests/v1")->reply->head.result_int(), 200u);
  ASSERT_EQ(get(proxy, layer_path(0))->reply->head.result_int(), 200u);
  ASSERT_TRUE(run_until([&] { return pulled_ahead("yielded") == 3; })) << metrics_.render();
  EXPECT_EQ(pulled_ahead("fetched"), 0);
  for (std::size_t i = 1; i < 4; ++i) EXPECT_EQ(asked(server, digests_[i]), 0U) << "layer " << i;
  for (std::size_t i = 1; i < 4; ++i) {
    auto layer = get(proxy, layer_path(i));
    EXPECT_EQ(layer->reply->head.result_int(), 200u) << "layer " << i;
    EXPECT_TRUE(layer->body == layers_[i]) << "layer " << i;
  }
}

// With slots to spare (eight: the client's fetch holds one, pull-ahead two, five stay idle), the
// walk runs as without a limit.
TEST_F(PullAheadTest, WithIdleFetchSlotsToSpareTheWalkRuns) {
  auto mirror = mirror_with(2, {}, 8);
  Proxy& proxy = mirror->proxy;

  ASSERT_EQ(get(proxy, "/v2/lib/app/manifests/v1")->reply->head.result_int(), 200u);
  ASSERT_EQ(get(proxy, layer_path(0))->reply->head.result_int(), 200u);
  ASSERT_TRUE(run_until([&] { return cached(1, 4); })) << "layers 1-3 were not pulled ahead";
  EXPECT_TRUE(run_until([&] { return pulled_ahead("fetched") == 3; })) << metrics_.render();
  EXPECT_EQ(pulled_ahead("yielded"), 0);
}

// The rule itself: a slot for pull-ahead only while at least half of them (rounded up) stay idle
// besides it; always without a limit.
namespace {
class SlotsClient final : public upstream::Client {
 public:
  SlotsClient(unsigned limit, std::optional<unsigned> idle) : idle_(idle) { upstream_.max_concurrent_fetches = limit; }
  boost::asio::awaitable<Result<std::unique_ptr<upstream::Response>>> send(upstream::Request) override {
    co_return Error{Errc::internal, "not used"};
  }
  std::optional<unsigned> idle_fetch_slots() const override { return idle_; }
  const config::Upstream& upstream() const override { return upstream_; }
  upstream::ClientStats stats() const override { return {}; }

 private:
  config::Upstream upstream_;
  std::optional<unsigned> idle_;
};
}  // namespace

TEST(PullAheadSlots, APullAheadFetchLeavesHalfTheSlotsRoundedUpIdle) {
  EXPECT_TRUE(spare_fetch_slot(SlotsClient(0, std::nullopt)));
  EXPECT_FALSE(spare_fetch_slot(SlotsClient(1, 1)));
  EXPECT_TRUE(spare_fetch_slot(SlotsClient(2, 2)));
  EXPECT_FALSE(spare_fetch_slot(SlotsClient(2, 1)));
  EXPECT_TRUE(spare_fetch_slot(SlotsClient(4, 3)));
  EXPECT_FALSE(spare_fetch_slot(SlotsClient(4, 2)));
  EXPECT_TRUE(spare_fetch_slot(SlotsClient(5, 4)));
  EXPECT_FALSE(spare_fetch_slot(SlotsClient(5, 3)));
  EXPECT_TRUE(spare_fetch_slot(SlotsClient(16, 9)));
  EXPECT_FALSE(spare_fetch_slot(SlotsClient(16, 8)));
}

}  // namespace ocigate::server
