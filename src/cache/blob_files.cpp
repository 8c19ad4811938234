#include "blob_files.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>

#include "codec.hpp"
#include "index.hpp"

namespace ocigate::cache {

Error errno_error(const std::string& what) {
  return {Errc::storage_error, what + ": " + std::strerror(errno)};
}

Status write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return errno_error("cannot write blob file");
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return ok_status();
}

Result<std::size_t> read_file(int fd, std::uint64_t size, std::uint64_t offset, std::size_t max, std::string& out) {
  if (offset >= size) {
    out.clear();
    return std::size_t{0};
  }
  const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(max, size - offset));
  out.resize(want);
  std::size_t got = 0;
  while (got < want) {
    const ssize_t n = ::pread(fd, out.data() + got, want - got, static_cast<off_t>(offset + got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      out.clear();
      return errno_error("cannot read a cached blob");
    }
    if (n == 0) {
      out.clear();
      return Error{Errc::storage_error, "the file of a cached blob ends at byte " + std::to_string(offset + got) +
                                            ", expected " + std::to_string(size)};
    }
    got += static_cast<std::size_t>(n);
  }
  return want;
}

namespace {

using codec::BlobMeta;

class Reader final : public BlobReader {
 public:
  Reader(std::shared_ptr<Index> index, OpenBlob blob) : index_(std::move(index)), blob_(std::move(blob)) {}
  ~Reader() override {
    DbLease db(*index_);
    index_->unpin(blob_.key, blob_.writer_id, db.get());
  }
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  std::uint64_t size() const override { return blob_.size; }
  std::uint32_t chunk_size() const override { return index_->options.chunk_size; }

  Result<std::size_t> read(std::uint64_t offset, std::size_t max, std::string& out) override {
    if (index_->closed.load(std::memory_order_relaxed)) {
      out.clear();
      return closed_error();
    }
    return read_file(blob_.file.get(), blob_.size, offset, max, out);
  }
  int file_descriptor() const override { return blob_.file.get(); }

 private:
  std::shared_ptr<Index> index_;
  const OpenBlob blob_;  // pinned while this reader lives
};

class Writer final : public BlobWriter {
 public:
  Writer(std::shared_ptr<Index> index, std::string digest, std::uint64_t writer_id, FileHandle file)
      : index_(std::move(index)), digest_(std::move(digest)), id_(writer_id), file_(std::move(file)) {}
  ~Writer() override;
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  Status append(std::string_view bytes) override;
  std::uint64_t appended() const override { return appended_.load(std::memory_order_acquire); }
  std::uint64_t staged() const override { return appended(); }
  std::uint32_t chunk_size() const override { return index_->options.chunk_size; }
  Result<std::size_t> read_staged(std::uint64_t offset, std::size_t max, std::string& out) override;
  int file_descriptor() const override { return file_.get(); }
  Status commit() override;

 private:
  enum class State { open, committed, failed };

  Status fail(Error error) {
    state_ = State::failed;
    return error;
  }
  Status publish(rocksdb::DB& db, std::uint64_t size, std::uint64_t tick);

  std::shared_ptr<Index> index_;
  const std::string digest_;
  const std::uint64_t id_;
  const FileHandle file_;
  bool owns_file_ = true;  // false once the index owns it
  std::atomic<std::uint64_t> appended_{0};
  std::atomic<State> state_{State::open};
};

Writer::~Writer() {
  if (owns_file_) (void)::unlink(index_->file_path(id_).c_str());  // a failed unlink leaves an orphan for open()
}

Status Writer::append(std::string_view bytes) {
  if (state_.load() != State::open) {
    return Error{Errc::internal, "append to a blob writer that was committed or failed"};
  }
  if (index_->closed.load(std::memory_order_relaxed)) return fail(closed_error());
  if (auto written = write_all(file_.get(), bytes); !written) {
    return fail({Errc::storage_error, written.error().message + " of blob " + digest_});
  }
  // Only now may read_staged see these bytes.
  appended_.fetch_add(bytes.size(), std::memory_order_release);
  return ok_status();
}

Result<std::size_t> Writer::read_staged(std::uint64_t offset, std::size_t max, std::string& out) {
  // The file stays open (and readable) whatever happens to it: a racing writer of the same digest
  // may have won the commit and this one's file was unlinked; its bytes are the same.
  if (index_->closed.load(std::memory_order_relaxed)) {
    out.clear();
    return closed_error();
  }
  return read_file(file_.get(), appended(), offset, max, out);
}

Status Writer::commit() {
  const State state = state_.load();
  if (state == State::committed) return Error{Errc::internal, "blob writer for " + digest_ + " committed twice"};
  if (state == State::failed) return Error{Errc::storage_error, "blob writer for " + digest_ + " failed earlier"};
  DbLease db(*index_);
  if (!db) return fail(closed_error());
  const std::uint64_t size = appended_.load();
  auto tick = index_->reserve_commit(digest_, db.get());
  if (tick) {
    if (auto published = publish(*db, size, *tick); !published) {
      index_->cancel_commit(digest_);
      return fail(published.error());
    }
  }
  if (!tick && owns_file_) {
    // Another writer committed (or is committing) the same digest: its bytes are ours. This file
    // goes; it stays readable through file_ for read_staged.
    (void)::unlink(index_->file_path(id_).c_str());
    owns_file_ = false;
  }
  state_.store(State::committed, std::memory_order_release);
  return ok_status();
}

// Makes the file durable, then logs its meta with a synced write: a commit that returned survives
// a crash right after, and a crash before leaves at most an orphan file.
Status Writer::publish(rocksdb::DB& db, std::uint64_t size, std::uint64_t tick) {
  if (::fdatasync(file_.get()) != 0) return errno_error("cannot sync the file of blob " + digest_);
  if (auto synced = index_->sync_dir(id_); !synced) return synced;
  BlobMeta meta{size, id_, tick};
  rocksdb::WriteOptions durable;
  durable.sync = true;
  auto status = db.Put(durable, codec::meta_key(digest_), codec::encode_meta(meta));
  if (!status.ok()) return db_error("cannot commit blob " + digest_, status);
  owns_file_ = false;
  index_->finish_commit(digest_, meta, db);
  return ok_status();
}

}  // namespace

std::unique_ptr<BlobReader> make_reader(std::shared_ptr<Index> index, OpenBlob blob) {
  return std::make_unique<Reader>(std::move(index), std::move(blob));
}

std::unique_ptr<BlobWriter> make_writer(std::shared_ptr<Index> index, std::string digest, std::uint64_t writer_id,
                                        FileHandle file) {
  return std::make_unique<Writer>(std::move(index), std::move(digest), writer_id, std::move(file));
}

}  // namespace ocigate::cache
