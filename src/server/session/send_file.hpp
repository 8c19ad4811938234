#pragma once
// Sends a span of an open file to a TCP socket with sendfile(2): the kernel moves the page-cache
// pages to the socket without the copy through user space that pread + write costs. For
// plain-TCP sessions only (TLS must see the bytes).

#include <chrono>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "ocigate/common/result.hpp"
#include "reply.hpp"

namespace ocigate::server {

// Sends all of span. Waits while the socket's buffer is full, at most idle_timeout at a time.
// Errors: Errc::cancelled when the client went away or stalled past idle_timeout (the message
// starts with "client: "), Errc::storage_error when the file ends before the span does.
boost::asio::awaitable<Status> send_file(boost::asio::ip::tcp::socket& socket, FileSpan span,
                                         std::chrono::steady_clock::duration idle_timeout);

// TCP_CORK (nginx's `tcp_nopush`): while on, the kernel sends only full segments, so the short
// tail of each sendfile call waits for the next span instead of going out as a runt of its own
// (on loopback one per MiB, plus the receiver's extra ACK for it). Turning it off sends what is
// held at once. Corked bytes may wait up to 200 ms, so a body that may wait for its next bytes (a
// fetch being followed) is uncorked after each write.
// Best effort: an error leaves the socket as it was.
void set_cork(boost::asio::ip::tcp::socket& socket, bool on);

}  // namespace ocigate::server
