// The checks that judge what is inside the layers: no-setuid, no-package-manager, and the
// layer parts of no-secrets and non-root-user. They read ImageFacts::filesystem (filled by
// layers::merge); without it they say "unknown", never "pass".

#include "filesystem_checks.hpp"

#include "ocigate/common/glob.hpp"
#include "text.hpp"

namespace ocigate::policy {

namespace {

std::string short_digest(const std::string& digest) {
  auto colon = digest.find(':');
  if (colon == std::string::npos) return digest.substr(0, 19);
  return digest.substr(0, std::min(digest.size(), colon + 1 + 12));
}

std::string join_shown(const std::vector<std::string>& items) {
  constexpr std::size_t shown = 5;
  std::string out;
  for (std::size_t i = 0; i < items.size() && i < shown; ++i) out += (i ? "; " : "") + items[i];
  if (items.size() > shown) out += "; and " + std::to_string(items.size() - shown) + " more";
  return out;
}

CheckResult result(Outcome outcome, std::string message, std::string remediation = "", std::string evidence = "") {
  CheckResult r;
  r.outcome = outcome;
  r.message = std::move(message);
  r.remediation = std::move(remediation);
  r.evidence = std::move(evidence);
  return r;
}

// A clean result is only "pass" when every layer was inspected.
CheckResult clean(const FilesystemFacts& facts, std::string message) {
  if (facts.not_inspected.empty()) return result(Outcome::pass, std::move(message));
  return result(Outcome::unknown, "not every layer could be inspected (" + facts.not_inspected.front() + ")");
}

const char* not_scanned = "not evaluated: the image's layers were not inspected";

}  // namespace

namespace fs {

std::string where(const FileFinding& finding) {
  return finding.path + " (" + finding.detail + ", layer " + short_digest(finding.layer) + ")";
}

std::vector<std::string> secret_file_evidence(const CheckInput& in) {
  std::vector<std::string> out;
  if (!in.facts.filesystem) return out;
  for (const auto& f : in.facts.filesystem->secret_files) out.push_back("file " + where(f));
  return out;
}

std::optional<std::string> name_maps_to_root(const CheckInput& in, const std::string& user) {
  if (!in.facts.filesystem || !in.facts.filesystem->has_passwd) return std::nullopt;
  auto it = in.facts.filesystem->users.find(user);
  if (it == in.facts.filesystem->users.end() || it->second != 0) return std::nullopt;
  return "user '" + user + "' has uid 0 in /etc/passwd";
}

}  // namespace fs

CheckResult check_no_setuid(const CheckInput& in) {
  if (!in.facts.filesystem) return result(Outcome::unknown, not_scanned);
  const FilesystemFacts& facts = *in.facts.filesystem;
  std::vector<std::string> allow = text::string_list(in.params, "allow");
  std::vector<std::string> evidence;
  for (const auto& f : facts.setuid_files) {
    bool allowed = false;
    for (const auto& pattern : allow) allowed = allowed || glob_match(pattern, f.path);
    if (!allowed) evidence.push_back(fs::where(f));
  }
  if (!evidence.empty()) {
    return result(Outcome::fail, std::to_string(evidence.size()) + " setuid/setgid file(s) in the final filesystem",
                  "drop the bits in the Dockerfile (`RUN find / -xdev -perm /6000 -type f -exec chmod a-s {} +`) "
                  "or list a needed binary in no-setuid's allow",
                  join_shown(evidence));
  }
  return clean(facts, "no setuid/setgid files" + std::string(facts.setuid_files.empty() ? "" : " outside the allow list"));
}

CheckResult check_no_package_manager(const CheckInput& in) {
  if (!in.facts.filesystem) return result(Outcome::unknown, not_scanned);
  const FilesystemFacts& facts = *in.facts.filesystem;
  std::vector<std::string> evidence;
  for (const auto& f : facts.installers) evidence.push_back(fs::where(f));
  std::string message;
  if (!evidence.empty()) message = std::to_string(evidence.size()) + " package installer(s) in the final filesystem";
  auto max = in.params.find("max_packages");
  if (max != in.params.end() && max->is_number_integer() &&
      static_cast<long long>(facts.packages.size()) > max->get<long long>()) {
    std::string too_many = std::to_string(facts.packages.size()) + " packages installed, more than max_packages " +
                           std::to_string(max->get<long long>());
    message = message.empty() ? too_many : message + "; " + too_many;
    evidence.push_back(too_many);
  }
  if (!message.empty()) {
    return result(Outcome::fail, message,
                  "build in one stage and copy the result into a minimal runtime image (distroless, scratch) "
                  "without package managers",
                  join_shown(evidence));
  }
  return clean(facts, "no package installer; " + std::to_string(facts.packages.size()) + " packages");
}

}  // namespace ocigate::policy
