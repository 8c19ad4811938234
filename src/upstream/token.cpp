#include "token.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "connection.hpp"

namespace ocigate::upstream::detail {

namespace {

constexpr long default_token_lifetime = 60;  // seconds, when the answer gives no expires_in

}  // namespace

std::string basic_credentials(const std::string& user, const std::string& password) {
  return "Basic " + base64(user + ":" + password);
}

std::optional<std::string> TokenCache::find(const std::string& scope) {
  std::lock_guard lock(mutex_);
  auto it = tokens_.find(scope);
  if (it == tokens_.end()) return std::nullopt;
  if (std::chrono::steady_clock::now() < it->second.expires) return it->second.authorization;
  tokens_.erase(it);
  return std::nullopt;
}

Result<std::string> TokenCache::remember(const std::string& body, const std::string& scope, const std::string& where) {
  auto json = nlohmann::json::parse(body, nullptr, false);
  if (!json.is_object()) return Error{Errc::unauthorized, where + " answered something other than a JSON object"};
  std::string token;
  for (const char* key : {"token", "access_token"}) {
    auto it = json.find(key);
    if (it != json.end() && it->is_string() && !it->get_ref<const std::string&>().empty()) {
      token = it->get<std::string>();
      break;
    }
  }
  if (token.empty()) return Error{Errc::unauthorized, where + " answered without a token"};
  if (!header_safe(token)) return Error{Errc::unauthorized, where + " answered a token with control characters"};
  long lifetime = default_token_lifetime;
  if (auto it = json.find("expires_in"); it != json.end() && it->is_number() && it->get<double>() > 0) {
    lifetime = static_cast<long>(std::min(it->get<double>(), 86400.0));
  }
  std::string authorization = "Bearer " + token;
  // A tenth off the lifetime so a token never expires between our check and the upstream's.
  const auto expires = std::chrono::steady_clock::now() + std::chrono::seconds(lifetime - lifetime / 10);
  std::lock_guard lock(mutex_);
  tokens_[scope] = Token{authorization, expires};
  return authorization;
}

}  // namespace ocigate::upstream::detail
