#include "database_loader.hpp"

#include <boost/asio/post.hpp>

namespace ocigate::server {

DatabaseLoad load_database(const config::Vulnerabilities& section, const VulnerabilityData& current) {
  VulnerabilityData next;
  next.configured = true;
  next.directory = section.database;
  next.max_age = section.max_age;
  // The directory's listing is enough to tell it unchanged: a SIGHUP for a policy edit does not
  // read the zips again.
  if (current.database && current.directory == section.database) {
    auto version = vuln::version_of(section.database);
    if (version && *version == current.database->metadata().version) {
      next.database = current.database;
      return {"unchanged", std::move(next), ""};
    }
  }
  auto loaded = vuln::load(section.database);
  if (!loaded) return {"error", std::nullopt, loaded.error().message};
  next.database = std::move(*loaded);
  return {"ok", std::move(next), ""};
}

DatabaseLoader::~DatabaseLoader() {
  if (thread_.joinable()) thread_.join();
}

void DatabaseLoader::start(const std::optional<config::Vulnerabilities>& section) {
  if (thread_.joinable()) {
    queued_ = section;
    return;
  }
  if (!section) {
    done_({"ok", VulnerabilityData{}, ""});
    return;
  }
  auto current = current_();
  thread_ = std::thread([this, section = *section, current] {
    DatabaseLoad load = load_database(section, *current);
    boost::asio::post(executor_, [this, load = std::move(load)]() mutable { finish(std::move(load)); });
  });
}

// On the executor: the thread posted this as its last act, so joining it is immediate.
void DatabaseLoader::finish(DatabaseLoad load) {
  thread_.join();
  done_(std::move(load));
  if (queued_) {
    auto section = std::move(*queued_);
    queued_.reset();
    start(section);
  }
}

}  // namespace ocigate::server
