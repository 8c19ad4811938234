"""Keyless (Sigstore) signatures at pull time, end to end: a Sigstore stand-in made with OpenSSL
(keyless_fixture_tool: its own Fulcio CAs, CT log and Rekor, and the trusted_root.json naming them)
signs images in a real docker-registry the cosign way (`.sig` layer with certificate, chain and
Rekor bundle annotations); ocigate verifies them offline before it serves the image: the release
workflow's signature pulls, another workflow's is blocked as a wrong identity, an unsigned image is
blocked, and the verdict names identity, issuer, log index and signing time. With the provenance
check on, an image whose `.att` attestation (signed by the release workflow) says it was built by
our builder from our repository pulls; one built elsewhere is blocked naming the field."""

import json
import os
import shutil
import subprocess
import tempfile
import unittest

import harness
from harness import request
from test_policy import ALL_OFF

ACCEPT = {"Accept": harness.ALL_MANIFESTS}
ISSUER = "https://token.actions.githubusercontent.com"
RELEASE = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.0.0"
OTHER = "https://github.com/acme/app/.github/workflows/nightly.yml@refs/heads/main"
BUILDER = "https://github.com/actions/runner/github-hosted"
SOURCE = "https://github.com/acme/app"


def setUpModule():
    if not os.environ.get("OCIGATE_BIN") or not os.environ.get("KEYLESS_FIXTURE_TOOL"):
        raise unittest.SkipTest("OCIGATE_BIN or KEYLESS_FIXTURE_TOOL is not set (run through ctest)")


def simplesigning(repo, digest):
    return json.dumps({"critical": {"identity": {"docker-reference": f"example.test/{repo}"},
                                    "image": {"docker-manifest-digest": digest},
                                    "type": "cosign container image signature"},
                       "optional": None})


def sign_keyless(directory, items, attestations=()):
    """Runs keyless_fixture_tool over [(name, payload, subject)] and [(name, in-toto statement,
    subject)]; returns the signatures by name."""
    spec = {"sign": [{"name": n, "payload": p, "subject": s, "issuer": ISSUER} for n, p, s in items],
            "attest": [{"name": n, "statement": st, "subject": s, "issuer": ISSUER} for n, st, s in attestations]}
    spec_path = os.path.join(directory, "spec.json")
    with open(spec_path, "w") as f:
        json.dump(spec, f)
    subprocess.run([os.environ["KEYLESS_FIXTURE_TOOL"], spec_path, directory], check=True, capture_output=True,
                   timeout=60)
    with open(os.path.join(directory, "signatures.json")) as f:
        return json.load(f)


def slsa_v1(digest, builder, repository):
    """An in-toto statement of SLSA provenance v1 for digest, as actions/attest-build-provenance writes it."""
    return json.dumps({"_type": "https://in-toto.io/Statement/v1",
                       "subject": [{"name": "image", "digest": {"sha256": digest.split(":")[1]}}],
                       "predicateType": "https://slsa.dev/provenance/v1",
                       "predicate": {"buildDefinition": {"buildType": "https://actions.github.io/buildtypes/workflow/v1",
                                                         "externalParameters": {"workflow": {"repository": repository,
                                                                                             "path": ".github/workflows/release.yml",
                                                                                             "ref": "refs/tags/v1.0.0"}}},
                                     "runDetails": {"builder": {"id": builder}}}})


def push_signature(registry, repo, digest, signature, suffix=".sig"):
    """Pushes one signed layer at the cosign tag of digest: sha256-<hex>.sig, or .att for an
    attestation from sign_keyless's "attest" items (whose "bundle" can go to the referrers instead)."""
    blob = signature["blob"].encode()
    layer = registry.push_blob(repo, blob)
    config = b"{}"
    config_digest = registry.push_blob(repo, config)
    manifest = {"schemaVersion": 2, "mediaType": harness.OCI_MANIFEST,
                "config": {"mediaType": harness.OCI_CONFIG, "digest": config_digest, "size": len(config)},
                "layers": [{"mediaType": signature["media_type"], "digest": layer, "size": len(blob),
                            "annotations": signature["annotations"]}]}
    tag = "sha256-" + digest.split(":")[1] + suffix
    registry.push_manifest(repo, tag, json.dumps(manifest).encode(), harness.OCI_MANIFEST)


class Keyless(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="ocigate-keyless-")
        cls.registry = harness.Registry().start()
        r = cls.registry
        user = {"config": {"User": "1000"}}
        cls.released = harness.push_image(r, "acme/released", "v1", config_overrides=user)
        cls.nightly = harness.push_image(r, "acme/nightly", "v1", config_overrides=user)
        cls.unsigned = harness.push_image(r, "acme/unsigned", "v1", config_overrides=user)
        cls.ours = harness.push_image(r, "acme/ours", "v1", config_overrides=user)
        cls.theirs = harness.push_image(r, "acme/theirs", "v1", config_overrides=user)
        signatures = sign_keyless(cls.dir, [
            ("released", simplesigning("acme/released", cls.released.digest), RELEASE),
            ("nightly", simplesigning("acme/nightly", cls.nightly.digest), OTHER),
            ("ours", simplesigning("acme/ours", cls.ours.digest), RELEASE),
            ("theirs", simplesigning("acme/theirs", cls.theirs.digest), RELEASE),
        ], attestations=[
            ("ours.att", slsa_v1(cls.ours.digest, BUILDER, SOURCE), RELEASE),
            ("theirs.att", slsa_v1(cls.theirs.digest, "https://ci.example/evil-builder", SOURCE), RELEASE),
        ])
        push_signature(r, "acme/released", cls.released.digest, signatures["released"])
        push_signature(r, "acme/nightly", cls.nightly.digest, signatures["nightly"])
        for repo, image in (("acme/ours", cls.ours), ("acme/theirs", cls.theirs)):
            name = repo.split("/")[1]
            push_signature(r, repo, image.digest, signatures[name])
            push_signature(r, repo, image.digest, signatures[name + ".att"], suffix=".att")
        cls.trusted_root = os.path.join(cls.dir, "trusted_root.json")

    @classmethod
    def tearDownClass(cls):
        cls.registry.__exit__(None, None, None)
        shutil.rmtree(cls.dir, True)

    def gate(self, provenance=None):
        identity = {"issuer": ISSUER,
                    "subject_regexp": r"https://github\.com/acme/[^/]+/\.github/workflows/release\.yml@refs/tags/v.*"}
        checks = dict(ALL_OFF, signature="block", provenance="block" if provenance else "off")
        entry = {"match": "up/acme/**", "cosign": {"keyless": {"trusted_root": self.trusted_root, "identities": [identity]}}}
        if provenance:
            entry["provenance"] = provenance
        policy = {"mode": "enforce", "checks": checks, "trust": [entry]}
        gate = harness.Ocigate([{"name": "up", "url": self.registry.url}], default_upstream="up",
                               extra={"policy": policy}).start()
        self.addCleanup(gate.__exit__, None, None, None)
        return gate

    def manifest(self, gate, repo):
        return request("GET", f"{gate.url}/v2/{repo}/manifests/v1", headers=ACCEPT)

    def signature_violation(self, response):
        self.assertEqual(response.status, 403, response.body[:300])
        violations = response.json()["errors"][0]["detail"]["violations"]
        self.assertEqual(violations[0]["check"], "signature")
        return violations[0]["message"] + " " + violations[0]["evidence"]

    def test_release_workflow_pulls_and_the_verdict_names_who_signed(self):
        gate = self.gate()
        dest = tempfile.mkdtemp(prefix="ocigate-copy-")
        self.addCleanup(shutil.rmtree, dest, True)
        result = harness.skopeo_copy(f"{gate.host}/acme/released:v1", dest)
        self.assertEqual(result.returncode, 0, result.stderr)
        verdict = request("GET", f"{gate.url}/ocigate/v1/verdicts/{self.released.digest}").json()
        finding = [c for c in verdict["checks"] if c["check"] == "signature"][0]
        self.assertEqual(finding["result"], "pass")
        text = finding["message"] + " " + finding.get("evidence", "")
        for part in (RELEASE, ISSUER, "log index", "signed 20"):
            self.assertIn(part, text)
        self.assertGreater(gate.metric_sum("ocigate_signature_verifications_total", format="cosign", result="valid"), 0)

    def test_another_identity_and_an_unsigned_image_are_blocked(self):
        gate = self.gate()
        wrong = self.signature_violation(self.manifest(gate, "acme/nightly"))
        self.assertIn("signer identity not trusted", wrong)
        self.assertIn(OTHER, wrong)
        self.assertIn("no signature found", self.signature_violation(self.manifest(gate, "acme/unsigned")))

    def test_provenance_from_our_builder_pulls_and_from_another_is_blocked(self):
        gate = self.gate(provenance={"builder_ids": ["https://github.com/actions/runner/*"],
                                     "source_repositories": ["https://github.com/acme/*"]})
        ours = self.manifest(gate, "acme/ours")
        self.assertEqual(ours.status, 200, ours.body[:400])
        verdict = request("GET", f"{gate.url}/ocigate/v1/verdicts/{self.ours.digest}").json()
        finding = [c for c in verdict["checks"] if c["check"] == "provenance"][0]
        self.assertEqual(finding["result"], "pass", finding)
        theirs = self.manifest(gate, "acme/theirs")
        self.assertEqual(theirs.status, 403, theirs.body[:400])
        violations = theirs.json()["errors"][0]["detail"]["violations"]
        provenance = [v for v in violations if v["check"] == "provenance"]
        self.assertEqual(len(provenance), 1, violations)
        text = provenance[0]["message"] + " " + provenance[0].get("evidence", "")
        self.assertIn("builder", text)
        self.assertIn("evil-builder", text)
        # An image with a valid signature but no attestation at all is blocked too.
        released = self.manifest(gate, "acme/released")
        self.assertEqual(released.status, 403, released.body[:400])
        self.assertIn("provenance", [v["check"] for v in released.json()["errors"][0]["detail"]["violations"]])


if __name__ == "__main__":
    unittest.main()
