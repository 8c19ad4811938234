#include "ocigate/signature/trust.hpp"

#include <openssl/core_names.h>
#include <openssl/decoder.h>
#include <openssl/pem.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "crypto.hpp"
#include "ocigate/oci/digest.hpp"
#include "ocigate/common/glob.hpp"

namespace ocigate::signature {

using namespace detail;

namespace {

constexpr std::size_t max_file_bytes = 1 << 20;

std::string trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return std::string(s);
}

std::string upper(std::string s) {
  for (auto& c : s) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return s;
}

Result<std::string> read_file(const std::filesystem::path& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return Error{Errc::config_invalid, "is a directory"};
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{Errc::config_invalid, std::string("cannot be read: ") + std::strerror(errno)};
  std::string out;
  char buf[8192];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    out.append(buf, static_cast<std::size_t>(in.gcount()));
    if (out.size() > max_file_bytes) return Error{Errc::config_invalid, "is larger than 1 MiB"};
  }
  if (in.bad()) return Error{Errc::config_invalid, "cannot be read"};
  return out;
}

std::string cert_fingerprint(X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(cert, EVP_sha256(), md, &len) != 1) return {};
  static constexpr char hex[] = "0123456789abcdef";
  std::string out = "sha256:";
  for (unsigned int i = 0; i < len; ++i) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 15];
  }
  return out;
}

struct LoadedStore {
  std::shared_ptr<X509_STORE> store;
  std::vector<std::string> subjects, fingerprints;
};

Result<LoadedStore> parse_ca_bundle(std::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return Error{Errc::internal, "out of memory"};
  LoadedStore out;
  out.store.reset(X509_STORE_new(), X509_STORE_free);
  if (!out.store) return Error{Errc::internal, "out of memory"};
  while (true) {
    X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!cert) break;
    if (X509_STORE_add_cert(out.store.get(), cert.get()) != 1) {
      ERR_clear_error();  // a duplicate certificate is harmless
    }
    out.subjects.push_back(subject_text(cert.get()));
    out.fingerprints.push_back(cert_fingerprint(cert.get()));
  }
  ERR_clear_error();
  if (out.subjects.empty()) return Error{Errc::config_invalid, "holds no PEM certificate (\"-----BEGIN CERTIFICATE-----\")"};
  return out;
}

std::filesystem::path resolve(const std::string& path, const std::filesystem::path& base_dir) {
  std::filesystem::path p(path);
  return p.is_absolute() || base_dir.empty() ? p : base_dir / p;
}

}  // namespace

const char* key_type_text(KeyType type) {
  switch (type) {
    case KeyType::ecdsa_p256: return "ecdsa-p256";
    case KeyType::ecdsa_p384: return "ecdsa-p384";
    case KeyType::ecdsa_p521: return "ecdsa-p521";
    case KeyType::rsa: return "rsa";
    case KeyType::ed25519: return "ed25519";
  }
  return "unknown";
}

Result<PublicKey> parse_public_key(std::string_view pem, std::string_view name) {
  auto refuse = [&](const std::string& why) { return Error{Errc::config_invalid, std::string(name) + ": " + why}; };
  if (pem.find("PRIVATE KEY-----") != std::string_view::npos) {
    return refuse("is a private key: configure the public key (cosign.pub, openssl pkey -pubout)");
  }
  if (pem.find("-----BEGIN ") == std::string_view::npos) return refuse("is not a PEM public key (no \"-----BEGIN PUBLIC KEY-----\")");
  EVP_PKEY* raw = nullptr;
  OSSL_DECODER_CTX* dctx =
      OSSL_DECODER_CTX_new_for_pkey(&raw, "PEM", nullptr, nullptr, EVP_PKEY_PUBLIC_KEY, nullptr, nullptr);
  if (!dctx) return refuse("cannot set up a key decoder: " + openssl_error("unknown error"));
  const auto* data = reinterpret_cast<const unsigned char*>(pem.data());
  std::size_t len = pem.size();
  int rc = OSSL_DECODER_from_data(dctx, &data, &len);
  OSSL_DECODER_CTX_free(dctx);
  PkeyPtr pkey(raw);
  if (rc != 1 || !pkey) return refuse("is not a readable PEM public key: " + openssl_error("decoding failed"));
  ERR_clear_error();

  PublicKey key;
  int id = EVP_PKEY_get_base_id(pkey.get());
  if (id == EVP_PKEY_EC) {
    char group[64] = {0};
    std::size_t glen = 0;
    if (EVP_PKEY_get_utf8_string_param(pkey.get(), OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &glen) != 1) {
      return refuse("an EC key without a named curve");
    }
    std::string g(group);
    if (g == "prime256v1" || g == "P-256") key.type = KeyType::ecdsa_p256;
    else if (g == "secp384r1" || g == "P-384") key.type = KeyType::ecdsa_p384;
    else if (g == "secp521r1" || g == "P-521") key.type = KeyType::ecdsa_p521;
    else return refuse("EC curve " + g + " is not supported (P-256, P-384, P-521)");
  } else if (id == EVP_PKEY_RSA || id == EVP_PKEY_RSA_PSS) {
    if (EVP_PKEY_get_bits(pkey.get()) < 2048) {
      return refuse("RSA key of " + std::to_string(EVP_PKEY_get_bits(pkey.get())) + " bits is too weak (at least 2048)");
    }
    key.type = KeyType::rsa;
  } else if (id == EVP_PKEY_ED25519) {
    key.type = KeyType::ed25519;
  } else {
    return refuse("key type is not supported (ECDSA P-256/P-384/P-521, RSA, Ed25519)");
  }
  key.fingerprint = spki_fingerprint(pkey.get());
  if (key.fingerprint.empty()) return refuse("cannot encode the public key: " + openssl_error("unknown error"));
  key.pkey = std::shared_ptr<EVP_PKEY>(pkey.release(), EVP_PKEY_free);
  return key;
}

Result<Identity> parse_identity(std::string_view text) {
  Identity id;
  id.text = std::string(text);
  if (trim(text) == "*") {
    id.any = true;
    return id;
  }
  static constexpr std::string_view prefix = "x509.subject:";
  if (text.substr(0, prefix.size()) != prefix) {
    return Error{Errc::config_invalid, "identity '" + std::string(text) + "' must be \"x509.subject: CN=...,O=...\" or \"*\""};
  }
  std::string_view dn = text.substr(prefix.size());
  std::string part;
  auto flush = [&]() -> bool {
    std::string p = trim(part);
    part.clear();
    auto eq = p.find('=');
    if (eq == std::string::npos || eq == 0) return false;
    id.rdns.emplace_back(upper(trim(std::string_view(p).substr(0, eq))), trim(std::string_view(p).substr(eq + 1)));
    return true;
  };
  for (std::size_t i = 0; i < dn.size(); ++i) {
    if (dn[i] == '\\' && i + 1 < dn.size()) {
      part += dn[++i];
    } else if (dn[i] == ',') {
      if (!flush()) return Error{Errc::config_invalid, "identity '" + std::string(text) + "' has a part that is not ATTR=value"};
    } else {
      part += dn[i];
    }
  }
  if (!flush()) return Error{Errc::config_invalid, "identity '" + std::string(text) + "' has a part that is not ATTR=value"};
  std::sort(id.rdns.begin(), id.rdns.end());
  return id;
}

std::vector<const LoadedTrustEntry*> TrustStore::matching(std::string_view image) const {
  std::vector<const LoadedTrustEntry*> out;
  for (const auto& entry : entries) {
    if (glob_match(entry.match, image)) out.push_back(&entry);
  }
  return out;
}

Result<TrustStore> load_trust(const policy::Policy& policy, const std::filesystem::path& base_dir) {
  TrustStore store;
  nlohmann::json summary = nlohmann::json::array();
  auto refuse = [&base_dir](const policy::TrustFile& file, const std::string& why) {
    std::string resolved = resolve(file.path, base_dir).string();
    std::string name = resolved == file.path ? file.path : file.path + " (" + resolved + ")";
    return Error{Errc::config_invalid, file.where + ": " + name + ": " + why};
  };
  for (const auto& configured : policy.trust) {
    LoadedTrustEntry entry;
    entry.match = configured.match;
    entry.where = configured.where;
    entry.cosign = configured.cosign;
    entry.notation = configured.notation;
    nlohmann::json item = {{"match", entry.match}};
    for (const auto& file : configured.cosign_keys) {
      auto path = resolve(file.path, base_dir);
      auto text = read_file(path);
      if (!text) return refuse(file, text.error().message);
      auto key = parse_public_key(*text, path.string());
      if (!key) return Error{Errc::config_invalid, file.where + ": " + key.error().message};
      key->path = path.string();
      item["cosign"].push_back(key->fingerprint);
      entry.cosign_keys.push_back(std::move(*key));
    }
    if (configured.notation) {
      const auto& file = configured.notation_trust_store;
      auto path = resolve(file.path, base_dir);
      auto text = read_file(path);
      if (!text) return refuse(file, text.error().message);
      auto loaded = parse_ca_bundle(*text);
      if (!loaded) return refuse(file, loaded.error().message);
      entry.notation_store_path = path.string();
      entry.notation_store = loaded->store;
      entry.notation_ca_subjects = loaded->subjects;
      item["notation"]["ca"] = loaded->fingerprints;
      for (std::size_t i = 0; i < configured.notation_identities.size(); ++i) {
        auto id = parse_identity(configured.notation_identities[i]);
        if (!id) {
          return Error{Errc::config_invalid,
                       configured.where + ".notation.identities[" + std::to_string(i) + "]: " + id.error().message};
        }
        entry.notation_identities.push_back(std::move(*id));
      }
      item["notation"]["identities"] = configured.notation_identities;
    }
    summary.push_back(std::move(item));
    store.entries.push_back(std::move(entry));
  }
  store.fingerprint = oci::sha256_digest(summary.dump());
  return store;
}

}  // namespace ocigate::signature
