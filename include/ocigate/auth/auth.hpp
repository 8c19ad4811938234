#pragma once
// Who may pull what: client authentication (htpasswd bcrypt entries through the system's libcrypt,
// static bearer tokens kept only as SHA-256 hashes) and authorization (users and groups granted
// repository globs over "<upstream>/<repo>"). Pure apart from reading the htpasswd file in build();
// the server turns the decisions into 401/403 answers.
//
// Secrets never leave this module: no error message, log line or answer repeats a password, a
// token or a hash.

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <openssl/types.h>

#include "ocigate/common/lru_map.hpp"
#include "ocigate/common/result.hpp"
#include "ocigate/config/config.hpp"

namespace ocigate::auth {

// user -> bcrypt hash. Blank lines and '#' comments are skipped; anything that is not
// "<user>:$2y$…" / "$2b$…" / "$2a$…" is refused with "<source>:<line>: why" (never the hash).
Result<std::vector<std::pair<std::string, std::string>>> parse_htpasswd(std::string_view text,
                                                                       std::string_view source);

// Constant-time over equal lengths. Used for hashes, so lengths are public.
bool equal_constant_time(std::string_view a, std::string_view b);

// bcrypt through libcrypt's crypt_rn; false for a malformed hash. Slow on purpose (~50-300 ms).
bool bcrypt_verify(std::string_view password, const std::string& hash);

std::string sha256_hex(std::string_view bytes);

// The credentials a request carried, from its Authorization header.
struct Credentials {
  enum class Kind { none, basic, bearer, malformed } kind = Kind::none;
  std::string user;    // basic
  std::string secret;  // basic password or bearer token
};
// "Basic base64(user:pass)" (an empty user, as skopeo sends without credentials, is none) or
// "Bearer <token>"; other schemes are malformed.
Credentials parse_authorization(std::string_view header);

// The user a verified client certificate (server.tls.client_ca_file) authenticates as: its subject
// common name. Refused (an error saying why, naming no secret) when the subject has no CN, more than
// one, or one that is not a plain user name: 1-128 of A-Z a-z 0-9 . _ @ + -. The caller must have
// verified the certificate against the client CA; this only reads the name.
Result<std::string> certificate_user(const X509* certificate);

// Remembers recent password verifications, keyed by a hash of user and password, so a client
// pulling 50 layers costs one bcrypt, not 50. Bounded: when full, the least recently used entry goes.
class VerifyCache {
 public:
  VerifyCache(std::size_t capacity, std::chrono::seconds ttl) : ttl_(ttl), entries_(capacity) {}
  std::optional<bool> find(const std::string& key, std::chrono::steady_clock::time_point now);
  void store(const std::string& key, bool ok, std::chrono::steady_clock::time_point now);
  std::size_t size();

 private:
  struct Entry {
    bool ok;
    std::chrono::steady_clock::time_point expires;
  };
  std::chrono::seconds ttl_;
  std::mutex mutex_;
  LruMap<Entry> entries_;
};

class Authenticator {
 public:
  // Validates the globs (naming key and line) and reads the htpasswd file.
  static Result<std::shared_ptr<Authenticator>> build(const config::Auth& auth, const std::string& source);
  // For tests: htpasswd entries given directly.
  Authenticator(const config::Auth& auth, std::vector<std::pair<std::string, std::string>> users);

  // The authenticated user, "" for an anonymous request, nullopt when credentials were given and are
  // wrong (or malformed). Bearer tokens are checked at once; passwords through the cache or bcrypt.
  std::optional<std::string> authenticate(const Credentials& credentials);
  // True when the password check for these credentials needs bcrypt (not cached): the caller may
  // run authenticate() off its I/O thread.
  bool needs_slow_check(const Credentials& credentials);

  // May user ("" = anonymous) pull repo_key ("<upstream>/<repo>")?
  bool may_pull(const std::string& user, std::string_view repo_key) const;
  bool anonymous_allowed_somewhere() const { return !config_.anonymous.empty(); }
  bool protect_api() const { return config_.protect_api; }
  const std::string& realm() const { return config_.realm; }
  std::size_t user_count() const { return users_.size(); }

 private:
  std::string cache_key(const Credentials& credentials) const;
  bool in_group(const std::string& user, const std::string& group) const;

  config::Auth config_;
  std::unordered_map<std::string, std::string> users_;  // user -> bcrypt hash
  std::string dummy_hash_;  // checked for unknown users: same cost, never matches
  VerifyCache cache_;
};

}  // namespace ocigate::auth
