// Keyless verification: signature, Rekor entry, Fulcio chain at the signing time, SCT, identity.

#include "ocigate/signature/keyless.hpp"

#include <openssl/x509v3.h>

// GCC 12 warns -Wmaybe-uninitialized inside libstdc++'s regex automaton (a false positive, in
// std::function's move); silenced for the header only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <regex>
#pragma GCC diagnostic pop

#include "certificate.hpp"
#include "crypto.hpp"

namespace ocigate::signature {

struct SubjectPattern {
  std::regex regexp;
};

using namespace detail;

namespace {

// Subjects longer than this match no regular expression (Fulcio's are far shorter); longer
// expressions are refused. Both bound the work of one match.
constexpr std::size_t max_subject = 1024;
constexpr std::size_t max_regexp = 512;

// Why `text` is outside the syntax ocigate accepts: the part Go's regexp (cosign's) and
// ECMAScript (std::regex) read the same way. Empty when it is inside.
std::string unsupported_syntax(std::string_view text) {
  if (text.size() > max_regexp) return "longer than " + std::to_string(max_regexp) + " characters";
  for (std::size_t i = 0; i + 1 < text.size(); ++i) {
    if (text[i] == '\\') {
      const char next = text[i + 1];
      if (next >= '1' && next <= '9') return "back-references (\\1...) are not Go syntax";
      if (next == 'A' || next == 'z' || next == 'Q' || next == 'E' || next == 'p' || next == 'P') {
        return std::string("\\") + next + " is Go-only syntax that ocigate does not support";
      }
      ++i;  // an escaped character is never the start of a group
      continue;
    }
    if (text[i] == '(' && text[i + 1] == '?' && (i + 2 >= text.size() || text[i + 2] != ':')) {
      return "groups other than (...) and (?:...) (flags, named groups, look-arounds) are not supported";
    }
  }
  return {};
}

KeylessOutcome fail(KeylessOutcome out, Reason reason, std::string detail) {
  out.reason = reason;
  out.detail = std::move(detail);
  return out;
}

// ECDSA with the curve's own hash as well as SHA-256: cosign signs with SHA-256 on every curve,
// other Sigstore clients use SHA-384 on P-384.
bool verify_with_certificate_key(const PublicKey& key, std::string_view data, std::string_view sig) {
  if (verify_with_key(key, data, sig)) return true;
  if (key.type == KeyType::ecdsa_p384) return verify_raw(key.pkey.get(), EVP_sha384(), RsaPadding::none, 0, data, sig);
  if (key.type == KeyType::ecdsa_p521) return verify_raw(key.pkey.get(), EVP_sha512(), RsaPadding::none, 0, data, sig);
  return false;
}

// The first candidate signature that verifies with the certificate's key.
const std::string* signature_by(const PublicKey& key, const KeylessClaim& claim) {
  for (const auto& sig : claim.signatures) {
    if (!sig.empty() && verify_with_certificate_key(key, claim.signed_data, sig)) return &sig;
  }
  return nullptr;
}

struct LogResult {
  bool verified = false;
  std::int64_t log_index = -1;
  std::chrono::system_clock::time_point time;
  std::string log;    // base URL
  std::string error;  // why no entry verified
};

// Every entry of a log the root knows must verify; entries of unknown logs are skipped (a
// signer may log elsewhere too) but never give a time.
LogResult verify_entries(const KeylessClaim& claim, const TrustedRoot& root, std::string_view signature) {
  LogResult out;
  std::size_t unknown = 0;
  for (const auto& entry : claim.tlog_entries) {
    const TransparencyLog* log = root.tlog(entry.log_id);
    if (!log) {
      ++unknown;
      continue;
    }
    std::string at = "Rekor entry " + std::to_string(entry.log_index) + " of " + log->base_url + ": ";
    if (auto status = verify_tlog_entry(entry, *log); !status) return {false, -1, {}, {}, at + status.error().message};
    if (auto status = match_entry_body(entry, claim, signature); !status) return {false, -1, {}, {}, at + status.error().message};
    if (!out.verified) {
      // verify_tlog_entry held integratedTime within the log's window, so it is a real time.
      out = {true, entry.log_index, *epoch_seconds(entry.integrated_time), log->base_url, {}};
    }
  }
  if (!out.verified) {
    out.error = unknown > 0 ? std::to_string(unknown) + " Rekor entr" + (unknown == 1 ? "y" : "ies") +
                                  " of logs the trusted root does not list (log id " +
                                  hex_encode(claim.tlog_entries.front().log_id).substr(0, 16) + "...)"
                            : "no Rekor entry";
    if (!claim.tlog_error.empty()) out.error += " (" + claim.tlog_error + ")";
  }
  return out;
}

bool code_signing(X509* leaf) {
  std::uint32_t flags = X509_get_extension_flags(leaf);
  return (flags & EXFLAG_XKUSAGE) && (X509_get_extended_key_usage(leaf) & XKU_CODE_SIGN);
}

std::string chain_detail(const ChainResult& chain, const KeylessClaim& claim, std::chrono::system_clock::time_point when) {
  std::string out = "the certificate does not chain to a Fulcio CA of the trusted root at " + utc_text(when) + ": " + chain.error;
  if (!claim.supplied_chain.empty()) {
    out += " (the " + std::to_string(claim.supplied_chain.size()) +
           " certificate(s) the signer supplied as its chain are not used: only the trusted root's intermediates are)";
  }
  return out;
}

std::string identities_text(const KeylessTrust& trust) {
  std::string out;
  for (const auto& id : trust.identities) out += (out.empty() ? "" : "; ") + id.text();
  return out;
}

std::string valid_detail(const KeylessOutcome& out, const std::string& log, const std::string& ct) {
  std::string d = "keyless signature by " + out.identity.subject + " (issuer " + out.identity.issuer + ")";
  if (out.log_index >= 0) d += ", Rekor " + log + " log index " + std::to_string(out.log_index);
  if (out.signing_time) d += ", signed " + utc_text(*out.signing_time);
  else d += ", no Rekor entry (require_tlog: false), certificate checked at the current time";
  d += ", chain to " + out.ca;
  if (!ct.empty()) d += ", SCT from " + ct;
  return d;
}

}  // namespace

bool KeylessIdentity::matches(const CertificateIdentity& id) const {
  if (id.issuer != issuer || id.subject.empty()) return false;
  if (!subject.empty()) return id.subject == subject;
  if (!regexp || id.subject.size() > max_subject) return false;
  return std::regex_match(id.subject, regexp->regexp);  // the whole subject: anchored
}

std::string KeylessIdentity::text() const {
  return "issuer " + issuer + ", " + (subject.empty() ? "subject_regexp " + subject_regexp : "subject " + subject);
}

Result<KeylessIdentity> make_keyless_identity(std::string issuer, std::string subject, std::string subject_regexp) {
  KeylessIdentity id;
  id.issuer = std::move(issuer);
  id.subject = std::move(subject);
  id.subject_regexp = std::move(subject_regexp);
  if (id.issuer.empty() || id.subject.empty() == id.subject_regexp.empty()) {
    return Error{Errc::config_invalid, "an identity needs an issuer and one of subject, subject_regexp"};
  }
  if (!id.subject_regexp.empty()) {
    auto refused = [&](const std::string& why) {
      return Error{Errc::config_invalid, "subject_regexp '" + id.subject_regexp + "' is not a valid regular expression: " + why};
    };
    if (auto why = unsupported_syntax(id.subject_regexp); !why.empty()) return refused(why);
    try {
      // __polynomial (libstdc++) selects the breadth-first executor: time linear in the subject
      // for a given expression, no backtracking, recursion bounded by the expression's size.
      id.regexp = std::make_shared<const SubjectPattern>(SubjectPattern{
          std::regex(id.subject_regexp, std::regex::ECMAScript | std::regex_constants::__polynomial)});
    } catch (const std::regex_error& e) {
      return refused(e.what());
    }
  }
  return id;
}

KeylessOutcome verify_keyless(const KeylessClaim& claim, const KeylessTrust& trust, std::chrono::system_clock::time_point now) {
  KeylessOutcome out;
  if (!trust.root) return fail(out, Reason::unsupported, "no trusted root loaded");
  X509Ptr leaf = parse_der_certificate(claim.certificate);
  if (!leaf) return fail(out, Reason::malformed, "the signing certificate is not a DER certificate");
  out.identity = identity_of(leaf.get());
  auto key = parse_public_key_der(spki_der(X509_get0_pubkey(leaf.get())), "the signing certificate's key");
  if (!key) return fail(out, Reason::unsupported, key.error().message);
  out.fingerprint = key->fingerprint;

  // 1. The signature, with the certificate's own key.
  const std::string* signature = signature_by(*key, claim);
  if (!signature) return fail(out, Reason::bad_signature, "the signature does not verify with the certificate's key: tampered or corrupt");

  // 2. The transparency log: the only source of a trusted signing time.
  LogResult log = verify_entries(claim, *trust.root, *signature);
  if (!log.verified && (trust.require_tlog || !claim.tlog_entries.empty() || !claim.tlog_error.empty())) {
    return fail(out, Reason::bad_tlog, log.error);
  }
  std::chrono::system_clock::time_point when = log.verified ? log.time : now;
  if (log.verified) {
    out.log_index = log.log_index;
    out.signing_time = log.time;
  }

  // 3. The chain, at that time, from the trusted root's own certificates.
  ChainResult chain = verify_fulcio_chain(leaf.get(), *trust.root, when);
  if (!chain.ok()) return fail(out, Reason::bad_chain, chain_detail(chain, claim, when));
  out.ca = chain.ca;
  if (!code_signing(leaf.get())) return fail(out, Reason::bad_chain, "the signing certificate is not for code signing (extended key usage)");

  // 4. Certificate transparency.
  std::string ct;
  if (!trust.root->ctlogs.empty()) {
    auto sct = verify_embedded_sct(leaf.get(), chain.issuer.get(), *trust.root);
    if (!sct) return fail(out, Reason::bad_sct, sct.error().message);
    ct = *sct;
  }

  // 5. The identity.
  bool matched = false;
  for (const auto& id : trust.identities) matched = matched || id.matches(out.identity);
  if (!matched) {
    return fail(out, Reason::wrong_identity,
                "signer " + (out.identity.subject.empty() ? std::string("(no subject)") : out.identity.subject) + " (issuer " +
                    (out.identity.issuer.empty() ? std::string("none") : out.identity.issuer) +
                    ") matches none of the identities [" + identities_text(trust) + "]");
  }
  out.reason = Reason::valid;
  out.detail = valid_detail(out, log.log, ct);
  return out;
}

}  // namespace ocigate::signature
