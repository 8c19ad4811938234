// Rekor (v1) transparency log entries: the SET, RFC 6962 inclusion proofs, signed checkpoints,
// and whether an entry's body is about this signature.

#include <charconv>
#include <nlohmann/json.hpp>

#include "crypto.hpp"
#include "json_fields.hpp"
#include "ocigate/signature/keyless.hpp"

namespace ocigate::signature {

using namespace detail;
using nlohmann::json;

namespace {

Status failure(std::string why) { return Error{Errc::denied, std::move(why)}; }

std::string short_hex(std::string_view raw) { return hex_encode(raw.substr(0, 4)); }

// ---- signed notes (https://pkg.go.dev/golang.org/x/mod/sumdb/note, as Rekor signs checkpoints)

struct NoteSignature {
  std::string name;
  std::string hint;  // 4 bytes
  std::string signature;
};

struct Note {
  std::string text;  // up to and including the newline before the blank line
  std::vector<NoteSignature> signatures;
};

Result<Note> split_note(std::string_view note) {
  auto split = note.rfind("\n\n");
  if (split == std::string_view::npos) return Error{Errc::denied, "the checkpoint is not a signed note (no blank line)"};
  Note out;
  out.text = std::string(note.substr(0, split + 1));
  std::string_view rest = note.substr(split + 2);
  if (rest.empty() || rest.back() != '\n') return Error{Errc::denied, "the checkpoint's signature block does not end with a newline"};
  static constexpr std::string_view dash = "\xe2\x80\x94 ";  // U+2014 EM DASH and a space
  while (!rest.empty() && out.signatures.size() < 16) {
    auto eol = rest.find('\n');
    std::string_view line = rest.substr(0, eol);
    rest.remove_prefix(eol + 1);
    if (line.substr(0, dash.size()) != dash) return Error{Errc::denied, "a checkpoint signature line does not start with an em dash"};
    line.remove_prefix(dash.size());
    auto space = line.rfind(' ');
    if (space == std::string_view::npos || space == 0) return Error{Errc::denied, "a checkpoint signature line has no key name"};
    auto raw = base64_decode(line.substr(space + 1), false);
    if (!raw || raw->size() < 5) return Error{Errc::denied, "a checkpoint signature is not base64 of a key hint and a signature"};
    out.signatures.push_back({std::string(line.substr(0, space)), raw->substr(0, 4), raw->substr(4)});
  }
  if (out.signatures.empty()) return Error{Errc::denied, "the checkpoint carries no signature"};
  return out;
}

Result<Checkpoint> parse_checkpoint_text(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    auto eol = text.find('\n');
    lines.push_back(text.substr(0, eol));
    text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
  }
  if (lines.size() < 3 || lines[0].empty()) return Error{Errc::denied, "the checkpoint has no origin, size and root hash lines"};
  Checkpoint out;
  out.origin = std::string(lines[0]);
  auto [end, ec] = std::from_chars(lines[1].data(), lines[1].data() + lines[1].size(), out.size);
  if (lines[1].empty() || ec != std::errc{} || end != lines[1].data() + lines[1].size()) {
    return Error{Errc::denied, "the checkpoint's tree size is not a number"};
  }
  auto root = base64_decode(lines[2], false);
  if (!root || root->size() != 32) return Error{Errc::denied, "the checkpoint's root hash is not 32 bytes of base64"};
  out.root_hash = *root;
  return out;
}

// ---- entry bodies, as Rekor canonicalizes them

// A verifier field: base64 of a PEM certificate (or key). Equal when it is our certificate.
bool names_certificate(const std::string& b64_pem, std::string_view certificate) {
  auto pem = base64_decode(b64_pem, false);
  if (!pem) return false;
  auto certs = parse_pem_certificates(*pem);
  return certs && !certs->empty() && certs->front() == certificate;
}

bool sha256_hex_is(const json& hash, std::string_view data) {
  if (!hash.is_object() || text_at(hash, {"algorithm"}) != "sha256") return false;
  return text_at(hash, {"value"}) == hex_encode(sha256_raw(data));
}

Status match_hashedrekord(const json& spec, const KeylessClaim& claim, std::string_view signature) {
  if (claim.content != KeylessClaim::Content::message) return failure("a hashedrekord entry for a DSSE signature");
  const json* hash = at(spec, {"data", "hash"});
  if (!hash || !sha256_hex_is(*hash, claim.payload)) return failure("the entry's data hash is not the SHA-256 of this payload");
  auto sig = base64_decode(text_at(spec, {"signature", "content"}), false);
  if (!sig || *sig != signature) return failure("the entry's signature is not this signature");
  if (!names_certificate(text_at(spec, {"signature", "publicKey", "content"}), claim.certificate)) {
    return failure("the entry's certificate is not this signature's certificate");
  }
  return ok_status();
}

// intoto 0.0.2 stores each signature base64 twice (a base64 field holding the base64 text).
Status match_intoto(const json& spec, const KeylessClaim& claim, std::string_view signature) {
  if (claim.content != KeylessClaim::Content::dsse) return failure("an intoto entry for a non-DSSE signature");
  const json* payload_hash = at(spec, {"content", "payloadHash"});
  if (!payload_hash || !sha256_hex_is(*payload_hash, claim.payload)) {
    return failure("the entry's payloadHash is not the SHA-256 of this DSSE payload");
  }
  const json* sigs = at(spec, {"content", "envelope", "signatures"});
  if (!sigs || !sigs->is_array()) return failure("the intoto entry has no signatures");
  bool signature_seen = false;
  for (const auto& s : *sigs) {
    auto once = base64_decode(text_at(s, {"sig"}), false);
    auto sig = once ? base64_decode(*once, false) : std::nullopt;
    if (!sig || *sig != signature) continue;
    signature_seen = true;
    if (names_certificate(text_at(s, {"publicKey"}), claim.certificate)) return ok_status();
  }
  return failure(signature_seen ? "the entry's certificate is not this signature's certificate"
                                : "the entry's signatures do not include this signature");
}

Status match_dsse(const json& spec, const KeylessClaim& claim, std::string_view signature) {
  if (claim.content != KeylessClaim::Content::dsse) return failure("a dsse entry for a non-DSSE signature");
  const json* payload_hash = at(spec, {"payloadHash"});
  if (!payload_hash || !sha256_hex_is(*payload_hash, claim.payload)) {
    return failure("the entry's payloadHash is not the SHA-256 of this DSSE payload");
  }
  const json* sigs = at(spec, {"signatures"});
  if (!sigs || !sigs->is_array()) return failure("the dsse entry has no signatures");
  bool signature_seen = false;
  for (const auto& s : *sigs) {
    auto sig = base64_decode(text_at(s, {"signature"}), false);
    if (!sig || *sig != signature) continue;
    signature_seen = true;
    if (names_certificate(text_at(s, {"verifier"}), claim.certificate)) return ok_status();
  }
  return failure(signature_seen ? "the entry's certificate is not this signature's certificate"
                                : "the entry's signatures do not include this signature");
}

}  // namespace

std::string merkle_leaf_hash(std::string_view data) {
  std::string buf(1, '\0');
  buf.append(data);
  return sha256_raw(buf);
}

std::string merkle_node_hash(std::string_view left, std::string_view right) {
  std::string buf(1, '\1');
  buf.append(left);
  buf.append(right);
  return sha256_raw(buf);
}

bool verify_inclusion(std::uint64_t index, std::uint64_t size, std::string_view leaf_hash,
                      const std::vector<std::string>& proof, std::string_view root) {
  if (index >= size || leaf_hash.size() != 32 || root.size() != 32) return false;
  std::uint64_t fn = index, sn = size - 1;
  std::string r(leaf_hash);
  for (const auto& p : proof) {
    if (sn == 0 || p.size() != 32) return false;
    if ((fn & 1) || fn == sn) {
      r = merkle_node_hash(p, r);
      if (!(fn & 1)) {
        while (!(fn & 1) && fn != 0) {
          fn >>= 1;
          sn >>= 1;
        }
      }
    } else {
      r = merkle_node_hash(r, p);
    }
    fn >>= 1;
    sn >>= 1;
  }
  return sn == 0 && r == root;
}

Result<Checkpoint> verify_checkpoint(std::string_view signed_note, const TransparencyLog& log) {
  auto note = split_note(signed_note);
  if (!note) return note.error();
  // Rekor's key hint: the first 4 bytes of SHA-256 over the log key's DER (its log id).
  std::string hint = sha256_raw(spki_der(log.key.pkey.get())).substr(0, 4);
  const NoteSignature* signed_by_log = nullptr;
  for (const auto& s : note->signatures) {
    if (s.hint == hint) signed_by_log = &s;
  }
  if (!signed_by_log) {
    return Error{Errc::denied, "no checkpoint signature carries the key hint " + short_hex(hint) + " of log " + log.base_url +
                                   " (hint " + short_hex(note->signatures.front().hint) + " instead)"};
  }
  if (!verify_raw(log.key.pkey.get(), log.md, RsaPadding::none, 0, note->text, signed_by_log->signature)) {
    return Error{Errc::denied, "the checkpoint signature does not verify with the key of log " + log.base_url};
  }
  return parse_checkpoint_text(note->text);
}

std::string set_payload(const TlogEntry& entry) {
  std::string body;
  // The body is base64 and the log id hex: no character needs escaping, keys are already in
  // RFC 8785 order (UTF-16 code unit order equals byte order for ASCII), integers print plainly.
  json payload = json::object();
  payload["body"] = base64_encode(entry.body);
  payload["integratedTime"] = entry.integrated_time;
  payload["logID"] = hex_encode(entry.log_id);
  payload["logIndex"] = entry.log_index;
  return payload.dump();
}

Status verify_tlog_entry(const TlogEntry& entry, const TransparencyLog& log) {
  if (entry.signed_entry_timestamp.empty()) {
    return failure("the entry has no signed entry timestamp (SET), so its integratedTime is unverified "
                   "(Rekor v2 entries need a timestamp authority, which ocigate does not verify)");
  }
  if (!verify_raw(log.key.pkey.get(), log.md, RsaPadding::none, 0, set_payload(entry), entry.signed_entry_timestamp)) {
    return failure("the SET does not verify with the key of log " + log.base_url +
                   " (body, integratedTime, logIndex or logID changed)");
  }
  auto when = epoch_seconds(entry.integrated_time);
  if (!when || !log.valid_for.contains(*when)) {
    return failure("integratedTime " + (when ? utc_text(*when) : std::to_string(entry.integrated_time)) +
                   " is outside the validity of log " + log.base_url + " (" + log.valid_for.text() + ")");
  }
  if (!entry.proof) return ok_status();
  const InclusionProof& proof = *entry.proof;
  if (proof.log_index < 0 || proof.tree_size <= 0 ||
      !verify_inclusion(static_cast<std::uint64_t>(proof.log_index), static_cast<std::uint64_t>(proof.tree_size),
                        merkle_leaf_hash(entry.body), proof.hashes, proof.root_hash)) {
    return failure("the inclusion proof does not lead from this entry (index " + std::to_string(proof.log_index) +
                   " of " + std::to_string(proof.tree_size) + ") to its root hash");
  }
  auto checkpoint = verify_checkpoint(proof.checkpoint, log);
  if (!checkpoint) return failure(checkpoint.error().message);
  if (checkpoint->root_hash != proof.root_hash || checkpoint->size != static_cast<std::uint64_t>(proof.tree_size)) {
    return failure("the signed checkpoint (size " + std::to_string(checkpoint->size) +
                   ") is not the tree the inclusion proof is for (size " + std::to_string(proof.tree_size) + ")" +
                   (checkpoint->root_hash != proof.root_hash ? ": root hashes differ" : ""));
  }
  return ok_status();
}

Status match_entry_body(const TlogEntry& entry, const KeylessClaim& claim, std::string_view signature) {
  json body = json::parse(entry.body.begin(), entry.body.end(), nullptr, false);
  if (!body.is_object()) return failure("the entry body is not JSON");
  std::string kind = text_at(body, {"kind"});
  std::string version = text_at(body, {"apiVersion"});
  if (!entry.kind.empty() && (entry.kind != kind || (!entry.version.empty() && entry.version != version))) {
    return failure("the entry's kindVersion (" + entry.kind + " " + entry.version + ") is not its body's (" + kind + " " + version + ")");
  }
  const json* spec = at(body, {"spec"});
  if (!spec || !spec->is_object()) return failure("the entry body has no spec");
  if (kind == "hashedrekord" && version == "0.0.1") return match_hashedrekord(*spec, claim, signature);
  if (kind == "intoto" && version == "0.0.2") return match_intoto(*spec, claim, signature);
  if (kind == "dsse" && version == "0.0.1") return match_dsse(*spec, claim, signature);
  return Error{Errc::unsupported, "entry kind " + kind + " " + version + " is not supported (hashedrekord 0.0.1, intoto 0.0.2, dsse 0.0.1)"};
}

}  // namespace ocigate::signature
