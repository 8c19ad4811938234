#include "pull/piped_hash.hpp"

#include <algorithm>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "cpus.hpp"
#include "ocigate/oci/digest.hpp"

namespace ocigate::server {

namespace asio = boost::asio;

struct PipedHasher::State {
  State(asio::any_io_executor caller, asio::any_io_executor hash_executor, std::string_view algorithm,
        std::size_t piece_size, std::size_t depth)
      : wake(std::move(caller)), hash(std::move(hash_executor)), hasher(algorithm), piece_size(piece_size),
        buffers(depth) {}

  asio::steady_timer wake;  // on the caller's executor: cancelled each time a piece is hashed
  asio::any_io_executor hash;
  oci::Hasher hasher;  // used by the hash jobs, in order, then by finish()
  const std::size_t piece_size;
  // Allocated at first use and never zeroed: a small blob's one piece takes one buffer.
  std::vector<std::unique_ptr<char[]>> buffers;
  std::uint64_t submitted = 0;  // both counters: on the caller's executor only
  std::uint64_t hashed = 0;
};

PipedHasher::PipedHasher(asio::any_io_executor caller, asio::any_io_executor hash, std::string_view algorithm,
                         std::size_t piece_size, std::size_t depth)
    : state_(std::make_shared<State>(std::move(caller), std::move(hash), algorithm, piece_size,
                                     std::max<std::size_t>(depth, 1))) {
  if (piece_size == 0) throw std::invalid_argument("PipedHasher: piece_size must be positive");
}

asio::awaitable<void> PipedHasher::wait_hashed() {
  // A hash job's completion runs on this executor too, so it cannot slip in between the caller's
  // check of the counters and this wait.
  state_->wake.expires_at(std::chrono::steady_clock::time_point::max());
  co_await state_->wake.async_wait(asio::as_tuple(asio::use_awaitable));
}

asio::awaitable<std::span<char>> PipedHasher::next_buffer() {
  State& s = *state_;
  while (s.submitted - s.hashed >= s.buffers.size()) co_await wait_hashed();
  auto& buffer = s.buffers[s.submitted % s.buffers.size()];
  if (!buffer) buffer = std::make_unique_for_overwrite<char[]>(s.piece_size);
  co_return std::span<char>(buffer.get(), s.piece_size);
}

void PipedHasher::submit(std::size_t n) {
  State& s = *state_;
  const char* data = s.buffers[s.submitted % s.buffers.size()].get();
  ++s.submitted;
  asio::post(s.hash, [state = state_, data, n]() mutable {
    static thread_local const bool named = (name_current_thread("hash"), true);
    (void)named;
    state->hasher.update(data, n);
    auto caller = state->wake.get_executor();
    // The last reference is dropped on the caller's executor, where the timer lives.
    asio::post(caller, [state = std::move(state)] {
      ++state->hashed;
      state->wake.cancel();
    });
  });
}

asio::awaitable<std::string> PipedHasher::finish() {
  while (state_->hashed < state_->submitted) co_await wait_hashed();
  co_return state_->hasher.finish();
}

}  // namespace ocigate::server
