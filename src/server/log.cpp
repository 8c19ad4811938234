#include "ocigate/server/log.hpp"
#include "ocigate/common/timestamp.hpp"

#include <chrono>
#include <cstdio>
#include <mutex>

namespace ocigate::server::log {

namespace {

std::mutex mutex;
Level min_level = Level::info;
std::FILE* access_file = stdout;  // nullptr = off
std::FILE* audit_file = stdout;   // nullptr = off
std::string instance_name;        // set once at start, before any line is written

// "-" stdout, "off" nullptr, else the file opened for appending. A file opened by an earlier call
// is closed first.
bool open_log(const std::string& spec, std::FILE*& out, std::string& error) {
  {
    std::lock_guard lock(mutex);
    if (out && out != stdout) std::fclose(out);
    out = nullptr;
  }
  if (spec == "-") {
    out = stdout;
  } else if (spec == "off") {
    out = nullptr;
  } else {
    out = std::fopen(spec.c_str(), "a");
    if (!out) {
      error = "cannot open log file " + spec;
      return false;
    }
  }
  return true;
}

std::string now_iso8601() { return iso8601_millis(std::chrono::system_clock::now()); }

const char* level_name(Level level) {
  switch (level) {
    case Level::debug: return "debug";
    case Level::info: return "info";
    case Level::warn: return "warn";
    case Level::error: return "error";
  }
  return "info";
}

void write_line(std::FILE* out, const nlohmann::json& line) {
  std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  text.push_back('\n');
  std::lock_guard lock(mutex);
  std::fwrite(text.data(), 1, text.size(), out);
  std::fflush(out);
}

}  // namespace

bool configure(std::string_view level, const std::string& access_log, const std::string& audit_log,
               std::string& error) {
  if (level == "debug") min_level = Level::debug;
  else if (level == "warn") min_level = Level::warn;
  else if (level == "error") min_level = Level::error;
  else min_level = Level::info;
  return open_log(access_log, access_file, error) && open_log(audit_log, audit_file, error);
}

void event(Level level, std::string_view message, nlohmann::json fields) {
  if (level < min_level) return;
  nlohmann::json line = {{"time", now_iso8601()}, {"level", level_name(level)}, {"msg", message}};
  if (fields.is_object()) line.update(fields);
  write_line(stderr, line);
}

void set_instance(const std::string& instance) { instance_name = instance; }

void audit(const nlohmann::json& line) {
  if (!audit_file) return;
  nlohmann::json out = {{"time", now_iso8601()}};
  if (!instance_name.empty()) out["instance"] = instance_name;
  out.update(line);
  write_line(audit_file, out);
}

void access(const nlohmann::json& line) {
  if (!access_file) return;
  nlohmann::json out = {{"time", now_iso8601()}, {"log", "access"}};
  if (!instance_name.empty()) out["instance"] = instance_name;
  out.update(line);
  write_line(access_file, out);
}

}  // namespace ocigate::server::log
