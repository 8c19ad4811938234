#include "ocigate/common/address.hpp"

#include <cstdint>

#include <boost/algorithm/string/predicate.hpp>

namespace ocigate::net {

namespace {

AddressClass classify_v4(const boost::asio::ip::address_v4& address) {
  const std::uint32_t a = address.to_uint();
  auto in = [a](std::uint32_t network, int bits) {
    const std::uint32_t mask = bits == 0 ? 0 : ~std::uint32_t{0} << (32 - bits);
    return (a & mask) == network;
  };
  if (in(0x7f000000, 8)) return AddressClass::loopback;
  if (in(0xa9fe0000, 16)) return AddressClass::link_local;  // cloud metadata 169.254.169.254
  if (in(0x0a000000, 8) ||                                  // 10/8
      in(0xac100000, 12) ||                                 // 172.16/12
      in(0xc0a80000, 16) ||                                 // 192.168/16
      in(0x64400000, 10)) {                                 // 100.64/10 carrier-grade NAT
    return AddressClass::private_network;
  }
  if (in(0x00000000, 8) ||   // 0.0.0.0/8 "this network" (0.0.0.0 reaches the local host on Linux)
      in(0xc0000000, 24) ||  // 192.0.0/24 IETF protocol assignments
      in(0xc6120000, 15) ||  // 198.18/15 benchmarking
      in(0xe0000000, 4) ||   // multicast
      in(0xf0000000, 4)) {   // reserved and broadcast
    return AddressClass::special;
  }
  return AddressClass::global;
}

}  // namespace

AddressClass classify_address(const boost::asio::ip::address& address) {
  if (address.is_v4()) return classify_v4(address.to_v4());
  const auto v6 = address.to_v6();
  if (v6.is_v4_mapped()) return classify_v4(boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, v6));
  if (v6.is_loopback()) return AddressClass::loopback;
  if (v6.is_link_local()) return AddressClass::link_local;
  if (v6.is_unspecified() || v6.is_multicast()) return AddressClass::special;
  const auto bytes = v6.to_bytes();
  if (v6.is_site_local() || (bytes[0] & 0xfe) == 0xfc) return AddressClass::private_network;  // fec0::/10, fc00::/7
  // 64:ff9b::/96 (NAT64) carries an IPv4 address in its last four bytes: judge that one.
  bool nat64 = bytes[0] == 0x00 && bytes[1] == 0x64 && bytes[2] == 0xff && bytes[3] == 0x9b;
  for (int i = 4; i < 12; ++i) nat64 = nat64 && bytes[i] == 0;
  if (nat64) {
    const boost::asio::ip::address_v4::bytes_type v4{bytes[12], bytes[13], bytes[14], bytes[15]};
    return classify_v4(boost::asio::ip::address_v4(v4));
  }
  return AddressClass::global;
}

std::string_view class_name(AddressClass address_class) {
  switch (address_class) {
    case AddressClass::global: return "global";
    case AddressClass::loopback: return "loopback";
    case AddressClass::link_local: return "link-local";
    case AddressClass::private_network: return "private";
    case AddressClass::special: return "special-purpose";
  }
  return "unknown";
}

bool is_internal_address(const boost::asio::ip::address& address) {
  return classify_address(address) != AddressClass::global;
}

bool is_loopback_host(std::string_view host) {
  if (boost::algorithm::iequals(host, "localhost")) return true;
  boost::system::error_code ec;
  auto address = boost::asio::ip::make_address(host, ec);
  return !ec && classify_address(address) == AddressClass::loopback;
}

bool redirect_allowed(AddressClass target, std::uint8_t home_classes) {
  if (target == AddressClass::global) return true;
  if (target == AddressClass::special) return false;
  return (home_classes & class_bit(target)) != 0;
}

}  // namespace ocigate::net
