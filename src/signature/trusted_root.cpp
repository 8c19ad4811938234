// Sigstore's trusted_root.json: Fulcio CAs, Rekor logs and CT logs with their validity windows.

#include "ocigate/signature/trusted_root.hpp"

#include <ctime>
#include <nlohmann/json.hpp>

#include "crypto.hpp"
#include "ocigate/oci/digest.hpp"
#include "ocigate/common/time.hpp"
#include "ocigate/signature/verify.hpp"

namespace ocigate::signature {

using namespace detail;
using nlohmann::json;

namespace {

// Thrown only while parsing the file (trust loading, never the data path); parse_trusted_root
// turns it into a Result.
struct Refusal {
  std::string message;
};

[[noreturn]] void refuse(const std::string& where, const std::string& why) { throw Refusal{where + ": " + why}; }

const json* member(const json& object, const char* key) {
  auto it = object.find(key);
  return it == object.end() || it->is_null() ? nullptr : &*it;
}

const json& object_member(const json& object, const char* key, const std::string& where) {
  const json* v = member(object, key);
  if (!v) refuse(where + "." + key, "missing");
  if (!v->is_object()) refuse(where + "." + key, "must be an object");
  return *v;
}

std::string string_member(const json& object, const char* key, const std::string& where, bool required) {
  const json* v = member(object, key);
  if (!v) {
    if (required) refuse(where + "." + key, "missing");
    return {};
  }
  if (!v->is_string()) refuse(where + "." + key, "must be a string");
  return v->get<std::string>();
}

std::string base64_member(const json& object, const char* key, const std::string& where) {
  auto bytes = base64_decode(string_member(object, key, where, true), false);
  if (!bytes || bytes->empty()) refuse(where + "." + key, "is not base64");
  return *bytes;
}

std::chrono::system_clock::time_point time_member(const json& object, const char* key, const std::string& where) {
  std::string text = string_member(object, key, where, true);
  auto when = parse_rfc3339(text);
  if (!when) refuse(where + "." + key, "'" + text + "' is not an RFC 3339 time");
  return *when;
}

ValidFor valid_for(const json& object, const std::string& where) {
  const json& v = object_member(object, "validFor", where);
  ValidFor out;
  out.start = time_member(v, "start", where + ".validFor");
  if (member(v, "end")) out.end = time_member(v, "end", where + ".validFor");
  if (out.end && *out.end < out.start) refuse(where + ".validFor", "ends before it starts");
  return out;
}

// keyDetails names the signature hash ("PKIX_ECDSA_P384_SHA_384"); hashAlgorithm is the log's
// Merkle hash, not the signature's.
const EVP_MD* signature_md(const std::string& details, KeyType type) {
  if (type == KeyType::ed25519) return nullptr;
  if (details.find("SHA_384") != std::string::npos || details.find("SHA384") != std::string::npos) return EVP_sha384();
  if (details.find("SHA_512") != std::string::npos || details.find("SHA512") != std::string::npos) return EVP_sha512();
  return EVP_sha256();
}

TransparencyLog parse_log(const json& item, const std::string& where) {
  if (!item.is_object()) refuse(where, "must be an object");
  TransparencyLog log;
  log.base_url = string_member(item, "baseUrl", where, false);
  std::string hash = string_member(item, "hashAlgorithm", where, false);
  if (!hash.empty() && hash != "SHA2_256") refuse(where + ".hashAlgorithm", "'" + hash + "' is not SHA2_256");
  const json& key = object_member(item, "publicKey", where);
  std::string key_where = where + ".publicKey";
  auto parsed = parse_public_key_der(base64_member(key, "rawBytes", key_where), key_where + ".rawBytes");
  if (!parsed) throw Refusal{parsed.error().message};
  log.key = std::move(*parsed);
  log.md = signature_md(string_member(key, "keyDetails", key_where, false), log.key.type);
  log.valid_for = valid_for(key, key_where);
  log.key_id = base64_member(object_member(item, "logId", where), "keyId", where + ".logId");
  return log;
}

std::string ca_name(const json& item, X509* root) {
  std::string name = subject_text(root);
  if (const json* uri = member(item, "uri"); uri && uri->is_string()) name += " (" + uri->get<std::string>() + ")";
  return name;
}

CertificateAuthority parse_ca(const json& item, const std::string& where) {
  if (!item.is_object()) refuse(where, "must be an object");
  CertificateAuthority ca;
  const json& chain = object_member(item, "certChain", where);
  const json* certs = member(chain, "certificates");
  if (!certs || !certs->is_array() || certs->empty()) refuse(where + ".certChain.certificates", "must be a non-empty list");
  for (std::size_t i = 0; i < certs->size(); ++i) {
    std::string cert_where = where + ".certChain.certificates[" + std::to_string(i) + "]";
    if (!(*certs)[i].is_object()) refuse(cert_where, "must be an object");
    X509Ptr cert = parse_der_certificate(base64_member((*certs)[i], "rawBytes", cert_where));
    if (!cert) refuse(cert_where + ".rawBytes", "is not a DER certificate");
    ca.chain.emplace_back(cert.release(), X509_free);
  }
  ca.name = ca_name(item, ca.chain.back().get());
  ca.valid_for = valid_for(item, where);
  return ca;
}

// Timestamp authorities are not used (Rekor's integratedTime is the signing time); an entry is
// counted whatever its shape, so a newer file format does not refuse the whole root.
std::size_t count_objects(const json& root, const char* key) {
  const json* list = member(root, key);
  std::size_t n = 0;
  if (list && list->is_array()) {
    for (const auto& item : *list) n += item.is_object() ? 1 : 0;
  }
  return n;
}

template <class T, class Fn>
std::vector<T> parse_list(const json& root, const char* key, Fn parse_one) {
  std::vector<T> out;
  const json* list = member(root, key);
  if (!list) return out;
  if (!list->is_array()) refuse(key, "must be a list");
  for (std::size_t i = 0; i < list->size(); ++i) out.push_back(parse_one((*list)[i], std::string(key) + "[" + std::to_string(i) + "]"));
  return out;
}

TrustedRoot parse(const json& root) {
  if (!root.is_object()) refuse("trusted root", "is not a JSON object");
  std::string media_type = string_member(root, "mediaType", "trusted root", false);
  if (!media_type.empty() && media_type.rfind("application/vnd.dev.sigstore.trustedroot", 0) != 0) {
    refuse("mediaType", "'" + media_type + "' is not a Sigstore trusted root");
  }
  TrustedRoot out;
  out.certificate_authorities = parse_list<CertificateAuthority>(root, "certificateAuthorities", parse_ca);
  out.tlogs = parse_list<TransparencyLog>(root, "tlogs", parse_log);
  out.ctlogs = parse_list<TransparencyLog>(root, "ctlogs", parse_log);
  out.timestamp_authorities = count_objects(root, "timestampAuthorities");
  if (out.certificate_authorities.empty()) refuse("certificateAuthorities", "lists no certificate authority (Fulcio)");
  if (out.tlogs.empty()) refuse("tlogs", "lists no transparency log (Rekor)");
  return out;
}

const TransparencyLog* find_log(const std::vector<TransparencyLog>& logs, std::string_view key_id) {
  for (const auto& log : logs) {
    if (log.key_id == key_id) return &log;
  }
  return nullptr;
}

}  // namespace

std::string utc_text(std::chrono::system_clock::time_point when) {
  std::time_t t = std::chrono::system_clock::to_time_t(when);
  std::tm tm{};
  if (!gmtime_r(&t, &tm)) return "?";
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string ValidFor::text() const {
  return "from " + utc_text(start) + (end ? " until " + utc_text(*end) : std::string(" (open-ended)"));
}

const TransparencyLog* TrustedRoot::tlog(std::string_view key_id) const { return find_log(tlogs, key_id); }
const TransparencyLog* TrustedRoot::ctlog(std::string_view key_id) const { return find_log(ctlogs, key_id); }

Result<TrustedRoot> parse_trusted_root(std::string_view text) {
  json root = json::parse(text.begin(), text.end(), nullptr, false);
  if (root.is_discarded()) return Error{Errc::config_invalid, "is not JSON"};
  try {
    TrustedRoot out = parse(root);
    out.fingerprint = oci::sha256_digest(text);
    return out;
  } catch (const Refusal& refusal) {
    return Error{Errc::config_invalid, refusal.message};
  } catch (const std::exception& e) {  // nlohmann type errors on a shape we did not foresee
    return Error{Errc::config_invalid, std::string("unreadable trusted root: ") + e.what()};
  }
}

}  // namespace ocigate::signature
