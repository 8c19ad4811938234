// `ocigate check`: prints the verdict server::inspect_image reaches on one image, for CI pipelines.

#include "ocigate/cli/check.hpp"

#include <cctype>
#include <cstdio>

#include "ocigate/server/inspect.hpp"

namespace ocigate::cli {

namespace {

void print_table(const policy::Verdict& verdict) {
  std::string decision = policy::decision_text(verdict.decision);
  for (auto& c : decision) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  std::printf("image    %s:%s\ndigest   %s\nverdict  %s (policy %s)\n\n", verdict.image.c_str(),
              verdict.reference.c_str(), verdict.digest.c_str(), decision.c_str(), verdict.policy_version.substr(0, 12).c_str());
  std::printf("%-20s %-8s %-7s %s\n", "CHECK", "RESULT", "ACTION", "MESSAGE");
  for (const auto& f : verdict.findings) {
    std::string message = f.message;
    if (f.exempted) message += " [exempted: " + f.exemption_reason + "]";
    if (!f.origin.empty() && f.outcome == policy::Outcome::fail) message += " (" + f.origin + ")";
    std::printf("%-20s %-8s %-7s %s\n", f.check.c_str(), policy::outcome_text(f.outcome), policy::action_text(f.action),
                message.c_str());
    if (f.outcome == policy::Outcome::fail && !f.remediation.empty()) std::printf("%-37s fix: %s\n", "", f.remediation.c_str());
  }
  for (const auto& note : verdict.notes) std::printf("note: %s\n", note.c_str());
}

std::string text_of(const nlohmann::json& value, const char* fallback = "") {
  return value.is_string() ? value.get<std::string>() : std::string(fallback);
}

// The findings behind a check's verdict (the vulnerabilities check's details), highest first.
void print_findings(const policy::Finding& f) {
  const auto& details = f.details;
  if (!details.is_object() || !details.contains("findings") || !details["findings"].is_array()) return;
  std::printf("\n%s: %zu finding(s) in %s\n", f.check.c_str(), details["findings"].size(),
              text_of(details.value("ecosystem", nlohmann::json()), "?").c_str());
  std::printf("%-26s %-30s %-24s %-28s %-28s %-9s %s\n", "ID", "CVE", "PACKAGE", "INSTALLED", "FIXED", "SEVERITY", "SCORE");
  for (const auto& item : details["findings"]) {
    std::string cves;
    if (item.contains("aliases") && item["aliases"].is_array()) {
      for (const auto& alias : item["aliases"]) {
        std::string a = text_of(alias);
        if (a.rfind("CVE-", 0) == 0) cves += (cves.empty() ? "" : ",") + a;
      }
    }
    std::string severity = text_of(item.value("severity", nlohmann::json()));
    if (item.contains("counted_as")) severity += " (as " + text_of(item["counted_as"]) + ")";
    std::string score = "-";
    if (item.contains("score") && item["score"].is_number()) {
      char buffer[16];
      std::snprintf(buffer, sizeof buffer, "%.1f", item["score"].get<double>());
      score = buffer;
    }
    std::printf("%-26s %-30s %-24s %-28s %-28s %-9s %s\n", text_of(item.value("id", nlohmann::json())).c_str(),
                cves.empty() ? "-" : cves.c_str(), text_of(item.value("package", nlohmann::json())).c_str(),
                text_of(item.value("installed_version", nlohmann::json())).c_str(),
                text_of(item.value("fixed_version", nlohmann::json()), "no fix").c_str(), severity.c_str(), score.c_str());
  }
  if (details.contains("findings_omitted")) std::printf("... and %s more\n", details["findings_omitted"].dump().c_str());
}

// The image's OS and packages, as layer inspection found them.
void print_inventory(const nlohmann::json& inventory) {
  const auto& os = inventory["os"];
  std::string name = os.value("pretty_name", "");
  if (name.empty()) name = os.value("id", "") + " " + os.value("version_id", "");
  if (name == " ") name = "unknown (no /etc/os-release)";
  const auto& packages = inventory["packages"];
  std::printf("\nos       %s\npackages %zu%s\n", name.c_str(), packages.size(),
              inventory.value("complete", false) ? "" : " (incomplete: not every layer could be inspected)");
  if (packages.empty()) return;
  std::printf("%-40s %-32s %s\n", "PACKAGE", "VERSION", "FORMAT");
  for (const auto& p : packages) {
    std::printf("%-40s %-32s %s\n", p.value("name", "").c_str(), p.value("version", "").c_str(),
                p.value("format", "").c_str());
  }
}

}  // namespace

int check_image(server::Settings settings, const CheckOptions& options) {
  if (settings.vulnerabilities.configured && !settings.vulnerabilities.database) {
    std::fprintf(stderr, "ocigate check: warning: no vulnerability database loaded (%s): the vulnerabilities check answers unknown\n",
                 settings.vulnerabilities.error.c_str());
  }
  auto inspection = server::inspect_image(std::move(settings), options.reference, options.os, options.architecture);
  if (!inspection) {
    std::fprintf(stderr, "ocigate check: %s: %s\n", options.reference.c_str(), inspection.error().message.c_str());
    return 2;
  }
  const policy::Verdict& result = inspection->verdict;
  if (options.format == "json") {
    nlohmann::json out = result.to_json();
    if (inspection->inventory) out["inventory"] = *inspection->inventory;
    std::printf("%s\n", out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    print_table(result);
    for (const auto& f : result.findings) print_findings(f);
    if (inspection->inventory) print_inventory(*inspection->inventory);
  }
  return result.decision == policy::Decision::block ? 1 : 0;
}

}  // namespace ocigate::cli
