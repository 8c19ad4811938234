#pragma once
// Hashes a stream on another thread while its next piece is read. The reader fills one of a few
// buffers, hands it to the hash and takes the next free one; the pieces are hashed in order on the
// hash executor (a strand of a pool). The reader waits only when every buffer is still being
// hashed, so memory stays at `depth` pieces. With two CPUs or more, a stream then runs at the
// slower of its reads and its hash (SHA-256: about 1.2 GB/s per core), not at their sum.

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

namespace ocigate::server {

class PipedHasher {
 public:
  // caller: the executor the reading coroutine runs on (a strand or a one-thread context); hash
  // completions come back to it. algorithm: "sha256" or "sha512".
  PipedHasher(boost::asio::any_io_executor caller, boost::asio::any_io_executor hash, std::string_view algorithm,
              std::size_t piece_size, std::size_t depth);

  // The buffer to read the next piece into; waits while every buffer is still being hashed.
  boost::asio::awaitable<std::span<char>> next_buffer();
  // Hands the first n bytes of the buffer next_buffer() returned to the hash. The caller may read
  // that buffer until its next next_buffer(), but not write it.
  void submit(std::size_t n);
  // Waits until every submitted piece is hashed; "<algorithm>:<hex>". Call once, last.
  boost::asio::awaitable<std::string> finish();

 private:
  struct State;
  boost::asio::awaitable<void> wait_hashed();
  // Shared with the hash jobs, which may outlive this object when the reader stops early.
  std::shared_ptr<State> state_;
};

}  // namespace ocigate::server
