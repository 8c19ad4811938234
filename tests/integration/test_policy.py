"""The policy gate end to end: skopeo pulls of compliant, warned and blocked images through
ocigate, the 403 reasons, Warning headers, blob access, verdicts, metrics, reload, `ocigate check`."""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

import harness
from harness import request

ACCEPT = {"Accept": harness.ALL_MANIFESTS}
ALL_OFF = {c: "off" for c in ("non-root-user", "healthcheck", "no-secrets", "copy-not-add", "no-update-alone",
                              "pinned-base", "pinned-reference", "trusted-source", "image-age", "signature",
                              "no-setuid", "no-package-manager", "vulnerabilities")}


def policy(mode="enforce", **checks):
    merged = dict(ALL_OFF)
    merged.update({k.replace("_", "-"): v for k, v in checks.items()})
    return {"mode": mode, "checks": merged}


def raw_get(gate, path):
    """GET that tolerates a cut body: (status, Content-Length, bytes received before the close)."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", gate.port, timeout=30)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        length = int(resp.getheader("Content-Length", "-1"))
        try:
            got = len(resp.read())
        except http.client.IncompleteRead as e:
            got = len(e.partial)
        return resp.status, length, got
    finally:
        conn.close()


def setUpModule():
    if not os.environ.get("OCIGATE_BIN"):
        raise unittest.SkipTest("OCIGATE_BIN is not set (run through ctest)")


class Gate(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.registry = harness.Registry().start()
        r = cls.registry
        cls.good = harness.push_image(r, "team/good", "v1",
                                      config_overrides={"config": {"User": "1000:1000",
                                                                   "Healthcheck": {"Test": ["CMD", "true"]}}})
        cls.root = harness.push_image(r, "team/root", "v1", layers=[{"secret-free": b"data"}],
                                      config_overrides={"config": {"User": "root"}})
        cls.nohealth = harness.push_image(r, "team/nohealth", "v1", config_overrides={"config": {"User": "app"}})
        cls.index_digest, _, cls.children = harness.push_index(r, "team/multi", "v1")

    @classmethod
    def tearDownClass(cls):
        cls.registry.__exit__(None, None, None)

    def gate(self, pol, **kwargs):
        gate = harness.Ocigate([{"name": "up", "url": self.registry.url}], default_upstream="up",
                               extra={"policy": pol}, **kwargs).start()
        self.addCleanup(gate.__exit__, None, None, None)
        return gate

    def copy(self, gate, ref):
        dest = tempfile.mkdtemp(prefix="ocigate-copy-")
        self.addCleanup(shutil.rmtree, dest, True)
        return harness.skopeo_copy(f"{gate.host}/{ref}", dest)

    def test_blocked_image_fails_to_pull_with_reasons(self):
        gate = self.gate(dict(policy(non_root_user="block"), metrics_repositories=["up/team/**"]))
        result = self.copy(gate, "team/root:v1")
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("denied", result.stderr)
        self.assertIn("non-root-user", result.stderr)
        r = request("GET", f"{gate.url}/v2/team/root/manifests/v1", headers=ACCEPT)
        self.assertEqual(r.status, 403)
        error = r.json()["errors"][0]
        self.assertEqual(error["code"], "DENIED")
        self.assertEqual(error["detail"]["verdict"], "block")
        self.assertEqual(error["detail"]["digest"], self.root.digest)
        violation = error["detail"]["violations"][0]
        self.assertEqual(violation["check"], "non-root-user")
        for key in ("action", "message", "remediation", "evidence"):
            self.assertIn(key, violation)
        head = request("HEAD", f"{gate.url}/v2/team/root/manifests/v1", headers=ACCEPT)
        self.assertEqual(head.status, 403, "HEAD answers like GET")
        # Its blobs are refused too: nobody sidesteps the gate by digest.
        blob = request("GET", f"{gate.url}/v2/team/root/blobs/{self.root.layer_digests[0]}")
        self.assertEqual(blob.status, 403)
        self.assertEqual(blob.json()["errors"][0]["code"], "DENIED")
        self.assertGreater(gate.metric_sum("ocigate_policy_decisions_total", verdict="block"), 0)
        self.assertGreater(gate.metric_sum("ocigate_blocked_pulls_total", check="non-root-user", upstream="up",
                                           repository="up/team/root"), 0)
        self.assertGreater(gate.metric_sum("ocigate_verdict_cache_total", result="hit"), 0)

    def test_compliant_image_pulls(self):
        gate = self.gate(policy(non_root_user="block", healthcheck="block"))
        result = self.copy(gate, "team/good:v1")
        self.assertEqual(result.returncode, 0, result.stderr)

    def test_warned_image_pulls_with_warning_headers_and_verdict(self):
        gate = self.gate(policy(healthcheck="warn", non_root_user="block"))
        result = self.copy(gate, "team/nohealth:v1")
        self.assertEqual(result.returncode, 0, result.stderr)
        r = request("GET", f"{gate.url}/v2/team/nohealth/manifests/v1", headers=ACCEPT)
        self.assertEqual(r.status, 200)
        warnings = r.headers.get_all("Warning")
        self.assertTrue(any(w.startswith('299 - "ocigate: healthcheck:') for w in warnings), warnings)
        stored = request("GET", f"{gate.url}/ocigate/v1/verdicts/{self.nohealth.digest}")
        self.assertEqual(stored.status, 200)
        self.assertEqual(stored.json()["verdict"], "warn")
        missing = request("GET", f"{gate.url}/ocigate/v1/verdicts/sha256:{'0' * 64}")
        self.assertEqual(missing.status, 404)
        with open(gate.stdout_path) as f:
            audits = [json.loads(l) for l in f if '"log":"audit"' in l]
        self.assertTrue(any(a["digest"] == self.nohealth.digest and a["verdict"] == "warn" for a in audits))

    def test_audit_mode_turns_blocks_into_warnings(self):
        gate = self.gate(policy(mode="audit", non_root_user="block"))
        result = self.copy(gate, "team/root:v1")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertGreater(gate.metric_sum("ocigate_policy_decisions_total", verdict="warn"), 0)

    def test_index_passes_and_each_platform_is_gated(self):
        gate = self.gate(policy(non_root_user="block"))
        r = request("GET", f"{gate.url}/v2/team/multi/manifests/v1", headers=ACCEPT)
        self.assertEqual(r.status, 200)
        result = self.copy(gate, "team/multi:v1")
        self.assertEqual(result.returncode, 0, result.stderr)  # children run as 1000:1000
        stored = request("GET", f"{gate.url}/ocigate/v1/verdicts/{self.children[0]}")
        self.assertEqual(stored.status, 200, stored.body)
        verdict = stored.json()
        self.assertEqual((verdict["verdict"], verdict["digest"]), ("allow", self.children[0]))
        self.assertEqual(verdict["reference"], "v1", "a child is judged under the tag its index was pulled by")
        user = [c for c in verdict["checks"] if c["check"] == "non-root-user"]
        self.assertEqual([c["result"] for c in user], ["pass"])

    def test_pinned_reference_judges_the_tag_an_index_was_pulled_by(self):
        gate = self.gate(policy(pinned_reference="block"))
        harness.push_index(self.registry, "team/multi", "latest")
        result = self.copy(gate, "team/multi:latest")
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("pinned-reference", result.stderr)
        result = self.copy(gate, "team/multi:v1")
        self.assertEqual(result.returncode, 0, result.stderr)

    def test_signature_artifacts_pass(self):
        sig_tag = "sha256-" + self.root.digest.split(":")[1] + ".sig"
        payload = b'{"critical":{}}'
        digest = self.registry.push_blob("team/root", payload)
        cfg = self.registry.push_blob("team/root", b"{}")
        manifest = {"schemaVersion": 2, "mediaType": harness.OCI_MANIFEST,
                    "config": {"mediaType": harness.OCI_CONFIG, "digest": cfg, "size": 2},
                    "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
                                "digest": digest, "size": len(payload)}]}
        self.registry.push_manifest("team/root", sig_tag, json.dumps(manifest).encode(), harness.OCI_MANIFEST)
        gate = self.gate(policy(non_root_user="block", healthcheck="block"))
        r = request("GET", f"{gate.url}/v2/team/root/manifests/{sig_tag}", headers=ACCEPT)
        self.assertEqual(r.status, 200)
        self.assertEqual(request("GET", f"{gate.url}/v2/team/root/blobs/{digest}").status, 200)

    def test_prefetch_layer_scan_blocks_setuid_and_honours_whiteouts(self):
        user = {"config": {"User": "1000"}}
        suid = harness.push_image(self.registry, "team/suid", "v1", config_overrides=user,
                                  layers=[{"usr/bin/tool": (b"#!/bin/sh\n", 0o4755)}])
        harness.push_image(self.registry, "team/suid-removed", "v1", config_overrides=user,
                           layers=[{"usr/bin/tool": (b"#!/bin/sh\n", 0o4755)}, {"usr/bin/.wh.tool": b""}])
        gate = self.gate(policy(no_setuid="block"))
        result = self.copy(gate, "team/suid:v1")
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("no-setuid", result.stderr)
        r = request("GET", f"{gate.url}/v2/team/suid/manifests/v1", headers=ACCEPT)
        self.assertEqual(r.status, 403)
        violation = r.json()["errors"][0]["detail"]["violations"][0]
        self.assertEqual(violation["check"], "no-setuid")
        self.assertIn("usr/bin/tool", violation["message"] + violation["evidence"])
        self.assertIn(suid.layer_digests[0][:19], violation["evidence"])  # names the layer
        result = self.copy(gate, "team/suid-removed:v1")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertGreaterEqual(gate.metric_sum("ocigate_layer_scans_total", result="ok"), 2)
        # layer_scan: off leaves the check unknown, which blocks nothing.
        off = self.gate(dict(policy(no_setuid="block"), layer_scan="off"))
        result = self.copy(off, "team/suid:v1")
        self.assertEqual(result.returncode, 0, result.stderr)

    def test_stream_layer_scan_cuts_the_bad_layer_and_flips_the_verdict(self):
        user = {"config": {"User": "1000"}}
        suid = harness.push_image(self.registry, "team/suid-stream", "v1", config_overrides=user,
                                  layers=[{"usr/bin/tool": (b"#!/bin/sh\n" * 5000, 0o4755)}])
        gone = harness.push_image(self.registry, "team/suid-gone-stream", "v1", config_overrides=user,
                                  layers=[{"usr/bin/tool": (b"#!/bin/sh\n", 0o4755)}, {"usr/bin/.wh.tool": b""}])
        gate = self.gate(dict(policy(no_setuid="block"), layer_scan="stream"))
        # The manifest is answered before any layer is read.
        r = request("GET", f"{gate.url}/v2/team/suid-stream/manifests/v1", headers=ACCEPT)
        self.assertEqual(r.status, 200)
        layer = suid.layer_digests[0]
        status, length, got = raw_get(gate, f"/v2/team/suid-stream/blobs/{layer}")
        self.assertEqual(status, 200)
        self.assertLess(got, length, "the setuid layer must be cut before its last byte")
        # The verdict flipped: the manifest is now refused, naming the check and the layer.
        r = request("GET", f"{gate.url}/v2/team/suid-stream/manifests/v1", headers=ACCEPT)
        self.assertEqual(r.status, 403)
        violation = r.json()["errors"][0]["detail"]["violations"][0]
        self.assertEqual(violation["check"], "no-setuid")
        self.assertIn(layer[:19], violation["evidence"])
        # The layer itself is refused from now on, cached or not.
        r = request("GET", f"{gate.url}/v2/team/suid-stream/blobs/{layer}")
        self.assertEqual(r.status, 403)
        self.assertEqual(r.json()["errors"][0]["code"], "DENIED")
        result = self.copy(gate, "team/suid-stream:v1")
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("no-setuid", result.stderr)
        self.assertGreaterEqual(gate.metric_sum("ocigate_policy_decisions_total", verdict="block"), 1)
        # A setuid file deleted by a later layer's whiteout passes, even when its layer comes first.
        r = request("GET", f"{gate.url}/v2/team/suid-gone-stream/manifests/v1", headers=ACCEPT)
        self.assertEqual(r.status, 200)
        status, length, got = raw_get(gate, f"/v2/team/suid-gone-stream/blobs/{gone.layer_digests[0]}")
        self.assertEqual((status, got), (200, length))
        result = self.copy(gate, "team/suid-gone-stream:v1")
        self.assertEqual(result.returncode, 0, result.stderr)
        r = request("GET", f"{gate.url}/v2/team/suid-gone-stream/manifests/v1", headers=ACCEPT)
        self.assertEqual(r.status, 200)
        verdict = request("GET", f"{gate.url}/ocigate/v1/verdicts/{r.headers['Docker-Content-Digest']}").json()
        setuid = [c for c in verdict["checks"] if c["check"] == "no-setuid"][0]
        self.assertEqual(setuid["result"], "pass", "the final verdict is judged on every layer")
        self.assertTrue(verdict["inventory"]["complete"])

    def test_layers_pulled_ahead_are_stream_scanned_and_a_bad_one_is_still_cut(self):
        # upstreams[].pull_ahead (default 2) fetches layers 1 and 2 once the client GETs layer 0;
        # they are scanned as they come in, and the setuid layer is still never delivered whole.
        # Layer 0 itself may be cut too: when the walk's scans finish before its last byte, the
        # whole image is known to break the policy by then.
        user = {"config": {"User": "1000"}}
        image = harness.push_image(self.registry, "team/suid-ahead", "v1", config_overrides=user,
                                   layers=[{"a.txt": b"a" * 5000}, {"b.txt": b"b" * 5000},
                                           {"usr/bin/tool": (b"#!/bin/sh\n" * 5000, 0o4755)}])
        gate = self.gate(dict(policy(no_setuid="block"), layer_scan="stream"))
        r = request("GET", f"{gate.url}/v2/team/suid-ahead/manifests/v1", headers=ACCEPT)
        self.assertEqual(r.status, 200)
        status, _, _ = raw_get(gate, f"/v2/team/suid-ahead/blobs/{image.layer_digests[0]}")
        self.assertEqual(status, 200)
        harness.wait_until(lambda: gate.metric_sum("ocigate_pull_ahead_layers_total", result="fetched") == 2,
                           10, "layers 1 and 2 pulled ahead")
        harness.wait_until(lambda: gate.metric_sum("ocigate_layer_scans_total") >= 3, 10, "three layer scans")
        bad = image.layer_digests[2]
        self.assertEqual(self.registry.blob_gets(bad), 1)
        status, length, got = raw_get(gate, f"/v2/team/suid-ahead/blobs/{bad}")
        self.assertTrue(status == 403 or (status == 200 and got < length),
                        f"the setuid layer must be refused or cut before its last byte: {status}, {got} of {length}")
        r = request("GET", f"{gate.url}/v2/team/suid-ahead/blobs/{bad}")
        self.assertEqual(r.status, 403)
        r = request("GET", f"{gate.url}/v2/team/suid-ahead/manifests/v1", headers=ACCEPT)
        self.assertEqual(r.status, 403)
        self.assertEqual(r.json()["errors"][0]["detail"]["violations"][0]["check"], "no-setuid")
        self.assertEqual(self.registry.blob_gets(bad), 1, "a layer pulled ahead is not fetched again")

    def test_a_user_is_judged_by_its_uid_in_etc_passwd_not_its_gid(self):
        # toor is an alias of uid 0 with a non-zero gid; app is a non-root user in group 0. A parser
        # that read the gid column would pass toor and block app.
        passwd = (b"root:x:0:0:root:/root:/bin/sh\n"
                  b"toor:x:0:1000:alias of root:/root:/bin/sh\n"
                  b"app:x:1000:0:app in group root:/home/app:/bin/sh\n")
        layers = [{"etc/passwd": passwd}]
        harness.push_image(self.registry, "team/toor", "v1", layers=layers,
                           config_overrides={"config": {"User": "toor"}})
        harness.push_image(self.registry, "team/app-gid0", "v1", layers=layers,
                           config_overrides={"config": {"User": "app"}})
        gate = self.gate(policy(non_root_user="block"))
        r = request("GET", f"{gate.url}/v2/team/toor/manifests/v1", headers=ACCEPT)
        self.assertEqual(r.status, 403, r.body[:300])
        violation = r.json()["errors"][0]["detail"]["violations"][0]
        self.assertEqual(violation["check"], "non-root-user")
        self.assertIn("user 'toor' has uid 0 in /etc/passwd", violation["message"])
        result = self.copy(gate, "team/toor:v1")
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("non-root-user", result.stderr)
        result = self.copy(gate, "team/app-gid0:v1")
        self.assertEqual(result.returncode, 0, result.stderr)

    def test_blob_access_referenced_any_and_audit(self):
        # One layer is shared by an allowed image and a blocked one; each also has a layer of its own.
        shared = {"shared.txt": b"in both images\n"}
        good = harness.push_image(self.registry, "team/shares", "v1", layers=[shared, {"good.txt": b"good\n"}],
                                  config_overrides={"config": {"User": "1000"}})
        bad = harness.push_image(self.registry, "team/shares-root", "v1", layers=[shared, {"bad.txt": b"bad\n"}],
                                 config_overrides={"config": {"User": "root"}})
        self.assertEqual(good.layer_digests[0], bad.layer_digests[0])
        loose = self.registry.push_blob("team/shares", b"a blob no manifest refers to")
        unreferenced = "ocigate_unreferenced_blob_requests_total"

        def blob(gate, repo, digest, method="GET"):
            return request(method, f"{gate.url}/v2/{repo}/blobs/{digest}")

        gate = self.gate(policy(non_root_user="block"))
        for method in ("GET", "HEAD"):
            r = blob(gate, "team/shares", loose, method)
            self.assertEqual(r.status, 403, f"{method} of a digest no manifest refers to")
        error = blob(gate, "team/shares", loose).json()["errors"][0]
        self.assertEqual(error["code"], "DENIED")
        self.assertIn("not referenced by any image this mirror has allowed", error["message"])
        self.assertEqual(gate.metric_sum(unreferenced), 3)
        # The blocked image's manifest is refused, and none of its blobs become reachable, the
        # shared layer included (no allowed image has referred to it yet).
        self.assertEqual(request("GET", f"{gate.url}/v2/team/shares-root/manifests/v1", headers=ACCEPT).status, 403)
        self.assertEqual(blob(gate, "team/shares-root", bad.layer_digests[0]).status, 403)
        # An allowed image makes its blobs reachable: its own layer and the shared one. The blocked
        # image's own layer and config stay refused.
        self.assertEqual(request("GET", f"{gate.url}/v2/team/shares/manifests/v1", headers=ACCEPT).status, 200)
        for digest in good.blobs:
            r = blob(gate, "team/shares", digest)
            self.assertEqual((r.status, harness.sha256(r.body)), (200, digest))
        for digest in (bad.layer_digests[1], bad.config_digest):
            self.assertEqual(blob(gate, "team/shares-root", digest).status, 403)
        self.assertEqual(blob(gate, "team/shares", loose).status, 403)
        self.assertEqual(gate.metric_sum(unreferenced), 7)
        self.assertEqual(self.registry.blob_gets(loose), 0, "a refused blob is never fetched")

        # blob_access: any serves any digest and counts nothing.
        anything = self.gate(dict(policy(non_root_user="block"), blob_access="any"))
        r = blob(anything, "team/shares", loose)
        self.assertEqual((r.status, r.body), (200, b"a blob no manifest refers to"))
        self.assertEqual(anything.metric_sum(unreferenced), 0)

        # Audit mode serves an unreferenced blob, counts it and logs it.
        audit = self.gate(policy(mode="audit", non_root_user="block"))
        r = blob(audit, "team/shares", loose)
        self.assertEqual((r.status, r.body), (200, b"a blob no manifest refers to"))
        self.assertEqual(audit.metric_sum(unreferenced), 1)
        self.assertIn("blob not referenced by an allowed image (audit mode: served)", audit.stderr())

    def test_reload_on_sighup_applies_a_new_policy_and_keeps_the_old_on_error(self):
        gate = self.gate(policy(non_root_user="block"))
        self.assertEqual(request("GET", f"{gate.url}/v2/team/root/manifests/v1", headers=ACCEPT).status, 403)
        with open(gate.config_path) as f:
            config = json.load(f)

        def warned_checks():
            r = request("GET", f"{gate.url}/v2/team/root/manifests/v1", headers=ACCEPT)
            self.assertEqual(r.status, 200, r.body[:300])
            return sorted(w.split("ocigate: ", 1)[1].split(":", 1)[0] for w in r.headers.get_all("Warning") or [])

        # The new policy warns on one check only; the built-in default (audit, every check on) would
        # warn on several, non-root-user first among them, so the two cannot be mistaken.
        config["policy"] = policy(non_root_user="off", healthcheck="warn")
        with open(gate.config_path, "w") as f:
            json.dump(config, f)
        gate.proc.send_signal(signal.SIGHUP)
        harness.wait_until(lambda: gate.metric_sum("ocigate_policy_reloads_total", result="ok") == 1, 10, "reload")
        self.assertEqual(warned_checks(), ["healthcheck"])
        config["policy"] = {"mode": "enforce", "checks": {"no-such-check": "block"}}
        with open(gate.config_path, "w") as f:
            json.dump(config, f)
        gate.proc.send_signal(signal.SIGHUP)
        harness.wait_until(lambda: gate.metric_sum("ocigate_policy_reloads_total", result="error") == 1, 10, "reload")
        self.assertEqual(warned_checks(), ["healthcheck"], "the policy in force before the bad file stays")
        self.assertIn("policy reload refused", gate.stderr())

    def test_invalid_policy_refuses_to_start_with_key_and_line(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "bad.yaml")
            with open(path, "w") as f:
                f.write(f"upstreams:\n  - name: up\n    url: {self.registry.url}\npolicy:\n  checks:\n"
                        f"    non-root-user: sometimes\nstorage:\n  path: {d}/data\n")
            r = subprocess.run([os.environ["OCIGATE_BIN"], "serve", "--config", path], capture_output=True,
                               text=True, timeout=20)
            self.assertEqual(r.returncode, 2)
            self.assertIn(":6:", r.stderr)
            self.assertIn("non-root-user", r.stderr)

    def check(self, ref, pol, fmt="table"):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "c.yaml")
            with open(path, "w") as f:
                json.dump({"upstreams": [{"name": "up", "url": self.registry.url}], "policy": pol,
                           "storage": {"path": os.path.join(d, "data")}}, f)
            return subprocess.run([os.environ["OCIGATE_BIN"], "check", "--config", path, "--format", fmt, ref],
                                  capture_output=True, text=True, timeout=60)

    def test_check_command_exit_codes_and_output(self):
        blocked = self.check("up/team/root:v1", policy(non_root_user="block"))
        self.assertEqual(blocked.returncode, 1, blocked.stderr)
        self.assertIn("non-root-user", blocked.stdout)
        self.assertIn("BLOCK", blocked.stdout)
        allowed = self.check("team/good:v1", policy(non_root_user="block"), fmt="json")
        self.assertEqual(allowed.returncode, 0, allowed.stderr)
        self.assertEqual(json.loads(allowed.stdout)["verdict"], "allow")
        warned = self.check("team/nohealth:v1", policy(healthcheck="warn"))
        self.assertEqual(warned.returncode, 0)
        self.assertIn("WARN", warned.stdout)
        # The package inventory is kept with the verdict and shown; check reads every layer even
        # when the mirror streams.
        harness.push_image(self.registry, "team/alpineish", "v1", config_overrides={"config": {"User": "1000"}},
                           layers=[{"etc/os-release": b'ID=alpine\nVERSION_ID=3.19.1\nPRETTY_NAME="Alpine Linux v3.19"\n',
                                    "lib/apk/db/installed": b"P:musl\nV:1.2.4-r2\n\nP:busybox\nV:1.36.1-r15\n\n"}])
        table = self.check("team/alpineish:v1", dict(policy(no_setuid="block"), layer_scan="stream"))
        self.assertEqual(table.returncode, 0, table.stderr)
        self.assertIn("Alpine Linux v3.19", table.stdout)
        self.assertIn("packages 2", table.stdout)
        self.assertRegex(table.stdout, r"musl\s+1\.2\.4-r2\s+apk")
        inventory = json.loads(self.check("team/alpineish:v1", policy(no_setuid="block"), fmt="json").stdout)["inventory"]
        self.assertEqual({p["name"] for p in inventory["packages"]}, {"musl", "busybox"})
        self.assertEqual(inventory["os"]["id"], "alpine")
        self.assertTrue(inventory["complete"])
        missing = self.check("team/absent:v1", policy())
        self.assertEqual(missing.returncode, 2)
        usage = subprocess.run([os.environ["OCIGATE_BIN"], "check"], capture_output=True, text=True, timeout=10)
        self.assertEqual(usage.returncode, 2)


if __name__ == "__main__":
    unittest.main()
