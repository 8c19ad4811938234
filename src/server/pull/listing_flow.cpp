// ListingFlow (pull/listing_flow.hpp).

#include "pull/listing_flow.hpp"

#include <algorithm>
#include <ctime>

#include <nlohmann/json.hpp>

#include "ocigate/oci/digest.hpp"
#include "ocigate/oci/reference.hpp"
#include "pull/upstream_call.hpp"
#include "records.hpp"

namespace ocigate::server {

namespace asio = boost::asio;

namespace {

std::int64_t unix_now() { return static_cast<std::int64_t>(std::time(nullptr)); }

}  // namespace

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

asio::awaitable<Reply> ListingFlow::tags(const Target& target, const std::string& query) {
  const std::string upstream_query = without_ns(query);
  const std::string record_key = target.repo_key + "?" + upstream_query;
  upstream::Request request;
  request.target = "/v2/" + target.repo + "/tags/list" + (upstream_query.empty() ? "" : "?" + upstream_query);
  request.scope = scope_for(target.repo);
  auto sent = co_await send_upstream(metrics_, target, request);
  std::string failure;
  if (sent) {
    auto& response = **sent;
    if (response.status() == 200) {
      auto body = co_await response.read_all(oci::max_manifest_size);
      auto json = body ? nlohmann::json::parse(*body, nullptr, false) : nlohmann::json();
      if (body && json.is_object()) {
        json["name"] = target.name;
        std::string link = rewrite_link(response_header(response, http::field::link), target);
        paginate_locally(json, query, target, link);
        nlohmann::json record = {{"body", json.dump()}, {"link", link}};
        (void)store_.put_record(records::tags, record_key, record.dump());
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
  if (auto record = store_.get_record(records::tags, record_key)) {
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

asio::awaitable<Reply> ListingFlow::referrers(const Target& target, const std::string& digest,
                                              const std::string& query) {
  if (!oci::Digest::parse(digest)) co_return error_reply(Errc::digest_invalid, "invalid digest: " + digest);
  const std::string key = target.repo_key + "@" + digest + "?" + oci::query_param(query, "artifactType").value_or("");
  auto record = store_.get_record(records::referrers, key);
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
    (void)store_.put_record(records::referrers, key, entry.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
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

asio::awaitable<Reply> ListingFlow::fetch_referrers(const Target& target, const std::string& digest,
                                                    const std::string& query) {
  auto parsed = oci::Digest::parse(digest);
  if (!parsed) co_return error_reply(Errc::digest_invalid, "invalid digest: " + digest);
  const std::string artifact_type = oci::query_param(query, "artifactType").value_or("");
  upstream::Request request;
  request.target = "/v2/" + target.repo + "/referrers/" + digest +
                   (artifact_type.empty() ? "" : "?" + without_ns(query));
  request.accept = std::string(oci::media::oci_index);
  request.scope = scope_for(target.repo);
  auto sent = co_await send_upstream(metrics_, target, request);
  if (!sent) co_return error_reply(sent.error());
  auto& response = **sent;
  Reply reply;
  reply.head.result(http::status::ok);
  reply.head.set(http::field::content_type, oci::media::oci_index);
  if (response.status() == 200 &&
      manifest_type_from(response_header(response, http::field::content_type)) == oci::media::oci_index) {
    auto body = co_await response.read_all(oci::max_manifest_size);
    if (!body) co_return error_reply(body.error());
    if (auto filters = response_header(response, "OCI-Filters-Applied"); !filters.empty()) {
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
  auto fallback = co_await manifests_.by_tag(target, fallback_tag);
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
