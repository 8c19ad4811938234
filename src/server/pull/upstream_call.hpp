#pragma once
// What every pull flow does with the upstream and its answers: send a request (counted), read
// a header, label a manifest.

#include <memory>
#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>

#include "ocigate/common/result.hpp"
#include "ocigate/metrics/metrics.hpp"
#include "ocigate/upstream/client.hpp"
#include "pull/routing.hpp"
#include "reply.hpp"

namespace ocigate::server {

// Sends request to the target's upstream; the answer's status (or "error") and latency are counted.
boost::asio::awaitable<Result<std::unique_ptr<upstream::Response>>> send_upstream(metrics::Metrics& metrics,
                                                                                  const Target& target,
                                                                                  upstream::Request request);

// A response header's value, "" when absent.
std::string response_header(const upstream::Response& response, http::field field);
std::string response_header(const upstream::Response& response, std::string_view name);

// The manifest media type a Content-Type names (parameters stripped), "" when it names none.
std::string manifest_type_from(std::string content_type);

// `299 - "<text>"` with quotes and backslashes escaped: a Warning header value.
std::string warning_value(std::string_view text);

// "repository:<repo>:pull", the token scope of a pull.
std::string scope_for(const std::string& repo);

}  // namespace ocigate::server
