#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <atomic>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/strand.hpp>

#include <boost/url/parse.hpp>

#include "ocigate/upstream/client.hpp"
#include "test_server.hpp"

namespace ocigate::upstream::test {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

using SendResult = Result<std::unique_ptr<Response>>;

std::string header(const ServerRequest& request, http::field field) {
  auto it = request.find(field);
  return it == request.end() ? std::string() : std::string(it->value());
}

std::string query_param(const ServerRequest& request, const std::string& name) {
  auto url = boost::urls::parse_origin_form(request.target());
  if (!url) return {};
  auto params = url->params();
  auto it = params.find(name);
  return it == params.end() ? std::string() : std::string((*it).value);
}

std::string pattern(std::size_t size) {
  std::string out(size, '\0');
  for (std::size_t i = 0; i < size; ++i) out[i] = static_cast<char>('a' + (i * 7 + i / 251) % 26);
  return out;
}

template <class T>
struct Slot {
  std::optional<T> value;
  bool done = false;
};

template <class T>
asio::awaitable<void> fill(std::shared_ptr<Slot<T>> slot, asio::awaitable<T> task) {
  slot->value.emplace(co_await std::move(task));
}

class UpstreamClient : public ::testing::Test {
 protected:
  // Runs one client coroutine to completion on io_, or gives up after `limit`. The result lives in
  // a shared slot so that a coroutine abandoned at the deadline never writes to a dead frame.
  template <class T>
  std::optional<T> run(asio::awaitable<T> task, std::chrono::milliseconds limit = 8s) {
    if (abandoned_) return std::nullopt;
    auto slot = std::make_shared<Slot<T>>();
    asio::co_spawn(io_, fill(slot, std::move(task)), [slot](std::exception_ptr error) {
      slot->done = true;
      if (!error) return;
      try {
        std::rethrow_exception(error);
      } catch (const std::exception& e) {
        ADD_FAILURE() << "client coroutine threw: " << e.what();
      }
    });
    io_.restart();
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!slot->done && std::chrono::steady_clock::now() < deadline) io_.run_one_until(deadline);
    if (!slot->done) {
      abandoned_ = true;
      ADD_FAILURE() << "client coroutine did not finish within " << limit.count() << " ms";
    }
    return std::move(slot->value);
  }

  SendResult send(Client& client, Request request, std::chrono::milliseconds limit = 8s) {
    auto result = run(client.send(std::move(request)), limit);
    if (!result) return Error{Errc::internal, "test: send did not finish"};
    return std::move(*result);
  }

  Result<std::string> read_all(Response& response, std::size_t limit = 1 << 20) {
    auto result = run(response.read_all(limit));
    if (!result) return Error{Errc::internal, "test: read_all did not finish"};
    return std::move(*result);
  }

  Result<std::size_t> read_some(Response& response, std::string& into, std::size_t size) {
    std::string buffer(size, '\0');
    auto result = run(response.read_some(asio::buffer(buffer)));
    if (!result) return Error{Errc::internal, "test: read_some did not finish"};
    if (result->ok()) into.append(buffer.data(), **result);
    return std::move(*result);
  }

  // Reads the body to its end in pieces of at most `piece` bytes, appended to `into`; returns the
  // last read's result: 0 at the end, or the error.
  Result<std::size_t> read_to_end(Response& response, std::string& into, std::size_t piece) {
    for (int reads = 0; reads < 100000; ++reads) {
      auto n = read_some(response, into, piece);
      if (!n.ok() || *n == 0) return n;
      EXPECT_LE(*n, piece);
    }
    return Error{Errc::internal, "test: the body did not end"};
  }

  std::shared_ptr<Client> client_for(const config::Upstream& upstream) {
    return Client::create(io_.get_executor(), upstream);
  }

  static Request get(std::string target) {
    Request r;
    r.target = std::move(target);
    return r;
  }

  asio::io_context io_;
  bool abandoned_ = false;
};

// ---- plain requests ----

TEST_F(UpstreamClient, StreamsABodyThroughSmallReadSomeBuffers) {
  const std::string body = pattern(100 * 1024 + 17);
  TestServer server([&](const ServerRequest&) { return Reply::ok(body); });
  auto client = client_for(upstream_for(server));
  auto response = send(*client, get("/v2/library/alpine/blobs/sha256:abc"));
  ASSERT_TRUE(response.ok()) << response.error().message;
  EXPECT_EQ((*response)->status(), 200u);
  EXPECT_EQ((*response)->content_length(), body.size());
  EXPECT_EQ((*response)->served_by(), "127.0.0.1");
  std::string received;
  int reads = 0;
  for (;;) {
    auto n = read_some(**response, received, 1000);
    ASSERT_TRUE(n.ok()) << n.error().message;
    if (*n == 0) break;
    EXPECT_LE(*n, 1000u);
    ASSERT_LT(++reads, 10000);
  }
  EXPECT_GE(reads, 100);
  EXPECT_EQ(received, body);
  // After the end, further reads keep saying 0.
  auto again = read_some(**response, received, 1000);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, 0u);
  auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method(), http::verb::get);
  EXPECT_EQ(requests[0].target(), "/v2/library/alpine/blobs/sha256:abc");
  EXPECT_EQ(header(requests[0], http::field::host), "127.0.0.1:" + std::to_string(server.port()));
}

// Past the bytes Beast buffered with the header, a Content-Length body is read straight into the
// caller's buffer; the connection still goes back to the pool once the last byte is read.
TEST_F(UpstreamClient, ReadsALargeBodyInLargePiecesAndReusesTheConnection) {
  const std::string body = pattern(3 * 1024 * 1024 + 5);
  TestServer server([&](const ServerRequest&) { return Reply::ok(body); });
  auto client = client_for(upstream_for(server));
  for (int round = 0; round < 2; ++round) {
    auto response = send(*client, get("/v2/r/blobs/sha256:big"));
    ASSERT_TRUE(response.ok()) << response.error().message;
    std::string received;
    auto end = read_to_end(**response, received, 256 * 1024);
    ASSERT_TRUE(end.ok()) << end.error().message;
    EXPECT_EQ(received, body);
  }
  EXPECT_EQ(client->stats().connections_opened, 1u);
  EXPECT_EQ(server.connections(), 1);
}

TEST_F(UpstreamClient, SendsAcceptRangeAndThePrefixedBasePath) {
  TestServer server([](const ServerRequest&) { return Reply::ok("x"); });
  auto upstream = upstream_for(server);
  upstream.base_path = "/mirror";
  auto client = client_for(upstream);
  Request request = get("/v2/a/manifests/1");
  request.accept = "application/vnd.oci.image.index.v1+json";
  request.range = "bytes=0-9";
  auto response = send(*client, request);
  ASSERT_TRUE(response.ok()) << response.error().message;
  auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].target(), "/mirror/v2/a/manifests/1");
  EXPECT_EQ(header(requests[0], http::field::accept), "application/vnd.oci.image.index.v1+json");
  EXPECT_EQ(header(requests[0], http::field::range), "bytes=0-9");
  EXPECT_EQ(header(requests[0], http::field::authorization), "");
}

TEST_F(UpstreamClient, ReusesOneKeepAliveConnection) {
  TestServer server([](const ServerRequest& r) { return Reply::ok("body of " + std::string(r.target())); });
  auto client = client_for(upstream_for(server));
  for (int i = 0; i < 3; ++i) {
    auto response = send(*client, get("/v2/r/manifests/" + std::to_string(i)));
    ASSERT_TRUE(response.ok()) << response.error().message;
    auto body = read_all(**response);
    ASSERT_TRUE(body.ok()) << body.error().message;
    EXPECT_EQ(*body, "body of /v2/r/manifests/" + std::to_string(i));
  }
  EXPECT_EQ(client->stats().connections_opened, 1u);
  EXPECT_EQ(client->stats().requests, 3u);
  EXPECT_EQ(server.connections(), 1);
}

TEST_F(UpstreamClient, AResponseDroppedMidBodyIsNotReused) {
  const std::string body = pattern(256 * 1024);
  TestServer server([&](const ServerRequest&) { return Reply::ok(body); });
  auto client = client_for(upstream_for(server));
  {
    auto response = send(*client, get("/v2/r/blobs/sha256:1"));
    ASSERT_TRUE(response.ok()) << response.error().message;
    std::string part;
    ASSERT_TRUE(read_some(**response, part, 10).ok());
  }
  auto second = send(*client, get("/v2/r/blobs/sha256:1"));
  ASSERT_TRUE(second.ok()) << second.error().message;
  auto all = read_all(**second);
  ASSERT_TRUE(all.ok()) << all.error().message;
  EXPECT_EQ(*all, body);
  EXPECT_EQ(client->stats().connections_opened, 2u);
}

TEST_F(UpstreamClient, RecoversWhenThePooledConnectionWasClosedByTheServer) {
  int count = 0;
  TestServer server([&](const ServerRequest&) {
    // The first answer claims keep-alive but the server hangs up right after it.
    Reply reply = Reply::bytes("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", ++count == 1);
    return reply;
  });
  auto client = client_for(upstream_for(server));
  auto first = send(*client, get("/a"));
  ASSERT_TRUE(first.ok()) << first.error().message;
  ASSERT_TRUE(read_all(**first).ok());
  first = Error{Errc::internal, "dropped"};
  // Wait for the server's close, so the pooled connection is really stale (its FIN is delivered
  // on loopback as the server closes).
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (server.closed() < 1 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  ASSERT_EQ(server.closed(), 1);
  auto second = send(*client, get("/b"));
  ASSERT_TRUE(second.ok()) << second.error().message;
  auto body = read_all(**second);
  ASSERT_TRUE(body.ok()) << body.error().message;
  EXPECT_EQ(*body, "ok");
  EXPECT_EQ(client->stats().connections_opened, 2u);
}

TEST_F(UpstreamClient, HeadReturnsContentLengthWithoutABody) {
  TestServer server([](const ServerRequest&) {
    return Reply::bytes(
        "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nDocker-Content-Digest: sha256:feed\r\n\r\n", false);
  });
  auto client = client_for(upstream_for(server));
  Request request = get("/v2/r/manifests/latest");
  request.method = http::verb::head;
  auto response = send(*client, request);
  ASSERT_TRUE(response.ok()) << response.error().message;
  EXPECT_EQ((*response)->status(), 200u);
  EXPECT_EQ((*response)->content_length(), 1234u);
  EXPECT_EQ((*response)->headers()["Docker-Content-Digest"], "sha256:feed");
  auto body = read_all(**response);
  ASSERT_TRUE(body.ok()) << body.error().message;
  EXPECT_EQ(*body, "");
  ASSERT_EQ(server.requests().size(), 1u);
  EXPECT_EQ(server.requests()[0].method(), http::verb::head);
  // The connection went back to the pool: the next request does not open another.
  response = Error{Errc::internal, "dropped"};
  auto next = send(*client, request);
  ASSERT_TRUE(next.ok()) << next.error().message;
  EXPECT_EQ(client->stats().connections_opened, 1u);
}

TEST_F(UpstreamClient, ReturnsNotFoundAsAResponse) {
  TestServer server([](const ServerRequest&) { return Reply::with_status(404); });
  auto client = client_for(upstream_for(server));
  auto response = send(*client, get("/v2/r/manifests/nope"));
  ASSERT_TRUE(response.ok()) << response.error().message;
  EXPECT_EQ((*response)->status(), 404u);
  EXPECT_EQ(server.requests().size(), 1u);
}

// ---- authentication ----

TEST_F(UpstreamClient, PerformsTheBearerDanceAndCachesTheToken) {
  std::string realm;
  TestServer server([&](const ServerRequest& r) {
    if (r.target().starts_with("/token")) {
      if (query_param(r, "service") != "svc" || query_param(r, "scope") != "repository:library/alpine:pull") {
        return Reply::with_status(400);
      }
      return Reply::ok(R"({"token":"tok-1","expires_in":300})");
    }
    if (header(r, http::field::authorization) != "Bearer tok-1") {
      return Reply::with_status(
          401, {{"WWW-Authenticate", "Bearer realm=\"" + realm + "\",service=\"svc\",scope=\"ignored:pull\""}});
    }
    return Reply::ok("manifest");
  });
  realm = server.origin() + "/token";
  auto client = client_for(upstream_for(server));
  Request request = get("/v2/library/alpine/manifests/3.19");
  request.scope = "repository:library/alpine:pull";
  auto first = send(*client, request);
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ((*first)->status(), 200u);
  auto body = read_all(**first);
  ASSERT_TRUE(body.ok());
  EXPECT_EQ(*body, "manifest");
  EXPECT_EQ(client->stats().token_fetches, 1u);

  auto second = send(*client, request);
  ASSERT_TRUE(second.ok()) << second.error().message;
  EXPECT_EQ((*second)->status(), 200u);
  EXPECT_EQ(client->stats().token_fetches, 1u);

  auto requests = server.requests();
  ASSERT_EQ(requests.size(), 4u);  // 401, token, retry, cached
  EXPECT_EQ(header(requests[0], http::field::authorization), "");
  EXPECT_TRUE(requests[1].target().starts_with("/token?"));
  EXPECT_EQ(header(requests[1], http::field::authorization), "");  // no credentials configured
  EXPECT_EQ(header(requests[2], http::field::authorization), "Bearer tok-1");
  EXPECT_EQ(header(requests[3], http::field::authorization), "Bearer tok-1");
}

TEST_F(UpstreamClient, ADifferentScopeFetchesItsOwnToken) {
  std::string realm;
  TestServer server([&](const ServerRequest& r) {
    if (r.target().starts_with("/token")) {
      return Reply::ok(R"({"access_token":"for-)" + query_param(r, "scope") + R"("})");
    }
    auto auth = header(r, http::field::authorization);
    if (auth.empty()) return Reply::with_status(401, {{"WWW-Authenticate", "Bearer realm=\"" + realm + "\""}});
    return Reply::ok(auth);
  });
  realm = server.origin() + "/token";
  auto client = client_for(upstream_for(server));
  for (std::string repo : {"a", "b"}) {
    Request request = get("/v2/" + repo + "/manifests/1");
    request.scope = "repository:" + repo + ":pull";
    auto response = send(*client, request);
    ASSERT_TRUE(response.ok()) << response.error().message;
    auto body = read_all(**response);
    ASSERT_TRUE(body.ok());
    EXPECT_EQ(*body, "Bearer for-repository:" + repo + ":pull");
  }
  EXPECT_EQ(client->stats().token_fetches, 2u);
}

TEST_F(UpstreamClient, SendsBasicCredentialsWhenChallenged) {
  TestServer server([](const ServerRequest& r) {
    if (header(r, http::field::authorization).empty()) {
      return Reply::with_status(401, {{"WWW-Authenticate", "Basic realm=\"Registry Realm\""}});
    }
    return Reply::ok("in");
  });
  auto upstream = upstream_for(server);
  upstream.username = "alice";
  upstream.password = "s3cr:t";
  auto client = client_for(upstream);
  auto response = send(*client, get("/v2/"));
  ASSERT_TRUE(response.ok()) << response.error().message;
  EXPECT_EQ((*response)->status(), 200u);
  auto second = send(*client, get("/v2/x/manifests/1"));
  ASSERT_TRUE(second.ok()) << second.error().message;
  auto requests = server.requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(header(requests[0], http::field::authorization), "");
  EXPECT_EQ(header(requests[1], http::field::authorization), "Basic YWxpY2U6czNjcjp0");  // alice:s3cr:t
  // Once Basic is known to work it is sent up front.
  EXPECT_EQ(header(requests[2], http::field::authorization), "Basic YWxpY2U6czNjcjp0");
  EXPECT_EQ(client->stats().token_fetches, 0u);
}

TEST_F(UpstreamClient, ReturnsTheSecond401WhenCredentialsAreWrong) {
  TestServer server([](const ServerRequest&) {
    return Reply::with_status(401, {{"WWW-Authenticate", "Basic realm=\"r\""}});
  });
  auto upstream = upstream_for(server);
  upstream.username = "alice";
  upstream.password = "wrong";
  auto client = client_for(upstream);
  auto response = send(*client, get("/v2/"));
  ASSERT_TRUE(response.ok()) << response.error().message;
  EXPECT_EQ((*response)->status(), 401u);
  EXPECT_EQ(server.requests().size(), 2u);  // one try with credentials, no retries
}

TEST_F(UpstreamClient, FetchesTheTokenFromAnotherServerWithBasicCredentials) {
  TestServer auth([](const ServerRequest& r) {
    if (header(r, http::field::authorization) != "Basic Ym9iOnB3") return Reply::with_status(401);
    return Reply::ok(R"({"token":"from-auth"})");
  });
  std::string realm = auth.origin() + "/auth/token";
  TestServer registry([&](const ServerRequest& r) {
    if (header(r, http::field::authorization) != "Bearer from-auth") {
      return Reply::with_status(401, {{"WWW-Authenticate", "Bearer realm=\"" + realm + "\",service=\"reg\""}});
    }
    return Reply::ok("ok");
  });
  auto upstream = upstream_for(registry);
  upstream.username = "bob";
  upstream.password = "pw";
  auto client = client_for(upstream);
  Request request = get("/v2/x/manifests/1");
  request.scope = "repository:x:pull";
  auto response = send(*client, request);
  ASSERT_TRUE(response.ok()) << response.error().message;
  EXPECT_EQ((*response)->status(), 200u);
  auto token_requests = auth.requests();
  ASSERT_EQ(token_requests.size(), 1u);
  EXPECT_TRUE(token_requests[0].target().starts_with("/auth/token?"));
  EXPECT_EQ(query_param(token_requests[0], "service"), "reg");
  EXPECT_EQ(query_param(token_requests[0], "scope"), "repository:x:pull");
  EXPECT_EQ(registry.requests().size(), 2u);
  EXPECT_EQ(client->stats().token_fetches, 1u);
}

TEST_F(UpstreamClient, AFailingTokenEndpointLeavesThe401) {
  std::string realm;
  TestServer server([&](const ServerRequest& r) {
    if (r.target().starts_with("/token")) return Reply::ok("not json");
    return Reply::with_status(401, {{"WWW-Authenticate", "Bearer realm=\"" + realm + "\""}});
  });
  realm = server.origin() + "/token";
  auto client = client_for(upstream_for(server));
  auto response = send(*client, get("/v2/x/manifests/1"));
  ASSERT_TRUE(response.ok()) << response.error().message;
  EXPECT_EQ((*response)->status(), 401u);
}

TEST_F(UpstreamClient, AMalformedRealmPortIsAnAuthFailureNotACrash) {
  for (std::string bad : {"http://127.0.0.1:/token", "http://127.0.0.1:99999999999999999999/token",
                          "http://127.0.0.1:70000/token"}) {
    TestServer server([&](const ServerRequest&) {
      return Reply::with_status(401, {{"WWW-Authenticate", "Bearer realm=\"" + bad + "\""}});
    });
    auto client = client_for(upstream_for(server));
    auto response = send(*client, get("/v2/x/manifests/1"));
    ASSERT_TRUE(response.ok()) << bad << ": " << response.error().message;
    EXPECT_EQ((*response)->status(), 401u) << bad;
  }
}

// ---- redirects ----

TEST_F(UpstreamClient, FollowsARedirectToAnotherHostWithoutTheAuthorization) {
  const std::string blob = pattern(5000);
  TestServer storage([&](const ServerRequest&) { return Reply::ok(blob); });
  TestServer registry([&](const ServerRequest& r) {
    if (header(r, http::field::authorization).empty()) {
      return Reply::with_status(401, {{"WWW-Authenticate", "Basic realm=\"r\""}});
    }
    return Reply::with_status(307, {{"Location", storage.origin() + "/blobs/abc?sig=xyz"}});
  });
  auto upstream = upstream_for(registry);
  upstream.username = "alice";
  upstream.password = "pw";
  auto client = client_for(upstream);
  Request request = get("/v2/r/blobs/sha256:abc");
  request.follow_redirects = true;
  auto response = send(*client, request);
  ASSERT_TRUE(response.ok()) << response.error().message;
  EXPECT_EQ((*response)->status(), 200u);
  auto body = read_all(**response);
  ASSERT_TRUE(body.ok()) << body.error().message;
  EXPECT_EQ(*body, blob);
  auto registry_requests = registry.requests();
  ASSERT_EQ(registry_requests.size(), 2u);
  EXPECT_FALSE(header(registry_requests[1], http::field::authorization).empty());
  auto storage_requests = storage.requests();
  ASSERT_EQ(storage_requests.size(), 1u);
  EXPECT_EQ(storage_requests[0].target(), "/blobs/abc?sig=xyz");
  EXPECT_EQ(header(storage_requests[0], http::field::authorization), "");
  EXPECT_EQ(header(storage_requests[0], http::field::host), "127.0.0.1:" + std::to_string(storage.port()));
}

TEST_F(UpstreamClient, ReturnsTheRedirectWhenNotAskedToFollow) {
  TestServer server([](const ServerRequest&) { return Reply::with_status(302, {{"Location", "/elsewhere"}}); });
  auto client = client_for(upstream_for(server));
  auto response = send(*client, get("/v2/r/blobs/sha256:abc"));
  ASSERT_TRUE(response.ok()) << response.error().message;
  EXPECT_EQ((*response)->status(), 302u);
  EXPECT_EQ((*response)->headers()[http::field::location], "/elsewhere");
  EXPECT_EQ(server.requests().size(), 1u);
}

TEST_F(UpstreamClient, StopsARedirectLoop) {
  TestServer server([](const ServerRequest&) { return Reply::with_status(302, {{"Location", "/loop"}}); });
  auto client = client_for(upstream_for(server));
  Request request = get("/v2/r/blobs/sha256:abc");
  request.follow_redirects = true;
  auto started = std::chrono::steady_clock::now();
  auto response = send(*client, request);
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.error().code, Errc::upstream_error);
  EXPECT_THAT(response.error().message, HasSubstr("redirect"));
  EXPECT_LT(std::chrono::steady_clock::now() - started, 3s);
  // A loop is not a transient failure: it is not retried.
  EXPECT_LE(server.requests().size(), 6u);
}

TEST_F(UpstreamClient, RefusesAMalformedRedirectPortWithoutThrowing) {
  for (std::string location : {"http://127.0.0.1:/x", "http://127.0.0.1:99999999999999999999/x",
                               "http://127.0.0.1:70000/x", "ftp://127.0.0.1/x"}) {
    TestServer server([&](const ServerRequest&) { return Reply::with_status(307, {{"Location", location}}); });
    auto client = client_for(upstream_for(server));
    Request request = get("/v2/r/blobs/sha256:abc");
    request.follow_redirects = true;
    auto response = send(*client, request);
    ASSERT_FALSE(response.ok()) << location;
    EXPECT_EQ(response.error().code, Errc::upstream_error) << location;
  }
}

// ---- retries and failures ----

TEST_F(UpstreamClient, RetriesA503AndReturnsTheLater200) {
  int count = 0;
  TestServer server([&](const ServerRequest&) {
    if (++count == 1) return Reply::with_status(503);
    return Reply::ok("finally");
  });
  auto client = client_for(upstream_for(server));
  auto response = send(*client, get("/v2/r/manifests/1"));
  ASSERT_TRUE(response.ok()) << response.error().message;
  EXPECT_EQ((*response)->status(), 200u);
  auto body = read_all(**response);
  ASSERT_TRUE(body.ok());
  EXPECT_EQ(*body, "finally");
  EXPECT_EQ(server.requests().size(), 2u);
}

TEST_F(UpstreamClient, GivesUpAfterThreeAttemptsAndReturnsTheLast503) {
  TestServer server([](const ServerRequest&) { return Reply::with_status(503); });
  auto client = client_for(upstream_for(server));
  auto response = send(*client, get("/v2/r/manifests/1"));
  ASSERT_TRUE(response.ok()) << response.error().message;
  EXPECT_EQ((*response)->status(), 503u);
  EXPECT_EQ(server.requests().size(), 3u);
}

TEST_F(UpstreamClient, Returns429WithRetryAfterAndDoesNotRetry) {
  TestServer server([](const ServerRequest&) { return Reply::with_status(429, {{"Retry-After", "17"}}); });
  auto client = client_for(upstream_for(server));
  auto started = std::chrono::steady_clock::now();
  auto response = send(*client, get("/v2/r/manifests/1"));
  ASSERT_TRUE(response.ok()) << response.error().message;
  EXPECT_EQ((*response)->status(), 429u);
  EXPECT_EQ((*response)->headers()[http::field::retry_after], "17");
  EXPECT_EQ(server.requests().size(), 1u);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s) << "Retry-After: 17 is handed on, not waited for";
}

using Endpoints = std::vector<tcp::endpoint>;

// A body read with read_all, or its error as text, for one EXPECT.
std::string text(const Result<std::string>& body) { return body ? *body : "error: " + body.error().message; }

asio::awaitable<Result<Endpoints>> loopback_lookup(std::uint16_t port) {
  co_return Endpoints{tcp::endpoint(asio::ip::make_address("127.0.0.1"), port)};
}

asio::awaitable<Result<Endpoints>> lookup_that_never_answers(asio::any_io_executor executor) {
  asio::steady_timer timer(executor, std::chrono::hours(1));
  co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
  co_return Error{Errc::internal, "test: the stuck lookup ended"};
}

TEST_F(UpstreamClient, ConnectsToTheAddressesTheLookupGivesAndKeepsTheNameInTheHostHeader) {
  TestServer server([](const ServerRequest&) { return Reply::ok("found"); });
  auto upstream = upstream_for(server);
  upstream.host = "registry.example";
  std::vector<std::string> lookups;
  auto client = Client::create(io_.get_executor(), upstream, [&lookups, port = server.port()](std::string host,
                                                                                               std::string service) {
    lookups.push_back(host + ":" + service);
    return loopback_lookup(port);
  });
  for (int i = 0; i < 2; ++i) {
    auto response = send(*client, get("/v2/"));
    ASSERT_TRUE(response.ok()) << response.error().message;
    auto body = read_all(**response);
    ASSERT_TRUE(body.ok()) << body.error().message;
    EXPECT_EQ(*body, "found");
  }
  // The second request reused the pooled connection: no second lookup.
  EXPECT_EQ(lookups, std::vector<std::string>{"registry.example:" + std::to_string(server.port())});
  ASSERT_EQ(server.requests().size(), 2u);
  EXPECT_EQ(header(server.requests()[0], http::field::host), "registry.example:" + std::to_string(server.port()));
}

// A new connection within the lookup's TTL (here: the upstream closes each one) reuses its answer.
TEST_F(UpstreamClient, NewConnectionsReuseARecentLookup) {
  TestServer server([](const ServerRequest&) { return Reply::ok_then_close("found"); });
  auto upstream = upstream_for(server);
  upstream.host = "registry.example";
  int lookups = 0;
  auto client = Client::create(io_.get_executor(), upstream, [&lookups, port = server.port()](std::string,
                                                                                              std::string) {
    ++lookups;
    return loopback_lookup(port);
  });
  for (int i = 0; i < 3; ++i) {
    auto response = send(*client, get("/v2/"));
    ASSERT_TRUE(response.ok()) << response.error().message;
    EXPECT_EQ(text(read_all(**response)), "found");
  }
  EXPECT_EQ(client->stats().connections_opened, 3u);
  EXPECT_EQ(lookups, 1);
}

// A host that moved: the remembered addresses refuse the connection, and the retry looks the name
// up again instead of trying them until the TTL ends.
TEST_F(UpstreamClient, AConnectFailureForgetsTheRememberedAddresses) {
  TestServer server([](const ServerRequest&) { return Reply::ok("moved here"); });
  std::uint16_t gone_port = 0;
  {
    tcp::acceptor closed(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    gone_port = closed.local_endpoint().port();
  }
  auto upstream = upstream_for(server);
  upstream.host = "registry.example";
  int lookups = 0;
  auto client = Client::create(io_.get_executor(), upstream, [&](std::string, std::string) {
    return loopback_lookup(++lookups == 1 ? gone_port : server.port());
  });
  auto response = send(*client, get("/v2/"), 10s);
  ASSERT_TRUE(response.ok()) << response.error().message;
  EXPECT_EQ(text(read_all(**response)), "moved here");
  EXPECT_EQ(lookups, 2);
}

// The system's lookup (no Resolve given), on the client's own lookup threads.
TEST_F(UpstreamClient, TheSystemLookupFindsLocalhost) {
  TestServer server([](const ServerRequest&) { return Reply::ok_then_close("local"); });
  auto upstream = upstream_for(server);
  upstream.host = "localhost";
  auto client = Client::create(io_.get_executor(), upstream);
  auto response = send(*client, get("/v2/"), 10s);
  ASSERT_TRUE(response.ok()) << response.error().message;
  EXPECT_EQ(text(read_all(**response)), "local");
  EXPECT_EQ(server.requests().size(), 1u);
}

TEST_F(UpstreamClient, ALookupThatNeverAnswersIsAnUpstreamTimeoutAfterTheConnectTimeout) {
  TestServer server([](const ServerRequest&) { return Reply::ok("unreachable"); });
  auto upstream = upstream_for(server);
  upstream.host = "registry.example";
  upstream.connect_timeout = 1s;
  int lookups = 0;
  auto client = Client::create(io_.get_executor(), upstream, [this, &lookups](std::string, std::string) {
    ++lookups;
    return lookup_that_never_answers(io_.get_executor());
  });
  auto started = std::chrono::steady_clock::now();
  auto response = send(*client, get("/v2/"), 10s);
  const auto elapsed = std::chrono::steady_clock::now() - started;
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.error().code, Errc::upstream_timeout);
  EXPECT_THAT(response.error().message, HasSubstr("resolving upstream registry.example timed out after 1s"));
  EXPECT_EQ(lookups, 3) << "a lookup timeout is retried like a connect timeout";
  EXPECT_GE(elapsed, 3s);
  EXPECT_LT(elapsed, 9s);  // three 1 s lookups; wide for sanitizer builds on shared cores
  EXPECT_TRUE(server.requests().empty());
  EXPECT_EQ(client->stats().connections_opened, 0u);
}

TEST_F(UpstreamClient, ConnectionRefusedIsAnUpstreamErrorQuickly) {
  std::uint16_t port;
  {
    asio::io_context scratch;
    tcp::acceptor probe(scratch, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    port = probe.local_endpoint().port();
  }  // closed: nothing listens there now
  config::Upstream upstream;
  upstream.name = "gone.local";
  upstream.tls = false;
  upstream.host = "127.0.0.1";
  upstream.port = port;
  upstream.connect_timeout = 6s;
  auto client = client_for(upstream);
  auto started = std::chrono::steady_clock::now();
  auto response = send(*client, get("/v2/"));
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.error().code, Errc::upstream_error);
  EXPECT_THAT(response.error().message, HasSubstr("127.0.0.1"));
  // A refusal is known at once: well inside one connect timeout, even with the retries' backoff.
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
  EXPECT_EQ(client->stats().connections_opened, 0u);
}

TEST_F(UpstreamClient, ServerThatNeverAnswersIsAnUpstreamTimeout) {
  TestServer server([](const ServerRequest&) { return Reply::never(); });
  auto upstream = upstream_for(server);
  upstream.response_timeout = 1s;
  auto client = client_for(upstream);
  auto started = std::chrono::steady_clock::now();
  auto response = send(*client, get("/v2/r/manifests/1"), 8s);
  auto elapsed = std::chrono::steady_clock::now() - started;
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.error().code, Errc::upstream_timeout);
  EXPECT_THAT(response.error().message, HasSubstr("1s"));
  // Three attempts of one second each plus 0.1 s and 0.4 s of backoff.
  EXPECT_EQ(server.requests().size(), 3u);
  EXPECT_GE(elapsed, 3s);
  EXPECT_LT(elapsed, 8s);  // the attempts are counted above; this bounds each one loosely
}

TEST_F(UpstreamClient, APostThatTimesOutIsNotRetried) {
  TestServer server([](const ServerRequest&) { return Reply::never(); });
  auto upstream = upstream_for(server);
  upstream.response_timeout = 1s;
  auto client = client_for(upstream);
  Request request = get("/v2/r/blobs/uploads/");
  request.method = http::verb::post;
  auto started = std::chrono::steady_clock::now();
  auto response = send(*client, request);
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.error().code, Errc::upstream_timeout);
  EXPECT_EQ(server.requests().size(), 1u);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 3s);  // one 1 s attempt; three would take 3.5 s
}

TEST_F(UpstreamClient, ShortBodyFailsReadSome) {
  TestServer server([](const ServerRequest&) {
    return Reply::bytes("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + std::string(50, 'x'), true);
  });
  auto client = client_for(upstream_for(server));
  auto response = send(*client, get("/v2/r/blobs/sha256:abc"));
  ASSERT_TRUE(response.ok()) << response.error().message;
  EXPECT_EQ((*response)->content_length(), 100u);
  std::string received;
  Result<std::size_t> n = std::size_t{0};
  for (int i = 0; i < 10; ++i) {
    n = read_some(**response, received, 4096);
    if (!n.ok() || *n == 0) break;
  }
  ASSERT_FALSE(n.ok()) << "a short body ended without an error";
  EXPECT_EQ(n.error().code, Errc::upstream_error);
  EXPECT_LE(received.size(), 50u);
}

TEST_F(UpstreamClient, ALargeBodyCutShortFailsReadSomeWithAClearMessage) {
  TestServer server([](const ServerRequest&) {
    return Reply::bytes("HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n" + std::string(300 * 1024, 'x'), true);
  });
  auto client = client_for(upstream_for(server));
  auto response = send(*client, get("/v2/r/blobs/sha256:abc"));
  ASSERT_TRUE(response.ok()) << response.error().message;
  std::string received;
  auto n = read_to_end(**response, received, 256 * 1024);
  ASSERT_FALSE(n.ok()) << "a short body ended without an error";
  EXPECT_EQ(n.error().code, Errc::upstream_error);
  EXPECT_THAT(n.error().message, HasSubstr("closed the connection before the body ended"));
  EXPECT_EQ(received, std::string(300 * 1024, 'x'));
}

TEST_F(UpstreamClient, StalledBodyIsAnUpstreamTimeout) {
  TestServer server([](const ServerRequest&) {
    Reply reply = Reply::bytes("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + std::string(10, 'x'), false);
    return reply;
  });
  auto upstream = upstream_for(server);
  upstream.idle_timeout = 1s;
  auto client = client_for(upstream);
  auto response = send(*client, get("/v2/r/blobs/sha256:abc"));
  ASSERT_TRUE(response.ok()) << response.error().message;
  std::string received;
  Result<std::size_t> n = std::size_t{0};
  auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < 10; ++i) {
    n = read_some(**response, received, 4096);
    if (!n.ok() || *n == 0) break;
  }
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.error().code, Errc::upstream_timeout);
  EXPECT_EQ(received, std::string(10, 'x'));
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);  // one 1 s idle timeout, not one per read
}

TEST_F(UpstreamClient, ReadAllOverTheLimitIsSizeInvalid) {
  TestServer server([](const ServerRequest&) { return Reply::ok(pattern(200 * 1024)); });
  auto client = client_for(upstream_for(server));
  auto response = send(*client, get("/v2/r/manifests/huge"));
  ASSERT_TRUE(response.ok()) << response.error().message;
  auto body = read_all(**response, 100 * 1024);
  ASSERT_FALSE(body.ok());
  EXPECT_EQ(body.error().code, Errc::size_invalid);
  // The connection was not returned half-read: the next request works on a fresh one.
  auto next = send(*client, get("/v2/r/manifests/small"));
  ASSERT_TRUE(next.ok()) << next.error().message;
  auto all = read_all(**next, 1 << 20);
  ASSERT_TRUE(all.ok()) << all.error().message;
  EXPECT_EQ(all->size(), 200u * 1024);
  EXPECT_EQ(client->stats().connections_opened, 2u);
}

TEST_F(UpstreamClient, ReadAllAtExactlyTheLimitSucceeds) {
  TestServer server([](const ServerRequest&) { return Reply::ok(pattern(4096)); });
  auto client = client_for(upstream_for(server));
  auto response = send(*client, get("/x"));
  ASSERT_TRUE(response.ok()) << response.error().message;
  auto body = read_all(**response, 4096);
  ASSERT_TRUE(body.ok()) << body.error().message;
  EXPECT_EQ(body->size(), 4096u);
}

TEST_F(UpstreamClient, ChunkedBodyIsDecoded) {
  TestServer server([](const ServerRequest&) {
    return Reply::bytes("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
                        false);
  });
  auto client = client_for(upstream_for(server));
  auto response = send(*client, get("/x"));
  ASSERT_TRUE(response.ok()) << response.error().message;
  EXPECT_EQ((*response)->content_length(), std::nullopt);
  auto body = read_all(**response);
  ASSERT_TRUE(body.ok()) << body.error().message;
  EXPECT_EQ(*body, "hello world");
}

TEST_F(UpstreamClient, GarbageInsteadOfHttpIsAnUpstreamError) {
  TestServer server([](const ServerRequest&) { return Reply::bytes("SSH-2.0-OpenSSH\r\n\r\n", true); });
  auto client = client_for(upstream_for(server));
  auto response = send(*client, get("/x"));
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.error().code, Errc::upstream_error);
}

TEST_F(UpstreamClient, BracketsAnIpv6HostInTheHostHeader) {
  std::unique_ptr<TestServer> server;
  try {
    server = std::make_unique<TestServer>([](const ServerRequest&) { return Reply::ok("v6"); }, nullptr, "::1");
  } catch (const std::exception& e) {
    GTEST_SKIP() << "no IPv6 loopback: " << e.what();
  }
  config::Upstream upstream;
  upstream.name = "v6.local";
  upstream.tls = false;
  upstream.host = "::1";
  upstream.port = server->port();
  auto client = client_for(upstream);
  auto response = send(*client, get("/v2/"));
  ASSERT_TRUE(response.ok()) << response.error().message;
  auto requests = server->requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(header(requests[0], http::field::host), "[::1]:" + std::to_string(server->port()));
}

// ---- details of auth, retries and safety ----

TEST_F(UpstreamClient, ExplainsAFailingTokenEndpointWithoutLeakingCredentials) {
  std::string realm;
  TestServer server([&](const ServerRequest& r) {
    if (r.target().starts_with("/token")) return Reply::with_status(403);
    return Reply::with_status(401, {{"WWW-Authenticate", "Bearer realm=\"" + realm + "\",service=\"svc\""}});
  });
  realm = server.origin() + "/token";
  auto upstream = upstream_for(server);
  upstream.username = "carol";
  upstream.password = "hunter2-secret";
  auto client = client_for(upstream);
  auto response = send(*client, get("/v2/x/manifests/1"));
  ASSERT_TRUE(response.ok()) << response.error().message;
  EXPECT_EQ((*response)->status(), 401u);
  EXPECT_THAT((*response)->auth_error(), HasSubstr("token endpoint"));
  EXPECT_THAT((*response)->auth_error(), HasSubstr("403"));
  EXPECT_THAT((*response)->auth_error(), ::testing::Not(HasSubstr("hunter2")));
  EXPECT_THAT((*response)->auth_error(), ::testing::Not(HasSubstr("Y2Fyb2")));  // base64 of "carol:..."
}

TEST_F(UpstreamClient, ABasicChallengeWithoutCredentialsIsReturnedWithAReason) {
  TestServer server([](const ServerRequest&) {
    return Reply::with_status(401, {{"WWW-Authenticate", "Basic realm=\"r\""}});
  });
  auto client = client_for(upstream_for(server));
  auto response = send(*client, get("/v2/"));
  ASSERT_TRUE(response.ok()) << response.error().message;
  EXPECT_EQ((*response)->status(), 401u);
  EXPECT_THAT((*response)->auth_error(), HasSubstr("Basic"));
  EXPECT_EQ(server.requests().size(), 1u);
}

TEST_F(UpstreamClient, UsesTheChallengeScopeWhenTheRequestHasNone) {
  std::string realm;
  TestServer server([&](const ServerRequest& r) {
    if (r.target().starts_with("/token")) return Reply::ok(R"({"token":"t-)" + query_param(r, "scope") + R"("})");
    if (header(r, http::field::authorization) != "Bearer t-registry:catalog:*") {
      return Reply::with_status(
          401, {{"WWW-Authenticate", "Bearer realm=\"" + realm + "\",scope=\"registry:catalog:*\""}});
    }
    return Reply::ok("{}");
  });
  realm = server.origin() + "/token";
  auto client = client_for(upstream_for(server));
  auto response = send(*client, get("/v2/_catalog"));
  ASSERT_TRUE(response.ok()) << response.error().message;
  EXPECT_EQ((*response)->status(), 200u);
}

TEST_F(UpstreamClient, KeepsTheAuthorizationOnARedirectToTheSameServer) {
  TestServer server([](const ServerRequest& r) {
    if (header(r, http::field::authorization) != "Basic YTpi") {
      return Reply::with_status(401, {{"WWW-Authenticate", "Basic realm=\"r\""}});
    }
    if (r.target() == "/v2/r/blobs/sha256:abc") return Reply::with_status(302, {{"Location", "../../final"}});
    return Reply::ok(std::string(r.target()));
  });
  auto upstream = upstream_for(server);
  upstream.username = "a";
  upstream.password = "b";
  auto client = client_for(upstream);
  Request request = get("/v2/r/blobs/sha256:abc");
  request.follow_redirects = true;
  auto response = send(*client, request);
  ASSERT_TRUE(response.ok()) << response.error().message;
  ASSERT_EQ((*response)->status(), 200u);
  auto body = read_all(**response);
  ASSERT_TRUE(body.ok()) << body.error().message;
  EXPECT_EQ(*body, "/v2/final");  // a relative Location resolves against the current URL
  // The 401 and the redirect bodies were drained, so one connection served all three requests.
  EXPECT_EQ(client->stats().connections_opened, 1u);
}

TEST_F(UpstreamClient, HonoursAShortRetryAfterOnA503) {
  int count = 0;
  TestServer server([&](const ServerRequest&) {
    if (++count == 1) return Reply::with_status(503, {{"Retry-After", "1"}});
    return Reply::ok("back");
  });
  auto client = client_for(upstream_for(server));
  auto started = std::chrono::steady_clock::now();
  auto response = send(*client, get("/v2/r/manifests/1"));
  auto elapsed = std::chrono::steady_clock::now() - started;
  ASSERT_TRUE(response.ok()) << response.error().message;
  EXPECT_EQ((*response)->status(), 200u);
  EXPECT_GE(elapsed, 1s);
  EXPECT_LT(elapsed, 5s);
}

TEST_F(UpstreamClient, ReturnsA503WhoseRetryAfterIsTooLongWithoutWaiting) {
  TestServer server([](const ServerRequest&) { return Reply::with_status(503, {{"Retry-After", "120"}}); });
  auto client = client_for(upstream_for(server));
  auto started = std::chrono::steady_clock::now();
  auto response = send(*client, get("/v2/r/manifests/1"));
  ASSERT_TRUE(response.ok()) << response.error().message;
  EXPECT_EQ((*response)->status(), 503u);
  EXPECT_EQ(server.requests().size(), 1u);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 10s) << "Retry-After: 120 is handed on, not waited for";
}

TEST_F(UpstreamClient, RetriesA502ThenA504BeforeSucceeding) {
  int count = 0;
  TestServer server([&](const ServerRequest&) {
    ++count;
    if (count == 1) return Reply::with_status(502);
    if (count == 2) return Reply::with_status(504);
    return Reply::ok("third time");
  });
  auto client = client_for(upstream_for(server));
  auto response = send(*client, get("/v2/r/manifests/1"));
  ASSERT_TRUE(response.ok()) << response.error().message;
  EXPECT_EQ((*response)->status(), 200u);
  EXPECT_EQ(server.requests().size(), 3u);
}

TEST_F(UpstreamClient, RefusesControlCharactersInTheRequestWithoutSendingIt) {
  TestServer server([](const ServerRequest&) { return Reply::ok("x"); });
  auto client = client_for(upstream_for(server));
  for (std::string target : {std::string("/v2/x\r\nEvil: 1"), std::string("/v2/x y")}) {
    auto response = send(*client, get(target));
    ASSERT_FALSE(response.ok());
    EXPECT_EQ(response.error().code, Errc::internal);
  }
  Request request = get("/v2/ok");
  request.accept = "text/plain\r\nX-Injected: 1";
  auto response = send(*client, request);
  ASSERT_FALSE(response.ok());
  EXPECT_TRUE(server.requests().empty());
}

TEST_F(UpstreamClient, HeadOverTheReadAllLimitStillHasAnEmptyBody) {
  TestServer server([](const ServerRequest&) {
    return Reply::bytes("HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n", false);
  });
  auto client = client_for(upstream_for(server));
  Request request = get("/v2/r/blobs/sha256:big");
  request.method = http::verb::head;
  auto response = send(*client, request);
  ASSERT_TRUE(response.ok()) << response.error().message;
  EXPECT_EQ((*response)->content_length(), 99999999u);
  auto body = read_all(**response, 10);
  ASSERT_TRUE(body.ok()) << body.error().message;
  EXPECT_EQ(*body, "");
}

TEST_F(UpstreamClient, AnUnreadableCaFileFailsEveryRequestWithAClearMessage) {
  config::Upstream upstream;
  upstream.name = "broken.local";
  upstream.host = "127.0.0.1";
  upstream.port = 1;
  upstream.ca_file = "/nonexistent/ocigate-ca.pem";
  auto client = client_for(upstream);
  auto response = send(*client, get("/v2/"));
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.error().code, Errc::upstream_error);
  EXPECT_THAT(response.error().message, HasSubstr("ca_file"));
}

// Production runs one io_context on several threads with each caller on its own strand.
TEST(UpstreamClientThreads, ServesConcurrentCallersFromSeveralThreadsThroughOnePool) {
  TestServer server([](const ServerRequest& r) { return Reply::ok("echo " + std::string(r.target())); });
  config::Upstream upstream;
  upstream.name = "threads.local";
  upstream.tls = false;
  upstream.host = "127.0.0.1";
  upstream.port = server.port();
  upstream.max_connections = 4;
  asio::io_context io;
  auto client = Client::create(io.get_executor(), upstream);
  constexpr int callers = 8;
  constexpr int rounds = 10;
  std::atomic<int> good{0};
  std::atomic<int> finished{0};
  for (int c = 0; c < callers; ++c) {
    asio::co_spawn(
        asio::make_strand(io),
        [&, c]() -> asio::awaitable<void> {
          for (int i = 0; i < rounds; ++i) {
            Request request;
            request.target = "/v2/c" + std::to_string(c) + "/manifests/" + std::to_string(i);
            auto response = co_await client->send(request);
            if (!response) continue;
            auto body = co_await (*response)->read_all(1024);
            if (body && *body == "echo " + request.target) ++good;
          }
          ++finished;
        },
        asio::detached);
  }
  std::thread other([&] { io.run(); });
  io.run();
  other.join();
  EXPECT_EQ(finished.load(), callers);
  EXPECT_EQ(good.load(), callers * rounds);
  EXPECT_EQ(client->stats().requests, static_cast<std::uint64_t>(callers * rounds));
  EXPECT_LE(client->stats().connections_opened, static_cast<std::uint64_t>(callers * rounds));
}

// ---- TLS ----

class UpstreamTls : public UpstreamClient {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("ocigate-upstream-tls-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    std::string command = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
                          "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout '" +
                          (dir_ / "key.pem").string() + "' -out '" + (dir_ / "cert.pem").string() +
                          "' >/dev/null 2>&1";
    generated_ = std::system(command.c_str()) == 0;
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  void SetUp() override {
    ASSERT_TRUE(generated_) << "openssl could not generate a test certificate";
    server_tls_.use_certificate_chain_file((dir_ / "cert.pem").string());
    server_tls_.use_private_key_file((dir_ / "key.pem").string(), asio::ssl::context::pem);
  }
  config::Upstream tls_upstream_for(const TestServer& server) {
    auto u = upstream_for(server);
    u.tls = true;
    u.url = "https://127.0.0.1:" + std::to_string(server.port());
    return u;
  }

  static inline fs::path dir_;
  static inline bool generated_ = false;
  asio::ssl::context server_tls_{asio::ssl::context::tls_server};
};

TEST_F(UpstreamTls, TrustsAServerSignedByTheConfiguredCa) {
  TestServer server([](const ServerRequest&) { return Reply::ok("secure"); }, &server_tls_);
  auto upstream = tls_upstream_for(server);
  upstream.ca_file = (dir_ / "cert.pem").string();
  auto client = client_for(upstream);
  for (int i = 0; i < 2; ++i) {
    auto response = send(*client, get("/v2/"));
    ASSERT_TRUE(response.ok()) << response.error().message;
    EXPECT_EQ((*response)->status(), 200u);
    auto body = read_all(**response);
    ASSERT_TRUE(body.ok()) << body.error().message;
    EXPECT_EQ(*body, "secure");
  }
  EXPECT_EQ(client->stats().connections_opened, 1u);
}

TEST_F(UpstreamTls, ReadsALargeBodyAndReusesTheConnection) {
  const std::string body = pattern(2 * 1024 * 1024 + 3);
  TestServer server([&](const ServerRequest&) { return Reply::ok(body); }, &server_tls_);
  auto upstream = tls_upstream_for(server);
  upstream.ca_file = (dir_ / "cert.pem").string();
  auto client = client_for(upstream);
  for (int round = 0; round < 2; ++round) {
    auto response = send(*client, get("/v2/r/blobs/sha256:big"));
    ASSERT_TRUE(response.ok()) << response.error().message;
    std::string received;
    auto end = read_to_end(**response, received, 256 * 1024);
    ASSERT_TRUE(end.ok()) << end.error().message;
    EXPECT_EQ(received, body);
  }
  EXPECT_EQ(client->stats().connections_opened, 1u);
}

TEST_F(UpstreamTls, RefusesAnUntrustedCertificate) {
  TestServer server([](const ServerRequest&) { return Reply::ok("secure"); }, &server_tls_);
  auto client = client_for(tls_upstream_for(server));
  auto response = send(*client, get("/v2/"));
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.error().code, Errc::upstream_error);
  EXPECT_THAT(response.error().message, HasSubstr("TLS"));
  EXPECT_THAT(response.error().message, HasSubstr("certificate"));
  EXPECT_TRUE(server.requests().empty());
  EXPECT_EQ(server.connections(), 1);  // a certificate failure is not retried
}

TEST_F(UpstreamTls, RefusesACertificateForAnotherName) {
  // The certificate names 127.0.0.1 only; "localhost" resolves to the same server but must not match.
  TestServer server([](const ServerRequest&) { return Reply::ok("secure"); }, &server_tls_);
  auto upstream = tls_upstream_for(server);
  upstream.host = "localhost";
  upstream.ca_file = (dir_ / "cert.pem").string();
  auto client = client_for(upstream);
  auto response = send(*client, get("/v2/"));
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.error().code, Errc::upstream_error);
  EXPECT_TRUE(server.requests().empty());
}

TEST_F(UpstreamTls, RefusesARedirectFromHttpsToHttp) {
  TestServer plain([](const ServerRequest&) { return Reply::ok("in the clear"); });
  std::string location = plain.origin() + "/blob";
  TestServer server([&](const ServerRequest&) { return Reply::with_status(307, {{"Location", location}}); },
                    &server_tls_);
  auto upstream = tls_upstream_for(server);
  upstream.ca_file = (dir_ / "cert.pem").string();
  auto client = client_for(upstream);
  Request request = get("/v2/r/blobs/sha256:abc");
  request.follow_redirects = true;
  auto response = send(*client, request);
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.error().code, Errc::upstream_error);
  EXPECT_THAT(response.error().message, HasSubstr("http"));
  EXPECT_TRUE(plain.requests().empty());
}

// ---- abuse limits ----

TEST_F(UpstreamClient, FollowsRedirectsOnlyForGets) {
  TestServer server([](const ServerRequest&) { return Reply::with_status(307, {{"Location", "/elsewhere"}}); });
  auto client = client_for(upstream_for(server));
  Request request = get("/v2/r/blobs/sha256:abc");
  request.method = http::verb::head;
  request.follow_redirects = true;
  auto response = send(*client, request);
  ASSERT_TRUE(response.ok()) << response.error().message;
  EXPECT_EQ((*response)->status(), 307u);
  EXPECT_EQ(server.requests().size(), 1u);
}

TEST_F(UpstreamClient, MaxConcurrentFetchesQueuesRequestsUntilABodyIsDone) {
  const std::string blob = pattern(200000);
  TestServer server([&](const ServerRequest&) { return Reply::ok(blob); });
  auto upstream = upstream_for(server);
  upstream.max_concurrent_fetches = 1;
  auto client = client_for(upstream);
  auto first = send(*client, get("/v2/a/blobs/one"));
  ASSERT_TRUE(first.ok()) << first.error().message;
  auto second = std::make_shared<Slot<SendResult>>();
  asio::co_spawn(io_, fill(second, client->send(get("/v2/a/blobs/two"))),
                 [second](std::exception_ptr) { second->done = true; });
  io_.restart();
  io_.run_for(300ms);
  EXPECT_FALSE(second->done) << "the second fetch waits while the first body is open";
  EXPECT_EQ(server.requests().size(), 1u);
  auto body = read_all(**first);  // the first body ends: its slot frees
  ASSERT_TRUE(body.ok()) << body.error().message;
  io_.restart();
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (!second->done && std::chrono::steady_clock::now() < deadline) io_.run_one_until(deadline);
  ASSERT_TRUE(second->done);
  ASSERT_TRUE(second->value && second->value->ok());
  EXPECT_EQ((*second->value.value())->status(), 200u);
  EXPECT_EQ(server.requests().size(), 2u);
  second->value.reset();  // dropped mid-body: its slot frees too
  auto third = send(*client, get("/v2/a/blobs/three"));
  ASSERT_TRUE(third.ok()) << third.error().message;
}

// idle_fetch_slots: the slots no request holds, for pull-ahead to leave to clients.
TEST_F(UpstreamClient, IdleFetchSlotsCountsThePermitsHeld) {
  const std::string blob = pattern(200000);
  TestServer server([&](const ServerRequest&) { return Reply::ok(blob); });
  auto unlimited = client_for(upstream_for(server));
  EXPECT_EQ(unlimited->idle_fetch_slots(), std::nullopt);
  auto upstream = upstream_for(server);
  upstream.max_concurrent_fetches = 2;
  auto client = client_for(upstream);
  EXPECT_EQ(client->idle_fetch_slots(), 2u);
  auto first = send(*client, get("/v2/a/blobs/one"));
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ(client->idle_fetch_slots(), 1u);
  auto second = send(*client, get("/v2/a/blobs/two"));
  ASSERT_TRUE(second.ok()) << second.error().message;
  EXPECT_EQ(client->idle_fetch_slots(), 0u);
  ASSERT_TRUE(read_all(**first).ok());  // its body is done: its slot frees
  EXPECT_EQ(client->idle_fetch_slots(), 1u);
  second = Error{Errc::internal, "dropped"};  // dropped mid-body: its slot frees too
  EXPECT_EQ(client->idle_fetch_slots(), 2u);
}

TEST_F(UpstreamClient, AWaitForAFetchSlotEndsAfterFetchSlotTimeoutWithUpstreamBusy) {
  const std::string blob = pattern(200000);
  TestServer server([&](const ServerRequest&) { return Reply::ok(blob); });
  auto upstream = upstream_for(server);
  upstream.max_concurrent_fetches = 1;
  upstream.fetch_slot_timeout = 1s;
  auto client = client_for(upstream);
  auto first = send(*client, get("/v2/a/blobs/one"));  // holds the only slot: its body stays unread
  ASSERT_TRUE(first.ok()) << first.error().message;
  const auto started = std::chrono::steady_clock::now();
  auto second = send(*client, get("/v2/a/blobs/two"));
  const auto waited = std::chrono::steady_clock::now() - started;
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code, Errc::upstream_busy);
  EXPECT_EQ(second.error().retry_after, busy_retry_after);
  EXPECT_NE(second.error().message.find("fetch_slot_timeout"), std::string::npos) << second.error().message;
  EXPECT_GE(waited, 900ms);
  EXPECT_LT(waited, 5s);
  EXPECT_EQ(server.requests().size(), 1u) << "nothing is sent for a request that found no slot";
  EXPECT_EQ(client->stats().fetch_slot_timeouts, 1u);
  // The timed-out waiter took no slot with it: once the first body is done, the next one goes.
  auto body = read_all(**first);
  ASSERT_TRUE(body.ok()) << body.error().message;
  auto third = send(*client, get("/v2/a/blobs/three"));
  ASSERT_TRUE(third.ok()) << third.error().message;
  EXPECT_EQ((*third)->status(), 200u);
  auto fourth = send(*client, get("/v2/a/blobs/four"));  // the third still holds the slot
  ASSERT_FALSE(fourth.ok());
  EXPECT_EQ(fourth.error().code, Errc::upstream_busy);
  EXPECT_EQ(client->stats().fetch_slot_timeouts, 2u);
}

}  // namespace
}  // namespace ocigate::upstream::test
