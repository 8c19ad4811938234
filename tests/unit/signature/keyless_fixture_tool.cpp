// Signs payloads keyless with a fresh Sigstore stand-in (keyless_fixtures.hpp), for integration
// tests that push cosign signatures and attestations to a loopback registry.
//
//   keyless_fixture_tool <spec.json> <out-dir>
//
// spec.json:
//   {"sign":   [{"name": "app", "payload": "<simplesigning JSON>", "subject": "...", "issuer": "...",
//                "san": "uri|email|username"}],
//    "attest": [{"name": "prov", "statement": "<in-toto statement JSON>", "subject": "...", "issuer": "..."}]}
// Writes <out-dir>/trusted_root.json (trusting this run's CA, CT log and Rekor) and
// <out-dir>/signatures.json:
//   {"app":  {"media_type": "application/vnd.dev.cosign.simplesigning.v1+json", "blob": "<payload>",
//             "annotations": {signature, certificate, chain, bundle}},      <- one .sig layer
//    "prov": {"media_type": "application/vnd.dsse.envelope.v1+json", "blob": "<DSSE envelope>",
//             "annotations": {...}, "bundle": "<sigstore bundle v0.3 JSON>"}}  <- one .att layer, or a referrer
// Every signature is logged at the current time in one Rekor tree, with an inclusion proof.

#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "keyless_fixtures.hpp"

namespace {

using namespace ocigate::signature::test;
using nlohmann::json;

SignOptions options_of(const json& item) {
  SignOptions o;
  o.subject = item.value("subject", o.subject);
  o.issuer = item.value("issuer", o.issuer);
  std::string san = item.value("san", std::string("uri"));
  o.san = san == "email" ? SignOptions::San::email : san == "username" ? SignOptions::San::username : SignOptions::San::uri;
  return o;
}

json annotations_json(const std::map<std::string, std::string>& annotations) {
  json out = json::object();
  for (const auto& [k, v] : annotations) out[k] = v;
  return out;
}

int run(const std::filesystem::path& spec_path, const std::filesystem::path& out_dir) {
  std::ifstream in(spec_path);
  json spec = json::parse(std::string(std::istreambuf_iterator<char>(in), {}), nullptr, false);
  if (!spec.is_object()) {
    std::cerr << "keyless_fixture_tool: " << spec_path << " is not a JSON object\n";
    return 1;
  }
  KeylessFixtures fixtures;
  json out = json::object();
  for (const auto& item : spec.value("sign", json::array())) {
    auto m = fixtures.sign_message(item.at("payload").get<std::string>(), options_of(item));
    out[item.at("name").get<std::string>()] = {
        {"media_type", "application/vnd.dev.cosign.simplesigning.v1+json"}, {"blob", m.payload}, {"annotations", annotations_json(m.annotations())}};
  }
  for (const auto& item : spec.value("attest", json::array())) {
    auto d = fixtures.sign_dsse(item.at("statement").get<std::string>(), options_of(item));
    out[item.at("name").get<std::string>()] = {{"media_type", "application/vnd.dsse.envelope.v1+json"},
                                                {"blob", d.envelope},
                                                {"annotations", annotations_json(d.annotations())},
                                                {"bundle", d.bundle()}};
  }
  std::filesystem::create_directories(out_dir);
  std::ofstream(out_dir / "trusted_root.json") << fixtures.trusted_root_json();
  std::ofstream(out_dir / "signatures.json") << out.dump(2);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: keyless_fixture_tool <spec.json> <out-dir>\n";
    return 2;
  }
  try {
    return run(argv[1], argv[2]);
  } catch (const std::exception& e) {
    std::cerr << "keyless_fixture_tool: " << e.what() << "\n";
    return 1;
  }
}
