#pragma once
// What the `signature` check reads: the outcome of signature verification for one image,
// computed by the signature module (signature::evaluate) from the signatures the gate fetched.
// A plain struct here so the policy module does not depend on the signature module.

#include <string>

namespace ocigate::policy {

struct SignatureFacts {
  bool required = false;    // some policy.trust entry matches the image
  bool satisfied = false;   // every matching entry has at least one valid signature
  // Unsatisfied because signatures could not be looked up (upstream error): still a failure (the
  // check fails closed), but one worth retrying: do not cache such a verdict for long.
  bool incomplete = false;
  std::string message;      // one line: what verified with which key, or exactly why nothing did
  std::string remediation;  // for a failure
  std::string evidence;     // per entry: the signatures seen and each one's result
};

// What the `provenance` check reads: whether the image carries a verified SLSA provenance
// attestation whose builder and source repository every matching policy.trust entry with a
// `provenance:` rule accepts (signature::evaluate computes it with the signatures).
struct ProvenanceFacts {
  bool required = false;   // some matching policy.trust entry has a provenance rule
  bool satisfied = false;  // every such entry accepts one verified attestation
  // Attestations could not be looked up (upstream error) and none satisfied: "unknown", not a
  // failure, and not worth caching for long.
  bool incomplete = false;
  std::string message;      // what matched, or which field did not
  std::string remediation;  // for a failure
  std::string evidence;     // per entry: the attestations seen and each one's result
};

}  // namespace ocigate::policy
