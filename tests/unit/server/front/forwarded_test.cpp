#include "front/forwarded.hpp"

#include <gtest/gtest.h>

namespace ocigate::server {
namespace {

std::vector<net::Network> networks(std::initializer_list<const char*> texts) {
  std::vector<net::Network> out;
  for (const char* text : texts) out.push_back(*net::Network::parse(text));
  return out;
}

Request with_forwarded(std::initializer_list<const char*> lines) {
  Request request{http::verb::get, "/v2/", 11};
  for (const char* line : lines) request.insert("X-Forwarded-For", line);
  return request;
}

const auto lb = networks({"10.0.0.0/8", "fd00::/8"});

TEST(ForwardedClient, FromATrustedProxyTheClientItNames) {
  EXPECT_EQ(forwarded_client(lb, "10.0.0.5", with_forwarded({"203.0.113.7"})), "203.0.113.7");
  EXPECT_EQ(forwarded_client(lb, "fd00::5", with_forwarded({"2001:db8::7"})), "2001:db8::7");
  EXPECT_EQ(forwarded_client(lb, "::ffff:10.0.0.5", with_forwarded({"203.0.113.7"})), "203.0.113.7");
}

TEST(ForwardedClient, FromAnyOtherPeerTheHeaderIsIgnored) {
  EXPECT_EQ(forwarded_client(lb, "198.51.100.9", with_forwarded({"203.0.113.7"})), "198.51.100.9");
  EXPECT_EQ(forwarded_client({}, "10.0.0.5", with_forwarded({"203.0.113.7"})), "10.0.0.5");
  EXPECT_EQ(forwarded_client(lb, "unknown", with_forwarded({"203.0.113.7"})), "unknown");
}

TEST(ForwardedClient, TheLastUntrustedHopWinsNotWhatTheClientWroteBeforeIt) {
  // The client sent "X-Forwarded-For: 1.2.3.4" itself; the first proxy appended the address it saw,
  // a second trusted proxy appended the first's.
  EXPECT_EQ(forwarded_client(lb, "10.0.0.5", with_forwarded({"1.2.3.4, 203.0.113.7, 10.0.0.9"})), "203.0.113.7");
  // Several header lines are one list, in order.
  EXPECT_EQ(forwarded_client(lb, "10.0.0.5", with_forwarded({"1.2.3.4", "203.0.113.7,10.0.0.9"})), "203.0.113.7");
}

TEST(ForwardedClient, WhenEveryHopIsTrustedTheFarthestIsTheClient) {
  EXPECT_EQ(forwarded_client(lb, "10.0.0.5", with_forwarded({"10.1.1.1, 10.0.0.9"})), "10.1.1.1");
}

TEST(ForwardedClient, WithoutTheHeaderThePeerIsTheClient) {
  EXPECT_EQ(forwarded_client(lb, "10.0.0.5", with_forwarded({})), "10.0.0.5");
  EXPECT_EQ(forwarded_client(lb, "10.0.0.5", with_forwarded({" "})), "10.0.0.5");
}

TEST(ForwardedClient, PortsAndBracketsAreDropped) {
  EXPECT_EQ(forwarded_client(lb, "10.0.0.5", with_forwarded({"203.0.113.7:51234"})), "203.0.113.7");
  EXPECT_EQ(forwarded_client(lb, "10.0.0.5", with_forwarded({"[2001:db8::7]:443"})), "2001:db8::7");
  EXPECT_EQ(forwarded_client(lb, "10.0.0.5", with_forwarded({"[2001:db8::7]"})), "2001:db8::7");
}

TEST(ForwardedClient, AnEntryThatIsNotAnAddressStopsAtTheTrustedHopRightOfIt) {
  EXPECT_EQ(forwarded_client(lb, "10.0.0.5", with_forwarded({"unknown"})), "10.0.0.5");
  EXPECT_EQ(forwarded_client(lb, "10.0.0.5", with_forwarded({"203.0.113.7, garbage, 10.0.0.9"})), "10.0.0.9");
  EXPECT_EQ(forwarded_client(lb, "10.0.0.5", with_forwarded({"203.0.113.7,,10.0.0.9"})), "10.0.0.9");
  EXPECT_EQ(forwarded_client(lb, "10.0.0.5", with_forwarded({"[2001:db8::7"})), "10.0.0.5");
  EXPECT_EQ(forwarded_client(lb, "10.0.0.5", with_forwarded({"203.0.113.7; DROP TABLE"})), "10.0.0.5");
}

TEST(ForwardedClient, TrustedPeer) {
  EXPECT_TRUE(trusted_peer(lb, "10.200.0.1"));
  EXPECT_TRUE(trusted_peer(lb, "::ffff:10.200.0.1"));
  EXPECT_FALSE(trusted_peer(lb, "11.0.0.1"));
  EXPECT_FALSE(trusted_peer(lb, "unknown"));
  EXPECT_FALSE(trusted_peer({}, "10.200.0.1"));
}

}  // namespace
}  // namespace ocigate::server
