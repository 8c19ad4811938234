#pragma once
// Block events for people (notify.webhooks): what the pull flows and a reload tell the webhooks.
// Process-wide, as the log is: a verdict, a digest mismatch deep in a blob fetch and a refused
// reload publish from wherever they happen, and App installs the notifier at start and swaps it
// on SIGHUP. Publishing never waits on the network: the event is copied into the notifier's
// bounded queues (or dropped and counted there) under a short lock. With nothing installed (tests,
// `ocigate check`) it is a no-op.

#include <chrono>
#include <memory>
#include <string>

#include "ocigate/notify/notifier.hpp"
#include "ocigate/policy/engine.hpp"

namespace ocigate::server::notices {

// Puts next in force (nullptr: nobody is told) with the instance name every event carries, and
// hands back the one it replaces: its destructor may wait for a name lookup, so the caller ends it
// off the I/O threads. next's webhooks keep what the replaced one's sent to the same URLs, so
// repeats held back before the swap stay held back (notify::Notifier::remember_sent_by).
std::unique_ptr<notify::Notifier> install(std::unique_ptr<notify::Notifier> next, std::string instance);

// A decision as audited: block and warn are events (audit mode's softened blocks are warn), allow
// is not. Each audited pull is one event, whether its verdict was reached now or cached.
void verdict(const policy::Verdict& verdict, const std::string& client);
// An upstream served bytes that do not hash to the digest asked for (manifest or blob).
void digest_mismatch(const std::string& upstream, const std::string& repository, const std::string& digest,
                     const std::string& actual);
// A SIGHUP reload was refused; the previous policy stays in force.
void reload_failed(const std::string& error);

// Waits up to timeout for the notifier in force to send what it holds; true if it did (or there is none).
bool flush(std::chrono::milliseconds timeout);

}  // namespace ocigate::server::notices
