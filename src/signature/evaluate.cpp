// The signature check for one image: every matching policy.trust entry needs one valid signature.

#include "ocigate/signature/evaluate.hpp"

#include <algorithm>

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
                                     Reason::bad_chain,     Reason::expired,       Reason::bad_signature,
                                     Reason::untrusted_key, Reason::keyless,       Reason::malformed,
                                     Reason::unsupported};
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

}  // namespace

std::string FetchPlan::cosign_tag(std::string_view digest) { return "sha256-" + hex_of(digest) + ".sig"; }
std::string FetchPlan::referrers_tag(std::string_view digest) { return "sha256-" + hex_of(digest); }

FetchPlan fetch_plan(const TrustStore& trust, std::string_view image) {
  FetchPlan plan;
  for (const auto* entry : trust.matching(image)) {
    plan.required = true;
    plan.cosign = plan.cosign || entry->cosign;
    plan.notation = plan.notation || entry->notation;
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

Evaluation evaluate(const TrustStore& trust, std::string_view image, const Candidates& candidates,
                    std::chrono::system_clock::time_point now) {
  Evaluation out;
  auto entries = trust.matching(image);
  if (entries.empty()) {
    out.facts = not_required();
    return out;
  }
  out.facts.required = true;
  std::string lookup_error;
  for (const auto& subject : candidates.subjects) {
    if (subject.lookup_error && lookup_error.empty()) lookup_error = *subject.lookup_error;
  }

  std::vector<std::string> passed, failed, evidence, remediation;
  bool all_satisfied = true;
  for (const auto* entry : entries) {
    EntryOutcome outcome;
    outcome.match = entry->match;
    for (const auto& subject : candidates.subjects) {
      std::string prefix = subject.via_index ? "index " + subject.digest.substr(0, 19) + ": " : "";
      std::vector<SignatureResult> results;
      if (entry->cosign && subject.cosign_tag) {
        results = verify_cosign_tag(*subject.cosign_tag, subject.digest, entry->cosign_keys);
      }
      for (const auto& envelope : subject.envelopes) {
        bool bundle = envelope.artifact_type.rfind("application/vnd.dev.sigstore.bundle", 0) == 0 ||
                      envelope.media_type.rfind("application/vnd.dev.sigstore.bundle", 0) == 0;
        bool notation = envelope.artifact_type == notation_artifact_type;
        if (bundle && entry->cosign) {
          results.push_back(verify_sigstore_bundle(envelope, subject.digest, entry->cosign_keys));
        } else if (notation && entry->notation) {
          results.push_back(verify_notation(envelope, subject.digest, subject.size, *entry, now));
        }
      }
      for (auto& r : results) {
        r.what = prefix + r.what;
        outcome.results.push_back(std::move(r));
      }
    }
    const SignatureResult* valid = nullptr;
    for (const auto& r : outcome.results) {
      if (r.valid()) {
        valid = &r;
        break;
      }
    }
    outcome.satisfied = valid != nullptr;
    std::string label = "trust '" + entry->match + "'";
    if (valid) {
      out.valid.push_back(*valid);
      passed.push_back(label + ": " + format_text(valid->format) + " " + valid->what + " " + valid->detail);
    } else {
      all_satisfied = false;
      std::string why = outcome.results.empty()
                            ? std::string("no signature found")
                            : std::string(reason_text(worst(outcome.results)));
      failed.push_back(label + ": " + why);
      if (entry->cosign) {
        remediation.push_back("sign the digest with a trusted key (`cosign sign --key <key> " + std::string(image) + "@<digest>`; trusted: " +
                              std::to_string(entry->cosign_keys.size()) + " key(s) in " + entry->where + ")");
      }
      if (entry->notation) {
        remediation.push_back("sign with `notation sign` using a certificate that chains to " + entry->notation_store_path +
                              " and matches an identity of " + entry->where);
      }
    }
    std::vector<std::string> seen;
    for (const auto& r : outcome.results) {
      seen.push_back(std::string(format_text(r.format)) + " " + r.what + ": " + reason_text(r.reason) +
                     (r.detail.empty() || r.valid() ? "" : " (" + r.detail + ")"));
    }
    std::string looked = entry->cosign && entry->notation ? "cosign .sig tag, sigstore bundle and notation referrers"
                         : entry->cosign                  ? "cosign .sig tag and sigstore bundle referrers"
                                                          : "notation referrers";
    evidence.push_back(label + ": " + (seen.empty() ? "none found (looked for " + looked + ")" : [&] {
                         std::string joined;
                         for (const auto& s : seen) joined += (joined.empty() ? "" : "; ") + s;
                         return joined;
                       }()));
    out.entries.push_back(std::move(outcome));
  }

  auto join = [](const std::vector<std::string>& parts, const char* sep) {
    std::string s;
    for (const auto& p : parts) s += (s.empty() ? "" : sep) + p;
    return s;
  };
  out.facts.satisfied = all_satisfied;
  if (all_satisfied) {
    out.facts.message = cut("signed: " + join(passed, "; "), 600);
  } else {
    out.facts.incomplete = !lookup_error.empty();
    out.facts.message = out.facts.incomplete
                            ? cut("signatures could not be looked up (" + lookup_error + "); " + join(failed, "; "), 600)
                            : cut("not signed as policy.trust requires: " + join(failed, "; "), 600);
    out.facts.remediation = cut(join(remediation, "; "), 600);
  }
  out.facts.evidence = cut(join(evidence, " | "), 2000);
  return out;
}

}  // namespace ocigate::signature
