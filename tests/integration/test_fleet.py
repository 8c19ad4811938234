"""A fleet: three ocigate replicas behind nginx, and the same behind HAProxy (issue #26, "The fleet"), with
the load balancer's configuration rendered from the shipped templates (deploy/lb/render), in front of a
real docker-registry upstream. Clients are Python HTTP clients (several bind their own 127.0.x.y source
address, as separate nodes would) and skopeo.

Which replica served a request is read from the replicas' own access logs (one file each). Where the
binary knows `server.instance`, each replica is named and its X-Ocigate-Instance header must name the
replica the logs say served the request.

Proven for both load balancers: concurrent cold pulls of one image cost one upstream GET per blob per
replica that serves it (nginx: exactly one replica, so exactly one GET); a blocked image is blocked whoever
asks and however the repository is spelled, and its blobs are reachable by digest through no replica; 20
repositories spread over all three replicas, every request of a repository (and every spelling of its name)
on one; probes, the ping and verdict lookups reach any replica and /metrics is refused; killing a replica
leaves the streams on the others running, its repositories move (cold) to the others, nobody else's moves.
HAProxy only: with hash-balance-factor, 32 clients of one hot repository are served by several replicas and
every pull still succeeds under `blob_access: referenced` (nginx has no bounded load: a hot repository stays
on its one replica). Also `deploy/lb/run-local` end to end."""

import atexit
import getpass
import hashlib
import http.client
import http.server
import importlib.machinery
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.parse

import harness

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
LB_DIR = os.path.join(ROOT, "deploy", "lb")
ACCEPT = {"Accept": harness.ALL_MANIFESTS}
ALL_OFF = {c: "off" for c in ("non-root-user", "healthcheck", "no-secrets", "copy-not-add", "no-update-alone",
                              "pinned-base", "pinned-reference", "trusted-source", "image-age", "signature",
                              "no-setuid", "no-package-manager", "vulnerabilities")}
REPLICAS = 3
HUB = "docker.io"   # the registry's upstream name: Docker Hub's implicit library/ then applies, as in production
SLOW = "slow"       # the same registry behind a pass-through that sends blob bodies slowly
WAIT = 15           # seconds any wait for a log line or a load balancer may take
# HAProxy's request log (option httplog): client address, backend/server, ..., "METHOD path HTTP/1.1".
HAPROXY_LOG = re.compile(r'^([0-9.]+):\d+ \[[^]]+\] \S+ ocigate_\w+/r(\d+) .* "[A-Z]+ (\S+) HTTP/1\.[01]"$')


def load_render():
    loader = importlib.machinery.SourceFileLoader("lb_render", os.path.join(LB_DIR, "render"))
    spec = importlib.util.spec_from_loader("lb_render", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


render = load_render()


def setUpModule():
    if not os.environ.get("OCIGATE_BIN"):
        raise unittest.SkipTest("OCIGATE_BIN is not set (run through ctest)")
    for tool in ("nginx", "haproxy"):
        if not shutil.which(tool) and not os.path.exists("/usr/sbin/" + tool):
            raise RuntimeError(f"{tool} is not installed: Debian's {tool} package (scripts/setup installs it)")


def sbin(tool):
    return shutil.which(tool) or "/usr/sbin/" + tool


def instance_supported():
    """Whether this ocigate knows server.instance (X-Ocigate-Instance): its configuration check says so."""
    d = tempfile.mkdtemp(prefix="ocigate-fleet-probe-")
    try:
        path = os.path.join(d, "probe.yaml")
        with open(path, "w") as f:
            json.dump({"server": {"listen": "127.0.0.1:1", "instance": "probe"},
                       "storage": {"path": os.path.join(d, "cache")},
                       "upstreams": [{"name": "x", "url": "http://127.0.0.1:1"}]}, f)
        out = subprocess.run([os.environ["OCIGATE_BIN"], "cache", "verify", "--config", path], capture_output=True,
                             text=True, timeout=60, stdin=subprocess.DEVNULL)
        return out.returncode == 0
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---- load balancers: run as the current user, everything in a temp dir, the whole process group stopped ----

_groups = set()


@atexit.register
def _kill_groups():
    for pgid in list(_groups):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            pass


class LoadBalancer:
    """nginx or HAProxy on 127.0.0.1:<free port>, configured by deploy/lb/render for the given replicas."""

    def __init__(self, kind, replicas, ocigate_config):
        self.kind, self.replicas, self.ocigate_config = kind, replicas, ocigate_config
        self.dir = harness._make_dir(f"ocigate-{kind}-")
        self.log_path = os.path.join(self.dir, "lb.log")
        self.proc = None
        self.port = None

    def config_text(self):
        replicas = [f"r{i}=127.0.0.1:{port}" for i, port in enumerate(self.replicas)]
        listen = f"127.0.0.1:{self.port}"
        if self.kind == "nginx":
            # As root the workers would switch to nobody, who cannot enter this 0700 directory.
            user = getpass.getuser() if os.geteuid() == 0 else None
            return render.render("nginx", replicas, listen=listen, ocigate_config=self.ocigate_config,
                                 state_dir=self.dir, user=user, worker_processes=1)
        return render.render("haproxy", replicas, listen=listen, ocigate_config=self.ocigate_config,
                             check_interval="2s")

    def command(self, path):
        if self.kind == "nginx":
            return [sbin("nginx"), "-p", self.dir, "-c", path]
        return [sbin("haproxy"), "-W", "-db", "-f", path]

    def start(self):
        path = os.path.join(self.dir, "nginx.conf" if self.kind == "nginx" else "haproxy.cfg")
        for _ in range(3):
            self.port = harness.free_port()
            with open(path, "w") as f:
                f.write(self.config_text())
            self.proc = harness._spawn(self.command(path), self.log_path)
            _groups.add(self.proc.pid)
            try:
                harness.wait_until(lambda: self.proc.poll() is None and
                                   harness.request("GET", self.url + "/v2/", timeout=2).status == 200,
                                   WAIT, f"{self.kind} on {self.url}")
                return self
            except TimeoutError:
                self.stop()
                log = self.log()
                if "in use" not in log:
                    raise RuntimeError(f"{self.kind} did not start:\n{log[-3000:]}")
        raise RuntimeError(f"{self.kind}: no free port after 3 attempts")

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def reload(self, replicas):
        """The same listener with another replica list: nginx re-reads its configuration on SIGHUP, HAProxy's
        master (-W) on SIGUSR2; both start new workers and let the old ones finish what they serve."""
        self.replicas = replicas
        path = os.path.join(self.dir, "nginx.conf" if self.kind == "nginx" else "haproxy.cfg")
        with open(path, "w") as f:
            f.write(self.config_text())
        old = self.workers()
        self.proc.send_signal(signal.SIGHUP if self.kind == "nginx" else signal.SIGUSR2)
        # Until the old workers are gone both generations accept connections: a pull could be split
        # between the old and the new owner of its repository (docs/fleet.md, "Changing the replicas").
        harness.wait_until(lambda: self.workers() and not self.workers() & old, WAIT, f"{self.kind}'s old workers")

    def workers(self):
        """The pids of the master's children (nginx and HAProxy -W run one worker each here)."""
        found = set()
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                except (OSError, ValueError, IndexError):
                    continue
                if ppid == self.proc.pid:
                    found.add(int(entry))
        return found

    def routed(self, path_prefix, count):
        """[(client address, replica index, path)] of the requests whose path starts with path_prefix, from the
        load balancer's own log (HAProxy: its request log on stderr; nginx: the access log), once `count`."""
        def parse():
            out = []
            if self.kind == "haproxy":
                for line in harness._log_since(self.log_path, 0).splitlines():
                    m = HAPROXY_LOG.match(line)
                    if m and m.group(3).startswith(path_prefix):
                        out.append((m.group(1), int(m.group(2)), m.group(3)))
            else:
                ports = {str(p): i for i, p in enumerate(self.replicas)}
                for line in harness._log_since(os.path.join(self.dir, "access.log"), 0).splitlines():
                    entry = json.loads(line)
                    path = entry["request"].split()[1]
                    if path.startswith(path_prefix) and entry["replica"]:
                        out.append((entry["client"], ports[entry["replica"].rsplit(":", 1)[1]], path))
            return out
        harness.wait_until(lambda: len(parse()) >= count, WAIT, f"{count} requests in the {self.kind} log")
        return parse()

    def log(self):
        text = harness.process_log_tail(self.log_path, 200)
        error_log = os.path.join(self.dir, "error.log")
        return text + ("\n" + harness.process_log_tail(error_log, 200) if os.path.exists(error_log) else "")

    def stop(self):
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(harness.STOP_GRACE)
        except (OSError, subprocess.TimeoutExpired):
            pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # workers too, should the master have gone first
        except OSError:
            pass
        harness._kill(self.proc)
        _groups.discard(self.proc.pid)
        self.proc = None

    def close(self):
        self.stop()
        harness._remove_dir(self.dir)


class SlowBlobs:
    """A pass-through to the registry that sends blob bodies at `rate` bytes per second (everything else at
    full speed): a cold blob behind it stays in flight long enough to kill a replica meanwhile."""

    def __init__(self, upstream_url, rate):
        target = urllib.parse.urlsplit(upstream_url)
        slow = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def forward(self):
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() in ("accept", "range")}
                    conn.request(self.command, self.path, headers=headers)
                    resp = conn.getresponse()
                    self.send_response(resp.status)
                    for k, v in resp.getheaders():
                        if k.lower() in ("content-type", "content-length", "docker-content-digest", "content-range"):
                            self.send_header(k, v)
                    self.end_headers()
                    if self.command == "HEAD":
                        return
                    paced = "/blobs/" in self.path
                    while True:
                        piece = resp.read(16384)
                        if not piece:
                            break
                        self.wfile.write(piece)
                        if paced:
                            time.sleep(len(piece) / slow.rate)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    conn.close()

            do_GET = do_HEAD = forward

        self.rate = rate
        self.server = harness.QuietHTTPServer(Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()



# ---- clients ----

class Answer:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def header(self, name):
        return self.headers.get(name)


class Client:
    """A registry client: one keep-alive connection (as docker and containerd keep theirs), from its own
    127.x.y.z source address when given (another node), reopened when the server closed it while idle.
    Sequential requests on one connection never overlap at the load balancer, which HAProxy's bounded load
    counts (a request still in flight on a replica can send the next one elsewhere)."""

    def __init__(self, port, source=None, timeout=60):
        self.port, self.source, self.timeout = port, source, timeout
        self.conn = None

    def call(self, path, method="GET", headers=None):
        for attempt in (0, 1):
            reused = self.conn is not None
            if not reused:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout,
                                                       source_address=(self.source, 0) if self.source else None)
            try:
                self.conn.request(method, path, headers=dict(headers or {}))
                resp = self.conn.getresponse()
                answer = Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
                if resp.will_close:
                    self.close()
                return answer
            except (http.client.RemoteDisconnected, http.client.CannotSendRequest, BrokenPipeError,
                    ConnectionResetError):
                self.close()
                if attempt or not reused:  # only a kept-alive connection the server closed is tried again
                    raise
        raise AssertionError("unreachable")

    def pull(self, name, tag, query=""):
        return Pull(self, name, tag, query)

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def call(port, path, method="GET", source=None, headers=None):
    """One request on a new connection."""
    client = Client(port, source)
    try:
        return client.call(path, method, headers)
    finally:
        client.close()


def pull(port, name, tag, source=None, query=""):
    """One client's pull on its own connection."""
    client = Client(port, source)
    try:
        return client.pull(name, tag, query)
    finally:
        client.close()


class Pull:
    """A pull: the manifest by tag, then every blob it names, each checked against its digest. `name` is the
    repository as the client spells it, `query` e.g. ?ns=..."""

    def __init__(self, client, name, tag, query=""):
        self.statuses = {}
        manifest = client.call(f"/v2/{name}/manifests/{tag}{query}", headers=ACCEPT)
        self.manifest = manifest
        self.statuses["manifest"] = manifest.status
        if manifest.status != 200:
            return
        parsed = json.loads(manifest.body)
        for desc in [parsed["config"], *parsed["layers"]]:
            blob = client.call(f"/v2/{name}/blobs/{desc['digest']}{query}")
            ok = blob.status == 200 and harness.sha256(blob.body) == desc["digest"]
            self.statuses[desc["digest"]] = blob.status if blob.status != 200 or ok else "digest mismatch"

    @property
    def ok(self):
        return all(s == 200 for s in self.statuses.values())


def requests_of(pulls):
    """How many requests the pulls made: the manifest and each blob they asked for."""
    return sum(len(p.statuses) for p in pulls)


def client_address(group, i):
    """A distinct loopback source address per client (Linux routes all of 127/8 to lo)."""
    return f"127.0.{group}.{i + 1}"


def in_parallel(fn, count):
    """fn(i) for i in range(count) on threads started together; returns the results in order."""
    results = [None] * count
    barrier = threading.Barrier(count)

    def run(i):
        try:
            barrier.wait(WAIT)
            results[i] = fn(i)
        except Exception as e:  # noqa: BLE001 - reported as the result
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


# ---- the fleet ----

class Fleet:
    """REPLICAS ocigate replicas (one config and cache each) and a load balancer in front of them."""

    def __init__(self, kind, registry, slow_url, named):
        upstreams = [{"name": HUB, "url": registry.url, "tag_ttl": "1h"},
                     {"name": SLOW, "url": slow_url, "tag_ttl": "1h"}]
        policy = {"mode": "enforce", "checks": dict(ALL_OFF, **{"non-root-user": "block"}), "layer_scan": "off",
                  "blob_access": "referenced"}
        self.named, self.upstreams, self.policy = named, upstreams, policy
        self.replicas = [self.new_replica(i) for i in range(REPLICAS)]
        self.lb = None
        self.kind = kind

    def new_replica(self, i):
        gate = harness.Ocigate(self.upstreams, default_upstream=HUB, extra={"policy": self.policy})
        # The balancer connects from 127.0.0.1 and names each client in X-Forwarded-For. The clients without a
        # source address of their own are on 127.0.0.1 too, so the per-address limits would still count them as
        # one: one client's malformed requests must not lock the others out (as in deploy/lb/run-local).
        gate.config["server"].update({"threads": 1, "malformed_per_minute": 1000000, "trusted_proxies": ["127.0.0.1"]})
        if self.named:
            gate.config["server"]["instance"] = f"fleet-{i}"
        gate._write_config()
        return gate

    def resize(self, replicas):
        """Reloads the load balancer with these replicas, and waits until it sends requests to the last one
        (the ping goes round robin) and to no replica left out."""
        self.replicas = replicas
        self.lb.reload([g.port for g in replicas])
        last = len(replicas) - 1

        def settled():
            mark = self.mark()
            for _ in range(2 * len(replicas)):
                if call(self.port, "/v2/").status != 200:
                    return False
            # A ping a replica no longer listed answered is not found here (poll_lines gives up after 2 s).
            pings = self.poll_lines(mark, lambda l: l.get("route") == "base", 2 * len(replicas), 2)
            return last in {i for i, _ in pings} and len(pings) == 2 * len(replicas)
        harness.wait_until(settled, WAIT, f"{self.kind} reloaded with {len(replicas)} replicas")

    def start(self):
        for gate in self.replicas:
            gate.start()
        self.lb = LoadBalancer(self.kind, [g.port for g in self.replicas], self.replicas[0].config).start()
        return self

    @property
    def port(self):
        return self.lb.port

    def close(self):
        if self.lb:
            self.lb.close()
        for gate in self.replicas:
            gate.close()

    # Which replica served what: the replicas' access logs, read from a mark on.

    def mark(self):
        return [harness._log_size(g.stdout_path) for g in self.replicas]

    def lines_since(self, mark):
        out = []
        for i, (gate, offset) in enumerate(zip(self.replicas, mark)):
            for raw in harness._log_since(gate.stdout_path, offset).splitlines():
                try:
                    line = json.loads(raw)
                except ValueError:
                    continue
                if line.get("log") == "access":
                    out.append((i, line))
        return out

    def wait_lines(self, mark, predicate, count, timeout=WAIT):
        """The (replica, line) pairs since mark that match, once there are `count` of them: a replica writes
        its line just after the client has the last byte."""
        found = self.poll_lines(mark, predicate, count, timeout)
        if len(found) < count:
            raise AssertionError(f"expected {count} access log lines, found {len(found)}: {found}")
        return found

    def poll_lines(self, mark, predicate, count, timeout):
        found = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [(i, line) for i, line in self.lines_since(mark) if predicate(line)]
            if len(found) >= count:
                break
            time.sleep(0.05)
        return found

    def served_by(self, mark, names, count):
        """{name: set of replicas} for `count` requests of repositories named (as requested) in names."""
        lines = self.wait_lines(mark, lambda line: line.get("name") in names and line.get("route") != "health", count)
        out = {}
        for i, line in lines:
            out.setdefault(line["name"], set()).add(i)
        return out


class FleetTests:
    """The behaviour every load balancer must give; subclasses name the load balancer."""

    LB = None

    @classmethod
    def setUpClass(cls):
        cls.registry = harness.Registry()
        cls.addClassCleanup(cls.registry.close)
        r = cls.registry.start()
        cls.slow = SlowBlobs(r.url, rate=160 * 1024)  # a 1 MiB layer takes 6.4 s
        cls.addClassCleanup(cls.slow.close)
        cls.app = harness.push_image(r, "fleet/app", "v1",
                                     layers=[{"a": os.urandom(200_000)}, {"b": os.urandom(50_000)}])
        cls.blocked = harness.push_image(r, "fleet/blocked", "v1", layers=[{"root": os.urandom(30_000)}],
                                         config_overrides={"config": {"User": "root"}})
        cls.library = harness.push_image(r, "library/tool", "v1")
        cls.spread = {f"fleet/r{i:02d}": harness.push_image(r, f"fleet/r{i:02d}", "v1") for i in range(20)}
        cls.kill_repos = {f"fleet/k{i:02d}": harness.push_image(r, f"fleet/k{i:02d}", "v1") for i in range(12)}
        cls.stream_repos = {f"fleet/s{i:02d}": harness.push_image(r, f"fleet/s{i:02d}", "v1",
                                                                  layers=[{"s": os.urandom(1 << 20)}])
                            for i in range(8)}
        cls.hot = harness.push_image(r, "fleet/hot", "v1", layers=[{"h": os.urandom(2 << 20)}])
        cls.hot2 = harness.push_image(r, "fleet/hot2", "v1", layers=[{"h": os.urandom(2 << 20)}])
        cls.named = instance_supported()
        cls.fleet = Fleet(cls.LB, r, cls.slow.url, cls.named)
        cls.addClassCleanup(cls.fleet.close)
        cls.fleet.start()

    def setUp(self):
        self.client = Client(self.fleet.port)  # the tests' own client: 127.0.0.1, one connection
        self.addCleanup(self.client.close)

    def assert_instance(self, answer, replica):
        """With server.instance, X-Ocigate-Instance names the replica the access log says served it."""
        if self.named:
            self.assertEqual(answer.header("x-ocigate-instance"), f"fleet-{replica}")

    def owner(self, name, tag="v1", query=""):
        """Pulls name:tag through the load balancer; the one replica that served it all."""
        mark = self.fleet.mark()
        p = self.client.pull(name, tag, query)
        if not p.ok:
            seen = self.fleet.poll_lines(mark, lambda l: l.get("name") == name, len(p.statuses), 2)
            self.fail(f"{name}: {p.statuses}; served by {[(i, l['route'], l['status']) for i, l in seen]}")
        served = self.fleet.served_by(mark, {name}, len(p.statuses))[name]
        self.assertEqual(len(served), 1, f"{name}: one pull's requests went to replicas {served}")
        replica = served.pop()
        self.assert_instance(p.manifest, replica)
        return replica

    # (1)
    def test_1_concurrent_cold_pulls_cost_one_upstream_get_per_blob_per_serving_replica(self):
        clients = 16
        mark = self.fleet.mark()
        pulls = in_parallel(lambda i: pull(self.fleet.port, "fleet/app", "v1", source=client_address(1, i)), clients)
        for p in pulls:
            self.assertIsInstance(p, Pull, p)
            self.assertTrue(p.ok, p.statuses)
        # Every request's line: a count short of that returns before a late line is written, and a replica
        # whose blob line is missing would look like a second upstream GET with no replica to account for it.
        lines = self.fleet.wait_lines(mark, lambda l: l.get("name") == "fleet/app", requests_of(pulls))
        for digest in self.app.blobs:
            replicas = {i for i, l in lines if l["route"] == "blob" and l["reference"] == digest}
            gets = self.registry.blob_gets(digest)
            # Each replica that served the blob fetched it once (single-flight inside it); nothing else did.
            self.assertEqual(gets, len(replicas), f"{digest}: {gets} upstream GETs, served by replicas {replicas}")
            if not self.bounded_load:
                self.assertEqual(gets, 1, f"{digest}: routed by repository, one replica fetches it once")
        manifest_replicas = {i for i, l in lines if l["route"] == "manifest"}
        if not self.bounded_load:
            self.assertEqual(len(manifest_replicas), 1, manifest_replicas)
        manifest_gets = self.registry.requests_containing("GET /v2/fleet/app/manifests/v1 ")
        self.assertLessEqual(manifest_gets, len(manifest_replicas))

    # (2)
    def test_2_a_blocked_image_is_blocked_for_every_client_and_its_blobs_by_digest_nowhere(self):
        spellings = [("fleet/blocked", ""), (f"{HUB}/fleet/blocked", ""), ("fleet/blocked", f"?ns={HUB}")]
        mark = self.fleet.mark()

        def ask(i):
            name, query = spellings[i % len(spellings)]
            method = "HEAD" if i % 2 else "GET"
            return call(self.fleet.port, f"/v2/{name}/manifests/v1{query}", method=method,
                        source=client_address(2, i), headers=ACCEPT)

        answers = in_parallel(ask, 12)
        for a in answers:
            self.assertIsInstance(a, Answer, a)
            self.assertEqual(a.status, 403)
        for a in answers[::2]:  # the GETs carry the reasons
            self.assertEqual(json.loads(a.body)["errors"][0]["code"], "DENIED")
            self.assertIn("non-root-user", a.body.decode())
        judged = self.fleet.wait_lines(
            mark, lambda l: l.get("route") == "manifest" and "blocked" in l.get("name", ""), 12)
        self.assertEqual(sorted((l["client"], l.get("via")) for _, l in judged),
                         sorted((client_address(2, i), "127.0.0.1") for i in range(12)),
                         "each replica names the client the balancer forwarded, and the balancer as via")
        if not self.bounded_load:
            self.assertEqual(len({i for i, _ in judged}), 1, "every spelling and client reaches one replica")
        # The verdict is found through the load balancer, whichever replica judged it.
        verdict = call(self.fleet.port, f"/ocigate/v1/verdicts/{self.blocked.digest}")
        self.assertEqual(verdict.status, 200, verdict.body)
        self.assertEqual(json.loads(verdict.body)["verdict"], "block")
        # Its blobs by digest: under its own name and under 20 other names (which spread over every replica).
        names = ["fleet/blocked", f"{HUB}/fleet/blocked", *self.spread]
        mark = self.fleet.mark()
        for name in names:
            for digest in self.blocked.blobs:
                a = call(self.fleet.port, f"/v2/{name}/blobs/{digest}")
                self.assertEqual(a.status, 403, (name, digest))
                self.assertEqual(json.loads(a.body)["errors"][0]["code"], "DENIED")
        refused = self.fleet.wait_lines(mark, lambda l: l.get("route") == "blob", len(names) * len(self.blocked.blobs))
        self.assertEqual({i for i, _ in refused}, set(range(REPLICAS)), "every replica was asked and refused")
        for digest in self.blocked.layer_digests:  # (its config was fetched: the gate judged it)
            self.assertEqual(self.registry.blob_gets(digest), 0, "a refused layer is never fetched")

    # (3)
    def test_3_repositories_spread_over_every_replica_and_each_stays_on_one(self):
        owners = {name: self.owner(name) for name in self.spread}
        # Consistent hashing of 20 names: a replica with none has a probability near 3 * (2/3)^20 = 0.1 %
        # (HAProxy places servers by position: fixed; nginx by address, and the ports change every run).
        counts = [list(owners.values()).count(i) for i in range(REPLICAS)]
        self.assertTrue(all(counts), f"repositories per replica: {counts}")
        # Every other request of a repository goes to its replica: tags, HEADs, referrers, again.
        mark = self.fleet.mark()
        for name in self.spread:
            self.assertEqual(call(self.fleet.port, f"/v2/{name}/tags/list").status, 200)
            self.assertEqual(call(self.fleet.port, f"/v2/{name}/manifests/v1", "HEAD", headers=ACCEPT).status, 200)
            call(self.fleet.port, f"/v2/{name}/referrers/{self.spread[name].digest}")
        served = self.fleet.served_by(mark, set(self.spread), 3 * len(self.spread))
        self.assertEqual({n: r for n, r in served.items()}, {n: {owners[n]} for n in self.spread})

    def test_3_every_spelling_of_a_repository_reaches_the_same_replica(self):
        # As the replicas resolve names: an upstream prefix, ?ns=, the default upstream, Docker Hub's library/.
        spellings = [("library/tool", ""), ("tool", ""), (f"{HUB}/library/tool", ""), (f"{HUB}/tool", ""),
                     ("library/tool", f"?ns={HUB}"), ("tool", "?ns=docker.io")]
        mark = self.fleet.mark()
        pulls = []
        for name, query in spellings:
            pulls.append(self.client.pull(name, "v1", query))
            self.assertTrue(pulls[-1].ok, (name, query, pulls[-1].statuses))
        names = {name for name, _ in spellings}
        lines = self.fleet.wait_lines(mark, lambda l: l.get("name") in names, requests_of(pulls))
        self.assertEqual(len({i for i, _ in lines}), 1,
                         f"docker.io/library/tool: {sorted({(i, l['name']) for i, l in lines})}")
        self.assertEqual(self.registry.blob_gets(self.library.layer_digests[0]), 1)

    def test_3_probes_and_the_ping_reach_any_replica_and_metrics_are_refused(self):
        mark = self.fleet.mark()
        for _ in range(6):
            ping = call(self.fleet.port, "/v2/")
            self.assertEqual(ping.status, 200)
            self.assertEqual(ping.header("docker-distribution-api-version"), "registry/2.0")
        pings = self.fleet.wait_lines(mark, lambda l: l.get("route") == "base", 6)
        self.assertGreater(len({i for i, _ in pings}), 1, "the ping is not pinned to one replica")
        for path in ("/readyz", "/healthz"):
            self.assertEqual(call(self.fleet.port, path).status, 200, path)
        metrics = call(self.fleet.port, "/metrics")
        self.assertEqual(metrics.status, 404)
        self.assertIn(b"scrape each replica", metrics.body)

    # (5) is HAProxy's: see HAProxyFleet.

    def test_5_adding_a_replica_moves_only_what_it_takes_and_removing_it_moves_that_back(self):
        # Consistent hashing: a fourth replica takes about a quarter of the repositories, all from the others
        # and nothing between them (a modulo would move about three quarters); removing it again sends
        # exactly those back. 32 repositories: that the new one takes none has a probability of (3/4)^32.
        names = [*self.spread, *self.kill_repos]
        # From a fresh load balancer generation: HAProxy's stick table lives in its worker, and what earlier
        # tests' load made it remember would hide where the ring puts each repository.
        self.client.close()
        self.fleet.resize(list(self.fleet.replicas))
        before = {name: self.owner(name) for name in names}
        original = list(self.fleet.replicas)
        extra = self.fleet.new_replica(REPLICAS)
        self.addCleanup(extra.close)
        extra.start()
        self.client.close()  # a reload lets the old workers finish what their connections ask
        self.fleet.resize(original + [extra])
        try:
            during = {name: self.owner(name) for name in names}
        finally:
            self.client.close()
            self.fleet.resize(original)
        moved = {name for name in names if during[name] != before[name]}
        self.assertTrue(moved, "the new replica took no repository")
        self.assertEqual({during[name] for name in moved}, {REPLICAS},
                         f"moved between old replicas: {[(n, before[n], during[n]) for n in sorted(moved)]}")
        self.assertLess(len(moved), len(names) / 2, f"{len(moved)} of {len(names)} repositories moved")
        self.assertEqual({name: self.owner(name) for name in names}, before)

    # (4)
    def test_9_killing_a_replica_moves_only_its_repositories_and_leaves_the_others_streaming(self):
        owners = {name: self.owner(name) for name in self.kill_repos}
        stream_owners = {}
        for name in self.stream_repos:  # the manifests pass the slow pass-through at full speed
            mark = self.fleet.mark()
            self.assertEqual(call(self.fleet.port, f"/v2/{SLOW}/{name}/manifests/v1", headers=ACCEPT).status, 200)
            stream_owners[name] = self.fleet.served_by(mark, {f"{SLOW}/{name}"}, 1)[f"{SLOW}/{name}"].pop()
        victim = max(range(REPLICAS), key=lambda i: list(owners.values()).count(i))
        streams = {}
        for name, replica in stream_owners.items():  # one cold slow stream on each other replica
            if replica != victim and replica not in streams.values():
                streams[name] = replica
        self.assertTrue(streams, f"no slow repository away from replica {victim}: {stream_owners}")

        progress = {name: 0 for name in streams}
        results = {}

        def stream(name):
            digest = self.stream_repos[name].layer_digests[0]
            conn = http.client.HTTPConnection("127.0.0.1", self.fleet.port, timeout=60)
            try:
                conn.request("GET", f"/v2/{SLOW}/{name}/blobs/{digest}")
                resp = conn.getresponse()
                h = hashlib.sha256()
                while True:
                    piece = resp.read(16384)
                    if not piece:
                        break
                    h.update(piece)
                    progress[name] += len(piece)
                results[name] = (resp.status, "sha256:" + h.hexdigest() == digest, progress[name])
            except Exception as e:  # noqa: BLE001 - reported below
                results[name] = e
            finally:
                conn.close()

        threads = [threading.Thread(target=stream, args=(name,)) for name in streams]
        for t in threads:
            t.start()
        # The manifests were allowed on these replicas, so their layers may be fetched: wait until bytes flow.
        harness.wait_until(lambda: all(n >= 64 * 1024 for n in progress.values()), WAIT, "the slow streams")
        self.fleet.replicas[victim].kill9()

        moved = [name for name, r in owners.items() if r == victim]
        before = {d: self.registry.blob_gets(d) for name in moved for d in self.kill_repos[name].blobs}
        new_owners = {name: self.owner(name) for name in moved}
        for name, replica in new_owners.items():
            self.assertNotEqual(replica, victim)
            for digest in self.kill_repos[name].blobs:  # cold there: fetched once more, by its new replica
                self.assertEqual(self.registry.blob_gets(digest), before[digest] + 1, (name, digest))
        size = {name: json.loads(self.stream_repos[name].manifest)["layers"][0]["size"] for name in streams}
        in_flight = [name for name in streams if progress[name] < size[name]]
        self.assertTrue(in_flight, "the streams finished before the pulls of the victim's repositories")

        for t in threads:
            t.join(60)
        for name, replica in streams.items():
            self.assertEqual(results.get(name), (200, True, size[name]), f"the stream of {name} on replica {replica}")
        # Nobody else's repository moved, and it is still warm where it was.
        stayed = {name: r for name, r in owners.items() if r != victim}
        gets = {d: self.registry.blob_gets(d) for name in stayed for d in self.kill_repos[name].blobs}
        self.assertEqual({name: self.owner(name) for name in stayed}, stayed)
        self.assertEqual({d: self.registry.blob_gets(d) for d in gets}, gets, "no blob fetched again")


class NginxFleet(FleetTests, unittest.TestCase):
    LB = "nginx"
    bounded_load = False  # nginx open source has no bounded load: a hot repository stays on its replica


class HAProxyFleet(FleetTests, unittest.TestCase):
    LB = "haproxy"
    bounded_load = True

    # (5)
    def test_4_a_hot_repository_spills_over_to_other_replicas_and_every_pull_succeeds(self):
        clients = 32
        mark = self.fleet.mark()
        pulls = in_parallel(lambda i: pull(self.fleet.port, "fleet/hot", "v1", source=client_address(3, i)), clients)
        for p in pulls:
            self.assertIsInstance(p, Pull, p)
            self.assertTrue(p.ok, p.statuses)
        lines = self.fleet.wait_lines(mark, lambda l: l.get("name") == "fleet/hot", requests_of(pulls))
        manifests = {i for i, l in lines if l["route"] == "manifest"}
        self.assertGreater(len(manifests), 1, "32 concurrent clients of one repository stayed on one replica")
        layer = self.hot.layer_digests[0]
        layer_replicas = {i for i, l in lines if l["route"] == "blob" and l["reference"] == layer}
        self.assertEqual(self.registry.blob_gets(layer), len(layer_replicas), "once per replica that serves it")

    def test_4_a_clients_blobs_follow_its_manifest_to_the_replica_that_judged_it(self):
        # Bounded load decides per request. Under blob_access: referenced a replica serves only blobs of images
        # it judged itself, so the stick table keeps each client's requests for a repository where its first
        # one went. 32 clients get the manifest, then all fetch the layer at once (load that spills).
        clients = [Client(self.fleet.port, client_address(4, i)) for i in range(32)]
        for c in clients:
            self.addCleanup(c.close)
            self.assertEqual(c.call("/v2/fleet/hot2/manifests/v1", headers=ACCEPT).status, 200)
        layer = self.hot2.layer_digests[0]
        blobs = in_parallel(lambda i: clients[i].call(f"/v2/fleet/hot2/blobs/{layer}"), len(clients))
        for b in blobs:
            self.assertIsInstance(b, Answer, b)
            self.assertEqual(b.status, 200, b.body[:300])
            self.assertEqual(harness.sha256(b.body), layer)
        routed = self.fleet.lb.routed("/v2/fleet/hot2/", 2 * len(clients))
        for c in clients:
            self.assertEqual(len({replica for source, replica, _ in routed if source == c.source}), 1,
                             f"client {c.source}: {[r for r in routed if r[0] == c.source]}")


class RunLocal(unittest.TestCase):
    """deploy/lb/run-local: N replicas and a load balancer from one command, all gone after SIGTERM."""

    @classmethod
    def setUpClass(cls):
        cls.registry = harness.Registry()
        cls.addClassCleanup(cls.registry.close)
        cls.image = harness.push_image(cls.registry.start(), "team/app", "v1")

    def run_local(self, *extra):
        directory = harness._make_dir("ocigate-run-local-")
        self.addCleanup(harness._remove_dir, directory)
        port, replica_port = harness.free_port(), harness.free_port()
        out_path = os.path.join(directory, "out.log")
        proc = harness._spawn([os.path.join(LB_DIR, "run-local"), "2", "--upstream", self.registry.url,
                               "--port", str(port), "--replica-port", str(replica_port),
                               "--dir", os.path.join(directory, "fleet"), *extra], out_path)
        self.addCleanup(self.stop, proc)  # SIGTERM: run-local's trap stops what it started
        harness.wait_until(lambda: proc.poll() is not None or "ready:" in harness.process_log_tail(out_path),
                           60, "run-local to print its URL")
        self.assertIsNone(proc.poll(), harness.process_log_tail(out_path))
        return proc, port, replica_port, os.path.join(directory, "fleet"), out_path

    @staticmethod
    def stop(proc):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                pass
        harness._kill(proc)

    def check(self, *extra):
        proc, port, replica_port, fleet_dir, out_path = self.run_local(*extra)
        self.assertIn(f"http://127.0.0.1:{port}", harness.process_log_tail(out_path))
        dest = tempfile.mkdtemp(prefix="ocigate-copy-")
        self.addCleanup(shutil.rmtree, dest, True)
        copy = harness.skopeo_copy(f"127.0.0.1:{port}/team/app:v1", dest)
        self.assertEqual(copy.returncode, 0, copy.stderr)
        self.assertEqual(set(harness.verify_dir_copy(dest)), set(self.image.blobs))
        # Behind the balancer every client has one address: one client's malformed requests (over ocigate's
        # default 60 a minute) must not lock out the next client.
        for _ in range(70):
            self.assertEqual(call(port, "/v2/Bad..Name/manifests/v1").status, 400)
        self.assertEqual(call(port, "/v2/team/app/manifests/v1", headers=ACCEPT).status, 200)
        for i in range(2):  # each replica answers on its own loopback address
            self.assertEqual(harness.request("GET", f"http://127.0.0.{i + 2}:{replica_port}/readyz").status, 200)
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(30), 0, harness.process_log_tail(out_path))
        for address in (f"127.0.0.1:{port}", f"127.0.0.2:{replica_port}", f"127.0.0.3:{replica_port}"):
            host, p = address.split(":")
            with self.assertRaises(OSError, msg=f"{address} still answers after run-local stopped"):
                socket.create_connection((host, int(p)), timeout=2).close()
        self.assertFalse(os.path.exists(fleet_dir), "run-local removes its directory")

    def test_run_local_refuses_bad_arguments(self):
        existing = harness._make_dir("ocigate-run-local-")
        self.addCleanup(harness._remove_dir, existing)
        for args, message in ((["0"], "N must be 1..250"), (["2", "--port", "70000"], "not a port"),
                              (["2", "--dir", existing], "must name a new directory"),
                              (["2", "--frobnicate"], "unknown option"),
                              (["2", "--config", "/nonexistent.yaml"], "cannot read")):
            out = subprocess.run([os.path.join(LB_DIR, "run-local"), *args], capture_output=True, text=True,
                                 timeout=30, stdin=subprocess.DEVNULL)
            self.assertEqual(out.returncode, 2, (args, out.stderr))
            self.assertIn(message, out.stderr)
        self.assertTrue(os.path.isdir(existing), "an existing --dir is left alone")

    def test_run_local_with_nginx(self):
        self.check()

    def test_run_local_with_haproxy(self):
        self.check("--haproxy")


if __name__ == "__main__":
    unittest.main()
