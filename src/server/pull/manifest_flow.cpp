// ManifestFlow (pull/manifest_flow.hpp).

#include "pull/manifest_flow.hpp"

#include <ctime>

#include <nlohmann/json.hpp>

#include "ocigate/oci/digest.hpp"
#include "ocigate/oci/manifest.hpp"
#include "ocigate/oci/reference.hpp"
#include "ocigate/server/errors.hpp"
#include "ocigate/server/log.hpp"
#include "notices.hpp"
#include "pull/upstream_call.hpp"
#include "records.hpp"

namespace ocigate::server {

namespace asio = boost::asio;
using Request = http::request<http::empty_body>;

namespace {

std::int64_t unix_now() { return static_cast<std::int64_t>(std::time(nullptr)); }

bool cosign_or_attestation_layer(const std::string& media_type) {
  return media_type == "application/vnd.dev.cosign.simplesigning.v1+json" ||
         media_type == "application/vnd.dsse.envelope.v1+json" ||
         media_type.rfind("application/vnd.in-toto", 0) == 0 ||
         media_type.rfind("application/vnd.dev.sigstore", 0) == 0 ||
         media_type.rfind("application/vnd.cncf.notary", 0) == 0;
}

bool ends_with(const std::string& text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
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
  // A long list of findings is cut, with a count of the rest (`ocigate check` lists them all).
  nlohmann::json detail = verdict.to_json(policy::Verdict::shown_detail_items);
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

bool is_artifact(const oci::Manifest& manifest, const std::string& reference) {
  if (!manifest.artifact_type.empty() || manifest.subject) return true;
  if (reference.rfind("sha256-", 0) == 0 &&
      (ends_with(reference, ".sig") || ends_with(reference, ".att") || ends_with(reference, ".sbom"))) {
    return true;
  }
  if (manifest.config && manifest.config->media_type != oci::media::oci_config &&
      manifest.config->media_type != oci::media::docker_config) {
    return true;
  }
  for (const auto& layer : manifest.layers) {
    if (cosign_or_attestation_layer(layer.media_type)) return true;
  }
  return false;
}

asio::awaitable<Reply> ManifestFlow::answer(const Request& req, const Target& target, const std::string& reference,
                                            const std::string& client) {
  // A reference that is neither a valid digest nor a valid tag names no manifest anywhere: 404,
  // answered here (the spec's pull workflow and its conformance suite), never sent upstream.
  const bool is_digest = oci::Digest::parse(reference).has_value();
  if (!is_digest && (oci::looks_like_digest(reference) || !oci::valid_tag(reference))) {
    co_return error_reply(Errc::manifest_unknown,
                          "manifest unknown: \"" + reference + "\" is neither a valid tag nor a valid digest");
  }
  // Not a conditional expression around the two co_awaits: GCC 12 destroys the result twice.
  Result<ManifestData> data = Error{};
  if (is_digest) {
    data = co_await by_digest(target, reference);
  } else {
    data = co_await by_tag(target, reference);
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
    judge_.blob_access().allow(parsed->blob_digests());
    co_return manifest_reply(*data, req.method() == http::verb::head);
  }
  // Named, not a temporary in the co_await: GCC 12 mishandles temporaries there.
  const ImageRequest image{target, reference, *data, *parsed, client};
  auto verdict = co_await judge_.judge(image);
  if (verdict.decision == policy::Decision::block) co_return denied_reply(verdict);
  judge_.blob_access().allow(parsed->blob_digests());
  if (req.method() == http::verb::get) pull_ahead_.remember(target, parsed->layers);
  Reply reply = manifest_reply(*data, req.method() == http::verb::head);
  for (const auto& warning : verdict.warning_headers()) reply.head.insert(http::field::warning, warning);
  reply.verdict = verdict.decision == policy::Decision::warn ? "warn" : "allow";
  co_return reply;
}

// Platform manifests are fetched by digest after the client read an index by tag; the tag the
// index was asked for is what pinned-reference must judge. The latest index request wins.
// The index digest is kept too: a child is accepted on its index's signature.
void ManifestFlow::remember_index_reference(const oci::Manifest& index, const std::string& index_digest,
                                            const std::string& reference) {
  const bool pulled_by_tag = !oci::looks_like_digest(reference);
  for (const auto& child : index.manifests) {
    if (pulled_by_tag) (void)store_.put_record(records::index_reference, child.digest, reference);
    (void)store_.put_record(records::index_digest, child.digest, index_digest);
  }
}

asio::awaitable<Result<policy::Verdict>> ManifestFlow::inspect(const Target& target, const std::string& reference,
                                                               const std::string& os, const std::string& architecture) {
  Result<ManifestData> data = Error{};
  if (oci::looks_like_digest(reference)) {
    data = co_await by_digest(target, reference);
  } else {
    data = co_await by_tag(target, reference);
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
    data = co_await by_digest(target, child);
    if (!data) co_return data.error();
    parsed = oci::parse_manifest(*data->bytes, data->media_type);
    if (!parsed) co_return parsed.error();
    if (parsed->kind != oci::ManifestKind::image) co_return Error{Errc::manifest_invalid, "nested index"};
  }
  const std::string client = "ocigate check";
  const ImageRequest image{target, reference, *data, *parsed, client, true};
  co_return co_await judge_.judge(image);
}

asio::awaitable<Result<ManifestData>> ManifestFlow::by_digest(const Target& target, const std::string& digest) {
  if (auto cached = store_.get_manifest(digest)) {
    metrics_.record_cache("manifest", "hit");
    co_return ManifestData{digest, cached->media_type, std::make_shared<const std::string>(std::move(cached->bytes)),
                           "hit", {}};
  }
  metrics_.record_cache("manifest", "miss");
  const std::string key = target.repo_key + "@" + digest;
  co_return co_await flights_.run(key, [&]() { return fetch(target, digest, digest); });
}

asio::awaitable<Result<ManifestData>> ManifestFlow::by_tag(const Target& target, const std::string& tag) {
  auto entry = store_.get_tag(target.repo_key, tag);
  if (entry && unix_now() - entry->fetched_at < target.upstream->tag_ttl.count()) {
    if (auto cached = store_.get_manifest(entry->digest)) {
      metrics_.record_cache("tag", "hit");
      co_return ManifestData{entry->digest, cached->media_type,
                             std::make_shared<const std::string>(std::move(cached->bytes)), "hit", {}};
    }
  }
  const std::string key = target.repo_key + ":" + tag;
  co_return co_await flights_.run(key, [&]() { return revalidate_tag(target, tag); });
}

// A tag the cache does not know, or knows for longer than tag_ttl: a HEAD upstream tells whether it
// still points at the cached digest (HEAD does not count against Docker Hub's pull limit); otherwise
// GET. When the upstream is down or refuses (5xx, 429), a cached answer is served stale.
asio::awaitable<Result<ManifestData>> ManifestFlow::revalidate_tag(const Target& target, const std::string& tag) {
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
    auto response = co_await send_upstream(metrics_, target, head);
    if (!response) co_return stale(response.error().message);
    auto& r = **response;
    if (r.status() == 200 && response_header(r, "Docker-Content-Digest") == entry->digest) {
      entry->fetched_at = unix_now();
      (void)store_.put_tag(target.repo_key, tag, *entry);  // best effort: a failed refresh only costs a HEAD
      metrics_.record_cache("tag", "hit");
      co_return ManifestData{entry->digest, cached->media_type, std::make_shared<const std::string>(cached->bytes),
                             "hit", {}};
    }
    if (r.status() >= 500 || r.status() == 429) co_return stale("HTTP " + std::to_string(r.status()));
  }
  metrics_.record_cache("tag", "miss");
  auto fetched = co_await fetch(target, tag, {});
  if (!fetched && cached && upstream_failed(fetched.error())) co_return stale(fetched.error().message);
  co_return fetched;
}

asio::awaitable<Result<ManifestData>> ManifestFlow::fetch(const Target& target, const std::string& reference,
                                                            const std::string& expected_digest) {
  metrics_.record_upstream_fetch(target.upstream->name, "manifest");
  upstream::Request request;
  request.target = "/v2/" + target.repo + "/manifests/" + reference;
  request.accept = std::string(oci::manifest_accept_header());
  request.scope = scope_for(target.repo);
  auto sent = co_await send_upstream(metrics_, target, request);
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
      notices::digest_mismatch(target.upstream->name, target.repo, expected_digest, actual);
      co_return Error{Errc::upstream_error, what + ": upstream bytes do not match the digest"};
    }
    digest = expected_digest;
  }
  std::string content_type = response_header(response, http::field::content_type);
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

}  // namespace ocigate::server
