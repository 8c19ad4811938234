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
    if (inspection->inventory) print_inventory(*inspection->inventory);
  }
  return result.decision == policy::Decision::block ? 1 : 0;
}

}  // namespace ocigate::cli
