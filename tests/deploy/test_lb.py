"""deploy/lb: the rendered nginx and HAProxy configurations load in Debian's nginx and HAProxy, the repository key
each computes is the one the replicas use (a table of request targets, against stand-in replicas that answer with
their own name), the renderer refuses bad input, and the Kubernetes overlay's haproxy.cfg is what its own first
line's command renders. No ocigate needed: the fleet itself is tests/integration/test_fleet.py."""

import http.client
import http.server
import importlib.machinery
import importlib.util
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
RENDER = os.path.join(ROOT, "deploy", "lb", "render")
K8S_CFG = os.path.join(ROOT, "deploy", "k8s", "overlays", "fleet", "haproxy.cfg")


def load_render():
    loader = importlib.machinery.SourceFileLoader("lb_render", RENDER)
    spec = importlib.util.spec_from_loader("lb_render", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


render = load_render()


def tool(name):
    path = shutil.which(name) or "/usr/sbin/" + name
    if not os.path.exists(path):
        raise RuntimeError(f"{name} is not installed: Debian's {name} package (scripts/setup installs it)")
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The replicas' configuration the keys below assume: three upstreams, docker.io the default with its
# implicit library/, and a registry named after its host:port (as containerd's ?ns= names it).
OCIGATE_CONFIG = {"upstreams": [{"name": "docker.io", "url": "https://registry-1.docker.io"},
                                {"name": "ghcr.io", "url": "https://ghcr.io"},
                                {"name": "127.0.0.1:5001", "url": "http://127.0.0.1:5001"}],
                  "default_upstream": "docker.io"}

# request target -> the repository key (None: names no repository, any replica). The rules are ocigate's
# (src/server/names.cpp resolve_target, src/oci/reference.cpp parse_route).
KEYS = [
    ("/v2/library/alpine/manifests/3.20", "docker.io/library/alpine"),      # Docker's registry-mirrors
    ("/v2/alpine/manifests/3.20", "docker.io/library/alpine"),              # implicit library/
    ("/v2/docker.io/library/alpine/blobs/sha256:" + "a" * 64, "docker.io/library/alpine"),
    ("/v2/docker.io/alpine/manifests/3.20", "docker.io/library/alpine"),
    ("/v2/library/alpine/manifests/3.20?ns=docker.io", "docker.io/library/alpine"),  # containerd
    ("/v2/alpine/tags/list?n=10&ns=docker.io", "docker.io/library/alpine"),
    ("/v2/ghcr.io/acme/app/referrers/sha256:" + "b" * 64, "ghcr.io/acme/app"),
    ("/v2/acme/app/manifests/v1?ns=ghcr.io", "ghcr.io/acme/app"),
    ("/v2/team/app/manifests/v1?ns=127.0.0.1%3A5001", "127.0.0.1:5001/team/app"),
    ("/v2/127.0.0.1:5001/team/app/manifests/v1", "127.0.0.1:5001/team/app"),
    ("/v2/team/app/manifests/v1", "docker.io/team/app"),                    # two components: no library/
    ("/v2/a/blobs/b/manifests/latest", "docker.io/a/blobs/b"),               # the rightmost marker wins
    ("/v2/quay.io/org/app/manifests/v1", "docker.io/quay.io/org/app"),       # not a configured upstream
    ("/v2/", None),
    ("/v2/_catalog", None),
    ("/v2/team/app/blobs/uploads/", None),
    ("/v2/team/app/manifests/", None),
    ("/healthz", None),
]


class QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # the balancer's health checks and stopped workers reset connections: not a failure here


class StandIns:
    """Three HTTP servers that answer any GET with 200 and their own name in X-Replica."""

    def __init__(self, count=3):
        self.servers = []
        for i in range(count):
            name = f"r{i}"

            class Handler(http.server.BaseHTTPRequestHandler):
                protocol_version = "HTTP/1.1"
                replica = name

                def log_message(self, *args):
                    pass

                def do_GET(self):
                    self.send_response(200)
                    self.send_header("X-Replica", self.replica)
                    self.send_header("Content-Length", "0")
                    self.end_headers()

            server = QuietServer(("127.0.0.1", 0), Handler)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self.servers.append(server)

    @property
    def replicas(self):
        return [f"r{i}=127.0.0.1:{s.server_address[1]}" for i, s in enumerate(self.servers)]

    def close(self):
        for s in self.servers:
            s.shutdown()
            s.server_close()


def get(port, target):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", target)
        resp = conn.getresponse()
        resp.read()
        return resp.status, resp.getheader("X-Ocigate-Repository"), resp.getheader("X-Replica")
    finally:
        conn.close()


class Balancer:
    """nginx or HAProxy as the current user in a temp dir, its process group stopped at the end."""

    def __init__(self, kind, replicas, config):
        self.dir = tempfile.mkdtemp(prefix=f"ocigate-lb-{kind}-")
        self.port = free_port()
        user = None
        if kind == "nginx" and os.geteuid() == 0:
            import getpass
            user = getpass.getuser()
        text = render.render(kind, replicas, listen=f"127.0.0.1:{self.port}", ocigate_config=config,
                             state_dir=self.dir, user=user, worker_processes=1)
        path = os.path.join(self.dir, "lb.conf")
        with open(path, "w") as f:
            f.write(text)
        if kind == "nginx":
            cmd = [tool("nginx"), "-p", self.dir, "-c", path]
        else:
            cmd = [tool("haproxy"), "-W", "-db", "-f", path]
        self.log = open(os.path.join(self.dir, "out.log"), "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if get(self.port, "/v2/")[0] == 200:
                    return
            except OSError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.close()
        raise RuntimeError(f"{kind} did not start")

    def close(self):
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class RepositoryKey(unittest.TestCase):
    def check(self, kind):
        standins = StandIns()
        self.addCleanup(standins.close)
        lb = Balancer(kind, standins.replicas, OCIGATE_CONFIG)
        self.addCleanup(lb.close)
        replica_of = {}
        for target, key in KEYS:
            status, got, replica = get(lb.port, target)
            self.assertEqual(status, 200, target)
            self.assertEqual(got, key, target)
            if key:
                replica_of.setdefault(key, set()).add(replica)
        # Every spelling of a repository went to one replica.
        self.assertEqual({k: len(v) for k, v in replica_of.items()}, {k: 1 for k in replica_of})
        # A repository's requests stay on its replica; requests that name none are spread.
        self.assertEqual({get(lb.port, "/v2/team/app/manifests/v1")[2] for _ in range(6)},
                         replica_of["docker.io/team/app"])
        self.assertEqual(len({get(lb.port, "/v2/")[2] for _ in range(6)}), 3)
        status, _, replica = get(lb.port, "/metrics")
        self.assertEqual((status, replica), (404, None), "/metrics is refused, never proxied")

    def test_nginx_routes_by_the_replicas_repository_name(self):
        self.check("nginx")

    def test_haproxy_routes_by_the_replicas_repository_name(self):
        self.check("haproxy")


class Rendering(unittest.TestCase):
    def run_render(self, *args):
        return subprocess.run([sys.executable, RENDER, *args], capture_output=True, text=True, timeout=30)

    def test_every_variant_loads_in_nginx_and_haproxy(self):
        d = tempfile.mkdtemp(prefix="ocigate-lb-check-")
        self.addCleanup(shutil.rmtree, d, True)
        one_upstream = {"upstreams": [{"name": "registry.local:5000", "url": "http://127.0.0.1:5000"}]}
        no_default = {"upstreams": [{"name": "a.example", "url": "https://a.example"},
                                    {"name": "b.example", "url": "https://b.example"}]}
        for config in (None, OCIGATE_CONFIG, one_upstream, no_default):
            for replicas in (["127.0.0.2:5000"], ["127.0.0.2:5000", "127.0.0.3:5000", "127.0.0.4:5000"]):
                for extra in ({}, {"access_log": "off", "error_log": "stderr", "user": "www-data"}):
                    path = os.path.join(d, "nginx.conf")
                    with open(path, "w") as f:
                        f.write(render.render("nginx", replicas, ocigate_config=config, state_dir=d, **extra))
                    out = subprocess.run([tool("nginx"), "-t", "-p", d, "-c", path], capture_output=True,
                                         text=True, timeout=30)
                    self.assertEqual(out.returncode, 0, out.stderr)
                for extra in ({}, {"resolvers": True, "health_listen": ":8404", "hash_balance_factor": 0}):
                    path = os.path.join(d, "haproxy.cfg")
                    with open(path, "w") as f:
                        f.write(render.render("haproxy", replicas, ocigate_config=config, **extra))
                    out = subprocess.run([tool("haproxy"), "-c", "-f", path], capture_output=True, text=True,
                                         timeout=30)
                    self.assertEqual(out.returncode, 0, out.stdout + out.stderr)

    def test_bad_input_is_refused_with_a_reason(self):
        d = tempfile.mkdtemp(prefix="ocigate-lb-bad-")
        self.addCleanup(shutil.rmtree, d, True)
        bad_config = os.path.join(d, "bad.yaml")
        with open(bad_config, "w") as f:
            f.write('{"upstreams": [{"name": "evil\\"; return 200 \\"x", "url": "https://x"}]}')
        bad_default = os.path.join(d, "default.yaml")
        with open(bad_default, "w") as f:
            f.write('{"upstreams": [{"name": "a.example", "url": "https://a"}], "default_upstream": "b.example"}')
        cases = [
            (["nginx"], "at least one --replica"),
            (["nginx", "--replica", "nohost"], "expected [NAME=]HOST:PORT"),
            (["nginx", "--replica", "127.0.0.1:1; include /etc/passwd"], "expected [NAME=]HOST:PORT"),
            (["haproxy", "--replica", "bad name=127.0.0.1:1"], "the name may hold only"),
            (["haproxy", "--replica", "127.0.0.1:1", "--replica", "127.0.0.1:1"], "must be unique"),
            (["haproxy", "--replica", "127.0.0.1:1", "--hash-balance-factor", "50"], "must be 0 (off) or 100"),
            (["haproxy", "--replica", "127.0.0.1:1", "--check-interval", "soon"], "--check-interval"),
            (["nginx", "--replica", "127.0.0.1:1", "--listen", "everywhere"], "--listen"),
            (["nginx", "--replica", "127.0.0.1:1", "--ocigate-config", bad_config], "is not a registry host name"),
            (["nginx", "--replica", "127.0.0.1:1", "--ocigate-config", bad_default], "names no configured upstream"),
            (["nginx", "--replica", "127.0.0.1:1", "--ocigate-config", os.path.join(d, "missing.yaml")],
             "No such file"),
        ]
        for args, message in cases:
            out = self.run_render(*args)
            self.assertEqual(out.returncode, 2, (args, out.stdout[:200]))
            self.assertIn(message, out.stderr, args)
            self.assertEqual(out.stdout, "", "nothing is rendered")


class KubernetesOverlay(unittest.TestCase):
    def test_the_overlays_haproxy_cfg_is_what_its_command_renders(self):
        with open(K8S_CFG) as f:
            text = f.read()
        first = text.split("\n", 1)[0]
        self.assertTrue(first.startswith("# Generated by `deploy/lb/render "), first)
        command = shlex.split(first.split("`")[1])
        self.assertNotIn("-o", command)
        out = subprocess.run([sys.executable, os.path.join(ROOT, command[0]), *command[1:]], capture_output=True,
                             text=True, timeout=30, cwd=ROOT)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout, text, "deploy/k8s/overlays/fleet/haproxy.cfg differs from what its first line "
                                           "renders: run that command again (-o the file) and commit the result")
        check = subprocess.run([tool("haproxy"), "-c", "-f", K8S_CFG], capture_output=True, text=True, timeout=30)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)


if __name__ == "__main__":
    unittest.main()
