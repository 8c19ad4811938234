// Signature material as upstreams and operators supply it: the first input byte picks the parser
// (PEM key, identity, cosign signature manifest, sigstore bundle, Notation JWS, base64). Each must
// answer with a result or an error, never a crash; nothing verifies without a trusted key.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <openssl/x509_vfy.h>

#include "ocigate/signature/trust.hpp"
#include "ocigate/signature/verify.hpp"

namespace {

const std::string digest = "sha256:" + std::string(64, 'a');

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  using namespace ocigate::signature;
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] % 6) {
    case 0:
      (void)parse_public_key(text, "fuzz.pub");
      break;
    case 1:
      (void)parse_identity(text);
      break;
    case 2: {
      CosignTagSignature signature{text, {}};
      for (const auto& result : verify_cosign_tag(signature, digest, std::vector<PublicKey>{})) {
        if (result.valid()) std::abort();  // no key, no valid signature
      }
      break;
    }
    case 3: {
      Envelope envelope{digest, "application/vnd.dev.sigstore.bundle.v0.3+json",
                        "application/vnd.dev.sigstore.bundle.v0.3+json", text};
      if (verify_sigstore_bundle(envelope, digest, std::vector<PublicKey>{}).valid()) std::abort();
      break;
    }
    case 4: {
      LoadedTrustEntry entry;
      entry.notation = true;
      entry.notation_store = std::shared_ptr<X509_STORE>(X509_STORE_new(), X509_STORE_free);
      Envelope envelope{digest, "application/vnd.cncf.notary.signature", "application/jose+json", text};
      if (verify_notation(envelope, digest, -1, entry, std::chrono::system_clock::now()).valid()) std::abort();
      break;
    }
    default:
      (void)base64_decode(text, data[0] & 0x80);
      (void)ecdsa_raw_to_der(text);
      break;
  }
  return 0;
}
