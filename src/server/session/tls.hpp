#pragma once
// The listener's TLS: a server context from server.tls (read again on SIGHUP), and the user a
// verified client certificate names (server.tls.client_cert_user).

#include <memory>
#include <string>

#include <boost/asio/ssl/context.hpp>
#include <openssl/ssl.h>

#include "ocigate/common/result.hpp"
#include "ocigate/config/config.hpp"

namespace ocigate::server {

// TLS 1.2+ with forward secrecy and AEAD only; mTLS when client_ca_file is set. An error names the
// key and file that could not be used (Errc::config_invalid).
Result<std::shared_ptr<boost::asio::ssl::context>> make_tls_context(const config::Tls& tls);

// The user a verified client certificate authenticates its connection as, "" for none: only with
// client_ca_file and client_cert_user; a certificate whose subject names no usable user leaves the
// connection anonymous, with a log line.
std::string certificate_user(SSL* connection, const config::Tls& tls, const std::string& peer);

}  // namespace ocigate::server
