#pragma once
// SLSA provenance in an in-toto statement (the predicate of a verified attestation): who built
// the image and from which source repository, matched against a trust entry's globs. Pure.
//
//   https://slsa.dev/provenance/v1    builder: runDetails.builder.id
//                                     source:  buildDefinition.externalParameters.workflow.repository
//                                              (GitHub Actions build type), else ...externalParameters
//                                              .source (a string or {uri}) or .repository, else
//                                              buildDefinition.resolvedDependencies[0].uri
//   https://slsa.dev/provenance/v0.2  builder: builder.id
//                                     source:  invocation.configSource.uri, else materials[0].uri
// A source is compared as a repository URL: without a "git+" prefix, an "@<ref>" after the host,
// or a trailing ".git" ("git+https://github.com/acme/app@refs/heads/main" -> "https://github.com/acme/app").

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ocigate/common/result.hpp"

namespace ocigate::signature {

inline constexpr std::string_view slsa_provenance_v1 = "https://slsa.dev/provenance/v1";
inline constexpr std::string_view slsa_provenance_v02 = "https://slsa.dev/provenance/v0.2";

bool is_slsa_provenance(std::string_view predicate_type);

// A trust entry's `provenance:` rule: globs as repository globs ('*' within a path segment, '**'
// across, '?' one character), over builder ids and source repository URLs.
struct ProvenanceRule {
  std::vector<std::string> builder_ids;
  std::vector<std::string> source_repositories;
};

struct Provenance {
  std::string predicate_type;
  std::string builder_id;
  std::string source_repository;  // normalized as above
};

// The provenance an in-toto statement (JSON) carries; an error when it is not SLSA provenance
// v0.2 / v1 or names no builder id or source repository.
Result<Provenance> read_provenance(std::string_view statement);

// "" when both fields match the rule; otherwise each that did not, e.g. "builder id
// 'https://x' matches none of builder_ids [https://github.com/acme/*]".
std::string provenance_mismatch(const Provenance& provenance, const ProvenanceRule& rule);

std::string normalize_repository(std::string_view uri);

}  // namespace ocigate::signature
