#pragma once
// A blob's bytes: one plain file per blob under <cache>/blobs/<2 hex> (codec.hpp), written by its BlobWriter and read
// by BlobReaders, with the index (index.hpp) deciding which files are live. Internal to
// ocigate_cache.

#include <unistd.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "blob_key.hpp"
#include "ocigate/cache/store.hpp"

namespace ocigate::cache {

class Index;

// An open file descriptor, closed with its owner.
class FileHandle {
 public:
  FileHandle() = default;
  explicit FileHandle(int fd) : fd_(fd) {}
  ~FileHandle() { reset(); }
  FileHandle(FileHandle&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  FileHandle& operator=(FileHandle&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

Error errno_error(const std::string& what);
Status write_all(int fd, std::string_view bytes);
// Reads up to max bytes at offset of a blob file holding size bytes into out (replacing what it
// held; a reused buffer is not cleared first, so a full-size one costs no fill). A file shorter
// than size is lost data: an error, never a short read.
Result<std::size_t> read_file(int fd, std::uint64_t size, std::uint64_t offset, std::size_t max, std::string& out);

// A committed blob opened for reading: its file stays readable while open, even once removed.
struct OpenBlob {
  BlobKey key;
  std::uint64_t writer_id = 0;
  std::uint64_t size = 0;
  FileHandle file;
};

// A reader of a pinned blob (unpinned when it goes), and a writer of a new blob's file.
std::unique_ptr<BlobReader> make_reader(std::shared_ptr<Index> index, OpenBlob blob);
std::unique_ptr<BlobWriter> make_writer(std::shared_ptr<Index> index, std::string digest, std::uint64_t writer_id,
                                        FileHandle file);

}  // namespace ocigate::cache
