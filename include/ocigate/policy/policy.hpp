#pragma once
// The policy model (what the operator configured) and its parser. Pure: no I/O.
//
// YAML shape (all keys optional; a policy section without `mode` stays in audit mode):
//   policy:
//     mode: enforce | audit                 # audit turns every block into a warn
//     checks: { <id>: block|warn|off, <id>: { action: ..., <params> } }
//       # params: image-age {max_days: 90}, pinned-reference {require_digest: false},
//       #         no-secrets {extra_names: [LICENSE_KEY, ...]}
//       #         no-setuid {allow: [/usr/bin/passwd, ...]}, no-package-manager {max_packages: N}
//     rules: [ { match: <glob>, checks: { <id>: ... } } ]        # first match wins
//     exemptions: [ { match: <digest|glob>, checks: [<id>...], reason: "...", expires: YYYY-MM-DD } ]
//     trusted_sources: [ <glob>... ]
//     blob_access: referenced | any
//     layer_scan: prefetch | stream | off
//     prefetch_timeout: 20s                 # a duration or whole seconds
//     metrics_repositories: [ <glob>... ]   # blocked pulls of these carry a repository label
//     trust:                               # which images need which signers (signature check)
//       - match: <glob>                    # every matching entry must be satisfied
//         cosign: { keys: [<pem file>...] }                      # any one valid signature
//         notation: { trust_store: <pem file of CA certs>, identities: ["x509.subject: CN=..,O=.."] }
// Unknown keys, check ids, actions, modes, malformed globs and dates are refused with
// "<source>:<line>: policy.<key path>: why" (Errc::config_invalid).

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ocigate/common/result.hpp"

namespace YAML {
class Node;
}

namespace ocigate::policy {

// Ordered by severity: comparisons like `action >= Action::warn` are meaningful.
enum class Action { off, warn, block };
enum class Mode { enforce, audit };
enum class BlobAccess { referenced, any };
enum class LayerScan { prefetch, stream, off };

struct CheckSetting {
  Action action = Action::block;
  // Check parameters with their defaults filled in (e.g. image-age: {"max_days": 90}).
  nlohmann::json params = nlohmann::json::object();
  bool operator==(const CheckSetting&) const = default;
};

struct Rule {
  std::string match;  // glob over "<upstream>/<repo>"
  // Complete settings for the checks the rule names: the top-level setting with the rule's
  // action and params laid over it. Checks the rule does not name keep the top-level setting.
  std::map<std::string, CheckSetting> checks;
};

struct Exemption {
  std::string match;  // a digest ("sha256:...") or a repository glob
  std::vector<std::string> checks;
  std::string reason;
  std::optional<std::string> expires;  // YYYY-MM-DD, valid through that day (UTC)
};

// A file named in policy.trust: its path as written (relative paths are resolved against the
// config file's directory by signature::load_trust, which reads it) and where it was written,
// "<source>:<line>: policy.trust[i].cosign.keys[j]", for error messages.
struct TrustFile {
  std::string path;
  std::string where;
};

// One policy.trust entry as configured. Parsing checks its shape only; the key and certificate
// files are read and parsed by signature::load_trust (startup and reload), which refuses the
// policy when one cannot be used.
struct TrustEntry {
  std::string match;  // glob over "<upstream>/<repo>"
  std::string where;  // "<source>:<line>: policy.trust[i]"
  bool cosign = false;
  std::vector<TrustFile> cosign_keys;  // non-empty when cosign
  bool notation = false;
  TrustFile notation_trust_store;
  std::vector<std::string> notation_identities;  // "x509.subject: CN=..,O=.." or "*"; non-empty when notation
};

struct Policy {
  Mode mode = Mode::audit;
  std::map<std::string, CheckSetting> checks;  // every known check id present after parsing
  std::vector<Rule> rules;
  std::vector<Exemption> exemptions;
  std::vector<std::string> trusted_sources;  // empty = check not applicable
  BlobAccess blob_access = BlobAccess::referenced;
  LayerScan layer_scan = LayerScan::prefetch;
  std::chrono::seconds prefetch_timeout{20};
  // Repository globs whose blocked pulls carry a `repository` metric label (others get ""), so
  // the label's cardinality stays what the operator chose. Not part of the version: it changes
  // no verdict.
  std::vector<std::string> metrics_repositories;
  // Signature requirements (the `signature` check). Part of the version (match, key paths,
  // identities; not the file contents: signature::TrustStore fingerprints the loaded keys).
  std::vector<TrustEntry> trust;
  // "sha256:<hex>" of a canonical JSON dump of everything above: equal policies have equal
  // versions, so verdicts cached under a version stay valid across reloads of the same policy.
  std::string version;
};

// A null or undefined node gives default_policy(). source names the file in messages.
Result<Policy> parse_policy(const YAML::Node& node, std::string_view source);
// The same for a section that may be absent (nullptr: the built-in default policy), as
// config::Config::policy holds it.
Result<Policy> parse_policy(const YAML::Node* node, std::string_view source);

// mode audit, every check on with action block, default parameters.
Policy default_policy();

// Every check id, including the reserved ones whose logic is not built yet, in evaluation order.
const std::vector<std::string>& check_ids();

// The canonical JSON the version is computed from (also handy for logging the active policy).
nlohmann::json canonical_json(const Policy& policy);
// Recomputes policy.version from its contents; call after editing a Policy by hand.
void stamp_version(Policy& policy);

// Named *_text rather than *_name so they never collide, through argument-dependent lookup,
// with a caller's own helpers of the usual names.
const char* action_text(Action action);  // "off" | "warn" | "block"
const char* mode_text(Mode mode);        // "enforce" | "audit"

}  // namespace ocigate::policy
