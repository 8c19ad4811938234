#pragma once
// The signature check for one image: which signatures to fetch, and, given what was fetched,
// whether every matching policy.trust entry is satisfied. Pure.
//
// Per image (the gate):
//   1. auto plan = signature::fetch_plan(trust, "<upstream>/<repo>", digest);
//      if (!plan.required) -> facts.signature = signature::not_required(),
//                             facts.provenance = signature::provenance_not_required()  (no fetching)
//   2. For the image digest (and, for a platform manifest reached through an index, the index
//      digest too: cosign signs the index by default), fetch through the cache:
//        - if plan.cosign: the manifest at tag plan.cosign_tag(d) ("sha256-<hex>.sig") and its
//          simplesigning layer blobs -> Subject::cosign_tag; a 404 is simply "none". Keyless
//          signatures need nothing more: their certificate, chain and Rekor bundle are layer
//          annotations of that manifest.
//        - if plan.attestations: the manifest at tag plan.attestation_tag(d) ("sha256-<hex>.att")
//          and its DSSE layer blobs (application/vnd.dsse.envelope.v1+json) ->
//          Subject::attestation_tag; a 404 is "none". Attestations in sigstore bundles arrive
//          with the referrers below (actions/attest, cosign v3).
//        - referrers of d (GET /v2/<repo>/referrers/<d>, or the tag plan.referrers_tag(d)
//          "sha256-<hex>" index where the API is missing) whose artifactType is in
//          plan.artifact_types; for each, the artifact manifest's first layer bytes ->
//          Subject::envelopes (bundles and Notation envelopes alike; told apart by type).
//        - an upstream/network failure (not a 404) -> Subject::lookup_error: unless another
//          signature satisfies the entry, the check fails (closed) with facts.incomplete set
//          and the error in the message; don't keep such a verdict in the verdict cache.
//   3. auto eval = signature::evaluate(trust, image, candidates, now);
//      facts.signature = eval.facts;  -> policy::check_signature turns it into the finding.
//      facts.provenance = eval.provenance;  -> policy::check_provenance (eval.provenance.incomplete:
//      attestations could not be looked up; don't cache that verdict long either).

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ocigate/policy/signature_facts.hpp"
#include "ocigate/signature/trust.hpp"
#include "ocigate/signature/verify.hpp"

namespace ocigate::signature {

struct FetchPlan {
  bool required = false;  // some trust entry matches: fetch signatures
  bool cosign = false;    // a matching entry takes cosign signatures (tag .sig and bundles)
  bool notation = false;  // a matching entry takes Notation signatures
  bool attestations = false;  // a matching entry has a provenance rule: fetch the .att tag too
  // Referrer artifact types worth fetching (sigstore bundle and/or Notation signature).
  std::vector<std::string> artifact_types;

  static std::string cosign_tag(std::string_view digest);     // "sha256-<hex>.sig"
  static std::string attestation_tag(std::string_view digest);  // "sha256-<hex>.att"
  static std::string referrers_tag(std::string_view digest);  // "sha256-<hex>"
};

FetchPlan fetch_plan(const TrustStore& trust, std::string_view image);

// The signatures found for one digest.
struct Subject {
  std::string digest;      // "sha256:<hex>": what the signatures must name
  std::int64_t size = -1;  // manifest size in bytes, for Notation; -1 when unknown
  bool via_index = false;  // the index this platform manifest was reached through
  std::optional<CosignTagSignature> cosign_tag;
  std::optional<CosignTagSignature> attestation_tag;  // the .att manifest and its DSSE blobs
  std::vector<Envelope> envelopes;          // bundles and Notation envelopes from referrers
  std::optional<std::string> lookup_error;  // fetching failed (not "none found")
};

struct Candidates {
  std::vector<Subject> subjects;  // the image itself first, then the index it was reached through
};

struct EntryOutcome {
  std::string match;
  bool satisfied = false;
  std::vector<SignatureResult> results;  // every signature tried for this entry
  // Entries with a provenance rule: every attestation tried (.att layers and bundles), and
  // whether one verified with matching provenance.
  std::vector<SignatureResult> attestations;
  bool provenance_satisfied = false;
};

struct Evaluation {
  policy::SignatureFacts facts;         // for policy::ImageFacts::signature
  policy::ProvenanceFacts provenance;   // for policy::ImageFacts::provenance
  std::vector<EntryOutcome> entries;    // one per matching entry
  std::vector<SignatureResult> valid;   // the signatures that satisfied entries (for metrics/logs)
};

Evaluation evaluate(const TrustStore& trust, std::string_view image, const Candidates& candidates,
                    std::chrono::system_clock::time_point now);

// Facts for an image no entry matches (what evaluate returns for it, without the candidates).
policy::SignatureFacts not_required();
policy::ProvenanceFacts provenance_not_required();

}  // namespace ocigate::signature
