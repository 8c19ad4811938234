#pragma once
// The registry token dance's state: Bearer tokens the token service issued, by scope, each kept a
// tenth short of its lifetime; and the Basic credentials of an upstream. Internal to
// ocigate_upstream (the client answers 401 challenges with these).

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "ocigate/common/result.hpp"

namespace ocigate::upstream::detail {

// "Basic <base64(user:password)>".
std::string basic_credentials(const std::string& user, const std::string& password);

class TokenCache {
 public:
  // The Authorization value of a live token for scope.
  std::optional<std::string> find(const std::string& scope);
  // Reads a token service's answer ({"token"|"access_token", "expires_in"}) and keeps its token for
  // scope; the Authorization value, or why the answer is unusable (Errc::unauthorized, naming where).
  Result<std::string> remember(const std::string& body, const std::string& scope, const std::string& where);

 private:
  struct Token {
    std::string authorization;
    std::chrono::steady_clock::time_point expires;
  };
  std::mutex mutex_;
  std::map<std::string, Token> tokens_;
};

}  // namespace ocigate::upstream::detail
