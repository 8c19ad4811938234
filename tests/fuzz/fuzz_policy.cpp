// The policy section: YAML text loaded as a node, then handed to parse_policy like the config
// loader does.
#include <yaml-cpp/yaml.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "ocigate/policy/policy.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  YAML::Node node;
  try {
    node = YAML::Load(std::string(reinterpret_cast<const char*>(data), size));
  } catch (const YAML::Exception&) {
    return 0;  // not YAML: the config loader refuses it before the policy sees it
  }
  // parse_policy reports every problem as a Result; an exception escaping it is a bug.
  (void)ocigate::policy::parse_policy(node, "fuzz.yaml");
  return 0;
}
