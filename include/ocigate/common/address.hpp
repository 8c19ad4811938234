#pragma once
// What kind of address ocigate is about to connect to, for every place that must not be pointed at
// the machine it runs on or the network behind it (SSRF): upstream redirects (a registry may send
// blob GETs to a CDN), webhooks, vulnerability database sources. Resolved addresses are checked,
// not just names.

#include <cstdint>
#include <string_view>

#include <boost/asio/ip/address.hpp>

namespace ocigate::net {

// The kinds of address a redirect is judged by. IPv4-mapped and NAT64 (64:ff9b::/96) IPv6 are
// judged as the IPv4 address they carry.
enum class AddressClass : std::uint8_t {
  global,           // anything below does not apply: the public internet
  loopback,         // 127/8, ::1
  link_local,       // 169.254/16 (cloud metadata 169.254.169.254), fe80::/10
  private_network,  // 10/8, 172.16/12, 192.168/16, 100.64/10 (CGNAT), fc00::/7, fec0::/10
  special,          // 0/8 and ::, multicast, 240/4 and broadcast, 192.0.0/24, 198.18/15
};

AddressClass classify_address(const boost::asio::ip::address& address);
std::string_view class_name(AddressClass address_class);  // "loopback", "link-local", ...

// Not global: loopback, link-local, private or special.
bool is_internal_address(const boost::asio::ip::address& address);

// A host (an address literal, or "localhost") that is this machine.
bool is_loopback_host(std::string_view host);

// The classes an upstream's own addresses fall in, as a set of bits.
constexpr std::uint8_t class_bit(AddressClass address_class) {
  return static_cast<std::uint8_t>(1u << static_cast<unsigned>(address_class));
}

// May an upstream whose own addresses fall in home_classes redirect to an address of class target?
// Global addresses always; loopback, link-local and private ones only when the upstream itself has
// an address of that same class (a registry on 127.0.0.1 may hand off to another loopback port,
// never to 169.254.169.254 or the 10/8 network behind it); special addresses never.
bool redirect_allowed(AddressClass target, std::uint8_t home_classes);

}  // namespace ocigate::net
