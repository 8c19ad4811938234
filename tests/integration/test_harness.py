"""The harness checked against the peers alone (no ocigate): images seeded in Python into open,
htpasswd and token-auth docker-registries pull with skopeo, directly and through docker-registry in
proxy mode; the fault tools (outage, corruption, counting, throttling) do what the fault tests
assume. If these fail, a failure in test_pull/test_faults says nothing about ocigate."""

import gzip
import io
import json
import os
import shutil
import socket
import tarfile
import tempfile
import time
import unittest
import urllib.parse

import harness
from harness import request

ACCEPT = {"Accept": harness.ALL_MANIFESTS}


class CopyMixin:
    def copy(self, ref, extra=(), creds=None):
        dest = tempfile.mkdtemp(prefix="ocigate-copy-")
        self.addCleanup(shutil.rmtree, dest, True)
        return harness.skopeo_copy(ref, dest, extra=extra, creds=creds), dest

    def assert_pulled(self, result, dest, manifest, blobs):
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(harness.dir_manifest(dest), manifest, "skopeo got the exact manifest bytes")
        self.assertEqual(sorted(harness.verify_dir_copy(dest)), sorted(blobs))


class OpenRegistry(CopyMixin, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.registry = harness.Registry()
        cls.addClassCleanup(cls.registry.close)
        r = cls.registry.start()
        cls.oci = harness.push_image(r, "team/app", "v1", layers=[{"bin/tool": (b"#!/bin/sh\n", 0o755)},
                                                                  {"data": os.urandom(100_000)}])
        cls.docker = harness.push_image(r, "team/legacy", "v1", media="docker")
        cls.index = harness.push_index(r, "team/multi", "v1", media="oci")
        cls.manifest_list = harness.push_index(r, "team/dlist", "v1", media="docker")

    def child_blobs(self, child_digest, repo):
        body = request("GET", f"{self.registry.url}/v2/{repo}/manifests/{child_digest}", headers=ACCEPT).json()
        return [body["config"]["digest"], *(layer["digest"] for layer in body["layers"])]

    def test_skopeo_pulls_an_oci_image_by_tag(self):
        result, dest = self.copy(f"{self.registry.host}/team/app:v1")
        self.assert_pulled(result, dest, self.oci.manifest, self.oci.blobs)

    def test_skopeo_pulls_a_docker_schema2_image_by_digest(self):
        result, dest = self.copy(f"{self.registry.host}/team/legacy@{self.docker.digest}")
        self.assert_pulled(result, dest, self.docker.manifest, self.docker.blobs)

    def test_skopeo_pulls_every_platform_of_an_oci_index(self):
        digest, body, children = self.index
        result, dest = self.copy(f"{self.registry.host}/team/multi:v1", extra=["--all"])
        blobs = self.child_blobs(children[0], "team/multi") + self.child_blobs(children[1], "team/multi")
        self.assert_pulled(result, dest, body, blobs)

    def test_skopeo_pulls_one_platform_of_a_docker_manifest_list(self):
        _, _, children = self.manifest_list
        result, dest = self.copy(f"{self.registry.host}/team/dlist:v1", extra=["--override-arch", "arm64"])
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(harness.sha256(harness.dir_manifest(dest)), children[1], "the arm64 child")
        self.assertEqual(sorted(harness.verify_dir_copy(dest)), sorted(self.child_blobs(children[1], "team/dlist")))

    def test_index_children_carry_their_platform_and_media_type(self):
        for (digest, body, children), media in ((self.index, harness.OCI_INDEX),
                                                (self.manifest_list, harness.DOCKER_LIST)):
            index = json.loads(body)
            self.assertEqual(index["mediaType"], media)
            self.assertEqual([m["platform"]["architecture"] for m in index["manifests"]], ["amd64", "arm64"])
            self.assertEqual([m["digest"] for m in index["manifests"]], children)
            self.assertEqual(harness.sha256(body), digest)

    def test_layers_are_gzip_tarballs_whose_diff_ids_are_in_the_config(self):
        config = request("GET", f"{self.registry.url}/v2/team/app/blobs/{self.oci.config_digest}").json()
        for key in ("architecture", "os", "history"):
            self.assertIn(key, config)
        for key in ("User", "Env", "Cmd"):
            self.assertIn(key, config["config"])
        for layer, diff_id in zip(self.oci.layer_digests, config["rootfs"]["diff_ids"]):
            blob = request("GET", f"{self.registry.url}/v2/team/app/blobs/{layer}").body
            self.assertEqual(harness.sha256(blob), layer)
            tar_bytes = gzip.decompress(blob)
            self.assertEqual(harness.sha256(tar_bytes), diff_id)
            with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
                self.assertTrue(tar.getnames())
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(
                request("GET", f"{self.registry.url}/v2/team/app/blobs/{self.oci.layer_digests[0]}").body))) as tar:
            self.assertEqual(tar.getmember("bin/tool").mode, 0o755)

    def test_layers_are_deterministic(self):
        files = {"a": b"1", "b/c": b"2"}
        self.assertEqual(harness.make_layer(files), harness.make_layer(dict(reversed(list(files.items())))))
        self.assertNotEqual(harness.make_layer(files)[0], harness.make_layer({"a": b"1"})[0])

    def test_tags_are_listed(self):
        r = request("GET", f"{self.registry.url}/v2/team/app/tags/list")
        self.assertEqual(r.json()["tags"], ["v1"])

    def test_the_access_log_counts_blob_gets(self):
        layer = self.oci.layer_digests[1]
        before = self.registry.blob_gets(layer)
        for _ in range(2):
            self.assertEqual(request("GET", f"{self.registry.url}/v2/team/app/blobs/{layer}").status, 200)
        request("HEAD", f"{self.registry.url}/v2/team/app/blobs/{layer}")
        harness.wait_until(lambda: self.registry.blob_gets(layer) == before + 2, 5, "access log lines")
        self.assertGreaterEqual(self.registry.requests_containing(f"HEAD /v2/team/app/blobs/{layer}"), 1)

    def test_corrupted_blob_is_served_as_is_with_its_old_length(self):
        image = harness.push_image(self.registry, "team/corrupt", "v1", layers=[{"x": os.urandom(50_000)}])
        layer = image.layer_digests[0]
        size = self.registry.corrupt_blob(layer)
        r = request("GET", f"{self.registry.url}/v2/team/corrupt/blobs/{layer}")
        self.assertEqual(r.status, 200)
        self.assertEqual(len(r.body), size)
        self.assertNotEqual(harness.sha256(r.body), layer)

    def test_counting_pass_through_counts_and_throttles(self):
        layer = self.oci.layer_digests[1]
        size = int(request("HEAD", f"{self.registry.url}/v2/team/app/blobs/{layer}").header("Content-Length"))
        with harness.CountingPassThrough(self.registry.url, throttle_bps=size * 2) as slow:
            started = time.monotonic()
            r = request("GET", f"{slow.url}/v2/team/app/blobs/{layer}")
            elapsed = time.monotonic() - started
            self.assertEqual(harness.sha256(r.body), layer)
            self.assertEqual(slow.gets(layer), 1)
            self.assertGreaterEqual(elapsed, 0.4, "about half a second at twice the size per second")
            self.assertEqual(request("HEAD", f"{slow.url}/v2/team/app/blobs/{layer}").status, 200)
            self.assertEqual(slow.gets(layer), 1, "HEADs are not counted")


class Outage(unittest.TestCase):
    def test_stop_refuses_connections_and_start_brings_back_the_same_port_and_data(self):
        with harness.Registry() as registry:
            image = harness.push_image(registry, "team/app", "v1")
            port = registry.port
            registry.stop()
            with self.assertRaises(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
            registry.start()
            self.assertEqual(registry.port, port)
            r = request("GET", f"{registry.url}/v2/team/app/manifests/v1", headers=ACCEPT)
            self.assertEqual(r.status, 200)
            self.assertEqual(r.body, image.manifest)

    def test_a_taken_port_moves_the_first_start_elsewhere(self):
        with socket.socket() as squatter:
            squatter.bind(("127.0.0.1", 0))
            squatter.listen()
            registry = harness.Registry()
            self.addCleanup(registry.close)
            taken = squatter.getsockname()[1]
            registry.port = taken
            registry._write_config()
            registry.start()
            self.assertNotEqual(registry.port, taken)
            self.assertEqual(request("GET", registry.url + "/v2/").status, 200)

    def test_close_removes_the_directory_and_the_process(self):
        registry = harness.Registry().start()
        proc, directory = registry.proc, registry.dir
        registry.close()
        self.assertIsNotNone(proc.poll())
        self.assertFalse(os.path.exists(directory))


class HtpasswdRegistry(CopyMixin, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.registry = harness.Registry(htpasswd=("pusher", "p4ss-word"))
        cls.addClassCleanup(cls.registry.close)
        cls.registry.start()
        cls.image = harness.push_image(cls.registry, "team/app", "v1")

    def test_anonymous_requests_are_challenged_with_basic(self):
        r = request("GET", f"{self.registry.url}/v2/")
        self.assertEqual(r.status, 401)
        self.assertTrue(r.header("WWW-Authenticate").startswith("Basic "))

    def test_skopeo_pulls_with_credentials(self):
        result, dest = self.copy(f"{self.registry.host}/team/app:v1", creds=("pusher", "p4ss-word"))
        self.assert_pulled(result, dest, self.image.manifest, self.image.blobs)

    def test_skopeo_without_or_with_wrong_credentials_fails(self):
        for creds in (None, ("pusher", "wrong")):
            result, _ = self.copy(f"{self.registry.host}/team/app:v1", creds=creds)
            self.assertNotEqual(result.returncode, 0, creds)
            self.assertIn("unauthorized", result.stderr.lower(), creds)


class TokenRegistryRS256(CopyMixin, unittest.TestCase):
    """docker-registry's own `auth: token` with JWTs from harness.TokenServer (x5c header, the
    signing certificate in rootcertbundle): the scheme Docker Hub and GHCR use."""
    alg = "RS256"

    @classmethod
    def setUpClass(cls):
        cls.tokens = harness.TokenServer(users={"pusher": "push-pw", "reader": "read-pw"}, alg=cls.alg)
        cls.addClassCleanup(cls.tokens.close)
        cls.registry = harness.Registry(token=cls.tokens)
        cls.addClassCleanup(cls.registry.close)
        cls.registry.start()
        cls.image = harness.push_image(cls.registry, "team/app", "v1")
        cls.index = harness.push_index(cls.registry, "team/multi", "v1")

    def manifest_with(self, token, repo="team/app"):
        return request("GET", f"{self.registry.url}/v2/{repo}/manifests/v1",
                       headers={**ACCEPT, "Authorization": "Bearer " + token})

    def test_anonymous_requests_get_a_bearer_challenge_naming_the_token_server(self):
        r = request("GET", f"{self.registry.url}/v2/team/app/manifests/v1", headers=ACCEPT)
        self.assertEqual(r.status, 401)
        challenge = r.header("WWW-Authenticate")
        self.assertTrue(challenge.startswith("Bearer "), challenge)
        self.assertIn(f'realm="{self.tokens.realm}"', challenge)
        self.assertIn(f'service="{self.tokens.service}"', challenge)
        self.assertIn('scope="repository:team/app:pull"', challenge)

    def test_skopeo_pulls_with_credentials_through_the_token_dance(self):
        before = len(self.tokens.token_requests("reader"))
        result, dest = self.copy(f"{self.registry.host}/team/app:v1", creds=("reader", "read-pw"))
        self.assert_pulled(result, dest, self.image.manifest, self.image.blobs)
        asked = self.tokens.token_requests("reader")[before:]
        self.assertTrue(asked)
        self.assertIn(["repository:team/app:pull"], [scopes for _, scopes in asked])

    def test_skopeo_pulls_an_index_by_digest(self):
        digest, body, _ = self.index
        result, dest = self.copy(f"{self.registry.host}/team/multi@{digest}", extra=["--all"],
                                 creds=("reader", "read-pw"))
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(harness.dir_manifest(dest), body)
        self.assertEqual(len(harness.verify_dir_copy(dest)), 4)

    def test_skopeo_without_or_with_wrong_credentials_fails(self):
        for creds in (None, ("reader", "nope")):
            result, _ = self.copy(f"{self.registry.host}/team/app:v1", creds=creds)
            self.assertNotEqual(result.returncode, 0, creds)

    def test_the_token_endpoint_answers_get_and_the_oauth2_password_grant(self):
        form = urllib.parse.urlencode({"grant_type": "password", "username": "reader", "password": "read-pw",
                                       "service": self.tokens.service, "scope": "repository:team/app:pull",
                                       "client_id": "test"}).encode()
        r = request("POST", self.tokens.realm, body=form,
                    headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(self.manifest_with(r.json()["access_token"]).status, 200)
        token = self.tokens.token_for("repository:team/app:pull", ("reader", "read-pw"))
        self.assertEqual(self.manifest_with(token).status, 200)
        self.assertEqual(request("GET", self.tokens.realm + "?service=other").status, 401)

    def test_the_registry_checks_scope_signature_issuer_and_expiry(self):
        good = self.tokens.issue("reader", [{"type": "repository", "name": "team/app", "actions": ["pull"]}])
        self.assertEqual(self.manifest_with(good).status, 200)
        self.assertEqual(self.manifest_with(good, repo="team/multi").status, 401, "scope is per repository")
        access = [{"type": "repository", "name": "team/app", "actions": ["pull"]}]
        expired = self.tokens.issue("reader", access, expires_in=-60)
        self.assertEqual(self.manifest_with(expired).status, 401, "expired")
        stranger_dir = tempfile.mkdtemp(prefix="ocigate-stranger-")
        self.addCleanup(shutil.rmtree, stranger_dir, True)
        stranger = harness.SigningKey(stranger_dir, self.alg, name="stranger")
        claims = self.tokens.claims("reader", access)
        self.assertEqual(self.manifest_with(stranger.jwt(claims)).status, 401, "untrusted certificate")
        self.assertEqual(self.manifest_with(stranger.jwt(claims, header_key=self.tokens.key)).status, 401,
                         "trusted certificate, signature by another key")
        claims["iss"] = "someone-else"
        self.assertEqual(self.manifest_with(self.tokens.key.jwt(claims)).status, 401, "wrong issuer")

    def test_anonymous_pull_tokens_when_the_server_allows_them(self):
        tokens = harness.TokenServer(users={"pusher": "pw"}, anonymous=True, alg=self.alg)
        self.addCleanup(tokens.close)
        with harness.Registry(token=tokens) as registry:
            image = harness.push_image(registry, "team/app", "v1")
            result, dest = self.copy(f"{registry.host}/team/app:v1")
            self.assert_pulled(result, dest, image.manifest, image.blobs)
            self.assertIn((None, ["repository:team/app:pull"]), tokens.token_requests())
            anonymous = tokens.token_for("repository:team/app:pull,push")
            r = request("POST", f"{registry.url}/v2/team/app/blobs/uploads/", body=b"",
                        headers={"Authorization": "Bearer " + anonymous})
            self.assertEqual(r.status, 401, "anonymous tokens only pull")


class TokenRegistryES256(TokenRegistryRS256):
    alg = "ES256"


class ProxyMode(CopyMixin, unittest.TestCase):
    """docker-registry as a pull-through cache (the peer ocigate is compared with in benchmarks)."""

    def test_skopeo_pulls_through_a_proxy_of_an_open_registry(self):
        with harness.Registry() as upstream:
            image = harness.push_image(upstream, "team/app", "v1", layers=[{"f": os.urandom(64_000)}])
            with harness.proxy_registry(upstream) as proxy:
                result, dest = self.copy(f"{proxy.host}/team/app:v1")
                self.assert_pulled(result, dest, image.manifest, image.blobs)
                self.assertGreaterEqual(upstream.blob_gets(image.layer_digests[0]), 1)
                self.assertGreaterEqual(proxy.blob_gets(image.layer_digests[0]), 1)

    def test_skopeo_pulls_through_a_proxy_of_a_token_registry(self):
        with harness.TokenServer(users={"mirror": "m-pw"}) as tokens, harness.Registry(token=tokens) as upstream:
            image = harness.push_image(upstream, "team/app", "v1")
            with harness.proxy_registry(upstream) as proxy:
                result, dest = self.copy(f"{proxy.host}/team/app:v1")
                self.assert_pulled(result, dest, image.manifest, image.blobs)
                self.assertTrue(tokens.token_requests("mirror"))


class Cleanup(unittest.TestCase):
    def test_der_ecdsa_signatures_become_64_raw_bytes(self):
        # r with a leading zero byte (positive sign) and a short s.
        r, s = b"\x00" + b"\x80" * 32, b"\x01" * 31
        der = b"\x30" + bytes([4 + len(r) + len(s)]) + b"\x02" + bytes([len(r)]) + r + b"\x02" + bytes([len(s)]) + s
        raw = harness._der_ecdsa_to_raw(der)
        self.assertEqual(raw, b"\x80" * 32 + b"\x00" + b"\x01" * 31)

    def test_scopes_parse_names_with_slashes_and_several_actions(self):
        self.assertEqual(harness.parse_scopes(["repository:a/b/c:pull,push repository:d:pull"]),
                         [{"type": "repository", "name": "a/b/c", "actions": ["pull", "push"]},
                          {"type": "repository", "name": "d", "actions": ["pull"]}])

    def test_metrics_text_parses_into_samples(self):
        text = ('# HELP x y\n# TYPE x counter\nx_total{kind="blob",result="hit"} 3\nplain 1.5e+06\n'
                'broken line here x\n')
        self.assertEqual(harness.parse_metrics(text), {'x_total{kind="blob",result="hit"}': 3.0, "plain": 1.5e6})


if __name__ == "__main__":
    unittest.main()
