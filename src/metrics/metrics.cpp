#include "ocigate/metrics/metrics.hpp"

#include <prometheus/text_serializer.h>

namespace ocigate::metrics {

namespace {

const prometheus::Histogram::BucketBoundaries& latency_buckets() {
  static const prometheus::Histogram::BucketBoundaries buckets{
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
  return buckets;
}

template <class Builder>
auto& family(Builder builder, prometheus::Registry& registry, const char* name, const char* help) {
  return builder.Name(name).Help(help).Register(registry);
}

}  // namespace

Metrics::Metrics() : registry_(std::make_shared<prometheus::Registry>()) {
  auto& r = *registry_;
  requests_ = &family(prometheus::BuildCounter(), r, "ocigate_http_requests_total",
                      "HTTP requests answered, by route, method and status");
  request_seconds_ = &family(prometheus::BuildHistogram(), r, "ocigate_http_request_duration_seconds",
                             "Time to answer a request (whole body), by route");
  cache_requests_ = &family(prometheus::BuildCounter(), r, "ocigate_cache_requests_total",
                            "Cache lookups by kind (blob, manifest, tag) and result (hit, miss, stale)");
  bytes_served_ = &family(prometheus::BuildCounter(), r, "ocigate_bytes_served_total",
                          "Body bytes sent to clients, by source (cache, upstream)");
  upstream_requests_ = &family(prometheus::BuildCounter(), r, "ocigate_upstream_requests_total",
                               "Requests sent to upstream registries, by upstream and status");
  upstream_seconds_ = &family(prometheus::BuildHistogram(), r, "ocigate_upstream_request_duration_seconds",
                              "Time until an upstream response header arrived, by upstream");
  upstream_fetches_ = &family(prometheus::BuildCounter(), r, "ocigate_upstream_fetches_total",
                              "Content fetched from upstreams into the cache, by upstream and kind");
  pull_ahead_ = &family(prometheus::BuildCounter(), r, "ocigate_pull_ahead_layers_total",
                        "Layers the mirror took up ahead of a pulling client (upstreams[].pull_ahead), by upstream and "
                        "result: fetched (or waited for while a client's fetch ran), cached (already there), failed "
                        "(the image's walk stopped there), yielded (left to the client: max_concurrent_fetches slots "
                        "were wanted by clients)");
  digest_mismatches_ = &family(prometheus::BuildCounter(), r, "ocigate_digest_mismatches_total",
                               "Upstream content whose bytes did not match its digest, by upstream");
  cache_write_failures_ = &family(prometheus::BuildCounter(), r, "ocigate_cache_write_failures_total",
                                  "Blobs being fetched that the cache could not take, by stage (begin, append, commit)");
  malformed_ = &family(prometheus::BuildCounter(), r, "ocigate_malformed_requests_total",
                       "Requests refused before routing, by reason");
  decisions_ = &family(prometheus::BuildCounter(), r, "ocigate_policy_decisions_total",
                        "Policy gate decisions on image manifests, by verdict (allow, warn, block)");
  evaluation_seconds_ = &family(prometheus::BuildHistogram(), r, "ocigate_policy_evaluation_seconds",
                                "Time to reach a verdict, including fetching the image config");
  violations_ = &family(prometheus::BuildCounter(), r, "ocigate_policy_violations_total",
                        "Failed checks that counted, by check id and action (warn, block)");
  blocked_pulls_ = &family(prometheus::BuildCounter(), r, "ocigate_blocked_pulls_total",
                           "Manifest requests answered 403 by the gate, by upstream, check id and (where configured) repository");
  verdict_cache_ = &family(prometheus::BuildCounter(), r, "ocigate_verdict_cache_total",
                           "Verdict cache lookups, by result (hit, miss)");
  policy_reloads_ = &family(prometheus::BuildCounter(), r, "ocigate_policy_reloads_total",
                            "Policy reloads on SIGHUP, by result (ok, error)");
  blobs_denied_ = &family(prometheus::BuildCounter(), r, "ocigate_unreferenced_blob_requests_total",
                          "Blob requests no allowed manifest references (refused under enforce, counted under audit)")
                      .Add({});
  lost_files_ = &family(prometheus::BuildCounter(), r, "ocigate_cache_lost_files_total",
                        "Cached blobs dropped because their file was missing or shorter than recorded (at start "
                        "or when next read); each is fetched again")
                     .Add({});
  corrupt_cached_blobs_ = &family(prometheus::BuildCounter(), r, "ocigate_corrupt_cached_blobs_total",
                                  "Cached blobs whose bytes no longer matched their digest when served "
                                  "(storage.verify_reads); each was cut and removed from the cache")
                              .Add({});
  layer_scans_ = &family(prometheus::BuildCounter(), r, "ocigate_layer_scans_total",
                         "Layers inspected for the gate, by result (ok, foreign, error, timeout)");
  signatures_ = &family(prometheus::BuildCounter(), r, "ocigate_signature_verifications_total",
                        "Image signatures checked by the gate, by format and result");
  signature_seconds_ = &family(prometheus::BuildHistogram(), r, "ocigate_signature_verification_seconds",
                               "Time to look up and verify one image's signatures");
  auth_failures_ = &family(prometheus::BuildCounter(), r, "ocigate_auth_failures_total",
                           "Requests refused by client authentication (401) or authorization (403), by reason");
  limited_ = &family(prometheus::BuildCounter(), r, "ocigate_rate_limited_total",
                     "Requests (429) and connections (closed) refused by the abuse limits, by limit");
  fetch_slot_timeouts_ = &family(prometheus::BuildCounter(), r, "ocigate_upstream_fetch_slot_timeouts_total",
                                 "Upstream requests refused (503) after waiting fetch_slot_timeout for a "
                                 "max_concurrent_fetches slot, by upstream");
  notify_events_ = &family(prometheus::BuildCounter(), r, "ocigate_notify_events_total",
                           "Events for notify.webhooks (one per webhook an event goes to), by result (delivered, failed, dropped, retried; suppressed: a repeat held back)");
  for (const char* result : {"delivered", "failed", "dropped", "retried", "suppressed"}) {
    notify_events_->Add({{"result", result}});
  }
  inflight_streams_ = &family(prometheus::BuildGauge(), r, "ocigate_inflight_streams",
                              "Blob bodies being sent to clients now").Add({});
  fetch_followers_ = &family(prometheus::BuildGauge(), r, "ocigate_shared_fetch_waiters",
                             "Clients following a shared upstream fetch now").Add({});
  cache_size_bytes_ = &family(prometheus::BuildGauge(), r, "ocigate_cache_size_bytes",
                              "Bytes of committed blobs and manifests in the cache").Add({});
  cache_blobs_ = &family(prometheus::BuildGauge(), r, "ocigate_cache_blobs", "Committed blobs in the cache").Add({});
  cache_max_size_bytes_ = &family(prometheus::BuildGauge(), r, "ocigate_cache_max_size_bytes",
                                  "storage.max_size: the cache evicts least recently used blobs above it").Add({});
  tls_expiry_ = &family(prometheus::BuildGauge(), r, "ocigate_tls_certificate_expiry_timestamp_seconds",
                        "When the certificate the TLS listener serves expires (notAfter, unix seconds)");
  instance_info_ = &family(prometheus::BuildGauge(), r, "ocigate_instance_info",
                           "This replica (server.instance) and its build version; always 1");
  policy_info_ = &family(prometheus::BuildGauge(), r, "ocigate_policy_info",
                         "The policy in force: its mode (enforce|audit) and version; always 1");
  vulnerability_findings_ = &family(prometheus::BuildCounter(), r, "ocigate_vulnerability_findings_total",
                                    "Known vulnerabilities matched in judged images' packages, by severity");
  vulnerability_match_seconds_ = &family(prometheus::BuildHistogram(), r, "ocigate_vulnerability_match_seconds",
                                         "Time to match one image's packages against the vulnerability database");
  vulndb_age_ = &family(prometheus::BuildGauge(), r, "ocigate_vulndb_age_seconds",
                        "Age of the vulnerability database in force (since it was built); older than "
                        "vulnerabilities.max_age makes the check answer unknown");
  vulndb_loaded_ = &family(prometheus::BuildGauge(), r, "ocigate_vulndb_loaded",
                           "1 when a vulnerability database is loaded, 0 when none is (not configured or unusable)")
                        .Add({});
  vulndb_records_ = &family(prometheus::BuildGauge(), r, "ocigate_vulndb_records",
                            "OSV records in the loaded vulnerability database").Add({});
  vulndb_max_age_ = &family(prometheus::BuildGauge(), r, "ocigate_vulndb_max_age_seconds",
                            "vulnerabilities.max_age: a database older than this makes the check unknown").Add({});
  vulndb_loads_ = &family(prometheus::BuildCounter(), r, "ocigate_vulndb_loads_total",
                          "Vulnerability database loads at start and on SIGHUP, by result (ok, error, unchanged)");
  evictions_ = &family(prometheus::BuildCounter(), r, "ocigate_cache_evictions_total",
                       "Blobs evicted from the cache (least recently used)").Add({});
  evicted_bytes_ = &family(prometheus::BuildCounter(), r, "ocigate_cache_evicted_bytes_total",
                           "Bytes evicted from the cache").Add({});
}

std::string Metrics::render() const {
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

void Metrics::record_request(std::string_view route, std::string_view method, unsigned status, double seconds) {
  requests_->Add({{"route", std::string(route)}, {"method", std::string(method)}, {"status", std::to_string(status)}})
      .Increment();
  request_seconds_->Add({{"route", std::string(route)}}, latency_buckets()).Observe(seconds);
}

void Metrics::record_cache(std::string_view kind, std::string_view result) {
  cache_requests_->Add({{"kind", std::string(kind)}, {"result", std::string(result)}}).Increment();
}

void Metrics::record_bytes_served(std::string_view source, double bytes) {
  bytes_served_->Add({{"source", std::string(source)}}).Increment(bytes);
}

void Metrics::record_upstream(std::string_view upstream, std::string_view status, double seconds) {
  upstream_requests_->Add({{"upstream", std::string(upstream)}, {"status", std::string(status)}}).Increment();
  upstream_seconds_->Add({{"upstream", std::string(upstream)}}, latency_buckets()).Observe(seconds);
}

void Metrics::record_upstream_fetch(std::string_view upstream, std::string_view kind) {
  upstream_fetches_->Add({{"upstream", std::string(upstream)}, {"kind", std::string(kind)}}).Increment();
}

void Metrics::record_pull_ahead(std::string_view upstream, std::string_view result) {
  pull_ahead_->Add({{"upstream", std::string(upstream)}, {"result", std::string(result)}}).Increment();
}

void Metrics::record_digest_mismatch(std::string_view upstream) {
  digest_mismatches_->Add({{"upstream", std::string(upstream)}}).Increment();
}

void Metrics::record_cache_write_failure(std::string_view stage) {
  cache_write_failures_->Add({{"stage", std::string(stage)}}).Increment();
}

void Metrics::record_malformed(std::string_view reason) {
  malformed_->Add({{"reason", std::string(reason)}}).Increment();
}

void Metrics::record_decision(std::string_view verdict, double seconds) {
  decisions_->Add({{"verdict", std::string(verdict)}}).Increment();
  evaluation_seconds_->Add({}, latency_buckets()).Observe(seconds);
}

void Metrics::record_violation(std::string_view check, std::string_view action) {
  violations_->Add({{"check", std::string(check)}, {"action", std::string(action)}}).Increment();
}

void Metrics::record_blocked_pull(std::string_view upstream, std::string_view repository, std::string_view check) {
  blocked_pulls_->Add({{"upstream", std::string(upstream)}, {"repository", std::string(repository)},
                       {"check", std::string(check)}})
      .Increment();
}

void Metrics::record_verdict_cache(std::string_view result) {
  verdict_cache_->Add({{"result", std::string(result)}}).Increment();
}

void Metrics::record_policy_reload(std::string_view result) {
  policy_reloads_->Add({{"result", std::string(result)}}).Increment();
}

void Metrics::record_blob_denied() { blobs_denied_->Increment(); }

void Metrics::record_corrupt_cached_blob() { corrupt_cached_blobs_->Increment(); }

void Metrics::set_lost_files(double lost) {
  if (lost > lost_files_->Value()) lost_files_->Increment(lost - lost_files_->Value());
}

void Metrics::record_signature(std::string_view format, std::string_view result) {
  signatures_->Add({{"format", std::string(format)}, {"result", std::string(result)}}).Increment();
}

void Metrics::record_signature_seconds(double seconds) {
  signature_seconds_->Add({}, latency_buckets()).Observe(seconds);
}

void Metrics::record_layer_scan(std::string_view result) {
  layer_scans_->Add({{"result", std::string(result)}}).Increment();
}

void Metrics::record_auth_failure(std::string_view reason) {
  auth_failures_->Add({{"reason", std::string(reason)}}).Increment();
}

void Metrics::record_limited(std::string_view limit) { limited_->Add({{"limit", std::string(limit)}}).Increment(); }

void Metrics::set_fetch_slot_timeouts(std::string_view upstream, double total) {
  auto& counter = fetch_slot_timeouts_->Add({{"upstream", std::string(upstream)}});
  if (total > counter.Value()) counter.Increment(total - counter.Value());
}

void Metrics::record_notify(std::string_view result) {
  notify_events_->Add({{"result", std::string(result)}}).Increment();
}

void Metrics::set_tls_certificate_expiry(double unix_seconds) { tls_expiry_->Add({}).Set(unix_seconds); }

void Metrics::set_instance(std::string_view instance, std::string_view version) {
  instance_info_->Add({{"ocigate_instance", std::string(instance)}, {"version", std::string(version)}}).Set(1);
}

// One series at a time: the previous policy's goes when a reload replaces it.
void Metrics::set_policy(std::string_view mode, std::string_view version) {
  auto& next = policy_info_->Add({{"mode", std::string(mode)}, {"version", std::string(version)}});
  if (policy_series_ && policy_series_ != &next) policy_info_->Remove(policy_series_);
  policy_series_ = &next;
  next.Set(1);
}

void Metrics::record_vulnerability_findings(std::string_view severity, double count) {
  vulnerability_findings_->Add({{"severity", std::string(severity)}}).Increment(count);
}

void Metrics::record_vulnerability_match_seconds(double seconds) {
  static const prometheus::Histogram::BucketBoundaries buckets{0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1};
  vulnerability_match_seconds_->Add({}, buckets).Observe(seconds);
}

void Metrics::set_vulndb(bool loaded, double records, double max_age_seconds) {
  vulndb_loaded_->Set(loaded ? 1 : 0);
  vulndb_records_->Set(records);
  vulndb_max_age_->Set(max_age_seconds);
  if (!loaded) vulndb_age_->Remove(&vulndb_age_->Add({}));
}

void Metrics::set_vulndb_age(double seconds) { vulndb_age_->Add({}).Set(seconds); }

void Metrics::record_vulndb_load(std::string_view result) { vulndb_loads_->Add({{"result", std::string(result)}}).Increment(); }

void Metrics::set_evictions(double evictions, double evicted_bytes) {
  // The cache counts since open; mirror the difference so the counters stay monotonic.
  if (evictions > evictions_->Value()) evictions_->Increment(evictions - evictions_->Value());
  if (evicted_bytes > evicted_bytes_->Value()) evicted_bytes_->Increment(evicted_bytes - evicted_bytes_->Value());
}

}  // namespace ocigate::metrics
