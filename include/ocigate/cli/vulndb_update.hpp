#pragma once
// `ocigate vulndb update [--config FILE]`: downloads every vulnerabilities.sources URL into the
// database directory and installs them all or none:
//   1. each source is streamed to a dot-file beside its final name ("Debian/.all.zip.part-<pid>";
//      the loader skips dot-files, so a running mirror never reads a half-written one), through
//      the upstream client (TLS verified, redirects only as upstream redirects are followed);
//   2. the staged files are verified as the mirror will read them: vuln::load on them (each zip
//      opens, every entry's CRC-32 checks, every record parses);
//   3. each is renamed over its final name, then `ocigate-vulndb.json` ({"built_at": now}) is
//      written (aside, then renamed) last.
// Any failure removes the staged files and keeps the old database. The running mirror loads the
// new one on SIGHUP (the command says so). Progress goes to stdout, errors to stderr.
// Exit 0 updated, 1 failed (the old database is kept), 2 configuration errors.

#include "ocigate/config/config.hpp"

namespace ocigate::cli {

int update_vulndb(const config::Config& config);

}  // namespace ocigate::cli
