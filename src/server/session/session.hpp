#pragma once
// One client connection's requests, read and answered in turn: a header limit and deadline per
// request (slowloris), the answer from a Responder, then the reply written in one call or a body
// streamed piece by piece (sendfile(2) over plain TCP, corked where that saves short segments).
// A template over the stream: plain TCP, TLS, and Beast's test::stream in the tests, where a
// fail_count breaks each I/O step in turn.

#include <atomic>
#include <chrono>
#include <string>
#include <string_view>
#include <type_traits>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/span_body.hpp>
#include <boost/beast/http/write.hpp>
#include <nlohmann/json.hpp>

#include "ocigate/config/config.hpp"
#include "ocigate/metrics/metrics.hpp"
#include "ocigate/server/errors.hpp"
#include "ocigate/server/log.hpp"
#include "reply.hpp"
#include "session/send_file.hpp"

namespace ocigate::server {

using Request = http::request<http::empty_body>;

// Who is at the other end of a connection, and on which listener.
struct Peer {
  std::string address;
  bool metrics_only = false;  // the metrics listener
  std::string cert_user;      // the user a verified client certificate names, "" for none
  bool refuse_plain = false;  // plain HTTP reached a listener that serves HTTPS only
};

// What answers a connection's requests (the App: front door, local routes, the proxy).
class Responder {
 public:
  virtual ~Responder() = default;
  // user: the authenticated user, for the access log.
  virtual boost::asio::awaitable<Reply> answer(const Request& request, const Peer& peer, std::string& user) = 0;
  // A request that did not parse, or was too large to: counted against the address's budget.
  virtual void malformed(const std::string& peer, std::string_view reason) = 0;
  virtual bool stopping() const = 0;
};

// Errors that only mean the peer went away or stayed silent: no log line.
bool benign(const boost::beast::error_code& ec);

template <class Stream>
class Session {
 public:
  // in_request: true while a request is being answered (shutdown closes only idle connections).
  Session(Stream& stream, boost::beast::flat_buffer& buffer, const config::Server& settings,
          metrics::Metrics& metrics, Responder& responder, Peer peer, std::atomic<bool>& in_request)
      : stream_(stream),
        buffer_(buffer),
        settings_(settings),
        metrics_(metrics),
        responder_(responder),
        peer_(std::move(peer)),
        in_request_(in_request) {}

  // Answers requests until the client closes, a reply closes the connection, the idle timeout
  // passes, or the server stops.
  boost::asio::awaitable<void> run();

 private:
  static constexpr auto use_tuple = boost::asio::as_tuple(boost::asio::use_awaitable);
  static constexpr bool plain = std::is_same_v<Stream, boost::beast::tcp_stream>;

  void deadline(std::chrono::steady_clock::duration after);
  void cork(bool on);
  boost::asio::awaitable<void> refuse_malformed(const boost::beast::error_code& ec);
  boost::asio::awaitable<boost::beast::error_code> write_with_body(const Reply& reply);
  boost::asio::awaitable<bool> write_reply(const Request& request, Reply& reply);
  boost::asio::awaitable<bool> stream_body(Reply& reply, bool whole);
  boost::asio::awaitable<bool> send_spans(Reply& reply);
  boost::asio::awaitable<bool> copy_pieces(Reply& reply, bool push_each);
  void finish_request(const Request& request, const Reply& reply, const std::string& user,
                      std::chrono::steady_clock::time_point started, bool completed);

  Stream& stream_;
  boost::beast::flat_buffer& buffer_;
  const config::Server& settings_;
  metrics::Metrics& metrics_;
  Responder& responder_;
  Peer peer_;
  std::atomic<bool>& in_request_;
};

template <class Stream>
void Session<Stream>::deadline(std::chrono::steady_clock::duration after) {
  auto& lowest = boost::beast::get_lowest_layer(stream_);
  if constexpr (requires { lowest.expires_after(after); }) lowest.expires_after(after);
}

template <class Stream>
void Session<Stream>::cork(bool on) {
  auto& lowest = boost::beast::get_lowest_layer(stream_);
  if constexpr (requires { lowest.socket(); }) set_cork(lowest.socket(), on);
}

template <class Stream>
boost::asio::awaitable<void> Session<Stream>::run() {
  bool first = true;
  while (!responder_.stopping()) {
    http::request_parser<http::empty_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(settings_.max_header_bytes));
    deadline(first ? settings_.header_timeout : settings_.idle_timeout);
    auto [read_ec, read_n] = co_await http::async_read_header(stream_, buffer_, parser, use_tuple);
    (void)read_n;
    if (read_ec) {
      // A TLS ClientHello (0x16) on the plain listener is a client probing for https, as
      // skopeo and containerd do before falling back to http: not malformed, just close.
      const bool tls_probe = buffer_.size() > 0 && static_cast<const unsigned char*>(buffer_.data().data())[0] == 0x16;
      if (!benign(read_ec) && read_ec != http::error::partial_message && !tls_probe) co_await refuse_malformed(read_ec);
      co_return;
    }
    in_request_ = true;
    first = false;
    auto started = std::chrono::steady_clock::now();
    const auto& req = parser.get();
    std::string user;
    Reply reply;
    if (peer_.refuse_plain) {
      reply = error_reply(Errc::denied, "plain HTTP is refused: this mirror serves HTTPS only");
      reply.close = true;
    } else {
      reply = co_await responder_.answer(req, peer_, user);
    }
    if (!parser.is_done()) reply.close = true;  // a body we will not read: do not reuse the connection
    bool completed = co_await write_reply(req, reply);
    finish_request(req, reply, user, started, completed);
    in_request_ = false;
    if (!completed || reply.close || !req.keep_alive()) co_return;
  }
}

template <class Stream>
boost::asio::awaitable<void> Session<Stream>::refuse_malformed(const boost::beast::error_code& ec) {
  // The header outgrew the parser's limit, or the read buffer sized to it.
  const bool too_large = ec == http::error::header_limit || ec == http::error::buffer_overflow;
  responder_.malformed(peer_.address, too_large ? "header_too_large" : "unparsable");
  log::info("malformed request", {{"client", peer_.address}, {"error", ec.message()}});
  // UNSUPPORTED: the spec's code for "an invalid set of parameters"; no name was read, so
  // NAME_INVALID would point the client at the wrong thing.
  Reply reply = error_reply(Errc::unsupported, too_large ? "request header larger than " +
                                                               std::to_string(settings_.max_header_bytes) +
                                                               " bytes (server.max_header_bytes)"
                                                         : "malformed HTTP request: " + ec.message());
  reply.head.result(too_large ? http::status::request_header_fields_too_large : http::status::bad_request);
  if (!settings_.instance.empty()) reply.head.set("X-Ocigate-Instance", settings_.instance);
  reply.head.version(11);
  reply.head.keep_alive(false);
  reply.head.content_length(reply.body.size());
  deadline(std::chrono::seconds(5));
  co_await write_with_body(reply);
}

// The head and an in-memory body in one write: one segment for a small reply, not two.
template <class Stream>
boost::asio::awaitable<boost::beast::error_code> Session<Stream>::write_with_body(const Reply& reply) {
  http::response<http::span_body<const char>> message(
      reply.head.base(), http::span_body<const char>::value_type(reply.body.data(), reply.body.size()));
  auto [ec, n] = co_await http::async_write(stream_, message, use_tuple);
  (void)n;
  co_return ec;
}

// Writes the head and body. Returns false when the connection must be dropped: the client left,
// stalled past the idle timeout, or the body source failed mid-way (the cut tells the client the
// body is incomplete).
template <class Stream>
boost::asio::awaitable<bool> Session<Stream>::write_reply(const Request& req, Reply& reply) {
  auto& head = reply.head;
  head.version(req.version());
  head.set(http::field::server, "ocigate");
  head.set("Docker-Distribution-API-Version", "registry/2.0");
  if (!settings_.instance.empty()) head.set("X-Ocigate-Instance", settings_.instance);
  if (!head.has_content_length() && !reply.stream) head.content_length(reply.body.size());
  head.keep_alive(req.keep_alive() && !reply.close && !responder_.stopping());
  const bool send_body = req.method() != http::verb::head;
  deadline(settings_.idle_timeout);
  if (send_body && !reply.stream) co_return !co_await write_with_body(reply);
  // A cached body is corked from its head on, so a small blob's head and body share a segment.
  const bool whole = send_body && reply.stream->body_at_hand();
  if (whole) cork(true);
  http::response_serializer<http::empty_body> serializer(head);
  auto [ec, n] = co_await http::async_write_header(stream_, serializer, use_tuple);
  (void)n;
  if (ec) co_return false;
  if (!send_body) co_return true;
  co_return co_await stream_body(reply, whole);
}

// Bodies go out corked where that saves short segments (send_file.hpp, set_cork): a body
// already whole in the cache (corked by the caller from its head on), uncorked at its end; and
// over TLS, which writes each 16 KiB record with a call of its own, a fetch being followed too,
// uncorked after each piece so no byte waits for the next. A false return drops the connection.
template <class Stream>
boost::asio::awaitable<bool> Session<Stream>::stream_body(Reply& reply, bool whole) {
  metrics_.inflight_streams().Increment();
  const bool push_each = !plain && !whole;
  if (push_each) cork(true);
  bool ok = true;
  if constexpr (plain) {
    ok = reply.stream->has_spans() ? co_await send_spans(reply) : co_await copy_pieces(reply, false);
  } else {
    ok = co_await copy_pieces(reply, push_each);
  }
  if (ok && (whole || push_each)) cork(false);
  metrics_.inflight_streams().Decrement();
  co_return ok;
}

// Plain TCP and a body in the cache's files: each piece goes from the page cache to the socket
// with sendfile(2).
template <class Stream>
boost::asio::awaitable<bool> Session<Stream>::send_spans(Reply& reply) {
  if constexpr (plain) {
    for (;;) {
      auto span = co_await reply.stream->next_span();
      if (!span) {
        reply.error = span.error().message;
        co_return false;
      }
      if (span->length == 0) co_return true;
      if (auto sent = co_await send_file(stream_.socket(), *span, settings_.idle_timeout); !sent) {
        reply.error = sent.error().message;
        co_return false;
      }
      metrics_.record_bytes_served(reply.stream->source(), static_cast<double>(span->length));
    }
  }
  co_return false;
}

// push_each: the socket is corked; send what each piece leaves held before waiting for the next.
template <class Stream>
boost::asio::awaitable<bool> Session<Stream>::copy_pieces(Reply& reply, bool push_each) {
  std::string piece;
  for (;;) {
    auto n = co_await reply.stream->next(piece);
    if (!n) {
      reply.error = n.error().message;
      co_return false;
    }
    if (*n == 0) co_return true;
    deadline(settings_.idle_timeout);
    auto [ec, written] = co_await boost::asio::async_write(stream_, boost::asio::buffer(piece.data(), *n), use_tuple);
    if (ec) {
      reply.error = "client: " + ec.message();
      co_return false;
    }
    metrics_.record_bytes_served(reply.stream->source(), static_cast<double>(written));
    if (push_each) {
      cork(false);
      cork(true);
    }
  }
}

template <class Stream>
void Session<Stream>::finish_request(const Request& req, const Reply& reply, const std::string& user,
                                     std::chrono::steady_clock::time_point started, bool completed) {
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const unsigned status = reply.head.result_int();
  metrics_.record_request(reply.route, std::string(req.method_string()), status, seconds);
  nlohmann::json line = {
      {"client", reply.client.empty() ? peer_.address : reply.client},
      {"method", std::string(req.method_string())},
      {"route", reply.route},
      {"name", reply.name},
      {"reference", reply.reference},
      {"status", status},
      {"bytes", reply.head.has_content_length() ? std::stoull(std::string(reply.head[http::field::content_length]))
                                                : reply.body.size()},
      {"duration_ms", seconds * 1000.0},
      {"cache", reply.cache},
      {"upstream", reply.upstream},
      {"completed", completed},
  };
  if (!reply.error.empty()) line["error"] = reply.error;
  if (!reply.verdict.empty()) line["verdict"] = reply.verdict;
  if (!user.empty()) line["user"] = user;
  if (!reply.client.empty()) line["via"] = peer_.address;  // the trusted proxy it came through
  log::access(line);
}

}  // namespace ocigate::server
