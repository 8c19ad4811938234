#pragma once
// What a handler answers: a response head, and either a small body or a body source that the
// session drains piece by piece (blobs). The session owns the socket; handlers never see it.

#include <cstdint>
#include <memory>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>

#include "ocigate/common/result.hpp"

namespace ocigate::server {

namespace http = boost::beast::http;

// Where the next piece of a body lies: length bytes at offset of an open file (the cache's file
// of the blob). A plain-TCP session sends such a piece with sendfile(2), without copying it
// through user space.
struct FileSpan {
  int fd = -1;
  std::uint64_t offset = 0;
  std::uint64_t length = 0;  // 0: the end of the body
};

class BodySource {
 public:
  virtual ~BodySource() = default;
  // Replaces out with the next piece of the body; returns its size, 0 at the end. An error means
  // the body cannot be completed: the session cuts the connection so the client never mistakes
  // a partial body for a whole one.
  virtual boost::asio::awaitable<Result<std::size_t>> next(std::string& out) = 0;
  // Where the bytes come from, for metrics: "cache" or "upstream".
  virtual const char* source() const = 0;
  // Whether next_span may be used instead of next (sources that must see every byte, to hash or
  // judge it, say no). A session uses one or the other for a whole body.
  virtual bool has_spans() const { return false; }
  // Like next, but says where the piece lies instead of copying it. The span stays valid until
  // the next call or the source's end.
  virtual boost::asio::awaitable<Result<FileSpan>> next_span() {
    co_return Error{Errc::internal, "this body source has no file spans"};
  }
  // Whether the whole body is already in place, so next and next_span never wait (a cached blob,
  // not a fetch being followed). The session then sends it corked: only full segments.
  virtual bool body_at_hand() const { return false; }
};

struct Reply {
  http::response<http::empty_body> head;
  std::string body;                     // used when stream is null
  std::unique_ptr<BodySource> stream;   // blobs
  bool close = false;                   // close the connection after this reply
  // For the access log and metrics.
  std::string route = "other";
  std::string name;
  std::string reference;
  std::string cache = "-";              // hit | miss | stale | -
  std::string upstream;
  std::string error;                    // internal reason when the reply is an error
  std::string verdict;                  // policy verdict for gated manifests: allow | warn | block
  std::string client;                   // the client a trusted proxy named; "" when it is the peer
};

// An OCI error answer: the status and JSON body server/errors maps the code to; a 429 carries
// Retry-After (the error's, else 60 s).
Reply error_reply(const Error& error);
Reply error_reply(Errc code, std::string message);
// A plain-text answer (probes, metrics) for the access log's route.
Reply text_reply(http::status status, std::string body, std::string route);

}  // namespace ocigate::server
