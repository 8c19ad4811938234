#pragma once
// Who a request comes from when a load balancer stands in front (server.trusted_proxies).

#include <string>
#include <vector>

#include "ocigate/common/network.hpp"
#include "front/front_door.hpp"

namespace ocigate::server {

// Is the connection's peer address one of the trusted proxies?
bool trusted_peer(const std::vector<net::Network>& trusted, const std::string& peer);

// The client a request comes from. peer: the connection's address. From a trusted proxy, the
// client is the last X-Forwarded-For address that is not itself trusted: each proxy appends the
// address it got the request from, so the addresses right of that one were written by proxies we
// trust, and anything left of it may be made up by the client. An entry that is not an address
// stops the walk at the trusted hop right of it. From any other peer the header is ignored.
std::string forwarded_client(const std::vector<net::Network>& trusted, const std::string& peer, const Request& request);

}  // namespace ocigate::server
