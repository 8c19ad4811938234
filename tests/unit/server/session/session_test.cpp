// A connection's requests (session/session.hpp) over Beast's test::stream, with a fail_count that
// breaks each read and write step in turn; and over loopback TCP for what needs a clock or a
// kernel socket: the header deadline and a client that leaves during sendfile(2).

#include "session/session.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/beast/_experimental/test/stream.hpp>
#include <nlohmann/json.hpp>

#include "ocigate/server/log.hpp"
#include "support.hpp"

namespace ocigate::server {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

// Answers every request with what `make` builds; records malformed requests.
class FakeResponder final : public Responder {
 public:
  std::function<Reply()> make = [] { return text_reply(http::status::ok, "hello", "test"); };
  std::vector<std::string> malformed_reasons;
  int answered = 0;

  asio::awaitable<Reply> answer(const Request&, const Peer&, std::string& user) override {
    ++answered;
    user = "tester";
    co_return make();
  }
  void malformed(const std::string&, std::string_view reason) override { malformed_reasons.emplace_back(reason); }
  bool stopping() const override { return false; }
};

// A body handed out in fixed pieces, as a fetch being followed would; optionally failing after
// some of them (an upstream that breaks off).
class PieceSource final : public BodySource {
 public:
  PieceSource(std::vector<std::string> pieces, std::size_t fail_after = SIZE_MAX)
      : pieces_(std::move(pieces)), fail_after_(fail_after) {}
  asio::awaitable<Result<std::size_t>> next(std::string& out) override {
    if (next_ == fail_after_) co_return Error{Errc::upstream_error, "the upstream broke off"};
    if (next_ == pieces_.size()) co_return std::size_t{0};
    out = pieces_[next_++];
    co_return out.size();
  }
  const char* source() const override { return "upstream"; }

 private:
  std::vector<std::string> pieces_;
  std::size_t fail_after_;
  std::size_t next_ = 0;
};

const std::vector<std::string> pieces = {"first piece ", "second piece ", "third piece"};
std::string whole_body() { return pieces[0] + pieces[1] + pieces[2]; }

// A client at address, on the main listener.
Peer peer_at(std::string address) {
  Peer peer;
  peer.address = std::move(address);
  return peer;
}

Reply streamed_reply(std::size_t fail_after = SIZE_MAX) {
  Reply reply;
  reply.head.result(http::status::ok);
  reply.head.content_length(whole_body().size());
  reply.stream = std::make_unique<PieceSource>(pieces, fail_after);
  reply.route = "blob";
  return reply;
}

// The access log goes to a file the test reads back.
class SessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    log_path_ = dir_.path() + "/access.log";
    fresh_log();
    settings_.header_timeout = 2s;
    settings_.idle_timeout = 2s;
  }
  void TearDown() override {
    std::string error;
    log::configure("error", "off", "off", error);
  }

  // An empty access log.
  void fresh_log() {
    std::remove(log_path_.c_str());
    std::string error;
    ASSERT_TRUE(log::configure("error", log_path_, "off", error)) << error;
  }

  std::vector<nlohmann::json> access_lines() const {
    std::vector<nlohmann::json> lines;
    std::ifstream in(log_path_);
    for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
    return lines;
  }

  double inflight() const {
    const std::string text = metrics_.render();
    auto at = text.find("\nocigate_inflight_streams ");
    return at == std::string::npos ? -1 : std::stod(text.substr(at + 26));
  }

  // Runs one session over a test stream holding `input` for it, bounded in time; returns what
  // the client received. fc: fails the n-th I/O step of the server side.
  std::string run(const std::string& input, beast::test::fail_count& fc, bool* finished, std::size_t* steps = nullptr) {
    asio::io_context ioc;
    beast::test::stream server(ioc, fc, input);
    beast::test::stream client(ioc);
    server.connect(client);
    server.write_size(9);  // several writes per reply, so each can be the one that fails
    server.close_remote();  // after the input, the client has nothing more to say
    beast::flat_buffer buffer;
    std::atomic<bool> in_request{false};
    Session session(server, buffer, settings_, metrics_, responder_, peer_at("192.0.2.1"), in_request);
    *finished = false;
    asio::co_spawn(ioc, [&]() -> asio::awaitable<void> {
      co_await session.run();
      *finished = true;
    }, asio::detached);
    ioc.run_for(5s);
    if (steps) *steps = server.nread() + server.nwrite();
    return std::string(client.str());
  }

  test::TempDir dir_;
  std::string log_path_;
  config::Server settings_;
  metrics::Metrics metrics_;
  FakeResponder responder_;
};

const std::string get_request = "GET /v2/ HTTP/1.1\r\nHost: mirror\r\n\r\n";

TEST_F(SessionTest, AnswersARequestAndLogsIt) {
  beast::test::fail_count never(1000);
  bool finished = false;
  const std::string out = run(get_request, never, &finished);
  ASSERT_TRUE(finished);
  EXPECT_EQ(out.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << out;
  EXPECT_NE(out.find("Server: ocigate\r\n"), std::string::npos);
  EXPECT_NE(out.find("Docker-Distribution-API-Version: registry/2.0\r\n"), std::string::npos);
  EXPECT_EQ(out.substr(out.size() - 5), "hello");
  auto lines = access_lines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["status"], 200);
  EXPECT_EQ(lines[0]["user"], "tester");
  EXPECT_EQ(lines[0]["completed"], true);
}

TEST_F(SessionTest, KeepAliveAnswersEveryPipelinedRequest) {
  beast::test::fail_count never(1000);
  bool finished = false;
  const std::string out = run(get_request + get_request + get_request, never, &finished);
  ASSERT_TRUE(finished);
  EXPECT_EQ(responder_.answered, 3);
  EXPECT_EQ(access_lines().size(), 3u);
}

// Every read or write step failed in turn: the session always ends (no hang, no throw), a
// streamed body is never handed out whole when a step of it failed, the log says the transfer
// did not complete, and the in-flight gauge comes back to zero.
TEST_F(SessionTest, AFailureAtAnyIoStepEndsTheSessionCleanly) {
  responder_.make = [] { return streamed_reply(); };
  const std::string body = whole_body();
  beast::test::fail_count never(1000);
  bool finished = false;
  std::size_t steps = 0;
  ASSERT_NE(run(get_request, never, &finished, &steps).find(body), std::string::npos);
  ASSERT_GT(steps, 4u) << "the header read, the head and several body writes";
  for (std::size_t n = 0; n < steps; ++n) {
    fresh_log();
    beast::test::fail_count fc(n);
    const std::string out = run(get_request, fc, &finished);
    ASSERT_TRUE(finished) << "step " << n << ": the session did not end";
    EXPECT_EQ(inflight(), 0) << "step " << n;
    const auto lines = access_lines();
    if (lines.empty()) continue;  // the request itself was never read (the first read failed)
    const bool whole = out.find(body) != std::string::npos;
    EXPECT_EQ(lines[0]["completed"], whole) << "step " << n << ": " << lines[0].dump();
  }
}

TEST_F(SessionTest, ABodySourceThatFailsMidwayCutsTheConnection) {
  responder_.make = [] { return streamed_reply(2); };
  beast::test::fail_count never(1000);
  bool finished = false;
  const std::string out = run(get_request + get_request, never, &finished);
  ASSERT_TRUE(finished);
  EXPECT_EQ(responder_.answered, 1) << "the connection is not reused after a cut body";
  EXPECT_EQ(out.find("third piece"), std::string::npos);
  EXPECT_NE(out.find("second piece"), std::string::npos);
  auto lines = access_lines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["completed"], false);
  EXPECT_EQ(lines[0]["error"], "the upstream broke off");
}

TEST_F(SessionTest, AHeadRequestGetsTheHeadOnly) {
  beast::test::fail_count never(1000);
  responder_.make = [] { return streamed_reply(); };
  bool finished = false;
  const std::string out = run("HEAD /v2/x/blobs/y HTTP/1.1\r\nHost: m\r\n\r\n", never, &finished);
  ASSERT_TRUE(finished);
  EXPECT_NE(out.find("Content-Length: " + std::to_string(whole_body().size())), std::string::npos);
  EXPECT_EQ(out.find("first piece"), std::string::npos);
}

TEST_F(SessionTest, AnOversizedHeaderIs431AndGarbageIs400BothCounted) {
  settings_.max_header_bytes = 1024;
  beast::test::fail_count never(1000);
  bool finished = false;
  std::string out = run("GET / HTTP/1.1\r\nX-Big: " + std::string(4000, 'a') + "\r\n\r\n", never, &finished);
  ASSERT_TRUE(finished);
  EXPECT_EQ(out.rfind("HTTP/1.1 431 ", 0), 0u) << out.substr(0, 80);
  EXPECT_NE(out.find("\"code\":\"UNSUPPORTED\""), std::string::npos);
  out = run("GARBAGE\r\n\r\n", never, &finished);
  ASSERT_TRUE(finished);
  EXPECT_EQ(out.rfind("HTTP/1.1 400 ", 0), 0u) << out.substr(0, 80);
  EXPECT_EQ(responder_.malformed_reasons, (std::vector<std::string>{"header_too_large", "unparsable"}));
  EXPECT_EQ(responder_.answered, 0);
}

TEST_F(SessionTest, PlainHttpOnAnHttpsOnlyListenerIsRefused) {
  beast::test::fail_count never(1000);
  asio::io_context ioc;
  beast::test::stream server(ioc, never, get_request);
  beast::test::stream client(ioc);
  server.connect(client);
  server.close_remote();
  beast::flat_buffer buffer;
  std::atomic<bool> in_request{false};
  Peer peer = peer_at("192.0.2.1");
  peer.refuse_plain = true;
  Session session(server, buffer, settings_, metrics_, responder_, peer, in_request);
  asio::co_spawn(ioc, session.run(), asio::detached);
  ioc.run_for(5s);
  EXPECT_EQ(std::string(client.str()).rfind("HTTP/1.1 403 ", 0), 0u);
  EXPECT_EQ(responder_.answered, 0);
}

// ---- over loopback TCP ----

struct TcpPair {
  asio::io_context ioc;
  tcp::socket client{ioc};
  beast::tcp_stream server{ioc};
  TcpPair() {
    tcp::acceptor acceptor(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    client.connect(acceptor.local_endpoint());
    acceptor.accept(server.socket());
  }
};

TEST_F(SessionTest, ASilentOrSlowClientIsCutAtTheHeaderDeadline) {
  settings_.header_timeout = 1s;
  for (const std::string& partial : {std::string(), std::string("GET /v2/ HTTP/1.1\r\nHost: slow")}) {
    TcpPair pair;
    if (!partial.empty()) asio::write(pair.client, asio::buffer(partial));
    beast::flat_buffer buffer;
    std::atomic<bool> in_request{false};
    Session session(pair.server, buffer, settings_, metrics_, responder_, peer_at("127.0.0.1"), in_request);
    bool finished = false;
    const auto started = std::chrono::steady_clock::now();
    asio::co_spawn(pair.ioc, [&]() -> asio::awaitable<void> {
      co_await session.run();
      finished = true;
    }, asio::detached);
    pair.ioc.run_for(10s);
    ASSERT_TRUE(finished) << "partial header of " << partial.size() << " bytes";
    EXPECT_GE(std::chrono::steady_clock::now() - started, 900ms);
    EXPECT_EQ(responder_.answered, 0);
    EXPECT_TRUE(responder_.malformed_reasons.empty()) << "a timeout is not malformed input";
  }
}

// A body in a file, handed out as file spans: over plain TCP the session sends them with sendfile(2).
class FileSpans final : public BodySource {
 public:
  FileSpans(int fd, std::uint64_t size) : fd_(fd), size_(size) {}
  asio::awaitable<Result<std::size_t>> next(std::string&) override {
    co_return Error{Errc::internal, "spans only"};
  }
  const char* source() const override { return "cache"; }
  bool has_spans() const override { return true; }
  asio::awaitable<Result<FileSpan>> next_span() override {
    const std::uint64_t length = std::min<std::uint64_t>(1 << 20, size_ - offset_);
    FileSpan span{fd_, offset_, length};
    offset_ += length;
    co_return span;
  }

 private:
  int fd_;
  std::uint64_t size_;
  std::uint64_t offset_ = 0;
};

TEST_F(SessionTest, AClientThatLeavesDuringSendfileEndsTheSessionWithAClientError) {
  const std::string path = dir_.path() + "/blob";
  const std::string bytes = test::pattern_bytes(16 << 20, 3);
  std::ofstream(path, std::ios::binary) << bytes;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  responder_.make = [fd, size = bytes.size()] {
    Reply reply;
    reply.head.result(http::status::ok);
    reply.head.content_length(size);
    reply.stream = std::make_unique<FileSpans>(fd, size);
    reply.route = "blob";
    return reply;
  };
  TcpPair pair;
  pair.client.set_option(asio::socket_base::receive_buffer_size(16 * 1024));
  pair.server.socket().set_option(asio::socket_base::send_buffer_size(16 * 1024));
  asio::write(pair.client, asio::buffer(get_request));
  beast::flat_buffer buffer;
  std::atomic<bool> in_request{false};
  Session session(pair.server, buffer, settings_, metrics_, responder_, peer_at("127.0.0.1"), in_request);
  bool finished = false;
  asio::co_spawn(pair.ioc, [&]() -> asio::awaitable<void> {
    co_await session.run();
    finished = true;
  }, asio::detached);
  // Read a little of the body, then leave: a reset, as a client that gave up.
  std::thread leaver([&] {
    char some[4096];
    boost::system::error_code ec;
    pair.client.read_some(asio::buffer(some), ec);
    pair.client.set_option(asio::socket_base::linger(true, 0), ec);
    pair.client.close(ec);
  });
  pair.ioc.run_for(15s);
  leaver.join();
  ::close(fd);
  ASSERT_TRUE(finished);
  auto lines = access_lines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["completed"], false);
  EXPECT_EQ(lines[0]["error"].get<std::string>().rfind("client: ", 0), 0u) << lines[0].dump();
  EXPECT_EQ(inflight(), 0);
}

}  // namespace
}  // namespace ocigate::server
