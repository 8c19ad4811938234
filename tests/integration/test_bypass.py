"""Enforcement at the client: the recipes of deploy/clients, used by real clients, against an
enforcing ocigate in front of a real upstream (docker-registry) that holds one compliant and one
blocked image.

- skopeo with registries.conf (each registry's location is ocigate) and containerd's ctr with
  certs.d hosts.toml (server is ocigate): the compliant image pulls, the blocked one fails, with
  ocigate's 403 in the client's error output.
- The cache-only recipes (ocigate as a mirror in front of the registry) fall back: the blocked image
  is pulled from the upstream and the client exits 0. That is why they cannot enforce, and these
  tests keep the documentation's warning true.

Every client runs with HTTP(S)_PROXY pointing at a tripwire on 127.0.0.1 (Go clients never proxy
loopback addresses): a recipe that tried to reach a real registry would land there, never leave
the machine, and fail the test."""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import harness

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CLIENTS = os.path.join(REPO_ROOT, "deploy", "clients")
PLACEHOLDER = "mirror.example.com:5000"
CLIENT_TIMEOUT = 60  # seconds for one pull; a pull here takes well under one

ALL_OFF = {c: "off" for c in ("non-root-user", "healthcheck", "no-secrets", "copy-not-add", "no-update-alone",
                              "pinned-base", "pinned-reference", "trusted-source", "image-age", "signature",
                              "no-setuid", "no-package-manager", "vulnerabilities")}


def setUpModule():
    if not os.environ.get("OCIGATE_BIN"):
        raise unittest.SkipTest("OCIGATE_BIN is not set (run through ctest)")


def recipe(relative_path, replacements):
    """The text of a file in deploy/clients with its placeholder (and whatever else the test must
    point at this machine) replaced; fails if a replacement finds nothing, so a changed recipe cannot
    silently stop being the thing tested."""
    with open(os.path.join(CLIENTS, relative_path)) as f:
        text = f.read()
    for old, new in replacements:
        if old not in text:
            raise AssertionError(f"{relative_path}: expected text {old!r} is not there any more")
        text = text.replace(old, new)
    return text


class Tripwire:
    """A TCP listener on 127.0.0.1 that counts connections and closes them at once: the proxy every
    client here is given, so that an attempt to reach a registry off this machine is seen, and fails."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections = 0
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            self.connections += 1
            conn.close()

    def env(self):
        env = dict(os.environ)
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
            env[name] = self.url
        for name in ("NO_PROXY", "no_proxy"):
            env.pop(name, None)
        return env

    def close(self):
        self.stopping = True
        self.thread.join(2)
        self.sock.close()


class Containerd:
    """Debian's containerd on a private root, state and socket under a temp dir, CRI plugin off:
    a real client (ctr pulls in its own process, with the daemon holding content and snapshots)."""

    def __init__(self, env):
        self.env = env
        self.dir = harness._make_dir("ocigate-containerd-")
        self.socket = os.path.join(self.dir, "containerd.sock")
        self.log_path = os.path.join(self.dir, "containerd.log")
        self.config_path = os.path.join(self.dir, "config.toml")
        with open(self.config_path, "w") as f:
            f.write(f'version = 2\nroot = "{self.dir}/root"\nstate = "{self.dir}/state"\n'
                    f'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
                    f'[grpc]\n  address = "{self.socket}"\n'
                    f'[ttrpc]\n  address = "{self.socket}.ttrpc"\n')
        self.proc = None

    def start(self):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(["containerd", "--config", self.config_path], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
        harness._live_procs.add(self.proc)  # killed at exit if a test dies before close()
        try:
            harness.wait_until(lambda: self.proc.poll() is None and self.ctr("version").returncode == 0,
                               harness.START_TIMEOUT, "containerd on " + self.socket)
        except TimeoutError:
            raise RuntimeError("containerd did not start:\n" + harness.process_log_tail(self.log_path))
        return self

    def ctr(self, *args, namespace="default", timeout=CLIENT_TIMEOUT):
        return subprocess.run(["ctr", "--address", self.socket, "--namespace", namespace, *args],
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                              env=self.env)

    def version(self):
        out = self.ctr("version").stdout
        server = out.split("Server:", 1)[-1]
        for line in server.splitlines():
            if line.strip().startswith("Version:"):
                return line.split(":", 1)[1].strip()
        return ""

    def close(self):
        if self.proc:
            harness._terminate(self.proc)
        harness._remove_dir(self.dir)


def containerd_unavailable():
    """Why containerd cannot run here, or None."""
    for tool in ("containerd", "ctr"):
        if not shutil.which(tool):
            return f"{tool} is not installed (Debian package containerd; scripts/setup installs it)"
    if os.geteuid() != 0:
        return "containerd needs root for its own root and state directories (snapshot mounts, fifos)"
    return None


class BypassFixture(unittest.TestCase):
    """One upstream with team/good (compliant) and team/bad (runs as root), one enforcing ocigate
    that blocks non-root-user and knows the upstream as docker.io (registries.conf's path prefix)
    and by its host:port (what containerd sends as ?ns=)."""

    @classmethod
    def setUpClass(cls):
        cls.tripwire = Tripwire()
        cls.registry = harness.Registry().start()
        cls.good = harness.push_image(cls.registry, "team/good", "v1",
                                      config_overrides={"config": {"User": "1000:1000"}})
        cls.bad = harness.push_image(cls.registry, "team/bad", "v1", layers=[{"bad.txt": b"runs as root\n"}],
                                     config_overrides={"config": {"User": "root"}})
        upstreams = [{"name": "docker.io", "url": cls.registry.url},
                     {"name": cls.registry.host, "url": cls.registry.url}]
        policy = {"mode": "enforce", "checks": dict(ALL_OFF, **{"non-root-user": "block"})}
        cls.gate = harness.Ocigate(upstreams, default_upstream="docker.io",
                                   extra={"policy": policy, "log": {"access_log": "-", "audit_log": "-",
                                                                    "level": "debug"}})
        cls.gate.start()
        cls.work = harness._make_dir("ocigate-bypass-")

    @classmethod
    def tearDownClass(cls):
        cls.gate.close()
        cls.registry.close()
        cls.tripwire.close()
        harness._remove_dir(cls.work)

    def tearDown(self):
        self.assertEqual(self.tripwire.connections, 0,
                         "a client tried to reach a registry off this machine (through the tripwire proxy)")

    def path(self, name):
        return os.path.join(tempfile.mkdtemp(dir=self.work), name)

    def access_log(self):
        """ocigate's access log lines so far, parsed."""
        lines = []
        with open(self.gate.stdout_path, errors="replace") as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if entry.get("log") == "access":
                    lines.append(entry)
        return lines

    def manifest_answers(self, name, upstream, status):
        """How many manifest requests for `name` (as routed to `upstream`) ocigate answered with `status`."""
        return sum(1 for e in self.access_log() if e["route"] == "manifest" and e["name"] == name and
                   e["upstream"] == upstream and e["status"] == status)

    def verdict_reasons(self, digest):
        r = harness.request("GET", f"{self.gate.url}/ocigate/v1/verdicts/{digest}")
        self.assertEqual(r.status, 200, r.body)
        return r.json()


class Skopeo(BypassFixture):
    def conf(self, name, replacements):
        path = self.path(name)
        with open(path, "w") as f:
            f.write(recipe(name, replacements))
        return path

    def copy(self, conf, ref):
        dest = tempfile.mkdtemp(dir=self.work)
        # --registries-conf is how skopeo 1.9 takes the file (it ignores CONTAINERS_REGISTRIES_CONF).
        result = subprocess.run(["skopeo", "--registries-conf", conf, "--insecure-policy", "copy",
                                 "docker://" + ref, "dir:" + dest], capture_output=True, text=True,
                                timeout=CLIENT_TIMEOUT, stdin=subprocess.DEVNULL, env=self.tripwire.env())
        return result, dest

    def enforcing_conf(self):
        # Plain HTTP here: the one switch the file's comment tells plain-HTTP users to flip.
        return self.conf("registries.conf", [(PLACEHOLDER, self.gate.host), ("insecure = false", "insecure = true")])

    def test_registries_conf_pulls_the_compliant_image_through_ocigate(self):
        result, dest = self.copy(self.enforcing_conf(), "docker.io/team/good:v1")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(harness.sha256(harness.dir_manifest(dest)), self.good.digest)
        self.assertEqual(sorted(harness.verify_dir_copy(dest)), sorted(self.good.blobs))
        # Through ocigate's explicit prefix: /v2/docker.io/team/good/manifests/v1.
        self.assertGreater(self.manifest_answers("docker.io/team/good", "docker.io", 200), 0)

    def test_registries_conf_fails_the_blocked_image_with_ocigates_reasons(self):
        before = self.manifest_answers("docker.io/team/bad", "docker.io", 403)
        result, dest = self.copy(self.enforcing_conf(), "docker.io/team/bad:v1")
        self.assertNotEqual(result.returncode, 0, "the blocked image was pulled:\n" + result.stderr)
        self.assertIn("denied", result.stderr)
        self.assertIn("blocked by policy: non-root-user", result.stderr)
        self.assertIn(self.bad.digest, result.stderr)
        self.assertFalse(os.path.exists(os.path.join(dest, "manifest.json")))
        self.assertGreater(self.manifest_answers("docker.io/team/bad", "docker.io", 403), before)

    def test_cache_only_conf_falls_back_to_the_upstream_and_pulls_the_blocked_image(self):
        # The registry itself is the local upstream here; the mirror is ocigate, as in the file.
        conf = self.conf("registries-cache-only.conf",
                         [(PLACEHOLDER, self.gate.host), ('location = "docker.io"', f'location = "{self.registry.host}"'),
                          ("insecure = false", "insecure = true")])
        before = self.manifest_answers("docker.io/team/bad", "docker.io", 403)
        result, dest = self.copy(conf, "docker.io/team/bad:v1")
        self.assertEqual(result.returncode, 0, "expected the documented fall-back:\n" + result.stderr)
        self.assertEqual(harness.sha256(harness.dir_manifest(dest)), self.bad.digest)
        # ocigate was asked first and said no; the client went past it.
        self.assertGreater(self.manifest_answers("docker.io/team/bad", "docker.io", 403), before)


class Ctr(BypassFixture):
    @classmethod
    def setUpClass(cls):
        reason = containerd_unavailable()
        if reason:
            raise unittest.SkipTest("containerd cannot run here: " + reason)
        super().setUpClass()
        cls.containerd = Containerd(cls.tripwire.env())
        try:
            cls.containerd.start()
        except RuntimeError as e:
            cls.containerd.close()
            super().tearDownClass()
            raise unittest.SkipTest(f"containerd cannot run here: {e}")
        cls.namespaces = 0

    @classmethod
    def tearDownClass(cls):
        cls.containerd.close()
        super().tearDownClass()

    def hosts_dir(self, files):
        """A --hosts-dir with {registry host directory: hosts.toml text}."""
        root = tempfile.mkdtemp(dir=self.work)
        for host, text in files.items():
            os.makedirs(os.path.join(root, host))
            with open(os.path.join(root, host, "hosts.toml"), "w") as f:
                f.write(text)
        return root

    def enforcing(self, name):
        # The recipe assumes HTTPS; the mirror here is plain HTTP, as its comment allows.
        return recipe(f"containerd/certs.d/{name}/hosts.toml", [(f"https://{PLACEHOLDER}", f"http://{self.gate.host}")])

    def pull(self, hosts_dir, image):
        # A namespace per pull, so that no pull is answered from an earlier one's image record.
        type(self).namespaces += 1
        ref = f"{self.registry.host}/{image}"
        return self.containerd.ctr("image", "pull", "--hosts-dir", hosts_dir, "--snapshotter", "native", ref,
                                   namespace=f"bypass{self.namespaces}")

    def test_hosts_toml_pulls_the_compliant_image_through_ocigate(self):
        hosts = self.hosts_dir({self.registry.host: self.enforcing("docker.io")})
        result = self.pull(hosts, "team/good:v1")
        self.assertEqual(result.returncode, 0, result.stderr)
        # Through ocigate's ns routing: /v2/team/good/manifests/v1?ns=<registry host>.
        self.assertGreater(self.manifest_answers("team/good", self.registry.host, 200), 0)

    def test_hosts_toml_fails_the_blocked_image_with_a_403(self):
        hosts = self.hosts_dir({self.registry.host: self.enforcing("docker.io")})
        before = self.manifest_answers("team/bad", self.registry.host, 403)
        result = self.pull(hosts, "team/bad:v1")
        self.assertNotEqual(result.returncode, 0, "the blocked image was pulled:\n" + result.stderr)
        # containerd resolves with HEAD, which has no body: the client sees the status only, and the
        # reasons are in ocigate's verdict (and audit log).
        self.assertIn("403 Forbidden", result.stderr)
        self.assertGreater(self.manifest_answers("team/bad", self.registry.host, 403), before)
        verdict = self.verdict_reasons(self.bad.digest)
        self.assertEqual(verdict["verdict"], "block")
        self.assertIn("non-root-user", [v["check"] for v in verdict["violations"]])

    def test_default_hosts_toml_fails_the_blocked_image_of_any_registry(self):
        hosts = self.hosts_dir({"_default": self.enforcing("_default")})
        result = self.pull(hosts, "team/bad:v1")
        self.assertNotEqual(result.returncode, 0, "the blocked image was pulled:\n" + result.stderr)
        self.assertIn("403 Forbidden", result.stderr)
        self.assertEqual(self.pull(hosts, "team/good:v1").returncode, 0)

    def test_cache_only_hosts_toml_falls_back_to_the_upstream_and_pulls_the_blocked_image(self):
        text = recipe("containerd/cache-only/docker.io/hosts.toml",
                      [(f"https://{PLACEHOLDER}", f"http://{self.gate.host}"),
                       ('server = "https://registry-1.docker.io"', f'server = "{self.registry.url}"')])
        before = self.manifest_answers("team/bad", self.registry.host, 403)
        result = self.pull(self.hosts_dir({self.registry.host: text}), "team/bad:v1")
        self.assertEqual(result.returncode, 0, "expected the documented fall-back:\n" + result.stderr)
        self.assertGreater(self.manifest_answers("team/bad", self.registry.host, 403), before)

    def test_hosts_toml_with_only_a_server_line_is_ignored_and_fails_open(self):
        # Why the recipe carries a [host] table: containerd issue #10027 (1.6 and 1.7).
        version = self.containerd.version()
        if not version.startswith(("1.6", "1.7")):
            self.skipTest(f"containerd {version}: issue #10027 concerns 1.6 and 1.7")
        before = self.manifest_answers("team/bad", self.registry.host, 403)
        result = self.pull(self.hosts_dir({self.registry.host: f'server = "http://{self.gate.host}"\n'}),
                           "team/bad:v1")
        self.assertEqual(result.returncode, 0, "containerd honoured a server-only hosts.toml:\n" + result.stderr)
        self.assertEqual(self.manifest_answers("team/bad", self.registry.host, 403), before,
                         "ocigate was asked, so the file was not ignored")


if __name__ == "__main__":
    unittest.main()
