#pragma once
// Builders for image facts in policy tests.

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ocigate/policy/checks.hpp"
#include "ocigate/policy/engine.hpp"

namespace ocigate::policy::test {

inline const std::string digest_a = "sha256:" + std::string(64, 'a');
inline const std::string digest_b = "sha256:" + std::string(64, 'b');

// 2025-06-15T12:00:00Z
inline std::chrono::system_clock::time_point test_now() {
  return std::chrono::system_clock::time_point(std::chrono::seconds(1749988800));
}

// A compliant image: non-root, healthcheck, pinned base, recent, clean history.
inline nlohmann::json good_config() {
  return {
      {"created", "2025-06-01T10:00:00.123456789Z"},
      {"config",
       {{"User", "10001"},
        {"Env", {"PATH=/usr/local/bin:/usr/bin", "GPG_KEY=ABCDEF"}},
        {"Labels", {{"org.opencontainers.image.base.digest", "sha256:" + std::string(64, 'c')}}},
        {"Healthcheck", {{"Test", {"CMD", "/healthz"}}}}}},
      {"history",
       {{{"created_by", "/bin/sh -c #(nop) ADD file:5d9b in / "}},
        {{"created_by", "/bin/sh -c #(nop)  CMD [\"sh\"]"}, {"empty_layer", true}},
        {{"created_by", "RUN /bin/sh -c apk add --no-cache curl # buildkit"}},
        {{"created_by", "COPY app /app # buildkit"}}}}};
}

inline ImageFacts facts_with(nlohmann::json config) {
  ImageFacts facts;
  facts.upstream = "docker.io";
  facts.repository = "acme/app";
  facts.reference = "1.2.3";
  facts.digest = digest_a;
  facts.config = std::move(config);
  facts.now = test_now();
  return facts;
}

inline ImageFacts good_facts() { return facts_with(good_config()); }

// History entries (created_by only) after a base rootfs entry.
inline nlohmann::json history(std::initializer_list<std::string> created_by) {
  nlohmann::json out = nlohmann::json::array();
  out.push_back({{"created_by", "/bin/sh -c #(nop) ADD file:5d9b in / "}});
  for (const auto& c : created_by) out.push_back({{"created_by", c}});
  return out;
}

inline const Finding* finding(const Verdict& verdict, const std::string& check) {
  for (const auto& f : verdict.findings) {
    if (f.check == check) return &f;
  }
  return nullptr;
}

}  // namespace ocigate::policy::test
