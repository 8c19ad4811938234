// server/piped_hash: a stream hashed on another executor, in order, with a bounded read-ahead.
#include "pull/piped_hash.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>

#include "support.hpp"
#include "ocigate/oci/digest.hpp"

namespace {

namespace asio = boost::asio;
using ocigate::server::PipedHasher;

constexpr std::size_t piece = 4096;

// Feeds bytes through the hasher in pieces of 1..piece bytes (sizes vary with the offset), as
// socket reads come, and returns its digest.
asio::awaitable<std::string> feed(PipedHasher* hasher, const std::string* bytes) {
  std::size_t offset = 0;
  while (offset < bytes->size()) {
    auto buffer = co_await hasher->next_buffer();
    const std::size_t n = std::min({buffer.size(), bytes->size() - offset, 1 + (offset * 7919) % piece});
    std::memcpy(buffer.data(), bytes->data() + offset, n);
    hasher->submit(n);
    offset += n;
  }
  co_return co_await hasher->finish();
}

// Takes buffers and submits one byte from each; counts the buffers it was given.
asio::awaitable<void> take(PipedHasher* hasher, int buffers, int* taken) {
  for (int i = 0; i < buffers; ++i) {
    auto buffer = co_await hasher->next_buffer();
    buffer[0] = static_cast<char>('a' + i);
    hasher->submit(1);
    ++*taken;
  }
}

std::string hash_on_pool(const std::string& bytes, std::string_view algorithm, std::size_t depth) {
  asio::io_context caller;
  asio::thread_pool pool(2);
  PipedHasher hasher(caller.get_executor(), asio::make_strand(pool), algorithm, piece, depth);
  auto digest = asio::co_spawn(caller, feed(&hasher, &bytes), asio::use_future);
  caller.run();
  return digest.get();
}

}  // namespace

TEST(PipedHasher, GivesTheDigestOfEveryPieceInOrder) {
  const std::string bytes = ocigate::test::pattern_bytes(3 * 1024 * 1024 + 17, 7);
  const std::string expected = ocigate::oci::sha256_digest(bytes);
  EXPECT_EQ(hash_on_pool(bytes, "sha256", 3), expected);
  EXPECT_EQ(hash_on_pool(bytes, "sha256", 1), expected);
  EXPECT_EQ(hash_on_pool(bytes, "sha256", 16), expected);
}

TEST(PipedHasher, HashesWithTheDigestsAlgorithm) {
  const std::string bytes = ocigate::test::pattern_bytes(100000, 3);
  ocigate::oci::Hasher direct("sha512");
  direct.update(bytes);
  EXPECT_EQ(hash_on_pool(bytes, "sha512", 3), direct.finish());
}

TEST(PipedHasher, AnEmptyStreamHasTheEmptyDigest) {
  EXPECT_EQ(hash_on_pool("", "sha256", 3), ocigate::oci::sha256_digest(""));
}

TEST(PipedHasher, TheReaderWaitsWhileEveryBufferIsBeingHashed) {
  asio::io_context caller;
  asio::io_context hash;  // run by hand: nothing is hashed until the test says so
  PipedHasher hasher(caller.get_executor(), hash.get_executor(), "sha256", piece, 3);
  int taken = 0;
  asio::co_spawn(caller, take(&hasher, 5, &taken), asio::detached);
  caller.poll();
  EXPECT_EQ(taken, 3);  // the fourth buffer waits for a hashed one
  caller.poll();
  EXPECT_EQ(taken, 3);
  hash.run_one();  // one piece hashed: one buffer free
  caller.poll();
  EXPECT_EQ(taken, 4);
  hash.run();
  caller.poll();
  EXPECT_EQ(taken, 5);
}

TEST(PipedHasher, ReusesTheBufferOfAHashedPiece) {
  asio::io_context caller;
  asio::io_context hash;
  PipedHasher hasher(caller.get_executor(), hash.get_executor(), "sha256", piece, 2);
  std::vector<char*> seen;
  auto take_one = [&] {
    auto next = asio::co_spawn(caller, hasher.next_buffer(), asio::use_future);
    caller.restart();
    caller.poll();
    hash.restart();
    hash.run();  // the previous piece's hash, then its completion on the caller
    caller.restart();
    caller.poll();
    auto buffer = next.get();
    seen.push_back(buffer.data());
    hasher.submit(buffer.size());
  };
  for (int i = 0; i < 4; ++i) take_one();
  EXPECT_NE(seen[0], seen[1]);
  EXPECT_EQ(seen[0], seen[2]);
  EXPECT_EQ(seen[1], seen[3]);
}

TEST(PipedHasher, PiecesStillBeingHashedOutliveAReaderThatStopped) {
  asio::io_context caller;
  asio::io_context hash;
  auto hasher = std::make_unique<PipedHasher>(caller.get_executor(), hash.get_executor(), "sha256", piece, 3);
  int taken = 0;
  asio::co_spawn(caller, take(hasher.get(), 3, &taken), asio::detached);
  caller.poll();
  ASSERT_EQ(taken, 3);
  hasher.reset();  // the fetch failed and went away; its three pieces are still queued
  EXPECT_EQ(hash.run(), 3U);
  caller.restart();
  EXPECT_EQ(caller.poll(), 3U);  // their completions run against the shared state (ASan would see a use after free)
}
