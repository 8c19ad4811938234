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

}  // namespace ocigate::policy
