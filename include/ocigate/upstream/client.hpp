#pragma once
// An HTTP/1.1 client for one upstream registry: plain TCP or TLS (peer verification and SNI on),
// a keep-alive connection pool, the bearer-token dance and Basic auth, redirects for blob GETs
// (Authorization never forwarded to another host), timeouts, and retries with backoff for
// idempotent requests before any response is handed to the caller.
//
// Thread-safe: one Client per upstream is shared by every connection coroutine.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/verb.hpp>

#include "ocigate/common/result.hpp"
#include "ocigate/config/config.hpp"

namespace ocigate::upstream {

namespace asio = boost::asio;
namespace http = boost::beast::http;

struct Request {
  http::verb method = http::verb::get;
  std::string target;     // "/v2/library/alpine/manifests/3.19" (base_path is prepended by the client)
  std::string accept;     // Accept header, empty for none
  std::string range;      // Range header, empty for none
  std::string scope;      // token scope, "repository:library/alpine:pull"; empty for none
  bool follow_redirects = false;  // blob GETs only
};

// A response whose header has arrived. The body is read with read_some/read_all. Destroying a
// Response before its body ended closes the connection (it is not returned to the pool).
class Response {
 public:
  virtual ~Response() = default;
  virtual unsigned status() const = 0;
  virtual const http::fields& headers() const = 0;
  virtual std::optional<std::uint64_t> content_length() const = 0;
  // Reads the next body bytes into buffer; returns 0 once the body is complete (the connection
  // then goes back to the pool). Fails with upstream_timeout when no byte arrives within the
  // idle timeout, upstream_error on a reset or a short body.
  virtual asio::awaitable<Result<std::size_t>> read_some(asio::mutable_buffer buffer) = 0;
  // Reads the whole body; fails with size_invalid when it exceeds limit.
  virtual asio::awaitable<Result<std::string>> read_all(std::size_t limit) = 0;
  // Host that answered (differs from the upstream's after a redirect), for logs.
  virtual const std::string& served_by() const = 0;
  // Why authentication did not succeed when this is a 401 (token endpoint refused, no token in
  // its answer, ...), for logs; empty otherwise. Never holds credentials or tokens.
  virtual const std::string& auth_error() const {
    static const std::string none;
    return none;
  }
};

struct ClientStats {
  std::uint64_t requests = 0;
  std::uint64_t connections_opened = 0;
  std::uint64_t token_fetches = 0;
  std::uint64_t fetch_slot_timeouts = 0;  // requests refused after fetch_slot_timeout (upstream_busy)
};

// Seconds a client is asked to wait (Retry-After) after upstream_busy.
inline constexpr unsigned busy_retry_after = 5;

// Turns a host name and port into addresses to connect to. The default is getaddrinfo on the
// client's own lookup threads; tests pass their own. Errors are upstream_error with the reason.
using Resolve = std::function<asio::awaitable<Result<std::vector<asio::ip::tcp::endpoint>>>(std::string host,
                                                                                         std::string service)>;

class Client {
 public:
  virtual ~Client() = default;
  // Name lookups go through `resolve` (default: the system's); each wait for one is bounded by
  // the upstream's connect_timeout. An answer is reused by new connections for 30 s, and
  // forgotten when a connect to its addresses fails.
  static std::shared_ptr<Client> create(asio::any_io_executor executor, const config::Upstream& upstream,
                                        Resolve resolve = {});

  // Sends the request and returns once the response header arrived. Every status is returned as a
  // Response (the caller maps 404, 429, ...), except 401 after auth was tried, which is returned too.
  // Transport errors, timeouts and 502/503/504 are retried with backoff (3 attempts in all) for
  // GET and HEAD; errors that remain are upstream_error / upstream_timeout. With
  // max_concurrent_fetches, a request that finds no slot within fetch_slot_timeout fails with
  // upstream_busy (retry_after = busy_retry_after) before anything is sent.
  virtual asio::awaitable<Result<std::unique_ptr<Response>>> send(Request request) = 0;

  // With max_concurrent_fetches: the slots no request holds now, a hint for optional work such as
  // pull-ahead (it may change at once). Without a limit: nullopt.
  virtual std::optional<unsigned> idle_fetch_slots() const = 0;

  virtual const config::Upstream& upstream() const = 0;
  virtual ClientStats stats() const = 0;
};

}  // namespace ocigate::upstream
