// The signature check for one image: every matching policy.trust entry needs one valid signature;
// the provenance check: every matching entry with a provenance rule needs one verified SLSA
// provenance attestation that the rule accepts.

#include "ocigate/signature/evaluate.hpp"

#include <algorithm>

#include "ocigate/signature/keyless.hpp"
#include "ocigate/signature/provenance.hpp"

namespace ocigate::signature {

namespace {

std::string hex_of(std::string_view digest) {
  auto colon = digest.find(':');
  return std::string(colon == std::string_view::npos ? digest : digest.substr(colon + 1));
}

// The most telling reason among failed results: a validly signed payload for the wrong digest
// says more than an unknown key, which says more than a malformed envelope.
Reason worst(const std::vector<SignatureResult>& results) {
  static constexpr Reason order[] = {Reason::replay,        Reason::wrong_type,    Reason::wrong_identity,
                                     Reason::bad_chain,     Reason::bad_tlog,      Reason::bad_sct,
                                     Reason::expired,       Reason::bad_signature, Reason::untrusted_key,
                                     Reason::keyless,       Reason::malformed,     Reason::unsupported};
  for (Reason reason : order) {
    for (const auto& r : results) {
      if (r.reason == reason) return reason;
    }
  }
  return Reason::malformed;
}

std::string cut(std::string text, std::size_t limit) {
  if (text.size() > limit) text = text.substr(0, limit - 3) + "...";
  return text;
}

std::string join(const std::vector<std::string>& parts, const char* sep) {
  std::string s;
  for (const auto& p : parts) s += (s.empty() ? "" : sep) + p;
  return s;
}

bool is_bundle(const Envelope& envelope) {
  return envelope.artifact_type.rfind("application/vnd.dev.sigstore.bundle", 0) == 0 ||
         envelope.media_type.rfind("application/vnd.dev.sigstore.bundle", 0) == 0;
}

Signers signers_of(const LoadedTrustEntry& entry, std::chrono::system_clock::time_point now) {
  return Signers{entry.cosign_keys, entry.cosign_keyless.get(), now};
}

std::string prefix_of(const Subject& subject) {
  return subject.via_index ? "index " + subject.digest.substr(0, 19) + ": " : "";
}

// Every signature of the candidates the entry takes, named after the subject they came through.
std::vector<SignatureResult> signatures_for(const LoadedTrustEntry& entry, const Candidates& candidates,
                                            std::chrono::system_clock::time_point now) {
  std::vector<SignatureResult> out;
  Signers signers = signers_of(entry, now);
  for (const auto& subject : candidates.subjects) {
    std::vector<SignatureResult> results;
    if (entry.cosign && subject.cosign_tag) results = verify_cosign_tag(*subject.cosign_tag, subject.digest, signers);
    for (const auto& envelope : subject.envelopes) {
      if (is_bundle(envelope) && entry.cosign) {
        results.push_back(verify_sigstore_bundle(envelope, subject.digest, signers));
      } else if (envelope.artifact_type == notation_artifact_type && entry.notation) {
        results.push_back(verify_notation(envelope, subject.digest, subject.size, entry, now));
      }
    }
    for (auto& r : results) {
      r.what = prefix_of(subject) + r.what;
      out.push_back(std::move(r));
    }
  }
  return out;
}

// The attestations an entry with a provenance rule looks at: .att layers, and the bundles
// already verified as signatures (a bundle carries whatever statement was signed).
std::vector<SignatureResult> attestations_for(const LoadedTrustEntry& entry, const Candidates& candidates,
                                              const std::vector<SignatureResult>& signatures,
                                              std::chrono::system_clock::time_point now) {
  std::vector<SignatureResult> out;
  Signers signers = signers_of(entry, now);
  for (const auto& subject : candidates.subjects) {
    if (!subject.attestation_tag) continue;
    for (auto& r : verify_cosign_attestations(*subject.attestation_tag, subject.digest, signers)) {
      r.what = prefix_of(subject) + r.what;
      out.push_back(std::move(r));
    }
  }
  for (const auto& r : signatures) {
    if (r.format == Format::sigstore_bundle) out.push_back(r);
  }
  return out;
}

// One evidence line per signature; a keyless one names who signed, the log index and when.
std::string result_line(const SignatureResult& r) {
  std::string line = std::string(format_text(r.format)) + " " + r.what + ": " + reason_text(r.reason);
  if (!r.valid() && !r.detail.empty()) line += " (" + r.detail + ")";
  if (r.valid() && !r.identity.empty()) {
    line += " (identity " + r.identity + ", issuer " + r.issuer;
    if (r.log_index >= 0) line += ", log index " + std::to_string(r.log_index);
    if (r.signing_time) line += ", signed " + utc_text(*r.signing_time);
    line += ")";
  }
  return line;
}

std::string evidence_of(const std::string& label, const std::vector<SignatureResult>& results, const std::string& looked) {
  if (results.empty()) return label + ": none found (looked for " + looked + ")";
  std::vector<std::string> seen;
  for (const auto& r : results) seen.push_back(result_line(r));
  return label + ": " + join(seen, "; ");
}

std::string looked_for(const LoadedTrustEntry& entry) {
  return entry.cosign && entry.notation ? "cosign .sig tag, sigstore bundle and notation referrers"
         : entry.cosign                 ? "cosign .sig tag and sigstore bundle referrers"
                                        : "notation referrers";
}

std::vector<std::string> remediation_for(const LoadedTrustEntry& entry, std::string_view image) {
  std::vector<std::string> out;
  if (!entry.cosign_keys.empty()) {
    out.push_back("sign the digest with a trusted key (`cosign sign --key <key> " + std::string(image) + "@<digest>`; trusted: " +
                  std::to_string(entry.cosign_keys.size()) + " key(s) in " + entry.where + ")");
  }
  if (entry.cosign_keyless) {
    std::string ids;
    for (const auto& id : entry.cosign_keyless->identities) ids += (ids.empty() ? "" : "; ") + id.text();
    out.push_back("sign keyless (`cosign sign " + std::string(image) + "@<digest>`) as an identity " + entry.where +
                  " trusts [" + ids + "], logged in Rekor");
  }
  if (entry.notation) {
    out.push_back("sign with `notation sign` using a certificate that chains to " + entry.notation_store_path +
                  " and matches an identity of " + entry.where);
  }
  return out;
}

// Whether one verified attestation carries provenance the rule accepts; the message says what
// matched or, most specific first, why nothing did.
struct ProvenanceJudgement {
  bool satisfied = false;
  std::string message;
};

ProvenanceJudgement judge_provenance(const ProvenanceRule& rule, const std::vector<SignatureResult>& attestations) {
  std::string mismatch, unreadable;
  std::vector<SignatureResult> failed;
  std::size_t other_predicates = 0;
  for (const auto& r : attestations) {
    if (!r.valid()) {
      failed.push_back(r);
      continue;
    }
    if (!is_slsa_provenance(r.predicate_type)) {
      ++other_predicates;
      continue;
    }
    auto provenance = read_provenance(r.statement);
    if (!provenance) {
      if (unreadable.empty()) unreadable = r.what + ": " + provenance.error().message;
      continue;
    }
    std::string why = provenance_mismatch(*provenance, rule);
    if (why.empty()) {
      return {true, "builder " + provenance->builder_id + " from " + provenance->source_repository + " (" +
                        format_text(r.format) + " " + r.what + (r.identity.empty() ? "" : ", signed by " + r.identity) + ")"};
    }
    if (mismatch.empty()) mismatch = why + " (" + r.what + ")";
  }
  if (!mismatch.empty()) return {false, mismatch};
  if (!unreadable.empty()) return {false, unreadable};
  if (!failed.empty()) return {false, "no verified provenance attestation: " + std::string(reason_text(worst(failed)))};
  if (other_predicates > 0) return {false, "no SLSA provenance among " + std::to_string(other_predicates) + " verified attestation(s)"};
  return {false, "no provenance attestation found (looked for the .att tag and sigstore bundle referrers)"};
}

std::string first_lookup_error(const Candidates& candidates) {
  for (const auto& subject : candidates.subjects) {
    if (subject.lookup_error) return *subject.lookup_error;
  }
  return {};
}

void provenance_facts(Evaluation& out, const std::vector<std::string>& passed, const std::vector<std::string>& failed,
                      const std::vector<std::string>& evidence, const std::vector<std::string>& remediation,
                      const std::string& lookup_error) {
  policy::ProvenanceFacts& p = out.provenance;
  if (passed.empty() && failed.empty()) {
    p.message = "no provenance required: no matching policy.trust entry has a provenance rule";
    return;
  }
  p.required = true;
  p.satisfied = failed.empty();
  p.evidence = cut(join(evidence, " | "), 2000);
  if (p.satisfied) {
    p.message = cut("provenance: " + join(passed, "; "), 600);
    return;
  }
  p.incomplete = !lookup_error.empty();
  p.message = p.incomplete ? cut("attestations could not be looked up (" + lookup_error + "); " + join(failed, "; "), 600)
                           : cut("provenance not accepted: " + join(failed, "; "), 600);
  p.remediation = cut(join(remediation, "; "), 600);
}

}  // namespace

std::string FetchPlan::cosign_tag(std::string_view digest) { return "sha256-" + hex_of(digest) + ".sig"; }
std::string FetchPlan::attestation_tag(std::string_view digest) { return "sha256-" + hex_of(digest) + ".att"; }
std::string FetchPlan::referrers_tag(std::string_view digest) { return "sha256-" + hex_of(digest); }

FetchPlan fetch_plan(const TrustStore& trust, std::string_view image) {
  FetchPlan plan;
  for (const auto* entry : trust.matching(image)) {
    plan.required = true;
    plan.cosign = plan.cosign || entry->cosign;
    plan.notation = plan.notation || entry->notation;
    plan.attestations = plan.attestations || entry->provenance != nullptr;
  }
  if (plan.cosign) plan.artifact_types.emplace_back(sigstore_bundle_media_type);
  if (plan.notation) plan.artifact_types.emplace_back(notation_artifact_type);
  return plan;
}

policy::SignatureFacts not_required() {
  policy::SignatureFacts facts;
  facts.message = "no signature required: no policy.trust entry matches";
  return facts;
}

policy::ProvenanceFacts provenance_not_required() {
  policy::ProvenanceFacts facts;
  facts.message = "no provenance required: no policy.trust entry matches";
  return facts;
}

Evaluation evaluate(const TrustStore& trust, std::string_view image, const Candidates& candidates,
                    std::chrono::system_clock::time_point now) {
  Evaluation out;
  auto entries = trust.matching(image);
  out.provenance = provenance_not_required();
  if (entries.empty()) {
    out.facts = not_required();
    return out;
  }
  out.facts.required = true;
  const std::string lookup_error = first_lookup_error(candidates);

  std::vector<std::string> passed, failed, evidence, remediation;
  std::vector<std::string> prov_passed, prov_failed, prov_evidence, prov_remediation;
  for (const auto* entry : entries) {
    EntryOutcome outcome;
    outcome.match = entry->match;
    outcome.results = signatures_for(*entry, candidates, now);
    auto valid = std::find_if(outcome.results.begin(), outcome.results.end(), [](const SignatureResult& r) { return r.valid(); });
    outcome.satisfied = valid != outcome.results.end();
    std::string label = "trust '" + entry->match + "'";
    if (outcome.satisfied) {
      out.valid.push_back(*valid);
      passed.push_back(label + ": " + format_text(valid->format) + " " + valid->what + " " + valid->detail);
    } else {
      failed.push_back(label + ": " + (outcome.results.empty() ? std::string("no signature found") : std::string(reason_text(worst(outcome.results)))));
      for (auto& line : remediation_for(*entry, image)) remediation.push_back(std::move(line));
    }
    evidence.push_back(evidence_of(label, outcome.results, looked_for(*entry)));
    if (entry->provenance) {
      outcome.attestations = attestations_for(*entry, candidates, outcome.results, now);
      auto judged = judge_provenance(*entry->provenance, outcome.attestations);
      outcome.provenance_satisfied = judged.satisfied;
      (judged.satisfied ? prov_passed : prov_failed).push_back(label + ": " + judged.message);
      prov_evidence.push_back(evidence_of(label, outcome.attestations, "the .att tag and sigstore bundle referrers"));
      if (!judged.satisfied) {
        prov_remediation.push_back("attach a SLSA provenance attestation (e.g. actions/attest-build-provenance with push-to-registry, "
                                   "or `cosign attest --type slsaprovenance`) signed as " + entry->where + " trusts");
      }
    }
    out.entries.push_back(std::move(outcome));
  }

  out.facts.satisfied = failed.empty();
  if (out.facts.satisfied) {
    out.facts.message = cut("signed: " + join(passed, "; "), 600);
  } else {
    out.facts.incomplete = !lookup_error.empty();
    out.facts.message = out.facts.incomplete
                            ? cut("signatures could not be looked up (" + lookup_error + "); " + join(failed, "; "), 600)
                            : cut("not signed as policy.trust requires: " + join(failed, "; "), 600);
    out.facts.remediation = cut(join(remediation, "; "), 600);
  }
  out.facts.evidence = cut(join(evidence, " | "), 2000);
  provenance_facts(out, prov_passed, prov_failed, prov_evidence, prov_remediation, lookup_error);
  return out;
}

}  // namespace ocigate::signature
