#include "gate.hpp"

#include <charconv>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string_view>

#include "ocigate/policy/glob.hpp"
#include "ocigate/server/log.hpp"

namespace ocigate::server {

namespace {

// "2026-11-29" for a time point, in UTC.
std::string utc_day(std::chrono::system_clock::time_point when) {
  const std::chrono::year_month_day ymd{std::chrono::floor<std::chrono::days>(when)};
  char text[16];
  std::snprintf(text, sizeof text, "%04d-%02u-%02u", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
  return text;
}

// The image name as a metric label where policy.metrics_repositories asks for it, else "".
std::string labelled_repository(const policy::Policy& policy, const std::string& image) {
  for (const auto& glob : policy.metrics_repositories) {
    if (policy::glob_match(glob, image)) return image;
  }
  return "";
}

constexpr std::string_view verdict_space = "verdict";
constexpr std::string_view latest_space = "verdict-latest";
constexpr std::string_view allowed_space = "allowed-blob";
constexpr std::string_view inventory_space = "inventory";
constexpr std::string_view blocked_layer_space = "blocked-layer";

// What the image is made of, kept with its verdict for the verdict API and `ocigate check` (and
// for a future vulnerabilities check): the OS and the packages of the final filesystem.
nlohmann::json inventory_json(const policy::FilesystemFacts& fs) {
  nlohmann::json packages = nlohmann::json::array();
  for (const auto& p : fs.packages) packages.push_back({{"name", p.name}, {"version", p.version}, {"format", p.format}});
  return {{"os", {{"id", fs.os_id}, {"version_id", fs.os_version_id}, {"pretty_name", fs.os_pretty_name}}},
          {"packages", std::move(packages)},
          {"complete", fs.not_inspected.empty()},
          {"not_inspected", fs.not_inspected}};
}

bool cosign_or_attestation_layer(const std::string& media_type) {
  return media_type == "application/vnd.dev.cosign.simplesigning.v1+json" ||
         media_type == "application/vnd.dsse.envelope.v1+json" ||
         media_type.rfind("application/vnd.in-toto", 0) == 0 ||
         media_type.rfind("application/vnd.dev.sigstore", 0) == 0 ||
         media_type.rfind("application/vnd.cncf.notary", 0) == 0;
}

bool ends_with(const std::string& text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// pinned-reference (and its messages) depend on what the client asked for, not only on the
// digest: verdicts are kept per tag; every pull by digest shares one.
std::string reference_key(const std::string& reference) {
  if (reference.find(':') != std::string::npos) return "@digest";
  if (reference.empty()) return "@none";
  return reference;
}

}  // namespace

bool is_artifact(const oci::Manifest& manifest, const std::string& reference) {
  if (!manifest.artifact_type.empty() || manifest.subject) return true;
  if (reference.rfind("sha256-", 0) == 0 &&
      (ends_with(reference, ".sig") || ends_with(reference, ".att") || ends_with(reference, ".sbom"))) {
    return true;
  }
  if (manifest.config && manifest.config->media_type != oci::media::oci_config &&
      manifest.config->media_type != oci::media::docker_config) {
    return true;
  }
  for (const auto& layer : manifest.layers) {
    if (cosign_or_attestation_layer(layer.media_type)) return true;
  }
  return false;
}

std::string Gate::cache_key(const policy::Policy& policy, const policy::ImageFacts& facts) const {
  // The trust fingerprint covers the key files' contents: a key removed on reload counts.
  return policy.version + "/" + policy_.trust()->fingerprint + "/" + facts.upstream + "/" + facts.repository + "@" + facts.digest + "/" +
         reference_key(facts.reference);
}

// Record: "<day> <unix seconds> <json>", one per image and tag, not one a day.
std::optional<Gate::Remembered> Gate::parse_record(std::string_view record) {
  const auto day_end = record.find(' ');
  if (day_end == std::string_view::npos) return std::nullopt;
  std::string_view rest = record.substr(day_end + 1);
  const auto space = rest.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  long long judged_at = 0;
  if (std::from_chars(rest.data(), rest.data() + space, judged_at).ec != std::errc{}) return std::nullopt;
  auto json = nlohmann::json::parse(rest.substr(space + 1), nullptr, false);
  auto verdict = json.is_discarded() ? std::nullopt : policy::Verdict::from_json(json);
  if (!verdict) return std::nullopt;
  return Remembered{std::string(record.substr(0, day_end)), judged_at, std::move(*verdict)};
}

std::optional<Gate::Remembered> Gate::recall(const std::string& key) {
  {
    std::lock_guard lock(memo_mutex_);
    if (const Remembered* hit = memo_.find(key)) return *hit;
  }
  auto record = store_.get_record(verdict_space, key);
  if (!record) return std::nullopt;
  auto entry = parse_record(*record);
  // Never over a newer verdict that judge() remembered while this record was being read.
  if (entry) remember(key, *entry, false);
  return entry;
}

void Gate::remember(const std::string& key, Remembered entry, bool replace) {
  std::lock_guard lock(memo_mutex_);
  if (replace || !memo_.contains(key)) memo_.put(key, std::move(entry));
}

void Gate::forget_all() {
  std::lock_guard lock(memo_mutex_);
  memo_.clear();
}

std::optional<policy::Verdict> Gate::cached(const policy::ImageFacts& facts,
                                            std::optional<std::chrono::seconds> max_age) {
  auto current = policy_.get();
  auto entry = recall(cache_key(*current, facts));
  // A verdict holds for the UTC day it was reached on: image-age and exemption expiry move with
  // the date.
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(facts.now.time_since_epoch()).count();
  if (!entry || entry->day != utc_day(facts.now) || (max_age && now - entry->judged_at > max_age->count())) {
    metrics_.record_verdict_cache("miss");
    return std::nullopt;
  }
  metrics_.record_verdict_cache("hit");
  entry->verdict.reference = facts.reference;  // pulls by digest share one verdict
  return std::move(entry->verdict);
}

policy::Verdict Gate::judge(const policy::ImageFacts& facts, const std::string& client, double started_seconds_ago) {
  auto current = policy_.get();
  policy::Verdict verdict = policy::evaluate(*current, facts);
  std::string json = verdict.to_json().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  // A signature lookup that failed upstream fails the check closed, but must be retried soon.
  const bool keep = !(facts.signature && facts.signature->incomplete);
  const auto judged_at = std::chrono::duration_cast<std::chrono::seconds>(facts.now.time_since_epoch()).count();
  const std::string day = utc_day(facts.now);
  const std::string key = cache_key(*current, facts);
  if (keep) {
    if (auto stored = store_.put_record(verdict_space, key, day + " " + std::to_string(judged_at) + " " + json)) {
      remember(key, Remembered{day, judged_at, verdict}, true);
    } else {
      forget_all();  // the record may or may not have changed: read it again
      log::warn("cannot store verdict", {{"digest", facts.digest}, {"error", stored.error().message}});
    }
  }
  (void)store_.put_record(latest_space, facts.digest, json);
  if (facts.filesystem) {
    (void)store_.put_record(inventory_space, facts.digest,
                            inventory_json(*facts.filesystem).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  }
  metrics_.record_decision(policy::decision_text(verdict.decision), started_seconds_ago);
  for (const auto& finding : verdict.findings) {
    if (finding.outcome != policy::Outcome::fail || finding.exempted || finding.action == policy::Action::off) continue;
    metrics_.record_violation(finding.check, policy::action_text(finding.action));
  }
  audit(verdict, client, false);
  return verdict;
}

void Gate::audit(const policy::Verdict& verdict, const std::string& client, bool cached) {
  nlohmann::json out = {{"log", "audit"},
                        {"client", client},
                        {"image", verdict.image},
                        {"reference", verdict.reference},
                        {"digest", verdict.digest},
                        {"verdict", policy::decision_text(verdict.decision)},
                        {"violations", verdict.violations_json()},
                        {"policy_version", verdict.policy_version},
                        {"cached", cached}};
  log::audit(out);
  if (verdict.decision == policy::Decision::block) {
    auto upstream = verdict.image.substr(0, verdict.image.find('/'));
    auto repository = labelled_repository(*policy_.get(), verdict.image);
    for (const auto& check : verdict.violated_checks(policy::Action::block)) {
      metrics_.record_blocked_pull(upstream, repository, check);
    }
  }
}

void Gate::allow_blobs(const std::vector<std::string>& digests) {
  for (const auto& digest : digests) {
    if (!store_.get_record(allowed_space, digest)) (void)store_.put_record(allowed_space, digest, "1");
  }
}

bool Gate::blob_allowed(const std::string& digest) {
  auto current = policy_.get();
  if (current->blob_access == policy::BlobAccess::any) return true;
  if (store_.get_record(allowed_space, digest)) return true;
  metrics_.record_blob_denied();
  // Audit mode blocks nothing: the request is counted and logged, and served.
  if (current->mode == policy::Mode::audit) {
    log::info("blob not referenced by an allowed image (audit mode: served)", {{"digest", digest}});
    return true;
  }
  return false;
}

std::optional<std::string> Gate::stored_verdict(const std::string& digest) {
  auto latest = store_.get_record(latest_space, digest);
  auto inventory = store_.get_record(inventory_space, digest);
  if (!latest || !inventory) return latest;
  auto verdict = nlohmann::json::parse(*latest, nullptr, false);
  auto packages = nlohmann::json::parse(*inventory, nullptr, false);
  if (verdict.is_discarded() || !verdict.is_object() || packages.is_discarded()) return latest;
  verdict["inventory"] = std::move(packages);
  return verdict.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

bool Gate::has_inventory(const std::string& digest) { return store_.get_record(inventory_space, digest).has_value(); }

void Gate::block_layer(const std::string& digest, const std::string& why) {
  (void)store_.put_record(blocked_layer_space, policy_.get()->version + "/" + digest, why);
}

void Gate::purge_stale() {
  forget_all();
  const std::string version = policy_.get()->version + "/";
  auto verdicts = store_.remove_records_outside(verdict_space, version + policy_.trust()->fingerprint + "/");
  auto layers = store_.remove_records_outside(blocked_layer_space, version);
  if (!verdicts || !layers) {
    log::warn("cannot drop the verdicts of other policy versions",
              {{"error", !verdicts ? verdicts.error().message : layers.error().message}});
  }
}

std::optional<std::string> Gate::blocked_layer(const std::string& digest) {
  return store_.get_record(blocked_layer_space, policy_.get()->version + "/" + digest);
}

Result<signature::TrustStore> load_trust(const config::Config& config, const policy::Policy& policy) {
  std::filesystem::path base = std::filesystem::current_path();
  if (!config.source.empty() && config.source.front() != '<') {
    base = std::filesystem::absolute(config.source).parent_path();
  }
  return signature::load_trust(policy, base);
}

}  // namespace ocigate::server
