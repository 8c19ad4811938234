#!/usr/bin/env python3
"""ocigate against CNCF Distribution's pull-through cache (Debian's docker-registry 2.8.2), side by
side in one run, on loopback. Started by bench/run (which builds ocigate in Release first); see
bench/README.md for what each figure means and how it is measured.

Everything runs on 127.0.0.1. Every process started here runs in its own session and is killed on
exit, Ctrl-C, SIGTERM or an error; every byte of temporary data lives under one /tmp directory that
is removed the same way. Standard library only, plus `docker-registry`, `skopeo` and `cc`
(which compiles the two load clients, bench/blobget.c and bench/httpload.c)."""

import argparse
import atexit
import datetime
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH_DIR)
DEFAULT_BIN = os.path.join(REPO, "build", "release", "ocigate")
README = os.path.join(BENCH_DIR, "README.md")
RESULTS = os.path.join(BENCH_DIR, "results", "latest.json")
SMOKE_RESULTS = os.path.join(BENCH_DIR, "results", "smoke.json")  # --smoke never replaces the real figures
MARK_BEGIN = "<!-- bench:results:begin (bench/run rewrites this section) -->"
MARK_END = "<!-- bench:results:end -->"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_ACCEPT = f"{OCI_MANIFEST}, {OCI_INDEX}"
MiB = 1 << 20
GiB = 1 << 30

# Sizes and durations per mode (load_s: seconds per request-rate measurement).
# scan_big: bytes of tar in the one-layer image of the prefetch figure; scan_layers: layers of the
# many-small-layers image (64 KiB to scan_small_max of tar each). Both are compressible, like real layers.
MODES = {
    "full": {"runs": 3, "big": 1 * GiB, "layers": 20, "layer": 5 * MiB, "small": 300, "load_s": 10, "hit_s": 5,
             "copies": 3, "scan_big": 256 * MiB, "scan_layers": 50, "scan_small_max": 8 * MiB},
    "quick": {"runs": 1, "big": 256 * MiB, "layers": 20, "layer": 1 * MiB, "small": 100, "load_s": 4, "hit_s": 3,
              "copies": 1, "scan_big": 64 * MiB, "scan_layers": 50, "scan_small_max": 2 * MiB},
    "smoke": {"runs": 1, "big": 8 * MiB, "layers": 4, "layer": 64 * 1024, "small": 8, "load_s": 1, "hit_s": 1,
              "copies": 1, "scan_big": 2 * MiB, "scan_layers": 5, "scan_small_max": 256 * 1024},
}
# --load (issue #7): idle keep-alive connections held open, active pulls (fast + deliberately slow
# readers), seconds per phase, each slow reader's rate. Seeded like --quick but with 2 MiB layers.
LOAD = {"idle": 1000, "fast": 80, "slow": 20, "seconds": 20, "slow_kib_s": 64}
LOAD_MODE = {"runs": 1, "big": 8 * MiB, "layers": 20, "layer": 2 * MiB, "small": 100, "load_s": 20, "hit_s": 1}
LOAD_RESULTS = os.path.join(BENCH_DIR, "results", "load.json")
LOAD_BEGIN, LOAD_END = "<!-- bench:load:begin (bench/run --load rewrites this section) -->", "<!-- bench:load:end -->"
# --vulndb (issue #22): the synthetic database's size (bench/vulndb_gen.py), the image's layers, runs.
VULNDB_MODES = {"full": {"debian": 60000, "ubuntu": 45000, "alpine": 10000, "layers": 20, "layer": 5 * MiB, "runs": 3,
                         "rounds": 200},
                "quick": {"debian": 60000, "ubuntu": 45000, "alpine": 10000, "layers": 20, "layer": 1 * MiB, "runs": 1,
                          "rounds": 100},
                "smoke": {"debian": 2000, "ubuntu": 1000, "alpine": 500, "layers": 2, "layer": 64 * 1024, "runs": 1,
                          "rounds": 10}}
VULNDB_RESULTS = os.path.join(BENCH_DIR, "results", "vulndb.json")
VULNDB_BEGIN = "<!-- bench:vulndb:begin (bench/run --vulndb rewrites this section) -->"
VULNDB_END = "<!-- bench:vulndb:end -->"
CONCURRENT = 16        # clients for the 16-client throughput, single-flight and memory figures
MANIFEST_CONNS = 32    # connections for the manifest and HEAD rates
START_TIMEOUT = 20
STOP_GRACE = 10

# Used only when the ocigate binary does not say which checks it knows (see policy_check_ids).
FALLBACK_CHECK_IDS = ["non-root-user", "healthcheck", "no-secrets", "copy-not-add", "no-update-alone", "pinned-base",
                      "pinned-reference", "trusted-source", "image-age", "signature", "no-setuid",
                      "no-package-manager", "vulnerabilities"]


def log(*parts):
    print("[bench]", *parts, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# processes and temp data: everything is registered and removed at exit

_procs = []
_workdir = None


def _cleanup():
    for proc in list(_procs):
        _kill(proc)
    if _workdir and os.path.isdir(_workdir):
        shutil.rmtree(_workdir, ignore_errors=True)


def _kill(proc):
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
    if proc in _procs:
        _procs.remove(proc)


def _on_signal(signum, frame):
    raise SystemExit(128 + signum)  # unwinds through finally blocks and atexit


def spawn(cmd, log_path):
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
    _procs.append(proc)
    return proc


def terminate(proc):
    """SIGTERM, SIGKILL after STOP_GRACE; only ever the process (group) this script started."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except OSError:
            pass
        try:
            proc.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            pass
    _kill(proc)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_request(port, method, path, headers=None, body=None, timeout=30):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, resp.headers, data
    finally:
        conn.close()


def wait_ready(proc, port, path, log_path, timeout=START_TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            status, _, _ = http_request(port, "GET", path, timeout=2)
            if status in (200, 401):
                return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def proc_status_kib(pid, key):
    """A kB figure of /proc/PID/status ("VmHWM", "VmRSS")."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def vm_hwm_kib(pid):
    return proc_status_kib(pid, "VmHWM")


class Server:
    """One docker-registry or ocigate process on 127.0.0.1 with its own directory."""

    def __init__(self, kind, directory, config_fn, ready_path, cmd_fn):
        self.kind, self.dir = kind, directory
        os.makedirs(directory, exist_ok=True)
        self.config_fn, self.ready_path, self.cmd_fn = config_fn, ready_path, cmd_fn
        self.log_path = os.path.join(directory, "process.log")
        self.config_path = os.path.join(directory, "config.yaml")
        self.proc = None
        self.port = None
        self.start_timeout = START_TIMEOUT

    def start(self):
        for _ in range(3):
            self.port = self.port or free_port()
            with open(self.config_path, "w") as f:
                json.dump(self.config_fn(self.port), f, indent=1)  # JSON is YAML
            self.proc = spawn(self.cmd_fn(self.config_path), self.log_path)
            if wait_ready(self.proc, self.port, self.ready_path, self.log_path, self.start_timeout):
                return self
            _kill(self.proc)
            self.proc = None
            self.port = None  # maybe taken meanwhile: pick another
        raise RuntimeError(f"{self.kind} in {self.dir} did not start:\n{tail(self.log_path)}")

    def restart(self):
        """Same port, same storage, a fresh process (so VmHWM starts over)."""
        self.stop()
        return self.start()

    def stop(self):
        if self.proc:
            terminate(self.proc)
        self.proc = None

    def destroy(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def pid(self):
        return self.proc.pid

    def peak_rss_mib(self):
        kib = vm_hwm_kib(self.proc.pid)
        return kib / 1024.0 if kib is not None else None


def tail(path, lines=30):
    try:
        with open(path, "rb") as f:
            return b"\n".join(f.read().splitlines()[-lines:]).decode(errors="replace")
    except OSError:
        return ""


def registry(directory, proxy_url=None):
    """docker-registry as Debian ships its default config (filesystem storage, in-memory blob
    descriptor cache, info logging, access log on), plus `proxy.remoteurl` for the peer."""
    def config(port):
        c = {
            "version": 0.1,
            "log": {"level": "info", "fields": {"service": "registry"}},
            "storage": {"filesystem": {"rootdirectory": os.path.join(directory, "data")},
                        "cache": {"blobdescriptor": "inmemory"}, "delete": {"enabled": True}},
            "http": {"addr": f"127.0.0.1:{port}", "headers": {"X-Content-Type-Options": ["nosniff"]}},
        }
        if proxy_url:
            c["proxy"] = {"remoteurl": proxy_url}
        return c
    return Server("docker-registry" + (" (proxy)" if proxy_url else ""), directory, config, "/v2/",
                  lambda path: ["docker-registry", "serve", path])


def ocigate(binary, directory, upstream_url, policy, server=None, extra=None):
    """ocigate with its documented defaults except listen/storage/upstream, a tag_ttl long enough
    that a whole run stays within it, and the given policy section (and server keys, for --load;
    other top-level sections in extra)."""
    def config(port):
        return dict({
            "server": dict({"listen": f"127.0.0.1:{port}"}, **(server or {})),
            "storage": {"path": os.path.join(directory, "cache"), "max_size": "16GiB"},
            "upstreams": [{"name": "origin", "url": upstream_url, "tag_ttl": "1h"}],
            "default_upstream": "origin",  # repos are bench/..., not an upstream prefix
            "policy": policy,
        }, **(extra or {}))
    return Server("ocigate", directory, config, "/readyz", lambda path: [binary, "serve", "--config", path])


def policy_check_ids(binary, workdir):
    """The check ids this ocigate build knows: it lists them when refusing an unknown one."""
    path = os.path.join(workdir, "probe-policy.yaml")
    with open(path, "w") as f:
        json.dump({"server": {"listen": "127.0.0.1:1"}, "storage": {"path": os.path.join(workdir, "probe")},
                   "upstreams": [{"name": "x", "url": "http://127.0.0.1:1"}],
                   "policy": {"checks": {"no-such-check-bench-probe": "off"}}}, f)
    try:
        out = subprocess.run([binary, "serve", "--config", path], capture_output=True, text=True, timeout=20,
                             stdin=subprocess.DEVNULL)
        m = re.search(r"unknown check \(known: ([^)]*)\)", out.stdout + out.stderr)
        if m:
            return [x.strip() for x in m.group(1).split(",") if x.strip()]
    except (OSError, subprocess.TimeoutExpired):
        pass
    log("could not read the check ids from ocigate; using the list known when this script was written")
    return FALLBACK_CHECK_IDS


def policy_off(check_ids):
    return {"mode": "audit", "checks": {c: "off" for c in check_ids}, "blob_access": "any", "layer_scan": "off"}


POLICY_ON = {"mode": "enforce"}  # every check at its default (block), blob_access: referenced


# ---------------------------------------------------------------------------------------------
# seeding the upstream through the registry HTTP API

class Pusher:
    def __init__(self, port):
        self.port = port
        self.conn = None

    def _conn(self):
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300, blocksize=1 << 20)
        return self.conn

    def call(self, method, path, body=None, headers=None):
        for attempt in (0, 1):
            conn = self._conn()
            try:
                conn.request(method, path, body=body, headers=headers or {})
                resp = conn.getresponse()
                data = resp.read()
                return resp.status, resp.headers, data
            except (http.client.HTTPException, OSError):
                conn.close()
                self.conn = None
                if attempt or not isinstance(body, (bytes, type(None))):
                    raise

    def push_blob(self, repo, body, digest, length):
        """body: bytes or a binary file object of `length` bytes (streamed, never held whole)."""
        status, headers, data = self.call("POST", f"/v2/{repo}/blobs/uploads/", body=b"")
        if status != 202:
            raise RuntimeError(f"upload start for {repo}: {status} {data[:200]!r}")
        location = urllib.parse.urlsplit(headers["Location"])
        query = (location.query + "&" if location.query else "") + "digest=" + urllib.parse.quote(digest)
        status, _, data = self.call("PUT", f"{location.path}?{query}", body=body,
                                    headers={"Content-Type": "application/octet-stream",
                                             "Content-Length": str(length)})
        if status != 201:
            raise RuntimeError(f"upload of {digest} to {repo}: {status} {data[:200]!r}")
        return digest

    def push_bytes(self, repo, data):
        return self.push_blob(repo, data, sha256(data), len(data))

    def push_manifest(self, repo, tag, body):
        status, _, data = self.call("PUT", f"/v2/{repo}/manifests/{tag}", body=body,
                                    headers={"Content-Type": OCI_MANIFEST})
        if status != 201:
            raise RuntimeError(f"manifest {repo}:{tag}: {status} {data[:200]!r}")
        return sha256(body)

    def push_image(self, repo, tag, layers):
        """layers: [(digest, size)] already pushed. The image is one the default policy allows
        (non-root user, a healthcheck, buildkit COPY history, recent, base pinned by digest), so that the gate-cost figure
        measures the gate's work, not a refusal."""
        created = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1)).strftime(
            "%Y-%m-%dT%H:%M:%SZ")
        config = {
            "architecture": "amd64", "os": "linux", "created": created,
            "config": {"User": "1000:1000", "Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/app"],
                       "Healthcheck": {"Test": ["CMD", "/app", "--health"]}},
            "rootfs": {"type": "layers", "diff_ids": [d for d, _ in layers]},
            "history": [{"created": created, "created_by": f"COPY app{i} /app # buildkit"}
                        for i in range(len(layers))],
        }
        config_bytes = json.dumps(config, sort_keys=True).encode()
        config_digest = self.push_bytes(repo, config_bytes)
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config_bytes)},
                    "layers": [{"mediaType": OCI_LAYER, "digest": d, "size": s} for d, s in layers],
                    "annotations": {"org.opencontainers.image.base.name": f"docker.io/library/debian@{BASE_DIGEST}",
                                    "org.opencontainers.image.base.digest": BASE_DIGEST}}
        body = json.dumps(manifest, indent=2).encode()
        return self.push_manifest(repo, tag, body), config_digest


BASE_DIGEST = "sha256:" + "b" * 64  # the (pretend) base image the seeded images declare


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def gzip_tar_layer(name, size):
    """A layer as a real tar+gzip (one file of `size` incompressible bytes, gzip level 1)."""
    import gzip
    import io
    import tarfile
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.uid, info.gid, info.mtime = size, 0o644, 1000, 1000, 1700000000
        tar.addfile(info, io.BytesIO(os.urandom(size)))
    return gzip.compress(raw.getvalue(), compresslevel=1, mtime=0)


class TextLayers:
    """Compressible tar+gzip layers (gzip -6, about 3x, like real filesystems): files cut from a pool of
    pseudo-text at random offsets, in pieces longer than gzip's 32 KiB window so no piece repeats within it."""

    PIECE = 64 * 1024

    def __init__(self, seed=7):
        import random
        self.rng = random.Random(seed)
        words = ["".join(self.rng.choice("abcdefghijklmnopqrstuvwxyz_/.0123456789") for _ in range(self.rng.randint(2, 12)))
                 for _ in range(4096)]
        text = " ".join(self.rng.choices(words, k=900_000)).encode()
        self.pool = text + os.urandom(len(text) // 12)  # some incompressible bytes, like binaries

    def content(self, size):
        out, left = [], size
        while left:
            n = min(self.PIECE, left)
            start = self.rng.randrange(0, len(self.pool) - n)
            out.append(self.pool[start:start + n])
            left -= n
        return b"".join(out)

    def layer(self, prefix, tar_bytes):
        """A tar+gzip layer holding about tar_bytes of files (16 KiB..4 MiB each, mode 0644/0755)."""
        import gzip
        import io
        import tarfile
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
            left, i = tar_bytes, 0
            while left > 0:
                size = min(left, self.rng.choice((16, 64, 256, 1024, 4096)) * 1024)
                info = tarfile.TarInfo(f"{prefix}/f{i:05d}")
                info.size, info.mode, info.uid, info.gid, info.mtime = size, self.rng.choice((0o644, 0o755)), 0, 0, 1700000000
                tar.addfile(info, io.BytesIO(self.content(size)))
                left -= size + 512
                i += 1
        return gzip.compress(raw.getvalue(), compresslevel=6, mtime=0)

    def small_sizes(self, count, largest):
        """count sizes, log-uniform from 64 KiB to largest."""
        import math
        lo, hi = math.log(64 * 1024), math.log(largest)
        return [int(math.exp(self.rng.uniform(lo, hi))) for _ in range(count)]


def make_random_file(path, size):
    """Incompressible bytes, hashed while written. Returns the digest."""
    h = hashlib.sha256()
    chunk = 16 * MiB
    with open(path, "wb") as f:
        left = size
        while left:
            data = os.urandom(min(chunk, left))
            h.update(data)
            f.write(data)
            left -= len(data)
    return "sha256:" + h.hexdigest()


def settle(workdir, touch=0):
    """Before a cold figure: sync(2), so the disk writeback of an earlier figure does not land in it, then
    write `touch` bytes to a scratch file and delete it. This benchmark's machines are VMs whose balloon device
    takes back memory the guest leaves free for a few seconds (free page reporting): the first write into
    such a page faults in the hypervisor, ~1.7 s of CPU per GiB here against ~0.15 s into pages in use (dd),
    and which pages a process's cache writes land in then decides the figure, not the process. The kernel
    hands out the scratch file's freed pages first, so every contestant writes into resident memory
    (bench/README.md, section "Cold blob, one client", says what it changes and by how much)."""
    os.sync()
    if touch <= 0:
        return
    path = os.path.join(workdir, "settle.scratch")
    chunk = bytes(8 * MiB)
    with open(path, "wb") as f:
        for _ in range(0, touch, len(chunk)):
            f.write(chunk)
    os.unlink(path)  # never written back: its dirty pages are dropped with it


class Seed:
    """What the upstream holds: bench/big:v1 (one big layer), bench/twenty:v1 (N equal layers),
    bench/small-NNN:v1 (one small layer each)."""

    def __init__(self, workdir, upstream_port, mode):
        self.mode = mode
        self.big_path = os.path.join(workdir, "big.bin")
        self.big_size = mode["big"]
        t0 = time.monotonic()
        self.big_digest = make_random_file(self.big_path, self.big_size)
        log(f"generated {self.big_size // MiB} MiB of random data in {time.monotonic() - t0:.1f} s")
        pusher = Pusher(upstream_port)
        t0 = time.monotonic()
        with open(self.big_path, "rb") as f:
            pusher.push_blob("bench/big", f, self.big_digest, self.big_size)
        self.big_manifest, _ = pusher.push_image("bench/big", "v1", [(self.big_digest, self.big_size)])
        layers = []
        for i in range(mode["layers"]):
            data = gzip_tar_layer(f"app/part{i}.bin", mode["layer"])  # a real tar+gzip: prefetch scans it
            layers.append((pusher.push_bytes("bench/twenty", data), len(data)))
        self.twenty_manifest, _ = pusher.push_image("bench/twenty", "v1", layers)
        self.twenty_layers = [digest for digest, _ in layers]
        log(f"pushed bench/big and bench/twenty in {time.monotonic() - t0:.1f} s")
        if "scan_big" in mode:  # --load has no prefetch figure
            self.push_scan_images(pusher, mode)
        t0 = time.monotonic()
        self.small = []  # (repo, manifest digest, layer digest)
        threads, lock = [], threading.Lock()
        names = [f"bench/small-{i:03d}" for i in range(mode["small"])]

        def worker(part):
            p = Pusher(upstream_port)
            for repo in part:
                layer = os.urandom(1024 + (hash(repo) % 3072))
                layer_digest = p.push_bytes(repo, layer)
                digest, _ = p.push_image(repo, "v1", [(layer_digest, len(layer))])
                with lock:
                    self.small.append((repo, digest, layer_digest))

        for k in range(4):
            t = threading.Thread(target=worker, args=(names[k::4],))
            t.start()
            threads.append(t)
        for t in threads:
            t.join()
        if len(self.small) != len(names):
            raise RuntimeError("seeding the small images failed")
        self.small.sort()
        log(f"pushed {len(self.small)} small images in {time.monotonic() - t0:.1f} s")

    def push_scan_images(self, pusher, mode):
        """bench/scan-big:v1 (one layer of mode["scan_big"] bytes of tar) and bench/scan-many:v1
        (mode["scan_layers"] small layers): the images of the prefetch figures."""
        t0 = time.monotonic()
        text = TextLayers()
        data = text.layer("srv/big", mode["scan_big"])
        self.scan_big_compressed = len(data)
        pusher.push_image("bench/scan-big", "v1", [(pusher.push_bytes("bench/scan-big", data), len(data))])
        del data
        layers = []
        for i, size in enumerate(text.small_sizes(mode["scan_layers"], mode["scan_small_max"])):
            data = text.layer(f"srv/l{i:02d}", size)
            layers.append((pusher.push_bytes("bench/scan-many", data), len(data)))
        self.scan_many_compressed = sum(n for _, n in layers)
        pusher.push_image("bench/scan-many", "v1", layers)
        log(f"pushed bench/scan-big ({self.scan_big_compressed / MiB:.0f} MiB gzip) and bench/scan-many "
            f"({len(layers)} layers, {self.scan_many_compressed / MiB:.0f} MiB gzip) in {time.monotonic() - t0:.1f} s")

    def write_path_files(self, workdir):
        files = {}
        lists = {
            "by_tag": [f"/v2/{repo}/manifests/v1" for repo, _, _ in self.small],
            "by_digest": [f"/v2/{repo}/manifests/{digest}" for repo, digest, _ in self.small],
            "blobs": [f"/v2/{repo}/blobs/{layer}" for repo, _, layer in self.small],
        }
        for name, paths in lists.items():
            path = os.path.join(workdir, f"paths-{name}.txt")
            with open(path, "w") as f:
                f.write("\n".join(paths) + "\n")
            files[name] = path
        return files, lists

    @property
    def big_path_url(self):
        return f"/v2/bench/big/blobs/{self.big_digest}"


# ---------------------------------------------------------------------------------------------
# load tools

class Tools:
    def __init__(self, workdir):
        self.blobget = os.path.join(workdir, "blobget")
        self.httpload = os.path.join(workdir, "httpload")
        self.loadmix = os.path.join(workdir, "loadmix")
        for name in ("blobget", "httpload", "loadmix"):
            subprocess.run(["cc", "-O2", "-pthread", "-o", os.path.join(workdir, name),
                            os.path.join(BENCH_DIR, name + ".c")], check=True, timeout=120)

    def get(self, port, path, clients, timeout=600):
        """blobget: clients concurrent GETs; returns its JSON (raises when any client failed)."""
        out = subprocess.run([self.blobget, "127.0.0.1", str(port), path, str(clients), str(timeout)],
                             capture_output=True, text=True, timeout=timeout + 30, stdin=subprocess.DEVNULL)
        result = json.loads(out.stdout)
        if result["failed"]:
            bad = [c for c in result["clients"] if c["status"] != 200 or c["error"]][:3]
            raise RuntimeError(f"GET {path} on :{port}: {result['failed']} of {clients} failed: {bad}")
        return result

    def load(self, port, paths_file, method, seconds, connections, threads, headers=()):
        """httpload: a closed loop of keep-alive requests; returns its JSON plus rps (raises on any error)."""
        cmd = [self.httpload, "127.0.0.1", str(port), paths_file, method, str(seconds), str(connections),
               str(threads), *headers]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, stdin=subprocess.DEVNULL)
        m = re.search(r"BENCH_JSON (\{.*\})", out.stdout)
        if not m:
            raise RuntimeError(f"httpload printed no result:\n{out.stdout}\n{out.stderr}")
        r = json.loads(m.group(1))
        errors = r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["status_errors"]
        if errors or r["requests"] == 0:
            raise RuntimeError(f"{method} load on :{port}: {errors} errors in {r['requests']} requests: {r}")
        r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
        return r


class Ceiling:
    """The same big file served by a trivial loopback sender: read the request head, write a
    response head, socket.sendfile() the file. One thread per connection."""

    def __init__(self, path, size):
        self.path, self.size = path, size
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        try:
            head = b""
            while b"\r\n\r\n" not in head:
                got = conn.recv(4096)
                if not got:
                    return
                head += got
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                         b"Content-Length: %d\r\nConnection: close\r\n\r\n" % self.size)
            with open(self.path, "rb") as f:
                conn.sendfile(f)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self.sock.close()


def curl_rate(port, path):
    """One GET with curl, the body to /dev/null: bytes/s."""
    out = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{time_total}",
                          f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True, timeout=600,
                         stdin=subprocess.DEVNULL)
    status, size, seconds = out.stdout.split()
    if out.returncode != 0 or status != "200":
        raise RuntimeError(f"curl: status {status}, exit {out.returncode}: {out.stderr.strip()[:200]}")
    return int(size) / float(seconds)


def skopeo_copy(port, ref, dest):
    cmd = ["skopeo", "--insecure-policy", "copy", "--src-tls-verify=false", f"docker://127.0.0.1:{port}/{ref}",
           "dir:" + dest]
    t0 = time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    seconds = time.monotonic() - t0
    shutil.rmtree(dest, ignore_errors=True)
    if out.returncode != 0:
        raise RuntimeError(f"skopeo copy {ref} from :{port} failed: {out.stderr[-1500:]}")
    return seconds


ACCESS_RE = re.compile(r'"GET (\S+) HTTP/1\.[01]" (\d{3}) (\d+)')


def upstream_blob_bytes(log_path, offset, blob_path):
    """Bytes the upstream docker-registry wrote for GETs of blob_path after `offset` in its log
    (the access log records the bytes actually written, so an aborted stream counts what it sent)."""
    total = gets = 0
    with open(log_path, "rb") as f:
        f.seek(offset)
        for raw in f:
            m = ACCESS_RE.search(raw.decode(errors="replace"))
            if m and m.group(1) == blob_path:
                gets += 1
                total += int(m.group(3))
    return total, gets


def settle_upstream(log_path, offset, blob_path, timeout=120):
    """Waits until the upstream's count of bytes for blob_path stops changing (a proxy may still be
    filling its cache after its clients are done)."""
    last, stable_since = None, time.monotonic()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = upstream_blob_bytes(log_path, offset, blob_path)
        if now != last:
            last, stable_since = now, time.monotonic()
        elif time.monotonic() - stable_since > 1.5:
            break
        time.sleep(0.25)
    return last


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def sequential_latencies(port, paths, headers):
    """One keep-alive connection, one GET after the other; seconds per request."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    out = []
    try:
        for path in paths:
            t0 = time.perf_counter()
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            resp.read()
            out.append(time.perf_counter() - t0)
            if resp.status != 200:
                raise RuntimeError(f"GET {path} on :{port}: {resp.status}")
    finally:
        conn.close()
    return out


# ---------------------------------------------------------------------------------------------
# the benchmark

class Bench:
    def __init__(self, args, workdir):
        self.args = args
        self.mode_name = "smoke" if args.smoke else "quick" if args.quick else "full"
        self.mode = dict(MODES[self.mode_name])
        if args.runs:
            self.mode["runs"] = args.runs
        self.workdir = workdir
        self.binary = args.ocigate
        self.samples = {}   # key -> {"ocigate": [...], "peer": [...], "extra": {...}}
        self.errors = []

    def add(self, key, who, value):
        self.samples.setdefault(key, {}).setdefault(who, []).append(value)

    def attempt(self, what, fn):
        """Runs one measurement; a failure is recorded (and fails the run) but does not stop the others."""
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - a failed measurement is reported, not fatal
            msg = f"{what}: {type(e).__name__}: {e}"
            log("ERROR", msg)
            self.errors.append(msg)
            return None

    def run(self):
        mode, wd = self.mode, self.workdir
        self.tools = Tools(wd)
        self.check_ids = policy_check_ids(self.binary, wd)
        self.off = policy_off(self.check_ids)

        self.upstream = registry(os.path.join(wd, "upstream")).start()
        log(f"upstream docker-registry on :{self.upstream.port}")
        self.seed = Seed(wd, self.upstream.port, mode)
        self.paths, self.path_lists = self.seed.write_path_files(wd)
        up_url = f"http://127.0.0.1:{self.upstream.port}"
        self.up_url = up_url

        self.ceiling = Ceiling(self.seed.big_path, self.seed.big_size)
        self.warm = {
            "ocigate": ocigate(self.binary, os.path.join(wd, "warm-ocigate"), up_url, self.off).start(),
            "peer": registry(os.path.join(wd, "warm-peer"), proxy_url=up_url).start(),
        }
        for who, server in self.warm.items():
            self.fill(server)
            log(f"warm {who} filled on :{server.port}")

        for r in range(mode["runs"]):
            order = ["ocigate", "peer"] if r % 2 == 0 else ["peer", "ocigate"]
            log(f"run {r + 1}/{mode['runs']} (order: {', '.join(order)})")
            self.warm_figures(order)
            self.cold_figures(order)
            self.gate_figures(r)
            self.prefetch_figures(r)
        self.layer_scan_figures()
        self.fetch_path_figures()
        self.ceiling.close()
        for server in self.warm.values():
            server.stop()
        self.upstream.stop()

    def run_load(self):
        """--load: 1,000 idle keep-alive connections held while 100 clients pull (80 fast, 20 slow
        readers), against one warm ocigate. Returns the loadmix JSON plus ocigate's memory."""
        wd, load = self.workdir, LOAD
        self.tools = Tools(wd)
        self.check_ids = policy_check_ids(self.binary, wd)
        self.off = policy_off(self.check_ids)
        self.upstream = registry(os.path.join(wd, "upstream")).start()
        self.seed = Seed(wd, self.upstream.port, self.mode)
        self.paths, self.path_lists = self.seed.write_path_files(wd)
        # The defaults would cut the test short: idle keep-alive connections close after 60 s
        # (idle_timeout), so it is raised above the run's length; the per-address connection
        # limit is off by default, and set here explicitly above idle + active (all clients are 127.0.0.1).
        server_keys = {"idle_timeout": "600s", "max_connections_per_client": load["idle"] + 2 * (load["fast"] + load["slow"])}
        gate = ocigate(self.binary, os.path.join(wd, "load-ocigate"), f"http://127.0.0.1:{self.upstream.port}",
                       self.off, server=server_keys).start()
        self.fill(gate)
        # The mix: per 2 MiB layer of bench/twenty, 4 manifests by tag, 1 by digest, 1 small blob.
        mix, small = [], self.seed.small
        for i, layer in enumerate(self.seed.twenty_layers):
            mix.append(f"/v2/bench/twenty/blobs/{layer}")
            for k in range(4):
                repo = small[(4 * i + k) % len(small)][0]
                mix.append(f"/v2/{repo}/manifests/v1")
            repo, digest, blob = small[i % len(small)]
            mix += [f"/v2/{repo}/manifests/{digest}", f"/v2/{repo}/blobs/{blob}"]
        conn = http.client.HTTPConnection("127.0.0.1", gate.port, timeout=60)
        for path in mix:  # warm
            conn.request("GET", path, headers={"Accept": OCI_ACCEPT})
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                raise RuntimeError(f"warming GET {path}: {resp.status}")
        conn.close()
        mix_file = os.path.join(wd, "paths-load.txt")
        with open(mix_file, "w") as f:
            f.write("\n".join(mix) + "\n")
        rss_before = gate.peak_rss_mib()
        log(f"ocigate warm on :{gate.port} (VmHWM {rss_before:.0f} MiB); {load['idle']} idle connections, "
            f"{load['fast']} fast + {load['slow']} slow clients, {load['seconds']} s per phase")
        cmd = [self.tools.loadmix, "127.0.0.1", str(gate.port), mix_file, str(load["idle"]), str(load["fast"]),
               str(load["slow"]), str(load["seconds"]), str(load["slow_kib_s"]), f"Accept: {OCI_ACCEPT}"]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=4 * load["seconds"] + 300,
                             stdin=subprocess.DEVNULL)
        m = re.search(r"LOADMIX_JSON (\{.*\})", out.stdout)
        if not m:
            raise RuntimeError(f"loadmix printed no result (exit {out.returncode}):\n{out.stdout}\n{out.stderr}")
        r = json.loads(m.group(1))
        r["exit"] = out.returncode
        r["ocigate_vmhwm_mib_warm"] = rss_before
        r["ocigate_vmhwm_mib"] = gate.peak_rss_mib()
        with open(f"/proc/{gate.pid}/status") as f:
            r["ocigate_vmrss_mib_end"] = int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1)) / 1024
        r["ocigate_alive"] = gate.proc.poll() is None if hasattr(gate, "proc") else None
        r["config"] = {"server": server_keys, "load": load, "layer_mib": self.mode["layer"] / MiB}
        gate.stop()
        self.upstream.stop()
        return r

    def fill(self, server):
        """Pulls everything the warm figures read, so they measure the cache."""
        self.tools.get(server.port, self.seed.big_path_url, 1)
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        try:
            for kind in ("by_tag", "by_digest", "blobs"):
                for path in self.path_lists[kind]:
                    conn.request("GET", path, headers={"Accept": OCI_ACCEPT})
                    resp = conn.getresponse()
                    resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"filling {server.kind}: GET {path}: {resp.status}")
        finally:
            conn.close()

    # ---- warm: blob throughput, memory, manifest and HEAD rates ----

    def warm_figures(self, order):
        big = self.seed.big_path_url
        for who in order:
            self.warm[who].restart()  # fresh process on the warm storage: VmHWM counts this run only
        # 16 clients first, so each process's VmHWM afterwards is the peak of the 16-client pull.
        for who in order:
            server = self.warm[who]
            r = self.attempt(f"warm 16 clients {who}", lambda: self.tools.get(server.port, big, CONCURRENT))
            if r:
                self.add("warm16", who, r["bytes_per_second"])
                self.add("rss_warm16", who, server.peak_rss_mib())
        r = self.attempt("ceiling 16 clients", lambda: self.tools.get(self.ceiling.port, "/", CONCURRENT))
        if r:
            self.add("warm16", "ceiling", r["bytes_per_second"])
        for who in order:
            server = self.warm[who]
            r = self.attempt(f"warm 1 client {who}", lambda: self.tools.get(server.port, big, 1))
            if r:
                self.add("warm1", who, r["bytes_per_second"])
        r = self.attempt("ceiling 1 client", lambda: self.tools.get(self.ceiling.port, "/", 1))
        if r:
            self.add("warm1", "ceiling", r["bytes_per_second"])
        for who in order:  # the same with a standard client: a user's figure, not only our load tool's
            rate = self.attempt(f"warm 1 client curl {who}", lambda: curl_rate(self.warm[who].port, big))
            if rate:
                self.add("warm1_curl", who, rate)
        for key, paths, method in (("manifest_tag", "by_tag", "GET"), ("manifest_digest", "by_digest", "GET"),
                                   ("head_blob", "blobs", "HEAD")):
            for who in order:
                server = self.warm[who]
                r = self.attempt(f"{key} {who}", lambda: self.tools.load(
                    server.port, self.paths[paths], method, self.mode["load_s"], MANIFEST_CONNS, 2,
                    headers=[f"Accept: {OCI_ACCEPT}"]))
                if r:
                    self.add(key, who, r)

    # ---- cold: first byte, cold throughput, skopeo overhead, single-flight, memory ----

    def fresh(self, who, name, touch):
        """A proxy on an empty storage, started after settle(): `touch` is about twice what the figure caches."""
        directory = os.path.join(self.workdir, f"cold-{who}-{name}")
        shutil.rmtree(directory, ignore_errors=True)
        settle(self.workdir, touch)
        if who == "ocigate":
            return ocigate(self.binary, directory, self.up_url, self.off).start()
        return registry(directory, proxy_url=self.up_url).start()

    def twenty_touch(self):
        """What settle() touches before a copy of bench/twenty: twice its layers for the proxy's cache and
        skopeo's `dir:` copy each."""
        return 4 * self.mode["layers"] * self.mode["layer"]

    def cold_figures(self, order):
        big = self.seed.big_path_url
        self.add("sha256", "one core", sha256_rate())
        os.sync()
        # Straight from the upstream: the reference for first byte.
        r = self.attempt("direct cold GET", lambda: self.tools.get(self.upstream.port, big, 1))
        if r:
            self.add("ttfb", "direct", r["clients"][0]["ttfbb"])
            self.add("cold1", "direct", r["bytes_per_second"])
        for who in order:
            server = self.attempt(f"start cold {who}", lambda: self.fresh(who, "single", 2 * self.seed.big_size))
            if not server:
                continue
            r = self.attempt(f"cold 1 client {who}", lambda: self.tools.get(server.port, big, 1))
            if r:
                self.add("ttfb", who, r["clients"][0]["ttfbb"])
                self.add("cold1", who, r["bytes_per_second"])
            server.destroy()
        self.skopeo_figures(order)
        for who in order:
            server = self.attempt(f"start cold {who}", lambda: self.fresh(who, "flight", 2 * self.seed.big_size))
            if not server:
                continue
            offset = os.path.getsize(self.upstream.log_path)
            r = self.attempt(f"cold {CONCURRENT} clients {who}", lambda: self.tools.get(server.port, big, CONCURRENT))
            if r:
                self.add("cold16", who, r["bytes_per_second"])
                self.add("rss_cold16", who, server.peak_rss_mib())
                sent, gets = settle_upstream(self.upstream.log_path, offset, big)
                self.add("single_flight", who, sent / self.seed.big_size)
                self.add("single_flight_gets", who, gets)
            server.destroy()

    def skopeo_figures(self, order):
        """`skopeo copy` of the 20-layer image straight from the upstream, then through each proxy fresh,
        interleaved, `copies` times a run: a copy takes about a second, and one copy a run left the figure
        to one noisy second of a shared host."""
        dest = os.path.join(self.workdir, "copy")
        for _ in range(self.mode["copies"]):
            settle(self.workdir, self.twenty_touch())  # as fresh() does before each proxy
            direct = self.attempt("skopeo direct", lambda: skopeo_copy(self.upstream.port, "bench/twenty:v1", dest))
            if direct:
                self.add("skopeo", "direct", direct)
            for who in order:
                server = self.attempt(f"start cold {who}", lambda: self.fresh(who, "skopeo", self.twenty_touch()))
                if not server:
                    continue
                t = self.attempt(f"skopeo via {who}", lambda: skopeo_copy(server.port, "bench/twenty:v1", dest))
                if t:
                    self.add("skopeo", who, t)
                server.destroy()

    # ---- layer scan: the standalone scanner (bench/layer_scan.cpp), and the prefetch cost in a first pull ----

    def layer_scan_figures(self):
        binary = self.args.layer_scan
        if not binary or not os.access(binary, os.X_OK):
            log("no layer-scan program (bench/run builds it); layer-scan rows are n/a")
            return
        # one 256 MiB layer, then an image of 50 small layers (64 KiB..8 MiB of tar each)
        mib, image_mib = {"full": (256, 8), "quick": (256, 8), "smoke": (16, 1)}[self.mode_name]
        cmd = [binary, str(mib), "--image-mib", str(image_mib)]

        def run():
            out = subprocess.run(["taskset", "-c", "0"] + cmd if shutil.which("taskset") else cmd,
                                 capture_output=True, text=True, timeout=1800,
                                 stdin=subprocess.DEVNULL, check=True)
            return json.loads(out.stdout)
        res = self.attempt("layer scan", run)
        if res:
            self.gzip_engine = res.get("gzip_engine")
            for fmt in ("gzip", "zstd", "image50_gzip", "image50_zstd"):
                if res.get(fmt):
                    self.add("layer_scan", fmt, res[fmt])

    # ---- the cold fetch path without sockets (bench/fetch_path.cpp): hash inline vs piped ----

    def fetch_path_figures(self):
        binary = self.args.fetch_path
        if not binary or not os.access(binary, os.X_OK):
            log("no fetch-path program (bench/run builds it); fetch-path row is n/a")
            return
        mib = {"full": 1024, "quick": 1024, "smoke": 64}[self.mode_name]
        cmd = [binary, str(mib), self.workdir]

        def run():
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL, check=True)
            return json.loads(out.stdout)
        for _ in range(1 if self.mode_name == "smoke" else self.mode["runs"]):
            res = self.attempt("fetch path", run)
            if res:
                self.add("fetch_path", "inline", res["inline_gib_s"] * GiB)
                self.add("fetch_path", "piped", res["piped_gib_s"] * GiB)

    # (sample key, image): the prefetch figure's images, each pulled once per run through a fresh ocigate
    PREFETCH_IMAGES = (("prefetch_first_pull", "bench/twenty:v1"), ("prefetch_big", "bench/scan-big:v1"),
                       ("prefetch_many", "bench/scan-many:v1"))

    def prefetch_figures(self, run):
        if "no-setuid" not in self.check_ids:
            log("this ocigate has no no-setuid check; prefetch figure skipped")
            return
        order = ["prefetch", "off"]
        if run % 2:
            order.reverse()
        for key, image in self.PREFETCH_IMAGES:
            for scan in order:
                t = self.first_pull(scan, image)
                if t:
                    self.add(key, scan, t)

    def first_pull(self, scan, image):
        """Seconds of a skopeo copy of image through a fresh ocigate with layer_scan: scan and no-setuid: block."""
        policy = dict(self.off, mode="enforce", layer_scan=scan)
        policy["checks"] = dict(self.off["checks"], **{"no-setuid": "block"})
        directory = os.path.join(self.workdir, f"scan-{scan}")
        shutil.rmtree(directory, ignore_errors=True)
        settle(self.workdir, 2 * self.mode["scan_big"])  # twice the tar: the cache and skopeo's copy hold less
        server = self.attempt(f"start scan {scan}", lambda: ocigate(self.binary, directory, self.up_url,
                                                                    policy).start())
        if not server:
            return None
        try:
            return self.attempt(f"skopeo {image}, layer_scan {scan}",
                                lambda: skopeo_copy(server.port, image, os.path.join(self.workdir, "copy")))
        finally:
            server.destroy()

    # ---- gate cost: ocigate with the policy on (enforce, default checks) vs off ----

    def gate_figures(self, run):
        order = [("on", POLICY_ON), ("off", self.off)]
        if run % 2:
            order.reverse()
        small = self.seed.small
        # At most 100 first pulls per instance: each costs an upstream round trip or two (plus the gate).
        tag_paths = [f"/v2/{repo}/manifests/v1" for repo, _, _ in small][:100]
        gate_paths_file = os.path.join(self.workdir, "paths-gate.txt")  # the same, for the verdict-cache hits
        with open(gate_paths_file, "w") as f:
            f.write("\n".join(tag_paths) + "\n")
        for copy in range(self.mode["copies"]):
            for name, policy in order:
                self.gate_instance(name, policy, tag_paths, gate_paths_file, copy == 0)

    def gate_instance(self, name, policy, tag_paths, gate_paths_file, with_manifests):
        """A fresh ocigate with the policy on or off: first its cold `skopeo copy`, then (once a run) the first
        manifest GETs of other images and the verdict-cache hits."""
        directory = os.path.join(self.workdir, f"gate-{name}")
        shutil.rmtree(directory, ignore_errors=True)
        settle(self.workdir, self.twenty_touch())
        server = self.attempt(f"start gate {name}", lambda: ocigate(self.binary, directory, self.up_url, policy).start())
        if not server:
            return
        t = self.attempt(f"skopeo, policy {name}", lambda: skopeo_copy(server.port, "bench/twenty:v1",
                                                                       os.path.join(self.workdir, "copy")))
        if t:
            self.add("gate_first_pull", name, t)
        if with_manifests:
            lat = self.attempt(f"first manifest GETs, policy {name}",
                               lambda: sequential_latencies(server.port, tag_paths, {"Accept": OCI_ACCEPT}))
            if lat:
                self.add("gate_first_manifest", name, median(lat))
            # HEAD, not GET: the figure is the gate's lookup, not the body write (kept comparable with the
            # runs of builds that had a 40 ms Nagle stall on small GET bodies).
            r = self.attempt(f"verdict-cache hits, policy {name}", lambda: self.tools.load(
                server.port, gate_paths_file, "HEAD", self.mode["hit_s"], 1, 1,
                headers=[f"Accept: {OCI_ACCEPT}"]))
            if r:
                self.add("gate_hit", name, r)
        server.destroy()


def sha256_rate(seconds=1.5):
    """This machine's SHA-256 rate on one core, bytes/s: a verified single stream cannot pass it
    (hashlib is OpenSSL's, as ocigate's; 256 KiB updates, as its fetch pieces)."""
    piece, done = os.urandom(256 * 1024), 0
    h = hashlib.sha256()
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(64):
            h.update(piece)
        done += 64 * len(piece)
    return done / (time.perf_counter() - start)


# ---------------------------------------------------------------------------------------------
# the table

def gib_s(v):
    return f"{v / GiB:.2f} GiB/s" if v is not None else "—"


def fmt_ratio(r):
    return f"{r:.2f}×" if r is not None else "—"


def ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None


def build_table(bench):
    s = bench.samples
    rows = []  # (key, figure, ocigate text, peer text, ratio text, target text, met (True/False/None), data)

    def med(key, who, field=None):
        vals = s.get(key, {}).get(who, [])
        if field:
            vals = [v[field] for v in vals if v is not None]
        return median(vals)

    def met(*conds):
        if any(c is None for c in conds):
            return None
        return all(conds)

    for key, label in (("warm1", "warm blob, 1 client"), ("warm16", f"warm blob, {CONCURRENT} clients (aggregate)")):
        o, p, c = med(key, "ocigate"), med(key, "peer"), med(key, "ceiling")
        pct = lambda v: f" ({100 * v / c:.0f}% of ceiling)" if v is not None and c else ""
        rr = ratio(o, p)
        rows.append((key, label, gib_s(o) + pct(o), gib_s(p) + pct(p), fmt_ratio(rr), "≥ 1.2× and ≥ 75% of ceiling",
                     met(rr is not None and rr >= 1.2, o is not None and c and o / c >= 0.75),
                     {"ocigate": o, "peer": p, "ceiling": c}))
    o, p = med("warm1_curl", "ocigate"), med("warm1_curl", "peer")
    rows.append(("warm1_curl", "warm blob, 1 client, curl", gib_s(o), gib_s(p), fmt_ratio(ratio(o, p)), "—", None,
                 {"ocigate": o, "peer": p}))
    for key, label in (("warm1", "ceiling: loopback sendfile, 1 client"),
                       ("warm16", f"ceiling: loopback sendfile, {CONCURRENT} clients")):
        c = med(key, "ceiling")
        rows.append((key + "_ceiling", label, gib_s(c), gib_s(c), "—", "(reference)", None, {"ceiling": c}))

    # A verified single stream is bound by the upstream's rate and by SHA-256 on one core: its
    # share of the lower of the two is the figure to push toward (issue #26: aim ≥ 85%).
    o, p, d, h = med("cold1", "ocigate"), med("cold1", "peer"), med("cold1", "direct"), med("sha256", "one core")
    rr, bound = ratio(o, p), min(d, h) if d and h else None
    share = f" ({100 * o / bound:.0f}% of the bound)" if o and bound else ""
    rows.append(("cold1", "cold blob, 1 client", gib_s(o) + share, gib_s(p), fmt_ratio(rr),
                 f"≥ 1.0×; aim ≥ 85% of the bound min(direct from upstream {gib_s(d)}, SHA-256 on one core {gib_s(h)})",
                 met(rr is not None and rr >= 1.0), {"ocigate": o, "peer": p, "direct": d, "sha256": h}))
    o, i = med("fetch_path", "piped"), med("fetch_path", "inline")
    rows.append(("fetch_path", "cold fetch path without sockets (hash + cache write), piped ÷ inline hash",
                 f"{gib_s(o)} piped, {gib_s(i)} inline" if o and i else "n/a (fetch-path program not built)",
                 "n/a", fmt_ratio(ratio(o, i)), "— (what the cold path allows with a core to spare)", None,
                 {"piped": o, "inline": i}))
    o, p = med("cold16", "ocigate"), med("cold16", "peer")
    rows.append(("cold16", f"cold blob, {CONCURRENT} clients (aggregate)", gib_s(o), gib_s(p), fmt_ratio(ratio(o, p)),
                 "—", None, {"ocigate": o, "peer": p}))

    d = med("ttfb", "direct")
    o = med("ttfb", "ocigate")
    p = med("ttfb", "peer")
    od = (o - d) * 1000 if o is not None and d is not None else None
    pd = (p - d) * 1000 if p is not None and d is not None else None
    rows.append(("ttfb", "first-byte latency, cold blob (proxy − direct)",
                 f"{od:+.2f} ms" if od is not None else "—", f"{pd:+.2f} ms" if pd is not None else "—",
                 fmt_ratio(ratio(od, pd)) if od is not None and pd and pd > 0 else "—",
                 f"— (direct: {d * 1000:.2f} ms)" if d is not None else "—", None,
                 {"ocigate_ms": od, "peer_ms": pd, "direct_ms": d * 1000 if d is not None else None}))

    for key, label, want in (("manifest_tag", "manifest GET by tag (32 conns)", 10),
                             ("manifest_digest", "manifest GET by digest (32 conns)", 5),
                             ("head_blob", "HEAD blob (32 conns)", 5)):
        o, p = med(key, "ocigate", "rps"), med(key, "peer", "rps")
        o99, p99 = med(key, "ocigate", "p99_us"), med(key, "peer", "p99_us")
        o50, p50 = med(key, "ocigate", "p50_us"), med(key, "peer", "p50_us")

        def txt(rps, q50, q99):
            if rps is None:
                return "—"
            return f"{rps:,.0f} req/s (p50 {q50 / 1000:.2f} / p99 {q99 / 1000:.2f} ms)"
        rr = ratio(o, p)
        manifest = key != "head_blob"
        target = f"≥ {want}×" + (", p99 ≤ 10 ms" if manifest else "")
        rows.append((key, label, txt(o, o50, o99), txt(p, p50, p99), fmt_ratio(rr), target,
                     met(rr is not None and rr >= want, (o99 is not None and o99 <= 10000) if manifest else True),
                     {"ocigate_rps": o, "peer_rps": p, "ocigate_p50_us": o50, "ocigate_p99_us": o99,
                      "peer_p50_us": p50, "peer_p99_us": p99}))

    d = med("skopeo", "direct")
    o, p = med("skopeo", "ocigate"), med("skopeo", "peer")
    oo, pp = ratio(o, d), ratio(p, d)
    n = bench.mode["layers"]
    rows.append(("skopeo", f"cold pull overhead (skopeo copy, {n} layers) ÷ direct",
                 f"{fmt_ratio(oo)} ({o:.2f} s)" if o else "—", f"{fmt_ratio(pp)} ({p:.2f} s)" if p else "—",
                 fmt_ratio(ratio(o, p)), f"≤ 1.10× (direct: {d:.2f} s)" if d else "≤ 1.10×",
                 met(oo is not None and oo <= 1.10), {"ocigate_s": o, "peer_s": p, "direct_s": d}))

    o, p = med("single_flight", "ocigate"), med("single_flight", "peer")
    og, pg = med("single_flight_gets", "ocigate"), med("single_flight_gets", "peer")
    rows.append(("single_flight", f"single-flight: upstream bytes ÷ blob size, {CONCURRENT} cold clients",
                 f"{o:.2f}× ({og:.0f} GETs)" if o is not None else "—",
                 f"{p:.2f}× ({pg:.0f} GETs)" if p is not None else "—", fmt_ratio(ratio(o, p)), "≤ 1.05×",
                 met(o is not None and o <= 1.05), {"ocigate": o, "peer": p, "ocigate_gets": og, "peer_gets": pg}))

    for key, label in (("rss_cold16", f"peak RSS, {CONCURRENT} concurrent cold pulls"),
                       ("rss_warm16", f"peak RSS, {CONCURRENT} concurrent warm pulls")):
        o, p = med(key, "ocigate"), med(key, "peer")
        rows.append((key, label, f"{o:.0f} MiB" if o is not None else "—", f"{p:.0f} MiB" if p is not None else "—",
                     fmt_ratio(ratio(o, p)), "≤ 128 MiB", met(o is not None and o <= 128), {"ocigate": o, "peer": p}))

    on, off = med("gate_first_pull", "on"), med("gate_first_pull", "off")
    rr = ratio(on, off)
    rows.append(("gate_first_pull", f"gate cost: first pull ({n} layers), policy on ÷ off",
                 f"{fmt_ratio(rr)} ({on:.2f} s vs {off:.2f} s)" if rr else "—", "n/a (no gate)", "—", "≤ 1.10×",
                 met(rr is not None and rr <= 1.10), {"on_s": on, "off_s": off}))
    on, off = med("gate_first_manifest", "on"), med("gate_first_manifest", "off")
    rows.append(("gate_first_manifest", "gate cost: first manifest GET, on − off (median)",
                 f"{(on - off) * 1000:+.2f} ms ({on * 1000:.2f} vs {off * 1000:.2f} ms)" if on and off else "—",
                 "n/a (no gate)", "—", "—", None,
                 {"on_ms": on * 1000 if on else None, "off_ms": off * 1000 if off else None}))
    on, off = med("gate_hit", "on", "p50_us"), med("gate_hit", "off", "p50_us")
    added = (on - off) / 1000 if on is not None and off is not None else None
    rows.append(("gate_hit", "gate cost: verdict-cache hit, added p50 latency (HEAD by tag, 1 conn)",
                 f"{added:+.3f} ms ({on / 1000:.3f} vs {off / 1000:.3f} ms)" if added is not None else "—",
                 "n/a (no gate)", "—", "≤ 0.2 ms", met(added is not None and added <= 0.2),
                 {"on_p50_us": on, "off_p50_us": off, "added_ms": added}))
    seed = getattr(bench, "seed", None)
    images = {"prefetch_first_pull": f"{n} layers, tar of random bytes",
              "prefetch_big": "1 layer of {:.0f} MiB tar".format(bench.mode["scan_big"] / MiB),
              "prefetch_many": "{} small layers".format(bench.mode["scan_layers"])}
    if seed and hasattr(seed, "scan_big_compressed"):
        images["prefetch_big"] += f", {seed.scan_big_compressed / MiB:.0f} MiB gzip"
        images["prefetch_many"] += f", {seed.scan_many_compressed / MiB:.0f} MiB gzip"
    for key, what in images.items():
        pf, off = med(key, "prefetch"), med(key, "off")
        rows.append((key, f"layer scan: first pull ({what}), prefetch − off (no-setuid: block)",
                     f"{pf - off:+.2f} s, {pf / off:.2f}× ({pf:.2f} s vs {off:.2f} s)" if pf and off else "—",
                     "n/a (no gate)", "—", "—", None, {"prefetch_s": pf, "off_s": off}))
    engine = getattr(bench, "gzip_engine", None)
    for fmt, what in (("gzip", "gzip"), ("zstd", "zstd"), ("image50_gzip", "gzip, 50 small layers"),
                      ("image50_zstd", "zstd, 50 small layers")):
        vals = s.get("layer_scan", {}).get(fmt, [])
        cpu = median([v["mb_s_cpu"] for v in vals])
        wall = median([v["mb_s_wall"] for v in vals])
        if vals:
            v = vals[0]
            size = (f"{v['tar_bytes'] / MiB:.0f} MiB tar in {v['layers']} layer(s), "
                    f"{v['compressed_bytes'] / MiB:.0f} MiB compressed, {v['ratio']:.2f}×")
        if "gzip" in fmt and engine:
            what += f", {engine}"
        rows.append((f"layer_scan_{fmt}", f"layer scan, {what}, 1 core (MB/s of compressed input)",
                     f"{cpu:,.0f} MB/s per CPU-second ({wall:,.0f} MB/s wall; {size})"
                     if cpu is not None else "n/a (layer-scan program not built)", "n/a", "—", "—", None,
                     {"mb_s_cpu": cpu, "mb_s_wall": wall, "gzip_engine": engine if "gzip" in fmt else None}))
    return rows


def render_table(rows):
    header = ["figure", "ocigate", "peer (Distribution proxy)", "ratio", "target", "met?"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, label, o, p, r, target, ok, _ in rows:
        mark = "—" if ok is None else ("yes" if ok else "**no**")
        lines.append(f"| {label} | {o} | {p} | {r} | {target} | {mark} |")
    return "\n".join(lines)


def run_span(started):
    """'YYYY-MM-DD HH:MM-HH:MM UTC' from the run's start (a monotonic time) to now: drift on a shared
    host shows in it."""
    end = datetime.datetime.now(datetime.timezone.utc)
    start = end - datetime.timedelta(seconds=time.monotonic() - started)
    return f"{start:%Y-%m-%d %H:%M}-{end:%H:%M} UTC"


def write_outputs(bench, rows, started, update_readme):
    date = run_span(started)
    cores = os.cpu_count()
    mode = bench.mode
    table = render_table(rows)
    sizes = (f"big blob {mode['big'] // MiB} MiB, {mode['layers']} × {mode['layer'] / MiB:g} MiB layers, "
             f"{mode['small']} small images")
    heading = (f"Mode `{bench.mode_name}`, {mode['runs']} run(s) (medians), {cores} cores, {date}; {sizes}; "
               f"{mode['load_s']} s per rate; {time.monotonic() - started:.0f} s in all.")
    print()
    print(heading)
    print()
    print(table)
    if bench.errors:
        print("\nmeasurement errors:")
        for e in bench.errors:
            print("  - " + e)
    doc = {
        "date": date, "cores": cores, "mode": bench.mode_name, "runs": mode["runs"], "sizes": mode,
        "concurrent_clients": CONCURRENT, "manifest_connections": MANIFEST_CONNS,
        "peer": "docker-registry 2.8.2 (CNCF Distribution) in proxy mode",
        "policy_check_ids": bench.check_ids,
        "figures": [{"key": k, "figure": label, "ocigate": o, "peer": p, "ratio": r, "target": t, "met": ok,
                     "values": data} for k, label, o, p, r, t, ok, data in rows],
        "samples": bench.samples, "errors": bench.errors, "table": table,
    }
    results = SMOKE_RESULTS if bench.mode_name == "smoke" else RESULTS
    os.makedirs(os.path.dirname(results), exist_ok=True)
    with open(results, "w") as f:
        json.dump(doc, f, indent=1, default=str)
        f.write("\n")
    if update_readme and os.path.exists(README):
        with open(README) as f:
            text = f.read()
        if MARK_BEGIN in text and MARK_END in text:
            before, rest = text.split(MARK_BEGIN, 1)
            _, after = rest.split(MARK_END, 1)
            errors = ""
            if bench.errors:
                errors = "\nMeasurement errors in this run:\n" + "".join(f"- {e}\n" for e in bench.errors)
            section = f"{MARK_BEGIN}\n{heading}\n\n{table}\n{errors}{MARK_END}"
            with open(README, "w") as f:
                f.write(before + section + after)
        else:
            log("bench/README.md has no results markers; not rewritten")


def rewrite_readme_section(begin, end, body, what):
    """Replaces what lies between the markers begin and end in bench/README.md with body."""
    with open(README) as f:
        text = f.read()
    if begin not in text or end not in text:
        log(f"bench/README.md has no {what} markers; not rewritten")
        return
    before, rest = text.split(begin, 1)
    _, after = rest.split(end, 1)
    with open(README, "w") as f:
        f.write(before + f"{begin}\n{body}{end}" + after)


def raise_nofile(need):
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            raise SystemExit(f"bench: --load needs {need} open files, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def load_main(args, started):
    """bench/run --load: runs the load figure, prints it, writes results/load.json and the README section."""
    nofile = raise_nofile(LOAD["idle"] + LOAD["fast"] + LOAD["slow"] + 1024)  # inherited by ocigate too
    args.smoke = args.quick = False
    bench = Bench(args, _workdir)
    bench.mode = dict(LOAD_MODE)
    bench.mode_name = "load"
    try:
        r = bench.run_load()
    finally:
        _cleanup()
    r["nofile_soft_limit_script"] = nofile
    date = run_span(started)
    r["date"], r["cores"] = date, os.cpu_count()
    a, m = r["phases"]["alone"], r["phases"]["mixed"]
    errors = a["errors"] + m["errors"] + m["slow_errors"] + r["idle_open_errors"]
    ms = lambda us: f"{us / 1000:.1f}"
    rows = [
        ("idle keep-alive connections held", f"{r['idle_opened']} of {r['idle_requested']} opened; "
         f"{r['idle_alive_after']} still open and {r['idle_answered_after']} answering after both phases"),
        ("errors (fast clients, slow clients, idle opens)", f"{a['errors'] + m['errors']}, {m['slow_errors']}, {r['idle_open_errors']}"),
        ("fast clients alone: throughput", f"{a['mb_s']:.0f} MB/s, {a['rps']:.0f} req/s ({a['fast_clients']} clients)"),
        ("fast clients with slow ones: throughput", f"{m['mb_s']:.0f} MB/s, {m['rps']:.0f} req/s "
         f"({m['fast_clients']} fast + {m['slow_clients']} slow at {LOAD['slow_kib_s']} KiB/s)"),
        ("manifest GET latency p50 / p99, alone → with slow", f"{ms(a['manifest']['p50_us'])} / {ms(a['manifest']['p99_us'])} ms → "
         f"{ms(m['manifest']['p50_us'])} / {ms(m['manifest']['p99_us'])} ms"),
        (f"blob GET latency p50 / p99 ({r['config']['layer_mib']:g} MiB and 1-4 KiB blobs), alone → with slow",
         f"{ms(a['blob']['p50_us'])} / {ms(a['blob']['p99_us'])} ms → {ms(m['blob']['p50_us'])} / {ms(m['blob']['p99_us'])} ms"),
        ("slow readers", f"{m['slow_kib_s_each']:.0f} KiB/s each, {m['slow_bytes'] / MiB:.0f} MiB in all"),
        ("ocigate peak RSS (VmHWM)", f"{r['ocigate_vmhwm_mib']:.0f} MiB (warm, before the load: {r['ocigate_vmhwm_mib_warm']:.0f} MiB; "
         f"VmRSS at the end {r['ocigate_vmrss_mib_end']:.0f} MiB)"),
    ]
    table = "| figure | ocigate |\n|---|---|\n" + "".join(f"| {k} | {v} |\n" for k, v in rows)
    heading = (f"`bench/run --load`, {r['cores']} cores, {date}; {LOAD['seconds']} s per phase; "
               f"{time.monotonic() - started:.0f} s in all; errors: {errors}.")
    print("\n" + heading + "\n\n" + table)
    os.makedirs(os.path.dirname(LOAD_RESULTS), exist_ok=True)
    with open(LOAD_RESULTS, "w") as f:
        json.dump(r, f, indent=1)
        f.write("\n")
    if not args.no_readme and os.path.exists(README):
        with open(README) as f:
            text = f.read()
        if LOAD_BEGIN in text and LOAD_END in text:
            before, rest = text.split(LOAD_BEGIN, 1)
            _, after = rest.split(LOAD_END, 1)
            with open(README, "w") as f:
                f.write(before + f"{LOAD_BEGIN}\n{heading}\n\n{table}{LOAD_END}" + after)
        else:
            log("bench/README.md has no load markers; not rewritten")
    ok = errors == 0 and r["exit"] == 0 and r["idle_answered_after"] == r["idle_requested"]
    return 0 if ok else 1


# ---------------------------------------------------------------------------------------------
# --vulndb: the vulnerabilities check's costs (issue #22)

def dpkg_status(packages):
    """A dpkg status file of the inventory vulndb_gen.py writes."""
    return "".join(f"Package: {p['name']}\nStatus: install ok installed\nArchitecture: amd64\nSource: {p['source']}\n"
                   f"Version: {p['version']}\n\n" for p in packages).encode()


def files_layer(files):
    """A tar+gzip layer of {path: bytes}."""
    import gzip
    import io
    import tarfile
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, data in sorted(files.items()):
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), 0o644, 1700000000
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), compresslevel=6, mtime=0)


def vulndb_policy(check_ids, on):
    """Only layer inspection and, when on, the vulnerabilities check (warn: the pull completes whatever
    it finds, and the match costs the same as under block)."""
    checks = {c: "off" for c in check_ids}
    if on:
        checks["vulnerabilities"] = {"action": "warn", "min_severity": "low"}
    return {"mode": "enforce", "checks": checks, "blob_access": "any", "layer_scan": "prefetch"}


def vulndb_first_pull(args, wd, up_url, db, on, check_ids):
    """Seconds of a skopeo copy of bench/debian500:v1 through a fresh ocigate holding the database, and
    the vulnerabilities check's result as the verdict API shows it."""
    directory = os.path.join(wd, "vulndb-" + ("on" if on else "off"))
    shutil.rmtree(directory, ignore_errors=True)
    server = ocigate(args.ocigate, directory, up_url, vulndb_policy(check_ids, on), extra={"vulnerabilities": {"database": db}})
    server.start_timeout = 300  # loading osv.dev-sized zips takes seconds of CPU; more on a busy host
    server.start()
    try:
        seconds = skopeo_copy(server.port, "bench/debian500:v1", os.path.join(wd, "copy"))
        status, headers, _ = http_request(server.port, "GET", "/v2/bench/debian500/manifests/v1",
                                          headers={"Accept": OCI_ACCEPT})
        digest = headers.get("Docker-Content-Digest")
        _, _, body = http_request(server.port, "GET", f"/ocigate/v1/verdicts/{digest}")
        checks = {c["check"]: c for c in json.loads(body).get("checks", [])}
        return seconds, checks.get("vulnerabilities", {}).get("message", "off")
    finally:
        server.destroy()


def vulndb_main(args, started):
    """bench/run --vulndb: generates the synthetic database, measures its load and match with
    bench/vulndb.cpp, then the first pull of a 500-package Debian 12 image with the check on and off."""
    name = "smoke" if args.smoke else "quick" if args.quick else "full"
    mode = dict(VULNDB_MODES[name])
    if args.runs:
        mode["runs"] = args.runs
    if not args.vulndb or not os.access(args.vulndb, os.X_OK):
        sys.exit("bench: --vulndb needs the bench/vulndb.cpp program (bench/run builds it)")
    wd = _workdir
    gen = os.path.join(wd, "vulndb")
    t0 = time.monotonic()
    subprocess.run([sys.executable, os.path.join(BENCH_DIR, "vulndb_gen.py"), gen, "--debian", str(mode["debian"]),
                    "--ubuntu", str(mode["ubuntu"]), "--alpine", str(mode["alpine"])], check=True, capture_output=True)
    log(f"generated the synthetic database in {time.monotonic() - t0:.0f} s")
    db, inventory_path = os.path.join(gen, "db"), os.path.join(gen, "inventory-debian-12.json")
    out = subprocess.run([args.vulndb, db, "--inventory", inventory_path, "--rounds", str(mode["rounds"])],
                         capture_output=True, text=True, timeout=1200, check=True)
    r = {"standalone": json.loads(out.stdout), "mode": name, "sizes": mode}
    log(f"load {r['standalone']['load_cpu_ms'] / 1000:.1f} s CPU, match {r['standalone']['match']['cpu_ms_per_match']:.2f} ms CPU")

    check_ids = policy_check_ids(args.ocigate, wd)
    upstream = registry(os.path.join(wd, "upstream")).start()
    try:
        pusher = Pusher(upstream.port)
        with open(inventory_path) as f:
            packages = json.load(f)
        layers = []
        for i in range(mode["layers"]):
            data = gzip_tar_layer(f"app/part{i}.bin", mode["layer"])
            layers.append((pusher.push_bytes("bench/debian500", data), len(data)))
        data = files_layer({"etc/os-release": b'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12"\n',
                            "var/lib/dpkg/status": dpkg_status(packages)})
        layers.insert(0, (pusher.push_bytes("bench/debian500", data), len(data)))
        pusher.push_image("bench/debian500", "v1", layers)
        up_url = f"http://127.0.0.1:{upstream.port}"
        r["first_pull"] = {"on": [], "off": []}
        for run in range(mode["runs"]):
            for on in ((True, False) if run % 2 == 0 else (False, True)):
                seconds, message = vulndb_first_pull(args, wd, up_url, db, on, check_ids)
                r["first_pull"]["on" if on else "off"].append(seconds)
                if on:
                    r["check_message"] = message
                log(f"first pull, check {'on' if on else 'off'}: {seconds:.2f} s ({message[:80]})")
    finally:
        upstream.stop()
        _cleanup()
    s = r["standalone"]
    on, off = median(r["first_pull"]["on"]), median(r["first_pull"]["off"])
    rows = [
        ("database (synthetic, bench/vulndb_gen.py)", f"{s['records_loaded']:,} records kept; records naming each release "
         f"({', '.join(f'{k} {v:,}' for k, v in sorted(s['records'].items()))})"),
        ("load: wall, CPU (all threads)", f"{s['load_ms'] / 1000:.1f} s wall, {s['load_cpu_ms'] / 1000:.1f} s CPU "
         f"({s['threads']} threads); goal ≤ 5 s"),
        ("RSS added by the loaded database (peak while loading)",
         f"{s['rss_added_mib']:.0f} MiB ({s['peak_rss_mib']:.0f} MiB); goal ≤ 150 MiB"),
        (f"match {s['match']['packages']} packages (Debian 12), {s['match']['findings']:,} findings",
         f"{s['match']['cpu_ms_per_match']:.2f} ms CPU per match (median wall {s['match']['median_ms']:.2f} ms, "
         f"{s['match']['rounds']} rounds); goal ≤ 2 ms"),
        (f"first pull ({mode['layers']} layers + a 500-package dpkg layer), check on ÷ off",
         f"{on / off:.3f}× ({on:.2f} s vs {off:.2f} s, medians of {mode['runs']}); goal ≤ 1.05×" if on and off else "—"),
    ]
    table = "| figure | measured |\n|---|---|\n" + "".join(f"| {k} | {v} |\n" for k, v in rows)
    date = run_span(started)
    r["date"], r["cores"] = date, os.cpu_count()
    heading = f"`bench/run --vulndb` ({name}), {r['cores']} cores, {date}; {time.monotonic() - started:.0f} s in all."
    print("\n" + heading + "\n\n" + table)
    if name != "smoke":
        os.makedirs(os.path.dirname(VULNDB_RESULTS), exist_ok=True)
        with open(VULNDB_RESULTS, "w") as f:
            json.dump(r, f, indent=1)
            f.write("\n")
    if not args.no_readme and name != "smoke" and os.path.exists(README):
        with open(README) as f:
            text = f.read()
        if VULNDB_BEGIN in text and VULNDB_END in text:
            before, rest = text.split(VULNDB_BEGIN, 1)
            _, after = rest.split(VULNDB_END, 1)
            with open(README, "w") as f:
                f.write(before + f"{VULNDB_BEGIN}\n{heading}\n\n{table}{VULNDB_END}" + after)
        else:
            log("bench/README.md has no vulndb markers; not rewritten")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller sizes, one run")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, one run: checks the script end to end")
    ap.add_argument("--runs", type=int, help="override the number of runs")
    ap.add_argument("--ocigate", default=os.environ.get("OCIGATE_BIN", DEFAULT_BIN), help="ocigate binary")
    ap.add_argument("--layer-scan", help="the bench/layer_scan.cpp program (bench/run builds it)")
    ap.add_argument("--fetch-path", help="the bench/fetch_path.cpp program (bench/run builds it)")
    ap.add_argument("--no-readme", action="store_true", help="do not rewrite the results section of bench/README.md")
    ap.add_argument("--load", action="store_true",
                    help="only the load figure (issue #7): 1,000 idle connections + 100 pulls, some slow")
    ap.add_argument("--fleet", action="store_true",
                    help="only the fleet figures (issue #26): 3 replicas behind nginx against one ocigate and "
                         "Distribution (bench/fleet.py); with --quick or --smoke for smaller sizes")
    ap.add_argument("--vulndb", nargs="?", const=os.path.join(REPO, "build", "release", "bench", "ocigate_bench_vulndb"),
                    help="only the vulnerabilities figures (issue #22), with this bench/vulndb.cpp program")
    ap.add_argument("--scale", action="store_true",
                    help="only the cache scale figures (issue #26 part 3): start-up, RSS, p99 and eviction for "
                         "10k, 100k and 1M cached blobs (bench/scale.py); with --quick or --smoke for smaller sizes")
    ap.add_argument("--scale-sizes", help="with --scale: the blob counts to measure, comma-separated")
    ap.add_argument("--cache-fill", default=os.path.join(REPO, "build", "release", "bench", "ocigate_bench_cache_fill"),
                    help="the bench/cache_fill.cpp program (bench/run builds it)")
    args = ap.parse_args()
    for tool in ("docker-registry", "skopeo", "cc"):
        if not shutil.which(tool):
            sys.exit(f"bench: `{tool}` is not installed (scripts/setup installs it)")
    if not os.access(args.ocigate, os.X_OK):
        sys.exit(f"bench: no ocigate binary at {args.ocigate} (bench/run builds it)")

    global _workdir
    _workdir = tempfile.mkdtemp(prefix="ocigate-bench-", dir="/tmp")
    atexit.register(_cleanup)
    # Also SIGINT: a shell starts background jobs with SIGINT ignored, which would skip the cleanup.
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, _on_signal)
    started = time.monotonic()
    if args.load:
        return load_main(args, started)
    if args.fleet:
        sys.modules.setdefault("bench", sys.modules[__name__])  # bench/fleet.py builds on this module's helpers
        import fleet
        return fleet.main(args, started)
    if args.vulndb:
        return vulndb_main(args, started)
    if args.scale:
        sys.modules.setdefault("bench", sys.modules[__name__])  # bench/scale.py builds on this module's helpers
        import scale
        return scale.main(args, started)
    bench = Bench(args, _workdir)
    # The smoke mode is a check that the script works: it never rewrites the README's figures.
    update_readme = not args.no_readme and not args.smoke
    try:
        bench.run()
    finally:
        _cleanup()
    rows = build_table(bench)
    write_outputs(bench, rows, started, update_readme)
    return 1 if bench.errors else 0


if __name__ == "__main__":
    sys.exit(main())
