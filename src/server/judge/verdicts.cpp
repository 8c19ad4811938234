#include "judge/verdicts.hpp"

#include <charconv>
#include <chrono>
#include <cstdio>
#include <string_view>

#include "ocigate/common/glob.hpp"
#include "ocigate/common/time.hpp"
#include "ocigate/server/log.hpp"
#include "notices.hpp"
#include "records.hpp"

namespace ocigate::server {

namespace {

// The image name as a metric label where policy.metrics_repositories asks for it, else "".
std::string labelled_repository(const policy::Policy& policy, const std::string& image) {
  for (const auto& glob : policy.metrics_repositories) {
    if (glob_match(glob, image)) return image;
  }
  return "";
}

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

// pinned-reference (and its messages) depend on what the client asked for, not only on the
// digest: verdicts are kept per tag; every pull by digest shares one.
std::string reference_key(const std::string& reference) {
  if (reference.find(':') != std::string::npos) return "@digest";
  if (reference.empty()) return "@none";
  return reference;
}

}  // namespace

// The database a verdict was reached with, when the vulnerabilities check is on anywhere: after
// `vulndb update` and a reload, yesterday's clean image is judged again on today's data. The
// facts say which database they were matched against (a swap may land during a judgement).
// A database that passes max_age is a key of its own too: a clean verdict reached while it was fresh
// must not outlive its freshness until the day ends.
std::string Verdicts::database_key(const policy::Policy& policy, const policy::ImageFacts* facts) const {
  if (!policy::check_used(policy, "vulnerabilities")) return "-";
  if (facts && facts->vulnerabilities) {
    const auto& v = *facts->vulnerabilities;
    if (v.database_version.empty()) return "none";
    return v.stale ? v.database_version + "+stale" : v.database_version;
  }
  auto data = policy_.vulnerabilities();
  if (!data->database) return "none";
  const std::string& version = data->database->metadata().version;
  return data->database->age(std::chrono::system_clock::now()) > data->max_age ? version + "+stale" : version;
}

std::string Verdicts::cache_key(const policy::Policy& policy, const policy::ImageFacts& facts, bool judged) const {
  // The trust fingerprint covers the key files' contents: a key removed on reload counts.
  return policy.version + "/" + policy_.trust()->fingerprint + "/" + database_key(policy, judged ? &facts : nullptr) + "/" +
         facts.upstream + "/" + facts.repository + "@" + facts.digest + "/" + reference_key(facts.reference);
}

// Record: "<day> <unix seconds> <json>", one per image and tag, not one a day.
std::optional<Verdicts::Remembered> Verdicts::parse_record(std::string_view record) {
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

std::optional<Verdicts::Remembered> Verdicts::recall(const std::string& key) {
  {
    std::lock_guard lock(memo_mutex_);
    if (const Remembered* hit = memo_.find(key)) return *hit;
  }
  auto record = store_.get_record(records::verdict, key);
  if (!record) return std::nullopt;
  auto entry = parse_record(*record);
  // Never over a newer verdict that judge() remembered while this record was being read.
  if (entry) remember(key, *entry, false);
  return entry;
}

void Verdicts::remember(const std::string& key, Remembered entry, bool replace) {
  std::lock_guard lock(memo_mutex_);
  if (replace || !memo_.contains(key)) memo_.put(key, std::move(entry));
}

void Verdicts::forget_all() {
  std::lock_guard lock(memo_mutex_);
  memo_.clear();
}

std::optional<policy::Verdict> Verdicts::cached(const policy::ImageFacts& facts,
                                            std::optional<std::chrono::seconds> max_age) {
  auto current = policy_.get();
  auto entry = recall(cache_key(*current, facts, false));
  // A verdict holds for the UTC day it was reached on: image-age and exemption expiry move with
  // the date.
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(facts.now.time_since_epoch()).count();
  if (!entry || entry->day != utc_date(facts.now) || (max_age && now - entry->judged_at > max_age->count())) {
    metrics_.record_verdict_cache("miss");
    return std::nullopt;
  }
  metrics_.record_verdict_cache("hit");
  entry->verdict.reference = facts.reference;  // pulls by digest share one verdict
  return std::move(entry->verdict);
}

policy::Verdict Verdicts::decide(const policy::ImageFacts& facts, const std::string& client, double started_seconds_ago) {
  auto current = policy_.get();
  policy::Verdict verdict = policy::evaluate(*current, facts);
  // Stored and remembered with the details a 403 shows: a long list of findings stays bounded.
  policy::Verdict kept = verdict;
  kept.cap_details(policy::Verdict::shown_detail_items);
  std::string json = kept.to_json().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  // A signature or attestation lookup that failed upstream fails the check closed, but must be
  // retried soon.
  const bool keep = !(facts.signature && facts.signature->incomplete) && !(facts.provenance && facts.provenance->incomplete);
  const auto judged_at = std::chrono::duration_cast<std::chrono::seconds>(facts.now.time_since_epoch()).count();
  const std::string day = utc_date(facts.now);
  const std::string key = cache_key(*current, facts, true);
  if (keep) {
    if (auto stored = store_.put_record(records::verdict, key, day + " " + std::to_string(judged_at) + " " + json)) {
      remember(key, Remembered{day, judged_at, std::move(kept)}, true);
    } else {
      forget_all();  // the record may or may not have changed: read it again
      log::warn("cannot store verdict", {{"digest", facts.digest}, {"error", stored.error().message}});
    }
  }
  (void)store_.put_record(records::latest_verdict, facts.digest, json);
  if (facts.filesystem) {
    (void)store_.put_record(records::inventory, facts.digest,
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

void Verdicts::audit(const policy::Verdict& verdict, const std::string& client, bool cached) {
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
  notices::verdict(verdict, client);
  if (verdict.decision == policy::Decision::block) {
    auto upstream = verdict.image.substr(0, verdict.image.find('/'));
    auto repository = labelled_repository(*policy_.get(), verdict.image);
    for (const auto& check : verdict.violated_checks(policy::Action::block)) {
      metrics_.record_blocked_pull(upstream, repository, check);
    }
  }
}

std::optional<std::string> Verdicts::stored_verdict(const std::string& digest) {
  auto latest = store_.get_record(records::latest_verdict, digest);
  auto inventory = store_.get_record(records::inventory, digest);
  if (!latest || !inventory) return latest;
  auto verdict = nlohmann::json::parse(*latest, nullptr, false);
  auto packages = nlohmann::json::parse(*inventory, nullptr, false);
  if (verdict.is_discarded() || !verdict.is_object() || packages.is_discarded()) return latest;
  verdict["inventory"] = std::move(packages);
  return verdict.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

bool Verdicts::has_inventory(const std::string& digest) { return store_.get_record(records::inventory, digest).has_value(); }

void Verdicts::block_layer(const std::string& digest, const std::string& why) {
  (void)store_.put_record(records::blocked_layer, policy_.get()->version + "/" + digest, why);
}

void Verdicts::purge_stale() {
  forget_all();
  auto current = policy_.get();
  const std::string version = current->version + "/";
  auto verdicts = store_.remove_records_outside(
      records::verdict, version + policy_.trust()->fingerprint + "/" + database_key(*current, nullptr) + "/");
  auto layers = store_.remove_records_outside(records::blocked_layer, version);
  if (!verdicts || !layers) {
    log::warn("cannot drop the verdicts of other policy versions",
              {{"error", !verdicts ? verdicts.error().message : layers.error().message}});
  }
}

std::optional<std::string> Verdicts::blocked_layer(const std::string& digest) {
  return store_.get_record(records::blocked_layer, policy_.get()->version + "/" + digest);
}

}  // namespace ocigate::server
