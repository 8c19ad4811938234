// `ocigate check`: judges one image straight from its upstream with the mirror's engine and policy,
// for CI pipelines. Uses a throw-away cache so it never contends with a running mirror's database.

#include "ocigate/server/check.hpp"

#include <cctype>
#include <cstdio>
#include <optional>
#include <filesystem>
#include <random>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/detached.hpp>

#include "ocigate/metrics/metrics.hpp"
#include "ocigate/server/log.hpp"
#include "proxy.hpp"

namespace ocigate::server {

namespace asio = boost::asio;

namespace {

// "docker.io/library/alpine:3.19", "ghcr.io/acme/app@sha256:…", "alpine" (default upstream, tag latest).
Result<std::pair<oci::Route, std::string>> split_reference(const std::string& text) {
  oci::Route route;
  route.kind = oci::RouteKind::manifest;
  std::string name = text;
  std::string reference = "latest";
  auto slash = text.rfind('/');
  auto colon = text.rfind(':');
  if (auto at = text.find('@'); at != std::string::npos) {
    name = text.substr(0, at);
    reference = text.substr(at + 1);
  } else if (colon != std::string::npos && (slash == std::string::npos || colon > slash)) {
    // A colon after the last slash starts a tag; one before it belongs to a host:port.
    name = text.substr(0, colon);
    reference = text.substr(colon + 1);
  }
  if (name.empty()) return Error{Errc::name_invalid, "empty image name"};
  route.name = name;
  route.reference = reference;
  return std::pair{route, reference};
}

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

int check_image(const config::Config& config, policy::Policy policy, signature::TrustStore trust,
                const CheckOptions& options) {
  std::string log_error;
  log::configure("error", "off", "off", log_error);
  auto split = split_reference(options.reference);
  if (!split) {
    std::fprintf(stderr, "ocigate check: %s\n", split.error().message.c_str());
    return 2;
  }
  if (auto target = resolve_target(config, split->first); !target) {
    std::fprintf(stderr, "ocigate check: %s\n", target.error().message.c_str());
    return 2;
  }
  std::error_code ec;
  auto dir = std::filesystem::temp_directory_path(ec) /
             ("ocigate-check-" + std::to_string(std::random_device{}()));
  cache::Options scratch;
  scratch.path = dir.string();
  scratch.max_size = 1ull << 40;
  auto store = cache::Store::open(scratch);
  if (!store) {
    std::fprintf(stderr, "ocigate check: cannot open a scratch cache: %s\n", store.error().message.c_str());
    return 2;
  }
  asio::io_context ioc;
  metrics::Metrics metrics;
  PolicyHolder holder(std::move(policy), std::move(trust));
  std::optional<Result<policy::Verdict>> verdict;
  std::optional<nlohmann::json> stored;  // the verdict with its inventory, as the verdict API shows it
  {
    Proxy proxy(config, **store, metrics, holder, ioc.get_executor());
    const Target target = *proxy.resolve(split->first);
    auto judge = [&]() -> asio::awaitable<void> {
      verdict.emplace(co_await proxy.inspect(target, split->second, options.os, options.architecture));
    };
    asio::co_spawn(ioc, judge(), asio::detached);
    ioc.run();
    if (verdict && *verdict) {
      if (auto text = proxy.verdict((*verdict)->digest)) stored = nlohmann::json::parse(*text, nullptr, false);
    }
  }
  (*store)->close();
  store->reset();
  std::filesystem::remove_all(dir, ec);
  if (!verdict) {
    std::fprintf(stderr, "ocigate check: %s: the evaluation did not finish\n", options.reference.c_str());
    return 2;
  }
  if (!*verdict) {
    std::fprintf(stderr, "ocigate check: %s: %s\n", options.reference.c_str(), verdict->error().message.c_str());
    return 2;
  }
  const policy::Verdict& result = **verdict;
  const bool has_inventory = stored && stored->is_object() && stored->contains("inventory");
  if (options.format == "json") {
    nlohmann::json out = result.to_json();
    if (has_inventory) out["inventory"] = (*stored)["inventory"];
    std::printf("%s\n", out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    print_table(result);
    if (has_inventory) print_inventory((*stored)["inventory"]);
  }
  return result.decision == policy::Decision::block ? 1 : 0;
}

}  // namespace ocigate::server
