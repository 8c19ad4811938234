"""The shipped Grafana dashboard (deploy/grafana/ocigate.json) and alert rules
(deploy/prometheus/alerts.yaml) against a real Prometheus (Debian's 2.42) scraping a real ocigate every
second on 127.0.0.1. The scenario pulls an allowed image, a warned one (healthcheck; no signature where
policy.trust wants one), a blocked one, cache hits, an upstream serving corrupt bytes (digest mismatch)
and an upstream that went away (stale serve), trips the auth, rate, malformed and connection limits, and
reloads (a renewed certificate, then a refused policy), in two rounds with scrapes in between so every
counter moves between samples. Then every dashboard query (template variables substituted as Grafana
would) must parse and return a finite value, every rule expression must parse and evaluate without
error, the alerts the scenario provokes must be active, and every metric name either uses must be in
ocigate's /metrics. No dashboard query is exempt from returning data: the scenario makes every series
they read exist (TLS for the expiry gauge, auth for auth failures, metrics_repositories for the top
blocked repositories, policy.trust for signatures, max_concurrent_fetches for fetch-slot timeouts).
Grafana itself is not installable here: the JSON model's structure is checked below."""

import hashlib
import http.client
import json
import math
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import unittest
import urllib.parse

import harness
from harness import request

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DASHBOARD = os.path.join(ROOT, "deploy", "grafana", "ocigate.json")
RULES = os.path.join(ROOT, "deploy", "prometheus", "alerts.yaml")

ACCEPT = {"Accept": harness.ALL_MANIFESTS}
CI_TOKEN = "tok-dash-ci-0123456789"
VIEWER_TOKEN = "tok-dash-viewer-0123456789"
CI = ("ci", CI_TOKEN)
BEARER = {"Authorization": "Bearer " + CI_TOKEN}
ALL_OFF = {c: "off" for c in ("non-root-user", "healthcheck", "no-secrets", "copy-not-add", "no-update-alone",
                              "pinned-base", "pinned-reference", "trusted-source", "image-age", "signature",
                              "no-setuid", "no-package-manager", "vulnerabilities")}

# Grafana's built-in interval variables, replaced with values that fit a scenario of about a minute
# scraped every second: rate windows span both rounds, $__range the whole run.
BUILTINS = {"__rate_interval": "2m", "__interval": "15s", "__range": "10m"}
PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and", "or",
                   "unless", "inf", "nan"}
DEADLINE = 20  # seconds any wait on Prometheus may take


def setUpModule():
    if not os.environ.get("OCIGATE_BIN"):
        raise unittest.SkipTest("OCIGATE_BIN is not set (run through ctest)")
    for tool in ("openssl", "skopeo"):
        if not shutil.which(tool):
            raise unittest.SkipTest(tool + " is not installed")
    if not shutil.which("prometheus"):
        raise RuntimeError("prometheus is not installed: Debian's prometheus package (scripts/setup installs it)")


def openssl(*args):
    return subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60, text=True).stdout


def not_after(cert_path):
    """The certificate's notAfter as unix seconds, as the openssl CLI reads it."""
    text = openssl("x509", "-enddate", "-noout", "-in", cert_path).strip()
    return ssl.cert_time_to_seconds(text.split("=", 1)[1])


class Prometheus:
    """`prometheus` on 127.0.0.1:<free port> with its own data directory, scraping one target in job
    "ocigate" every second and evaluating `rule_file` every second."""

    def __init__(self, target, rule_file):
        self.dir = harness._make_dir("ocigate-prometheus-")
        self.target, self.rule_file = target, rule_file
        self.port = harness.free_port()
        self.proc = None
        self.log_path = os.path.join(self.dir, "prometheus.log")
        self.config_path = os.path.join(self.dir, "prometheus.yml")
        config = {"global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
                  "rule_files": [rule_file],
                  "scrape_configs": [{"job_name": "ocigate", "static_configs": [{"targets": [target]}]}]}
        with open(self.config_path, "w") as f:
            json.dump(config, f)  # JSON is valid YAML

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        for _ in range(3):
            self.proc = harness._spawn(["prometheus", "--config.file", self.config_path,
                                        "--storage.tsdb.path", os.path.join(self.dir, "data"),
                                        "--web.listen-address", f"127.0.0.1:{self.port}", "--log.level", "warn"],
                                       self.log_path)
            try:
                harness.wait_until(lambda: self.proc.poll() is None and
                                   request("GET", self.url + "/-/ready", timeout=2).status == 200,
                                   harness.START_TIMEOUT, "prometheus /-/ready")
                return self
            except TimeoutError:
                harness._kill(self.proc)
                log = harness.process_log_tail(self.log_path)
                if "address already in use" not in log:
                    raise RuntimeError("prometheus did not start:\n" + log)
                self.port = harness.free_port()
        raise RuntimeError("prometheus: no free port after 3 attempts")

    def api(self, path, **params):
        r = request("GET", f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params, doseq=True)}", timeout=10)
        body = r.json()
        if body.get("status") != "success":
            raise AssertionError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr):
        data = self.api("query", query=expr)
        if data["resultType"] == "vector":
            return [(s["metric"], float(s["value"][1])) for s in data["result"]]
        if data["resultType"] == "scalar":
            return [({}, float(data["result"][1]))]
        raise AssertionError(f"{expr}: unexpected result type {data['resultType']}")

    def wait_for_scrape_after(self, moment):
        """Returns once a scrape of ocigate that started after `moment` (unix time) is stored."""
        harness.wait_until(lambda: any(v > moment for _, v in self.query('timestamp(up{job="ocigate"} == 1)')),
                           DEADLINE, "a scrape of ocigate after the scenario's last step")

    def close(self):
        if self.proc:
            harness._terminate(self.proc)
        harness._remove_dir(self.dir)


# ---- reading the dashboard and the rules ----

def load_dashboard():
    with open(DASHBOARD) as f:
        return json.load(f)


def dashboard_panels(dashboard):
    """Every panel that is not a row, rows' nested panels included."""
    out = []
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            out.extend(panel.get("panels", []))
        else:
            out.append(panel)
    return out


def rule_alert_names():
    with open(RULES) as f:
        return re.findall(r"^\s*- alert: (\w+)\s*$", f.read(), re.M)


def substitute(expr, variables):
    """Grafana's interpolation of $name and ${name}, longest names first."""
    values = dict(BUILTINS, **variables)
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace("${" + name + "}", values[name]).replace("$" + name, values[name])
    if "$" in expr:
        raise AssertionError("uninterpolated variable left in " + expr)
    return expr


def grafana_regex(value):
    """A variable value as Grafana writes it into a =~ matcher: regex-escaped, inside a PromQL string."""
    return re.sub(r"([\\^$.|?*+()\[\]{}])", r"\\\\\1", value)


def metric_names(expr):
    """Metric names in a PromQL expression: identifiers that are not functions, keywords, label names
    (inside {...} and by/on/... lists), durations or strings."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.:$])[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        word = match.group(0)
        if word.lower() in PROMQL_KEYWORDS or text[match.end():].lstrip().startswith("("):
            continue
        names.add(word)
    return names


def exported_names(metrics_text):
    names = set()
    for line in metrics_text.splitlines():
        if line and not line.startswith("#"):
            names.add(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0))
    return names


def label_values_query(definition):
    """label_values(<selector>, <label>) -> (selector, label)."""
    match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", definition.strip())
    if not match:
        raise AssertionError("unsupported variable query " + definition)
    return match.group(1), match.group(2)


class DashboardModel(unittest.TestCase):
    """What Grafana 10 needs to import the model and what makes it usable: checked without Grafana."""

    def test_panels_have_datasource_targets_units_descriptions_and_sane_positions(self):
        dashboard = load_dashboard()
        self.assertGreaterEqual(dashboard["schemaVersion"], 36, "Grafana 9/10 schema")
        self.assertTrue(dashboard["uid"])
        self.assertTrue(dashboard["title"])
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        self.assertEqual(variables["datasource"]["type"], "datasource")
        self.assertEqual(variables["datasource"]["query"], "prometheus")
        for name in ("instance", "upstream", "check"):
            self.assertEqual(variables[name]["type"], "query", name)
            self.assertEqual(variables[name]["datasource"]["uid"], "${datasource}", name)
        nested = [p for row in dashboard["panels"] if row["type"] == "row" for p in row.get("panels", [])]
        ids = [p["id"] for p in dashboard["panels"] + nested]
        self.assertEqual(len(ids), len(set(ids)), "panel ids are unique")
        rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
        self.assertEqual(rows, ["Gate", "Mirror", "Abuse / security"])
        cells = set()
        for panel in dashboard["panels"]:
            pos = panel["gridPos"]
            with self.subTest(panel=panel["title"]):
                self.assertTrue(0 <= pos["x"] and 0 < pos["w"] and pos["x"] + pos["w"] <= 24, pos)
                self.assertTrue(0 <= pos["y"] and 0 < pos["h"] <= 30, pos)
                for x in range(pos["x"], pos["x"] + pos["w"]):
                    for y in range(pos["y"], pos["y"] + pos["h"]):
                        self.assertFalse((x, y) in cells, f"overlaps another panel at x={x} y={y}")
                        cells.add((x, y))
        for panel in dashboard_panels(dashboard):
            with self.subTest(panel=panel.get("title")):
                self.assertTrue(panel.get("title"))
                self.assertGreater(len(panel.get("description", "")), 40, "a description that explains the panel")
                self.assertEqual(panel["datasource"], {"type": "prometheus", "uid": "${datasource}"})
                self.assertTrue(panel["fieldConfig"]["defaults"].get("unit"), "a unit")
                self.assertTrue(panel["targets"], "at least one query")
                refs = [t["refId"] for t in panel["targets"]]
                self.assertEqual(len(refs), len(set(refs)))
                for target in panel["targets"]:
                    self.assertEqual(target["datasource"], panel["datasource"])
                    self.assertTrue(target["expr"].strip())
                    self.assertTrue(target.get("legendFormat"), "a legend")
                    if "$instance" not in target["expr"]:
                        self.fail("query ignores the instance variable: " + target["expr"])

    def test_metric_name_extraction_finds_names_and_skips_everything_else(self):
        expr = ('histogram_quantile(0.99, sum by (upstream, le) (rate(ocigate_upstream_request_duration_seconds_bucket'
                '{instance=~"$instance", upstream=~"a|b"}[$__rate_interval]))) / on (job) group_left up '
                'unless ocigate_x_total offset 15m > 1e3 * 14 * 86400')
        self.assertEqual(metric_names(expr), {"ocigate_upstream_request_duration_seconds_bucket", "up",
                                              "ocigate_x_total"})


class AgainstPrometheus(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = harness._make_dir("ocigate-dashboards-")
        cls.closers = []
        try:
            cls.scenario()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for close in reversed(cls.closers):
            close()
        harness._remove_dir(cls.tmp)

    # ---- the scenario ----

    @classmethod
    def scenario(cls):
        started = time.monotonic()
        cls.ca = harness.Pki(cls.tmp, days=30, name="ocigate dashboards CA")
        cls.cert_a, cls.key_a = cls.ca.server_cert("gate-a", days=7)
        cls.cert_b, cls.key_b = cls.ca.server_cert("gate-b", days=3)
        cls.cert_file, cls.key_file = os.path.join(cls.tmp, "tls.crt"), os.path.join(cls.tmp, "tls.key")
        shutil.copy(cls.cert_a, cls.cert_file)
        shutil.copy(cls.key_a, cls.key_file)
        signer_key = os.path.join(cls.tmp, "signer.pem")
        openssl("ecparam", "-genkey", "-name", "prime256v1", "-out", signer_key)
        cls.signer_pub = os.path.join(cls.tmp, "signer.pub")
        openssl("ec", "-in", signer_key, "-pubout", "-out", cls.signer_pub)

        cls.registry = harness.Registry().start()
        cls.closers.append(cls.registry.close)
        cls.flaky = harness.Registry().start()
        cls.closers.append(cls.flaky.close)
        r = cls.registry
        healthy = {"config": {"User": "1000:1000", "Healthcheck": {"Test": ["CMD", "true"]}}}
        # Two layers: a client's first layer GET starts pull-ahead for the other (its panel's series).
        cls.good = harness.push_image(r, "team/good", "v1", config_overrides=healthy,
                                      layers=[{"hello.txt": b"hello\n"}, {"app/data.txt": b"data\n"}])
        cls.fresh = harness.push_image(r, "team/fresh", "v1", config_overrides=healthy)
        cls.nohealth = harness.push_image(r, "team/nohealth", "v1", config_overrides={"config": {"User": "app"}})
        cls.root = harness.push_image(r, "team/root", "v1", layers=[{"app": b"root"}],
                                      config_overrides={"config": {"User": "root",
                                                                   "Healthcheck": {"Test": ["CMD", "true"]}}})
        cls.corrupt = harness.push_image(r, "team/corrupt", "v1", layers=[{"data": os.urandom(4096)}],
                                         config_overrides=healthy)
        r.corrupt_blob(cls.corrupt.layer_digests[0])
        harness.push_image(cls.flaky, "team/stale", "v1", config_overrides=healthy)

        cls.gate = cls.start_gate()
        cls.closers.append(cls.gate.close)
        cls.instance = cls.gate.host
        cls.prometheus = Prometheus(cls.instance, RULES).start()
        cls.closers.append(cls.prometheus.close)
        cls.expiry_at_start = cls.gate.metric_sum("ocigate_tls_certificate_expiry_timestamp_seconds")

        cls.round_one()
        cls.prometheus.wait_for_scrape_after(time.time())
        cls.round_two()
        cls.prometheus.wait_for_scrape_after(time.time())
        cls.metrics_text = request("GET", cls.gate.url + "/metrics", cafile=cls.gate.cafile).body.decode()
        cls.scenario_seconds = time.monotonic() - started

    @classmethod
    def start_gate(cls):
        policy = {"mode": "enforce",
                  "checks": dict(ALL_OFF, **{"non-root-user": "block", "healthcheck": "warn", "signature": "warn",
                                             "no-setuid": "warn"}),
                  "metrics_repositories": ["up/team/**"],
                  "trust": [{"match": "up/team/nohealth", "cosign": {"keys": [cls.signer_pub]}}]}
        auth = {"tokens": [{"user": "ci", "sha256": hashlib.sha256(CI_TOKEN.encode()).hexdigest()},
                           {"user": "viewer", "sha256": hashlib.sha256(VIEWER_TOKEN.encode()).hexdigest()}],
                "rules": [{"users": ["ci"], "repositories": ["**"]},
                          {"users": ["viewer"], "repositories": ["up/team/good"]}]}
        # A one-record vulnerability database: its gauges exist (OcigateVulnDbStale reads them).
        vulndb = os.path.join(cls.tmp, "vulndb")
        os.makedirs(vulndb, exist_ok=True)
        with open(os.path.join(vulndb, "DEBIAN-CVE-2024-0001.json"), "w") as f:
            json.dump({"id": "DEBIAN-CVE-2024-0001", "modified": "2026-11-01T00:00:00Z",
                       "affected": [{"package": {"ecosystem": "Debian:12", "name": "openssl"},
                                     "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}]}]}, f)
        gate = harness.Ocigate([{"name": "up", "url": cls.registry.url, "max_concurrent_fetches": 8},
                                {"name": "flaky", "url": cls.flaky.url, "tag_ttl": "1s", "connect_timeout": "2s"}],
                               default_upstream="up", max_size="64MiB",
                               extra={"policy": policy, "auth": auth, "vulnerabilities": {"database": vulndb}})
        gate.config["server"].update({
            "tls": {"cert_file": cls.cert_file, "key_file": cls.key_file, "allow_plain_http": True},
            "requests_per_second": 100, "malformed_per_minute": 5, "max_connections_per_client": 24})
        gate.cafile = cls.ca.ca_cert
        gate._write_config()
        try:
            return gate.start()
        except BaseException:
            gate.close()
            raise

    @classmethod
    def copy(cls, ref):
        dest = tempfile.mkdtemp(prefix="ocigate-copy-", dir=cls.tmp)
        try:
            return harness.skopeo_copy(f"{cls.gate.host}/{ref}", dest, creds=CI, timeout=60)
        finally:
            shutil.rmtree(dest, ignore_errors=True)

    @classmethod
    def get(cls, path, headers=None, **kwargs):
        return request("GET", cls.gate.url + path, headers={**ACCEPT, **BEARER, **(headers or {})},
                       cafile=cls.gate.cafile, **kwargs)

    @classmethod
    def cut_get(cls, path):
        """A GET whose body may be cut: ocigate holds a blob's last byte until its digest matches, so a
        mismatch is a 502 before the first byte or a 200 cut short. Returns whether the body arrived whole."""
        context = ssl.create_default_context(cafile=cls.gate.cafile)
        conn = http.client.HTTPSConnection("127.0.0.1", cls.gate.port, timeout=30, context=context)
        try:
            conn.request("GET", path, headers=BEARER)
            resp = conn.getresponse()
            length = int(resp.getheader("Content-Length", "-1"))
            try:
                whole = resp.status == 200 and len(resp.read()) == length
            except (http.client.IncompleteRead, ConnectionError):
                whole = False
            return whole
        finally:
            conn.close()

    @classmethod
    def round_one(cls):
        cls.results = {"good": cls.copy("team/good:v1"), "warned": cls.copy("team/nohealth:v1"),
                       "blocked": cls.copy("team/root:v1"), "cached": cls.copy("team/good:v1"),
                       "stale_first": cls.copy("flaky/team/stale:v1")}
        cls.common_pulls()

    @classmethod
    def round_two(cls):
        cls.reload_certificate()
        cls.results["fresh"] = cls.copy("team/fresh:v1")
        cls.results["by_digest"] = cls.get(f"/v2/team/good/manifests/{cls.good.digest}")
        cls.results["cached_again"] = cls.copy("team/good:v1")
        cls.common_pulls()
        cls.refused_reload()

    @classmethod
    def common_pulls(cls):
        """What both rounds do, so that each of these counters moves between two scrapes."""
        cls.results.setdefault("blocked_get", []).append(cls.get("/v2/team/root/manifests/v1"))
        cls.results.setdefault("unreferenced", []).append(cls.get(f"/v2/team/root/blobs/{cls.root.layer_digests[0]}"))
        cls.get("/v2/team/corrupt/manifests/v1")  # its layer prefetch meets the corrupt bytes (round one)
        cls.results.setdefault("mismatch", []).append(cls.cut_get(f"/v2/team/corrupt/blobs/{cls.corrupt.layer_digests[0]}"))
        cls.results.setdefault("warned_get", []).append(cls.get("/v2/team/nohealth/manifests/v1"))
        if cls.flaky.running():
            cls.flaky.stop()
        time.sleep(1.1)  # past the flaky upstream's tag_ttl: the next pull revalidates, fails, serves stale
        cls.results.setdefault("stale", []).append(cls.get("/v2/flaky/team/stale/manifests/v1"))
        cls.results.setdefault("auth", []).append([
            request("GET", cls.gate.url + "/v2/team/good/manifests/v1", headers=ACCEPT, cafile=cls.gate.cafile).status,
            cls.get("/v2/team/good/manifests/v1", headers={"Authorization": "Bearer wrong-token"}).status,
            cls.get("/v2/team/root/manifests/v1", headers={"Authorization": "Bearer " + VIEWER_TOKEN}).status])
        cls.results.setdefault("limits", []).append(cls.trip_limits())

    @classmethod
    def trip_limits(cls):
        """Each abuse limit once, each from a loopback address of its own (127.0.0.2-4): the limits are per
        client address, so the scenario's own pulls and Prometheus's scrapes from 127.0.0.1 stay untouched."""
        return {"rate": cls.until_refused("127.0.0.2", "/v2/", 429, 1000),
                "malformed": cls.until_refused("127.0.0.3", "/v2/team/good/blobs/sha256:zz", 429, 50),
                "connections": cls.extra_connection_closed("127.0.0.4")}

    @classmethod
    def until_refused(cls, source, path, status, limit):
        conn = None
        try:
            for _ in range(limit):
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", cls.gate.port, timeout=10,
                                                      source_address=(source, 0))
                conn.request("GET", path, headers=BEARER)
                resp = conn.getresponse()
                resp.read()
                if resp.status == status:
                    return True
                if resp.will_close:
                    conn.close()
                    conn = None
            return False
        finally:
            if conn:
                conn.close()

    @classmethod
    def extra_connection_closed(cls, source):
        limit = cls.gate.config["server"]["max_connections_per_client"]
        held = []
        try:
            for _ in range(limit):
                s = socket.create_connection(("127.0.0.1", cls.gate.port), timeout=10, source_address=(source, 0))
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                held.append(s)
            for s in held:  # an answer on each: the server has counted them all
                if not s.recv(100).startswith(b"HTTP/1.1 200"):
                    return False
            extra = socket.create_connection(("127.0.0.1", cls.gate.port), timeout=10, source_address=(source, 0))
            held.append(extra)
            try:
                extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                return extra.recv(100) == b""
            except ConnectionError:
                return True
        finally:
            for s in held:
                s.close()

    @classmethod
    def reload_certificate(cls):
        """A renewed certificate (3 days instead of 7) and a valid config: SIGHUP reloads both."""
        for source, target in ((cls.cert_b, cls.cert_file), (cls.key_b, cls.key_file)):
            shutil.copy(source, target + ".new")
            os.replace(target + ".new", target)
        cls.gate.proc.send_signal(signal.SIGHUP)
        harness.wait_until(lambda: cls.gate.metric_sum("ocigate_policy_reloads_total", result="ok") == 1, DEADLINE,
                           "the policy and certificate reload")
        cls.expiry_after_reload = cls.gate.metric_sum("ocigate_tls_certificate_expiry_timestamp_seconds")

    @classmethod
    def refused_reload(cls):
        with open(cls.gate.config_path) as f:
            good_config = f.read()
        broken = json.loads(good_config)
        broken["policy"]["checks"]["no-such-check"] = "block"
        with open(cls.gate.config_path, "w") as f:
            json.dump(broken, f)
        cls.gate.proc.send_signal(signal.SIGHUP)
        try:
            harness.wait_until(lambda: cls.gate.metric_sum("ocigate_policy_reloads_total", result="error") == 1,
                               DEADLINE, "the refused reload")
        finally:
            with open(cls.gate.config_path, "w") as f:
                f.write(good_config)

    # ---- helpers ----

    def variables(self, **overrides):
        values = {"datasource": "prometheus", "instance": grafana_regex(self.instance), "upstream": ".*",
                  "check": ".*"}
        values.update(overrides)
        return values

    def dashboard_queries(self):
        """(panel title, expression) for every target of every panel."""
        return [(panel["title"], target["expr"]) for panel in dashboard_panels(load_dashboard())
                for target in panel["targets"]]

    def rules(self):
        return [rule for group in self.prometheus.api("rules")["groups"] for rule in group["rules"]]

    # ---- the tests ----

    def test_the_scenario_did_what_the_panels_must_show(self):
        self.assertLess(self.scenario_seconds, 90, "the scenario must stay well inside ctest's budget")
        results = self.results
        for name in ("good", "warned", "cached", "fresh", "cached_again", "stale_first"):
            self.assertEqual(results[name].returncode, 0, f"{name}: {results[name].stderr}")
        self.assertNotEqual(results["blocked"].returncode, 0)
        self.assertIn("non-root-user", results["blocked"].stderr)
        self.assertEqual(results["by_digest"].status, 200)
        for key, wanted in (("blocked_get", 403), ("unreferenced", 403), ("warned_get", 200), ("stale", 200)):
            self.assertEqual([r.status for r in results[key]], [wanted, wanted], key)
        self.assertEqual(results["mismatch"], [False, False], "the corrupt layer never arrives whole")
        self.assertGreaterEqual(harness.parse_metrics(self.metrics_text).get('ocigate_digest_mismatches_total{upstream="up"}', 0), 2)
        self.assertTrue(any("ocigate" in (w or "") for w in results["stale"][0].headers.get_all("Warning") or []),
                        "a stale serve carries a Warning header")
        self.assertEqual(results["auth"], [[401, 401, 403], [401, 401, 403]])
        self.assertEqual(results["limits"], [{"rate": True, "malformed": True, "connections": True}] * 2)

    def test_every_dashboard_query_parses_and_returns_a_finite_value(self):
        queries = self.dashboard_queries()
        self.assertGreaterEqual(len(queries), 30)
        for title, expr in queries:
            with self.subTest(panel=title, expr=expr):
                samples = self.prometheus.query(substitute(expr, self.variables()))
                self.assertTrue(samples, "no data")
                self.assertTrue(any(math.isfinite(v) for _, v in samples), f"only NaN/Inf: {samples}")

    def test_blocked_pull_panels_show_the_blocked_pull(self):
        panels = {p["title"]: p for p in dashboard_panels(load_dashboard())}
        by_check = panels["Blocked pulls by check"]["targets"][0]["expr"]
        for check in (".*", grafana_regex("non-root-user")):
            samples = self.prometheus.query(substitute(by_check, self.variables(check=check)))
            self.assertEqual([(m.get("check"), v > 0) for m, v in samples], [("non-root-user", True)], samples)
        samples = self.prometheus.query(substitute(by_check, self.variables(check="healthcheck")))
        self.assertEqual(samples, [], "the check variable filters")
        by_upstream = panels["Blocked pulls by upstream"]["targets"][0]["expr"]
        samples = self.prometheus.query(substitute(by_upstream, self.variables()))
        self.assertEqual([(m.get("upstream"), v > 0) for m, v in samples], [("up", True)], samples)
        top = panels["Top blocked repositories"]["targets"][0]["expr"]
        samples = self.prometheus.query(substitute(top, self.variables()))
        self.assertEqual([(m.get("repository"), v >= 1) for m, v in samples], [("up/team/root", True)], samples)
        verdicts = panels["Decisions by verdict"]["targets"][0]["expr"]
        seen = {m.get("verdict") for m, _ in self.prometheus.query(substitute(verdicts, self.variables()))}
        self.assertEqual(seen, {"allow", "warn", "block"})

    def test_pull_ahead_panel_shows_the_two_layer_image_taken_ahead(self):
        panels = {p["title"]: p for p in dashboard_panels(load_dashboard())}
        expr = panels["Pull-ahead layers by result"]["targets"][0]["expr"]
        results = {m.get("result") for m, v in self.prometheus.query(substitute(expr, self.variables()))}
        self.assertTrue(results and results <= {"fetched", "cached"}, results)

    def test_template_variables_list_the_scenario_values(self):
        dashboard = load_dashboard()
        wanted = {"instance": {self.instance}, "upstream": {"up", "flaky"}, "check": {"non-root-user", "healthcheck",
                                                                                    "signature"}}
        for variable in dashboard["templating"]["list"]:
            if variable["type"] != "query":
                continue
            with self.subTest(variable=variable["name"]):
                selector, label = label_values_query(variable["definition"])
                self.assertEqual(variable["query"]["query"], variable["definition"])
                values = set(self.prometheus.api(f"label/{label}/values",
                                                 **{"match[]": substitute(selector, self.variables())}))
                self.assertTrue(wanted[variable["name"]] <= values, values)

    def test_every_rule_expression_parses_and_evaluates_and_the_provoked_alerts_are_active(self):
        rules = self.rules()
        self.assertEqual(sorted(r["name"] for r in rules), sorted(rule_alert_names()), "every rule loaded")
        for rule in rules:
            with self.subTest(alert=rule["name"]):
                self.prometheus.query(rule["query"])  # raises unless it parses and evaluates
                harness.wait_until(lambda: self.rule_state(rule["name"])["health"] != "unknown", DEADLINE,
                                   "an evaluation of " + rule["name"])
                state = self.rule_state(rule["name"])
                self.assertEqual((state["health"], state.get("lastError", "")), ("ok", ""))
        # What the scenario provokes: states as Prometheus reports them (rules with `for` are pending first).
        expected = {"OcigateDigestMismatch": "firing", "OcigatePolicyReloadFailed": "firing",
                    "OcigateSignatureVerificationFailed": "firing", "OcigateTLSCertificateExpiresSoon": "pending",
                    "OcigateUpstreamErrors": "pending"}

        def active():
            return {a["labels"]["alertname"]: a for a in self.prometheus.api("alerts")["alerts"]}

        harness.wait_until(lambda: {n: a["state"] for n, a in active().items() if n in expected} == expected,
                           DEADLINE, "the alerts the scenario provokes: " + str(expected))
        alerts = active()
        self.assertEqual(alerts["OcigateDigestMismatch"]["labels"]["upstream"], "up")
        self.assertEqual(alerts["OcigateUpstreamErrors"]["labels"]["upstream"], "flaky")
        self.assertIn("docs/operations.md#ocigatepolicyreloadfailed",
                      alerts["OcigatePolicyReloadFailed"]["annotations"]["description"])
        for quiet in ("OcigateDown", "OcigateTargetMissing", "OcigateCacheNearFull", "OcigateCacheEvictingHot",
                      "OcigateCorruptCachedBlob", "OcigateFetchSlotTimeouts", "OcigateVulnDbStale"):
            self.assertNotIn(quiet, alerts)

    def rule_state(self, name):
        return next(r for r in self.rules() if r["name"] == name)

    def test_every_metric_name_in_the_dashboard_and_rules_is_exported(self):
        used = {}
        dashboard = load_dashboard()
        expressions = [expr for _, expr in self.dashboard_queries()]
        expressions += [label_values_query(v["definition"])[0] for v in dashboard["templating"]["list"]
                        if v["type"] == "query"]
        expressions += [rule["query"] for rule in self.rules()]
        for expr in expressions:
            for name in metric_names(expr):
                used.setdefault(name, expr)
        self.assertGreaterEqual(len(used), 25, sorted(used))
        self.assertTrue({"up", "ocigate_blocked_pulls_total", "ocigate_policy_evaluation_seconds_bucket",
                         "ocigate_tls_certificate_expiry_timestamp_seconds"} <= set(used), sorted(used))
        exported = exported_names(self.metrics_text) | {"up"}  # up: Prometheus's own, per target
        missing = {name: expr for name, expr in used.items() if name not in exported}
        self.assertEqual(missing, {}, "metrics the dashboard or rules use that ocigate does not export")

    def test_certificate_expiry_gauge_is_the_served_certificate_and_follows_reload(self):
        self.assertEqual(self.expiry_at_start, not_after(self.cert_a))
        self.assertEqual(self.expiry_after_reload, not_after(self.cert_b))
        self.assertLess(self.expiry_after_reload, self.expiry_at_start)
        served = ssl.create_default_context(cafile=self.ca.ca_cert)
        with socket.create_connection(("127.0.0.1", self.gate.port), timeout=10) as raw:
            with served.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                peer = tls.getpeercert()
        self.assertEqual(ssl.cert_time_to_seconds(peer["notAfter"]), self.expiry_after_reload,
                         "the gauge is what new connections are served")
        self.assertEqual(self.gate.metric_sum("ocigate_cache_max_size_bytes"), 64 << 20)


if __name__ == "__main__":
    unittest.main()
