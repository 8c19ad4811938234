#pragma once
// Sigstore's trusted root: the TUF target `trusted_root.json` (mediaType
// application/vnd.dev.sigstore.trustedroot+json;version=0.1 or 0.2) that names the Fulcio
// certificate authorities, the Rekor transparency logs and the CT logs keyless verification
// trusts, each with a validity window. Parsed once when the trust is loaded (startup, SIGHUP);
// immutable and shared by every request afterwards.
//
//   certificateAuthorities[]: subject, uri, certChain.certificates[].rawBytes (base64 DER; the
//                             intermediates first, the root last), validFor {start, end?}
//   tlogs[] / ctlogs[]:       baseUrl, hashAlgorithm, publicKey {rawBytes (base64 DER SPKI),
//                             keyDetails, validFor {start, end?}}, logId.keyId (base64)
//   timestampAuthorities[]:   counted, not used (signing times come from Rekor)
// Unknown fields are ignored; a field that is present with the wrong shape is refused.

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <openssl/types.h>

#include "ocigate/common/result.hpp"
#include "ocigate/signature/trust.hpp"

namespace ocigate::signature {

// [start, end]; no end means open-ended.
struct ValidFor {
  std::chrono::system_clock::time_point start;
  std::optional<std::chrono::system_clock::time_point> end;
  bool contains(std::chrono::system_clock::time_point when) const { return when >= start && (!end || when <= *end); }
  std::string text() const;  // "from 2021-03-07T03:20:29Z until 2022-12-31T23:59:59Z" / "from ... (open-ended)"
};

struct CertificateAuthority {
  std::string name;                        // "CN=sigstore,O=sigstore.dev (https://fulcio.sigstore.dev)"
  std::vector<std::shared_ptr<X509>> chain;  // intermediates first, the root (trust anchor) last
  ValidFor valid_for;
};

// A Rekor log or a CT log.
struct TransparencyLog {
  std::string base_url;
  std::string key_id;  // raw bytes of logId.keyId (SHA-256 of the DER key for Rekor and CT logs)
  PublicKey key;
  const EVP_MD* md = nullptr;  // from keyDetails / hashAlgorithm; nullptr for Ed25519
  ValidFor valid_for;
};

struct TrustedRoot {
  std::vector<CertificateAuthority> certificate_authorities;
  std::vector<TransparencyLog> tlogs, ctlogs;
  std::size_t timestamp_authorities = 0;
  std::string fingerprint;  // "sha256:<hex>" of the file's bytes

  const TransparencyLog* tlog(std::string_view key_id) const;
  const TransparencyLog* ctlog(std::string_view key_id) const;
};

// Errors (Errc::config_invalid) say which entry and field: "tlogs[0].publicKey.validFor.start:
// missing". Needs at least one certificate authority and one transparency log.
Result<TrustedRoot> parse_trusted_root(std::string_view json);

// "2024-05-01T10:00:00Z".
std::string utc_text(std::chrono::system_clock::time_point when);

}  // namespace ocigate::signature
