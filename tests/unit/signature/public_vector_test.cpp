// Real Sigstore bundles with the trusted roots that verify them, from sigstore-go's test data
// (Apache-2.0, commit 4594ab4c; see data/sigstore-go/README.md).

#include <gtest/gtest.h>

#include <openssl/x509.h>

#include <nlohmann/json.hpp>

#include "helpers.hpp"
#include "keyless_helpers.hpp"
#include "ocigate/signature/provenance.hpp"

namespace {

using namespace ocigate::signature;
using namespace ocigate::signature::test;
using nlohmann::json;

const std::string sigstore_js_workflow = "https://github.com/sigstore/sigstore-js/.github/workflows/release.yml@refs/heads/main";
const std::string sigstore_js_digest =
    "sha512:46d4e2f74c4877316640000a6fdf8a8b59f1e0847667973e9859f774dd31b8f1e0937813b777fb66a2ac67d50540fe34640966eee9fc2ccca387082b4c85cd3c";

std::string vector_file(const std::string& name) { return slurp(data() / "sigstore-go" / name); }

KeylessTrust public_good(std::vector<KeylessIdentity> ids) {
  auto root = parse_trusted_root(vector_file("public-good.json"));
  EXPECT_TRUE(root.ok());
  KeylessTrust trust;
  trust.root = std::make_shared<const TrustedRoot>(std::move(*root));
  trust.identities = std::move(ids);
  return trust;
}

SignatureResult verify_js(const std::string& bundle, const KeylessTrust& trust, const std::string& digest = sigstore_js_digest) {
  return verify_sigstore_bundle(bundle_envelope(bundle), digest, Signers{{}, &trust, std::chrono::system_clock::now()});
}

}  // namespace

TEST(PublicVector, SigstoreJsProvenanceBundleVerifiesWithPublicGood) {
  auto trust = public_good({identity(github_issuer, sigstore_js_workflow)});
  auto r = verify_js(vector_file("sigstore.js@2.0.0-provenance.sigstore.json"), trust);
  ASSERT_TRUE(r.valid()) << reason_text(r.reason) << ": " << r.detail;
  EXPECT_EQ(r.identity, sigstore_js_workflow);
  EXPECT_EQ(r.issuer, github_issuer);
  EXPECT_EQ(r.log_index, 31821305);
  ASSERT_TRUE(r.signing_time);
  EXPECT_EQ(std::chrono::system_clock::to_time_t(*r.signing_time), 1692374735);
  EXPECT_NE(r.detail.find("https://rekor.sigstore.dev"), std::string::npos) << r.detail;
  EXPECT_NE(r.detail.find("SCT from https://ctfe.sigstore.dev/2022"), std::string::npos) << r.detail;
  EXPECT_EQ(r.predicate_type, "https://slsa.dev/provenance/v1");
  auto provenance = read_provenance(r.statement);
  ASSERT_TRUE(provenance.ok()) << provenance.error().message;
  EXPECT_EQ(provenance->builder_id, "https://github.com/actions/runner/github-hosted");
  EXPECT_EQ(provenance->source_repository, "https://github.com/sigstore/sigstore-js");
}

TEST(PublicVector, SigstoreJsBundleIsRefusedForAnotherIdentityOrDigest) {
  auto bundle = vector_file("sigstore.js@2.0.0-provenance.sigstore.json");
  auto r = verify_js(bundle, public_good({identity(github_issuer, "https://github.com/sigstore/sigstore-js/.github/workflows/other.yml@refs/heads/main")}));
  EXPECT_EQ(r.reason, Reason::wrong_identity) << r.detail;
  r = verify_js(bundle, public_good({identity(github_issuer, sigstore_js_workflow)}), "sha512:" + std::string(128, '0'));
  EXPECT_EQ(r.reason, Reason::replay) << r.detail;
}

TEST(PublicVector, SigstoreJsBundleWithTheShardIndexAsGlobalIsRefused) {
  json bundle = json::parse(vector_file("sigstore.js@2.0.0-provenance.sigstore.json"));
  auto& entry = bundle["verificationMaterial"]["tlogEntries"][0];
  entry["logIndex"] = entry["inclusionProof"]["logIndex"];
  auto r = verify_js(bundle.dump(), public_good({identity(github_issuer, sigstore_js_workflow)}));
  EXPECT_EQ(r.reason, Reason::bad_tlog) << r.detail;
}

TEST(PublicVector, SigstoreJsBundleWithATamperedCheckpointIsRefused) {
  json bundle = json::parse(vector_file("sigstore.js@2.0.0-provenance.sigstore.json"));
  auto& checkpoint = bundle["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["checkpoint"]["envelope"];
  std::string note = checkpoint.get<std::string>();
  note.replace(note.find("27657875"), 8, "27657876");
  checkpoint = note;
  auto r = verify_js(bundle.dump(), public_good({identity(github_issuer, sigstore_js_workflow)}));
  EXPECT_EQ(r.reason, Reason::bad_tlog) << r.detail;
  EXPECT_NE(r.detail.find("checkpoint signature does not verify"), std::string::npos) << r.detail;
}

TEST(PublicVector, EmailIdentityBundleWithSetOnlyVerifies) {
  auto trust = public_good({identity("https://github.com/login/oauth", "brian@dehamer.com")});
  auto r = verify_js(vector_file("dsse.sigstore.json"), trust,
                     "sha512:bbfd372fc9beeb777fe35d05bb10c0c70a9733d366a75fed7dd18866c7391de3ee7e88ba74dd47abf3e15c845e547fcf0e5c3da80854c751554224d3a6d4e55f");
  ASSERT_TRUE(r.valid()) << reason_text(r.reason) << ": " << r.detail;
  EXPECT_EQ(r.identity, "brian@dehamer.com");
  EXPECT_EQ(r.predicate_type, "https://slsa.dev/provenance/v0.2");
}

TEST(PublicVector, OtherNameCertificateAndItsLogEntryVerifyWithTheScaffoldingRoot) {
  auto bundle = parse_sigstore_bundle(vector_file("othername.sigstore.json"));
  ASSERT_TRUE(bundle.ok()) << bundle.error().message;
  ASSERT_TRUE(bundle->message.has_value());
  ASSERT_EQ(bundle->certificates.size(), 1u);
  auto id = certificate_identity(bundle->certificates[0]);
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(id->subject, "foo!oidc.local");
  EXPECT_EQ(id->subject_kind, "username");
  EXPECT_EQ(id->issuer, "http://oidc.local:8080");

  auto root = parse_trusted_root(vector_file("scaffolding.json"));
  ASSERT_TRUE(root.ok()) << root.error().message;
  ASSERT_EQ(bundle->tlog_entries.size(), 1u);
  const TlogEntry& entry = bundle->tlog_entries[0];
  const TransparencyLog* log = root->tlog(entry.log_id);
  ASSERT_NE(log, nullptr);
  auto status = verify_tlog_entry(entry, *log);
  EXPECT_TRUE(status.ok()) << status.error().message;
  // The artifact digest sigstore-go's test names (the artifact itself is not published).
  EXPECT_EQ(to_hex(bundle->message->digest), "bc103b4a84971ef6459b294a2b98568a2bfb72cded09d4acd1e16366a401f95b");

  auto der = bundle->certificates[0];
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  std::shared_ptr<X509> leaf(d2i_X509(nullptr, &p, static_cast<long>(der.size())), X509_free);
  ASSERT_TRUE(leaf);
  auto sct = verify_embedded_sct(leaf.get(), root->certificate_authorities[0].chain[0].get(), *root);
  EXPECT_TRUE(sct.ok()) << sct.error().message;
}
