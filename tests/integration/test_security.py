"""Who may pull what, end to end: ocigate serving TLS with a test CA (certificates made with the
openssl CLI), skopeo logging in with Basic credentials from an htpasswd file (bcrypt, `htpasswd -B`),
bearer tokens, 401/403, anonymous globs, protected /metrics, mTLS, the per-client rate limit and
connection cap, and a certificate reload on SIGHUP that keeps open connections."""

import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

import harness
from harness import request

ACCEPT = {"Accept": harness.ALL_MANIFESTS}
TOKEN = "tok-ci-0123456789"


def setUpModule():
    if not os.environ.get("OCIGATE_BIN"):
        raise unittest.SkipTest("OCIGATE_BIN is not set (run through ctest)")
    for tool in ("openssl", "htpasswd", "skopeo"):
        if not shutil.which(tool):
            raise unittest.SkipTest(tool + " is not installed")


def skopeo(gate, ref, dest, creds=None, verify=True, cert_dir=None):
    cmd = ["skopeo", "--insecure-policy", "copy"]
    if verify:
        cmd += ["--src-tls-verify=true", "--src-cert-dir", cert_dir]
    else:
        cmd += ["--src-tls-verify=false"]
    if creds:
        cmd += ["--src-creds", f"{creds[0]}:{creds[1]}"]
    cmd += [f"docker://{gate.host}/{ref}", "dir:" + dest]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


class Security(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="ocigate-security-")
        cls.pki = harness.Pki(cls.tmp)
        cls.cert, cls.key = cls.pki.server_cert("server-a")
        cls.htpasswd = os.path.join(cls.tmp, "htpasswd")
        subprocess.run(["htpasswd", "-B", "-b", "-c", "-C", "5", cls.htpasswd, "alice", "alice-pw"], check=True,
                       capture_output=True)
        subprocess.run(["htpasswd", "-B", "-b", "-C", "5", cls.htpasswd, "bob", "bob-pw"], check=True,
                       capture_output=True)
        cls.registry = harness.Registry().start()
        cls.app = harness.push_image(cls.registry, "team/app", "v1")
        cls.other = harness.push_image(cls.registry, "other/tool", "v1")
        cls.public = harness.push_image(cls.registry, "library/base", "v1")

    @classmethod
    def tearDownClass(cls):
        cls.registry.__exit__(None, None, None)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def auth_section(self, **overrides):
        section = {
            "htpasswd_file": self.htpasswd,
            "tokens": [{"user": "ci", "sha256": hashlib.sha256(TOKEN.encode()).hexdigest()}],
            "groups": {"team": ["alice"]},
            "anonymous": ["up/library/**"],
            "rules": [{"groups": ["team"], "repositories": ["up/team/**"]},
                      {"users": ["ci"], "repositories": ["up/**"]},
                      {"users": ["bob"], "repositories": ["up/other/*"]}],
            "protect_api": True,
        }
        section.update(overrides)
        return section

    def gate(self, tls=True, auth=True, server=None, cert=None, start=True):
        extra = {}
        if auth:
            extra["auth"] = self.auth_section() if auth is True else auth
        gate = harness.Ocigate([{"name": "up", "url": self.registry.url}], default_upstream="up", extra=extra)
        if tls:
            cert_file, key_file = cert or (self.cert, self.key)
            gate.config["server"]["tls"] = {"cert_file": cert_file, "key_file": key_file}
            gate.cafile = self.pki.ca_cert
        gate.config["server"].update(server or {})
        gate.probe_auth = ("alice", "alice-pw")
        gate._write_config()
        self.addCleanup(gate.close)
        return gate.start() if start else gate

    def dest(self):
        path = tempfile.mkdtemp(prefix="ocigate-copy-")
        self.addCleanup(shutil.rmtree, path, True)
        return path

    # ---- TLS ----

    def test_skopeo_pulls_over_tls_with_credentials_and_is_refused_without(self):
        gate = self.gate()
        dest = self.dest()
        ok = skopeo(gate, "team/app:v1", dest, creds=("alice", "alice-pw"), cert_dir=self.pki.cert_dir)
        self.assertEqual(ok.returncode, 0, ok.stderr)
        self.assertIn(self.app.layer_digests[0], harness.verify_dir_copy(dest))
        refused = skopeo(gate, "team/app:v1", self.dest(), cert_dir=self.pki.cert_dir)
        self.assertNotEqual(refused.returncode, 0)
        self.assertIn("unauthorized", refused.stderr.lower())
        wrong = skopeo(gate, "team/app:v1", self.dest(), creds=("alice", "nope"), cert_dir=self.pki.cert_dir)
        self.assertNotEqual(wrong.returncode, 0)
        # An untrusted certificate is refused by the client: TLS is really on.
        untrusted = subprocess.run(["skopeo", "inspect", "--tls-verify=true", "--creds", "alice:alice-pw",
                                    f"docker://{gate.host}/team/app:v1"], capture_output=True, text=True, timeout=60)
        self.assertNotEqual(untrusted.returncode, 0)
        self.assertNotIn("alice-pw", gate.stderr())
        with open(gate.stdout_path) as f:
            access = f.read()
        self.assertNotIn("alice-pw", access)
        self.assertIn('"user":"alice"', access)

    def test_plain_http_is_refused_on_the_tls_port_unless_allowed(self):
        gate = self.gate()
        r = request("GET", f"http://{gate.host}/v2/", auth=("alice", "alice-pw"))
        self.assertEqual(r.status, 403)
        self.assertIn("HTTPS only", r.json()["errors"][0]["message"])
        allowed = self.gate(server={"tls": {"cert_file": self.cert, "key_file": self.key, "allow_plain_http": True}})
        self.assertEqual(request("GET", f"http://{allowed.host}/v2/", auth=("alice", "alice-pw")).status, 200)
        self.assertEqual(request("GET", f"{allowed.url}/v2/", auth=("alice", "alice-pw"),
                                 cafile=self.pki.ca_cert).status, 200)

    def test_healthcheck_over_tls_and_on_the_metrics_listener(self):
        metrics_port = harness.free_port()
        gate = self.gate(server={"metrics_listen": f"127.0.0.1:{metrics_port}"})
        probe = subprocess.run([gate.bin, "healthcheck", "--url", f"https://127.0.0.1:{gate.port}/healthz"],
                               capture_output=True, text=True, timeout=30)
        self.assertEqual(probe.returncode, 0, probe.stderr)
        # --config prefers the plain metrics listener, which answers probes too (no client certificate needed).
        probe = subprocess.run([gate.bin, "healthcheck", "--config", gate.config_path],
                               capture_output=True, text=True, timeout=30)
        self.assertEqual(probe.returncode, 0, probe.stderr)
        self.assertEqual(request("GET", f"http://127.0.0.1:{metrics_port}/readyz").status, 200)
        self.assertEqual(request("GET", f"http://127.0.0.1:{metrics_port}/v2/").status, 404)

    def test_tls_1_2_uses_forward_secret_aead_ciphers_and_1_3_works(self):
        gate = self.gate()
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            context = ssl.create_default_context(cafile=self.pki.ca_cert)
            context.minimum_version = context.maximum_version = version
            with socket.create_connection(("127.0.0.1", gate.port), timeout=10) as raw:
                with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                    name, protocol, _ = tls.cipher()
                    self.assertEqual(protocol, {ssl.TLSVersion.TLSv1_2: "TLSv1.2", ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version])
                    if version == ssl.TLSVersion.TLSv1_2:
                        self.assertTrue(name.startswith("ECDHE-") and ("GCM" in name or "CHACHA20" in name), name)
        # A TLS 1.2 client offering only CBC suites finds nothing it can use.
        context = ssl.create_default_context(cafile=self.pki.ca_cert)
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        context.set_ciphers("ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA")
        with socket.create_connection(("127.0.0.1", gate.port), timeout=10) as raw:
            with self.assertRaises((ssl.SSLError, ConnectionError)):
                with context.wrap_socket(raw, server_hostname="127.0.0.1"):
                    pass

    def test_client_certificates_are_required_with_client_ca_file(self):
        client_cert, client_key = self.pki.server_cert("client-1", usage="clientAuth")
        gate = self.gate(server={"tls": {"cert_file": self.cert, "key_file": self.key,
                                         "client_ca_file": self.pki.ca_cert}}, start=False)
        with_client_cert = ssl.create_default_context(cafile=self.pki.ca_cert)
        with_client_cert.load_cert_chain(client_cert, client_key)
        gate.cafile = with_client_cert
        gate.start()
        context = ssl.create_default_context(cafile=self.pki.ca_cert)
        without = http.client.HTTPSConnection("127.0.0.1", gate.port, context=context, timeout=10)
        self.addCleanup(without.close)
        with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
            without.request("GET", "/readyz")
            without.getresponse().read()
        context.load_cert_chain(client_cert, client_key)
        with_cert = http.client.HTTPSConnection("127.0.0.1", gate.port, context=context, timeout=10)
        with_cert.request("GET", "/v2/", headers={"Authorization": harness.basic_auth("alice", "alice-pw")})
        self.assertEqual(with_cert.getresponse().status, 200)
        with_cert.close()

    def mtls_gate(self, **tls):
        gate = self.gate(server={"tls": {"cert_file": self.cert, "key_file": self.key,
                                         "client_ca_file": self.pki.ca_cert, **tls}}, start=False)
        probe = ssl.create_default_context(cafile=self.pki.ca_cert)
        probe.load_cert_chain(*self.pki.server_cert("probe", usage="clientAuth"))
        gate.cafile = probe
        return gate.start()

    def with_cert(self, name):
        context = ssl.create_default_context(cafile=self.pki.ca_cert)
        context.load_cert_chain(*self.pki.server_cert(name, usage="clientAuth"))
        return context

    def test_a_client_certificate_authenticates_as_its_common_name(self):
        gate = self.mtls_gate()
        alice = self.with_cert("alice")
        manifest = gate.url + "/v2/{}/manifests/v1"
        # No Authorization header: the certificate's CN is the user, and alice's grants (team/**) apply.
        self.assertEqual(request("GET", gate.url + "/v2/", cafile=alice).status, 200)
        self.assertEqual(request("GET", manifest.format("team/app"), headers=ACCEPT, cafile=alice).status, 200)
        denied = request("GET", manifest.format("other/tool"), headers=ACCEPT, cafile=alice)
        self.assertEqual(denied.status, 403)
        self.assertEqual(denied.json()["errors"][0]["code"], "DENIED")
        # An Authorization header wins over the certificate, both ways.
        self.assertEqual(request("GET", manifest.format("other/tool"), headers=ACCEPT, auth=("bob", "bob-pw"),
                                 cafile=alice).status, 200)
        self.assertEqual(request("GET", manifest.format("team/app"), headers=ACCEPT, auth=("bob", "bob-pw"),
                                 cafile=alice).status, 403)
        self.assertEqual(request("GET", manifest.format("team/app"), headers=ACCEPT, auth=("alice", "nope"),
                                 cafile=alice).status, 401, "wrong credentials never fall back to the certificate")
        with open(gate.stdout_path) as f:
            lines = [json.loads(line) for line in f if line.startswith("{")]
        pulls = [line for line in lines if line.get("name") == "team/app" and line.get("status") == 200]
        self.assertEqual(pulls[0].get("user"), "alice")
        # A CN that is no plain user name leaves the connection anonymous (anonymous globs only).
        odd = self.with_cert("Alice Smith")
        self.assertEqual(request("GET", manifest.format("team/app"), headers=ACCEPT, cafile=odd).status, 401)
        self.assertEqual(request("GET", manifest.format("library/base"), headers=ACCEPT, cafile=odd).status, 200)
        self.assertIn("client certificate names no usable user", gate.stderr())

    def test_client_cert_user_false_keeps_certificates_out_of_authentication(self):
        gate = self.mtls_gate(client_cert_user=False)
        alice = self.with_cert("alice")
        self.assertEqual(request("GET", gate.url + "/v2/team/app/manifests/v1", headers=ACCEPT, cafile=alice).status,
                         401)
        self.assertEqual(request("GET", gate.url + "/v2/team/app/manifests/v1", headers=ACCEPT,
                                 auth=("alice", "alice-pw"), cafile=alice).status, 200)

    def test_certificate_reload_on_sighup_keeps_open_connections(self):
        cert_b, key_b = self.pki.server_cert("server-b")
        live_cert = os.path.join(self.tmp, "live.crt")
        live_key = os.path.join(self.tmp, "live.key")
        shutil.copy(self.cert, live_cert)
        shutil.copy(self.key, live_key)
        gate = self.gate(cert=(live_cert, live_key))
        context = ssl.create_default_context(cafile=self.pki.ca_cert)
        headers = {"Authorization": harness.basic_auth("alice", "alice-pw")}
        old = http.client.HTTPSConnection("127.0.0.1", gate.port, context=context, timeout=10)
        old.request("GET", "/v2/", headers=headers)
        response = old.getresponse()
        self.assertEqual((response.status, response.read()), (200, b"{}"))
        first_cert = old.sock.getpeercert(binary_form=True)
        shutil.copy(cert_b, live_cert)
        shutil.copy(key_b, live_key)
        gate.proc.send_signal(signal.SIGHUP)
        harness.wait_until(lambda: "certificate reloaded" in gate.stderr(), 10, "certificate reload")
        # The connection opened before the reload still works.
        old.request("GET", "/v2/team/app/manifests/v1", headers={**headers, **ACCEPT})
        response = old.getresponse()
        self.assertEqual(response.status, 200)
        response.read()
        self.assertEqual(old.sock.getpeercert(binary_form=True), first_cert)
        old.close()
        # New connections get the new certificate.
        new = http.client.HTTPSConnection("127.0.0.1", gate.port, context=context, timeout=10)
        new.request("GET", "/v2/", headers=headers)
        self.assertEqual(new.getresponse().status, 200)
        self.assertNotEqual(new.sock.getpeercert(binary_form=True), first_cert)
        self.assertEqual(new.sock.getpeercert()["subject"][0][0][1], "server-b")
        new.close()
        # A broken certificate is refused and the current one stays.
        with open(live_cert, "w") as f:
            f.write("not a certificate\n")
        gate.proc.send_signal(signal.SIGHUP)
        harness.wait_until(lambda: "certificate reload refused" in gate.stderr(), 10, "refused reload")
        self.assertEqual(request("GET", gate.url + "/v2/", auth=("alice", "alice-pw"), cafile=self.pki.ca_cert).status,
                         200)

    # ---- authentication and authorization (plain HTTP keeps these quick) ----

    def test_challenge_anonymous_and_grants(self):
        gate = self.gate(tls=False)
        base = request("GET", gate.url + "/v2/")
        self.assertEqual(base.status, 401)
        self.assertEqual(base.header("WWW-Authenticate"), 'Basic realm="ocigate", charset="UTF-8"')
        self.assertEqual(base.json()["errors"][0]["code"], "UNAUTHORIZED")
        self.assertEqual(request("GET", gate.url + "/v2/", auth=("alice", "alice-pw")).status, 200)
        self.assertEqual(request("GET", gate.url + "/v2/", auth=("alice", "wrong")).status, 401)
        # Anonymous pulls only where auth.anonymous says so; skopeo sends "Basic Og==" without credentials.
        dest = self.dest()
        anon = skopeo(gate, "library/base:v1", dest, verify=False)
        self.assertEqual(anon.returncode, 0, anon.stderr)
        self.assertEqual(request("GET", gate.url + "/v2/team/app/manifests/v1", headers=ACCEPT).status, 401)
        # alice (group team) may pull team/**, not other/*; bob the reverse.
        self.assertEqual(request("GET", gate.url + "/v2/team/app/manifests/v1", headers=ACCEPT,
                                 auth=("alice", "alice-pw")).status, 200)
        denied = request("GET", gate.url + "/v2/other/tool/manifests/v1", headers=ACCEPT, auth=("alice", "alice-pw"))
        self.assertEqual(denied.status, 403)
        self.assertEqual(denied.json()["errors"][0]["code"], "DENIED")
        blob = request("GET", f"{gate.url}/v2/team/app/blobs/{self.app.layer_digests[0]}", auth=("bob", "bob-pw"))
        self.assertEqual(blob.status, 403, "blobs are authorized by repository too")
        bob = skopeo(gate, "other/tool:v1", self.dest(), creds=("bob", "bob-pw"), verify=False)
        self.assertEqual(bob.returncode, 0, bob.stderr)
        refused = skopeo(gate, "team/app:v1", self.dest(), creds=("bob", "bob-pw"), verify=False)
        self.assertNotEqual(refused.returncode, 0)
        self.assertIn("denied", refused.stderr.lower())

    def test_bearer_tokens_and_tokens_as_passwords(self):
        gate = self.gate(tls=False)
        bearer = request("GET", gate.url + "/v2/other/tool/manifests/v1",
                         headers={**ACCEPT, "Authorization": "Bearer " + TOKEN})
        self.assertEqual(bearer.status, 200)
        self.assertEqual(request("GET", gate.url + "/v2/", headers={"Authorization": "Bearer nope"}).status, 401)
        ok = skopeo(gate, "team/app:v1", self.dest(), creds=("ci", TOKEN), verify=False)
        self.assertEqual(ok.returncode, 0, ok.stderr)
        self.assertNotIn(TOKEN, gate.stderr())

    def test_metrics_and_verdicts_behind_auth(self):
        gate = self.gate(tls=False)
        self.assertEqual(request("GET", gate.url + "/metrics").status, 401)
        self.assertEqual(request("GET", gate.url + "/ocigate/v1/verdicts/" + self.app.digest).status, 401)
        self.assertEqual(request("GET", gate.url + "/metrics", auth=("bob", "bob-pw")).status, 200)
        self.assertEqual(request("GET", gate.url + "/healthz").status, 200, "health stays open for probes")

    def test_auth_failures_are_counted_by_reason_and_logged_once(self):
        gate = self.gate(tls=False)

        def count(reason):
            return gate.metric_sum("ocigate_auth_failures_total", reason=reason)

        before = {reason: count(reason) for reason in ("missing", "bad_password", "bad_token", "malformed", "denied")}
        self.assertEqual(request("GET", gate.url + "/v2/").status, 401, "the anonymous ping")
        self.assertEqual(count("missing"), before["missing"], "the ping that teaches login is no failure")
        self.assertEqual(request("GET", gate.url + "/v2/team/app/manifests/v1", headers=ACCEPT).status, 401)
        self.assertEqual(request("GET", gate.url + "/v2/", auth=("alice", "wrong-pw-73")).status, 401)
        self.assertEqual(request("GET", gate.url + "/v2/", headers={"Authorization": "Bearer nope"}).status, 401)
        self.assertEqual(request("GET", gate.url + "/v2/", headers={"Authorization": "Digest x"}).status, 401)
        self.assertEqual(request("GET", gate.url + "/v2/other/tool/manifests/v1", headers=ACCEPT,
                                 auth=("alice", "alice-pw")).status, 403)
        self.assertEqual(count("missing"), before["missing"] + 1)
        self.assertEqual(count("bad_password"), before["bad_password"] + 1)
        self.assertEqual(count("bad_token"), before["bad_token"] + 1)
        self.assertEqual(count("malformed"), before["malformed"] + 1)
        self.assertEqual(count("denied"), before["denied"] + 1)
        with open(gate.stdout_path) as f:
            lines = [json.loads(line) for line in f if line.startswith("{")]
        failed = [line for line in lines if line.get("error", "").startswith("authentication failed: bad_password")]
        self.assertEqual(len(failed), 1, failed)
        self.assertIn("alice", failed[0]["error"])
        self.assertNotIn("wrong-pw-73", json.dumps(lines), "a password never reaches the log")
        denied = [line for line in lines if line.get("status") == 403]
        self.assertEqual(len(denied), 1)
        self.assertEqual(denied[0]["user"], "alice")

    def test_auth_reload_on_sighup_applies_users_tokens_and_rules_and_keeps_them_on_error(self):
        htpasswd = os.path.join(self.tmp, "reload-htpasswd")
        shutil.copy(self.htpasswd, htpasswd)
        self.addCleanup(os.unlink, htpasswd)
        gate = self.gate(tls=False, auth=self.auth_section(htpasswd_file=htpasswd))
        bearer = {"Authorization": "Bearer " + TOKEN}

        def status(repo, auth=None, headers=None):
            return request("GET", f"{gate.url}/v2/{repo}/manifests/v1", headers={**ACCEPT, **(headers or {})},
                           auth=auth).status

        def reload(logged):
            count = gate.stderr().count(logged)
            gate.proc.send_signal(signal.SIGHUP)
            harness.wait_until(lambda: gate.stderr().count(logged) > count, 10, logged)

        before = {"carol": status("team/app", ("carol", "carol-pw")), "bob": status("other/tool", ("bob", "bob-pw")),
                  "token": status("other/tool", headers=bearer), "alice": status("other/tool", ("alice", "alice-pw"))}
        self.assertEqual(before, {"carol": 401, "bob": 200, "token": 200, "alice": 403})
        # carol joins (group team), bob leaves (his password was just verified and cached), the token
        # goes, and team may now pull other/* too.
        subprocess.run(["htpasswd", "-B", "-b", "-C", "5", htpasswd, "carol", "carol-pw"], check=True,
                       capture_output=True)
        subprocess.run(["htpasswd", "-D", htpasswd, "bob"], check=True, capture_output=True)
        section = self.auth_section(htpasswd_file=htpasswd, tokens=[],
                                    groups={"team": ["alice", "carol"]})
        section["rules"][0]["repositories"].append("up/other/*")
        gate.config["auth"] = section
        gate._write_config()
        reload("auth reloaded")
        after = {"carol": status("team/app", ("carol", "carol-pw")), "bob": status("other/tool", ("bob", "bob-pw")),
                 "token": status("other/tool", headers=bearer), "alice": status("other/tool", ("alice", "alice-pw"))}
        self.assertEqual(after, {"carol": 200, "bob": 401, "token": 401, "alice": 200})
        # A file ocigate cannot use (an htpasswd entry that is not bcrypt), with rules that would take
        # alice's new grant away: refused whole, the users and rules in force stay.
        with open(htpasswd, "w") as f:
            f.write("dave:$apr1$abcdefgh$0123456789abcdefghijkl\n")
        gate.config["auth"] = self.auth_section(htpasswd_file=htpasswd, tokens=[])
        gate._write_config()
        reload("auth reload refused")
        kept = {"carol": status("team/app", ("carol", "carol-pw")), "bob": status("other/tool", ("bob", "bob-pw")),
                "token": status("other/tool", headers=bearer), "alice": status("other/tool", ("alice", "alice-pw"))}
        self.assertEqual(kept, after)
        self.assertNotIn("0123456789abcdef", gate.stderr(), "a hash never reaches the log")

    def test_a_reload_names_the_settings_that_need_a_restart(self):
        gate = self.gate(tls=False, auth=False)
        warning = "take effect only after a restart"

        def reload():
            # "webhooks reloaded" is the reload's last line: the warning, if any, was written before it.
            count = gate.stderr().count("webhooks reloaded")
            gate.proc.send_signal(signal.SIGHUP)
            harness.wait_until(lambda: gate.stderr().count("webhooks reloaded") > count, 10, "the reload")

        reload()  # the same file: nothing to say
        self.assertNotIn(warning, gate.stderr())
        gate.config["server"]["requests_per_second"] = 1000
        gate.config["upstreams"][0]["tag_ttl"] = "1m"
        gate._write_config()
        reload()
        lines = [json.loads(l) for l in gate.stderr().splitlines() if warning in l]
        self.assertEqual(len(lines), 1, gate.stderr()[-2000:])
        self.assertEqual((lines[0]["level"], lines[0]["settings"]), ("warn", "server.requests_per_second, upstreams"))

    def test_invalid_auth_config_exits_2_with_file_and_line(self):
        bad = os.path.join(self.tmp, "bad-htpasswd")
        with open(bad, "w") as f:
            f.write("carol:$apr1$abcdefgh$0123456789abcdefghijkl\n")
        gate = self.gate(tls=False, auth=self.auth_section(htpasswd_file=bad), start=False)
        result = subprocess.run([gate.bin, "serve", "--config", gate.config_path], capture_output=True, text=True,
                                timeout=30)
        self.assertEqual(result.returncode, 2)
        self.assertIn(bad + ":1:", result.stderr)
        self.assertNotIn("0123456789abcdef", result.stderr)

    # ---- abuse limits ----

    def test_rate_limit_answers_429_with_retry_after(self):
        gate = self.gate(tls=False, auth=False, server={"requests_per_second": "0.2", "burst": 3})
        statuses = [request("GET", gate.url + "/v2/").status for _ in range(3)]
        self.assertEqual(statuses, [200, 200, 200])
        limited = request("GET", gate.url + "/v2/")
        self.assertEqual(limited.status, 429)
        self.assertEqual(limited.json()["errors"][0]["code"], "TOOMANYREQUESTS")
        self.assertGreaterEqual(int(limited.header("Retry-After")), 1)
        self.assertEqual(request("GET", gate.url + "/healthz").status, 200)

    def test_rate_limited_requests_are_counted(self):
        gate = self.gate(tls=False, auth=False, server={"requests_per_second": "2", "burst": 2})
        statuses = [request("GET", gate.url + "/v2/").status for _ in range(4)]
        self.assertEqual(statuses[:2], [200, 200])
        self.assertIn(429, statuses[2:])
        refused = statuses.count(429)
        gate.probe_source = "127.0.0.2"  # another client address: its own bucket for the scrape
        self.assertEqual(gate.metric_sum("ocigate_rate_limited_total", limit="rate"), refused)
        with open(gate.stdout_path) as f:
            limited = [json.loads(line) for line in f if '"status":429' in line]
        self.assertEqual(len(limited), refused, "one access log line per refused request")
        self.assertIn("requests_per_second", limited[0]["error"])

    def test_connections_per_client_are_capped(self):
        gate = self.gate(tls=False, auth=False, server={"max_connections_per_client": 2})
        held = [socket.create_connection(("127.0.0.1", gate.port), timeout=5) for _ in range(2)]
        for s in held:  # an answer on each proves the server accepted and counted it (no sleep race)
            s.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertTrue(s.recv(100).startswith(b"HTTP/1.1 200"))
        extra = socket.create_connection(("127.0.0.1", gate.port), timeout=5)
        extra.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            data = extra.recv(100)
        except ConnectionError:
            data = b""
        self.assertEqual(data, b"", "the third connection is closed without an answer")
        extra.close()
        for s in held:
            s.close()
        harness.wait_until(lambda: request("GET", gate.url + "/v2/").status == 200, 5, "a free slot")
        self.assertEqual(gate.metric_sum("ocigate_rate_limited_total", limit="connections"), 1)
        self.assertEqual(gate.stderr().count("connection refused: too many open connections"), 1)

    # ---- behind a load balancer (server.trusted_proxies) ----

    def test_behind_a_trusted_proxy_limits_and_lines_go_by_the_client_it_names(self):
        gate = self.gate(tls=False, auth=False, server={"requests_per_second": "0.1", "burst": 2,
                                                        "trusted_proxies": ["127.0.0.2"]})

        def get(path, client, source="127.0.0.2"):
            return request("GET", gate.url + path, headers=dict(ACCEPT, **{"X-Forwarded-For": client}),
                           source=source).status

        self.assertEqual([get("/v2/", "203.0.113.7") for _ in range(3)], [200, 200, 429])
        self.assertEqual(get("/v2/team/app/manifests/v1", "1.2.3.4, 203.0.113.8"), 200,
                         "another client behind the same proxy has a bucket of its own; what the client wrote "
                         "before the proxy's entry does not count")
        # A peer that is not a trusted proxy cannot choose its bucket or its name.
        self.assertEqual([get("/v2/", f"203.0.113.{n}", source="127.0.0.3") for n in (20, 21, 22)], [200, 200, 429])

        def logged():
            with open(gate.stdout_path) as f:
                lines = [json.loads(line) for line in f if line.startswith("{")]
            access = [l for l in lines if "route" in l and l.get("log") != "audit" and l["client"] != "127.0.0.1"]
            return lines, access

        # A request's access line is written once its answer is sent, on the thread of its connection: wait
        # for all seven, in whatever order they came.
        harness.wait_until(lambda: len(logged()[1]) >= 7, 10, "seven access lines")
        lines, access = logged()
        self.assertEqual(sorted((l["client"], l.get("via") or "", l["status"]) for l in access),
                         sorted([("203.0.113.7", "127.0.0.2", 200), ("203.0.113.7", "127.0.0.2", 200),
                                 ("203.0.113.7", "127.0.0.2", 429), ("203.0.113.8", "127.0.0.2", 200),
                                 ("127.0.0.3", "", 200), ("127.0.0.3", "", 200), ("127.0.0.3", "", 429)]))
        audits = [l for l in lines if l.get("log") == "audit" and l.get("digest") == self.app.digest]
        self.assertTrue(audits, "the manifest's decision is audited")
        self.assertEqual({a["client"] for a in audits}, {"203.0.113.8"})

    def test_a_trusted_proxy_is_not_capped_per_address_and_others_still_are(self):
        gate = self.gate(tls=False, auth=False, server={"max_connections_per_client": 1,
                                                        "trusted_proxies": ["127.0.0.2"]})

        def connect(source):
            s = socket.create_connection(("127.0.0.1", gate.port), timeout=5, source_address=(source, 0))
            self.addCleanup(s.close)
            s.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                return s.recv(100)
            except ConnectionError:
                return b""

        self.assertTrue(all(connect("127.0.0.2").startswith(b"HTTP/1.1 200") for _ in range(3)))
        self.assertTrue(connect("127.0.0.3").startswith(b"HTTP/1.1 200"))
        self.assertEqual(connect("127.0.0.3"), b"", "a second connection from an untrusted address is closed")


    def test_trusted_proxies_are_reloaded_on_sighup_and_open_connections_are_released_as_counted(self):
        gate = self.gate(tls=False, auth=False, server={"max_connections_per_client": 1,
                                                        "trusted_proxies": ["127.0.0.2"]})

        def reload(trusted):
            count = gate.stderr().count("trusted proxies reloaded")
            gate.config["server"]["trusted_proxies"] = trusted
            gate._write_config()
            gate.proc.send_signal(signal.SIGHUP)
            harness.wait_until(lambda: gate.stderr().count("trusted proxies reloaded") > count, 10, "the reload")

        forwarded = iter(range(1, 255))

        def trusts(source):
            """Whether a request from `source` is taken to come from the client its X-Forwarded-For names."""
            client = f"203.0.113.{next(forwarded)}"

            def clients():
                with open(gate.stdout_path) as f:
                    return [json.loads(l).get("client") for l in f if l.startswith("{") and '"log":"access"' in l]
            before = clients().count(source)
            self.assertEqual(request("GET", gate.url + "/v2/", headers={"X-Forwarded-For": client},
                                     source=source).status, 200)
            harness.wait_until(lambda: client in clients() or clients().count(source) > before, 5, "the access line")
            return client in clients()

        def connect(source):
            s = socket.create_connection(("127.0.0.1", gate.port), timeout=5, source_address=(source, 0))
            self.addCleanup(s.close)
            s.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                return s, s.recv(100).startswith(b"HTTP/1.1 200")
            except ConnectionError:
                return s, False

        def fits(source):
            s, served = connect(source)
            s.close()
            return served

        self.assertEqual((trusts("127.0.0.2"), trusts("127.0.0.3")), (True, False))
        counted, served = connect("127.0.0.3")  # counted against 127.0.0.3, whose one it is
        self.assertTrue(served)
        reload(["127.0.0.3"])
        self.assertEqual((trusts("127.0.0.2"), trusts("127.0.0.3")), (False, True),
                         "the reloaded list is in force: 127.0.0.2 no longer names its clients, 127.0.0.3 does")
        uncounted, served = connect("127.0.0.3")
        self.assertTrue(served, "a trusted proxy is not capped")
        counted.close()  # released as it was counted, though its address is trusted now
        reload([])
        # The closed connection's count is gone: the one connection 127.0.0.3 may have again fits.
        harness.wait_until(lambda: fits("127.0.0.3"), 10, "the counted connection released")
        held, served = connect("127.0.0.3")
        self.assertTrue(served)
        uncounted.close()  # not counted when opened: closing it must not free the slot `held` takes
        time.sleep(0.3)
        self.assertFalse(fits("127.0.0.3"), "one connection for an address that is no longer trusted")
        held.close()


def exchange(port, data, source):
    """harness.raw_exchange from `source`; returns (status, {lower-case header: value}, body)."""
    status, head, body = harness.raw_exchange(port, data, source=source)
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head.split("\r\n")[1:])}
    return status, headers, body


class MalformedRequests(unittest.TestCase):
    """server.malformed_per_minute (429 once an address has sent more malformed requests than that in
    a minute) and server.max_uri_bytes (414) end to end. Each test speaks from a loopback address of
    its own (any 127/8 address is this host), so the budgets do not mix."""
    PER_MINUTE = 3
    MAX_URI = 512
    PROXY = "127.0.0.6"  # a trusted load balancer

    @classmethod
    def setUpClass(cls):
        cls.registry = harness.Registry()
        cls.addClassCleanup(cls.registry.close)
        cls.registry.start()
        cls.image = harness.push_image(cls.registry, "team/app", "v1")
        cls.gate = harness.Ocigate([{"name": "up", "url": cls.registry.url}], default_upstream="up")
        cls.gate.config["server"].update(malformed_per_minute=cls.PER_MINUTE, max_uri_bytes=cls.MAX_URI,
                                         trusted_proxies=[cls.PROXY])
        cls.gate._write_config()
        cls.addClassCleanup(cls.gate.close)
        cls.gate.start()

    def counter(self, name, **labels):
        return self.gate.metric_sum(name, **labels)

    def test_a_target_over_max_uri_bytes_is_414_and_never_sent_upstream(self):
        source = "127.0.0.3"
        before = self.counter("ocigate_malformed_requests_total", reason="uri_too_long")
        at_limit = "/v2/team/app/manifests/v1?pad="
        at_limit += "x" * (self.MAX_URI - len(at_limit))
        r = request("GET", self.gate.url + at_limit, headers=ACCEPT, source=source)
        self.assertEqual((r.status, r.body), (200, self.image.manifest), "a target of exactly max_uri_bytes")
        marker = "long" * 200
        status, headers, body = exchange(self.gate.port, f"GET /v2/team/app/manifests/{marker}"
                                         f" HTTP/1.1\r\nHost: x\r\n\r\n".encode(), source)
        self.assertEqual(status, 414)
        self.assertEqual(json.loads(body), {"errors": [{"code": "NAME_INVALID", "message": "request target too long"}]})
        self.assertEqual(headers.get("connection"), "close")
        at_limit += "y"
        self.assertEqual(request("GET", self.gate.url + at_limit, headers=ACCEPT, source=source).status, 414,
                         "one byte over")
        self.assertEqual(self.counter("ocigate_malformed_requests_total", reason="uri_too_long"), before + 2)
        self.assertEqual(self.registry.requests_containing(marker), 0)

    def test_an_address_over_malformed_per_minute_gets_429_and_others_do_not(self):
        source = "127.0.0.4"
        unparsable = b"BLAH\r\n\r\n"
        before = {"unparsable": self.counter("ocigate_malformed_requests_total", reason="unparsable"),
                  "limited": self.counter("ocigate_rate_limited_total", limit="malformed")}
        bad_name = b"GET /v2/UPPER/manifests/v1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        # Both kinds count: requests that do not parse, and requests answered 400.
        for data, code in ((unparsable, "UNSUPPORTED"), (unparsable, "UNSUPPORTED"), (bad_name, "NAME_INVALID")):
            status, _, body = exchange(self.gate.port, data, source)
            self.assertEqual((status, json.loads(body)["errors"][0]["code"]), (400, code))
        # PER_MINUTE malformed requests are within the budget.
        self.assertEqual(request("GET", self.gate.url + "/v2/", source=source).status, 200)
        self.assertEqual(exchange(self.gate.port, unparsable, source)[0], 400)
        status, headers, body = exchange(self.gate.port, b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n", source)
        self.assertEqual(status, 429)
        self.assertEqual(json.loads(body)["errors"][0]["code"], "TOOMANYREQUESTS")
        self.assertEqual(headers.get("retry-after"), "60")
        self.assertEqual(headers.get("connection"), "close")
        self.assertEqual(request("GET", self.gate.url + "/v2/").status, 200, "another address is not limited")
        self.assertEqual(self.counter("ocigate_malformed_requests_total", reason="unparsable"), before["unparsable"] + 3)
        self.assertEqual(self.counter("ocigate_rate_limited_total", limit="malformed"), before["limited"] + 1)
        with open(self.gate.stdout_path) as f:
            limited = [json.loads(l) for l in f if l.startswith("{") and '"status":429' in l and source in l]
        self.assertEqual([l["error"] for l in limited],
                         ["refused: too many malformed requests (server.malformed_per_minute)"])

    def test_a_balancers_address_is_never_charged_and_probes_are_never_refused(self):
        unparsable = b"BLAH\r\n\r\n"
        before = self.counter("ocigate_malformed_requests_total", reason="unparsable")
        # What does not parse names no client: charged to the balancer, it would refuse everyone behind it,
        # and its own health checks.
        for _ in range(self.PER_MINUTE + 2):
            self.assertEqual(exchange(self.gate.port, unparsable, self.PROXY)[0], 400)
        self.assertEqual(self.counter("ocigate_malformed_requests_total", reason="unparsable"),
                         before + self.PER_MINUTE + 2, "still counted")
        self.assertEqual([request("GET", self.gate.url + path, source=self.PROXY).status for path in ("/readyz", "/v2/")],
                         [200, 200])
        # An address over its budget is refused, but its probes are answered.
        source = "127.0.0.7"
        for _ in range(self.PER_MINUTE + 1):
            self.assertEqual(exchange(self.gate.port, unparsable, source)[0], 400)
        self.assertEqual([request("GET", self.gate.url + path, source=source).status for path in ("/v2/", "/readyz")],
                         [429, 200])


if __name__ == "__main__":
    unittest.main()
