"""Faults: the upstream down, lying or slow; ocigate killed mid-fetch; a tiny cache; clients that
leave. Nothing wrong may be served whole or cached, and other clients must not be harmed."""

import fcntl
import http.client
import json
import os
import shutil
import socket
import struct
import tempfile
import termios
import threading
import time
import unittest

import harness
from harness import request

ACCEPT = {"Accept": harness.ALL_MANIFESTS}


def setUpModule():
    if not os.environ.get("OCIGATE_BIN"):
        raise unittest.SkipTest("OCIGATE_BIN is not set (run through ctest)")


def wait_past_ttl(since, ttl):
    """Waits until a tag fetched before `since` (a time.time() taken after the fetch) is due again.
    ocigate keeps a tag's fetch time in whole seconds (std::time) and trusts the tag while
    now - fetched_at < ttl, so the entry is due once the clock's whole second is ttl past since's.
    std::time reads the kernel's coarse clock, which runs up to a tick (a few ms) behind time.time():
    a request sent right at the boundary could still find the tag fresh, so this waits 0.1 s more."""
    harness.wait_until(lambda: int(time.time() - 0.1) >= int(since) + ttl, ttl + 2, "the tag's TTL to pass")


def raw_get(host_port, path, read_bytes=None, timeout=30):
    """A GET over a raw socket; returns (status line, bytes of body read). Stops after read_bytes."""
    host, port = host_port.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host_port}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                return data.split(b"\r\n", 1)[0], b""
            data += chunk
        head, body = data.split(b"\r\n\r\n", 1)
        while read_bytes is None or len(body) < read_bytes:
            chunk = s.recv(65536)
            if not chunk:
                break
            body += chunk
        return head.split(b"\r\n", 1)[0], body


def wait_until_receive_queue_stops(sock):
    """Waits until the bytes queued for `sock` stop growing: the sender has filled the window and
    is blocked on its full socket."""
    queued = []

    def stopped():
        queued.append(struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0" * 4))[0])
        return len(queued) >= 3 and queued[-1] > 0 and queued[-1] == queued[-2] == queued[-3]

    harness.wait_until(stopped, 10, "the sender to block on a full socket")


class Faults(unittest.TestCase):
    def setUp(self):
        self.registry = harness.Registry().start()
        self.addCleanup(self.registry.__exit__, None, None, None)

    def gate(self, upstream_url=None, **kwargs):
        gate = harness.Ocigate([{"name": "up", "url": upstream_url or self.registry.url, "tag_ttl": "1s"}],
                               default_upstream="up", **kwargs).start()
        self.addCleanup(gate.__exit__, None, None, None)
        return gate

    def copy(self, gate, ref):
        dest = tempfile.mkdtemp(prefix="ocigate-copy-")
        self.addCleanup(shutil.rmtree, dest, True)
        result = harness.skopeo_copy(f"{gate.host}/{ref}", dest)
        return result, dest

    def test_upstream_down_serves_cached_tag_stale_with_warning(self):
        harness.push_image(self.registry, "team/app", "v1")
        gate = self.gate()
        result, _ = self.copy(gate, "team/app:v1")
        self.assertEqual(result.returncode, 0, result.stderr)
        cached_at = time.time()
        self.registry.stop()
        wait_past_ttl(cached_at, 1)  # a revalidation is due and fails
        r = request("GET", f"{gate.url}/v2/team/app/manifests/v1", headers=ACCEPT)
        self.assertEqual(r.status, 200)
        self.assertIn("299", r.header("Warning") or "")
        result, _ = self.copy(gate, "team/app:v1")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertGreater(gate.metric_sum("ocigate_cache_requests_total", kind="tag", result="stale"), 0)
        # Something never cached is a clean error, not a hang or a 500.
        r = request("GET", f"{gate.url}/v2/team/other/manifests/v1", headers=ACCEPT)
        self.assertIn(r.status, (502, 504))

    def test_referrers_are_cached_and_served_stale_when_the_upstream_is_down(self):
        image = harness.push_image(self.registry, "team/app", "v1")
        gate = self.gate()
        first = request("GET", f"{gate.url}/v2/team/app/referrers/{image.digest}")
        self.assertEqual(first.status, 200)
        cached_at = time.time()
        again = request("GET", f"{gate.url}/v2/team/app/referrers/{image.digest}")
        self.assertEqual(again.json(), first.json())
        self.assertGreater(gate.metric_sum("ocigate_cache_requests_total", kind="referrers", result="hit"), 0)
        self.registry.stop()
        wait_past_ttl(cached_at, 1)  # the answer is due again and the upstream is gone
        stale = request("GET", f"{gate.url}/v2/team/app/referrers/{image.digest}")
        self.assertEqual(stale.status, 200)
        self.assertIn("299", stale.header("Warning") or "")
        self.assertEqual(stale.json(), first.json())
        self.assertGreater(gate.metric_sum("ocigate_cache_requests_total", kind="referrers", result="stale"), 0)

    def test_corrupted_blob_is_never_served_whole_nor_cached(self):
        payload = os.urandom(400_000)
        image = harness.push_image(self.registry, "team/app", "v1", layers=[{"data": payload}])
        layer = image.layer_digests[0]
        path = self.registry.blob_data_path(layer)
        size = os.path.getsize(path)
        with open(path, "wb") as f:
            f.write(os.urandom(size))
        gate = self.gate()
        for _ in range(2):
            status, body = raw_get(gate.host, f"/v2/team/app/blobs/{layer}")
            complete = status.startswith(b"HTTP/1.1 200") and len(body) == size
            self.assertFalse(complete and harness.sha256(body) != layer, "a wrong blob was delivered whole")
            self.assertLess(len(body), size, "the wrong blob must be cut before its last byte")
        result, _ = self.copy(gate, "team/app:v1")
        self.assertNotEqual(result.returncode, 0)
        self.assertGreaterEqual(gate.metric_sum("ocigate_digest_mismatches_total"), 2)
        self.assertIn("digest mismatch", gate.stderr())
        # Not cached: with the upstream gone, the layer cannot be answered (the config blob can).
        self.registry.stop()
        status, _ = raw_get(gate.host, f"/v2/team/app/blobs/{layer}")
        self.assertFalse(status.startswith(b"HTTP/1.1 200"), status)
        status, _ = raw_get(gate.host, f"/v2/team/app/blobs/{image.config_digest}")
        self.assertTrue(status.startswith(b"HTTP/1.1 200"), status)

    def test_concurrent_cold_pulls_fetch_the_blob_once(self):
        image = harness.push_image(self.registry, "team/app", "v1", layers=[{"big": os.urandom(8 << 20)}])
        layer = image.layer_digests[0]
        with harness.CountingPassThrough(self.registry.url, throttle_bps=16 << 20) as counter:
            gate = self.gate(counter.url)
            results = []

            def pull():
                r = request("GET", f"{gate.url}/v2/team/app/blobs/{layer}", timeout=60)
                results.append((r.status, harness.sha256(r.body)))

            threads = [threading.Thread(target=pull) for _ in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(90)
            self.assertEqual(results, [(200, layer)] * 8)
            self.assertEqual(counter.gets(layer), 1)
            # Clients have the last byte once it is verified; the commit (a sync to disk) follows.
            harness.wait_until(lambda: gate.metric_sum("ocigate_cache_blobs") > 0, 10, "the blob's commit")
            self.assertNotIn("cannot commit", gate.stderr())

    def test_restart_keeps_the_cache(self):
        image = harness.push_image(self.registry, "team/app", "v1")
        gate = self.gate()
        result, _ = self.copy(gate, "team/app:v1")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(gate.stop(), 0)
        gate.start()
        r = request("GET", f"{gate.url}/v2/team/app/blobs/{image.layer_digests[0]}")
        self.assertEqual(r.status, 200)
        self.assertEqual(gate.metric_sum("ocigate_cache_requests_total", kind="blob", result="hit"), 1)
        r = request("GET", f"{gate.url}/v2/team/app/manifests/{image.digest}", headers=ACCEPT)
        self.assertEqual(gate.metric_sum("ocigate_cache_requests_total", kind="manifest", result="hit"), 1)

    def test_kill_9_during_a_blob_fetch_then_refetch_is_correct(self):
        image = harness.push_image(self.registry, "team/app", "v1", layers=[{"big": os.urandom(6 << 20)}])
        layer = image.layer_digests[0]
        with harness.CountingPassThrough(self.registry.url, throttle_bps=2 << 20) as slow:
            gate = self.gate(slow.url)
            status, body = raw_get(gate.host, f"/v2/team/app/blobs/{layer}", read_bytes=1 << 20)
            self.assertTrue(status.startswith(b"HTTP/1.1 200"), status)
            gate.kill9()
            gate.start()
            r = request("GET", f"{gate.url}/v2/team/app/blobs/{layer}", timeout=60)
            self.assertEqual(r.status, 200)
            self.assertEqual(harness.sha256(r.body), layer)
            self.assertEqual(slow.gets(layer), 2, "the partial fetch was not kept: fetched again")

    def test_small_cache_evicts_and_pulls_still_succeed(self):
        images = [harness.push_image(self.registry, "team/app", f"v{i}", layers=[{"f": os.urandom(400_000)}])
                  for i in range(6)]
        gate = self.gate(max_size="1MiB")
        for i, image in enumerate(images):
            result, dest = self.copy(gate, f"team/app:v{i}")
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertIn(image.layer_digests[0], harness.verify_dir_copy(dest))
        self.assertGreater(gate.metric_sum("ocigate_cache_evictions_total"), 0)
        self.assertLessEqual(gate.metric_sum("ocigate_cache_size_bytes"), 1 << 20)
        result, _ = self.copy(gate, "team/app:v0")  # evicted earlier: fetched again
        self.assertEqual(result.returncode, 0, result.stderr)

    def test_client_leaving_mid_blob_does_not_break_the_fetch_for_others(self):
        image = harness.push_image(self.registry, "team/app", "v1", layers=[{"big": os.urandom(6 << 20)}])
        layer = image.layer_digests[0]
        with harness.CountingPassThrough(self.registry.url, throttle_bps=6 << 20) as slow:
            gate = self.gate(slow.url)
            # The leaver starts the fetch and is mid-body when the follower joins; then it resets.
            leaver = socket.create_connection(("127.0.0.1", gate.port), timeout=30)
            leaver.sendall(f"GET /v2/team/app/blobs/{layer} HTTP/1.1\r\nHost: {gate.host}\r\n\r\n".encode())
            received = b""
            while len(received) < (256 << 10):
                chunk = leaver.recv(65536)
                self.assertTrue(chunk, "ocigate closed the leaver's connection early")
                received += chunk
            self.assertTrue(received.startswith(b"HTTP/1.1 200"), received[:100])
            results = []
            joined = threading.Event()

            def full_pull():
                conn = http.client.HTTPConnection("127.0.0.1", gate.port, timeout=60)
                try:
                    conn.request("GET", f"/v2/team/app/blobs/{layer}")
                    response = conn.getresponse()
                    joined.set()  # its 200 head is out: the follower is in the fetch
                    results.append((response.status, harness.sha256(response.read())))
                finally:
                    joined.set()
                    conn.close()

            follower = threading.Thread(target=full_pull)
            follower.start()
            self.assertTrue(joined.wait(30), "the follower got no answer")
            leaver.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST, not FIN
            leaver.close()
            follower.join(60)
            self.assertEqual(results, [(200, layer)])
            self.assertEqual(slow.gets(layer), 1, "the follower joined the fetch the leaver started")
            # The fetch finished for the cache as well: a later client is served without the upstream.
            r = request("GET", f"{gate.url}/v2/team/app/blobs/{layer}", timeout=60)
            self.assertEqual(harness.sha256(r.body), layer)
            self.assertEqual(slow.gets(layer), 1)

    def test_clients_leaving_a_cached_blob_mid_body_harm_nothing(self):
        # Cache hits go out with sendfile(2), which cannot ask for MSG_NOSIGNAL: a client that
        # resets or closes mid-body must cost its own connection only, not the process.
        image = harness.push_image(self.registry, "team/app", "v1", layers=[{"big": os.urandom(8 << 20)}])
        layer = image.layer_digests[0]
        gate = self.gate()
        path = f"/v2/team/app/blobs/{layer}"
        self.assertEqual(harness.sha256(request("GET", gate.url + path, timeout=60).body), layer)  # now cached
        for reset in (True, False, True):
            leaver = socket.create_connection(("127.0.0.1", gate.port), timeout=30)
            leaver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 10)
            leaver.sendall(f"GET {path} HTTP/1.1\r\nHost: {gate.host}\r\n\r\n".encode())
            received = leaver.recv(65536)
            self.assertTrue(received.startswith(b"HTTP/1.1 200"), received[:100])
            wait_until_receive_queue_stops(leaver)  # ocigate is now blocked on the full socket, mid-body
            if reset:
                leaver.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
            leaver.close()

        def cut_streams():
            with open(gate.stdout_path) as f:
                return sum(1 for l in f if layer in l and '"completed":false' in l)

        # Each cut stream ends with its access-log line, written after the failed write: by then a
        # SIGPIPE would have ended the process.
        harness.wait_until(lambda: not gate.running() or cut_streams() >= 3, 15,
                           "the three cut streams' access-log lines")
        self.assertTrue(gate.running(), gate.stderr()[-2000:])
        r = request("GET", gate.url + path, timeout=60)
        self.assertEqual((r.status, harness.sha256(r.body)), (200, layer))

    def test_a_client_that_stops_reading_a_cached_blob_is_cut_after_the_idle_timeout(self):
        image = harness.push_image(self.registry, "team/app", "v1", layers=[{"big": os.urandom(8 << 20)}])
        layer = image.layer_digests[0]
        gate = self.gate(extra={"server": {"threads": 2, "shutdown_grace": "5s", "idle_timeout": "1s"}})
        path = f"/v2/team/app/blobs/{layer}"
        self.assertEqual(harness.sha256(request("GET", gate.url + path, timeout=60).body), layer)  # now cached
        staller = socket.create_connection(("127.0.0.1", gate.port), timeout=30)
        self.addCleanup(staller.close)
        staller.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 10)
        staller.sendall(f"GET {path} HTTP/1.1\r\nHost: {gate.host}\r\n\r\n".encode())
        self.assertTrue(staller.recv(65536).startswith(b"HTTP/1.1 200"))

        def cut_line():
            with open(gate.stdout_path) as f:
                lines = [json.loads(l) for l in f if l.startswith("{") and '"route"' in l]
            return [l for l in lines if l.get("completed") is False]

        harness.wait_until(lambda: cut_line(), 15, "the stalled stream's access-log line")
        self.assertIn("idle timeout", cut_line()[0].get("error", ""))
        r = request("GET", gate.url + path, timeout=60)  # others are served as before
        self.assertEqual((r.status, harness.sha256(r.body)), (200, layer))

    def test_sigterm_shuts_down_cleanly(self):
        gate = self.gate()
        self.assertEqual(gate.stop(), 0)
        self.assertIn("ocigate stopped", gate.stderr())


class TagRevalidation(unittest.TestCase):
    """upstreams[].tag_ttl against a healthy upstream, and a cached tag served stale when the
    revalidation is answered 5xx or 429. A pass-through in front of the registry sees every
    upstream request and answers in its place when told to."""
    TTL = 3  # seconds; the "within the TTL" steps below take a fraction of one

    @classmethod
    def setUpClass(cls):
        cls.registry = harness.Registry()
        cls.addClassCleanup(cls.registry.close)
        cls.registry.start()
        cls.upstream = harness.CountingPassThrough(cls.registry.url)
        cls.upstream.__enter__()
        cls.addClassCleanup(cls.upstream.__exit__, None, None, None)

    def setUp(self):
        self.upstream.inject = None

    def gate(self, ttl, **extra):
        gate = harness.Ocigate([{"name": "up", "url": self.upstream.url, "tag_ttl": f"{ttl}s"}],
                               default_upstream="up", extra=extra).start()
        self.addCleanup(gate.close)
        return gate

    def get(self, gate, tag, method="GET"):
        return request(method, f"{gate.url}/v2/team/ttl/manifests/{tag}", headers=ACCEPT)

    def test_within_the_ttl_nothing_goes_upstream_then_a_head_confirms_and_a_moved_tag_is_judged(self):
        from test_policy import policy
        user = {"config": {"User": "1000"}}
        first = harness.push_image(self.registry, "team/ttl", "keep", config_overrides=user, layers=[{"a": b"1"}])
        for tag in ("moved", "bad"):
            self.registry.push_manifest("team/ttl", tag, first.manifest, first.media_type)
        gate = self.gate(self.TTL, policy=policy(non_root_user="block"))
        for tag in ("keep", "moved", "bad"):
            before = time.time()
            self.assertEqual(self.get(gate, tag).header("Docker-Content-Digest"), first.digest)
            start = len(self.upstream.requests)
            again = self.get(gate, tag)
            self.assertEqual((again.status, again.body), (200, first.manifest))
            self.assertLess(time.time(), int(before) + self.TTL, "too slow to stay within the TTL")
            self.assertEqual(self.upstream.requests_since(start), [], "within the TTL a tag is the cache's")
        fetched = time.time()
        # Upstream, one tag moves to another compliant image and one to an image the policy blocks.
        moved = harness.push_image(self.registry, "team/ttl", "moved", config_overrides=user, layers=[{"b": b"2"}])
        bad = harness.push_image(self.registry, "team/ttl", "bad", config_overrides={"config": {"User": "root"}},
                                 layers=[{"c": b"3"}])
        wait_past_ttl(fetched, self.TTL)

        start = len(self.upstream.requests)
        r = self.get(gate, "keep")
        self.assertEqual((r.status, r.header("Docker-Content-Digest"), r.body), (200, first.digest, first.manifest))
        self.assertEqual(self.upstream.requests_since(start), [("HEAD", "/v2/team/ttl/manifests/keep")],
                         "one HEAD confirms the digest; no GET")
        start = len(self.upstream.requests)
        self.assertEqual(self.get(gate, "keep").status, 200)
        self.assertEqual(self.upstream.requests_since(start), [], "the confirmation starts a new TTL")

        start = len(self.upstream.requests)
        r = self.get(gate, "moved")
        self.assertEqual((r.status, r.header("Docker-Content-Digest"), r.body), (200, moved.digest, moved.manifest))
        self.assertEqual(self.upstream.requests_since(start, "/manifests/"),
                         [("HEAD", "/v2/team/ttl/manifests/moved"), ("GET", "/v2/team/ttl/manifests/moved")])
        verdict = request("GET", f"{gate.url}/ocigate/v1/verdicts/{moved.digest}")
        self.assertEqual(verdict.status, 200, "the new image was judged")
        self.assertEqual((verdict.json()["verdict"], verdict.json()["reference"]), ("allow", "moved"))

        for method in ("GET", "HEAD"):
            r = self.get(gate, "bad", method)
            self.assertEqual(r.status, 403, f"{method}: the image the tag moved to breaks the policy")
        error = self.get(gate, "bad").json()["errors"][0]
        self.assertEqual((error["code"], error["detail"]["digest"]), ("DENIED", bad.digest))
        self.assertEqual([v["check"] for v in error["detail"]["violations"]], ["non-root-user"])

    def test_a_cached_tag_is_served_stale_when_the_upstream_answers_5xx_or_429(self):
        image = harness.push_image(self.registry, "team/ttl", "stale")
        gate = self.gate(1)
        self.assertEqual(self.get(gate, "stale").status, 200)
        wait_past_ttl(time.time(), 1)
        body = b'{"errors":[{"code":"X","message":"y"}]}'
        # A stale answer leaves the entry due: each status below is a revalidation of its own.
        for status in (500, 503, 429):
            with self.subTest(status=status):
                self.upstream.inject = lambda method, path, status=status: (
                    (status, {"Content-Type": "application/json"}, body) if "/manifests/" in path else None)
                before = gate.metric_sum("ocigate_cache_requests_total", kind="tag", result="stale")
                start = len(self.upstream.requests)
                r = self.get(gate, "stale")
                self.assertEqual((r.status, r.header("Docker-Content-Digest"), r.body),
                                 (200, image.digest, image.manifest))
                warnings = [w for w in r.headers.get_all("Warning") or [] if "unavailable" in w]
                self.assertEqual(len(warnings), 1, r.headers.get_all("Warning"))
                self.assertTrue(warnings[0].startswith("299 "), warnings)
                self.assertIn(f"HTTP {status}", warnings[0])
                self.assertIn(image.digest, warnings[0])
                sent = self.upstream.requests_since(start, "/manifests/")
                self.assertTrue(sent, "the tag was revalidated")
                # The HEAD's answer already says the upstream is failing: no GET follows it (a 429
                # would only be answered 429 again, and a GET counts against a pull quota).
                self.assertEqual({method for method, _ in sent}, {"HEAD"}, sent)
                self.assertEqual(len(sent), 3 if status == 503 else 1, "503 is retried, 500 and 429 are not")
                self.assertEqual(gate.metric_sum("ocigate_cache_requests_total", kind="tag", result="stale"),
                                 before + 1)
        # Something never cached is the upstream's error, not a stale answer.
        r = self.get(gate, "never-cached")
        self.assertEqual((r.status, r.json()["errors"][0]["code"]), (429, "TOOMANYREQUESTS"))


class UpstreamAnswers(unittest.TestCase):
    """Upstream statuses map to the right OCI errors, never a 500."""

    def run_against(self, status, headers=None):
        def handler(method, path, _headers):
            if path == "/v2/":
                return 200, {}, b"{}"
            return status, dict(headers or {}), b'{"errors":[{"code":"X","message":"y"}]}'

        with harness.FakeUpstream(handler) as fake:
            with harness.Ocigate([{"name": "up", "url": fake.url}]) as gate:
                manifest = request("GET", f"{gate.url}/v2/team/app/manifests/v1", headers=ACCEPT)
                blob = request("GET", f"{gate.url}/v2/team/app/blobs/sha256:{'a' * 64}")
                return manifest, blob, fake

    def test_upstream_429_becomes_toomanyrequests_with_retry_after(self):
        manifest, blob, fake = self.run_against(429, {"Retry-After": "7"})
        for r in (manifest, blob):
            self.assertEqual(r.status, 429)
            self.assertEqual(r.json()["errors"][0]["code"], "TOOMANYREQUESTS")
            self.assertEqual(r.header("Retry-After"), "7")
        manifest_gets = [p for m, p in fake.requests if "/manifests/" in p]
        self.assertEqual(len(manifest_gets), 1, "429 is not retried")

    def test_upstream_500_is_502_never_500(self):
        manifest, blob, _ = self.run_against(500)
        self.assertEqual(manifest.status, 502)
        self.assertEqual(blob.status, 502)

    def test_upstream_503_is_retried_then_reported(self):
        manifest, _, fake = self.run_against(503)
        self.assertEqual(manifest.status, 502)
        manifest_gets = [p for m, p in fake.requests if "/manifests/" in p]
        self.assertEqual(len(manifest_gets), 3, "idempotent requests get three attempts")

    def test_upstream_garbage_manifest_is_502(self):
        def handler(method, path, _headers):
            return 200, {"Content-Type": harness.OCI_MANIFEST}, b"{not json"

        with harness.FakeUpstream(handler) as fake:
            with harness.Ocigate([{"name": "up", "url": fake.url}]) as gate:
                r = request("GET", f"{gate.url}/v2/team/app/manifests/v1", headers=ACCEPT)
                self.assertEqual(r.status, 502)
                self.assertIn("invalid manifest", r.json()["errors"][0]["message"])

    def test_oversized_manifest_is_refused(self):
        big = b'{"schemaVersion":2,"pad":"' + b"x" * (5 << 20) + b'"}'

        def handler(method, path, _headers):
            return 200, {"Content-Type": harness.OCI_MANIFEST}, big

        with harness.FakeUpstream(handler) as fake:
            with harness.Ocigate([{"name": "up", "url": fake.url}]) as gate:
                r = request("GET", f"{gate.url}/v2/team/app/manifests/v1", headers=ACCEPT)
                self.assertEqual(r.status, 400)
                self.assertIn("4 MiB", r.json()["errors"][0]["message"])


if __name__ == "__main__":
    unittest.main()
