#pragma once
// Every metric ocigate exports, in one registry. Modules hold a Metrics& and record into it;
// /metrics renders the registry as Prometheus text. Label values come from small closed sets
// (routes, statuses, upstream names from the config) so cardinality stays bounded.

#include <memory>
#include <string>
#include <string_view>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace ocigate::metrics {

class Metrics {
 public:
  Metrics();

  // Prometheus text exposition format of everything registered.
  std::string render() const;
  prometheus::Registry& registry() { return *registry_; }

  // route: base|manifest|blob|tags|referrers|metrics|health|verdict|auth|limit|other
  void record_request(std::string_view route, std::string_view method, unsigned status, double seconds);
  // kind: blob|manifest|tag|referrers; result: hit|miss|stale
  void record_cache(std::string_view kind, std::string_view result);
  void record_bytes_served(std::string_view source, double bytes);  // source: cache|upstream
  // status: the HTTP status as text, or "error" for transport failures
  void record_upstream(std::string_view upstream, std::string_view status, double seconds);
  void record_upstream_fetch(std::string_view upstream, std::string_view kind);  // kind: blob|manifest
  // A layer the mirror fetched ahead of a pulling client (upstreams[].pull_ahead); result: fetched|cached|failed|yielded
  // (left to the client: the upstream's fetch slots were wanted by clients).
  void record_pull_ahead(std::string_view upstream, std::string_view result);
  void record_digest_mismatch(std::string_view upstream);
  // The cache could not take a blob being fetched. stage: begin (no file for it), append (a write
  // failed: the fetch fails), commit (sync or index write failed after the bytes were verified: its
  // clients are still served, from the staged file, and the next pull fetches it again).
  void record_cache_write_failure(std::string_view stage);
  void record_corrupt_cached_blob();  // storage.verify_reads found cached bytes that no longer match
  void set_lost_files(double lost);    // the cache's count since open (cache::Stats::lost_files)
  void record_malformed(std::string_view reason);

  // Policy gate. verdict: allow|warn|block; action: warn|block; result: hit|miss; reload: ok|error.
  void record_decision(std::string_view verdict, double seconds);
  void record_violation(std::string_view check, std::string_view action);
  // repository is "" unless policy.metrics_repositories names it (bounded cardinality).
  void record_blocked_pull(std::string_view upstream, std::string_view repository, std::string_view check);
  void record_verdict_cache(std::string_view result);
  void record_policy_reload(std::string_view result);
  void record_blob_denied();
  // Layer scans for the gate, by result: ok|foreign|error (bad layer)|timeout (prefetch_timeout).
  void record_layer_scan(std::string_view result);
  // Signature verifications: format cosign|sigstore-bundle|notation|any; result valid|invalid|
  // none_found|lookup_error. Latency of one image's whole signature lookup and verification.
  void record_signature(std::string_view format, std::string_view result);
  void record_signature_seconds(double seconds);

  // The vulnerabilities check's database and matching. Findings matched by a fresh judgement, by
  // the record's severity (critical|high|medium|low|none|unknown), and the time one match took.
  void record_vulnerability_findings(std::string_view severity, double count);
  void record_vulnerability_match_seconds(double seconds);
  // The database in force, set when one is loaded or refused: whether one is loaded, its records
  // and vulnerabilities.max_age. Its age is set from it at each scrape (no series before a load).
  void set_vulndb(bool loaded, double records, double max_age_seconds);
  void set_vulndb_age(double seconds);
  // Database loads at start and on SIGHUP: ok | error (refused, the old one stays) | unchanged.
  void record_vulndb_load(std::string_view result);

  // Requests refused by client authentication or authorization. reason: missing (no credentials
  // where some are needed, 401) | bad_password | bad_token | malformed (401) | denied (authenticated
  // but not granted, 403). Never labelled by user or address: those are unbounded.
  void record_auth_failure(std::string_view reason);
  // Requests and connections refused by the abuse limits. limit: rate (token bucket, 429) |
  // malformed (too many malformed requests, 429) | connections (max_connections_per_client, closed).
  void record_limited(std::string_view limit);
  // Upstream requests that found no max_concurrent_fetches slot within fetch_slot_timeout (503),
  // mirrored from the upstream client's own count at scrape time (never decreases).
  void set_fetch_slot_timeouts(std::string_view upstream, double total);

  prometheus::Gauge& inflight_streams() { return *inflight_streams_; }
  prometheus::Gauge& fetch_followers() { return *fetch_followers_; }
  prometheus::Gauge& cache_size_bytes() { return *cache_size_bytes_; }
  prometheus::Gauge& cache_blobs() { return *cache_blobs_; }
  prometheus::Gauge& cache_max_size_bytes() { return *cache_max_size_bytes_; }  // storage.max_size
  // Counters mirrored from the cache's own counts at scrape time.
  void set_evictions(double evictions, double evicted_bytes);
  // Block events for webhooks (notify module), one count per event and webhook. result: delivered
  // (2xx) | failed (gave up: attempts spent, a 4xx, a refused address) | dropped (queue full or shut
  // down before sending) | retried (an attempt that will be tried again). The four series exist from
  // the start at 0.
  void record_notify(std::string_view result);
  // notAfter of the serving certificate (unix seconds), set when the TLS context is loaded at start
  // and on each SIGHUP reload. No series until then, so a plain-HTTP mirror exports none (an
  // expiry alert must not see a 0 and fire).
  void set_tls_certificate_expiry(double unix_seconds);
  // Info gauges (value 1): which replica this is (server.instance) and which build, for joining a
  // fleet's series to its replicas; and the policy in force (mode enforce|audit, version), replaced
  // on every reload, so audit mode is visible beside the decisions it turns into warnings.
  void set_instance(std::string_view instance, std::string_view version);
  void set_policy(std::string_view mode, std::string_view version);

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* requests_;
  prometheus::Family<prometheus::Histogram>* request_seconds_;
  prometheus::Family<prometheus::Counter>* cache_requests_;
  prometheus::Family<prometheus::Counter>* bytes_served_;
  prometheus::Family<prometheus::Counter>* upstream_requests_;
  prometheus::Family<prometheus::Histogram>* upstream_seconds_;
  prometheus::Family<prometheus::Counter>* upstream_fetches_;
  prometheus::Family<prometheus::Counter>* pull_ahead_;
  prometheus::Family<prometheus::Counter>* cache_write_failures_;
  prometheus::Family<prometheus::Counter>* digest_mismatches_;
  prometheus::Family<prometheus::Counter>* malformed_;
  prometheus::Family<prometheus::Counter>* decisions_;
  prometheus::Family<prometheus::Histogram>* evaluation_seconds_;
  prometheus::Family<prometheus::Counter>* violations_;
  prometheus::Family<prometheus::Counter>* blocked_pulls_;
  prometheus::Family<prometheus::Counter>* verdict_cache_;
  prometheus::Family<prometheus::Counter>* policy_reloads_;
  prometheus::Counter* blobs_denied_;
  prometheus::Counter* corrupt_cached_blobs_;
  prometheus::Counter* lost_files_;
  prometheus::Family<prometheus::Counter>* layer_scans_;
  prometheus::Family<prometheus::Counter>* signatures_;
  prometheus::Family<prometheus::Histogram>* signature_seconds_;
  prometheus::Family<prometheus::Counter>* auth_failures_;
  prometheus::Family<prometheus::Counter>* limited_;
  prometheus::Family<prometheus::Counter>* fetch_slot_timeouts_;
  prometheus::Family<prometheus::Counter>* notify_events_;
  prometheus::Gauge* inflight_streams_;
  prometheus::Gauge* fetch_followers_;
  prometheus::Gauge* cache_size_bytes_;
  prometheus::Gauge* cache_blobs_;
  prometheus::Gauge* cache_max_size_bytes_;
  prometheus::Family<prometheus::Gauge>* tls_expiry_;
  prometheus::Family<prometheus::Gauge>* instance_info_;
  prometheus::Family<prometheus::Gauge>* policy_info_;
  prometheus::Gauge* policy_series_ = nullptr;
  prometheus::Family<prometheus::Counter>* vulnerability_findings_;
  prometheus::Family<prometheus::Histogram>* vulnerability_match_seconds_;
  prometheus::Family<prometheus::Gauge>* vulndb_age_;
  prometheus::Gauge* vulndb_loaded_;
  prometheus::Gauge* vulndb_records_;
  prometheus::Gauge* vulndb_max_age_;
  prometheus::Family<prometheus::Counter>* vulndb_loads_;
  prometheus::Counter* evictions_;
  prometheus::Counter* evicted_bytes_;
};

}  // namespace ocigate::metrics
