#include "ocigate/auth/auth.hpp"

#include <crypt.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "ocigate/common/glob.hpp"

namespace ocigate::auth {

namespace {

constexpr std::size_t max_htpasswd_bytes = 16u << 20;
constexpr std::size_t verify_cache_capacity = 4096;

bool is_bcrypt(std::string_view hash) {
  // $2b$NN$ + 53 characters of salt and hash (./A-Za-z0-9).
  if (hash.size() != 60) return false;
  if (!(hash.substr(0, 4) == "$2y$" || hash.substr(0, 4) == "$2b$" || hash.substr(0, 4) == "$2a$")) return false;
  if (hash[4] < '0' || hash[4] > '3' || hash[5] < '0' || hash[5] > '9' || hash[6] != '$') return false;
  for (char c : hash.substr(7)) {
    if (!(c == '.' || c == '/' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) {
      return false;
    }
  }
  return true;
}

std::optional<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0 || text.size() > 8192) return std::nullopt;
  std::string out(text.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
  if (n < 0) return std::nullopt;
  // EVP_DecodeBlock counts padding as zero bytes.
  std::size_t pad = 0;
  if (!text.empty() && text.back() == '=') ++pad;
  if (text.size() > 1 && text[text.size() - 2] == '=') ++pad;
  out.resize(static_cast<std::size_t>(n) - pad);
  return out;
}

bool iequals_prefix(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(text[i])) != std::tolower(static_cast<unsigned char>(prefix[i]))) {
      return false;
    }
  }
  return true;
}

std::string process_salt() {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) return "ocigate";
  return std::string(reinterpret_cast<char*>(bytes), sizeof bytes);
}

}  // namespace

Result<std::vector<std::pair<std::string, std::string>>> parse_htpasswd(std::string_view text,
                                                                       std::string_view source) {
  std::vector<std::pair<std::string, std::string>> out;
  std::size_t line_number = 0;
  while (!text.empty()) {
    auto end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line.front() == '#') continue;
    const std::string where = std::string(source) + ":" + std::to_string(line_number) + ": ";
    auto colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      return Error{Errc::config_invalid, where + "not a '<user>:<bcrypt hash>' line"};
    }
    std::string user(line.substr(0, colon));
    std::string_view hash = line.substr(colon + 1);
    if (!is_bcrypt(hash)) {
      return Error{Errc::config_invalid,
                   where + "user '" + user + "': only bcrypt entries ($2y$/$2b$) are accepted; create them with htpasswd -B"};
    }
    for (auto& [existing, h] : out) {
      if (existing == user) return Error{Errc::config_invalid, where + "user '" + user + "' appears twice"};
    }
    out.emplace_back(std::move(user), std::string(hash));
  }
  return out;
}

bool equal_constant_time(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

bool bcrypt_verify(std::string_view password, const std::string& hash) {
  if (!is_bcrypt(hash) || password.size() > 1024 || password.find('\0') != std::string_view::npos) return false;
  const std::string phrase(password);
  struct crypt_data data;
  std::memset(&data, 0, sizeof data);
  const char* result = crypt_rn(phrase.c_str(), hash.c_str(), &data, sizeof data);
  // crypt_rn returns NULL (or a "*"-prefixed failure token) on error: never equal to a valid hash.
  const bool ok = result != nullptr && result[0] != '*' && equal_constant_time(result, hash);
  OPENSSL_cleanse(&data, sizeof data);
  return ok;
}

std::string sha256_hex(std::string_view bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &size, EVP_sha256(), nullptr);
  static const char* hex = "0123456789abcdef";
  std::string out;
  out.reserve(size * 2);
  for (unsigned i = 0; i < size; ++i) {
    out.push_back(hex[digest[i] >> 4]);
    out.push_back(hex[digest[i] & 0xf]);
  }
  return out;
}

Credentials parse_authorization(std::string_view header) {
  Credentials c;
  while (!header.empty() && header.front() == ' ') header.remove_prefix(1);
  while (!header.empty() && header.back() == ' ') header.remove_suffix(1);
  if (header.empty()) return c;
  if (iequals_prefix(header, "basic ")) {
    auto encoded = header.substr(6);
    while (!encoded.empty() && encoded.front() == ' ') encoded.remove_prefix(1);
    auto decoded = base64_decode(encoded);
    auto colon = decoded ? decoded->find(':') : std::string::npos;
    if (!decoded || colon == std::string::npos) {
      c.kind = Credentials::Kind::malformed;
      return c;
    }
    c.user = decoded->substr(0, colon);
    c.secret = decoded->substr(colon + 1);
    OPENSSL_cleanse(decoded->data(), decoded->size());
    // containers/image sends "Basic Og==" (":") when it has no credentials: that is anonymous.
    c.kind = c.user.empty() && c.secret.empty() ? Credentials::Kind::none : Credentials::Kind::basic;
    if (c.kind == Credentials::Kind::basic && c.user.empty()) c.kind = Credentials::Kind::malformed;
    return c;
  }
  if (iequals_prefix(header, "bearer ")) {
    auto token = header.substr(7);
    while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
    c.kind = token.empty() ? Credentials::Kind::malformed : Credentials::Kind::bearer;
    c.secret = std::string(token);
    return c;
  }
  c.kind = Credentials::Kind::malformed;
  return c;
}

std::optional<bool> VerifyCache::find(const std::string& key, std::chrono::steady_clock::time_point now) {
  std::lock_guard lock(mutex_);
  const Entry* entry = entries_.find(key);
  if (!entry) return std::nullopt;
  if (now >= entry->expires) {
    entries_.erase(key);
    return std::nullopt;
  }
  return entry->ok;
}

void VerifyCache::store(const std::string& key, bool ok, std::chrono::steady_clock::time_point now) {
  if (ttl_.count() == 0) return;
  std::lock_guard lock(mutex_);
  entries_.put(key, Entry{ok, now + ttl_});
}

std::size_t VerifyCache::size() {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

Result<std::shared_ptr<Authenticator>> Authenticator::build(const config::Auth& auth, const std::string& source) {
  auto check = [&](const config::Located& glob) -> std::optional<Error> {
    if (auto why = glob_error(glob.value)) {
      std::string where = source;
      if (glob.line) where += ':' + std::to_string(glob.line);
      return Error{Errc::config_invalid, where + ": " + glob.key + ": '" + glob.value + "' " + *why};
    }
    return std::nullopt;
  };
  for (const auto& glob : auth.anonymous) {
    if (auto e = check(glob)) return *e;
  }
  for (const auto& rule : auth.rules) {
    for (const auto& glob : rule.repositories) {
      if (auto e = check(glob)) return *e;
    }
  }
  std::vector<std::pair<std::string, std::string>> users;
  if (!auth.htpasswd_file.empty()) {
    std::ifstream in(auth.htpasswd_file, std::ios::binary);
    if (!in) return Error{Errc::config_invalid, auth.htpasswd_file + ": cannot read (auth.htpasswd_file)"};
    std::string text;
    char buffer[8192];
    while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
      text.append(buffer, static_cast<std::size_t>(in.gcount()));
      if (text.size() > max_htpasswd_bytes) {
        return Error{Errc::config_invalid, auth.htpasswd_file + ": larger than 16 MiB (auth.htpasswd_file)"};
      }
    }
    auto parsed = parse_htpasswd(text, auth.htpasswd_file);
    OPENSSL_cleanse(text.data(), text.size());
    if (!parsed) return parsed.error();
    users = std::move(*parsed);
  }
  return std::make_shared<Authenticator>(auth, std::move(users));
}

Authenticator::Authenticator(const config::Auth& auth, std::vector<std::pair<std::string, std::string>> users)
    : config_(auth), cache_(verify_cache_capacity, auth.cache_ttl) {
  for (auto& [user, hash] : users) users_.emplace(std::move(user), std::move(hash));
  // Unknown users cost one bcrypt of the same cost as a real entry, so timing does not tell which
  // user names exist. The all-dots salt and hash are valid and match no password.
  if (!users_.empty()) dummy_hash_ = users_.begin()->second.substr(0, 7) + std::string(53, '.');
}

std::string Authenticator::cache_key(const Credentials& credentials) const {
  // A per-process salt: the map never holds anything that could be matched against a password list.
  static const std::string salt = process_salt();
  std::string material = salt;
  material += credentials.user;
  material.push_back('\0');
  material += credentials.secret;
  auto key = sha256_hex(material);
  OPENSSL_cleanse(material.data(), material.size());
  return key;
}

bool Authenticator::needs_slow_check(const Credentials& credentials) {
  if (credentials.kind != Credentials::Kind::basic || users_.empty()) return false;
  return !cache_.find(cache_key(credentials), std::chrono::steady_clock::now()).has_value();
}

std::optional<std::string> Authenticator::authenticate(const Credentials& credentials) {
  switch (credentials.kind) {
    case Credentials::Kind::none: return std::string();
    case Credentials::Kind::malformed: return std::nullopt;
    case Credentials::Kind::bearer: {
      const auto hash = sha256_hex(credentials.secret);
      const config::AuthToken* found = nullptr;
      for (const auto& token : config_.tokens) {
        if (equal_constant_time(hash, token.sha256)) found = &token;  // no early exit: same time for all
      }
      if (found) return found->user;
      return std::nullopt;
    }
    case Credentials::Kind::basic: {
      // A configured token also works as the password of its user: `docker login -u ci -p <token>`.
      const auto token_hash = sha256_hex(credentials.secret);
      for (const auto& token : config_.tokens) {
        if (token.user == credentials.user && equal_constant_time(token_hash, token.sha256)) return token.user;
      }
      if (users_.empty()) return std::nullopt;
      auto user = users_.find(credentials.user);
      const bool known = user != users_.end();
      const auto key = cache_key(credentials);
      const auto now = std::chrono::steady_clock::now();
      auto cached = cache_.find(key, now);
      bool ok = cached ? *cached : bcrypt_verify(credentials.secret, known ? user->second : dummy_hash_);
      if (!cached) cache_.store(key, ok, now);
      if (ok && known) return credentials.user;
      return std::nullopt;
    }
  }
  return std::nullopt;
}

bool Authenticator::in_group(const std::string& user, const std::string& group) const {
  for (const auto& [name, members] : config_.groups) {
    if (name != group) continue;
    for (const auto& member : members) {
      if (member == user) return true;
    }
  }
  return false;
}

bool Authenticator::may_pull(const std::string& user, std::string_view repo_key) const {
  for (const auto& glob : config_.anonymous) {
    if (glob_match(glob.value, repo_key)) return true;
  }
  if (user.empty()) return false;
  for (const auto& rule : config_.rules) {
    bool applies = false;
    for (const auto& u : rule.users) applies = applies || u == user || u == "*";
    for (const auto& g : rule.groups) applies = applies || in_group(user, g);
    if (!applies) continue;
    for (const auto& glob : rule.repositories) {
      if (glob_match(glob.value, repo_key)) return true;
    }
  }
  return false;
}

Result<std::string> certificate_user(const X509* certificate) {
  if (!certificate) return Error{Errc::unauthorized, "no client certificate"};
  const X509_NAME* subject = X509_get_subject_name(certificate);
  if (!subject) return Error{Errc::unauthorized, "client certificate without a subject"};
  const int first = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (first < 0) return Error{Errc::unauthorized, "client certificate subject has no common name (CN)"};
  if (X509_NAME_get_index_by_NID(subject, NID_commonName, first) >= 0) {
    return Error{Errc::unauthorized, "client certificate subject has more than one common name (CN): ambiguous"};
  }
  const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, first));
  unsigned char* utf8 = nullptr;
  const int length = data ? ASN1_STRING_to_UTF8(&utf8, data) : -1;
  if (length < 0) return Error{Errc::unauthorized, "client certificate common name (CN) is not text"};
  std::string name(reinterpret_cast<const char*>(utf8), static_cast<std::size_t>(length));
  OPENSSL_free(utf8);
  // A user name as grants and logs know it: no spaces, controls, ':' or '/' that could pass for
  // another user or a path.
  auto plain = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '@' || c == '+' || c == '-';
  };
  if (name.empty() || name.size() > 128 || !std::all_of(name.begin(), name.end(), plain)) {
    return Error{Errc::unauthorized,
                 "client certificate common name (CN) is not a plain user name (1-128 of A-Z a-z 0-9 . _ @ + -)"};
  }
  return name;
}

}  // namespace ocigate::auth
