#include "ocigate/common/address.hpp"

#include <gtest/gtest.h>

namespace ocigate::net {
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

AddressClass of(const char* text) { return classify_address(boost::asio::ip::make_address(text)); }

TEST(AddressClassTest, SortsAddressesIntoTheClassesRedirectsAreJudgedBy) {
  EXPECT_EQ(of("127.0.0.1"), AddressClass::loopback);
  EXPECT_EQ(of("::1"), AddressClass::loopback);
  EXPECT_EQ(of("::ffff:127.0.0.2"), AddressClass::loopback);
  EXPECT_EQ(of("169.254.169.254"), AddressClass::link_local);
  EXPECT_EQ(of("fe80::1"), AddressClass::link_local);
  EXPECT_EQ(of("64:ff9b::a9fe:a9fe"), AddressClass::link_local);
  EXPECT_EQ(of("10.255.255.1"), AddressClass::private_network);
  EXPECT_EQ(of("172.16.0.1"), AddressClass::private_network);
  EXPECT_EQ(of("192.168.0.1"), AddressClass::private_network);
  EXPECT_EQ(of("100.64.0.1"), AddressClass::private_network);
  EXPECT_EQ(of("fd00::1"), AddressClass::private_network);
  EXPECT_EQ(of("0.0.0.0"), AddressClass::special);
  EXPECT_EQ(of("::"), AddressClass::special);
  EXPECT_EQ(of("224.0.0.1"), AddressClass::special);
  EXPECT_EQ(of("255.255.255.255"), AddressClass::special);
  EXPECT_EQ(of("8.8.8.8"), AddressClass::global);
  EXPECT_EQ(of("2606:4700::6810:1"), AddressClass::global);
}

TEST(RedirectAllowedTest, AnUpstreamOnLoopbackMayReachLoopbackButNotMetadataOrPrivateNetworks) {
  const std::uint8_t home = class_bit(AddressClass::loopback);
  EXPECT_TRUE(redirect_allowed(of("127.0.0.1"), home));
  EXPECT_TRUE(redirect_allowed(of("8.8.8.8"), home));
  EXPECT_FALSE(redirect_allowed(of("169.254.169.254"), home));
  EXPECT_FALSE(redirect_allowed(of("fe80::1"), home));
  EXPECT_FALSE(redirect_allowed(of("10.255.255.1"), home));
  EXPECT_FALSE(redirect_allowed(of("192.168.1.1"), home));
  EXPECT_FALSE(redirect_allowed(of("0.0.0.0"), home)) << "0.0.0.0 reaches the local host";
}

TEST(RedirectAllowedTest, APublicUpstreamReachesOnlyPublicAddresses) {
  const std::uint8_t home = class_bit(AddressClass::global);
  EXPECT_TRUE(redirect_allowed(of("104.18.1.1"), home));
  for (const char* a : {"127.0.0.1", "::1", "169.254.169.254", "10.0.0.1", "fc00::1", "224.0.0.1"}) {
    EXPECT_FALSE(redirect_allowed(of(a), home)) << a;
  }
  EXPECT_FALSE(redirect_allowed(of("10.0.0.1"), 0)) << "an upstream not yet resolved has no exception";
}

TEST(RedirectAllowedTest, APrivateUpstreamReachesItsOwnClassOnly) {
  const std::uint8_t home = class_bit(AddressClass::private_network);
  EXPECT_TRUE(redirect_allowed(of("10.1.2.3"), home));
  EXPECT_TRUE(redirect_allowed(of("192.168.7.7"), home));
  EXPECT_FALSE(redirect_allowed(of("127.0.0.1"), home));
  EXPECT_FALSE(redirect_allowed(of("169.254.169.254"), home));
  const std::uint8_t special_home = class_bit(AddressClass::special);
  EXPECT_FALSE(redirect_allowed(of("0.0.0.0"), special_home)) << "special-purpose targets are never allowed";
}

TEST(LoopbackHostTest, LocalhostAndLoopbackLiteralsOnly) {
  for (const char* host : {"localhost", "LocalHost", "127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1"}) {
    EXPECT_TRUE(is_loopback_host(host)) << host;
  }
  for (const char* host : {"", "localhost.", "localhost.example.com", "10.0.0.1", "0.0.0.0", "::", "example.com",
                           "127.0.0.1.nip.io", "[::1]"}) {
    EXPECT_FALSE(is_loopback_host(host)) << host;
  }
}

}  // namespace
}  // namespace ocigate::net
