#include "keyless_fixtures.hpp"

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <ctime>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace ocigate::signature::test {

using nlohmann::json;

namespace {

// Test set-up only: a failure here is a broken fixture, not a verdict.
void check(bool ok, const char* what) {
  if (!ok) {
    char buf[256];
    ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
    throw std::runtime_error(std::string("fixture: ") + what + ": " + buf);
  }
}

std::string rfc3339(Clock::time_point when) {
  std::time_t t = Clock::to_time_t(when);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::int64_t seconds(Clock::time_point when) {
  return std::chrono::duration_cast<std::chrono::seconds>(when.time_since_epoch()).count();
}

std::string hex(std::string_view bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

void put(std::string& out, std::uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}

// The TBSCertificate element inside a DER certificate, cut out by hand.
std::string tbs_of(const std::string& der) {
  auto header = [&](std::size_t pos, std::size_t& content) -> std::size_t {
    unsigned char len = static_cast<unsigned char>(der.at(pos + 1));
    if (len < 0x80) {
      content = len;
      return 2;
    }
    std::size_t n = len & 0x7f;
    content = 0;
    for (std::size_t i = 0; i < n; ++i) content = (content << 8) | static_cast<unsigned char>(der.at(pos + 2 + i));
    return 2 + n;
  };
  std::size_t outer_len = 0;
  std::size_t pos = header(0, outer_len);
  std::size_t tbs_len = 0;
  std::size_t tbs_header = header(pos, tbs_len);
  return der.substr(pos, tbs_header + tbs_len);
}

Cert new_cert(X509* issuer, EVP_PKEY* subject_key, const std::string& cn, Clock::time_point not_before,
              Clock::time_point not_after) {
  Cert cert(X509_new(), X509_free);
  check(cert && X509_set_version(cert.get(), 2) == 1, "X509_new");
  BIGNUM* serial = BN_new();
  check(BN_rand(serial, 64, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) == 1, "serial");
  BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(cert.get()));
  BN_free(serial);
  X509_NAME* name = X509_get_subject_name(cert.get());
  if (!cn.empty()) {
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("sigstore.dev"), -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  }
  X509_set_issuer_name(cert.get(), issuer ? X509_get_subject_name(issuer) : name);
  ASN1_TIME_set(X509_getm_notBefore(cert.get()), Clock::to_time_t(not_before));
  ASN1_TIME_set(X509_getm_notAfter(cert.get()), Clock::to_time_t(not_after));
  check(X509_set_pubkey(cert.get(), subject_key) == 1, "set_pubkey");
  return cert;
}

void add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer ? issuer : cert, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  check(ext != nullptr, value.c_str());
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

void add_raw_ext(X509* cert, const char* oid, const std::string& value, bool critical = false) {
  ASN1_OBJECT* obj = OBJ_txt2obj(oid, 1);
  ASN1_OCTET_STRING* data = ASN1_OCTET_STRING_new();
  ASN1_OCTET_STRING_set(data, reinterpret_cast<const unsigned char*>(value.data()), static_cast<int>(value.size()));
  X509_EXTENSION* ext = X509_EXTENSION_create_by_OBJ(nullptr, obj, critical ? 1 : 0, data);
  check(ext != nullptr, oid);
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  ASN1_OCTET_STRING_free(data);
  ASN1_OBJECT_free(obj);
}

std::string utf8_der(const std::string& text) {
  ASN1_UTF8STRING* s = ASN1_UTF8STRING_new();
  ASN1_STRING_set(s, text.data(), static_cast<int>(text.size()));
  unsigned char* out = nullptr;
  int len = i2d_ASN1_UTF8STRING(s, &out);
  std::string der(reinterpret_cast<char*>(out), static_cast<std::size_t>(len));
  OPENSSL_free(out);
  ASN1_UTF8STRING_free(s);
  return der;
}

Cert make_ca(EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key, const std::string& cn, Clock::time_point now) {
  Cert cert = new_cert(issuer, key, cn, now - std::chrono::hours(24 * 365), now + std::chrono::hours(24 * 365));
  add_ext(cert.get(), issuer, NID_basic_constraints, issuer ? "critical,CA:TRUE,pathlen:0" : "critical,CA:TRUE");
  add_ext(cert.get(), issuer, NID_key_usage, "critical,keyCertSign,cRLSign");
  add_ext(cert.get(), issuer, NID_subject_key_identifier, "hash");
  if (issuer) add_ext(cert.get(), issuer, NID_ext_key_usage, "codeSigning");
  check(X509_sign(cert.get(), issuer_key ? issuer_key : key, EVP_sha256()) > 0, "sign CA");
  return cert;
}

// RFC 6962 SignedCertificateTimestampList with one v1 SCT, in its extension's OCTET STRING.
std::string sct_list(const FakeLog& log, std::uint64_t timestamp_ms, const std::string& signature) {
  std::string sct;
  sct += '\0';  // v1
  sct += log.log_id();
  put(sct, timestamp_ms, 8);
  put(sct, 0, 2);  // no extensions
  sct += '\x04';   // sha256
  sct += '\x03';   // ecdsa
  put(sct, signature.size(), 2);
  sct += signature;
  std::string list;
  put(list, sct.size() + 2, 2);
  put(list, sct.size(), 2);
  list += sct;
  ASN1_OCTET_STRING* inner = ASN1_OCTET_STRING_new();
  ASN1_OCTET_STRING_set(inner, reinterpret_cast<const unsigned char*>(list.data()), static_cast<int>(list.size()));
  unsigned char* der = nullptr;
  int len = i2d_ASN1_OCTET_STRING(inner, &der);
  std::string out(reinterpret_cast<char*>(der), static_cast<std::size_t>(len));
  OPENSSL_free(der);
  ASN1_OCTET_STRING_free(inner);
  return out;
}

std::string sct_signature(const FakeLog& log, std::uint64_t timestamp_ms, X509* issuer, const std::string& tbs) {
  std::string data;
  data += '\0';  // v1
  data += '\0';  // certificate_timestamp
  put(data, timestamp_ms, 8);
  put(data, 1, 2);  // precert_entry
  data += sha256_bytes(key_der(X509_get0_pubkey(issuer)));
  put(data, tbs.size(), 3);
  data += tbs;
  put(data, 0, 2);  // extensions
  return sign_sha256(log.key.get(), data);
}

json valid_for(const Window& w) {
  json v = {{"start", rfc3339(w.start)}};
  if (w.end) v["end"] = rfc3339(*w.end);
  return v;
}

json log_json(const FakeLog& log, const std::string& url) {
  return {{"baseUrl", url},
          {"hashAlgorithm", "SHA2_256"},
          {"publicKey", {{"rawBytes", to_base64(key_der(log.key.get()))}, {"keyDetails", "PKIX_ECDSA_P256_SHA_256"}, {"validFor", valid_for(log.valid)}}},
          {"logId", {{"keyId", to_base64(log.log_id())}}}};
}

std::string entry_body(EntryKind kind, const std::string& payload, const std::string& signature, const std::string& pem,
                       const std::string& payload_type) {
  json body;
  if (kind == EntryKind::hashedrekord) {
    body = {{"apiVersion", "0.0.1"},
            {"kind", "hashedrekord"},
            {"spec",
             {{"data", {{"hash", {{"algorithm", "sha256"}, {"value", sha256_hex(payload)}}}}},
              {"signature", {{"content", to_base64(signature)}, {"publicKey", {{"content", to_base64(pem)}}}}}}}};
  } else if (kind == EntryKind::intoto) {
    body = {{"apiVersion", "0.0.2"},
            {"kind", "intoto"},
            {"spec",
             {{"content",
               {{"envelope", {{"payloadType", payload_type}, {"signatures", {{{"publicKey", to_base64(pem)}, {"sig", to_base64(to_base64(signature))}}}}}},
                {"hash", {{"algorithm", "sha256"}, {"value", sha256_hex("envelope")}}},
                {"payloadHash", {{"algorithm", "sha256"}, {"value", sha256_hex(payload)}}}}}}}};
  } else {
    body = {{"apiVersion", "0.0.1"},
            {"kind", "dsse"},
            {"spec",
             {{"envelopeHash", {{"algorithm", "sha256"}, {"value", sha256_hex("envelope")}}},
              {"payloadHash", {{"algorithm", "sha256"}, {"value", sha256_hex(payload)}}},
              {"signatures", {{{"signature", to_base64(signature)}, {"verifier", to_base64(pem)}}}}}}};
  }
  return body.dump();
}

std::string rekor_bundle_annotation(const TlogEntry& entry) {
  json b = {{"SignedEntryTimestamp", to_base64(entry.signed_entry_timestamp)},
            {"Payload", {{"body", to_base64(entry.body)}, {"integratedTime", entry.integrated_time}, {"logIndex", entry.log_index}, {"logID", hex(entry.log_id)}}}};
  return b.dump();
}

std::string pae(const std::string& type, const std::string& payload) {
  return "DSSEv1 " + std::to_string(type.size()) + " " + type + " " + std::to_string(payload.size()) + " " + payload;
}

json tlog_entry_json(const TlogEntry& entry) {
  json e = {{"logIndex", std::to_string(entry.log_index)},
            {"logId", {{"keyId", to_base64(entry.log_id)}}},
            {"kindVersion", {{"kind", entry.kind}, {"version", entry.version}}},
            {"integratedTime", std::to_string(entry.integrated_time)},
            {"inclusionPromise", {{"signedEntryTimestamp", to_base64(entry.signed_entry_timestamp)}}},
            {"canonicalizedBody", to_base64(entry.body)}};
  if (entry.proof) {
    json hashes = json::array();
    for (const auto& h : entry.proof->hashes) hashes.push_back(to_base64(h));
    e["inclusionProof"] = {{"logIndex", std::to_string(entry.proof->log_index)},
                           {"rootHash", to_base64(entry.proof->root_hash)},
                           {"treeSize", std::to_string(entry.proof->tree_size)},
                           {"hashes", hashes},
                           {"checkpoint", {{"envelope", entry.proof->checkpoint}}}};
  }
  return e;
}

}  // namespace

Pkey generate_p256() {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  check(key != nullptr, "EVP_EC_gen");
  return Pkey(key, EVP_PKEY_free);
}

std::string to_base64(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(bytes.data()),
                          static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string to_hex(std::string_view bytes) { return hex(bytes); }

std::string cert_der(X509* cert) {
  unsigned char* out = nullptr;
  int len = i2d_X509(cert, &out);
  check(len > 0, "i2d_X509");
  std::string der(reinterpret_cast<char*>(out), static_cast<std::size_t>(len));
  OPENSSL_free(out);
  return der;
}

std::string cert_pem(X509* cert) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, cert);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<std::size_t>(len));
  BIO_free(bio);
  return out;
}

std::string key_der(EVP_PKEY* key) {
  unsigned char* out = nullptr;
  int len = i2d_PUBKEY(key, &out);
  check(len > 0, "i2d_PUBKEY");
  std::string der(reinterpret_cast<char*>(out), static_cast<std::size_t>(len));
  OPENSSL_free(out);
  return der;
}

std::string sha256_bytes(std::string_view data) {
  unsigned char md[32];
  unsigned int len = 0;
  check(EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) == 1, "sha256");
  return std::string(reinterpret_cast<char*>(md), len);
}

std::string sha256_hex(std::string_view data) { return hex(sha256_bytes(data)); }

std::string sign_sha256(EVP_PKEY* key, std::string_view data) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  check(EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, key) == 1, "sign init");
  std::size_t len = 0;
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  check(EVP_DigestSign(ctx, nullptr, &len, p, data.size()) == 1, "sign size");
  std::string sig(len, '\0');
  check(EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len, p, data.size()) == 1, "sign");
  sig.resize(len);
  EVP_MD_CTX_free(ctx);
  return sig;
}

std::string tree_root(const std::vector<std::string>& leaves, std::size_t begin, std::size_t end) {
  if (end - begin == 1) return sha256_bytes(std::string(1, '\0') + leaves[begin]);
  std::size_t k = 1;
  while (k * 2 < end - begin) k *= 2;
  return sha256_bytes(std::string(1, '\1') + tree_root(leaves, begin, begin + k) + tree_root(leaves, begin + k, end));
}

std::vector<std::string> tree_path(const std::vector<std::string>& leaves, std::size_t index, std::size_t begin, std::size_t end) {
  if (end - begin == 1) return {};
  std::size_t k = 1;
  while (k * 2 < end - begin) k *= 2;
  std::vector<std::string> path;
  if (index < k) {
    path = tree_path(leaves, index, begin, begin + k);
    path.push_back(tree_root(leaves, begin + k, end));
  } else {
    path = tree_path(leaves, index - k, begin + k, end);
    path.push_back(tree_root(leaves, begin, begin + k));
  }
  return path;
}

std::string FakeLog::log_id() const { return sha256_bytes(key_der(key.get())); }

std::map<std::string, std::string> SignedMessage::annotations() const {
  std::map<std::string, std::string> out = {{"dev.cosignproject.cosign/signature", to_base64(signature)},
                                            {"dev.sigstore.cosign/certificate", certificate_pem},
                                            {"dev.sigstore.cosign/chain", chain_pem}};
  if (!rekor_bundle.empty()) out["dev.sigstore.cosign/bundle"] = rekor_bundle;
  return out;
}

std::map<std::string, std::string> SignedDsse::annotations() const {
  std::map<std::string, std::string> out = {{"dev.cosignproject.cosign/signature", ""},
                                            {"dev.sigstore.cosign/certificate", certificate_pem},
                                            {"dev.sigstore.cosign/chain", chain_pem}};
  if (!rekor_bundle.empty()) out["dev.sigstore.cosign/bundle"] = rekor_bundle;
  return out;
}

std::string SignedDsse::bundle(int minor) const {
  json material;
  if (minor >= 3) {
    material["certificate"] = {{"rawBytes", to_base64(certificate_der)}};
  } else {
    material["x509CertificateChain"] = {{"certificates", {{{"rawBytes", to_base64(certificate_der)}}}}};
  }
  material["tlogEntries"] = json::array();
  if (entry) material["tlogEntries"].push_back(tlog_entry_json(*entry));
  json envelope = json::parse(this->envelope);
  std::string media_type = minor >= 3 ? "application/vnd.dev.sigstore.bundle.v0.3+json"
                                      : "application/vnd.dev.sigstore.bundle+json;version=0." + std::to_string(minor);
  return json{{"mediaType", media_type}, {"verificationMaterial", material}, {"dsseEnvelope", envelope}}.dump();
}

KeylessFixtures::KeylessFixtures(Clock::time_point now_) : now(now_) {
  root_key = generate_p256();
  intermediate_key = generate_p256();
  root = make_ca(root_key.get(), nullptr, nullptr, "sigstore-test-root", now);
  intermediate = make_ca(intermediate_key.get(), root.get(), root_key.get(), "sigstore-test-intermediate", now);
  rekor.key = generate_p256();
  ct.key = generate_p256();
  ct.name = "ctfe.test";
  Window year{now - std::chrono::hours(24 * 365), std::nullopt};
  rekor.valid = ct.valid = ca_valid = year;
  // An N-leaf log: entries land in the middle of a tree, not at its edge.
  for (int i = 0; i < 5; ++i) rekor.leaves.push_back("{\"earlier\":" + std::to_string(i) + "}");
}

std::string KeylessFixtures::trusted_root_json() const {
  json ca = {{"subject", {{"organization", "sigstore.dev"}, {"commonName", "sigstore-test"}}},
             {"uri", "https://fulcio.test"},
             {"certChain", {{"certificates", {{{"rawBytes", to_base64(cert_der(intermediate.get()))}}, {{"rawBytes", to_base64(cert_der(root.get()))}}}}}},
             {"validFor", valid_for(ca_valid)}};
  json tsa = {{"subject", {{"organization", "test"}}}, {"certChain", {{"certificates", json::array()}}}, {"futureField", true}};
  return json{{"mediaType", "application/vnd.dev.sigstore.trustedroot+json;version=0.1"},
              {"tlogs", {log_json(rekor, "https://rekor.test")}},
              {"certificateAuthorities", {ca}},
              {"ctlogs", {log_json(ct, "https://ctfe.test")}},
              {"timestampAuthorities", {tsa}}}
      .dump(2);
}

KeylessFixtures::Leaf KeylessFixtures::issue_leaf(const SignOptions& o, Clock::time_point when) {
  X509* issuer = o.issuer_cert ? o.issuer_cert : intermediate.get();
  EVP_PKEY* issuer_key = o.issuer_key ? o.issuer_key : intermediate_key.get();
  Leaf leaf{nullptr, o.leaf_key ? o.leaf_key : generate_p256()};
  Clock::time_point not_before = when + o.not_before_offset;
  leaf.cert = new_cert(issuer, leaf.key.get(), "", not_before, not_before + o.validity);
  add_ext(leaf.cert.get(), issuer, NID_key_usage, "critical,digitalSignature");
  add_ext(leaf.cert.get(), issuer, NID_ext_key_usage, o.code_signing ? "codeSigning" : "serverAuth");
  add_ext(leaf.cert.get(), issuer, NID_subject_key_identifier, "hash");
  add_ext(leaf.cert.get(), issuer, NID_authority_key_identifier, "keyid");
  std::string san = o.san == SignOptions::San::uri     ? "critical,URI:" + o.subject
                    : o.san == SignOptions::San::email ? "critical,email:" + o.subject
                                                       : "critical,otherName:1.3.6.1.4.1.57264.1.7;UTF8:" + o.subject;
  add_ext(leaf.cert.get(), issuer, NID_subject_alt_name, san);
  if (o.issuer_extension != SignOptions::IssuerExtension::v2) add_raw_ext(leaf.cert.get(), "1.3.6.1.4.1.57264.1.1", o.issuer);
  if (o.issuer_extension != SignOptions::IssuerExtension::v1) add_raw_ext(leaf.cert.get(), "1.3.6.1.4.1.57264.1.8", utf8_der(o.issuer));
  check(X509_sign(leaf.cert.get(), issuer_key, EVP_sha256()) > 0, "sign leaf");
  if (o.sct) {
    // The precertificate TBS is this certificate's TBS before the SCT list is added.
    const FakeLog& log = o.ct_log ? *o.ct_log : ct;
    std::uint64_t ms = o.sct_timestamp_ms.value_or(static_cast<std::uint64_t>(seconds(not_before)) * 1000 + 1500);
    std::string tbs = tbs_of(cert_der(leaf.cert.get()));
    if (!o.sct_covers_certificate) tbs[tbs.size() - 1] ^= 0x01;
    add_raw_ext(leaf.cert.get(), "1.3.6.1.4.1.11129.2.4.2", sct_list(log, ms, sct_signature(log, ms, issuer, tbs)));
    check(X509_sign(leaf.cert.get(), issuer_key, EVP_sha256()) > 0, "sign leaf with SCT");
  }
  return leaf;
}

TlogEntry KeylessFixtures::log_entry(const std::string& body, Clock::time_point when, const SignOptions& o) {
  TlogEntry entry;
  entry.body = body;
  entry.integrated_time = seconds(when);
  std::size_t shard_index = rekor.leaves.size();
  rekor.leaves.push_back(body);
  for (std::size_t i = 0; i < o.trailing_leaves; ++i) rekor.leaves.push_back("{\"later\":" + std::to_string(rekor.leaves.size()) + "}");
  entry.log_index = static_cast<std::int64_t>(shard_index) + rekor.global_offset;
  entry.log_id = rekor.log_id();
  json parsed = json::parse(body);
  entry.kind = parsed["kind"];
  entry.version = parsed["apiVersion"];
  sign_set(entry);
  if (o.inclusion_proof) {
    InclusionProof proof;
    proof.log_index = static_cast<std::int64_t>(shard_index);
    proof.tree_size = static_cast<std::int64_t>(rekor.leaves.size());
    proof.root_hash = tree_root(rekor.leaves, 0, rekor.leaves.size());
    proof.hashes = tree_path(rekor.leaves, shard_index, 0, rekor.leaves.size());
    std::string note = rekor.name + " - 4242\n" + std::to_string(proof.tree_size) + "\n" + to_base64(proof.root_hash) + "\n";
    std::string hint = rekor.log_id().substr(0, 4);
    proof.checkpoint = note + "\n\xe2\x80\x94 " + rekor.name + " " + to_base64(hint + sign_sha256(rekor.key.get(), note)) + "\n";
    entry.proof = std::move(proof);
  }
  return entry;
}

void KeylessFixtures::sign_set(TlogEntry& entry) const {
  // The SET, spelled out in RFC 8785 order.
  std::string set = "{\"body\":\"" + to_base64(entry.body) + "\",\"integratedTime\":" + std::to_string(entry.integrated_time) +
                    ",\"logID\":\"" + hex(entry.log_id) + "\",\"logIndex\":" + std::to_string(entry.log_index) + "}";
  entry.signed_entry_timestamp = sign_sha256(rekor.key.get(), set);
}

SignedMessage KeylessFixtures::sign_message(const std::string& payload, const SignOptions& o) {
  Clock::time_point when = o.when.value_or(now);
  Leaf leaf = issue_leaf(o, when);
  SignedMessage out;
  out.payload = payload;
  out.signature = sign_sha256(leaf.key.get(), payload);
  out.certificate_der = cert_der(leaf.cert.get());
  out.certificate_pem = cert_pem(leaf.cert.get());
  out.chain_pem = cert_pem(o.issuer_cert ? o.issuer_cert : intermediate.get()) + cert_pem(root.get());
  if (o.tlog) {
    out.entry = log_entry(entry_body(EntryKind::hashedrekord, payload, out.signature, out.certificate_pem, ""), when, o);
    out.rekor_bundle = rekor_bundle_annotation(*out.entry);
  }
  return out;
}

SignedDsse KeylessFixtures::sign_dsse(const std::string& statement, const SignOptions& o) {
  Clock::time_point when = o.when.value_or(now);
  Leaf leaf = issue_leaf(o, when);
  const std::string type = "application/vnd.in-toto+json";
  SignedDsse out;
  out.statement = statement;
  out.signature = sign_sha256(leaf.key.get(), pae(type, statement));
  out.envelope = json{{"payloadType", type}, {"payload", to_base64(statement)}, {"signatures", {{{"keyid", ""}, {"sig", to_base64(out.signature)}}}}}.dump();
  out.certificate_der = cert_der(leaf.cert.get());
  out.certificate_pem = cert_pem(leaf.cert.get());
  out.chain_pem = cert_pem(o.issuer_cert ? o.issuer_cert : intermediate.get()) + cert_pem(root.get());
  if (o.tlog) {
    EntryKind kind = o.kind == EntryKind::hashedrekord ? EntryKind::intoto : o.kind;
    out.entry = log_entry(entry_body(kind, statement, out.signature, out.certificate_pem, type), when, o);
    out.rekor_bundle = rekor_bundle_annotation(*out.entry);
  }
  return out;
}

std::pair<Cert, Pkey> KeylessFixtures::unlisted_intermediate() const {
  Pkey key = generate_p256();
  Cert cert = make_ca(key.get(), root.get(), root_key.get(), "sigstore-test-retired", now);
  return {cert, key};
}

std::pair<std::string, std::map<std::string, std::string>> cosign_manifest(const std::vector<LayerSpec>& layers) {
  json list = json::array();
  std::map<std::string, std::string> blobs;
  for (const auto& layer : layers) {
    std::string digest = "sha256:" + sha256_hex(layer.blob);
    json annotations = json::object();
    for (const auto& [k, v] : layer.annotations) annotations[k] = v;
    list.push_back({{"mediaType", layer.media_type}, {"size", layer.blob.size()}, {"digest", digest}, {"annotations", annotations}});
    blobs[digest] = layer.blob;
  }
  json manifest = {{"schemaVersion", 2},
                   {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                   {"config", {{"mediaType", "application/vnd.oci.image.config.v1+json"}, {"size", 2}, {"digest", "sha256:" + sha256_hex("{}")}}},
                   {"layers", list}};
  return {manifest.dump(), blobs};
}

std::string simplesigning_payload(const std::string& digest, const std::string& reference) {
  return json{{"critical", {{"identity", {{"docker-reference", reference}}}, {"image", {{"docker-manifest-digest", digest}}}, {"type", "cosign container image signature"}}},
              {"optional", nullptr}}
      .dump();
}

std::string provenance_statement(const std::string& digest, const std::string& builder_id, const std::string& repository, bool v1) {
  json subject = {{{"name", "ghcr.io/acme/app"}, {"digest", {{"sha256", digest.substr(digest.find(':') + 1)}}}}};
  json predicate;
  if (v1) {
    predicate = {{"buildDefinition",
                  {{"buildType", "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1"},
                   {"externalParameters", {{"workflow", {{"ref", "refs/tags/v1.0.0"}, {"repository", repository}, {"path", ".github/workflows/release.yml"}}}}},
                   {"resolvedDependencies", {{{"uri", "git+" + repository + "@refs/tags/v1.0.0"}, {"digest", {{"gitCommit", std::string(40, 'a')}}}}}}}},
                 {"runDetails", {{"builder", {{"id", builder_id}}}, {"metadata", {{"invocationId", "https://example.test/run/1"}}}}}};
  } else {
    predicate = {{"builder", {{"id", builder_id}}},
                 {"buildType", "https://github.com/slsa-framework/slsa-github-generator/container@v1"},
                 {"invocation", {{"configSource", {{"uri", "git+" + repository + "@refs/tags/v1.0.0"}, {"entryPoint", ".github/workflows/release.yml"}}}}},
                 {"materials", {{{"uri", "git+" + repository + "@refs/tags/v1.0.0"}}}}};
  }
  return json{{"_type", "https://in-toto.io/Statement/v1"},
              {"subject", subject},
              {"predicateType", v1 ? "https://slsa.dev/provenance/v1" : "https://slsa.dev/provenance/v0.2"},
              {"predicate", predicate}}
      .dump();
}

}  // namespace ocigate::signature::test
