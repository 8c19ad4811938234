// Keyless signature material as registries hand it out: the first input byte picks the parser
// (sigstore bundle, cosign's Rekor bundle annotation, trusted_root.json, a Rekor checkpoint) and
// then the bundle goes through full keyless verification against Sigstore's public-good root
// (read once from the test data). Each must answer with a result or an error, never a crash.
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>

#include "ocigate/signature/bundle.hpp"
#include "ocigate/signature/keyless.hpp"
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
    auto id = make_keyless_identity("https://token.actions.githubusercontent.com", "", ".*");
    if (id) t.identities.push_back(std::move(*id));
    return t;
  }();
  return trust;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  const KeylessTrust& trust = public_good();
  switch (data[0] % 4) {
    case 0: {
      (void)parse_sigstore_bundle(text);
      Envelope envelope{"sha256:" + std::string(64, 'a'), std::string(sigstore_bundle_media_type), std::string(sigstore_bundle_media_type), text};
      (void)verify_sigstore_bundle(envelope, "sha256:" + std::string(64, 'a'), Signers{{}, &trust, {}});
      break;
    }
    case 1: {
      auto entry = parse_cosign_rekor_bundle(text);
      if (entry && trust.root && !trust.root->tlogs.empty()) (void)verify_tlog_entry(*entry, trust.root->tlogs.front());
      break;
    }
    case 2:
      (void)parse_trusted_root(text);
      break;
    default:
      if (trust.root && !trust.root->tlogs.empty()) (void)verify_checkpoint(text, trust.root->tlogs.front());
      break;
  }
  return 0;
}
