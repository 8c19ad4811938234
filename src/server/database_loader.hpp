#pragma once
// Reloads the vulnerability database on SIGHUP without stalling an I/O thread: reading osv.dev's
// zips takes seconds, so the load runs on a thread of its own and its result is handed back on
// the executor that asked, where it is swapped in. An unchanged directory is not read again; a
// bad or half-written one is refused and the database in force stays.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include <boost/asio/any_io_executor.hpp>

#include "ocigate/config/config.hpp"
#include "ocigate/server/settings.hpp"

namespace ocigate::server {

struct DatabaseLoad {
  std::string result;               // "ok" | "unchanged" | "error"
  std::optional<VulnerabilityData> next;  // the data to put in force (not for "error")
  std::string error;                // why, for "error"
};

class DatabaseLoader {
 public:
  using Current = std::function<std::shared_ptr<const VulnerabilityData>()>;
  using Done = std::function<void(DatabaseLoad)>;
  // `current` says which database is in force when a load starts; `done` runs on `executor`, once
  // per load.
  DatabaseLoader(boost::asio::any_io_executor executor, Current current, Done done)
      : executor_(std::move(executor)), current_(std::move(current)), done_(std::move(done)) {}
  // Waits for a load in progress: its result is dropped (the executor has stopped by then).
  ~DatabaseLoader();
  DatabaseLoader(const DatabaseLoader&) = delete;
  DatabaseLoader& operator=(const DatabaseLoader&) = delete;

  // Call on the executor. Loads `section`'s database (none: it is dropped, without a thread)
  // unless it is the directory and version already in force. While a load runs, a new request
  // waits and runs after it, with the latest section.
  void start(const std::optional<config::Vulnerabilities>& section);
  bool busy() const { return thread_.joinable(); }

 private:
  void finish(DatabaseLoad load);

  boost::asio::any_io_executor executor_;
  Current current_;
  Done done_;
  std::thread thread_;
  // A request that came while a load ran: the latest one wins.
  std::optional<std::optional<config::Vulnerabilities>> queued_;
};

// The load itself (blocking), for tests: what start() computes on its thread.
DatabaseLoad load_database(const config::Vulnerabilities& section, const VulnerabilityData& current);

}  // namespace ocigate::server
