#pragma once
// Networks in CIDR notation, for the addresses ocigate trusts (server.trusted_proxies).

#include <string>
#include <string_view>

#include <boost/asio/ip/address.hpp>

#include "ocigate/common/result.hpp"

namespace ocigate::net {

// "10.0.0.0/8", "fd00::/8", or one address ("192.0.2.7" is 192.0.2.7/32). An IPv4-mapped IPv6
// address is matched as the IPv4 address it carries, so an IPv4 network also covers the peers of
// a dual-stack listener.
class Network {
 public:
  // config_invalid when the text is not an address or a network, or sets bits past its prefix
  // ("10.0.0.1/8": a typo for 10.0.0.0/8 or for 10.0.0.1/32 cannot be told apart).
  static Result<Network> parse(std::string_view text);

  bool contains(const boost::asio::ip::address& address) const;
  const std::string& text() const { return text_; }

 private:
  Network(boost::asio::ip::address base, unsigned prefix, std::string text)
      : base_(base), prefix_(prefix), text_(std::move(text)) {}

  boost::asio::ip::address base_;
  unsigned prefix_;
  std::string text_;
};

// An IPv4-mapped IPv6 address (::ffff:a.b.c.d) as the IPv4 address it carries; others unchanged.
boost::asio::ip::address unmapped(const boost::asio::ip::address& address);

}  // namespace ocigate::net
