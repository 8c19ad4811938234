// sendfile(2) sends for plain-TCP sessions, and the file spans the cache's body sources hand out.
#include "session/send_file.hpp"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <fstream>
#include <optional>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/use_future.hpp>

#include "support.hpp"
#include "pull/blob_fetch.hpp"
#include "ocigate/cache/store.hpp"

namespace ocigate::server {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

using ::ocigate::test::pattern_bytes;
using ::ocigate::test::TempDir;

// A file with known bytes, open for reading.
class File {
 public:
  File(const std::string& dir, const std::string& bytes) {
    const std::string path = dir + "/blob";
    std::ofstream(path, std::ios::binary) << bytes;
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    EXPECT_GE(fd_, 0) << "cannot open " << path;
  }
  ~File() {
    if (fd_ >= 0) ::close(fd_);
  }
  File(const File&) = delete;
  File& operator=(const File&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
};

// A loopback TCP connection: `sender` on the io_context, `receiver` a blocking socket for a thread.
class Connection {
 public:
  Connection() : sender(ioc), receiver(ioc) {
    tcp::acceptor acceptor(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    receiver.connect(acceptor.local_endpoint());
    acceptor.accept(sender);
  }
  // Small buffers on both sides, so a send of a few MiB must wait for the reader.
  void shrink_buffers() {
    sender.set_option(asio::socket_base::send_buffer_size(16 * 1024));
    receiver.set_option(asio::socket_base::receive_buffer_size(16 * 1024));
  }
  // Bytes waiting in a socket's queue: FIONREAD (received, unread) or TIOCOUTQ (sent, unacknowledged).
  static int queued(tcp::socket& socket, unsigned long request) {
    int bytes = 0;
    return ::ioctl(socket.native_handle(), request, &bytes) == 0 ? bytes : -1;
  }
  std::string receive(std::size_t size) {
    std::string out(size, '\0');
    boost::system::error_code ec;
    const std::size_t n = asio::read(receiver, asio::buffer(out), ec);
    out.resize(n);
    return out;
  }
  Status send(FileSpan span, std::chrono::steady_clock::duration idle) {
    std::optional<Status> result;
    auto done = asio::co_spawn(
        ioc, [&]() -> asio::awaitable<void> { result = co_await send_file(sender, span, idle); }, asio::use_future);
    ioc.run();
    ioc.restart();
    done.get();
    return result.value_or(Error{Errc::internal, "send_file did not finish"});
  }

  asio::io_context ioc;
  tcp::socket sender;
  tcp::socket receiver;
};

// A file of size seeded bytes and a loopback connection to send it over.
class SendFile : public ::testing::Test {
 protected:
  void with_file(std::size_t size, std::uint32_t seed) {
    bytes = pattern_bytes(size, seed);
    file.emplace(dir.path(), bytes);
  }
  Status send(std::uint64_t offset, std::uint64_t length, std::chrono::steady_clock::duration idle) {
    return c.send({file->fd(), offset, length}, idle);
  }

  TempDir dir;
  std::string bytes;
  std::optional<File> file;
  Connection c;
};

TEST_F(SendFile, SendsExactlyTheSpan) {
  with_file(3 << 20, 1);
  const std::uint64_t offset = 12345, length = (2 << 20) + 7;
  std::string got;
  std::thread reader([&] { got = c.receive(length); });
  auto sent = send(offset, length, 5s);
  reader.join();
  ASSERT_TRUE(sent) << sent.error().message;
  EXPECT_TRUE(got == bytes.substr(offset, length));
}

TEST_F(SendFile, WaitsForASlowReaderAndCompletes) {
  with_file(4 << 20, 2);
  c.shrink_buffers();
  std::string got;
  std::thread reader([&] {
    // 4 MiB cannot fit the shrunk buffers, so the sender has to wait for this reader whenever it
    // starts; it starts once both queues hold bytes, i.e. once the sender is under way and ahead.
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!(c.queued(c.receiver, FIONREAD) > 0 && c.queued(c.sender, TIOCOUTQ) > 0) &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(1ms);
    }
    got = c.receive(bytes.size());
  });
  auto sent = send(0, bytes.size(), 5s);
  reader.join();
  ASSERT_TRUE(sent) << sent.error().message;
  EXPECT_TRUE(got == bytes);
}

TEST_F(SendFile, GivesUpOnAClientThatStopsReading) {
  with_file(8 << 20, 3);
  c.shrink_buffers();
  const auto started = std::chrono::steady_clock::now();
  auto sent = send(0, bytes.size(), 200ms);
  ASSERT_FALSE(sent);
  EXPECT_EQ(sent.error().code, Errc::cancelled);
  EXPECT_EQ(sent.error().message.rfind("client: ", 0), 0u) << sent.error().message;
  EXPECT_LT(std::chrono::steady_clock::now() - started, 3s);
}

TEST_F(SendFile, AClientThatLeftIsAnErrorNotASignal) {
  std::signal(SIGPIPE, SIG_IGN);  // as the server does before it serves
  with_file(8 << 20, 4);
  c.shrink_buffers();
  c.receiver.close();
  auto sent = send(0, bytes.size(), 2s);
  ASSERT_FALSE(sent);
  EXPECT_EQ(sent.error().code, Errc::cancelled);
}

TEST_F(SendFile, AFileShorterThanTheSpanIsAStorageError) {
  with_file(1000, 5);
  std::string got;
  std::thread reader([&] { got = c.receive(bytes.size()); });
  auto sent = send(0, 5000, 2s);
  reader.join();
  ASSERT_FALSE(sent);
  EXPECT_EQ(sent.error().code, Errc::storage_error);
  EXPECT_NE(sent.error().message.find("ends at byte 1000"), std::string::npos) << sent.error().message;
  EXPECT_TRUE(got == bytes);  // what there was went out; the session then cuts the connection
}

// A short span on a corked socket waits in the kernel (for 200 ms, or a full segment); uncorking
// sends it at once. The session corks cached bodies and uncorks at their end.
TEST_F(SendFile, ACorkedTailWaitsUntilUncorked) {
  with_file(100, 7);
  set_cork(c.sender, true);
  ASSERT_TRUE(send(0, bytes.size(), 2s));
  c.receiver.non_blocking(true);
  char probe[128];
  boost::system::error_code ec;
  // Loopback delivers what is sent within the send call, so an uncorked tail would already be
  // here; the wait only adds margin, and stays well inside the kernel's 200 ms cork timer.
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(c.receiver.read_some(asio::buffer(probe), ec), 0u);
  EXPECT_EQ(ec, asio::error::would_block) << "a corked 100-byte tail went out at once";
  set_cork(c.sender, false);
  c.receiver.non_blocking(false);
  std::string got;
  std::thread reader([&] { got = c.receive(bytes.size()); });
  reader.join();
  EXPECT_TRUE(got == bytes);
}

// Cache hits: spans cover exactly the requested range, piece by piece, from the blob's file.
class CacheSpans : public ::testing::Test {
 protected:
  void SetUp() override {
    cache::Options options;
    options.path = dir.path() + "/cache";
    options.chunk_size = 64 * 1024;
    auto opened = cache::Store::open(options);
    ASSERT_TRUE(opened) << opened.error().message;
    store = std::move(*opened);
    auto writer = store->begin_blob("sha256:aa");
    ASSERT_TRUE(writer);
    ASSERT_TRUE((*writer)->append(bytes));
    ASSERT_TRUE((*writer)->commit());
  }

  std::string drain_spans(BodySource& source) {
    asio::io_context ioc;
    std::string all;
    auto done = asio::co_spawn(
        ioc,
        [&]() -> asio::awaitable<void> {
          for (;;) {
            auto span = co_await source.next_span();
            if (!span || span->length == 0) co_return;
            EXPECT_LE(span->length, 64u * 1024);
            std::string piece(span->length, '\0');
            EXPECT_EQ(::pread(span->fd, piece.data(), piece.size(), static_cast<off_t>(span->offset)),
                      static_cast<ssize_t>(span->length));
            EXPECT_EQ(span->offset, spans_start + all.size());
            all += piece;
          }
        },
        asio::use_future);
    ioc.run();
    done.get();
    return all;
  }

  TempDir dir;
  std::unique_ptr<cache::Store> store;
  const std::string bytes = pattern_bytes(5 * 64 * 1024 + 321, 6);
  std::uint64_t spans_start = 0;
};

TEST_F(CacheSpans, WholeBlobAndRange) {
  auto whole = cache_source(store->open_blob("sha256:aa"), 0, bytes.size());
  ASSERT_TRUE(whole->has_spans());
  EXPECT_TRUE(whole->body_at_hand());  // all in the file: sent corked
  EXPECT_TRUE(drain_spans(*whole) == bytes);
  spans_start = 70000;
  auto range = cache_source(store->open_blob("sha256:aa"), 70000, 200000);
  EXPECT_TRUE(drain_spans(*range) == bytes.substr(70000, 200000));
}

TEST_F(CacheSpans, AReadCheckNeedsTheBytesSoNoSpans) {
  auto checked = cache_source(store->open_blob("sha256:aa"), 0, bytes.size(), ReadCheck{"sha256:" + std::string(64, 'a'), {}});
  EXPECT_FALSE(checked->has_spans());
  // A check applies to whole-blob reads only: a range may go by sendfile.
  auto range = cache_source(store->open_blob("sha256:aa"), 10, 100, ReadCheck{"sha256:" + std::string(64, 'a'), {}});
  EXPECT_TRUE(range->has_spans());
}

}  // namespace
}  // namespace ocigate::server
