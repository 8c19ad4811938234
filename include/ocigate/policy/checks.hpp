#pragma once
// The checks: one function per id, listed in one table. Adding a check is a local change:
// write its function, add a row to registry() (and its parameters, if any).

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "ocigate/policy/engine.hpp"
#include "ocigate/policy/policy.hpp"

namespace ocigate::policy {

// One image-history entry, classified from its `created_by` text.
//   "/bin/sh -c #(nop)  CMD [...]"             -> CMD (classic builder metadata)
//   "/bin/sh -c apt-get update"                 -> RUN (classic builder)
//   "RUN |2 A=x B=y /bin/sh -c make # buildkit" -> RUN with build args A and B
//   "|1 A=x /bin/sh -c make"                    -> RUN with build arg A (classic builder)
//   "ADD https://x/y /z # buildkit"             -> ADD
struct HistoryEntry {
  std::size_t index = 0;         // position in config.history
  std::string created_by;        // as recorded
  std::string instruction;       // RUN, ADD, COPY, CMD, ENV, ... or "" when the shape is unknown
  std::string body;              // the instruction's arguments (for RUN: the shell command)
  std::vector<std::pair<std::string, std::string>> build_args;  // from "|N A=x ..."
  bool base = false;             // belongs to the base image
};

// config.history split into entries, base ones marked. The base ends with the last rootfs
// entry: `ADD file:<hash> in /` or `COPY file:<hash> in /` (classic builder), or an ADD of a
// local tarball into `/` (buildkit, e.g. `ADD alpine-minirootfs-3.19.1-x86_64.tar.gz / # buildkit`).
// nullopt when the config has no (usable) history.
std::optional<std::vector<HistoryEntry>> parse_history(const std::optional<nlohmann::json>& config);
HistoryEntry classify_created_by(std::string_view created_by);
// The sources of an ADD/COPY body: flags and the destination dropped ("--chown=1 a b /d" -> a, b).
std::vector<std::string> add_sources(std::string_view body);

// What a check reports; the engine adds the id, action and exemptions.
struct CheckResult {
  Outcome outcome = Outcome::unknown;
  std::string message, remediation, evidence, origin;
  std::vector<std::string> notes;  // informational, never a violation
};

struct CheckInput {
  const ImageFacts& facts;
  const Policy& policy;
  const nlohmann::json& params;                     // the effective setting's params
  const std::optional<std::vector<HistoryEntry>>& history;
};

using CheckFn = CheckResult (*)(const CheckInput&);

// A check parameter: its YAML key, kind, and default.
struct ParamSpec {
  std::string_view name;
  // name_list: a YAML list of variable names (letters, digits, '_', '-', '.'), kept as a JSON array.
  // path_list: a YAML list of absolute file paths, '*' / '**' / '?' as in globs, kept as a JSON array.
  // A positive_int whose default is null is optional (no limit unless set).
  enum class Kind { positive_int, boolean, name_list, path_list } kind;
  nlohmann::json default_value;
};

struct CheckSpec {
  std::string_view id;
  CheckFn run;
  std::vector<ParamSpec> params;
};

const std::vector<CheckSpec>& registry();
const CheckSpec* find_check(std::string_view id);

// What each check reads and when it fails (the table, made precise). Missing data is
// "unknown", never "pass"; fields of the wrong type count as missing.
//   non-root-user     config.User "", "root", "0…0", "root:*", "0:*"
//   healthcheck       no config.Healthcheck, Test empty or ["NONE"]
//   no-secrets        credential-named Env / ENV / ARG default / build arg / RUN `NAME=literal`
//                     with a non-empty value, or a known token format anywhere in Env, Labels,
//                     created_by; evidence redacted to 4 characters
//   copy-not-add      ADD of a git source, or of an http(s) URL without --checksum, after the base;
//                     local ADDs and checksummed downloads are notes
//   no-update-alone   a RUN whose last package-index step is an update (lone_index_update)
//   pinned-base       no base.digest (valid digest) / base.name with "@sha256:" in manifest
//                     annotations or config labels
//   pinned-reference  reference "" or "latest"; any tag when require_digest
//   trusted-source    "<upstream>/<repo>" matches no trusted_sources glob (passes when unset)
//   image-age         config.created older than max_days; placeholder dates (< 1980) unknown
//   no-setuid         (layers) a setuid/setgid regular file in the final filesystem whose path
//                     matches no `allow` glob (default: none allowed)
//   no-package-manager (layers) an installer (apk, apt, apt-get, dpkg, yum, dnf, microdnf, rpm,
//                     zypper, pip, ...) in the final filesystem, or more packages than
//                     `max_packages` (unset: no limit)
//   no-secrets, non-root-user also read the layers when inspected: secret files from every
//                     layer; a USER name mapping to uid 0 in the final /etc/passwd
//   The layer checks are "unknown" without ImageFacts::filesystem, and a clean result is
//   "unknown" when some layer could not be inspected (FilesystemFacts::not_inspected).
//   signature         ImageFacts::signature (signature::evaluate): fail when a policy.trust entry
//                     matching the image has no valid signature; pass when none matches or all
//                     are satisfied (a failed lookup is a failure: fail closed); "unknown"
//                     without the facts
//   vulnerabilities: always "unknown" ("not evaluated")
CheckResult check_non_root_user(const CheckInput& in);
CheckResult check_healthcheck(const CheckInput& in);
CheckResult check_no_secrets(const CheckInput& in);
CheckResult check_copy_not_add(const CheckInput& in);
CheckResult check_no_update_alone(const CheckInput& in);
CheckResult check_pinned_base(const CheckInput& in);
CheckResult check_pinned_reference(const CheckInput& in);
CheckResult check_trusted_source(const CheckInput& in);
CheckResult check_image_age(const CheckInput& in);
CheckResult check_signature(const CheckInput& in);
CheckResult check_no_setuid(const CheckInput& in);
CheckResult check_no_package_manager(const CheckInput& in);
CheckResult check_vulnerabilities(const CheckInput& in);

// Building blocks, exposed for tests.
// True when an environment-variable or build-arg name looks like it holds a credential: a word
// part (split on '_', '-', '.' and camelCase) is PASSWORD, SECRET, TOKEN, AUTH, ... or a pair like
// API_KEY; names that describe or point at a secret (GPG_KEY, *_PUBLIC_KEY, *_URL, *_FILE,
// *_VERSION, *_SHA256, *_NAME, *_TYPE, ...) are not. MONKEY is not KEY: parts, not substrings.
bool credential_name(std::string_view name);
// Also true when the name contains the word parts of one of `extra_names` (no-secrets'
// `extra_names` parameter, e.g. "LICENSE_KEY" also matches "ACME_LICENSE_KEY").
bool credential_name(std::string_view name, const std::vector<std::string>& extra_names);
// The kind of credential found in text ("AWS access key id", ..., "URL password" for
// `scheme://user:password@host`) and the matched token.
struct SecretMatch {
  std::string kind;
  std::string token;
};
std::optional<SecretMatch> find_credential(std::string_view text);
// `text` with every known-format credential and every URL password cut to its first 4
// characters and "…": for evidence and messages that quote image text.
std::string redact_credentials(std::string_view text);
// `NAME=abcd…`: never more than the first 4 characters of a value (fewer for short values).
std::string redact(std::string_view name, std::string_view value);
// Whether a RUN command refreshes a package index without installing afterwards.
bool lone_index_update(std::string_view command);

}  // namespace ocigate::policy
