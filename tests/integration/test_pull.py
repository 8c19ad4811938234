"""Pulls through ocigate in front of real docker-registry upstreams, with skopeo and with the
assertions of the OCI distribution-spec conformance suite's pull workflow."""

import http.client
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest
import urllib.parse

import harness
from harness import request

ACCEPT = {"Accept": harness.ALL_MANIFESTS}


def setUpModule():
    if not os.environ.get("OCIGATE_BIN"):
        raise unittest.SkipTest("OCIGATE_BIN is not set (run through ctest)")


class PullTestCase(unittest.TestCase):
    def copy(self, ref, extra=(), creds=None):
        dest = tempfile.mkdtemp(prefix="ocigate-copy-")
        self.addCleanup(shutil.rmtree, dest, True)
        result = harness.skopeo_copy(ref, dest, extra=extra, creds=creds)
        return result, dest


class OpenUpstream(PullTestCase):
    @classmethod
    def setUpClass(cls):
        # Class cleanups run even when setUpClass fails half-way (tearDownClass would not).
        cls.registry = harness.Registry()
        cls.addClassCleanup(cls.registry.close)
        r = cls.registry.start()
        cls.oci = harness.push_image(r, "team/app", "v1", layers=[{"big": os.urandom(300_000)}, {"small": b"x"}])
        cls.docker = harness.push_image(r, "team/legacy", "v2", media="docker")
        cls.index_digest, _, cls.children = harness.push_index(r, "team/multi", "v1", media="oci")
        cls.list_digest, _, cls.list_children = harness.push_index(r, "team/dlist", "v1", media="docker")
        for i in range(5):
            harness.push_image(r, "team/tags", f"t{i}")
        cls.gate = harness.Ocigate([{"name": "up", "url": r.url}], default_upstream="up")
        cls.addClassCleanup(cls.gate.close)
        cls.gate.start()
        cls.base = cls.gate.url

    # ---- skopeo pulls ----

    def test_skopeo_pulls_oci_image_by_tag(self):
        result, dest = self.copy(f"{self.gate.host}/team/app:v1")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(set(harness.verify_dir_copy(dest)), {self.oci.config_digest, *self.oci.layer_digests})

    def test_skopeo_pulls_by_digest_and_through_the_upstream_prefix(self):
        result, _ = self.copy(f"{self.gate.host}/up/team/app@{self.oci.digest}")
        self.assertEqual(result.returncode, 0, result.stderr)

    def test_skopeo_pulls_docker_schema2_image(self):
        result, dest = self.copy(f"{self.gate.host}/team/legacy:v2")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn(self.docker.config_digest, harness.verify_dir_copy(dest))

    def test_skopeo_pulls_every_platform_of_an_oci_index(self):
        result, dest = self.copy(f"{self.gate.host}/team/multi:v1", extra=["--all"])
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(len(harness.verify_dir_copy(dest)), 4)

    def test_skopeo_pulls_one_platform_of_a_docker_manifest_list(self):
        result, dest = self.copy(f"{self.gate.host}/team/dlist:v1", extra=["--override-arch", "arm64"])
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(len(harness.verify_dir_copy(dest)), 2)

    def test_skopeo_pulls_one_platform_of_an_oci_index(self):
        result, dest = self.copy(f"{self.gate.host}/team/multi:v1", extra=["--override-arch", "arm64"])
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(harness.sha256(harness.dir_manifest(dest)), self.children[1], "the arm64 child")
        self.assertEqual(len(harness.verify_dir_copy(dest)), 2)

    def test_skopeo_pulls_every_platform_of_a_docker_manifest_list_by_digest(self):
        result, dest = self.copy(f"{self.gate.host}/up/team/dlist@{self.list_digest}", extra=["--all"])
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(harness.sha256(harness.dir_manifest(dest)), self.list_digest)
        self.assertEqual(len(harness.verify_dir_copy(dest)), 4)

    def test_index_is_served_with_its_own_media_type_and_exact_bytes(self):
        for repo, digest, media in (("team/multi", self.index_digest, harness.OCI_INDEX),
                                    ("team/dlist", self.list_digest, harness.DOCKER_LIST)):
            r = request("GET", f"{self.base}/v2/{repo}/manifests/v1", headers=ACCEPT)
            self.assertEqual(r.status, 200)
            self.assertEqual(r.header("Content-Type"), media)
            self.assertEqual(r.header("Docker-Content-Digest"), digest)
            self.assertEqual(harness.sha256(r.body), digest)

    # ---- conformance: pull workflow ----

    def test_base_answers_with_api_version(self):
        r = request("GET", self.base + "/v2/")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("Docker-Distribution-API-Version"), "registry/2.0")

    def test_manifest_get_and_head_agree_by_tag_and_digest(self):
        for ref in ("v1", self.oci.digest):
            get = request("GET", f"{self.base}/v2/team/app/manifests/{ref}", headers=ACCEPT)
            head = request("HEAD", f"{self.base}/v2/team/app/manifests/{ref}", headers=ACCEPT)
            self.assertEqual(get.status, 200)
            self.assertEqual(head.status, 200)
            self.assertEqual(get.body, self.oci.manifest, "exact upstream bytes")
            self.assertEqual(get.header("Docker-Content-Digest"), self.oci.digest)
            self.assertEqual(get.header("Content-Type"), harness.OCI_MANIFEST)
            for name in ("Docker-Content-Digest", "Content-Length", "Content-Type"):
                self.assertEqual(get.header(name), head.header(name), name)
            self.assertEqual(int(get.header("Content-Length")), len(self.oci.manifest))
            self.assertEqual(head.body, b"")

    def test_blob_get_head_and_ranges(self):
        digest = self.oci.layer_digests[0]
        get = request("GET", f"{self.base}/v2/team/app/blobs/{digest}")
        self.assertEqual(get.status, 200)
        self.assertEqual(harness.sha256(get.body), digest)
        self.assertEqual(get.header("Docker-Content-Digest"), digest)
        head = request("HEAD", f"{self.base}/v2/team/app/blobs/{digest}")
        self.assertEqual(head.status, 200)
        self.assertEqual(int(head.header("Content-Length")), len(get.body))
        part = request("GET", f"{self.base}/v2/team/app/blobs/{digest}", headers={"Range": "bytes=10-109"})
        self.assertEqual(part.status, 206)
        self.assertEqual(part.body, get.body[10:110])
        self.assertEqual(part.header("Content-Range"), f"bytes 10-109/{len(get.body)}")
        bad = request("GET", f"{self.base}/v2/team/app/blobs/{digest}", headers={"Range": f"bytes={len(get.body)}-"})
        self.assertEqual(bad.status, 416)
        self.assertEqual(bad.header("Content-Range"), f"bytes */{len(get.body)}")

    def test_a_cached_blob_leaves_its_keep_alive_connection_uncorked(self):
        # A cached blob goes out corked (only full TCP segments); the end of its body must uncork,
        # or its short tail and the next small reply on the connection would each wait for the
        # kernel's 200 ms cork timer. Rounds run until one is in time, ten at most: a held-back tail
        # is held in every round (0.2 s or more), while a sanitizer build on two shared cores has slow
        # moments that a single sample (or the best of three) would take for the regression.
        # Only a committed blob is corked (a fetch being followed is not): wait for a cache hit first.
        digest = self.oci.layer_digests[0]

        def served_from_cache():
            self.assertEqual(request("GET", f"{self.base}/v2/team/app/blobs/{digest}").status, 200)
            with open(self.gate.stdout_path) as log:
                return any('"cache":"hit"' in line and digest in line for line in log)

        harness.wait_until(served_from_cache, 10, "a cache hit of the blob")
        conn = http.client.HTTPConnection("127.0.0.1", self.gate.port, timeout=10)
        self.addCleanup(conn.close)
        bound = 0.15
        blob_seconds, manifest_seconds = [], []
        for _ in range(10):
            started = time.monotonic()
            conn.request("GET", f"/v2/team/app/blobs/{digest}")
            blob = conn.getresponse()
            self.assertEqual((blob.status, harness.sha256(blob.read())), (200, digest))
            blob_seconds.append(time.monotonic() - started)
            started = time.monotonic()
            conn.request("GET", "/v2/team/app/manifests/v1", headers=ACCEPT)
            manifest = conn.getresponse()
            self.assertEqual((manifest.status, manifest.read()), (200, self.oci.manifest))
            manifest_seconds.append(time.monotonic() - started)
            if min(blob_seconds) < bound and min(manifest_seconds) < bound:
                break
        self.assertLess(min(blob_seconds), bound, f"the blob's tail was held back: {blob_seconds}")
        self.assertLess(min(manifest_seconds), bound, f"the next reply was held back: {manifest_seconds}")

    def test_range_on_an_uncached_blob(self):
        image = harness.push_image(self.registry, "team/ranged", "v1", layers=[{"r": os.urandom(200_000)}])
        digest = image.layer_digests[0]
        whole = request("GET", f"{self.registry.url}/v2/team/ranged/blobs/{digest}").body
        part = request("GET", f"{self.base}/v2/team/ranged/blobs/{digest}", headers={"Range": "bytes=-1000"})
        self.assertEqual(part.status, 206)
        self.assertEqual(part.body, whole[-1000:])

    def test_tags_list_paginates_with_link(self):
        r = request("GET", f"{self.base}/v2/team/tags/tags/list")
        self.assertEqual(r.status, 200)
        self.assertEqual(sorted(r.json()["tags"]), [f"t{i}" for i in range(5)])
        self.assertEqual(r.json()["name"], "team/tags")
        page = request("GET", f"{self.base}/v2/team/tags/tags/list?n=2")
        self.assertEqual(page.json()["tags"], ["t0", "t1"])
        link = page.header("Link")
        self.assertIsNotNone(link)
        self.assertTrue(link.startswith("</v2/team/tags/tags/list?"), link)
        nxt = request("GET", self.base + link[1:link.index(">")])
        self.assertEqual(nxt.json()["tags"], ["t2", "t3"])
        after = request("GET", f"{self.base}/v2/team/tags/tags/list?n=10&last=t3")
        self.assertEqual(after.json()["tags"], ["t4"])

    def test_referrers_fall_back_to_the_tag_schema(self):
        gate = harness.Ocigate([{"name": "up", "url": self.registry.url, "tag_ttl": "1s"}], default_upstream="up")
        self.addCleanup(gate.close)
        base = gate.start().url
        r = request("GET", f"{base}/v2/team/app/referrers/{self.oci.digest}")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("Content-Type"), harness.OCI_INDEX)
        self.assertEqual(r.json()["manifests"], [])
        # A referrer published through the fallback tag shows up once the cached answer is due.
        sig = harness.push_image(self.registry, "team/app", None)
        entry = {"mediaType": sig.media_type, "digest": sig.digest, "size": len(sig.manifest),
                 "artifactType": "application/example"}
        index = json.dumps({"schemaVersion": 2, "mediaType": harness.OCI_INDEX, "manifests": [entry]}).encode()
        self.registry.push_manifest("team/app", "sha256-" + self.oci.digest.split(":")[1], index, harness.OCI_INDEX)
        time.sleep(1.2)
        r = request("GET", f"{base}/v2/team/app/referrers/{self.oci.digest}")
        self.assertEqual([m["digest"] for m in r.json()["manifests"]], [sig.digest])
        filtered = request("GET", f"{base}/v2/team/app/referrers/{self.oci.digest}?artifactType=other")
        self.assertEqual(filtered.json()["manifests"], [])
        self.assertEqual(filtered.header("OCI-Filters-Applied"), "artifactType")

    def test_unknown_manifest_and_blob_are_404_with_codes(self):
        r = request("GET", f"{self.base}/v2/team/app/manifests/nope", headers=ACCEPT)
        self.assertEqual(r.status, 404)
        self.assertEqual(r.json()["errors"][0]["code"], "MANIFEST_UNKNOWN")
        missing = "sha256:" + "0" * 64
        r = request("GET", f"{self.base}/v2/team/app/blobs/{missing}")
        self.assertEqual(r.status, 404)
        self.assertEqual(r.json()["errors"][0]["code"], "BLOB_UNKNOWN")
        r = request("GET", f"{self.base}/v2/team/app/manifests/{missing}", headers=ACCEPT)
        self.assertEqual(r.status, 404)
        self.assertEqual(r.json()["errors"][0]["code"], "MANIFEST_UNKNOWN")

    def assert_never_sent_upstream(self, *texts):
        for text in texts:
            self.assertEqual(self.registry.requests_containing(text), 0, text)

    def test_a_reference_that_is_no_tag_or_digest_is_manifest_unknown_locally(self):
        # The conformance suite's pull workflow: GET and HEAD of ".INVALID_MANIFEST_NAME" are 404.
        for reference in (".INVALID_MANIFEST_NAME", "-bad-tag", "sha256:1234", "md5:" + "0" * 32, "a" * 129):
            path = f"/v2/team/app/manifests/{reference}"
            r = request("GET", self.base + path, headers=ACCEPT)
            self.assertEqual(r.status, 404, path)
            self.assertEqual(r.header("Content-Type"), "application/json", path)
            self.assertEqual(r.json()["errors"][0]["code"], "MANIFEST_UNKNOWN", path)
            self.assertIn("neither a valid tag nor a valid digest", r.json()["errors"][0]["message"])
            head = request("HEAD", self.base + path, headers=ACCEPT)
            self.assertEqual(head.status, 404, path)
            self.assertEqual(head.body, b"", path)
        self.assert_never_sent_upstream("INVALID_MANIFEST_NAME", "-bad-tag", "sha256:1234 ", "md5:")

    def test_a_malformed_blob_digest_is_digest_invalid_locally(self):
        for path in ("/v2/team/app/blobs/sha256:xyz", "/v2/team/app/blobs/md5:" + "0" * 32,
                     "/v2/team/app/blobs/sha256:" + "0" * 63, "/v2/team/app/blobs/.INVALID"):
            r = request("GET", self.base + path)
            self.assertEqual(r.status, 400, path)
            self.assertEqual(r.json()["errors"][0]["code"], "DIGEST_INVALID", path)
            self.assertEqual(request("HEAD", self.base + path).status, 400, path)
        self.assert_never_sent_upstream("sha256:xyz", "md5:", "0" * 63 + " ", ".INVALID")

    def test_referrers_of_a_malformed_digest_are_digest_invalid_locally(self):
        r = request("GET", self.base + "/v2/team/app/referrers/sha256:nothex")
        self.assertEqual(r.status, 400)
        self.assertEqual(r.json()["errors"][0]["code"], "DIGEST_INVALID")
        self.assert_never_sent_upstream("sha256:nothex")

    def test_invalid_names_are_name_invalid_on_every_route(self):
        for route in ("manifests/v1", "blobs/" + self.oci.layer_digests[0], "tags/list",
                      "referrers/" + self.oci.digest):
            for name in ("UPPER", "a/../b", "team//app", "-lead"):
                path = f"/v2/{name}/{route}"
                r = request("GET", self.base + path)
                self.assertEqual(r.status, 400, path)
                self.assertEqual(r.json()["errors"][0]["code"], "NAME_INVALID", path)
        self.assert_never_sent_upstream("UPPER", "-lead")

    def test_an_unknown_repository_is_name_unknown_for_tags(self):
        r = request("GET", self.base + "/v2/team/nothing-here/tags/list")
        self.assertEqual(r.status, 404)
        self.assertEqual(r.json()["errors"][0]["code"], "NAME_UNKNOWN")

    def test_a_header_over_the_limit_is_431_with_an_oci_error(self):
        for size in (20_000, 40_000):
            status, head, body = harness.raw_exchange(
                self.gate.port, b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * size + b"\r\n\r\n")
            self.assertEqual(status, 431, head)
            error = json.loads(body)["errors"][0]
            self.assertEqual(error["code"], "UNSUPPORTED")
            self.assertIn("server.max_header_bytes", error["message"])

    def test_a_malformed_request_is_400_without_name_invalid(self):
        status, head, body = harness.raw_exchange(self.gate.port, b"GARBAGE\r\n\r\n")
        self.assertEqual(status, 400, head)
        error = json.loads(body)["errors"][0]
        self.assertEqual(error["code"], "UNSUPPORTED")
        self.assertIn("malformed HTTP request", error["message"])
        self.assertGreater(self.gate.metric_sum("ocigate_malformed_requests_total", reason="unparsable"), 0)

    def test_the_catalog_says_what_is_not_served(self):
        r = request("GET", self.base + "/v2/_catalog")
        self.assertEqual(r.status, 405)
        error = r.json()["errors"][0]
        self.assertEqual(error["code"], "UNSUPPORTED")
        self.assertIn("catalog", error["message"])
        self.assertNotIn("GET is not supported", error["message"])

    def test_writes_are_unsupported(self):
        for method, path in (("PUT", "/v2/team/app/manifests/v9"), ("POST", "/v2/team/app/blobs/uploads/"),
                             ("DELETE", f"/v2/team/app/manifests/{self.oci.digest}"), ("PATCH", "/v2/team/app/blobs/uploads/x")):
            r = request(method, self.base + path, body=b"{}" if method in ("PUT", "POST", "PATCH") else None)
            self.assertEqual(r.status, 405, (method, path))
            self.assertEqual(r.json()["errors"][0]["code"], "UNSUPPORTED")

    def test_accept_excluding_the_type_is_refused(self):
        r = request("GET", f"{self.base}/v2/team/app/manifests/v1", headers={"Accept": harness.DOCKER_MANIFEST})
        self.assertEqual(r.status, 404)
        self.assertEqual(r.json()["errors"][0]["code"], "MANIFEST_UNKNOWN")

    def test_ns_query_selects_the_upstream(self):
        r = request("GET", f"{self.base}/v2/team/app/manifests/v1?ns=up", headers=ACCEPT)
        self.assertEqual(r.status, 200)
        r = request("GET", f"{self.base}/v2/team/app/manifests/v1?ns=elsewhere.example.com", headers=ACCEPT)
        self.assertEqual(r.status, 404)
        self.assertEqual(r.json()["errors"][0]["code"], "NAME_UNKNOWN")

    def test_metrics_and_health(self):
        self.assertEqual(request("GET", self.base + "/healthz").status, 200)
        self.assertEqual(request("GET", self.base + "/readyz").status, 200)
        request("GET", f"{self.base}/v2/team/app/manifests/v1", headers=ACCEPT)
        self.assertGreater(self.gate.metric_sum("ocigate_http_requests_total", route="manifest"), 0)
        self.assertGreater(self.gate.metric_sum("ocigate_upstream_requests_total", upstream="up"), 0)

    def test_the_instance_names_every_answer_log_line_and_the_metrics(self):
        import socket
        host = socket.gethostname()[:64]
        r = request("GET", f"{self.base}/v2/team/app/manifests/v1", headers=ACCEPT)
        self.assertEqual(r.header("X-Ocigate-Instance"), host)
        self.assertEqual(request("GET", f"{self.base}/v2/team/app/manifests/nope").header("X-Ocigate-Instance"), host)
        with open(self.gate.stdout_path) as f:
            lines = [json.loads(line) for line in f if line.strip()]
        self.assertTrue(all(line.get("instance") == host for line in lines if line.get("log") in ("access", "audit")))
        self.assertEqual(self.gate.metric_sum("ocigate_instance_info", ocigate_instance=host), 1)
        self.assertEqual(self.gate.metric_sum("ocigate_policy_info", mode="audit"), 1)

    def test_access_log_is_json_without_credentials(self):
        request("GET", f"{self.base}/v2/team/app/manifests/v1", headers=ACCEPT)
        with open(self.gate.stdout_path) as f:
            lines = [json.loads(line) for line in f if line.strip()]
        manifest_lines = [l for l in lines if l.get("route") == "manifest"]
        self.assertTrue(manifest_lines)
        for key in ("method", "name", "reference", "status", "bytes", "duration_ms", "cache", "upstream"):
            self.assertIn(key, manifest_lines[-1])


class PullAhead(PullTestCase):
    """upstreams[].pull_ahead: once a client GETs one layer of an image it was sent the manifest of,
    the other layers are fetched ahead of it; a manifest read alone fetches none."""

    @classmethod
    def setUpClass(cls):
        cls.registry = harness.Registry()
        cls.addClassCleanup(cls.registry.close)
        r = cls.registry.start()
        cls.images = {name: harness.push_image(r, f"team/{name}", "v1",
                                               layers=[{f"{name}-{i}.bin": os.urandom(200_000)} for i in range(5)])
                      for name in ("pulled", "inspected", "off")}
        # layer_scan off: with prefetch the gate itself would fetch every layer for the manifest.
        policy = {"layer_scan": "off"}
        cls.gate = harness.Ocigate([{"name": "up", "url": r.url}], default_upstream="up", extra={"policy": policy})
        cls.addClassCleanup(cls.gate.close)
        cls.gate.start()
        cls.off = harness.Ocigate([{"name": "up", "url": r.url, "pull_ahead": 0}], default_upstream="up",
                                  extra={"policy": policy})
        cls.addClassCleanup(cls.off.close)
        cls.off.start()

    def layer_gets(self, image):
        return [self.registry.blob_gets(d) for d in image.layer_digests]

    def test_the_first_layer_brings_the_others_into_the_cache_once(self):
        image = self.images["pulled"]
        self.assertEqual(request("GET", f"{self.gate.url}/v2/team/pulled/manifests/v1", headers=ACCEPT).status, 200)
        r = request("GET", f"{self.gate.url}/v2/team/pulled/blobs/{image.layer_digests[0]}")
        self.assertEqual(r.status, 200)
        harness.wait_until(lambda: self.gate.metric_sum("ocigate_pull_ahead_layers_total", result="fetched") >= 4,
                           10, "four layers pulled ahead")
        self.assertEqual(self.layer_gets(image), [1] * 5)
        result, dest = self.copy(f"{self.gate.host}/team/pulled:v1")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(set(harness.verify_dir_copy(dest)), {image.config_digest, *image.layer_digests})
        self.assertEqual(self.layer_gets(image), [1] * 5, "skopeo found every layer cached")

    def test_reading_the_manifest_and_config_fetches_no_layer(self):
        image = self.images["inspected"]
        result = subprocess.run(["skopeo", "inspect", "--tls-verify=false", f"docker://{self.gate.host}/team/inspected:v1"],
                                capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        self.assertEqual(result.returncode, 0, result.stderr)
        time.sleep(0.5)
        self.assertEqual(self.layer_gets(image), [0] * 5)

    def test_zero_fetches_only_what_the_client_asks_for(self):
        image = self.images["off"]
        self.assertEqual(request("GET", f"{self.off.url}/v2/team/off/manifests/v1", headers=ACCEPT).status, 200)
        self.assertEqual(request("GET", f"{self.off.url}/v2/team/off/blobs/{image.layer_digests[2]}").status, 200)
        time.sleep(0.5)
        self.assertEqual(self.layer_gets(image), [0, 0, 1, 0, 0])


class CachedBlobRot(unittest.TestCase):
    """A cached blob whose file changed on disk after it was cached (bit rot, a careless hand)."""

    def push_layer(self, registry):
        """One image with one 300 kB layer; returns the layer's digest and size."""
        image = harness.push_image(registry, "team/rot", "v1", layers=[{"big": os.urandom(300_000)}])
        digest = image.layer_digests[0]
        size = int(request("HEAD", f"{registry.url}/v2/team/rot/blobs/{digest}").header("Content-Length"))
        return digest, size

    def cached_file(self, gate, digest, size):
        """Pulls the layer through gate, waits for its commit, and returns the path of its file."""
        r = request("GET", f"{gate.url}/v2/team/rot/blobs/{digest}")
        self.assertEqual(harness.sha256(r.body), digest)
        harness.wait_until(lambda: request("HEAD", f"{gate.url}/v2/team/rot/blobs/{digest}").status == 200 and
                           gate.metric_sum("ocigate_cache_blobs") >= 1, 10, "the blob's commit")
        blob_dir = os.path.join(gate.storage_path, "blobs")  # files fan out to blobs/<2 hex>/<16 hex>
        every = [os.path.join(d, f) for d, _, names in os.walk(blob_dir) for f in names]
        files = [f for f in every if os.path.getsize(f) == size]
        self.assertEqual(len(files), 1, every)
        return files[0]

    def corrupt_cached_copy(self, gate, digest, size):
        with open(self.cached_file(gate, digest, size), "r+b") as f:
            f.seek(size // 2)
            byte = f.read(1)
            f.seek(size // 2)
            f.write(bytes([byte[0] ^ 1]))

    def assert_fetched_again(self, gate, registry, digest):
        """The next pull gets the blob whole and right, with a second upstream GET."""
        r = request("GET", f"{gate.url}/v2/team/rot/blobs/{digest}")
        self.assertEqual((r.status, harness.sha256(r.body)), (200, digest))
        # The registry logs a GET after its last byte, which may be after we have ours.
        harness.wait_until(lambda: registry.blob_gets(digest) >= 2, 10, "the refetch in the upstream's log")
        self.assertEqual(registry.blob_gets(digest), 2)

    def test_verify_reads_cuts_counts_removes_and_fetches_again(self):
        with harness.Registry() as registry:
            digest, size = self.push_layer(registry)
            gate = harness.Ocigate([{"name": "up", "url": registry.url}], default_upstream="up")
            gate.config["storage"]["verify_reads"] = True
            gate._write_config()
            with gate:
                self.corrupt_cached_copy(gate, digest, size)
                with self.assertRaises(http.client.HTTPException):  # cut before the last byte
                    request("GET", f"{gate.url}/v2/team/rot/blobs/{digest}")
                self.assertEqual(gate.metric_sum("ocigate_corrupt_cached_blobs_total"), 1)
                self.assertIn("no longer matches its digest", gate.stderr())
                self.assert_fetched_again(gate, registry, digest)  # removed from the cache

    def test_a_blob_file_deleted_by_hand_is_fetched_again_logged_and_counted(self):
        with harness.Registry() as registry:
            digest, size = self.push_layer(registry)
            with harness.Ocigate([{"name": "up", "url": registry.url}], default_upstream="up") as gate:
                os.unlink(self.cached_file(gate, digest, size))
                # Not a 404 for a blob the index still named: the client gets it, from the upstream.
                self.assert_fetched_again(gate, registry, digest)
                self.assertEqual(gate.metric_sum("ocigate_cache_lost_files_total"), 1)
                self.assertIn("cached blob dropped; it will be fetched again", gate.stderr())

    def test_without_verify_reads_a_range_is_served_and_cache_verify_finds_it(self):
        with harness.Registry() as registry:
            digest, size = self.push_layer(registry)
            with harness.Ocigate([{"name": "up", "url": registry.url}], default_upstream="up") as gate:
                self.corrupt_cached_copy(gate, digest, size)
                r = request("GET", f"{gate.url}/v2/team/rot/blobs/{digest}", headers={"Range": "bytes=0-99"})
                self.assertEqual(r.status, 206)
                gate.stop()
                verify = subprocess.run([gate.bin, "cache", "verify", "--config", gate.config_path],
                                        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
                self.assertNotEqual(verify.returncode, 0)
                self.assertIn(digest, verify.stdout + verify.stderr)


class NoDefaultUpstream(unittest.TestCase):
    def test_unprefixed_name_without_default_is_name_unknown(self):
        with harness.Registry() as registry:
            harness.push_image(registry, "team/app", "v1")
            upstreams = [{"name": "one", "url": registry.url}, {"name": "two", "url": registry.url}]
            with harness.Ocigate(upstreams) as gate:
                r = request("GET", f"{gate.url}/v2/team/app/manifests/v1", headers=ACCEPT)
                self.assertEqual(r.status, 404)
                self.assertEqual(r.json()["errors"][0]["code"], "NAME_UNKNOWN")
                r = request("GET", f"{gate.url}/v2/two/team/app/manifests/v1", headers=ACCEPT)
                self.assertEqual(r.status, 200)


def cpu_list(text):
    """The CPUs of a /proc Cpus_allowed_list value such as "0-1,4"."""
    cpus = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    return cpus


class IoThreadPlacement(unittest.TestCase):
    """server.pin_threads: each I/O thread on a CPU of its own; the pools (commits, scans, bcrypt)
    and RocksDB's threads keep every CPU, and a pull works either way."""

    def thread_masks(self, gate):
        masks = []
        task_dir = f"/proc/{gate.proc.pid}/task"
        for tid in os.listdir(task_dir):
            with open(os.path.join(task_dir, tid, "status")) as f:
                line = next(l for l in f if l.startswith("Cpus_allowed_list:"))
            masks.append(cpu_list(line.split(":", 1)[1].strip()))
        return masks

    def serve(self, registry, pin, threads):
        extra = {"server": {"threads": threads, "shutdown_grace": "5s", "pin_threads": pin}}
        gate = harness.Ocigate([{"name": "up", "url": registry.url}], default_upstream="up", extra=extra)
        self.addCleanup(gate.close)
        gate.start()
        r = request("GET", f"{gate.url}/v2/team/app/manifests/v1", headers=ACCEPT)
        self.assertEqual(r.status, 200)
        return gate

    def test_pinned_and_unpinned(self):
        allowed = os.sched_getaffinity(0)
        if len(allowed) < 2:
            self.skipTest("needs two CPUs to tell a pinned thread from a free one")
        with harness.Registry() as registry:
            harness.push_image(registry, "team/app", "v1")
            masks = self.thread_masks(self.serve(registry, True, len(allowed)))
            pinned = sorted(next(iter(m)) for m in masks if len(m) == 1)
            self.assertEqual(pinned, sorted(allowed), "one I/O thread on each CPU")
            self.assertGreater(len(masks), len(allowed) + 4, "the pools and RocksDB run threads of their own")
            for mask in masks:
                self.assertTrue(len(mask) == 1 or mask == allowed, mask)

            masks = self.thread_masks(self.serve(registry, False, len(allowed)))
            self.assertTrue(all(mask == allowed for mask in masks), masks)
            # Fewer threads than CPUs: not pinned (two such processes would crowd the same CPUs).
            masks = self.thread_masks(self.serve(registry, True, len(allowed) - 1))
            self.assertTrue(all(mask == allowed for mask in masks), masks)


class AuthenticatedUpstreams(PullTestCase):
    def test_htpasswd_upstream_with_credentials(self):
        with harness.Registry(htpasswd=("mirror", "s3cret-pass")) as registry:
            image = harness.push_image(registry, "team/app", "v1")
            pw = os.path.join(registry.dir, "pw")
            with open(pw, "w") as f:
                f.write("s3cret-pass\n")
            upstream = {"name": "up", "url": registry.url, "username": "mirror", "password_file": pw}
            with harness.Ocigate([upstream]) as gate:
                result, dest = self.copy(f"{gate.host}/team/app:v1")
                self.assertEqual(result.returncode, 0, result.stderr)
                self.assertIn(image.config_digest, harness.verify_dir_copy(dest))
                with open(gate.stdout_path) as out, open(gate.stderr_path) as err:
                    logs = out.read() + err.read()
                self.assertNotIn("s3cret-pass", logs)

    def test_htpasswd_upstream_without_credentials_is_unauthorized(self):
        with harness.Registry(htpasswd=("mirror", "pw")) as registry:
            harness.push_image(registry, "team/app", "v1")
            with harness.Ocigate([{"name": "up", "url": registry.url}]) as gate:
                r = request("GET", f"{gate.url}/v2/team/app/manifests/v1", headers=ACCEPT)
                self.assertEqual(r.status, 401)
                self.assertEqual(r.json()["errors"][0]["code"], "UNAUTHORIZED")

    def test_bearer_token_upstream(self):
        with harness.Registry() as registry:
            image = harness.push_image(registry, "team/app", "v1")
            with harness.BearerGateway(registry.url, credentials=("bot", "tok-pass")) as gateway:
                pw = os.path.join(registry.dir, "pw")
                with open(pw, "w") as f:
                    f.write("tok-pass")
                upstream = {"name": "up", "url": gateway.url, "username": "bot", "password_file": pw}
                with harness.Ocigate([upstream]) as gate:
                    result, dest = self.copy(f"{gate.host}/team/app:v1")
                    self.assertEqual(result.returncode, 0, result.stderr)
                    self.assertIn(image.config_digest, harness.verify_dir_copy(dest))
                    self.assertTrue(gateway.token_requests)
                    self.assertIn("scope=repository:team/app:pull", urllib.parse.unquote(gateway.token_requests[0]))
                    # Tokens are cached per scope: far fewer token fetches than upstream requests.
                    self.assertLess(len(gateway.token_requests), gateway.forwarded)


class TokenUpstream(PullTestCase):
    """docker-registry with its own `auth: token` (JWTs from harness.TokenServer), as Docker Hub
    and GHCR behave: ocigate answers the challenge with its configured credentials."""

    @classmethod
    def setUpClass(cls):
        cls.tokens = harness.TokenServer(users={"pusher": "push-pw", "mirror": "m1rror-pw"}, alg="ES256")
        cls.addClassCleanup(cls.tokens.close)
        cls.registry = harness.Registry(token=cls.tokens)
        cls.addClassCleanup(cls.registry.close)
        cls.registry.start()
        cls.image = harness.push_image(cls.registry, "team/app", "v1", layers=[{"f": os.urandom(200_000)}])
        cls.docker = harness.push_image(cls.registry, "team/legacy", "v1", media="docker")
        cls.index_digest, _, _ = harness.push_index(cls.registry, "team/multi", "v1")

    def gate(self, password):
        pw = os.path.join(self.tokens.dir, "mirror-password")
        with open(pw, "w") as f:
            f.write(password + "\n")
        upstream = {"name": "up", "url": self.registry.url, "username": "mirror", "password_file": pw}
        gate = harness.Ocigate([upstream])
        self.addCleanup(gate.close)
        return gate.start()

    def test_skopeo_pulls_images_and_an_index_with_pull_only_tokens(self):
        gate = self.gate("m1rror-pw")
        for ref, extra, blobs in (("team/app:v1", (), self.image.blobs),
                                  (f"team/legacy@{self.docker.digest}", (), self.docker.blobs),
                                  ("team/multi:v1", ["--all"], None)):
            result, dest = self.copy(f"{gate.host}/{ref}", extra=extra)
            self.assertEqual(result.returncode, 0, (ref, result.stderr))
            pulled = harness.verify_dir_copy(dest)
            if blobs:
                self.assertEqual(sorted(pulled), sorted(blobs))
            else:
                self.assertEqual(len(pulled), 4)
        asked = self.tokens.token_requests("mirror")
        self.assertTrue(asked)
        for _, scopes in asked:
            for scope in scopes:
                self.assertTrue(scope.endswith(":pull"), scope)
        self.assertEqual(self.tokens.token_requests(None), [], "no anonymous attempts with credentials configured")
        with open(gate.stdout_path) as out, open(gate.stderr_path) as err:
            logs = out.read() + err.read()
        self.assertNotIn("m1rror-pw", logs)
        self.assertNotIn("eyJ", logs, "no token in the logs")

    def test_wrong_password_is_unauthorized_not_a_server_error(self):
        gate = self.gate("not-the-password")
        r = request("GET", f"{gate.url}/v2/team/app/manifests/v1", headers=ACCEPT)
        self.assertEqual(r.status, 401)
        self.assertEqual(r.json()["errors"][0]["code"], "UNAUTHORIZED")
        r = request("GET", f"{gate.url}/v2/team/app/blobs/{self.image.layer_digests[0]}")
        self.assertEqual(r.status, 401)
        result, _ = self.copy(f"{gate.host}/team/app:v1")
        self.assertNotEqual(result.returncode, 0)


if __name__ == "__main__":
    unittest.main()
