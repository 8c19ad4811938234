#include "ocigate/upstream/address.hpp"

#include <gtest/gtest.h>

namespace ocigate::upstream {
namespace {

bool internal(const char* text) { return is_internal_address(boost::asio::ip::make_address(text)); }

TEST(AddressTest, InternalIpv4Ranges) {
  for (const char* a : {"127.0.0.1", "127.255.0.9", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1",
                        "169.254.169.254", "100.64.0.1", "0.0.0.0", "224.0.0.1", "255.255.255.255", "198.18.0.1"}) {
    EXPECT_TRUE(internal(a)) << a;
  }
}

TEST(AddressTest, PublicIpv4) {
  for (const char* a : {"8.8.8.8", "104.18.1.1", "172.32.0.1", "172.15.255.255", "192.169.0.1", "100.128.0.1",
                        "11.0.0.1"}) {
    EXPECT_FALSE(internal(a)) << a;
  }
}

TEST(AddressTest, Ipv6) {
  for (const char* a : {"::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1", "::ffff:127.0.0.1",
                        "::ffff:10.0.0.1", "64:ff9b::a9fe:a9fe"}) {
    EXPECT_TRUE(internal(a)) << a;
  }
  for (const char* a : {"2606:4700::6810:1", "2a00:1450:4001::200e", "::ffff:8.8.8.8", "64:ff9b::808:808"}) {
    EXPECT_FALSE(internal(a)) << a;
  }
}

}  // namespace
}  // namespace ocigate::upstream
