#include "ocigate/common/network.hpp"

#include <gtest/gtest.h>

namespace ocigate::net {
namespace {

Network network(const char* text) {
  auto parsed = Network::parse(text);
  EXPECT_TRUE(parsed) << text << ": " << (parsed ? "" : parsed.error().message);
  return *parsed;
}

bool holds(const char* net, const char* address) {
  return network(net).contains(boost::asio::ip::make_address(address));
}

// Which addresses a network holds: IPv4 and IPv6 prefixes of any length, one address as a whole
// prefix, the two families apart, an IPv4-mapped peer (a dual-stack listener's) as IPv4.
TEST(NetworkTest, HoldsTheAddressesOfItsPrefix) {
  struct Case {
    const char* network;
    const char* address;
    bool held;
  };
  for (const Case& c : {Case{"10.0.0.0/8", "10.255.1.2", true}, Case{"10.0.0.0/8", "11.0.0.1", false},
                        Case{"172.16.0.0/12", "172.31.255.255", true}, Case{"172.16.0.0/12", "172.32.0.0", false},
                        Case{"192.168.4.0/22", "192.168.7.9", true}, Case{"192.168.4.0/22", "192.168.8.1", false},
                        Case{"0.0.0.0/0", "203.0.113.7", true}, Case{"127.0.0.1", "127.0.0.1", true},
                        Case{"127.0.0.1", "127.0.0.2", false}, Case{"::1", "::1", true}, Case{"::1", "::2", false},
                        Case{"fd00::/8", "fd12:3456::1", true}, Case{"fd00::/8", "fe80::1", false},
                        Case{"2001:db8::/33", "2001:db8:7fff::1", true}, Case{"2001:db8::/33", "2001:db8:8000::1", false},
                        Case{"0.0.0.0/0", "::1", false}, Case{"::/0", "127.0.0.1", false},
                        Case{"10.0.0.0/8", "::ffff:10.1.2.3", true}}) {
    EXPECT_EQ(holds(c.network, c.address), c.held) << c.network << " " << c.address;
  }
}

TEST(NetworkTest, UnmappedGivesTheIpv4AddressAMappedOneCarries) {
  EXPECT_EQ(unmapped(boost::asio::ip::make_address("::ffff:10.1.2.3")).to_string(), "10.1.2.3");
  EXPECT_EQ(unmapped(boost::asio::ip::make_address("fd00::1")).to_string(), "fd00::1");
}

TEST(NetworkTest, BadTextIsRefusedWithTheReason) {
  struct Case {
    const char* text;
    const char* says;
  };
  for (const Case& c : {Case{"", "is not an IP address"}, Case{"10.0.0.0/", "prefix length that is not 0-32"},
                        Case{"10.0.0.0/33", "not 0-32"}, Case{"10.0.0.0/8x", "not 0-32"},
                        Case{"10.0.0.0/-1", "not 0-32"}, Case{"fd00::/129", "not 0-128"},
                        Case{"proxy.example.com", "is not an IP address"}, Case{"10.0.0.0/8/8", "not 0-32"},
                        Case{"10.0.0.1/8", "sets bits past its /8 prefix"},
                        Case{"fd00::1/8", "sets bits past its /8 prefix"},
                        Case{"::ffff:10.0.0.0/104", "IPv4-mapped"}}) {
    auto parsed = Network::parse(c.text);
    ASSERT_FALSE(parsed) << c.text;
    EXPECT_EQ(parsed.error().code, Errc::config_invalid);
    EXPECT_NE(parsed.error().message.find(c.says), std::string::npos) << c.text << ": " << parsed.error().message;
    EXPECT_NE(parsed.error().message.find(std::string("'") + c.text + "'"), std::string::npos);
  }
}

TEST(NetworkTest, KeepsItsText) { EXPECT_EQ(network("10.0.0.0/8").text(), "10.0.0.0/8"); }

}  // namespace
}  // namespace ocigate::net
