#pragma once
// Certificate steps of keyless verification, private to the signature module.

#include <chrono>
#include <string>

#include "crypto.hpp"
#include "ocigate/signature/keyless.hpp"

namespace ocigate::signature::detail {

CertificateIdentity identity_of(X509* cert);

struct ChainResult {
  std::string ca;     // the CA the chain verified to; "" on failure
  X509Ptr issuer;     // the certificate that issued the leaf (for the SCT's issuer key hash)
  std::string error;  // why no CA verified it
  bool ok() const { return !ca.empty(); }
};

// The leaf's chain to one of the root's Fulcio CAs, built from that CA's intermediates only and
// verified at `when`, the CA's validity window holding `when`.
ChainResult verify_fulcio_chain(X509* leaf, const TrustedRoot& root, std::chrono::system_clock::time_point when);

}  // namespace ocigate::signature::detail
