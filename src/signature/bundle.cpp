// Parsers for sigstore bundles, cosign's Rekor bundle annotation, DSSE envelopes and PEM
// certificate lists. Shapes only: keyless.cpp verifies.

#include "ocigate/signature/bundle.hpp"

#include <openssl/pem.h>

#include <charconv>
#include <nlohmann/json.hpp>

#include "crypto.hpp"
#include "json_fields.hpp"
#include "ocigate/signature/verify.hpp"

namespace ocigate::signature {

using namespace detail;
using nlohmann::json;

namespace {

constexpr std::size_t max_tlog_entries = 8;
constexpr std::size_t max_proof_hashes = 64;  // a tree of 2^64 leaves needs no more
constexpr std::size_t max_certificates = 10;
constexpr std::size_t max_dsse_signatures = 16;

// The first problem found, with where it was: parsers stop at it.
class Reader {
 public:
  bool failed() const { return !error_.empty(); }
  Error error() const { return Error{unsupported_ ? Errc::unsupported : Errc::manifest_invalid, error_}; }

  void fail(const std::string& where, const std::string& why, bool unsupported = false) {
    if (error_.empty()) {
      error_ = where + ": " + why;
      unsupported_ = unsupported;
    }
  }

  const json* find(const json& object, const char* key) {
    if (!object.is_object()) return nullptr;
    auto it = object.find(key);
    return it == object.end() || it->is_null() ? nullptr : &*it;
  }

  const json* object(const json& parent, const char* key, const std::string& where, bool required) {
    const json* v = find(parent, key);
    if (!v) {
      if (required) fail(where + key, "missing");
      return nullptr;
    }
    if (!v->is_object()) {
      fail(where + key, "not an object");
      return nullptr;
    }
    return v;
  }

  const json* array(const json& parent, const char* key, const std::string& where, bool required) {
    const json* v = find(parent, key);
    if (!v) {
      if (required) fail(where + key, "missing");
      return nullptr;
    }
    if (!v->is_array()) {
      fail(where + key, "not a list");
      return nullptr;
    }
    return v;
  }

  std::string string(const json& parent, const char* key, const std::string& where, bool required) {
    const json* v = find(parent, key);
    if (!v) {
      if (required) fail(where + key, "missing");
      return {};
    }
    if (!v->is_string()) {
      fail(where + key, "not a string");
      return {};
    }
    return v->get<std::string>();
  }

  std::string bytes(const json& parent, const char* key, const std::string& where, bool required) {
    std::string text = string(parent, key, where, required);
    if (text.empty()) {
      if (required && !failed()) fail(where + key, "empty");
      return {};
    }
    auto raw = base64_decode(text, false);
    if (!raw) {
      fail(where + key, "not base64");
      return {};
    }
    return *raw;
  }

  // protobuf JSON writes int64 as a string; numbers are accepted too.
  std::int64_t integer(const json& parent, const char* key, const std::string& where, bool required) {
    const json* v = find(parent, key);
    if (!v) {
      if (required) fail(where + key, "missing");
      return 0;
    }
    if (v->is_number_integer()) return v->get<std::int64_t>();
    if (v->is_string()) {
      const std::string& s = v->get_ref<const std::string&>();
      std::int64_t n = 0;
      auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
      if (!s.empty() && ec == std::errc{} && end == s.data() + s.size()) return n;
    }
    fail(where + key, "not an integer");
    return 0;
  }

 private:
  std::string error_;
  bool unsupported_ = false;
};

std::optional<InclusionProof> read_proof(Reader& r, const json& item, const std::string& where) {
  const json* p = r.object(item, "inclusionProof", where, false);
  if (!p) return std::nullopt;
  std::string at = where + "inclusionProof.";
  InclusionProof proof;
  proof.log_index = r.integer(*p, "logIndex", at, true);
  proof.tree_size = r.integer(*p, "treeSize", at, true);
  proof.root_hash = r.bytes(*p, "rootHash", at, true);
  if (const json* hashes = r.array(*p, "hashes", at, false)) {
    if (hashes->size() > max_proof_hashes) r.fail(at + "hashes", "more than 64 hashes");
    for (std::size_t i = 0; i < hashes->size() && !r.failed(); ++i) {
      auto h = (*hashes)[i].is_string() ? base64_decode((*hashes)[i].get<std::string>(), false) : std::nullopt;
      if (!h) r.fail(at + "hashes[" + std::to_string(i) + "]", "not base64");
      else proof.hashes.push_back(std::move(*h));
    }
  }
  const json* checkpoint = r.object(*p, "checkpoint", at, true);
  if (checkpoint) proof.checkpoint = r.string(*checkpoint, "envelope", at + "checkpoint.", true);
  return proof;
}

TlogEntry read_tlog_entry(Reader& r, const json& item, const std::string& where) {
  TlogEntry entry;
  if (!item.is_object()) {
    r.fail(where, "not an object");
    return entry;
  }
  entry.log_index = r.integer(item, "logIndex", where, true);
  if (const json* id = r.object(item, "logId", where, true)) entry.log_id = r.bytes(*id, "keyId", where + "logId.", true);
  if (const json* kv = r.object(item, "kindVersion", where, false)) {
    entry.kind = r.string(*kv, "kind", where + "kindVersion.", false);
    entry.version = r.string(*kv, "version", where + "kindVersion.", false);
  }
  entry.integrated_time = r.integer(item, "integratedTime", where, false);
  if (const json* promise = r.object(item, "inclusionPromise", where, false)) {
    entry.signed_entry_timestamp = r.bytes(*promise, "signedEntryTimestamp", where + "inclusionPromise.", true);
  }
  entry.proof = read_proof(r, item, where);
  entry.body = r.bytes(item, "canonicalizedBody", where, true);
  return entry;
}

std::vector<std::string> read_certificates(Reader& r, const json& material) {
  std::vector<std::string> out;
  if (const json* cert = r.object(material, "certificate", "verificationMaterial.", false)) {
    out.push_back(r.bytes(*cert, "rawBytes", "verificationMaterial.certificate.", true));
    return out;
  }
  const json* chain = r.object(material, "x509CertificateChain", "verificationMaterial.", false);
  if (!chain) return out;
  std::string at = "verificationMaterial.x509CertificateChain.";
  const json* certs = r.array(*chain, "certificates", at, true);
  if (!certs) return out;
  if (certs->empty() || certs->size() > max_certificates) r.fail(at + "certificates", "must hold 1 to 10 certificates");
  for (std::size_t i = 0; i < certs->size() && !r.failed(); ++i) {
    out.push_back(r.bytes((*certs)[i], "rawBytes", at + "certificates[" + std::to_string(i) + "].", true));
  }
  return out;
}

DsseEnvelope read_dsse(Reader& r, const json& envelope, const std::string& where) {
  DsseEnvelope out;
  out.payload_type = r.string(envelope, "payloadType", where, true);
  out.payload = r.bytes(envelope, "payload", where, true);
  const json* sigs = r.array(envelope, "signatures", where, true);
  if (!sigs) return out;
  if (sigs->empty() || sigs->size() > max_dsse_signatures) r.fail(where + "signatures", "must hold 1 to 16 signatures");
  for (std::size_t i = 0; i < sigs->size() && !r.failed(); ++i) {
    std::string at = where + "signatures[" + std::to_string(i) + "].";
    DsseSignature sig;
    sig.keyid = r.string((*sigs)[i], "keyid", at, false);
    sig.sig = r.bytes((*sigs)[i], "sig", at, true);
    out.signatures.push_back(std::move(sig));
  }
  return out;
}

void read_material(Reader& r, const json& bundle, SigstoreBundle& out) {
  const json* material = r.object(bundle, "verificationMaterial", "", true);
  if (!material) return;
  out.certificates = read_certificates(r, *material);
  if (const json* pk = r.object(*material, "publicKey", "verificationMaterial.", false)) {
    out.public_key_hint = r.string(*pk, "hint", "verificationMaterial.publicKey.", false);
  }
  const json* entries = r.array(*material, "tlogEntries", "verificationMaterial.", false);
  if (!entries) return;
  if (entries->size() > max_tlog_entries) r.fail("verificationMaterial.tlogEntries", "more than 8 entries");
  for (std::size_t i = 0; i < entries->size() && !r.failed(); ++i) {
    out.tlog_entries.push_back(read_tlog_entry(r, (*entries)[i], "verificationMaterial.tlogEntries[" + std::to_string(i) + "]."));
  }
}

void read_content(Reader& r, const json& bundle, SigstoreBundle& out) {
  if (const json* dsse = r.object(bundle, "dsseEnvelope", "", false)) {
    out.dsse = read_dsse(r, *dsse, "dsseEnvelope.");
  } else if (const json* message = r.object(bundle, "messageSignature", "", false)) {
    MessageSignature m;
    if (const json* digest = r.object(*message, "messageDigest", "messageSignature.", false)) {
      m.digest_algorithm = r.string(*digest, "algorithm", "messageSignature.messageDigest.", true);
      m.digest = r.bytes(*digest, "digest", "messageSignature.messageDigest.", true);
    }
    m.signature = r.bytes(*message, "signature", "messageSignature.", true);
    out.message = std::move(m);
  } else {
    r.fail("bundle", "has neither dsseEnvelope nor messageSignature");
  }
}

}  // namespace

Result<SigstoreBundle> parse_sigstore_bundle(std::string_view text) {
  auto bundle = parse_json(text);
  if (!bundle || !bundle->is_object()) return Error{Errc::manifest_invalid, "the bundle is not a JSON object"};
  Reader r;
  SigstoreBundle out;
  out.media_type = r.string(*bundle, "mediaType", "", true);
  if (!r.failed() && out.media_type.rfind("application/vnd.dev.sigstore.bundle", 0) != 0) {
    r.fail("mediaType", "'" + out.media_type + "' is not a sigstore bundle");
  }
  if (!r.failed()) read_content(r, *bundle, out);
  if (!r.failed()) read_material(r, *bundle, out);
  if (r.failed()) return r.error();
  return out;
}

Result<DsseEnvelope> parse_dsse_envelope(std::string_view text) {
  auto envelope = parse_json(text);
  if (!envelope || !envelope->is_object()) return Error{Errc::manifest_invalid, "the DSSE envelope is not a JSON object"};
  Reader r;
  DsseEnvelope out = read_dsse(r, *envelope, "");
  if (r.failed()) return r.error();
  return out;
}

Result<TlogEntry> parse_cosign_rekor_bundle(std::string_view text) {
  auto bundle = parse_json(text);
  if (!bundle || !bundle->is_object()) return Error{Errc::manifest_invalid, "the Rekor bundle is not a JSON object"};
  Reader r;
  TlogEntry entry;
  entry.signed_entry_timestamp = r.bytes(*bundle, "SignedEntryTimestamp", "", true);
  const json* payload = r.object(*bundle, "Payload", "", true);
  if (payload && !r.failed()) {
    entry.body = r.bytes(*payload, "body", "Payload.", true);
    entry.integrated_time = r.integer(*payload, "integratedTime", "Payload.", true);
    entry.log_index = r.integer(*payload, "logIndex", "Payload.", true);
    std::string id = r.string(*payload, "logID", "Payload.", true);
    auto raw = hex_decode(id);
    if (!r.failed() && (!raw || raw->empty())) r.fail("Payload.logID", "not hex");
    if (raw) entry.log_id = *raw;
  }
  if (r.failed()) return r.error();
  return entry;
}

Result<std::vector<std::string>> parse_pem_certificates(std::string_view pem) {
  if (pem.size() > (1u << 20)) return Error{Errc::manifest_invalid, "the PEM text is larger than 1 MiB"};
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return Error{Errc::internal, "out of memory"};
  std::vector<std::string> out;
  while (out.size() < max_certificates) {
    X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!cert) break;
    std::string der = certificate_der(cert.get());
    if (der.empty()) break;
    out.push_back(std::move(der));
  }
  ERR_clear_error();
  if (out.empty()) return Error{Errc::manifest_invalid, "holds no readable PEM certificate"};
  return out;
}

}  // namespace ocigate::signature
