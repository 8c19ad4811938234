#pragma once
// Where an upstream redirect may lead. A registry may send blob GETs to a CDN; it must not be able
// to point ocigate at the machine it runs on or the network behind it (SSRF), so the resolved
// addresses of a redirect target are checked, not just its name.

#include <boost/asio/ip/address.hpp>

namespace ocigate::upstream {

// Loopback, link-local (169.254/16 with cloud metadata, fe80::/10), private (10/8, 172.16/12,
// 192.168/16, fc00::/7), carrier-grade NAT (100.64/10), unspecified, multicast, broadcast and other
// reserved ranges; IPv4-mapped IPv6 is judged as the IPv4 address it carries.
bool is_internal_address(const boost::asio::ip::address& address);

}  // namespace ocigate::upstream
