#include "session/tls.hpp"

#include <boost/beast/core/error.hpp>

#include "ocigate/auth/auth.hpp"
#include "ocigate/server/log.hpp"

namespace ocigate::server {

namespace ssl = boost::asio::ssl;

namespace {

// TLS 1.2+ with forward secrecy and AEAD only (TLS 1.3 suites are OpenSSL's defaults, all modern).
constexpr const char* tls12_ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

}  // namespace

Result<std::shared_ptr<ssl::context>> make_tls_context(const config::Tls& tls) {
  auto context = std::make_shared<ssl::context>(ssl::context::tls_server);
  context->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                       ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::no_compression |
                       ssl::context::single_dh_use);
  SSL_CTX* native = context->native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  SSL_CTX_set_options(native, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION);
  if (SSL_CTX_set_cipher_list(native, tls12_ciphers) != 1) return Error{Errc::config_invalid, "server.tls: no usable ciphers"};
  boost::beast::error_code ec;
  context->use_certificate_chain_file(tls.cert_file, ec);
  if (ec) return Error{Errc::config_invalid, "server.tls.cert_file: cannot load " + tls.cert_file + ": " + ec.message()};
  context->use_private_key_file(tls.key_file, ssl::context::pem, ec);
  if (ec) return Error{Errc::config_invalid, "server.tls.key_file: cannot load " + tls.key_file + ": " + ec.message()};
  if (SSL_CTX_check_private_key(native) != 1) {
    return Error{Errc::config_invalid, "server.tls.key_file: " + tls.key_file + " does not match the certificate"};
  }
  if (!tls.client_ca_file.empty()) {
    context->load_verify_file(tls.client_ca_file, ec);
    if (ec) {
      return Error{Errc::config_invalid,
                   "server.tls.client_ca_file: cannot load " + tls.client_ca_file + ": " + ec.message()};
    }
    if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(tls.client_ca_file.c_str())) {
      SSL_CTX_set_client_CA_list(native, names);
    }
    context->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  }
  return context;
}

std::string certificate_user(SSL* connection, const config::Tls& tls, const std::string& peer) {
  if (tls.client_ca_file.empty() || !tls.client_cert_user) return {};
  if (SSL_get_verify_result(connection) != X509_V_OK) return {};
  auto user = auth::certificate_user(SSL_get0_peer_certificate(connection));
  if (!user) {
    log::warn("client certificate names no usable user; its requests are anonymous",
              {{"client", peer}, {"error", user.error().message}});
    return {};
  }
  return std::move(*user);
}

}  // namespace ocigate::server
