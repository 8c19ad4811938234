#pragma once
// Pieces of the checks that read layer-inspection facts (private to the module), kept apart so
// the config-level checks in checks.cpp stay readable.

#include <optional>
#include <string>
#include <vector>

#include "ocigate/policy/checks.hpp"

namespace ocigate::policy::fs {

// "<path> (layer sha256:abcd…)": short enough for evidence lists.
std::string where(const FileFinding& finding);
// Evidence for secret files found in any layer.
std::vector<std::string> secret_file_evidence(const CheckInput& in);
// The passwd line that makes `user` (a name, not a number) uid 0, e.g. "toor -> uid 0 in /etc/passwd".
std::optional<std::string> name_maps_to_root(const CheckInput& in, const std::string& user);

}  // namespace ocigate::policy::fs
