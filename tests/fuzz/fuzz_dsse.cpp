// DSSE envelopes (a cosign `.att` layer) and the in-toto statements inside: the first input byte
// picks the envelope parser, the SLSA provenance reader, or a whole `.att` manifest whose layer
// is the input, verified keyless against Sigstore's public-good root with no annotations (so
// nothing may verify).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "ocigate/oci/digest.hpp"
#include "ocigate/signature/bundle.hpp"
#include "ocigate/signature/keyless.hpp"
#include "ocigate/signature/provenance.hpp"
#include "ocigate/signature/trusted_root.hpp"
#include "ocigate/signature/verify.hpp"

namespace {

using namespace ocigate::signature;

const KeylessTrust& public_good() {
  static const KeylessTrust trust = [] {
    KeylessTrust t;
    std::ifstream in(OCIGATE_TRUSTED_ROOT);
    auto root = parse_trusted_root(std::string(std::istreambuf_iterator<char>(in), {}));
    if (root) t.root = std::make_shared<const TrustedRoot>(std::move(*root));
    return t;
  }();
  return trust;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] % 3) {
    case 0:
      (void)parse_dsse_envelope(text);
      break;
    case 1: {
      auto provenance = read_provenance(text);
      if (provenance) (void)provenance_mismatch(*provenance, ProvenanceRule{{"https://github.com/**"}, {"https://github.com/*/*"}});
      (void)normalize_repository(text);
      break;
    }
    default: {
      const std::string digest = ocigate::oci::sha256_digest(text);
      nlohmann::json manifest = {{"schemaVersion", 2},
                                 {"layers", {{{"mediaType", "application/vnd.dsse.envelope.v1+json"}, {"digest", digest}, {"size", text.size()}}}}};
      CosignTagSignature att{manifest.dump(), {{digest, text}}};
      for (const auto& r : verify_cosign_attestations(att, "sha256:" + std::string(64, 'a'), Signers{{}, &public_good(), {}})) {
        if (r.valid()) std::abort();  // no key, no certificate: nothing verifies
      }
      break;
    }
  }
  return 0;
}
