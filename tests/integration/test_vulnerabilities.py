"""The `vulnerabilities` check end to end: images with real package databases (a Debian 12 dpkg
status copied from a bookworm machine, an Alpine 3.20 apk database, the rpm database that
tests/unit/layers/fixtures/make-rpmdb builds with Debian's rpm, under a Rocky 9 os-release) pulled
through ocigate against a fixture OSV database; block, warn, fixed_only and ignore entries;
`ocigate vulndb update` from a loopback HTTP server (all or none); a SIGHUP that swaps the
database (yesterday's clean image blocked today) without dropping a connection."""

import functools
import hashlib
import http.client
import http.server
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import zipfile

import harness
from harness import request

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "fixtures")
RPMDB = os.path.join(HERE, "..", "unit", "layers", "fixtures", "rpmdb.sqlite")
ACCEPT = {"Accept": harness.ALL_MANIFESTS}
CHECKS = ("non-root-user", "healthcheck", "no-secrets", "copy-not-add", "no-update-alone", "pinned-base",
          "pinned-reference", "trusted-source", "image-age", "signature", "no-setuid", "no-package-manager")

CRITICAL = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"  # 9.8
HIGH = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"      # 7.5
MEDIUM = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:N/A:N"    # 5.3


def setUpModule():
    if not os.environ.get("OCIGATE_BIN"):
        raise unittest.SkipTest("OCIGATE_BIN is not set (run through ctest)")


def fixture(name):
    with open(os.path.join(FIXTURES, name), "rb") as f:
        return f.read()


# ---- the fixture OSV database ----

def osv(record_id, ecosystem, name, fixed=None, aliases=(), upstream=(), vector=None, withdrawn=False):
    events = [{"introduced": "0"}] + ([{"fixed": fixed}] if fixed else [])
    record = {"schema_version": "1.6.0", "id": record_id, "modified": "2026-11-01T00:00:00Z",
              "aliases": list(aliases), "upstream": list(upstream),
              "affected": [{"package": {"ecosystem": ecosystem, "name": name},
                            "ranges": [{"type": "ECOSYSTEM", "events": events}]}]}
    if vector:
        record["severity"] = [{"type": "CVSS_V3", "score": vector}]
    if withdrawn:
        record["withdrawn"] = "2026-11-02T00:00:00Z"
    return record


def debian_records(extra=()):
    # Installed (fixtures/debian12-dpkg-status): libssl3 and openssl 3.0.19-1~deb12u2 (Source: openssl),
    # zlib1g 1:1.2.13.dfsg-1 (Source: zlib), bash 5.2.15-2+b8 (Source: bash (5.2.15-2)), libc6, tzdata.
    return [osv("DEBIAN-CVE-2024-5535", "Debian:12", "openssl", fixed="3.0.19-1~deb12u3", upstream=["CVE-2024-5535"],
                vector=CRITICAL),
            osv("DEBIAN-CVE-2023-45853", "Debian:12", "zlib", upstream=["CVE-2023-45853"], vector=CRITICAL),
            osv("DEBIAN-CVE-2022-3715", "Debian:12", "bash", fixed="5.2.15-3", upstream=["CVE-2022-3715"],
                vector=MEDIUM),
            osv("DEBIAN-CVE-2019-1010022", "Debian:11", "glibc", vector=CRITICAL),  # another release: no match
            osv("DSA-9999-1", "Debian:12", "glibc", fixed="9:9", vector=CRITICAL, withdrawn=True),
            *extra]


def zip_of(records):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for r in records:
            # A fixed date: the same records give the same bytes (the update test compares them).
            info = zipfile.ZipInfo(r["id"].replace(":", "_") + ".json", date_time=(2026, 11, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, json.dumps(r))
    return out.getvalue()


def corrupt_zip(data):
    """Flips a byte inside the first entry's compressed data: the CRC-32 no longer matches."""
    raw = bytearray(data)
    name_len = int.from_bytes(raw[26:28], "little")
    extra_len = int.from_bytes(raw[28:30], "little")
    raw[30 + name_len + extra_len + 5] ^= 0x55
    return bytes(raw)


def write_database(directory, files):
    """{relative path: bytes}, plus the manifest the updater writes."""
    for rel, data in files.items():
        path = os.path.join(directory, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)


def base_database():
    return {"Debian/all.zip": zip_of(debian_records()),
            "Alpine/all.zip": zip_of([osv("ALPINE-CVE-2024-5535", "Alpine:v3.20", "openssl", fixed="3.3.2-r0",
                                          aliases=["CVE-2024-5535"])]),  # Alpine records carry no severity
            "Rocky Linux/RLSA-2024_0001.json": json.dumps(
                osv("RLSA-2024:0001", "Rocky Linux:9", "tinyssl", fixed="1:3.0.7-28.el9", vector=HIGH)).encode()}


# ---- images ----

def debian_layer(packages=None):
    status = fixture("debian12-dpkg-status")
    if packages is not None:
        paragraphs = status.decode().strip().split("\n\n")
        status = ("\n\n".join(p for p in paragraphs if p.split("\n", 1)[0][len("Package: "):] in packages) + "\n").encode()
    return {"etc/os-release": fixture("debian12-os-release"), "var/lib/dpkg/status": status}


ALPINE = {"etc/os-release": b'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.20.3\nPRETTY_NAME="Alpine Linux v3.20"\n',
          "lib/apk/db/installed": b"C:Q1abc=\nP:libcrypto3\nV:3.3.1-r0\nA:x86_64\no:openssl\n\n"
                                  b"C:Q1def=\nP:libssl3\nV:3.3.1-r0\nA:x86_64\no:openssl\n\n"
                                  b"C:Q1ghi=\nP:busybox\nV:1.36.1-r29\nA:x86_64\no:busybox\n\n"}


def rocky_layer():
    with open(RPMDB, "rb") as f:
        return {"etc/os-release": b'NAME="Rocky Linux"\nID="rocky"\nVERSION_ID="9.4"\n', "var/lib/rpm/rpmdb.sqlite": f.read()}


def policy(rules=()):
    checks = {c: "off" for c in CHECKS}
    checks["vulnerabilities"] = "block"
    return {"mode": "enforce", "checks": checks, "rules": list(rules)}


IGNORE_BOTH = [{"id": "cve-2024-5535", "reason": "not reachable: no TLS in this image", "until": "2099-12-31"},
               {"id": "DEBIAN-CVE-2023-45853", "reason": "minizip is not shipped"}]
RULES = [{"match": "up/warn/**", "checks": {"vulnerabilities": "warn"}},
         {"match": "up/fixed/**", "checks": {"vulnerabilities": {"fixed_only": True}}},
         {"match": "up/ignored/**", "checks": {"vulnerabilities": {"ignore": IGNORE_BOTH}}},
         {"match": "up/expired/**", "checks": {"vulnerabilities": {"ignore": [
             {"id": "CVE-2024-5535", "reason": "was accepted", "until": "2020-01-01"}]}}},
         {"match": "up/strict/**", "checks": {"vulnerabilities": {"unknown_severity": "as-high"}}}]


class FileServer:
    """Python's http.server over a directory, on 127.0.0.1 (the `vulndb update` source)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="ocigate-osv-")
        handler = functools.partial(QuietHandler, directory=self.dir)
        self.server = harness.QuietHTTPServer(handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, rel):
        return f"http://127.0.0.1:{self.server.server_address[1]}/{rel}"

    def put(self, rel, data):
        write_database(self.dir, {rel: data})

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        shutil.rmtree(self.dir, ignore_errors=True)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def hidden_files(directory):
    return [os.path.join(root, n) for root, dirs, files in os.walk(directory) for n in files + dirs if n.startswith(".")]


def tree(directory):
    out = {}
    for root, _, files in os.walk(directory):
        for n in files:
            path = os.path.join(root, n)
            with open(path, "rb") as f:
                out[os.path.relpath(path, directory)] = f.read()
    return out


class Base(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.registry = harness.Registry().start()
        cls.addClassCleanup(cls.registry.close)
        cls.db_dir = tempfile.mkdtemp(prefix="ocigate-vulndb-")
        cls.addClassCleanup(shutil.rmtree, cls.db_dir, True)
        write_database(cls.db_dir, base_database())

    @classmethod
    def gate_for(cls, rules=(), vulnerabilities=None, threads=2, layer_scan="prefetch"):
        section = vulnerabilities or {"database": cls.db_dir, "max_age": "72h"}
        pol = dict(policy(rules), layer_scan=layer_scan)
        gate = harness.Ocigate([{"name": "up", "url": cls.registry.url}], default_upstream="up",
                               extra={"policy": pol, "vulnerabilities": section})
        gate.config["server"]["threads"] = threads
        gate._write_config()
        return gate.start()

    def manifest(self, gate, ref):
        repo, tag = ref.rsplit(":", 1)
        return request("GET", f"{gate.url}/v2/{repo}/manifests/{tag}", headers=ACCEPT)

    def denied(self, gate, ref):
        r = self.manifest(gate, ref)
        self.assertEqual(r.status, 403, r.body[:500])
        error = r.json()["errors"][0]
        self.assertEqual(error["code"], "DENIED")
        violation = next(v for v in error["detail"]["violations"] if v["check"] == "vulnerabilities")
        return error["message"], violation


class Gate(Base):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        r = cls.registry
        for repo in ("team/debian", "warn/debian", "fixed/debian", "ignored/debian", "expired/debian"):
            harness.push_image(r, repo, "12", layers=[debian_layer()])
        harness.push_image(r, "fixed/zlib-only", "12", layers=[debian_layer({"zlib1g", "tzdata"})])
        harness.push_image(r, "team/alpine", "3.20", layers=[ALPINE])
        harness.push_image(r, "strict/alpine", "3.20", layers=[ALPINE])
        harness.push_image(r, "team/rocky", "9", layers=[rocky_layer()])
        harness.push_image(r, "team/static", "v1", layers=[{"app": b"\x7fELF a static binary"}])
        cls.gate = cls.gate_for(RULES)
        cls.addClassCleanup(cls.gate.close)

    def test_a_vulnerable_debian_image_is_blocked_with_its_cves_and_findings(self):
        message, violation = self.denied(self.gate, "team/debian:12")
        self.assertIn("CVE-2024-5535", message)
        self.assertIn("CVE-2023-45853", message)
        self.assertIn("vulnerabilities", message)
        details = violation["details"]
        self.assertEqual(details["ecosystem"], "Debian:12")
        found = {(f["package"], f["id"]): f for f in details["findings"]}
        # dpkg Source: libssl3 and openssl are both built from openssl; zlib1g from zlib.
        self.assertEqual(set(found), {("libssl3", "DEBIAN-CVE-2024-5535"), ("openssl", "DEBIAN-CVE-2024-5535"),
                                      ("zlib1g", "DEBIAN-CVE-2023-45853")})
        ssl = found[("libssl3", "DEBIAN-CVE-2024-5535")]
        self.assertEqual(ssl["installed_version"], "3.0.19-1~deb12u2")
        self.assertEqual(ssl["fixed_version"], "3.0.19-1~deb12u3")
        self.assertEqual(ssl["severity"], "critical")
        self.assertEqual(ssl["score"], 9.8)
        self.assertEqual(ssl["aliases"], ["CVE-2024-5535"])
        self.assertIsNone(found[("zlib1g", "DEBIAN-CVE-2023-45853")]["fixed_version"])
        self.assertEqual(details["count"], 3)
        self.assertGreater(self.gate.metric_sum("ocigate_vulnerability_findings_total", severity="critical"), 0)
        self.assertGreater(self.gate.metric_sum("ocigate_vulnerability_match_seconds_count"), 0)
        self.assertGreater(self.gate.metric_sum("ocigate_blocked_pulls_total", check="vulnerabilities"), 0)

    def test_warn_serves_the_image_with_the_cves_in_a_warning(self):
        r = self.manifest(self.gate, "warn/debian:12")
        self.assertEqual(r.status, 200)
        warnings = r.headers.get_all("Warning") or []
        self.assertTrue(any("vulnerabilities:" in w and "CVE-2024-5535" in w for w in warnings), warnings)

    def test_fixed_only_counts_only_what_can_be_fixed(self):
        _, violation = self.denied(self.gate, "fixed/debian:12")
        self.assertEqual({f["id"] for f in violation["details"]["findings"]}, {"DEBIAN-CVE-2024-5535"})
        self.assertEqual(self.manifest(self.gate, "fixed/zlib-only:12").status, 200, "zlib has no fix yet")

    def test_ignore_entries_by_cve_or_record_id_let_the_image_through(self):
        self.assertEqual(self.manifest(self.gate, "ignored/debian:12").status, 200)
        digest = self.manifest(self.gate, "ignored/debian:12").headers["Docker-Content-Digest"]
        verdict = request("GET", f"{self.gate.url}/ocigate/v1/verdicts/{digest}").json()
        check = next(c for c in verdict["checks"] if c["check"] == "vulnerabilities")
        self.assertEqual(check["result"], "pass")
        self.assertIn("3 ignored", check["message"])
        self.assertTrue(any("not reachable: no TLS" in n for n in verdict["notes"]), verdict["notes"])
        message, _ = self.denied(self.gate, "expired/debian:12")
        self.assertIn("CVE-2024-5535", message, "an expired ignore entry stops applying")

    def test_alpine_origins_and_unknown_severity(self):
        # Alpine's record has no severity: counted as medium by default, below min_severity high.
        self.assertEqual(self.manifest(self.gate, "team/alpine:3.20").status, 200)
        _, violation = self.denied(self.gate, "strict/alpine:3.20")
        found = {f["package"]: f for f in violation["details"]["findings"]}
        self.assertEqual(set(found), {"libcrypto3", "libssl3"}, "matched through o:openssl")
        self.assertEqual(found["libssl3"]["severity"], "unknown")
        self.assertEqual(found["libssl3"]["counted_as"], "high")

    def test_rocky_rpms_match_by_name_and_source_rpm(self):
        _, violation = self.denied(self.gate, "team/rocky:9")
        found = {f["package"]: f for f in violation["details"]["findings"]}
        self.assertEqual(set(found), {"tinyssl", "tinyssl-libs"})
        self.assertEqual(found["tinyssl-libs"]["source"], "tinyssl")
        self.assertEqual(found["tinyssl"]["installed_version"], "1:3.0.7-27.el9")
        self.assertEqual(found["tinyssl"]["fixed_version"], "1:3.0.7-28.el9")

    def test_an_image_without_a_package_database_is_unknown_not_pass(self):
        r = self.manifest(self.gate, "team/static:v1")
        self.assertEqual(r.status, 200, "unknown never blocks")
        verdict = request("GET", f"{self.gate.url}/ocigate/v1/verdicts/{r.headers['Docker-Content-Digest']}").json()
        check = next(c for c in verdict["checks"] if c["check"] == "vulnerabilities")
        self.assertEqual(check["result"], "unknown")
        self.assertIn("no package inventory", check["message"])

    def test_metrics_describe_the_database(self):
        samples = self.gate.metrics()
        self.assertEqual(samples["ocigate_vulndb_loaded"], 1)
        # Debian: 3 for Debian:12 and 1 for Debian:11 (every release is kept), the withdrawn one dropped;
        # 1 Alpine, 1 Rocky.
        self.assertEqual(samples["ocigate_vulndb_records"], 6)
        self.assertLess(samples["ocigate_vulndb_age_seconds"], 3600)
        self.assertEqual(samples["ocigate_vulndb_max_age_seconds"], 72 * 3600)
        self.assertEqual(self.gate.metric_sum("ocigate_vulndb_loads_total", result="ok"), 1)

    def test_ocigate_check_prints_the_findings(self):
        config = self.gate.config_path
        result = subprocess.run([os.environ["OCIGATE_BIN"], "check", "--config", config, "up/team/debian:12"],
                                capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertRegex(result.stdout, r"DEBIAN-CVE-2024-5535\s+CVE-2024-5535\s+libssl3\s+3\.0\.19-1~deb12u2\s+"
                                        r"3\.0\.19-1~deb12u3\s+critical\s+9\.8")
        self.assertRegex(result.stdout, r"DEBIAN-CVE-2023-45853\s+CVE-2023-45853\s+zlib1g\s+1:1\.2\.13\.dfsg-1\s+no fix")
        result = subprocess.run([os.environ["OCIGATE_BIN"], "check", "--config", config, "--format", "json",
                                 "up/team/debian:12"], capture_output=True, text=True, timeout=60)
        out = json.loads(result.stdout)
        check = next(c for c in out["checks"] if c["check"] == "vulnerabilities")
        self.assertEqual(len(check["details"]["findings"]), 3)


class StreamScan(Base):
    def test_a_streamed_image_is_judged_on_its_packages_when_its_last_layer_arrives(self):
        image = harness.push_image(self.registry, "team/streamed", "12", layers=[debian_layer()])
        gate = self.gate_for(layer_scan="stream")
        self.addCleanup(gate.close)
        self.assertEqual(self.manifest(gate, "team/streamed:12").status, 200, "provisional: no layer scanned yet")
        conn = http.client.HTTPConnection("127.0.0.1", gate.port, timeout=30)
        self.addCleanup(conn.close)
        conn.request("GET", f"/v2/team/streamed/blobs/{image.layer_digests[0]}")
        resp = conn.getresponse()
        length = int(resp.getheader("Content-Length"))
        try:
            got = len(resp.read())
        except http.client.IncompleteRead as e:
            got = len(e.partial)
        self.assertLess(got, length, "the transfer is cut before its last byte")
        message, violation = self.denied(gate, "team/streamed:12")
        self.assertIn("CVE-2024-5535", message)
        self.assertEqual(violation["details"]["count"], 3)


class Capped(Base):
    def test_the_403_lists_fifty_findings_and_counts_the_rest(self):
        db = tempfile.mkdtemp(prefix="ocigate-vulndb-many-")
        self.addCleanup(shutil.rmtree, db, True)
        # 60 records on openssl: 120 findings (libssl3 and openssl are both built from it).
        many = [osv(f"DEBIAN-CVE-2025-{i:05d}", "Debian:12", "openssl", fixed="3.0.19-1~deb12u3",
                    upstream=[f"CVE-2025-{i:05d}"], vector=HIGH if i % 2 else CRITICAL) for i in range(60)]
        write_database(db, {"Debian/all.zip": zip_of(many)})
        harness.push_image(self.registry, "team/many", "12", layers=[debian_layer({"libssl3", "openssl"})])
        gate = self.gate_for(vulnerabilities={"database": db})
        self.addCleanup(gate.close)
        message, violation = self.denied(gate, "team/many:12")
        details = violation["details"]
        self.assertEqual(details["count"], 120)
        self.assertEqual(len(details["findings"]), 50)
        self.assertEqual(details["findings_omitted"], 70)
        severities = [f["severity"] for f in details["findings"]]
        self.assertEqual(severities, sorted(severities, key=lambda s: s != "critical"), "critical first")
        self.assertRegex(message, r"120 vulnerabilities at or above high \(60 critical, 60 high\) in 2 packages: "
                                  r"CVE-2025-\d{5}, .* and \d+ more")


class StartWithout(Base):
    def test_an_unusable_database_starts_the_mirror_and_the_check_says_why(self):
        broken = tempfile.mkdtemp(prefix="ocigate-vulndb-broken-")
        self.addCleanup(shutil.rmtree, broken, True)
        write_database(broken, {"Debian/all.zip": corrupt_zip(zip_of(debian_records()))})
        harness.push_image(self.registry, "team/any", "12", layers=[debian_layer()])
        gate = self.gate_for(vulnerabilities={"database": broken})
        self.addCleanup(gate.close)
        self.assertIn("no vulnerability database loaded", gate.stderr())
        self.assertEqual(gate.metrics()["ocigate_vulndb_loaded"], 0)
        self.assertEqual(gate.metric_sum("ocigate_vulndb_loads_total", result="error"), 1)
        r = self.manifest(gate, "team/any:12")
        self.assertEqual(r.status, 200)
        verdict = request("GET", f"{gate.url}/ocigate/v1/verdicts/{r.headers['Docker-Content-Digest']}").json()
        check = next(c for c in verdict["checks"] if c["check"] == "vulnerabilities")
        self.assertEqual(check["result"], "unknown")
        self.assertIn("no vulnerability database loaded: ", check["message"])
        self.assertIn("Debian/all.zip", check["message"], "names the file that could not be read")


class Update(Base):
    def setUp(self):
        self.files = FileServer()
        self.addCleanup(self.files.close)
        self.target = tempfile.mkdtemp(prefix="ocigate-vulndb-update-")
        self.addCleanup(shutil.rmtree, self.target, True)
        for rel, data in base_database().items():
            if rel.endswith(".zip"):
                self.files.put(rel, data)
        self.config = os.path.join(self.target, "ocigate.yaml")
        with open(self.config, "w") as f:
            json.dump({"upstreams": [{"name": "up", "url": self.registry.url}],
                       "vulnerabilities": {"database": os.path.join(self.target, "db"),
                                           "sources": [self.files.url("Debian/all.zip"),
                                                       self.files.url("Alpine/all.zip")]}}, f)

    def update(self):
        return subprocess.run([os.environ["OCIGATE_BIN"], "vulndb", "update", "--config", self.config],
                              capture_output=True, text=True, timeout=60)

    def test_update_installs_every_source_and_the_manifest(self):
        result = self.update()
        self.assertEqual(result.returncode, 0, result.stderr)
        for word in ("downloading", "verifying", "installed Debian/all.zip", "SIGHUP"):
            self.assertIn(word, result.stdout)
        db = os.path.join(self.target, "db")
        installed = tree(db)
        self.assertEqual(installed["Debian/all.zip"], base_database()["Debian/all.zip"])
        self.assertEqual(installed["Alpine/all.zip"], base_database()["Alpine/all.zip"])
        self.assertIn("built_at", json.loads(installed["ocigate-vulndb.json"]))
        self.assertEqual(hidden_files(db), [], "no staged file is left")

    def test_a_corrupt_zip_installs_nothing_and_keeps_the_old_database(self):
        self.assertEqual(self.update().returncode, 0)
        db = os.path.join(self.target, "db")
        before = tree(db)
        self.files.put("Debian/all.zip", zip_of(debian_records([osv("DEBIAN-CVE-2099-1", "Debian:12", "tzdata")])))
        self.files.put("Alpine/all.zip", corrupt_zip(base_database()["Alpine/all.zip"]))
        result = self.update()
        self.assertEqual(result.returncode, 1, result.stdout)
        self.assertIn("the previous database is kept", result.stderr)
        self.assertIn("Alpine/all.zip", result.stderr, "names the file that could not be read")
        self.assertEqual(tree(db), before, "all or none: the new Debian zip is not installed either")
        self.assertEqual(hidden_files(db), [])

    def test_a_missing_source_fails_and_a_config_without_sources_is_a_usage_error(self):
        with open(self.config) as f:
            config = json.load(f)
        config["vulnerabilities"]["sources"].append(self.files.url("Ubuntu/all.zip"))
        with open(self.config, "w") as f:
            json.dump(config, f)
        result = self.update()
        self.assertEqual(result.returncode, 1)
        self.assertIn("404", result.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.target, "db", "Debian", "all.zip")))
        del config["vulnerabilities"]["sources"]
        with open(self.config, "w") as f:
            json.dump(config, f)
        self.assertEqual(self.update().returncode, 2)


class Reload(Base):
    def test_an_update_and_sighup_judge_yesterdays_clean_image_again(self):
        db = tempfile.mkdtemp(prefix="ocigate-vulndb-reload-")
        self.addCleanup(shutil.rmtree, db, True)
        write_database(db, base_database())
        harness.push_image(self.registry, "team/tz", "12", layers=[debian_layer({"tzdata"})])
        gate = self.gate_for(vulnerabilities={"database": db})
        self.addCleanup(gate.close)
        self.assertEqual(self.manifest(gate, "team/tz:12").status, 200, "clean yesterday")
        self.assertEqual(self.manifest(gate, "team/tz:12").status, 200, "and from the verdict cache")
        # A SIGHUP with nothing new reads nothing.
        gate.proc.send_signal(signal.SIGHUP)
        harness.wait_until(lambda: gate.metric_sum("ocigate_vulndb_loads_total", result="unchanged") == 1, 20, "reload")
        # Today's data names tzdata.
        time.sleep(0.05)  # a modification time of its own
        write_database(db, {"Debian/all.zip": zip_of(debian_records([
            osv("DEBIAN-CVE-2026-0001", "Debian:12", "tzdata", fixed="2026a-0+deb12u1", upstream=["CVE-2026-0001"],
                vector=HIGH)]))})
        gate.proc.send_signal(signal.SIGHUP)
        harness.wait_until(lambda: gate.metric_sum("ocigate_vulndb_loads_total", result="ok") == 2, 20, "reload")
        message, _ = self.denied(gate, "team/tz:12")
        self.assertIn("CVE-2026-0001", message)
        # A half-written database is refused; the one in force stays.
        write_database(db, {"Debian/DEBIAN-CVE-2026-0002.json": b'{"id": "DEBIAN-CVE-2026-0002", "affected": ['})
        gate.proc.send_signal(signal.SIGHUP)
        harness.wait_until(lambda: gate.metric_sum("ocigate_vulndb_loads_total", result="error") == 1, 20, "reload")
        self.assertIn("vulnerability database reload refused", gate.stderr())
        self.assertEqual(gate.metrics()["ocigate_vulndb_loaded"], 1)
        message, _ = self.denied(gate, "team/tz:12")
        self.assertIn("CVE-2026-0001", message)

    def test_a_reload_keeps_open_streams_and_runs_beside_the_io_thread(self):
        db = tempfile.mkdtemp(prefix="ocigate-vulndb-big-")
        self.addCleanup(shutil.rmtree, db, True)
        write_database(db, base_database())
        blob = os.urandom(24 << 20)
        image = harness.push_image(self.registry, "team/big", "12", layers=[blob, debian_layer({"tzdata"})])
        gate = self.gate_for(vulnerabilities={"database": db}, threads=1)  # one I/O thread: signals and sessions
        self.addCleanup(gate.close)
        self.assertEqual(self.manifest(gate, "team/big:12").status, 200)
        layer = image.layer_digests[0]
        # A blob stream in flight: the header and a first piece read, the rest waits in the socket.
        sock = socket.create_connection(("127.0.0.1", gate.port), timeout=30)
        self.addCleanup(sock.close)
        sock.sendall(f"GET /v2/team/big/blobs/{layer} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        received = b""
        while b"\r\n\r\n" not in received or len(received) < 128 << 10:
            received += sock.recv(64 << 10)
        head, _, body = received.partition(b"\r\n\r\n")
        self.assertIn(b" 200 ", head.split(b"\r\n")[0])
        # A database large enough that loading it takes a while (40,000 records).
        big = [osv(f"DEBIAN-CVE-2025-{i:05d}", "Debian:12", f"pkg{i % 4000}", fixed="1.0-1", vector=HIGH)
               for i in range(40000)]
        write_database(db, {"Debian/all.zip": zip_of(debian_records(big))})
        offset = os.path.getsize(gate.stderr_path)
        gate.proc.send_signal(signal.SIGHUP)

        def load_started():
            with open(gate.stderr_path, "rb") as f:
                f.seek(offset)
                return b"loading the vulnerability database" in f.read()
        harness.wait_until(load_started, 20, "the load to start")
        started = time.monotonic()
        health = request("GET", gate.url + "/healthz", timeout=10)
        answered_in = time.monotonic() - started
        still_loading = gate.metric_sum("ocigate_vulndb_loads_total", result="ok") == 1
        self.assertEqual(health.status, 200)
        self.assertTrue(still_loading, f"/healthz answered in {answered_in:.2f} s, after the load: it ran on the I/O thread")
        harness.wait_until(lambda: gate.metric_sum("ocigate_vulndb_loads_total", result="ok") == 2, 60, "the big load")
        self.assertEqual(gate.metrics()["ocigate_vulndb_records"], 40006)
        # The stream finishes whole.
        digest = hashlib.sha256(body)
        total = len(body)
        while total < len(blob):
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            digest.update(chunk)
            total += len(chunk)
        self.assertEqual(total, len(blob))
        self.assertEqual("sha256:" + digest.hexdigest(), layer)


if __name__ == "__main__":
    unittest.main()
