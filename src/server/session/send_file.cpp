#include "session/send_file.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/sendfile.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace ocigate::server {

namespace asio = boost::asio;

namespace {

// True once the socket can take more bytes; false when idle_timeout passed first or the wait
// failed (the socket was closed or cancelled).
asio::awaitable<bool> wait_writable(asio::ip::tcp::socket& socket, std::chrono::steady_clock::duration idle_timeout) {
  asio::steady_timer timer(co_await asio::this_coro::executor, idle_timeout);
  auto [order, wait_ec, timer_ec] =
      co_await asio::experimental::make_parallel_group(
          socket.async_wait(asio::ip::tcp::socket::wait_write, asio::deferred), timer.async_wait(asio::deferred))
          .async_wait(asio::experimental::wait_for_one(), asio::use_awaitable);
  (void)order;
  (void)timer_ec;
  co_return !wait_ec;
}

}  // namespace

asio::awaitable<Status> send_file(asio::ip::tcp::socket& socket, FileSpan span,
                                  std::chrono::steady_clock::duration idle_timeout) {
  // asio has usually made the descriptor non-blocking already (its own async writes do); the
  // getter reads asio's flag, so only the first span of a connection may cost a syscall.
  if (!socket.native_non_blocking()) {
    boost::system::error_code ec;
    socket.native_non_blocking(true, ec);
    if (ec) co_return Error{Errc::cancelled, "client: " + ec.message()};
  }
  auto offset = static_cast<off_t>(span.offset);
  std::uint64_t left = span.length;
  while (left > 0) {
    const ssize_t n = ::sendfile(socket.native_handle(), span.fd, &offset, left);
    if (n > 0) {
      left -= static_cast<std::uint64_t>(n);
      continue;
    }
    if (n == 0) {
      co_return Error{Errc::storage_error,
                      "the file of a cached blob ends at byte " + std::to_string(offset) + ", expected " +
                          std::to_string(span.offset + span.length)};
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN) co_return Error{Errc::cancelled, std::string("client: ") + std::strerror(errno)};
    if (!co_await wait_writable(socket, idle_timeout)) {
      co_return Error{Errc::cancelled, "client: no progress within the idle timeout"};
    }
  }
  // One span at a time, like one write: other connections on this thread get their turn.
  co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
  co_return ok_status();
}

void set_cork(asio::ip::tcp::socket& socket, bool on) {
  const int value = on ? 1 : 0;
  ::setsockopt(socket.native_handle(), IPPROTO_TCP, TCP_CORK, &value, sizeof value);
}

}  // namespace ocigate::server
