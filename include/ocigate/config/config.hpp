#pragma once
// ocigate's configuration: YAML (JSON is valid YAML). Every key is known; an unknown key, a bad
// size or duration, or a missing upstream refuses the whole file with "<file>:<line>: <key>: why".

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ocigate/common/network.hpp"
#include "ocigate/common/result.hpp"

namespace YAML {
class Node;
}

namespace ocigate::config {

struct Endpoint {
  std::string host;        // "0.0.0.0", "127.0.0.1", "::1"
  std::uint16_t port = 0;  // 0 = pick a free port (tests)
};

struct Upstream {
  std::string name;         // also the path prefix clients use: /v2/<name>/<repo>/...
  std::string url;          // as written
  bool tls = true;          // https
  std::string host;
  std::uint16_t port = 443;
  std::string base_path;    // path prefix of the registry API on that host, usually empty
  std::string username;
  std::string password;     // read from password_file at load time; never logged
  std::string password_file;
  std::string ca_file;      // extra CA bundle (PEM) trusted for this upstream
  std::chrono::seconds tag_ttl{300};
  std::chrono::seconds connect_timeout{10};   // each of: the name lookup, the TCP connect, the TLS handshake
  std::chrono::seconds response_timeout{30};  // until the response header arrives
  std::chrono::seconds idle_timeout{60};      // between body reads
  unsigned max_connections = 32;              // pooled keep-alive connections
  unsigned max_concurrent_fetches = 0;        // requests in flight to this upstream at once; 0 = unlimited
  // Longest wait for one of those slots; past it the client gets 503 UNAVAILABLE with Retry-After,
  // so a burst queues briefly instead of holding every client until its own timeout.
  std::chrono::seconds fetch_slot_timeout{30};
  // Once a client GETs a layer of an image whose manifest it was served, the image's other layers
  // are fetched into the cache ahead of it, this many at a time; 0 = off.
  unsigned pull_ahead = 2;
  bool implicit_library = false;  // Docker Hub: "alpine" means "library/alpine"; default true for docker.io
};

// A value checked after loading (by another module), kept with where it was written.
struct Located {
  std::string value;
  std::string key;  // "auth.rules[0].repositories[1]"
  int line = 0;     // 1-based; 0 = unknown
};

// server.tls: serve HTTPS on the main listener (TLS 1.2+). Files are re-read on SIGHUP.
struct Tls {
  std::string cert_file;       // PEM chain, leaf first
  std::string key_file;        // PEM private key
  std::string client_ca_file;  // set: clients must present a certificate signed by this CA (mTLS)
  bool allow_plain_http = false;  // also answer plain HTTP on the same port (refused by default)
  // With client_ca_file: a verified client certificate's subject CN authenticates the request as
  // that user (auth grants apply) unless the request carries an Authorization header, which wins.
  // false: certificates only admit the connection; users log in as before.
  bool client_cert_user = true;
};

struct Server {
  // This replica's name: the X-Ocigate-Instance response header, the access and audit lines, and
  // ocigate_instance_info, so a decision can be traced to the replica that made it. Default: the
  // host name. 1-64 of A-Z a-z 0-9 . _ -.
  std::string instance;
  Endpoint listen{"0.0.0.0", 5000};
  std::optional<Tls> tls;
  std::optional<Endpoint> metrics_listen;  // /metrics on its own listener; default: same listener
  unsigned threads = 0;                    // 0 = one per allowed CPU
  bool pin_threads = false;                // each I/O thread on its own CPU, with one thread per allowed CPU
  std::size_t max_header_bytes = 16 * 1024;
  std::chrono::seconds header_timeout{15};  // a request's header must arrive within this (slowloris)
  std::chrono::seconds idle_timeout{60};    // keep-alive idle and stalled writes
  std::chrono::seconds shutdown_grace{30};  // SIGTERM: in-flight streams get this long
  unsigned malformed_per_minute = 60;       // malformed requests per client address before 429
  std::size_t max_uri_bytes = 8 * 1024;     // request target limit (414 above it)
  double requests_per_second = 0;           // per client address (token bucket); 0 = no limit
  unsigned burst = 0;                       // bucket size; 0 = 2 * requests_per_second (at least 1)
  unsigned max_connections_per_client = 0;  // open connections per client address; 0 = no limit
  // Load balancers and proxies in front: a request from one of these names its client in
  // X-Forwarded-For. The limits, the access and audit lines and the webhooks then use that client;
  // connections from them are not capped per address. Empty: the header is ignored.
  std::vector<net::Network> trusted_proxies;
};

// auth: who may pull what. Absent = everyone may pull everything (the default, as before).
struct AuthToken {
  std::string user;    // the identity the token authenticates as
  std::string sha256;  // lowercase hex SHA-256 of the token; the token itself is never stored
};

struct AuthRule {
  std::vector<std::string> users;
  std::vector<std::string> groups;
  std::vector<Located> repositories;  // globs over "<upstream>/<repo>"
};

struct Auth {
  std::string realm = "ocigate";
  std::string htpasswd_file;  // bcrypt entries only; re-read on SIGHUP
  std::vector<AuthToken> tokens;
  std::vector<std::pair<std::string, std::vector<std::string>>> groups;  // group -> members
  std::vector<Located> anonymous;  // globs anyone may pull without credentials
  std::vector<AuthRule> rules;     // grants; no rule matching = 403 DENIED
  bool protect_api = false;        // /ocigate/v1/verdicts and /metrics need credentials too
  std::chrono::seconds cache_ttl{300};  // how long a verified password is remembered
};

// notify.webhooks: people told about block events (the notify module delivers them). A URL may
// itself be a secret (a Slack incoming-webhook URL is one): messages name a webhook by its key and
// host, never by its URL.
enum class WebhookFormat : std::uint8_t {
  json,   // the event's fields as a JSON object
  slack,  // {"text": "..."}: a readable message for a Slack (or compatible) incoming webhook
};

// The event names a webhook may subscribe to, as written in `events`.
inline constexpr std::string_view webhook_event_names[] = {"block", "warn", "digest_mismatch",
                                                           "policy_reload_failed"};

struct Webhook {
  std::string key;           // "notify.webhooks[0]", for messages
  std::string url;           // as written; never logged
  bool tls = true;           // https; plain http only to a loopback host
  std::string host;          // IPv6 without brackets
  std::uint16_t port = 443;
  std::string target = "/";  // path and query the POST goes to
  std::vector<std::string> events;  // a non-empty subset of webhook_event_names
  std::string secret_file;
  std::string secret;        // read from secret_file at load time; never logged; empty = unsigned
  std::string ca_file;       // extra CA bundle (PEM) trusted for this webhook, besides the system's
  std::chrono::milliseconds timeout{5000};  // one delivery attempt: lookup, connect, TLS, request, answer
  WebhookFormat format = WebhookFormat::json;
  // An event that repeats one sent within this long (the same decision about the same image, the
  // same wrong bytes, the same refused reload) is held back and counted; the next one sent says
  // how many were. 0s sends every event.
  std::chrono::seconds repeat_window{600};
};

struct Notify {
  std::vector<Webhook> webhooks;  // empty: nobody is notified
};

struct Storage {
  std::string path = "./ocigate-data";
  std::uint64_t max_size = 20ull << 30;
  std::uint32_t chunk_size = 1u << 20;
  bool verify_reads = false;  // rehash whole-blob reads from the cache (server: ReadCheck)
};

struct Log {
  std::string access_log = "-";  // "-" = stdout, else a file path; "off" disables
  std::string audit_log = "-";   // policy decisions, same forms
  std::string level = "info";    // debug | info | warn | error
};

// vulnerabilities: the offline OSV database the `vulnerabilities` check matches images against.
struct VulnerabilitySource {
  std::string url;          // https:// (http:// only to a loopback host), as written
  bool tls = true;
  std::string host;         // without brackets for IPv6
  std::uint16_t port = 443;
  std::string target;       // the encoded path and query to GET
  std::string file;         // where it goes in the database directory: "Debian/all.zip"
  int line = 0;             // 1-based; 0 = unknown
};

struct Vulnerabilities {
  std::string database;                     // directory of OSV records and all.zip files (read at start and on SIGHUP)
  std::vector<VulnerabilitySource> sources;  // what `ocigate vulndb update` downloads into it
  std::chrono::seconds max_age{72 * 3600};  // older: the check answers "unknown"
};

struct Config {
  std::string source = "<built-in default>";  // file name, for messages
  Server server;
  Storage storage;
  std::vector<Upstream> upstreams;
  std::string default_upstream;
  Log log;
  std::optional<Auth> auth;
  std::optional<Vulnerabilities> vulnerabilities;  // absent: no database, the check says "unknown"
  Notify notify;
  // The `policy:` section as written, validated by the policy module (policy::parse_policy);
  // null when absent. Shared and never changed, so copies of a Config are cheap.
  std::shared_ptr<const YAML::Node> policy;
  // The whole file as parsed, for telling what a reload changed; null for the built-in default.
  std::shared_ptr<const YAML::Node> document;

  const Upstream* find_upstream(std::string_view name) const;
};

// The built-in default: listen 0.0.0.0:5000, upstream docker.io -> https://registry-1.docker.io,
// storage ./ocigate-data.
Config defaults();

// Parses YAML text; source names the file in error messages.
Result<Config> parse(std::string_view text, std::string_view source);
Result<Config> load_file(const std::string& path);

// What SIGHUP does not apply: the settings other than policy, auth, notify, vulnerabilities and
// server.trusted_proxies whose values differ between the running configuration and a reloaded file,
// as key paths ("server.requests_per_second", "upstreams", "storage.max_size"), sorted; empty when
// none did. Layout, comments and key order do not count. An upstream's password read from an
// unchanged password_file with new content counts too ("upstreams.<name>.password_file"); other
// files' contents do not. (server.tls is here too: a reload re-reads the certificate files the
// running configuration names, not new paths.)
std::vector<std::string> restart_only_changes(const Config& running, const Config& next);

// "20GiB", "512MiB", "1.5GB", "1048576" -> bytes. Units: B, KB, MB, GB, TB (1000s), KiB, MiB, GiB, TiB.
std::optional<std::uint64_t> parse_size(std::string_view text);

}  // namespace ocigate::config
