#pragma once
// JSON-lines logging: the event log (stderr) and the access log (one line per request).
// Thread-safe. Never pass credentials or tokens in fields.

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace ocigate::server::log {

enum class Level { debug, info, warn, error };

// level: debug|info|warn|error; access_log and audit_log: "-" stdout, "off", or a file path
// (appended). Returns false with a message when a log file cannot be opened.
bool configure(std::string_view level, const std::string& access_log, const std::string& audit_log,
               std::string& error);

void event(Level level, std::string_view message, nlohmann::json fields = nlohmann::json::object());
inline void debug(std::string_view m, nlohmann::json f = nlohmann::json::object()) { event(Level::debug, m, std::move(f)); }
inline void info(std::string_view m, nlohmann::json f = nlohmann::json::object()) { event(Level::info, m, std::move(f)); }
inline void warn(std::string_view m, nlohmann::json f = nlohmann::json::object()) { event(Level::warn, m, std::move(f)); }
inline void error(std::string_view m, nlohmann::json f = nlohmann::json::object()) { event(Level::error, m, std::move(f)); }

// The replica's name (server.instance), added to every access and audit line.
void set_instance(const std::string& instance);

void access(const nlohmann::json& line);
// Policy decisions: one JSON line each, "log":"audit".
void audit(const nlohmann::json& line);

}  // namespace ocigate::server::log
