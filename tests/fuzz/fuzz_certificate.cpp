// Certificates as signers send them (DER in bundles, PEM in cosign annotations): the first input
// byte picks DER identity extraction, PEM lists, or the embedded-SCT check against Sigstore's
// public-good CT logs (the precertificate rebuilt from the input). Never a crash, and nothing the
// fuzzer makes carries an SCT a real CT log signed.
#include <openssl/err.h>
#include <openssl/x509.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>

#include "ocigate/signature/bundle.hpp"
#include "ocigate/signature/keyless.hpp"
#include "ocigate/signature/trusted_root.hpp"

namespace {

using namespace ocigate::signature;

const TrustedRoot* public_good() {
  static const std::unique_ptr<TrustedRoot> root = [] {
    std::ifstream in(OCIGATE_TRUSTED_ROOT);
    auto parsed = parse_trusted_root(std::string(std::istreambuf_iterator<char>(in), {}));
    return parsed ? std::make_unique<TrustedRoot>(std::move(*parsed)) : nullptr;
  }();
  return root.get();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] % 3) {
    case 0:
      (void)certificate_identity(text);
      break;
    case 1:
      (void)parse_pem_certificates(text);
      break;
    default: {
      const auto* p = reinterpret_cast<const unsigned char*>(text.data());
      std::unique_ptr<X509, void (*)(X509*)> leaf(d2i_X509(nullptr, &p, static_cast<long>(text.size())), X509_free);
      ERR_clear_error();
      const TrustedRoot* root = public_good();
      if (!leaf || !root || root->certificate_authorities.empty()) break;
      auto issuer = root->certificate_authorities.back().chain.front().get();
      (void)verify_embedded_sct(leaf.get(), issuer, *root);
      break;
    }
  }
  return 0;
}
