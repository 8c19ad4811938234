#pragma once
// Fixtures shared by the server tests: a real cache, one whose blob commits go through a hook (a
// failing or a stalled disk), and a reader of reply bodies.

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "ocigate/cache/store.hpp"
#include "reply.hpp"

namespace ocigate::test {

using CommitHook = std::function<Status(cache::BlobWriter& inner)>;

// The real writer, but its commit goes through the hook.
class HookedWriter final : public cache::BlobWriter {
 public:
  HookedWriter(std::unique_ptr<cache::BlobWriter> inner, CommitHook hook)
      : inner_(std::move(inner)), hook_(std::move(hook)) {}
  Status append(std::string_view bytes) override { return inner_->append(bytes); }
  std::uint64_t appended() const override { return inner_->appended(); }
  std::uint64_t staged() const override { return inner_->staged(); }
  std::uint32_t chunk_size() const override { return inner_->chunk_size(); }
  Result<std::size_t> read_staged(std::uint64_t offset, std::size_t max, std::string& out) override {
    return inner_->read_staged(offset, max, out);
  }
  int file_descriptor() const override { return inner_->file_descriptor(); }
  Status commit() override { return hook_(*inner_); }

 private:
  std::unique_ptr<cache::BlobWriter> inner_;
  CommitHook hook_;
};

// The real cache, but every blob commit goes through the hook.
class CommitHookStore final : public cache::Store {
 public:
  CommitHookStore(cache::Store& inner, CommitHook hook) : inner_(inner), hook_(std::move(hook)) {}
  std::optional<cache::ManifestEntry> get_manifest(const std::string& d) override { return inner_.get_manifest(d); }
  Status put_manifest(const std::string& d, const cache::ManifestEntry& e) override {
    return inner_.put_manifest(d, e);
  }
  std::optional<cache::TagEntry> get_tag(const std::string& r, const std::string& t) override {
    return inner_.get_tag(r, t);
  }
  Status put_tag(const std::string& r, const std::string& t, const cache::TagEntry& e) override {
    return inner_.put_tag(r, t, e);
  }
  std::optional<std::uint64_t> blob_size(const std::string& d) override { return inner_.blob_size(d); }
  std::unique_ptr<cache::BlobReader> open_blob(const std::string& d) override { return inner_.open_blob(d); }
  Result<std::unique_ptr<cache::BlobWriter>> begin_blob(const std::string& d) override {
    auto writer = inner_.begin_blob(d);
    if (!writer) return writer.error();
    return std::unique_ptr<cache::BlobWriter>(std::make_unique<HookedWriter>(std::move(*writer), hook_));
  }
  Status remove_blob(const std::string& d) override { return inner_.remove_blob(d); }
  std::optional<std::string> get_record(std::string_view s, std::string_view k) override {
    return inner_.get_record(s, k);
  }
  Status put_record(std::string_view s, std::string_view k, std::string_view v) override {
    return inner_.put_record(s, k, v);
  }
  Status remove_record(std::string_view s, std::string_view k) override { return inner_.remove_record(s, k); }
  Status remove_records_outside(std::string_view s, std::string_view keep) override {
    return inner_.remove_records_outside(s, keep);
  }
  Result<std::vector<std::string>> blob_digests() override { return inner_.blob_digests(); }
  Result<std::vector<std::string>> manifest_digests() override { return inner_.manifest_digests(); }
  std::unique_ptr<cache::BlobReader> inspect_blob(const std::string& d) override { return inner_.inspect_blob(d); }
  Status remove_manifest(const std::string& d) override { return inner_.remove_manifest(d); }
  cache::Stats stats() const override { return inner_.stats(); }
  void wait_files_deleted() override { inner_.wait_files_deleted(); }
  void close() override { inner_.close(); }

 private:
  cache::Store& inner_;
  CommitHook hook_;
};

// A real cache in path (1 GiB, 1 MiB chunks), or nullptr after a test failure.
inline std::unique_ptr<cache::Store> open_cache(const std::string& path) {
  cache::Options options;
  options.path = path;
  options.max_size = 1ull << 30;
  options.chunk_size = 1u << 20;
  auto opened = cache::Store::open(options);
  EXPECT_TRUE(opened) << (opened ? "" : opened.error().message);
  return opened ? std::move(*opened) : nullptr;
}

// A commit that fails, as a sync on a failing disk would.
inline Status commit_fails(cache::BlobWriter&) {
  return Error{Errc::storage_error, "test: cannot sync the blob's file"};
}

// Reads a body to its end with next(), the path TLS sessions take, appending to bytes; returns the
// error that cut it, if one did.
inline boost::asio::awaitable<Status> read_body(server::BodySource& source, std::string& bytes) {
  std::string piece;
  for (;;) {
    auto n = co_await source.next(piece);
    if (!n) co_return n.error();
    if (*n == 0) co_return ok_status();
    bytes += piece;
  }
}

}  // namespace ocigate::test
