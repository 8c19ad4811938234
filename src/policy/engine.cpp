#include "ocigate/policy/engine.hpp"

#include "ocigate/policy/checks.hpp"
#include "ocigate/common/glob.hpp"
#include "ocigate/common/time.hpp"
#include "text.hpp"

namespace ocigate::policy {

namespace {

// The settings for this image: the first matching rule overrides the checks it names.
std::map<std::string, CheckSetting> effective_settings(const Policy& policy, const std::string& image,
                                                       std::vector<std::string>& notes) {
  std::map<std::string, CheckSetting> settings = policy.checks;
  for (std::size_t i = 0; i < policy.rules.size(); ++i) {
    const Rule& rule = policy.rules[i];
    if (!glob_match(rule.match, image)) continue;
    for (const auto& [id, setting] : rule.checks) settings[id] = setting;
    notes.push_back("rule " + std::to_string(i) + " (" + rule.match + ") applies");
    break;
  }
  return settings;
}

bool exemption_applies(const Exemption& exemption, const ImageFacts& facts, const std::string& image) {
  // The parser only accepts a valid digest or a glob, and globs never start with "sha256:" /
  // "sha512:" followed by hex of the right length, so the prefix tells them apart.
  if (exemption.match.rfind("sha256:", 0) == 0 || exemption.match.rfind("sha512:", 0) == 0) {
    return exemption.match == facts.digest;
  }
  return glob_match(exemption.match, image);
}

void apply_exemptions(const Policy& policy, const ImageFacts& facts, const std::string& image, Finding& finding,
                      std::vector<std::string>& notes) {
  if (finding.outcome != Outcome::fail) return;
  const std::string today = utc_date(facts.now);
  for (const auto& exemption : policy.exemptions) {
    bool names_check = false;
    for (const auto& id : exemption.checks) names_check = names_check || id == finding.check;
    if (!names_check || !exemption_applies(exemption, facts, image)) continue;
    if (exemption.expires && *exemption.expires < today) {
      notes.push_back("exemption of " + finding.check + " for " + exemption.match + " expired on " + *exemption.expires);
      continue;
    }
    finding.exempted = true;
    finding.exemption_reason = text::clean(exemption.reason);
    return;
  }
}

}  // namespace

const char* decision_text(Decision decision) {
  switch (decision) {
    case Decision::allow: return "allow";
    case Decision::warn: return "warn";
    case Decision::block: return "block";
  }
  return "allow";
}

const char* outcome_text(Outcome outcome) {
  switch (outcome) {
    case Outcome::pass: return "pass";
    case Outcome::fail: return "fail";
    case Outcome::unknown: return "unknown";
  }
  return "unknown";
}

bool any_check_on(const Policy& policy, const std::string& image) {
  std::vector<std::string> notes;
  for (const auto& [id, setting] : effective_settings(policy, image, notes)) {
    if (setting.action != Action::off) return true;
  }
  return false;
}

Verdict evaluate(const Policy& policy, const ImageFacts& facts) {
  Verdict verdict;
  // Facts come from validated routes; cleaning keeps to_json() from throwing if one ever is not.
  verdict.digest = text::clean(facts.digest);
  verdict.reference = text::clean(facts.reference);
  verdict.image = text::clean(facts.upstream + "/" + facts.repository);
  verdict.policy_version = policy.version;
  auto settings = effective_settings(policy, verdict.image, verdict.notes);
  const auto history = parse_history(facts.config);
  std::size_t softened = 0;
  for (const auto& spec : registry()) {
    auto found = settings.find(std::string(spec.id));
    CheckSetting setting = found != settings.end() ? found->second : CheckSetting{};
    if (setting.action == Action::off) continue;
    CheckResult result = spec.run(CheckInput{facts, policy, setting.params, history});
    Finding finding;
    finding.check = std::string(spec.id);
    finding.outcome = result.outcome;
    finding.action = setting.action;
    // Checks quote image text; whatever they quote, no credential leaves in a verdict.
    finding.message = text::clean(redact_credentials(result.message));
    finding.remediation = text::clean(result.remediation);
    finding.evidence = text::clean(redact_credentials(result.evidence));
    finding.origin = std::move(result.origin);
    apply_exemptions(policy, facts, verdict.image, finding, verdict.notes);
    if (policy.mode == Mode::audit && finding.action == Action::block) {
      finding.action = Action::warn;
      if (finding.outcome == Outcome::fail && !finding.exempted) ++softened;
    }
    for (const auto& note : result.notes) verdict.notes.push_back(text::clean(redact_credentials(note)));
    if (finding.outcome == Outcome::unknown) verdict.notes.push_back(finding.check + ": unknown: " + finding.message);
    verdict.findings.push_back(std::move(finding));
  }
  if (softened > 0) {
    verdict.notes.push_back("audit mode: " + std::to_string(softened) + " violation(s) would block in enforce mode");
  }
  verdict.decision = Decision::allow;
  for (const Finding* f : verdict.violations()) {
    if (f->action == Action::block) verdict.decision = Decision::block;
    else if (verdict.decision == Decision::allow) verdict.decision = Decision::warn;
  }
  return verdict;
}

std::vector<const Finding*> Verdict::violations() const {
  std::vector<const Finding*> out;
  for (const auto& f : findings) {
    if (f.outcome == Outcome::fail && !f.exempted && f.action != Action::off) out.push_back(&f);
  }
  return out;
}

std::vector<std::string> Verdict::violated_checks(Action at_least) const {
  std::vector<std::string> out;
  for (const Finding* f : violations()) {
    if (f->action >= at_least) out.push_back(f->check);
  }
  return out;
}

}  // namespace ocigate::policy
