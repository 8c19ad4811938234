#pragma once
// When the serving certificate expires, exported as ocigate_tls_certificate_expiry_timestamp_seconds
// so an alert fires weeks before clients start refusing the mirror (deploy/prometheus/alerts.yaml).

#include <cstdint>
#include <string>

#include "ocigate/common/result.hpp"
#include "ocigate/metrics/metrics.hpp"

namespace ocigate::server {

// notAfter of the first certificate in a PEM file (the leaf of a chain file), in unix seconds.
Result<std::int64_t> certificate_not_after(const std::string& pem_path);

// Sets the expiry gauge from server.tls.cert_file; called wherever the TLS context is (re)loaded.
// A file that cannot be read here leaves the gauge as it was, with a warning.
void export_certificate_expiry(const std::string& cert_file, metrics::Metrics& metrics);

}  // namespace ocigate::server
