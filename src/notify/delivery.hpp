#pragma once
// One POST to one webhook: look the name up, check the addresses, connect, TLS, send, read the
// status. No retries here; the outcome says whether another attempt may help.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>

#include "ocigate/config/config.hpp"
#include "ocigate/upstream/client.hpp"

namespace ocigate::notify::detail {

// A webhook's fixed setup, made once at start.
struct Target {
  const config::Webhook* webhook = nullptr;
  boost::asio::ssl::context* tls = nullptr;  // set for https
  // Address classes (net::class_bit) the webhook may reach besides global ones: loopback or
  // private when its URL names such an address (or localhost); never link-local or special.
  std::uint8_t home_classes = 0;
};

std::uint8_t home_classes(const config::Webhook& webhook);

struct Post {
  std::string_view event;     // X-Ocigate-Event
  std::string_view delivery;  // X-Ocigate-Delivery: the same for every attempt of one event
  std::string_view body;
};

struct Attempt {
  enum class Result : std::uint8_t { delivered, retry, give_up };
  Result result = Result::give_up;
  std::string reason;  // why not delivered; never the URL or the secret
  std::optional<std::chrono::milliseconds> retry_after;  // from a 429/5xx answer
};

// Runs on the caller's executor; bounded by webhook->timeout in all.
boost::asio::awaitable<Attempt> post_once(const Target& target, const upstream::Resolve& resolve, const Post& post);

// Retry-After as delta-seconds or an HTTP-date (RFC 9110 10.2.3), relative to now; nullopt when
// unreadable.
std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view value,
                                                           std::chrono::system_clock::time_point now);

}  // namespace ocigate::notify::detail
