#include "proxy.hpp"

#include <algorithm>
#include <chrono>
#include <ctime>

#include <nlohmann/json.hpp>

#include "cpus.hpp"
#include "ocigate/oci/digest.hpp"
#include "ocigate/oci/manifest.hpp"
#include "ocigate/oci/range.hpp"
#include "ocigate/server/errors.hpp"
#include "ocigate/server/log.hpp"

namespace ocigate::server {

namespace asio = boost::asio;
using Request = http::request<http::empty_body>;

namespace {

std::int64_t unix_now() { return static_cast<std::int64_t>(std::time(nullptr)); }

}  // namespace

Reply error_reply(const Error& error) {
  Reply reply;
  reply.head.result(http_status(error.code));
  reply.head.set(http::field::content_type, "application/json");
  if (error.code == Errc::too_many_requests) {
    reply.head.set(http::field::retry_after, std::to_string(error.retry_after ? error.retry_after : 60));
  }
  reply.body = error_body(error.code, error.message);
  reply.error = error.message;
  return reply;
}

Reply error_reply(Errc code, std::string message) { return error_reply(Error{code, std::move(message)}); }

namespace {

std::string header(const upstream::Response& response, http::field field) {
  auto it = response.headers().find(field);
  return it == response.headers().end() ? std::string() : std::string(it->value());
}

std::string header(const upstream::Response& response, std::string_view name) {
  auto it = response.headers().find(name);
  return it == response.headers().end() ? std::string() : std::string(it->value());
}

// A manifest media type from the Content-Type the upstream sent (parameters stripped), if it is one.
std::string manifest_type_from(std::string content_type) {
  if (auto semi = content_type.find(';'); semi != std::string::npos) content_type.resize(semi);
  while (!content_type.empty() && content_type.back() == ' ') content_type.pop_back();
  for (auto known : {oci::media::oci_manifest, oci::media::oci_index, oci::media::docker_manifest,
                     oci::media::docker_list}) {
    if (content_type == known) return content_type;
  }
  return {};
}

std::string warning_value(std::string_view text) {
  std::string escaped;
  for (char c : text) {
    if (c == '"' || c == '\\') escaped.push_back('\\');
    escaped.push_back(c);
  }
  return "299 - \"" + escaped + "\"";
}

// Go clients (containers/image, containerd) send one Accept line per media type: join them all.
std::string accept_header(const Request& req) {
  std::string joined;
  auto [begin, end] = req.equal_range(http::field::accept);
  for (auto it = begin; it != end; ++it) {
    if (!joined.empty()) joined += ", ";
    joined += std::string(it->value());
  }
  return joined;
}

Reply denied_reply(const policy::Verdict& verdict) {
  nlohmann::json detail = verdict.to_json();
  Reply reply;
  reply.head.result(http::status::forbidden);
  reply.head.set(http::field::content_type, "application/json");
  reply.body = error_body(Errc::denied, verdict.denied_message(), &detail);
  reply.error = verdict.denied_message();
  reply.verdict = "block";
  return reply;
}

Reply manifest_reply(const ManifestData& data, bool head_only) {
  Reply reply;
  reply.head.result(http::status::ok);
  reply.head.set(http::field::content_type, data.media_type);
  reply.head.set("Docker-Content-Digest", data.digest);
  reply.head.set(http::field::etag, "\"" + data.digest + "\"");
  reply.head.content_length(data.bytes->size());
  if (!data.warning.empty()) reply.head.insert(http::field::warning, warning_value(data.warning));
  if (!head_only) reply.body = *data.bytes;
  reply.cache = data.cache;
  return reply;
}

}  // namespace

std::string scope_for(const std::string& repo) { return "repository:" + repo + ":pull"; }

Proxy::Proxy(const config::Config& config, cache::Store& store, metrics::Metrics& metrics, PolicyHolder& policy,
             asio::any_io_executor executor)
    : config_(config),
      store_(store),
      metrics_(metrics),
      executor_(executor),
      gate_(store, metrics, policy),
      blob_fetches_(FetchContext{store, metrics, config.server.idle_timeout}, executor,
                    static_cast<unsigned>(allowed_cpus().size())) {
  for (const auto& upstream : config_.upstreams) {
    clients_.emplace(upstream.name, upstream::Client::create(executor_, upstream));
  }
}

Result<Target> Proxy::resolve(const oci::Route& route) const {
  auto target = resolve_target(config_, route);
  if (target) target->client = clients_.find(target->upstream->name)->second.get();
  return target;
}

asio::awaitable<Reply> Proxy::handle(const Request& req, const std::string& client) {
  auto route = oci::parse_route(req.target());
  const bool readonly = req.method() == http::verb::get || req.method() == http::verb::head;
  if (route.kind == oci::RouteKind::base) {
    Reply reply;
    reply.route = "base";
    reply.head.result(readonly ? http::status::ok : http::status::method_not_allowed);
    reply.head.set(http::field::content_type, "application/json");
    reply.body = readonly ? "{}" : error_body(Errc::unsupported, "ocigate is a read-only mirror");
    co_return reply;
  }
  if (route.kind == oci::RouteKind::unknown) {
    Reply reply = error_reply(Errc::name_unknown, "no such route");
    reply.head.result(http::status::not_found);
    co_return reply;
  }
  if (route.kind == oci::RouteKind::catalog) {
    co_return error_reply(Errc::unsupported,
                          "the repository catalog (/v2/_catalog) is not served: ocigate is a pull-through mirror and "
                          "cannot list its upstreams' repositories; pull by name");
  }
  if (!readonly || route.kind == oci::RouteKind::blob_upload) {
    Reply reply = error_reply(Errc::unsupported, "ocigate is a read-only pull-through mirror: " +
                                                     std::string(req.method_string()) + " is not supported");
    reply.name = route.name;
    co_return reply;
  }
  auto target = resolve(route);
  if (!target) {
    Reply reply = error_reply(target.error());
    reply.name = route.name;
    co_return reply;
  }
  Reply reply;
  switch (route.kind) {
    case oci::RouteKind::manifest:
      reply = co_await manifest(req, *target, route.reference, client);
      reply.route = "manifest";
      break;
    case oci::RouteKind::blob:
      reply = co_await blob(req, *target, route.reference);
      reply.route = "blob";
      break;
    case oci::RouteKind::tags_list:
      reply = co_await tags_list(*target, route.query);
      reply.route = "tags";
      break;
    case oci::RouteKind::referrers:
      reply = co_await referrers(*target, route.reference, route.query);
      reply.route = "referrers";
      break;
    default:
      reply = error_reply(Errc::unsupported, "not supported");
  }
  reply.name = route.name;
  reply.reference = route.reference;
  reply.upstream = target->upstream->name;
  co_return reply;
}

// ---- manifests ----

asio::awaitable<Reply> Proxy::manifest(const Request& req, const Target& target, const std::string& reference,
                                       const std::string& client) {
  // A reference that is neither a valid digest nor a valid tag names no manifest anywhere: 404,
  // answered here (the spec's pull workflow and its conformance suite), never sent upstream.
  const bool by_digest = oci::Digest::parse(reference).has_value();
  if (!by_digest && (oci::looks_like_digest(reference) || !oci::valid_tag(reference))) {
    co_return error_reply(Errc::manifest_unknown,
                          "manifest unknown: \"" + reference + "\" is neither a valid tag nor a valid digest");
  }
  // Not a conditional expression around the two co_awaits: GCC 12 destroys the result twice.
  Result<ManifestData> data = Error{};
  if (by_digest) {
    data = co_await manifest_by_digest(target, reference);
  } else {
    data = co_await manifest_by_tag(target, reference);
  }
  if (!data) co_return error_reply(data.error());
  if (!oci::accepts(accept_header(req), data->media_type)) {
    co_return error_reply(Errc::manifest_unknown,
                          "manifest is " + data->media_type + ", which the request's Accept header excludes");
  }
  auto parsed = oci::parse_manifest(*data->bytes, data->media_type);
  if (!parsed) co_return error_reply(Errc::upstream_error, "cached manifest no longer parses: " + parsed.error().message);
  if (parsed->kind == oci::ManifestKind::index) {
    remember_index_reference(*parsed, data->digest, reference);
    co_return manifest_reply(*data, req.method() == http::verb::head);
  }
  if (is_artifact(*parsed, reference)) {
    gate_.allow_blobs(parsed->blob_digests());
    co_return manifest_reply(*data, req.method() == http::verb::head);
  }
  auto verdict = co_await judge_image(target, reference, *data, *parsed, client);
  if (verdict.decision == policy::Decision::block) co_return denied_reply(verdict);
  gate_.allow_blobs(parsed->blob_digests());
  Reply reply = manifest_reply(*data, req.method() == http::verb::head);
  for (const auto& warning : verdict.warning_headers()) reply.head.insert(http::field::warning, warning);
  reply.verdict = verdict.decision == policy::Decision::warn ? "warn" : "allow";
  co_return reply;
}

// Platform manifests are fetched by digest after the client read an index by tag; the tag the
// index was asked for is what pinned-reference must judge. The latest index request wins.
// The index digest is kept too: a child is accepted on its index's signature.
void Proxy::remember_index_reference(const oci::Manifest& index, const std::string& index_digest,
                                     const std::string& reference) {
  const bool by_tag = !oci::looks_like_digest(reference);
  for (const auto& child : index.manifests) {
    if (by_tag) (void)store_.put_record("index-reference", child.digest, reference);
    (void)store_.put_record("index-digest", child.digest, index_digest);
  }
}

asio::awaitable<policy::Verdict> Proxy::judge_image(const Target& target, const std::string& reference,
                                                   const ManifestData& data, const oci::Manifest& manifest,
                                                   const std::string& client, bool scan_all) {
  auto started = std::chrono::steady_clock::now();
  policy::ImageFacts facts;
  facts.upstream = target.upstream->name;
  facts.repository = target.repo;
  facts.reference = reference;
  if (oci::looks_like_digest(reference)) {
    if (auto via_index = store_.get_record("index-reference", data.digest)) facts.reference = *via_index;
  }
  facts.digest = data.digest;
  facts.manifest_annotations = manifest.annotations;
  facts.now = std::chrono::system_clock::now();
  const std::string image = facts.upstream + "/" + facts.repository;
  // A verdict that depends on signatures is refreshed on the tag's TTL: a signature added later counts.
  std::optional<std::chrono::seconds> max_age;
  const auto trust = gate_.trust();  // one snapshot for the plan and the verification
  const auto plan = signature::fetch_plan(*trust, image);
  if (plan.required) max_age = target.upstream->tag_ttl;
  auto current = gate_.policy();
  if (auto cached = gate_.cached(facts, max_age)) {
    // A verdict reached before the layers were scanned holds while its image is watched for
    // stream scanning; after a restart the image is judged again, which watches it again.
    // The inventory lookup (a RocksDB get) comes last: it is the only one that touches the disk.
    const bool layers_pending = current->layer_scan != policy::LayerScan::off &&
                                policy::any_check_on(*current, image) && !watched(facts) &&
                                !gate_.has_inventory(facts.digest);
    if (!layers_pending) {
      gate_.audit(*cached, client, true);
      co_return *cached;
    }
  }
  const bool checks_on = policy::any_check_on(*current, image);
  if (manifest.config && checks_on) facts.config = co_await load_config(target, *manifest.config);
  if (checks_on) facts.signature = co_await verify_signatures(target, data, image, *trust, plan);
  if (checks_on) facts.filesystem = co_await judge_layers(target, manifest, *current, scan_all);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  policy::Verdict verdict = gate_.judge(facts, client, seconds);
  if (checks_on && current->layer_scan != policy::LayerScan::off && !facts.filesystem &&
      verdict.decision != policy::Decision::block) {
    watch_stream(target, facts, manifest, client);
  }
  co_return verdict;
}

// prefetch: scan now, bounded by prefetch_timeout; stream: only what is already scanned; both
// leave the rest to the stream scan (nullopt). `ocigate check` waits for every layer.
asio::awaitable<std::optional<policy::FilesystemFacts>> Proxy::judge_layers(const Target& target,
                                                                           const oci::Manifest& manifest,
                                                                           const policy::Policy& policy,
                                                                           bool scan_all) {
  constexpr std::chrono::hours check_timeout{1};
  if (scan_all) co_return co_await scan_layers(target, manifest, check_timeout);
  if (policy.layer_scan == policy::LayerScan::off) co_return std::nullopt;
  if (policy.layer_scan == policy::LayerScan::stream) co_return stored_filesystem(manifest);
  co_return co_await scan_layers(target, manifest, policy.prefetch_timeout);
}

// The image config through the cache (verified like any blob); nullopt when it cannot be had,
// which the checks report as "unknown".
asio::awaitable<std::optional<nlohmann::json>> Proxy::load_config(const Target& target,
                                                                  const oci::Descriptor& descriptor) {
  constexpr std::int64_t max_config_size = 8 << 20;
  auto bytes = co_await small_blob(target, descriptor, max_config_size);
  if (!bytes) co_return std::nullopt;
  auto json = nlohmann::json::parse(*bytes, nullptr, false);
  if (json.is_discarded() || !json.is_object()) co_return std::nullopt;
  co_return json;
}

asio::awaitable<std::optional<std::string>> Proxy::small_blob(const Target& target, const oci::Descriptor& descriptor,
                                                              std::int64_t max_size) {
  if (descriptor.size > max_size) co_return std::nullopt;
  std::unique_ptr<BodySource> source;
  if (auto reader = store_.open_blob(descriptor.digest)) {
    const std::uint64_t size = reader->size();
    source = cache_source(std::move(reader), 0, size);
  } else {
    // Followed like a client would: the bytes are ours once verified, before the commit's sync.
    auto fetch = blob_fetches_.join(descriptor.digest, *target.client, target.repo, scope_for(target.repo));
    source = blob_fetches_.follow(fetch);
  }
  std::string bytes, piece;
  for (;;) {
    auto n = co_await source->next(piece);
    if (!n) {
      log::warn("blob unavailable for the policy gate", {{"digest", descriptor.digest}, {"error", n.error().message}});
      co_return std::nullopt;
    }
    if (*n == 0) break;
    bytes += piece;
    if (bytes.size() > static_cast<std::uint64_t>(max_size)) co_return std::nullopt;
  }
  co_return bytes;
}

std::optional<std::string> Proxy::verdict(const std::string& digest) { return gate_.stored_verdict(digest); }

asio::awaitable<Result<policy::Verdict>> Proxy::inspect(const Target& target, const std::string& reference,
                                                        const std::string& os, const std::string& architecture) {
  Result<ManifestData> data = Error{};
  if (oci::looks_like_digest(reference)) {
    data = co_await manifest_by_digest(target, reference);
  } else {
    data = co_await manifest_by_tag(target, reference);
  }
  if (!data) co_return data.error();
  auto parsed = oci::parse_manifest(*data->bytes, data->media_type);
  if (!parsed) co_return parsed.error();
  if (parsed->kind == oci::ManifestKind::index) {
    remember_index_reference(*parsed, data->digest, reference);
    std::string child;
    for (const auto& entry : parsed->manifests) {
      if (entry.platform_os == os && entry.platform_architecture == architecture) {
        child = entry.digest;
        break;
      }
    }
    if (child.empty()) co_return Error{Errc::manifest_unknown, "the index has no " + os + "/" + architecture + " image"};
    data = co_await manifest_by_digest(target, child);
    if (!data) co_return data.error();
    parsed = oci::parse_manifest(*data->bytes, data->media_type);
    if (!parsed) co_return parsed.error();
    if (parsed->kind != oci::ManifestKind::image) co_return Error{Errc::manifest_invalid, "nested index"};
  }
  co_return co_await judge_image(target, reference, *data, *parsed, "ocigate check", true);
}

asio::awaitable<Result<ManifestData>> Proxy::manifest_by_digest(const Target& target, const std::string& digest) {
  if (auto cached = store_.get_manifest(digest)) {
    metrics_.record_cache("manifest", "hit");
    co_return ManifestData{digest, cached->media_type, std::make_shared<const std::string>(std::move(cached->bytes)),
                           "hit", {}};
  }
  metrics_.record_cache("manifest", "miss");
  const std::string key = target.repo_key + "@" + digest;
  co_return co_await manifest_flights_.run(key, [&]() { return fetch_manifest(target, digest, digest); });
}

asio::awaitable<Result<ManifestData>> Proxy::manifest_by_tag(const Target& target, const std::string& tag) {
  auto entry = store_.get_tag(target.repo_key, tag);
  if (entry && unix_now() - entry->fetched_at < target.upstream->tag_ttl.count()) {
    if (auto cached = store_.get_manifest(entry->digest)) {
      metrics_.record_cache("tag", "hit");
      co_return ManifestData{entry->digest, cached->media_type,
                             std::make_shared<const std::string>(std::move(cached->bytes)), "hit", {}};
    }
  }
  const std::string key = target.repo_key + ":" + tag;
  co_return co_await manifest_flights_.run(key, [&]() { return revalidate_tag(target, tag); });
}

// A tag the cache does not know, or knows for longer than tag_ttl: a HEAD upstream tells whether it
// still points at the cached digest (HEAD does not count against Docker Hub's pull limit); otherwise
// GET. When the upstream is down or refuses (5xx, 429), a cached answer is served stale.
asio::awaitable<Result<ManifestData>> Proxy::revalidate_tag(const Target& target, const std::string& tag) {
  auto entry = store_.get_tag(target.repo_key, tag);
  std::optional<cache::ManifestEntry> cached;
  if (entry) cached = store_.get_manifest(entry->digest);
  auto stale = [&](const std::string& why) -> Result<ManifestData> {
    metrics_.record_cache("tag", "stale");
    log::warn("serving stale tag", {{"repository", target.repo_key}, {"tag", tag}, {"reason", why}});
    return ManifestData{entry->digest, cached->media_type, std::make_shared<const std::string>(cached->bytes), "stale",
                        "ocigate: upstream " + target.upstream->name + " unavailable (" + why +
                            "); serving cached " + entry->digest};
  };
  auto upstream_failed = [](const Error& e) {
    return e.code == Errc::upstream_error || e.code == Errc::upstream_timeout || e.code == Errc::too_many_requests;
  };
  if (cached) {
    upstream::Request head;
    head.method = http::verb::head;
    head.target = "/v2/" + target.repo + "/manifests/" + tag;
    head.accept = std::string(oci::manifest_accept_header());
    head.scope = scope_for(target.repo);
    auto response = co_await send_upstream(target, head);
    if (!response) co_return stale(response.error().message);
    auto& r = **response;
    if (r.status() == 200 && header(r, "Docker-Content-Digest") == entry->digest) {
      entry->fetched_at = unix_now();
      (void)store_.put_tag(target.repo_key, tag, *entry);  // best effort: a failed refresh only costs a HEAD
      metrics_.record_cache("tag", "hit");
      co_return ManifestData{entry->digest, cached->media_type, std::make_shared<const std::string>(cached->bytes),
                             "hit", {}};
    }
    if (r.status() >= 500 || r.status() == 429) co_return stale("HTTP " + std::to_string(r.status()));
  }
  metrics_.record_cache("tag", "miss");
  auto fetched = co_await fetch_manifest(target, tag, {});
  if (!fetched && cached && upstream_failed(fetched.error())) co_return stale(fetched.error().message);
  co_return fetched;
}

asio::awaitable<Result<ManifestData>> Proxy::fetch_manifest(const Target& target, const std::string& reference,
                                                            const std::string& expected_digest) {
  metrics_.record_upstream_fetch(target.upstream->name, "manifest");
  upstream::Request request;
  request.target = "/v2/" + target.repo + "/manifests/" + reference;
  request.accept = std::string(oci::manifest_accept_header());
  request.scope = scope_for(target.repo);
  auto sent = co_await send_upstream(target, request);
  if (!sent) co_return sent.error();
  auto& response = **sent;
  const std::string what = "manifest " + target.repo_key + (expected_digest.empty() ? ":" : "@") + reference;
  if (response.status() != 200) co_return upstream_status_error(response, Errc::manifest_unknown, what);
  if (response.content_length() && *response.content_length() > oci::max_manifest_size) {
    co_return Error{Errc::manifest_invalid, what + " is larger than 4 MiB; refused"};
  }
  auto body = co_await response.read_all(oci::max_manifest_size);
  if (!body) {
    if (body.error().code == Errc::size_invalid) co_return Error{Errc::manifest_invalid, what + " is larger than 4 MiB; refused"};
    co_return body.error();
  }
  std::string digest = oci::sha256_digest(*body);
  if (!expected_digest.empty()) {
    auto expected = oci::Digest::parse(expected_digest);
    oci::Hasher hasher(expected->algorithm);
    hasher.update(*body);
    std::string actual = hasher.finish();
    if (actual != expected_digest) {
      metrics_.record_digest_mismatch(target.upstream->name);
      log::error("digest mismatch: upstream manifest does not match the digest asked for; nothing cached",
                 {{"upstream", target.upstream->name}, {"repository", target.repo}, {"digest", expected_digest},
                  {"actual", actual}});
      co_return Error{Errc::upstream_error, what + ": upstream bytes do not match the digest"};
    }
    digest = expected_digest;
  }
  std::string content_type = header(response, http::field::content_type);
  auto parsed = oci::parse_manifest(*body, manifest_type_from(content_type));
  if (!parsed) {
    log::warn("upstream sent an invalid manifest",
              {{"upstream", target.upstream->name}, {"reference", what}, {"error", parsed.error().message}});
    co_return Error{Errc::upstream_error, what + ": upstream sent an invalid manifest: " + parsed.error().message};
  }
  std::string media_type = manifest_type_from(content_type);
  if (media_type.empty()) media_type = parsed->media_type;
  cache::ManifestEntry entry{media_type, *body};
  if (auto stored = store_.put_manifest(digest, entry); !stored) {
    log::error("cache cannot store manifest", {{"digest", digest}, {"error", stored.error().message}});
  }
  if (expected_digest.empty()) {
    (void)store_.put_tag(target.repo_key, reference, cache::TagEntry{digest, media_type, unix_now()});
  }
  co_return ManifestData{digest, media_type, std::make_shared<const std::string>(std::move(*body)), "miss", {}};
}

asio::awaitable<Result<std::unique_ptr<upstream::Response>>> Proxy::send_upstream(const Target& target,
                                                                                  upstream::Request request) {
  auto started = std::chrono::steady_clock::now();
  auto response = co_await target.client->send(std::move(request));
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  metrics_.record_upstream(target.upstream->name, response ? std::to_string((*response)->status()) : "error",
                           seconds);
  co_return response;
}

// ---- blobs ----

asio::awaitable<Reply> Proxy::blob(const Request& req, const Target& target, const std::string& digest) {
  if (!oci::Digest::parse(digest)) co_return error_reply(Errc::digest_invalid, "invalid digest: " + digest);
  if (!gate_.blob_allowed(digest)) {
    co_return error_reply(Errc::denied, "blob " + digest +
                                            " is not referenced by any image this mirror has allowed; pull the image "
                                            "through its manifest (policy.blob_access: referenced)");
  }
  if (gate_.policy()->layer_scan != policy::LayerScan::off) {
    if (auto why = gate_.blocked_layer(digest)) co_return error_reply(Errc::denied, *why);
  }
  // Opened, not only looked up: a blob whose file was lost is dropped here and fetched again.
  if (auto reader = store_.open_blob(digest)) {
    metrics_.record_cache("blob", "hit");
    Reply reply = blob_from_cache(req, digest, std::move(reader));
    reply.cache = "hit";
    co_return co_await gate_streamed_blob(std::move(reply), digest);
  }
  metrics_.record_cache("blob", "miss");
  if (req.method() == http::verb::head) co_return co_await blob_head_upstream(target, digest);

  auto fetch = blob_fetches_.join(digest, *target.client, target.repo, scope_for(target.repo));
  const bool ranged = !req[http::field::range].empty();
  BlobFetch::Snapshot snap = co_await blob_fetches_.wait_started(fetch);
  // A range, or a body of unknown length, waits for the whole fetch.
  if (ranged || !snap.size_known) snap = co_await blob_fetches_.wait_finished(fetch);
  if (snap.phase == BlobFetch::Phase::failed) {
    if (snap.error.code == Errc::digest_mismatch) {
      co_return error_reply(Errc::upstream_error, "upstream bytes for " + digest + " do not match the digest");
    }
    co_return error_reply(snap.error);
  }
  if (snap.phase == BlobFetch::Phase::done) {
    Reply reply = blob_from_cache(req, digest);
    reply.cache = "miss";
    co_return co_await gate_streamed_blob(std::move(reply), digest);
  }
  // Streaming, or uncached (every byte verified, but the cache could not commit the blob): a whole
  // body follows the fetch's staged file. A range needs the committed blob: 503, and the next pull
  // fetches it again.
  if (ranged) co_return error_reply(snap.error);
  Reply reply;
  reply.head.result(http::status::ok);
  reply.head.set(http::field::content_type, "application/octet-stream");
  reply.head.set("Docker-Content-Digest", digest);
  reply.head.set(http::field::accept_ranges, "bytes");
  reply.head.content_length(snap.size);
  reply.stream = blob_fetches_.follow(fetch);
  reply.cache = "miss";
  co_return co_await gate_streamed_blob(std::move(reply), digest);
}

Reply Proxy::blob_from_cache(const Request& req, const std::string& digest) {
  auto reader = store_.open_blob(digest);
  if (!reader) return error_reply(Errc::blob_unknown, "blob " + digest + " was evicted; retry");
  return blob_from_cache(req, digest, std::move(reader));
}

Reply Proxy::blob_from_cache(const Request& req, const std::string& digest, std::unique_ptr<cache::BlobReader> reader) {
  const std::uint64_t size = reader->size();
  Reply reply;
  reply.head.set(http::field::content_type, "application/octet-stream");
  reply.head.set("Docker-Content-Digest", digest);
  reply.head.set(http::field::accept_ranges, "bytes");
  reply.head.set(http::field::etag, "\"" + digest + "\"");
  std::uint64_t first = 0, length = size;
  auto range = oci::parse_range(req[http::field::range], size);
  if (range.result == oci::RangeResult::unsatisfiable) {
    Reply bad = error_reply(Errc::range_invalid, "range not satisfiable for a blob of " + std::to_string(size) + " bytes");
    bad.head.set(http::field::content_range, "bytes */" + std::to_string(size));
    return bad;
  }
  if (range.result == oci::RangeResult::satisfiable) {
    first = range.range.first;
    length = range.range.length();
    reply.head.result(http::status::partial_content);
    reply.head.set(http::field::content_range, "bytes " + std::to_string(range.range.first) + "-" +
                                                   std::to_string(range.range.last) + "/" + std::to_string(size));
  } else {
    reply.head.result(http::status::ok);
  }
  reply.head.content_length(length);
  if (req.method() != http::verb::head) reply.stream = cache_source(std::move(reader), first, length, read_check(digest));
  return reply;
}

// storage.verify_reads: a whole-blob read from the cache is rehashed; a blob whose bytes changed
// on disk is cut before its last byte, counted, logged and removed, so the next pull fetches it.
std::optional<ReadCheck> Proxy::read_check(const std::string& digest) {
  if (!config_.storage.verify_reads) return std::nullopt;
  return ReadCheck{digest, [this, digest](const std::string& actual) {
                     metrics_.record_corrupt_cached_blob();
                     auto removed = store_.remove_blob(digest);
                     log::error("cached blob no longer matches its digest; transfer cut, blob removed from the cache",
                                {{"digest", digest}, {"actual", actual},
                                 {"removed", removed.ok() ? "yes" : "no: " + removed.error().message}});
                   }};
}

asio::awaitable<Reply> Proxy::blob_head_upstream(const Target& target, const std::string& digest) {
  upstream::Request request;
  request.method = http::verb::head;
  request.target = "/v2/" + target.repo + "/blobs/" + digest;
  request.scope = scope_for(target.repo);
  request.follow_redirects = true;
  auto sent = co_await send_upstream(target, request);
  if (!sent) co_return error_reply(sent.error());
  auto& response = **sent;
  if (response.status() != 200) {
    co_return error_reply(upstream_status_error(response, Errc::blob_unknown, "blob " + digest));
  }
  Reply reply;
  reply.head.result(http::status::ok);
  reply.head.set(http::field::content_type, "application/octet-stream");
  reply.head.set("Docker-Content-Digest", digest);
  reply.head.set(http::field::accept_ranges, "bytes");
  if (auto length = response.content_length()) reply.head.content_length(*length);
  reply.cache = "miss";
  co_return reply;
}

// ---- tags and referrers ----

namespace {

// Rewrites the upstream's Link: </v2/<repo>/tags/list?last=x&n=y>; rel="next" into the client's
// namespace, keeping only the query.
std::string rewrite_link(const std::string& link, const Target& target) {
  auto open = link.find('<');
  auto close = link.find('>', open == std::string::npos ? 0 : open);
  if (open == std::string::npos || close == std::string::npos) return {};
  std::string url = link.substr(open + 1, close - open - 1);
  auto q = url.find('?');
  std::string query = q == std::string::npos ? std::string() : url.substr(q + 1);
  if (!target.ns.empty()) query += (query.empty() ? "" : "&") + std::string("ns=") + target.ns;
  return "</v2/" + target.name + "/tags/list" + (query.empty() ? "" : "?" + query) + ">; rel=\"next\"";
}

std::string without_ns(const std::string& query) {
  std::string out;
  std::size_t start = 0;
  while (start <= query.size()) {
    auto amp = query.find('&', start);
    std::string part = query.substr(start, amp == std::string::npos ? std::string::npos : amp - start);
    if (!part.empty() && part.rfind("ns=", 0) != 0) out += (out.empty() ? "" : "&") + part;
    if (amp == std::string::npos) break;
    start = amp + 1;
  }
  return out;
}

// Some upstreams (Distribution 2.8) ignore n and last. When the upstream answered with more tags
// than asked for, the page is cut here, in the lexical order the spec requires, with a Link.
void paginate_locally(nlohmann::json& body, const std::string& query, const Target& target, std::string& link) {
  auto n_text = oci::query_param(query, "n");
  auto last = oci::query_param(query, "last").value_or("");
  if (!body["tags"].is_array()) return;
  std::vector<std::string> tags;
  for (auto& tag : body["tags"]) {
    if (tag.is_string()) tags.push_back(tag.get<std::string>());
  }
  std::size_t n = tags.size();
  if (n_text) n = static_cast<std::size_t>(std::strtoull(n_text->c_str(), nullptr, 10));
  if (tags.size() <= n && (last.empty() || std::is_sorted(tags.begin(), tags.end()))) {
    bool all_after = last.empty() || tags.empty() || tags.front() > last;
    if (all_after) return;  // the upstream honoured the request
  }
  std::sort(tags.begin(), tags.end());
  auto first = last.empty() ? tags.begin() : std::upper_bound(tags.begin(), tags.end(), last);
  auto end = static_cast<std::size_t>(tags.end() - first) > n ? first + static_cast<std::ptrdiff_t>(n) : tags.end();
  body["tags"] = std::vector<std::string>(first, end);
  link.clear();
  if (end != tags.end() && end != first) {
    std::string next = "</v2/" + target.name + "/tags/list?n=" + std::to_string(n) + "&last=" + *(end - 1);
    if (!target.ns.empty()) next += "&ns=" + target.ns;
    link = next + ">; rel=\"next\"";
  }
}

}  // namespace

asio::awaitable<Reply> Proxy::tags_list(const Target& target, const std::string& query) {
  const std::string upstream_query = without_ns(query);
  const std::string record_key = target.repo_key + "?" + upstream_query;
  upstream::Request request;
  request.target = "/v2/" + target.repo + "/tags/list" + (upstream_query.empty() ? "" : "?" + upstream_query);
  request.scope = scope_for(target.repo);
  auto sent = co_await send_upstream(target, request);
  std::string failure;
  if (sent) {
    auto& response = **sent;
    if (response.status() == 200) {
      auto body = co_await response.read_all(oci::max_manifest_size);
      auto json = body ? nlohmann::json::parse(*body, nullptr, false) : nlohmann::json();
      if (body && json.is_object()) {
        json["name"] = target.name;
        std::string link = rewrite_link(header(response, http::field::link), target);
        paginate_locally(json, query, target, link);
        nlohmann::json record = {{"body", json.dump()}, {"link", link}};
        (void)store_.put_record("tags", record_key, record.dump());
        Reply reply;
        reply.head.result(http::status::ok);
        reply.head.set(http::field::content_type, "application/json");
        if (!link.empty()) reply.head.set(http::field::link, link);
        reply.body = record["body"].get<std::string>();
        reply.cache = "miss";
        co_return reply;
      }
      failure = "upstream sent an invalid tag list";
    } else if (response.status() < 500 && response.status() != 429) {
      co_return error_reply(upstream_status_error(response, Errc::name_unknown, "repository " + target.repo_key));
    } else {
      failure = "HTTP " + std::to_string(response.status());
    }
  } else {
    failure = sent.error().message;
  }
  if (auto record = store_.get_record("tags", record_key)) {
    auto json = nlohmann::json::parse(*record, nullptr, false);
    if (json.is_object() && json["body"].is_string()) {
      Reply reply;
      reply.head.result(http::status::ok);
      reply.head.set(http::field::content_type, "application/json");
      reply.head.insert(http::field::warning,
                        warning_value("ocigate: upstream unavailable (" + failure + "); serving a cached tag list"));
      if (json["link"].is_string() && !json["link"].get<std::string>().empty()) {
        reply.head.set(http::field::link, json["link"].get<std::string>());
      }
      reply.body = json["body"].get<std::string>();
      reply.cache = "stale";
      co_return reply;
    }
  }
  if (sent) co_return error_reply(upstream_status_error(**sent, Errc::name_unknown, "repository " + target.repo_key));
  co_return error_reply(sent.error());
}

// Referrers answers are kept for the upstream's tag_ttl (signature lookups ask for them on every
// verdict) and served stale, with a Warning, when the upstream fails.
asio::awaitable<Reply> Proxy::referrers(const Target& target, const std::string& digest, const std::string& query) {
  if (!oci::Digest::parse(digest)) co_return error_reply(Errc::digest_invalid, "invalid digest: " + digest);
  const std::string key = target.repo_key + "@" + digest + "?" + oci::query_param(query, "artifactType").value_or("");
  auto record = store_.get_record("referrers", key);
  auto cached = record ? nlohmann::json::parse(*record, nullptr, false) : nlohmann::json();
  const bool usable = cached.is_object() && cached["at"].is_number_integer() && cached["body"].is_string() &&
                      cached["filters"].is_string();
  auto cached_reply = [&](const char* source) {
    Reply reply;
    reply.head.result(http::status::ok);
    reply.head.set(http::field::content_type, oci::media::oci_index);
    if (!cached["filters"].get<std::string>().empty()) {
      reply.head.set("OCI-Filters-Applied", cached["filters"].get<std::string>());
    }
    reply.body = cached["body"].get<std::string>();
    reply.cache = source;
    return reply;
  };
  if (usable && unix_now() - cached["at"].get<std::int64_t>() < target.upstream->tag_ttl.count()) {
    metrics_.record_cache("referrers", "hit");
    co_return cached_reply("hit");
  }
  Reply fresh = co_await fetch_referrers(target, digest, query);
  if (fresh.head.result() == http::status::ok) {
    metrics_.record_cache("referrers", "miss");
    nlohmann::json entry = {{"at", unix_now()},
                            {"body", fresh.body},
                            {"filters", std::string(fresh.head["OCI-Filters-Applied"])}};
    (void)store_.put_record("referrers", key, entry.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    fresh.cache = "miss";
    co_return fresh;
  }
  if (usable && (fresh.head.result_int() >= 500 || fresh.head.result_int() == 429)) {
    metrics_.record_cache("referrers", "stale");
    Reply stale = cached_reply("stale");
    stale.head.insert(http::field::warning,
                      warning_value("ocigate: upstream unavailable (" + fresh.error + "); serving cached referrers"));
    co_return stale;
  }
  co_return fresh;
}

asio::awaitable<Reply> Proxy::fetch_referrers(const Target& target, const std::string& digest,
                                              const std::string& query) {
  auto parsed = oci::Digest::parse(digest);
  if (!parsed) co_return error_reply(Errc::digest_invalid, "invalid digest: " + digest);
  const std::string artifact_type = oci::query_param(query, "artifactType").value_or("");
  upstream::Request request;
  request.target = "/v2/" + target.repo + "/referrers/" + digest +
                   (artifact_type.empty() ? "" : "?" + without_ns(query));
  request.accept = std::string(oci::media::oci_index);
  request.scope = scope_for(target.repo);
  auto sent = co_await send_upstream(target, request);
  if (!sent) co_return error_reply(sent.error());
  auto& response = **sent;
  Reply reply;
  reply.head.result(http::status::ok);
  reply.head.set(http::field::content_type, oci::media::oci_index);
  if (response.status() == 200 &&
      manifest_type_from(header(response, http::field::content_type)) == oci::media::oci_index) {
    auto body = co_await response.read_all(oci::max_manifest_size);
    if (!body) co_return error_reply(body.error());
    if (auto filters = header(response, "OCI-Filters-Applied"); !filters.empty()) {
      reply.head.set("OCI-Filters-Applied", filters);
    }
    reply.body = std::move(*body);
    co_return reply;
  }
  if (response.status() != 404 && response.status() != 405 && response.status() != 200) {
    co_return error_reply(upstream_status_error(response, Errc::manifest_unknown, "referrers of " + digest));
  }
  // No referrers API upstream: the tag schema fallback, "<alg>-<hex>" holding an index.
  nlohmann::json index = {{"schemaVersion", 2}, {"mediaType", oci::media::oci_index},
                          {"manifests", nlohmann::json::array()}};
  const std::string fallback_tag = parsed->algorithm + "-" + parsed->hex;
  auto fallback = co_await manifest_by_tag(target, fallback_tag);
  if (fallback) {
    auto json = nlohmann::json::parse(*fallback->bytes, nullptr, false);
    if (json.is_object() && json["manifests"].is_array()) {
      for (auto& entry : json["manifests"]) {
        if (!entry.is_object()) continue;
        if (!artifact_type.empty() && entry.value("artifactType", std::string()) != artifact_type) continue;
        index["manifests"].push_back(entry);
      }
    }
  } else if (fallback.error().code != Errc::manifest_unknown) {
    co_return error_reply(fallback.error());
  }
  if (!artifact_type.empty()) reply.head.set("OCI-Filters-Applied", "artifactType");
  reply.body = index.dump();
  co_return reply;
}

}  // namespace ocigate::server
