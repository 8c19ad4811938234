#pragma once
// Glue between the Sigstore stand-in (keyless_fixtures.hpp) and the verifier's inputs.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "keyless_fixtures.hpp"
#include "ocigate/signature/evaluate.hpp"
#include "ocigate/signature/keyless.hpp"
#include "ocigate/signature/trusted_root.hpp"

namespace ocigate::signature::test {

inline const std::string github_issuer = "https://token.actions.githubusercontent.com";
inline const std::string release_workflow = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.0.0";
inline const std::string image_digest_a = "sha256:" + std::string(64, 'a');
inline const std::string image_digest_b = "sha256:" + std::string(64, 'b');

inline std::shared_ptr<const TrustedRoot> root_of(const KeylessFixtures& f) {
  auto root = parse_trusted_root(f.trusted_root_json());
  EXPECT_TRUE(root.ok()) << (root.ok() ? "" : root.error().message);
  return root.ok() ? std::make_shared<const TrustedRoot>(std::move(*root)) : std::make_shared<const TrustedRoot>();
}

inline KeylessIdentity identity(const std::string& issuer, const std::string& subject, const std::string& regexp = "") {
  auto id = make_keyless_identity(issuer, subject, regexp);
  EXPECT_TRUE(id.ok()) << (id.ok() ? "" : id.error().message);
  return id.ok() ? *id : KeylessIdentity{};
}

// Trusts the fixtures' root and the release workflow (or the given identities).
inline KeylessTrust keyless_trust(const KeylessFixtures& f, std::vector<KeylessIdentity> ids = {}, bool require_tlog = true) {
  KeylessTrust trust;
  trust.root = root_of(f);
  trust.trusted_root_path = "trusted_root.json";
  trust.identities = ids.empty() ? std::vector<KeylessIdentity>{identity(github_issuer, release_workflow)} : std::move(ids);
  trust.require_tlog = require_tlog;
  return trust;
}

inline CosignTagSignature sig_tag(const SignedMessage& m) {
  auto [manifest, blobs] = cosign_manifest({{"application/vnd.dev.cosign.simplesigning.v1+json", m.payload, m.annotations()}});
  return CosignTagSignature{manifest, blobs};
}

inline CosignTagSignature att_tag(const SignedDsse& d) {
  auto [manifest, blobs] = cosign_manifest({{"application/vnd.dsse.envelope.v1+json", d.envelope, d.annotations()}});
  return CosignTagSignature{manifest, blobs};
}

inline Envelope bundle_envelope(const std::string& bundle) {
  return Envelope{"sha256:" + std::string(64, 'e'), "application/vnd.dev.sigstore.bundle.v0.3+json",
                  "application/vnd.dev.sigstore.bundle.v0.3+json", bundle};
}

inline SignatureResult only_result(const std::vector<SignatureResult>& results) {
  EXPECT_EQ(results.size(), 1u);
  return results.empty() ? SignatureResult{} : results.front();
}

// A statement the cosign v3 way: the image digest as subject.
inline std::string sign_statement(const std::string& digest) {
  return nlohmann::json{{"_type", "https://in-toto.io/Statement/v1"},
                        {"subject", {{{"name", "ghcr.io/acme/app"}, {"digest", {{"sha256", digest.substr(7)}}}}}},
                        {"predicateType", "https://sigstore.dev/cosign/sign/v1"},
                        {"predicate", nlohmann::json::object()}}
      .dump();
}

}  // namespace ocigate::signature::test
