"""notify.webhooks end to end: a real docker-registry upstream, ocigate in front, skopeo pulling, and
a loopback receiver. A blocked and a warned pull, a digest mismatch and a refused reload each arrive
as one signed POST with the audit line's fields and the instance name; a 500 is retried; a receiver
that stalls or is down never delays a pull, and what cannot be delivered is counted as failed or
dropped. SIGHUP swaps the webhooks."""

import hashlib
import hmac
import http.client
import http.server
import json
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
import unittest

import harness
from harness import request

ACCEPT = {"Accept": harness.ALL_MANIFESTS}
SECRET = "webhook-secret-\u00e9"  # the key is the file's bytes without the final newline
CHECKS_OFF = ("non-root-user", "healthcheck", "no-secrets", "copy-not-add", "no-update-alone", "pinned-base",
              "pinned-reference", "trusted-source", "image-age", "signature", "no-setuid", "no-package-manager",
              "vulnerabilities")
POLICY = {"mode": "enforce",
          "checks": dict({c: "off" for c in CHECKS_OFF}, **{"non-root-user": "block", "healthcheck": "warn"})}


def setUpModule():
    if not os.environ.get("OCIGATE_BIN"):
        raise unittest.SkipTest("OCIGATE_BIN is not set (run through ctest)")


class Receiver:
    """A loopback webhook receiver. behaviour(n) -> status for the n-th request (0-based), or None
    to hold the connection open without answering (a stalled receiver)."""

    def __init__(self, behaviour=lambda n: 200):
        self.behaviour = behaviour
        self.requests = []  # (headers as dict, body bytes), in arrival order
        self.lock = threading.Lock()
        self.release = threading.Event()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    n = len(receiver.requests)
                    receiver.requests.append(({k: v for k, v in self.headers.items()}, body, self.path))
                status = receiver.behaviour(n)
                if status is None:
                    receiver.release.wait(30)
                    return
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = harness.QuietHTTPServer(Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/hook"

    def events(self, kind=None):
        with self.lock:
            got = list(self.requests)
        out = []
        for headers, body, _ in got:
            payload = json.loads(body)
            if kind is None or payload["event"] == kind:
                out.append((headers, body, payload))
        return out

    def wait_for(self, kind, count=1, timeout=10):
        harness.wait_until(lambda: len(self.events(kind)) >= count, timeout, f"{count} {kind} webhook(s)")
        return self.events(kind)

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def closed_port():
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def event_log(gate):
    """The whole of ocigate's event log (stderr), not only its tail: debug lines are many."""
    with open(gate.stderr_path, encoding="utf-8", errors="replace") as f:
        return f.read()


def signature(body):
    return "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


class Webhooks(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.registry = harness.Registry().start()
        r = cls.registry
        cls.root = harness.push_image(r, "team/root", "v1", layers=[{"app": b"root"}],
                                      config_overrides={"config": {"User": "root",
                                                                   "Healthcheck": {"Test": ["CMD", "true"]}}})
        cls.nohealth = harness.push_image(r, "team/nohealth", "v1", layers=[{"app": b"nohealth"}],
                                          config_overrides={"config": {"User": "1000"}})
        cls.bad = harness.push_image(r, "team/bad", "v1", layers=[{"app": b"corrupt me" * 100}],
                                     config_overrides={"config": {"User": "1000",
                                                                  "Healthcheck": {"Test": ["CMD", "true"]}}})
        cls.registry.corrupt_blob(cls.bad.layer_digests[0])
        cls.dir = tempfile.mkdtemp(prefix="ocigate-notify-")
        cls.secret_file = os.path.join(cls.dir, "webhook.secret")
        with open(cls.secret_file, "w", encoding="utf-8") as f:
            f.write(SECRET + "\n")

    @classmethod
    def tearDownClass(cls):
        cls.registry.__exit__(None, None, None)
        shutil.rmtree(cls.dir, True)

    def receiver(self, behaviour=lambda n: 200):
        receiver = Receiver(behaviour)
        self.addCleanup(receiver.close)
        return receiver

    def webhook(self, url, events=("block", "warn", "digest_mismatch", "policy_reload_failed"), timeout="2s",
                repeat_window=None):
        hook = {"url": url, "events": list(events), "secret_file": self.secret_file, "timeout": timeout}
        if repeat_window is not None:
            hook["repeat_window"] = repeat_window
        return hook

    def gate(self, webhooks):
        gate = harness.Ocigate([{"name": "up", "url": self.registry.url}], default_upstream="up",
                               extra={"policy": POLICY, "notify": {"webhooks": webhooks}})
        gate.config["server"]["instance"] = "notify-test-1"
        gate._write_config()
        gate.start()
        self.addCleanup(gate.__exit__, None, None, None)
        return gate

    def copy(self, gate, ref):
        dest = tempfile.mkdtemp(prefix="ocigate-copy-")
        self.addCleanup(shutil.rmtree, dest, True)
        started = time.monotonic()
        result = harness.skopeo_copy(f"{gate.host}/{ref}", dest, timeout=60)
        return result, time.monotonic() - started

    def test_a_blocked_pull_arrives_signed_with_the_audit_lines_fields(self):
        receiver = self.receiver()
        gate = self.gate([self.webhook(receiver.url)])
        result, _ = self.copy(gate, "team/root:v1")
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("non-root-user", result.stderr)
        headers, body, event = receiver.wait_for("block")[0]
        self.assertEqual(headers["X-Ocigate-Signature"], signature(body))
        self.assertEqual(headers["X-Ocigate-Event"], "block")
        self.assertEqual(headers["Content-Type"], "application/json")
        self.assertRegex(headers["X-Ocigate-Delivery"], r"^[0-9a-f]{32}$")
        self.assertEqual(event["instance"], "notify-test-1")
        self.assertEqual(event["image"], "up/team/root")
        self.assertEqual(event["reference"], "v1")
        self.assertEqual(event["digest"], self.root.digest)
        self.assertEqual(event["verdict"], "block")
        self.assertTrue(event["client"].startswith("127.0.0.1"), event["client"])
        self.assertRegex(event["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertTrue(event["policy_version"])
        checks = {v["check"]: v for v in event["violations"]}
        self.assertEqual(checks["non-root-user"]["action"], "block")
        self.assertTrue(checks["non-root-user"]["remediation"])
        # The same fields as the audit line.
        with open(gate.stdout_path) as f:
            audits = [json.loads(l) for l in f if '"log":"audit"' in l]
        audit = next(a for a in audits if a["digest"] == self.root.digest)
        for key in ("client", "image", "reference", "digest", "verdict", "violations", "policy_version", "instance"):
            self.assertEqual(event[key], audit[key], key)
        # A forged body does not match.
        self.assertNotEqual(signature(body + b" "), headers["X-Ocigate-Signature"])
        harness.wait_until(lambda: gate.metric_sum("ocigate_notify_events_total", result="delivered") >= 1, 5,
                           "delivered counted")

    def test_a_warned_pull_and_a_digest_mismatch_are_events_too(self):
        receiver = self.receiver()
        gate = self.gate([self.webhook(receiver.url)])
        result, _ = self.copy(gate, "team/nohealth:v1")
        self.assertEqual(result.returncode, 0, result.stderr)
        _, _, warned = receiver.wait_for("warn")[0]
        self.assertEqual(warned["verdict"], "warn")
        self.assertEqual(warned["image"], "up/team/nohealth")
        self.assertEqual([v["check"] for v in warned["violations"]], ["healthcheck"])
        # Judging the manifest may prefetch the layer; the blob GET fetches it otherwise. Either way
        # the corrupted bytes are caught and told.
        request("GET", f"{gate.url}/v2/team/bad/manifests/v1", headers=ACCEPT)
        # The answer may start as a 200 that is cut before its last byte: the bytes never all arrive.
        try:
            blob = request("GET", f"{gate.url}/v2/team/bad/blobs/{self.bad.layer_digests[0]}")
            self.assertNotEqual(blob.status, 200)
        except http.client.IncompleteRead:
            pass
        headers, body, mismatch = receiver.wait_for("digest_mismatch")[0]
        self.assertEqual(headers["X-Ocigate-Signature"], signature(body))
        self.assertEqual(mismatch["upstream"], "up")
        self.assertEqual(mismatch["repository"], "team/bad")
        self.assertEqual(mismatch["digest"], self.bad.layer_digests[0])
        self.assertRegex(mismatch["actual"], r"^sha256:[0-9a-f]{64}$")
        self.assertNotEqual(mismatch["actual"], mismatch["digest"])
        self.assertEqual(mismatch["instance"], "notify-test-1")

    def test_a_500_is_retried_with_the_same_delivery_id(self):
        receiver = self.receiver(lambda n: 500 if n == 0 else 200)
        # A long timeout: this test is about the 500, and an answer that a loaded machine is slow to
        # read must not turn into a second retry.
        gate = self.gate([self.webhook(receiver.url, events=["block"], timeout="20s")])
        r = request("GET", f"{gate.url}/v2/team/root/manifests/v1", headers=ACCEPT)
        self.assertEqual(r.status, 403)
        harness.wait_until(lambda: gate.metric_sum("ocigate_notify_events_total", result="delivered") >= 1, 20,
                           "delivered counted")
        attempts = receiver.events("block")
        self.assertEqual(len(attempts), 2, "one 500, then the retry that was delivered")
        first, second = attempts
        self.assertEqual(first[0]["X-Ocigate-Delivery"], second[0]["X-Ocigate-Delivery"])
        self.assertEqual(first[1], second[1])
        self.assertEqual(second[0]["X-Ocigate-Signature"], signature(second[1]))
        self.assertEqual(gate.metric_sum("ocigate_notify_events_total", result="delivered"), 1)
        self.assertEqual(gate.metric_sum("ocigate_notify_events_total", result="retried"), 1)

    def test_a_stalled_receiver_never_delays_pulls_and_overflow_is_dropped(self):
        receiver = self.receiver(lambda n: None)  # holds every connection, never answers
        # Every event goes out (no repeat window): this test fills the queue with one blocked pull.
        gate = self.gate([self.webhook(receiver.url, events=["block"], timeout="60s", repeat_window="0s")])
        result, seconds = self.copy(gate, "team/root:v1")
        self.assertNotEqual(result.returncode, 0)
        receiver.wait_for("block")  # the notifier now waits on the stalled receiver
        # 1,100 more blocked pulls (HEAD, one keep-alive connection): the queue holds 1,024 events,
        # the rest are dropped; each pull is answered as fast as without webhooks.
        conn = http.client.HTTPConnection("127.0.0.1", gate.port, timeout=10)
        slowest = 0.0
        started = time.monotonic()
        for _ in range(1100):
            t = time.monotonic()
            conn.request("HEAD", "/v2/team/root/manifests/v1", headers=ACCEPT)
            resp = conn.getresponse()
            resp.read()
            self.assertEqual(resp.status, 403)
            slowest = max(slowest, time.monotonic() - t)
        total = time.monotonic() - started
        conn.close()
        # The receiver holds each attempt for up to 60 s: a pull that waited on it would take that long.
        self.assertLess(slowest, 5.0, "a pull waited on the stalled receiver")
        self.assertLess(total, 60)
        harness.wait_until(lambda: gate.metric_sum("ocigate_notify_events_total", result="dropped") >= 1100 - 1024,
                           5, "drops counted")
        self.assertEqual(len(receiver.events("block")), 1, "nothing else is sent while the first one stalls")
        self.assertIn("webhook event dropped", event_log(gate))

    def test_repeats_of_a_blocked_pull_are_held_back_then_counted_in_the_next_event(self):
        receiver = self.receiver()
        gate = self.gate([self.webhook(receiver.url, events=["block"], repeat_window="2s")])
        # Docker's pull: HEAD by tag, then GET by digest. One decision about one image: one message.
        head = request("HEAD", f"{gate.url}/v2/team/root/manifests/v1", headers=ACCEPT)
        get = request("GET", f"{gate.url}/v2/team/root/manifests/{self.root.digest}", headers=ACCEPT)
        self.assertEqual((head.status, get.status), (403, 403))
        harness.wait_until(lambda: gate.metric_sum("ocigate_notify_events_total", result="suppressed") == 1, 5,
                           "the repeat counted as suppressed")
        harness.wait_until(lambda: gate.metric_sum("ocigate_notify_events_total", result="delivered") == 1, 5,
                           "the first delivered")
        first = receiver.events("block")
        self.assertEqual(len(first), 1)
        self.assertEqual(first[0][2]["reference"], "v1")
        self.assertNotIn("repeats", first[0][2])
        with open(gate.stdout_path) as f:
            audits = [l for l in f if '"log":"audit"' in l and self.root.digest in l]
        self.assertEqual(len(audits), 2, "every pull is still audited")
        time.sleep(2.2)  # past the window: the next one goes out and says one was held back
        self.assertEqual(request("GET", f"{gate.url}/v2/team/root/manifests/v1", headers=ACCEPT).status, 403)
        headers, body, later = receiver.wait_for("block", count=2)[1]
        self.assertEqual(later["repeats"], 1)
        self.assertEqual(headers["X-Ocigate-Signature"], signature(body))

    def test_a_reload_keeps_holding_back_what_went_out_before_it(self):
        receiver = self.receiver()
        gate = self.gate([self.webhook(receiver.url, events=["block"])])  # the default window, 10m
        self.assertEqual(request("GET", f"{gate.url}/v2/team/root/manifests/v1", headers=ACCEPT).status, 403)
        receiver.wait_for("block")
        gate.proc.send_signal(signal.SIGHUP)
        harness.wait_until(lambda: "webhooks reloaded" in event_log(gate), 5, "the reload")
        self.assertEqual(request("GET", f"{gate.url}/v2/team/root/manifests/v1", headers=ACCEPT).status, 403)
        harness.wait_until(lambda: gate.metric_sum("ocigate_notify_events_total", result="suppressed") == 1, 5,
                           "the repeat after the reload counted as suppressed")
        self.assertEqual(len(receiver.events("block")), 1, "a reload does not send the same block again")

    def test_a_receiver_that_is_down_or_refuses_does_not_delay_the_pull_and_is_counted(self):
        refusing = self.receiver(lambda n: 400)
        gate = self.gate([self.webhook(f"http://127.0.0.1:{closed_port()}/hook", events=["block"]),
                          self.webhook(refusing.url, events=["block"])])
        started = time.monotonic()
        r = request("GET", f"{gate.url}/v2/team/root/manifests/v1", headers=ACCEPT)
        self.assertEqual(r.status, 403)
        self.assertLess(time.monotonic() - started, 5.0)
        # The 400 fails at once (not retried); the closed port is retried with backoff.
        harness.wait_until(lambda: gate.metric_sum("ocigate_notify_events_total", result="failed") == 1, 5,
                           "the refused delivery counted as failed")
        harness.wait_until(lambda: gate.metric_sum("ocigate_notify_events_total", result="retried") >= 1, 5,
                           "the unreachable receiver retried")
        self.assertEqual(len(refusing.events("block")), 1)
        log = event_log(gate)
        self.assertIn("webhook delivery failed", log)
        self.assertIn("notify.webhooks[1] (127.0.0.1)", log)
        self.assertNotIn("/hook", log, "a webhook URL is never logged")

    def test_a_refused_reload_is_an_event_and_sighup_swaps_the_webhooks(self):
        first = self.receiver()
        second = self.receiver()
        gate = self.gate([self.webhook(first.url)])
        # A policy that does not load: the reload is refused and told to the webhooks in force.
        good = json.loads(json.dumps(gate.config))
        gate.config["policy"] = dict(POLICY, checks=dict(POLICY["checks"], **{"no-such-check": "block"}))
        gate._write_config()
        gate.proc.send_signal(signal.SIGHUP)
        headers, body, refused = first.wait_for("policy_reload_failed")[0]
        self.assertEqual(headers["X-Ocigate-Signature"], signature(body))
        self.assertIn("no-such-check", refused["error"])
        self.assertEqual(refused["instance"], "notify-test-1")
        # A good file with another webhook: later events go there only.
        good["notify"]["webhooks"] = [self.webhook(second.url)]
        gate.config = good
        gate._write_config()
        gate.proc.send_signal(signal.SIGHUP)
        harness.wait_until(lambda: event_log(gate).count("webhooks reloaded") == 2, 5, "the second reload")
        r = request("GET", f"{gate.url}/v2/team/root/manifests/v1", headers=ACCEPT)
        self.assertEqual(r.status, 403)
        second.wait_for("block")
        self.assertEqual(first.events("block"), [])

    def test_reloads_do_not_keep_the_replaced_notifiers_threads(self):
        gate = self.gate([self.webhook(self.receiver().url)])

        def reload(n):
            gate.proc.send_signal(signal.SIGHUP)
            harness.wait_until(lambda: event_log(gate).count("webhooks reloaded") == n, 5, f"reload {n}")
            time.sleep(0.05)  # the replaced notifier has nothing queued: its thread ends at once

        reload(1)
        reload(2)
        before = vm_size_kib(gate.proc.pid)
        for n in range(3, 11):
            reload(n)
        # A thread that ended but was never joined keeps its 8 MiB stack mapped; reaped ones are reused.
        grown = vm_size_kib(gate.proc.pid) - before
        self.assertLess(grown, 3 * 8192, f"VmSize grew by {grown} KiB over 8 reloads")


def vm_size_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmSize:"))


if __name__ == "__main__":
    unittest.main()
