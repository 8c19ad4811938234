#pragma once
// Judging one image against a Policy: facts in, verdict out. Pure and deterministic for a
// given facts.now, so verdicts can be cached per (policy version, manifest digest).

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "ocigate/policy/filesystem.hpp"
#include "ocigate/policy/policy.hpp"
#include "ocigate/policy/signature_facts.hpp"
#include "ocigate/policy/vulnerability_facts.hpp"

namespace ocigate::policy {

struct ImageFacts {
  std::string upstream, repository;  // e.g. "docker.io", "library/alpine"
  std::string reference;             // tag or digest the client asked for; "" when unknown
  std::string digest;                // manifest digest
  std::map<std::string, std::string> manifest_annotations;
  std::optional<nlohmann::json> config;  // image config JSON, nullopt when unavailable
  // From layer inspection (layers::merge); nullopt when the layers were not scanned, which
  // makes the filesystem checks "unknown".
  std::optional<FilesystemFacts> filesystem;
  // From signature verification (signature::evaluate); nullopt when signatures were not looked
  // up, which makes the signature check "unknown".
  std::optional<SignatureFacts> signature;
  // From attestation verification (signature::evaluate, Evaluation::provenance); nullopt when
  // attestations were not looked up, which makes the provenance check "unknown".
  std::optional<ProvenanceFacts> provenance;
  // From matching the package inventory against the vulnerability database; nullopt when it was
  // not matched (layers not inspected), which makes the vulnerabilities check "unknown".
  std::optional<VulnerabilityFacts> vulnerabilities;
  std::chrono::system_clock::time_point now;
};

enum class Outcome { pass, fail, unknown };

struct Finding {
  std::string check;
  Outcome outcome = Outcome::unknown;
  Action action = Action::block;  // the effective action (after rules and audit mode)
  std::string message, remediation, evidence;
  std::string origin;  // "image" | "base" | "" (not told by history)
  bool exempted = false;
  std::string exemption_reason;
  // Structured findings behind the message, for the 403's detail and `ocigate check` (the
  // vulnerabilities check: {"findings":[...], ...}); null when the check has none.
  nlohmann::json details;
  bool operator==(const Finding&) const = default;
};

enum class Decision { allow, warn, block };

struct Verdict {
  Decision decision = Decision::allow;
  std::string digest, reference, image /* "<upstream>/<repo>" */, policy_version;
  std::vector<Finding> findings;  // one per check that is not off, in check_ids() order
  std::vector<std::string> notes;

  static constexpr std::size_t unlimited = static_cast<std::size_t>(-1);
  // How many items of a details array the 403 body and the verdict cache keep.
  static constexpr std::size_t shown_detail_items = 50;

  // {"verdict":"allow|warn|block","digest","reference","image","policy_version",
  //  "violations":[{check,action,message,remediation,evidence,origin}],
  //  "exempted":[{check,action,message,remediation,evidence,origin,reason}],
  //  "notes":[...],
  //  "checks":[{check,result:"pass|fail|unknown",action,message,(remediation,evidence,origin,
  //             exempted,exemption_reason,details when set)}]}
  // A violation's and a check's "details" too, when set, each of their arrays cut to
  // `detail_items` entries with "<name>_omitted": <count of the rest>.
  nlohmann::json to_json(std::size_t detail_items = unlimited) const;
  // to_json()'s "violations" alone (failed, not exempted, not off) without their details: what
  // the audit line carries.
  nlohmann::json violations_json() const;
  // Cuts every finding's details as to_json(detail_items) does.
  void cap_details(std::size_t detail_items);
  // Inverse of to_json (reads "checks" for the findings); nullopt on anything malformed.
  static std::optional<Verdict> from_json(const nlohmann::json& json);

  // "<image>@<digest>: blocked by policy: <id>, <id> (<first message>)"
  std::string denied_message() const;
  // One `299 - "ocigate: <check>: <message>"` per violation; the values total at most 4096 bytes,
  // the last one replaced by `299 - "ocigate: and N more"` when cut.
  std::vector<std::string> warning_headers() const;
  // Ids of violations whose action is at least `at_least`.
  std::vector<std::string> violated_checks(Action at_least) const;
  // Violations: failed, not exempted, action warn or block.
  std::vector<const Finding*> violations() const;
};

Verdict evaluate(const Policy& policy, const ImageFacts& facts);

// Whether any check is on for "<upstream>/<repo>" after rules: when none is, the gate needs no
// facts beyond the names (no image config fetch).
bool any_check_on(const Policy& policy, const std::string& image);
// Whether the check `id` is on for "<upstream>/<repo>" after rules.
bool check_on(const Policy& policy, const std::string& image, std::string_view id);
// Whether the check `id` is on anywhere in the policy (the top level or any rule).
bool check_used(const Policy& policy, std::string_view id);

const char* decision_text(Decision decision);  // "allow" | "warn" | "block"
const char* outcome_text(Outcome outcome);     // "pass" | "fail" | "unknown"

}  // namespace ocigate::policy
