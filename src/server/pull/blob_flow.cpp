// BlobFlow (pull/blob_flow.hpp).

#include "pull/blob_flow.hpp"

#include "ocigate/oci/digest.hpp"
#include "ocigate/oci/range.hpp"
#include "ocigate/server/log.hpp"
#include "pull/upstream_call.hpp"

namespace ocigate::server {

namespace asio = boost::asio;
using Request = http::request<http::empty_body>;

asio::awaitable<Reply> BlobFlow::answer(const Request& req, const Target& target, const std::string& digest) {
  if (!oci::Digest::parse(digest)) co_return error_reply(Errc::digest_invalid, "invalid digest: " + digest);
  if (!judge_.blob_access().allowed(digest)) {
    co_return error_reply(Errc::denied, "blob " + digest +
                                            " is not referenced by any image this mirror has allowed; pull the image "
                                            "through its manifest (policy.blob_access: referenced)");
  }
  if (auto why = judge_.refused_layer(digest)) co_return error_reply(Errc::denied, *why);
  if (req.method() == http::verb::get) pull_ahead_.layer_requested(target, digest);
  // Opened, not only looked up: a blob whose file was lost is dropped here and fetched again.
  if (auto reader = store_.open_blob(digest)) {
    metrics_.record_cache("blob", "hit");
    Reply reply = from_cache(req, digest, std::move(reader));
    reply.cache = "hit";
    co_return co_await judge_.gate_blob(std::move(reply), digest);
  }
  metrics_.record_cache("blob", "miss");
  if (req.method() == http::verb::head) co_return co_await head_upstream(target, digest);

  auto fetch = fetches_.join(digest, *target.client, target.repo, scope_for(target.repo));
  const bool ranged = !req[http::field::range].empty();
  BlobFetch::Snapshot snap = co_await fetches_.wait_started(fetch);
  // A range, or a body of unknown length, waits for the whole fetch.
  if (ranged || !snap.size_known) snap = co_await fetches_.wait_finished(fetch);
  if (snap.phase == BlobFetch::Phase::failed) {
    if (snap.error.code == Errc::digest_mismatch) {
      co_return error_reply(Errc::upstream_error, "upstream bytes for " + digest + " do not match the digest");
    }
    co_return error_reply(snap.error);
  }
  if (snap.phase == BlobFetch::Phase::done) {
    Reply reply = from_cache(req, digest);
    reply.cache = "miss";
    co_return co_await judge_.gate_blob(std::move(reply), digest);
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
  reply.stream = fetches_.follow(fetch);
  reply.cache = "miss";
  co_return co_await judge_.gate_blob(std::move(reply), digest);
}

Reply BlobFlow::from_cache(const Request& req, const std::string& digest) {
  auto reader = store_.open_blob(digest);
  if (!reader) return error_reply(Errc::blob_unknown, "blob " + digest + " was evicted; retry");
  return from_cache(req, digest, std::move(reader));
}

Reply BlobFlow::from_cache(const Request& req, const std::string& digest, std::unique_ptr<cache::BlobReader> reader) {
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
std::optional<ReadCheck> BlobFlow::read_check(const std::string& digest) {
  if (!config_.storage.verify_reads) return std::nullopt;
  return ReadCheck{digest, [this, digest](const std::string& actual) {
                     metrics_.record_corrupt_cached_blob();
                     auto removed = store_.remove_blob(digest);
                     log::error("cached blob no longer matches its digest; transfer cut, blob removed from the cache",
                                {{"digest", digest}, {"actual", actual},
                                 {"removed", removed.ok() ? "yes" : "no: " + removed.error().message}});
                   }};
}

asio::awaitable<Reply> BlobFlow::head_upstream(const Target& target, const std::string& digest) {
  upstream::Request request;
  request.method = http::verb::head;
  request.target = "/v2/" + target.repo + "/blobs/" + digest;
  request.scope = scope_for(target.repo);
  request.follow_redirects = true;
  auto sent = co_await send_upstream(metrics_, target, request);
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

asio::awaitable<std::optional<std::string>> BlobFlow::small_blob(const Target& target,
                                                                 const oci::Descriptor& descriptor,
                                                                 std::int64_t max_size) {
  if (descriptor.size > max_size) co_return std::nullopt;
  std::unique_ptr<BodySource> source;
  if (auto reader = store_.open_blob(descriptor.digest)) {
    const std::uint64_t size = reader->size();
    source = cache_source(std::move(reader), 0, size);
  } else {
    // Followed like a client would: the bytes are ours once verified, before the commit's sync.
    auto fetch = fetches_.join(descriptor.digest, *target.client, target.repo, scope_for(target.repo));
    source = fetches_.follow(fetch);
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

}  // namespace ocigate::server
