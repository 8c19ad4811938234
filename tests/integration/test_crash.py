"""Crash consistency: ocigate is killed with SIGKILL at random moments while 20 clients fill its
cache, restarted, and `ocigate cache verify` must find nothing bad; at the end every image pulls
again with every digest right. The cache is kept smaller than the images so that every round
evicts and refills (a crash then also lands in the middle of evictions)."""

import http.client
import os
import random
import subprocess
import sys
import threading
import time
import unittest

import harness
from harness import request

ACCEPT = {"Accept": harness.ALL_MANIFESTS}
IMAGES = 20
ROUNDS = 8
BUDGET = 50  # seconds for all rounds together; fewer rounds run if the machine is slow


def setUpModule():
    if not os.environ.get("OCIGATE_BIN"):
        raise unittest.SkipTest("OCIGATE_BIN is not set (run through ctest)")


def cache_verify(gate, timeout=60):
    return subprocess.run([gate.bin, "cache", "verify", "--config", gate.config_path], capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


class CrashConsistency(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.registry = harness.Registry()
        cls.addClassCleanup(cls.registry.close)
        cls.registry.start()
        rng = random.Random(7)
        cls.images = []
        for i in range(IMAGES):
            # 0.5 to 2 MiB per image in two layers: 20 images are ~25 MiB, the cache holds 8 MiB.
            big = rng.randbytes(rng.randrange(400_000, 1_800_000))
            image = harness.push_image(cls.registry, f"crash/app{i}", "v1",
                                       layers=[big, rng.randbytes(rng.randrange(1000, 200_000))])
            image.repo = f"crash/app{i}"
            cls.images.append(image)
        # A throttled path (per stream) so that fills are in flight when the kill comes.
        cls.slow = harness.CountingPassThrough(cls.registry.url, throttle_bps=8 << 20)
        cls.slow.__enter__()
        cls.addClassCleanup(cls.slow.__exit__, None, None, None)

    def gate(self):
        gate = harness.Ocigate([{"name": "up", "url": self.slow.url, "tag_ttl": "1h", "response_timeout": "10s",
                                 "idle_timeout": "5s"}], default_upstream="up", max_size="8MiB")
        self.addCleanup(gate.close)
        gate.config["log"]["level"] = "info"
        gate._write_config()
        return gate.start()

    def pull(self, gate, image, errors, timeout=20):
        """Manifest by tag, then every blob; every complete answer must carry the right bytes.
        A cut connection (the kill) is fine; a wrong body delivered whole is not."""
        repo = image_repo(image)
        try:
            r = request("GET", f"{gate.url}/v2/{repo}/manifests/v1", headers=ACCEPT, timeout=timeout)
            if r.status != 200:
                return False
            if harness.sha256(r.body) != image.digest:
                errors.append(f"{repo}: wrong manifest served whole")
                return False
            for digest in image.blobs:
                r = request("GET", f"{gate.url}/v2/{repo}/blobs/{digest}", timeout=timeout)
                if r.status != 200:
                    return False
                if harness.sha256(r.body) != digest:
                    errors.append(f"{repo}: wrong blob {digest} served whole")
                    return False
            return True
        except (OSError, http.client.HTTPException):
            return False  # killed mid-answer: the connection is cut, which clients see as a failure

    def test_sigkill_during_concurrent_fills_leaves_a_clean_cache(self):
        gate = self.gate()
        # The pull order and the kill delays come from this seed; OCIGATE_CRASH_SEED replays them
        # (the machine's timing, and so what each kill interrupts, still varies).
        seed = int(os.environ.get("OCIGATE_CRASH_SEED") or time.time_ns() % (1 << 32))
        print(f"test_crash: seed {seed} (replay with OCIGATE_CRASH_SEED={seed})", file=sys.stderr, flush=True)
        rng = random.Random(seed)
        errors = []
        started = time.monotonic()
        rounds = 0
        kill_points = []
        while rounds < ROUNDS and (rounds < 3 or time.monotonic() - started < BUDGET):
            rounds += 1
            threads = [threading.Thread(target=self.pull, args=(gate, image, errors), daemon=True)
                       for image in rng.sample(self.images, len(self.images))]
            for t in threads:
                t.start()
            delay = rng.uniform(0.3, 2.5)
            kill_points.append(round(delay, 2))
            time.sleep(delay)
            gate.kill9()
            for t in threads:
                t.join(30)
            self.assertFalse(any(t.is_alive() for t in threads), "a client hung after the kill")
            result = cache_verify(gate)
            self.assertEqual(result.returncode, 0, f"seed {seed}, round {rounds} (kill after {delay:.2f}s):\n"
                                                   f"{result.stdout}\n{result.stderr}")
            self.assertIn(": 0 bad", result.stdout)
            if os.environ.get("OCIGATE_TEST_VERBOSE"):
                print(f"round {rounds}: killed after {delay:.2f}s; {result.stdout.strip()}")
            gate.start()
        self.assertEqual(errors, [], f"seed {seed}")
        self.assertGreaterEqual(rounds, 3, kill_points)

        # Every image again, correctly: cached blobs from the cache, evicted ones refetched.
        results = []
        threads = [threading.Thread(target=lambda image=image: results.append(self.pull(gate, image, errors, 60)))
                   for image in self.images]
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
        self.assertEqual(errors, [])
        self.assertEqual(results, [True] * IMAGES, gate.stderr()[-3000:])
        # ... and once through a real client.
        dest = harness._make_dir("ocigate-copy-")
        self.addCleanup(harness._remove_dir, dest)
        copied = harness.skopeo_copy(f"{gate.host}/{image_repo(self.images[0])}:v1", dest)
        self.assertEqual(copied.returncode, 0, copied.stderr)
        self.assertEqual(set(harness.verify_dir_copy(dest)), set(self.images[0].blobs))
        self.assertGreater(gate.metric_sum("ocigate_cache_evictions_total")
                           + gate.metric_sum("ocigate_cache_requests_total", kind="blob", result="miss"), 0)

        # A clean stop, then a last verify: still nothing bad.
        self.assertEqual(gate.stop(), 0)
        result = cache_verify(gate)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_verify_refuses_while_the_server_holds_the_cache(self):
        gate = self.gate()
        self.assertTrue(self.pull(gate, self.images[0], []))
        result = cache_verify(gate)
        self.assertEqual(result.returncode, 2, result.stdout + result.stderr)
        self.assertIn(f"in use by process {gate.proc.pid}", result.stderr)
        self.assertTrue(self.pull(gate, self.images[0], []), "the server is unharmed")
        gate.stop()
        result = cache_verify(gate)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertRegex(result.stdout, r"verified [1-9]\d* blobs .* and [1-9]\d* manifests .*: 0 bad")

    def test_verify_usage_and_missing_cache(self):
        gate = harness.Ocigate([{"name": "up", "url": self.slow.url}])
        self.addCleanup(gate.close)
        result = cache_verify(gate)  # never started: no database yet
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("nothing to verify", result.stdout)
        bad = subprocess.run([gate.bin, "cache", "verify", "--bogus"], capture_output=True, text=True, timeout=30)
        self.assertEqual(bad.returncode, 2)
        bad = subprocess.run([gate.bin, "cache"], capture_output=True, text=True, timeout=30)
        self.assertEqual(bad.returncode, 2)
        missing = subprocess.run([gate.bin, "cache", "verify", "--config", gate.config_path + ".missing"],
                                 capture_output=True, text=True, timeout=30)
        self.assertEqual(missing.returncode, 2)


def image_repo(image):
    return image.repo


if __name__ == "__main__":
    unittest.main()
