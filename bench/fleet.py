"""`bench/run --fleet` (issue #26): a fleet of three ocigate replicas behind nginx (deploy/lb, rendered with
deploy/lb/render) against one ocigate, one ocigate behind the same nginx, and Distribution's proxy, on loopback;
and the same three replicas behind HAProxy.

Figures:
  - manifest GET by tag, 32 connections (httpload): rate and p50/p99 through each; "one behind nginx" against
    "one" is the load balancer hop's cost alone, the fleet against "one behind nginx" what three processes on
    the same cores add or take;
  - upstream bytes ÷ unique bytes for 30 repositories whose images share one base layer, pulled once each
    through a cold contestant by `skopeo copy`, one after the other: what shared-nothing costs, since each
    replica that sees the base layer fetches it once; and the seconds those 30 copies take;
  - warm aggregate throughput: 16 clients (blobget, one connection each) GET 16 different repositories'
    cached layers at once, so the fleet spreads them over its replicas; and the same with 16 `curl` processes.
The fleet behind HAProxy (deploy/lb/haproxy.cfg: bounded load, kernel splicing) is measured beside it.
Results go to bench/results/fleet.json and the fleet section of bench/README.md (not in --smoke)."""

import http.client
import importlib.machinery
import importlib.util
import json
import os
import shutil
import subprocess
import time

import bench as b

REPLICAS = 3
CLIENTS = 16
MODES = {
    "full": {"runs": 3, "small": 300, "repos": 30, "base": 64 * b.MiB, "own": 1 * b.MiB, "warm_repos": 16,
             "warm_blob": 128 * b.MiB, "load_s": 10},
    "quick": {"runs": 1, "small": 100, "repos": 30, "base": 16 * b.MiB, "own": 256 * 1024, "warm_repos": 16,
              "warm_blob": 32 * b.MiB, "load_s": 4},
    "smoke": {"runs": 1, "small": 8, "repos": 30, "base": 1 * b.MiB, "own": 16 * 1024, "warm_repos": 4,
              "warm_blob": 1 * b.MiB, "load_s": 1},
}
RESULTS = os.path.join(b.BENCH_DIR, "results", "fleet.json")
BEGIN = "<!-- bench:fleet:begin (bench/run --fleet rewrites this section) -->"
END = "<!-- bench:fleet:end -->"
WHO = ("fleet", "fleet+haproxy", "one+nginx", "one", "peer")
LABEL = {"fleet": "fleet of 3 behind nginx", "fleet+haproxy": "fleet of 3 behind HAProxy",
         "one+nginx": "one ocigate behind nginx", "one": "one ocigate", "peer": "Distribution proxy"}


def load_render():
    path = os.path.join(b.REPO, "deploy", "lb", "render")
    loader = importlib.machinery.SourceFileLoader("lb_render", path)
    spec = importlib.util.spec_from_loader("lb_render", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


class Balancer:
    """nginx or HAProxy on 127.0.0.1 with deploy/lb's configuration rendered for the given ocigate replicas
    (Server objects): nginx as in the template (no access log here), HAProxy with bounded load, its default."""

    def __init__(self, kind, directory, replicas, ocigate_config):
        self.kind, self.dir, self.replicas, self.ocigate_config = kind, directory, replicas, ocigate_config
        os.makedirs(directory, exist_ok=True)
        self.log_path = os.path.join(directory, f"{kind}.log")
        self.proc = None
        self.port = None

    def command(self, render):
        replicas = [f"r{i}=127.0.0.1:{r.port}" for i, r in enumerate(self.replicas)]
        listen = f"127.0.0.1:{self.port}"
        path = os.path.join(self.dir, f"{self.kind}.conf")
        if self.kind == "nginx":
            user = None
            if os.geteuid() == 0:
                import getpass
                user = getpass.getuser()  # else the workers become nobody, shut out of this directory
            text = render.render("nginx", replicas, listen=listen, ocigate_config=self.ocigate_config,
                                 state_dir=self.dir, user=user, access_log="off")
            cmd = [shutil.which("nginx") or "/usr/sbin/nginx", "-p", self.dir, "-c", path]
        else:
            text = render.render("haproxy", replicas, listen=listen, ocigate_config=self.ocigate_config,
                                 log_level="notice")  # no request log, as nginx here
            cmd = [shutil.which("haproxy") or "/usr/sbin/haproxy", "-W", "-db", "-f", path]
        with open(path, "w") as f:
            f.write(text)
        return cmd

    def start(self):
        render = load_render()
        for _ in range(3):
            self.port = b.free_port()
            self.proc = b.spawn(self.command(render), self.log_path)
            if b.wait_ready(self.proc, self.port, "/v2/", self.log_path):
                return self
            b._kill(self.proc)
        raise RuntimeError(f"{self.kind} did not start:\n{b.tail(self.log_path)}\n"
                           f"{b.tail(os.path.join(self.dir, 'error.log'))}")

    def stop(self):
        if self.proc:
            b.terminate(self.proc)
        self.proc = None


class Fleet:
    """Three ocigate replicas (a directory and cache each) and nginx or HAProxy in front: `port` is its."""

    def __init__(self, binary, directory, upstream_url, policy, lb="nginx"):
        self.replicas = [b.ocigate(binary, os.path.join(directory, f"replica-{i}"), upstream_url, policy)
                         for i in range(REPLICAS)]
        self.lb_kind = lb
        self.lb = None
        self.dir = directory
        self.kind = "fleet"

    def start(self):
        for r in self.replicas:
            r.start()
        self.lb = Balancer(self.lb_kind, os.path.join(self.dir, self.lb_kind), self.replicas, self.config()).start()
        return self

    def config(self):
        return self.replicas[0].config_fn(self.replicas[0].port)

    @property
    def port(self):
        return self.lb.port

    def destroy(self):
        if self.lb:
            self.lb.stop()
        for r in self.replicas:
            r.destroy()
        shutil.rmtree(self.dir, ignore_errors=True)


class Seed:
    """bench/fleet-small-NNN:v1 (one 1-4 KiB layer each: the manifest rate), bench/fleet-app-NN:v1 (the shared
    base layer and a layer of their own), bench/fleet-warm-NN:v1 (one large layer each: warm throughput)."""

    def __init__(self, workdir, port, mode):
        t0 = time.monotonic()
        pusher = b.Pusher(port)
        self.small = []
        for i in range(mode["small"]):
            repo = f"bench/fleet-small-{i:03d}"
            layer = os.urandom(1024 + (i * 37) % 3072)
            digest = pusher.push_bytes(repo, layer)
            pusher.push_image(repo, "v1", [(digest, len(layer))])
            self.small.append(repo)
        base = b.gzip_tar_layer("base/rootfs.bin", mode["base"])
        self.base = (b.sha256(base), len(base))
        self.apps = []
        self.blobs = {self.base[0]: len(base)}  # every distinct blob the 30 images hold: digest -> size
        for i in range(mode["repos"]):
            repo = f"bench/fleet-app-{i:02d}"
            if i == 0:
                pusher.push_blob(repo, base, self.base[0], len(base))
            else:
                self.mount(pusher, repo, self.base[0], "bench/fleet-app-00", base)
            own = b.gzip_tar_layer(f"app/app{i}.bin", mode["own"])
            own_digest = pusher.push_bytes(repo, own)
            _, config_digest = pusher.push_image(repo, "v1", [self.base, (own_digest, len(own))])
            self.apps.append(repo)
            self.blobs[own_digest] = len(own)
            status, headers, _ = b.http_request(port, "HEAD", f"/v2/{repo}/blobs/{config_digest}")
            if status != 200:
                raise RuntimeError(f"the upstream does not have {repo}'s config: {status}")
            self.blobs[config_digest] = int(headers["Content-Length"])
        del base
        self.warm = []
        path = os.path.join(workdir, "warm.bin")
        for i in range(mode["warm_repos"]):
            repo = f"bench/fleet-warm-{i:02d}"
            digest = b.make_random_file(path, mode["warm_blob"])
            with open(path, "rb") as f:
                pusher.push_blob(repo, f, digest, mode["warm_blob"])
            pusher.push_image(repo, "v1", [(digest, mode["warm_blob"])])
            self.warm.append((repo, digest))
        os.remove(path)
        self.unique_bytes = sum(self.blobs.values())
        b.log(f"fleet seed: {len(self.small)} small images, {len(self.apps)} images sharing a "
              f"{mode['base'] / b.MiB:g} MiB base layer, {len(self.warm)} × {mode['warm_blob'] / b.MiB:g} MiB warm "
              f"layers, in {time.monotonic() - t0:.1f} s")

    @staticmethod
    def mount(pusher, repo, digest, source, data):
        """Cross-repository mount (the registry links the blob it has); a full upload if it declines."""
        status, _, _ = pusher.call("POST", f"/v2/{repo}/blobs/uploads/?mount={digest}&from={source}", body=b"")
        if status != 201:
            pusher.push_blob(repo, data, digest, len(data))


def pull(port, repo, tag="v1"):
    """A client's pull on one keep-alive connection: the manifest, then each blob (read and dropped)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300, blocksize=1 << 20)
    try:
        conn.request("GET", f"/v2/{repo}/manifests/{tag}", headers={"Accept": b.OCI_ACCEPT})
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"GET {repo}:{tag} on :{port}: {resp.status} {body[:200]!r}")
        manifest = json.loads(body)
        for desc in [manifest["config"], *manifest["layers"]]:
            conn.request("GET", f"/v2/{repo}/blobs/{desc['digest']}")
            resp = conn.getresponse()
            got = 0
            while True:
                piece = resp.read(1 << 20)
                if not piece:
                    break
                got += len(piece)
            if resp.status != 200 or got != desc["size"]:
                raise RuntimeError(f"GET {repo} blob {desc['digest']} on :{port}: {resp.status}, {got} bytes")
    finally:
        conn.close()


def curl_many(port, paths):
    """One curl per path, all at once, each body to /dev/null: aggregate bytes/s from the first start to the
    last finish."""
    t0 = time.monotonic()
    procs = [subprocess.Popen(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download}",
                               f"http://127.0.0.1:{port}{path}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, text=True) for path in paths]
    total = 0
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        status, size = out.split()
        if proc.returncode != 0 or status != "200":
            raise RuntimeError(f"curl: status {status}, exit {proc.returncode}: {err.strip()[:200]}")
        total += int(size)
    return total / (time.monotonic() - t0)


def upstream_blob_bytes(log_path, offset):
    """Bytes the upstream wrote for blob GETs after `offset` in its access log, and how many GETs."""
    total = gets = 0
    with open(log_path, "rb") as f:
        f.seek(offset)
        for raw in f:
            m = b.ACCESS_RE.search(raw.decode(errors="replace"))
            if m and "/blobs/" in m.group(1):
                gets += 1
                total += int(m.group(3))
    return total, gets


def settle(log_path, offset, timeout=120):
    """Waits until the upstream's count stops changing (Distribution fills its cache after its clients)."""
    last, since = None, time.monotonic()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = upstream_blob_bytes(log_path, offset)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since > 1.5:
            break
        time.sleep(0.25)
    return last


class FleetBench(b.Bench):
    def __init__(self, args, workdir):
        super().__init__(args, workdir)
        self.mode = dict(MODES[self.mode_name])
        if args.runs:
            self.mode["runs"] = args.runs

    def contestant(self, who, name, policy):
        directory = os.path.join(self.workdir, f"{name}-{who}")
        shutil.rmtree(directory, ignore_errors=True)
        if who in ("fleet", "fleet+haproxy"):
            return Fleet(self.binary, directory, self.up_url, policy, "nginx" if who == "fleet" else "haproxy").start()
        if who == "one":
            return b.ocigate(self.binary, directory, self.up_url, policy).start()
        return b.registry(directory, proxy_url=self.up_url).start()

    def run(self):
        wd, mode = self.workdir, self.mode
        self.tools = b.Tools(wd)
        self.check_ids = b.policy_check_ids(self.binary, wd)
        self.off = b.policy_off(self.check_ids)
        self.upstream = b.registry(os.path.join(wd, "upstream")).start()
        self.up_url = f"http://127.0.0.1:{self.upstream.port}"
        self.seed = Seed(wd, self.upstream.port, mode)
        self.paths = os.path.join(wd, "paths-small.txt")
        with open(self.paths, "w") as f:
            f.write("".join(f"/v2/{repo}/manifests/v1\n" for repo in self.seed.small))
        self.warm_paths = os.path.join(wd, "paths-warm.txt")
        with open(self.warm_paths, "w") as f:
            f.write("".join(f"/v2/{repo}/blobs/{digest}\n" for repo, digest in self.seed.warm))
        # Warm contestants, filled once: the rates and warm throughput read their caches.
        warm = {who: self.contestant(who, "warm", self.off) for who in ("fleet", "one", "peer")}
        one, fleet = warm["one"], warm["fleet"]
        warm["one+nginx"] = Balancer("nginx", os.path.join(wd, "warm-one-nginx"), [one],
                                     one.config_fn(one.port)).start()
        # HAProxy in front of the same warm replicas: its ring places repositories elsewhere than nginx's, so it
        # fills them through itself too.
        warm["fleet+haproxy"] = Balancer("haproxy", os.path.join(wd, "warm-fleet-haproxy"), fleet.replicas,
                                         fleet.config()).start()
        self.warm = warm
        for who in ("fleet", "fleet+haproxy", "one", "peer"):
            for repo in self.seed.small + [r for r, _ in self.seed.warm]:
                pull(warm[who].port, repo)
            b.log(f"warm {who} filled on :{warm[who].port}")
        for run in range(mode["runs"]):
            order = list(WHO) if run % 2 == 0 else list(reversed(WHO))
            b.log(f"fleet run {run + 1}/{mode['runs']} (order: {', '.join(order)})")
            self.shared_base(order)
            for who in order:
                r = self.attempt(f"manifest rate {who}", lambda: self.tools.load(
                    warm[who].port, self.paths, "GET", mode["load_s"], b.MANIFEST_CONNS, 2,
                    headers=[f"Accept: {b.OCI_ACCEPT}"]))
                if r:
                    self.add("manifest_tag", who, r)
            for who in order:
                r = self.attempt(f"warm {CLIENTS} clients {who}",
                                 lambda: self.tools.get(warm[who].port, "@" + self.warm_paths, CLIENTS))
                if r:
                    self.add("warm16", who, r["bytes_per_second"])
            warm_paths = [f"/v2/{repo}/blobs/{digest}" for repo, digest in self.seed.warm][:CLIENTS]
            for who in order:
                r = self.attempt(f"warm {CLIENTS} clients {who}, curl", lambda: curl_many(warm[who].port, warm_paths))
                if r:
                    self.add("warm16_curl", who, r)
        warm["one+nginx"].stop()
        warm["fleet+haproxy"].stop()
        for who in ("fleet", "one", "peer"):
            warm[who].destroy()
        self.upstream.stop()

    def shared_base(self, order):
        """Each cold contestant is pulled the 30 images that share a base layer by `skopeo copy`, one after the
        other: the seconds that takes, and what the upstream served for it."""
        for who in order:
            if who == "one+nginx":
                continue  # the same cache as one: the same upstream bytes
            os.sync()
            server = self.attempt(f"start cold {who}", lambda: self.contestant(who, "cold", self.off))
            if not server:
                continue
            offset = os.path.getsize(self.upstream.log_path)
            dest = os.path.join(self.workdir, "skopeo-dest")
            t0 = time.monotonic()
            ok = self.attempt(f"shared base {who}",
                              lambda: [b.skopeo_copy(server.port, f"{repo}:v1", dest) for repo in self.seed.apps])
            seconds = time.monotonic() - t0
            if ok is not None:
                sent, gets = settle(self.upstream.log_path, offset)
                self.add("shared_base", who, {"ratio": sent / self.seed.unique_bytes, "bytes": sent, "gets": gets,
                                              "seconds": seconds})
            server.destroy()


def table(bench):
    s = bench.samples

    def med(key, who, field=None):
        vals = s.get(key, {}).get(who, [])
        return b.median([v[field] if field else v for v in vals if v is not None])

    rows = []
    cells = []
    for who in WHO:
        rps, p50, p99 = (med("manifest_tag", who, f) for f in ("rps", "p50_us", "p99_us"))
        cells.append(f"{rps:,.0f} req/s (p50 {p50 / 1000:.2f} / p99 {p99 / 1000:.2f} ms)" if rps else "—")
    rows.append((f"manifest GET by tag ({b.MANIFEST_CONNS} conns), warm", cells))
    cells = []
    for who in WHO:
        if who == "one+nginx":
            cells.append("(as one ocigate)")
            continue
        r, gets = med("shared_base", who, "ratio"), med("shared_base", who, "gets")
        cells.append(f"{r:.2f}× ({gets:.0f} blob GETs)" if r is not None else "—")
    mode = bench.mode
    rows.append((f"upstream bytes ÷ unique bytes, {mode['repos']} repositories sharing a "
                 f"{mode['base'] / b.MiB:g} MiB base layer, cold (`skopeo copy` of each)", cells))
    cells = []
    for who in WHO:
        if who == "one+nginx":
            cells.append("—")
            continue
        t = med("shared_base", who, "seconds")
        cells.append(f"{t:.2f} s" if t is not None else "—")
    rows.append((f"cold pull of those {mode['repos']} images, `skopeo copy` one after the other", cells))
    cells = [b.gib_s(med("warm16", who)) for who in WHO]
    rows.append((f"warm blob, {CLIENTS} clients over {mode['warm_repos']} repositories "
                 f"({mode['warm_blob'] / b.MiB:g} MiB each), aggregate", cells))
    cells = [b.gib_s(med("warm16_curl", who)) for who in WHO]
    rows.append((f"the same with {min(CLIENTS, mode['warm_repos'])} `curl` processes, one per repository", cells))
    header = "| figure | " + " | ".join(LABEL[w] for w in WHO) + " |"
    lines = [header, "|" + "---|" * (len(WHO) + 1)]
    lines += [f"| {label} | " + " | ".join(c) + " |" for label, c in rows]
    return rows, "\n".join(lines)


def main(args, started):
    for tool in ("nginx",):
        if not shutil.which(tool) and not os.path.exists("/usr/sbin/" + tool):
            raise SystemExit(f"bench: `{tool}` is not installed (scripts/setup installs it)")
    bench = FleetBench(args, b._workdir)
    try:
        bench.run()
    finally:
        b._cleanup()
    rows, text = table(bench)
    date = b.run_span(started)
    mode = bench.mode
    heading = (f"`bench/run --fleet`{' --' + bench.mode_name if bench.mode_name != 'full' else ''}, "
               f"{mode['runs']} run(s) (medians), {os.cpu_count()} cores, {date}; {mode['load_s']} s per rate; "
               f"{time.monotonic() - started:.0f} s in all; clients: httpload (rates), skopeo (cold pulls), "
               f"blobget and curl (warm throughput).")
    print("\n" + heading + "\n\n" + text)
    if bench.errors:
        print("\nmeasurement errors:\n" + "".join(f"  - {e}\n" for e in bench.errors))
    results = RESULTS if bench.mode_name != "smoke" else os.path.join(b.BENCH_DIR, "results", "fleet-smoke.json")
    os.makedirs(os.path.dirname(results), exist_ok=True)
    with open(results, "w") as f:
        json.dump({"date": date, "cores": os.cpu_count(), "mode": bench.mode_name, "sizes": mode,
                   "contestants": LABEL, "rows": rows, "samples": bench.samples, "errors": bench.errors,
                   "table": text}, f, indent=1, default=str)
        f.write("\n")
    if not args.no_readme and bench.mode_name != "smoke" and os.path.exists(b.README):
        with open(b.README) as f:
            readme = f.read()
        if BEGIN in readme and END in readme:
            before, rest = readme.split(BEGIN, 1)
            _, after = rest.split(END, 1)
            errors = "".join(f"- measurement error: {e}\n" for e in bench.errors)
            with open(b.README, "w") as f:
                f.write(before + f"{BEGIN}\n{heading}\n\n{text}\n{errors}{END}" + after)
        else:
            b.log("bench/README.md has no fleet markers; not rewritten")
    return 1 if bench.errors else 0
