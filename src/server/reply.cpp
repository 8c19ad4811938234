#include "reply.hpp"

#include "ocigate/server/errors.hpp"

namespace ocigate::server {

Reply error_reply(const Error& error) {
  Reply reply;
  reply.head.result(http_status(error.code));
  reply.head.set(http::field::content_type, "application/json");
  if (error.code == Errc::too_many_requests) {
    reply.head.set(http::field::retry_after, std::to_string(error.retry_after ? error.retry_after : 60));
  }
  reply.body = error_body(error.code, error.message);
  reply.error = error.message;
  return reply;
}

Reply error_reply(Errc code, std::string message) { return error_reply(Error{code, std::move(message)}); }

Reply text_reply(http::status status, std::string body, std::string route) {
  Reply reply;
  reply.head.result(status);
  reply.head.set(http::field::content_type, "text/plain");
  reply.body = std::move(body);
  reply.route = std::move(route);
  return reply;
}

}  // namespace ocigate::server
