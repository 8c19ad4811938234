#include "ocigate/server/inspect.hpp"

#include <filesystem>
#include <random>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include "ocigate/metrics/metrics.hpp"
#include "ocigate/server/log.hpp"
#include "pull/proxy.hpp"

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

// A cache in a fresh temporary directory, removed with it: the check never contends with a
// running mirror's database.
class ScratchCache {
 public:
  ScratchCache() {
    std::error_code ec;
    dir_ = std::filesystem::temp_directory_path(ec) / ("ocigate-check-" + std::to_string(std::random_device{}()));
    cache::Options options;
    options.path = dir_.string();
    options.max_size = 1ull << 40;
    opened_ = cache::Store::open(options);
  }
  ~ScratchCache() {
    if (opened_) (*opened_)->close();
    opened_ = Error{};
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  ScratchCache(const ScratchCache&) = delete;
  ScratchCache& operator=(const ScratchCache&) = delete;
  const Result<std::unique_ptr<cache::Store>>& store() const { return opened_; }

 private:
  std::filesystem::path dir_;
  Result<std::unique_ptr<cache::Store>> opened_ = Error{};
};

}  // namespace

Result<Inspection> inspect_image(Settings settings, const std::string& reference, const std::string& os,
                                 const std::string& architecture) {
  std::string log_error;
  log::configure("error", "off", "off", log_error);
  auto split = split_reference(reference);
  if (!split) return split.error();
  if (auto target = resolve_target(settings.config, split->first); !target) return target.error();
  ScratchCache scratch;
  if (!scratch.store()) {
    return Error{Errc::storage_error, "cannot open a scratch cache: " + scratch.store().error().message};
  }
  asio::io_context ioc;
  metrics::Metrics metrics;
  PolicyHolder holder(std::move(settings.policy), std::move(settings.trust));
  std::optional<Result<policy::Verdict>> verdict;
  std::optional<nlohmann::json> stored;  // the verdict with its inventory, as the verdict API shows it
  {
    Proxy proxy(settings.config, **scratch.store(), metrics, holder, ioc.get_executor());
    const Target target = *proxy.resolve(split->first);
    auto judge = [&]() -> asio::awaitable<void> {
      verdict.emplace(co_await proxy.inspect(target, split->second, os, architecture));
    };
    asio::co_spawn(ioc, judge(), asio::detached);
    ioc.run();
    if (verdict && *verdict) {
      if (auto text = proxy.judge().verdicts().stored_verdict((*verdict)->digest)) {
        stored = nlohmann::json::parse(*text, nullptr, false);
      }
    }
  }
  if (!verdict) return Error{Errc::internal, "the evaluation did not finish"};
  if (!*verdict) return verdict->error();
  Inspection inspection{std::move(**verdict), std::nullopt};
  if (stored && stored->is_object() && stored->contains("inventory")) inspection.inventory = (*stored)["inventory"];
  return inspection;
}

}  // namespace ocigate::server
