"""Signatures at pull time, end to end: cosign tag signatures made with the openssl command line
(an independent signer) pushed to a real docker-registry, verified by ocigate before it serves the
image: valid, unsigned, replayed from another image, an index signed for its children, and a key
removed on reload."""

import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import unittest

import harness
from harness import request
from test_policy import ALL_OFF

ACCEPT = {"Accept": harness.ALL_MANIFESTS}
SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"


def setUpModule():
    if not os.environ.get("OCIGATE_BIN"):
        raise unittest.SkipTest("OCIGATE_BIN is not set (run through ctest)")


def make_key(directory, name):
    private = os.path.join(directory, name + ".key")
    public = os.path.join(directory, name + ".pub")
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", private],
                   check=True, capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", private, "-pubout", "-out", public], check=True, capture_output=True)
    return private, public


def cosign_sign(registry, repo, signed_digest, private_key, tag_digest=None):
    """Pushes a cosign tag signature over signed_digest at the .sig tag of tag_digest (default: the same)."""
    payload = json.dumps({"critical": {"identity": {"docker-reference": f"example.test/{repo}"},
                                       "image": {"docker-manifest-digest": signed_digest},
                                       "type": "cosign container image signature"},
                          "optional": None}).encode()
    with tempfile.NamedTemporaryFile() as f:
        f.write(payload)
        f.flush()
        der = subprocess.run(["openssl", "dgst", "-sha256", "-sign", private_key, f.name], check=True,
                             capture_output=True).stdout
    layer = registry.push_blob(repo, payload)
    config = b"{}"
    config_digest = registry.push_blob(repo, config)
    manifest = {"schemaVersion": 2, "mediaType": harness.OCI_MANIFEST,
                "config": {"mediaType": harness.OCI_CONFIG, "digest": config_digest, "size": len(config)},
                "layers": [{"mediaType": SIMPLESIGNING, "digest": layer, "size": len(payload),
                            "annotations": {"dev.cosignproject.cosign/signature": base64.b64encode(der).decode()}}]}
    tag = "sha256-" + (tag_digest or signed_digest).split(":")[1] + ".sig"
    registry.push_manifest(repo, tag, json.dumps(manifest).encode(), harness.OCI_MANIFEST)


class Signatures(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.keys_dir = tempfile.mkdtemp(prefix="ocigate-keys-")
        cls.private, cls.public = make_key(cls.keys_dir, "release")
        cls.other_private, _ = make_key(cls.keys_dir, "other")
        cls.registry = harness.Registry().start()
        r = cls.registry
        user = {"config": {"User": "1000"}}
        cls.signed = harness.push_image(r, "acme/signed", "v1", config_overrides=user)
        cosign_sign(r, "acme/signed", cls.signed.digest, cls.private)
        cls.unsigned = harness.push_image(r, "acme/unsigned", "v1", config_overrides=user)
        cls.foreign = harness.push_image(r, "acme/foreign", "v1", config_overrides=user)
        cosign_sign(r, "acme/foreign", cls.foreign.digest, cls.other_private)
        cls.replayed = harness.push_image(r, "acme/replayed", "v1", config_overrides=user)
        cosign_sign(r, "acme/replayed", cls.signed.digest, cls.private, tag_digest=cls.replayed.digest)
        cls.index_digest, _, cls.children = harness.push_index(r, "acme/multi", "v1")
        cosign_sign(r, "acme/multi", cls.index_digest, cls.private)
        cls.elsewhere = harness.push_image(r, "other/app", "v1", config_overrides=user)

    @classmethod
    def tearDownClass(cls):
        cls.registry.__exit__(None, None, None)
        shutil.rmtree(cls.keys_dir, True)

    def policy(self, keys):
        checks = dict(ALL_OFF, signature="block")
        return {"mode": "enforce", "checks": checks,
                "trust": [{"match": "up/acme/**", "cosign": {"keys": keys}}]}

    def gate(self, keys=None):
        gate = harness.Ocigate([{"name": "up", "url": self.registry.url}], default_upstream="up",
                               extra={"policy": self.policy(keys or [self.public])}).start()
        self.addCleanup(gate.__exit__, None, None, None)
        return gate

    def copy(self, gate, ref):
        dest = tempfile.mkdtemp(prefix="ocigate-copy-")
        self.addCleanup(shutil.rmtree, dest, True)
        return harness.skopeo_copy(f"{gate.host}/{ref}", dest)

    def manifest(self, gate, repo):
        return request("GET", f"{gate.url}/v2/{repo}/manifests/v1", headers=ACCEPT)

    def signature_violation(self, response):
        self.assertEqual(response.status, 403, response.body[:300])
        violations = response.json()["errors"][0]["detail"]["violations"]
        self.assertEqual(violations[0]["check"], "signature")
        return violations[0]["message"] + " " + violations[0]["evidence"]

    def test_valid_signature_pulls_and_others_are_refused_with_the_reason(self):
        gate = self.gate()
        result = self.copy(gate, "acme/signed:v1")
        self.assertEqual(result.returncode, 0, result.stderr)
        unsigned = self.copy(gate, "acme/unsigned:v1")
        self.assertNotEqual(unsigned.returncode, 0)
        self.assertIn("signature", unsigned.stderr)
        self.assertIn("no", self.signature_violation(self.manifest(gate, "acme/unsigned")).lower())
        self.assertIn("untrusted", self.signature_violation(self.manifest(gate, "acme/foreign")))
        self.assertIn("another digest", self.signature_violation(self.manifest(gate, "acme/replayed")))
        # Repositories no trust entry matches are not asked for signatures.
        self.assertEqual(self.manifest(gate, "other/app").status, 200)
        self.assertGreater(gate.metric_sum("ocigate_signature_verifications_total", format="cosign", result="valid"), 0)
        self.assertGreater(gate.metric_sum("ocigate_signature_verifications_total", result="invalid"), 0)

    def test_child_of_a_signed_index_pulls_by_digest(self):
        gate = self.gate()
        result = self.copy(gate, "acme/multi:v1")
        self.assertEqual(result.returncode, 0, result.stderr)
        child = request("GET", f"{gate.url}/v2/acme/multi/manifests/{self.children[1]}", headers=ACCEPT)
        self.assertEqual(child.status, 200, child.body[:300])

    def test_key_removed_on_reload_takes_effect(self):
        gate = self.gate()
        self.assertEqual(self.manifest(gate, "acme/signed").status, 200)
        with open(gate.config_path) as f:
            config = json.load(f)
        _, fresh = make_key(self.keys_dir, "rotated")
        config["policy"] = self.policy([fresh])
        with open(gate.config_path, "w") as f:
            json.dump(config, f)
        gate.proc.send_signal(signal.SIGHUP)
        harness.wait_until(lambda: gate.metric_sum("ocigate_policy_reloads_total", result="ok") == 1, 10, "reload")
        self.assertIn("untrusted", self.signature_violation(self.manifest(gate, "acme/signed")))

    def test_unreadable_key_refuses_to_start(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "bad.yaml")
            with open(os.path.join(d, "garbage.pub"), "w") as f:
                f.write("not a key\n")
            with open(path, "w") as f:
                json.dump({"upstreams": [{"name": "up", "url": self.registry.url}],
                           "storage": {"path": os.path.join(d, "data")},
                           "policy": {"trust": [{"match": "up/**", "cosign": {"keys": ["garbage.pub"]}}]}}, f)
            r = subprocess.run([os.environ["OCIGATE_BIN"], "serve", "--config", path], capture_output=True,
                               text=True, timeout=20)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("garbage.pub", r.stderr)


if __name__ == "__main__":
    unittest.main()
