#pragma once
// Policies for tests: parsed from YAML (a failure fails the test), and "every check off but one".

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <string>

#include "ocigate/policy/policy.hpp"

namespace ocigate::test {

// The `policy:` section of `yaml`, parsed.
inline policy::Policy parse_policy(const std::string& yaml) {
  auto parsed = policy::parse_policy(YAML::Load(yaml)["policy"], "test.yaml");
  EXPECT_TRUE(parsed.ok()) << parsed.error().message;
  return parsed.ok() ? *parsed : policy::Policy{};
}

// Every check off but `check` (at `action`; "" for none), plus `extra` YAML under policy:, in
// `mode` (enforce or audit).
inline policy::Policy only_check(const std::string& check, const std::string& action, const std::string& extra = "",
                                 const std::string& mode = "enforce") {
  std::string yaml = "policy:\n  mode: " + mode + "\n  checks:\n";
  for (const auto& id : policy::check_ids()) yaml += "    " + id + ": " + (id == check ? action : "off") + "\n";
  return parse_policy(yaml + extra);
}

}  // namespace ocigate::test
