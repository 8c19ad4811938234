"""Test harness: real peers on 127.0.0.1 (docker-registry upstreams, skopeo), images built in
Python and pushed with the registry HTTP API, and ocigate itself. Standard library only.
Everything is bounded in time and cleaned up."""

import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request
import base64
import http.server

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
ALL_MANIFESTS = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError("timed out waiting for " + what)


class HttpResult:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)

    def header(self, name):
        return self.headers.get(name)


def request(method, url, body=None, headers=None, auth=None, timeout=30):
    """One HTTP request; returns HttpResult for every status (no exception on 4xx/5xx)."""
    req = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(req, timeout=timeout) as resp:
            return HttpResult(resp.status, resp.headers, resp.read())
    except urllib.error.HTTPError as e:
        return HttpResult(e.code, e.headers, e.read())


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def process_log_tail(path, lines=40):
    try:
        with open(path, "rb") as f:
            return b"\n".join(f.read().splitlines()[-lines:]).decode(errors="replace")
    except OSError:
        return ""


class Registry:
    """A CNCF Distribution (docker-registry) on 127.0.0.1 with filesystem storage.

    htpasswd=(user, password) turns on Basic auth; proxy_url makes it a pull-through cache."""

    def __init__(self, htpasswd=None, proxy_url=None):
        self.dir = tempfile.mkdtemp(prefix="ocigate-registry-")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.auth = htpasswd
        self.proc = None
        self.log_path = os.path.join(self.dir, "registry.log")
        config = {
            "version": 0.1,
            "log": {"level": "info", "accesslog": {"disabled": False}},
            "storage": {"filesystem": {"rootdirectory": os.path.join(self.dir, "data")},
                        "delete": {"enabled": True}, "cache": {}},
            "http": {"addr": f"127.0.0.1:{self.port}", "headers": {"X-Content-Type-Options": ["nosniff"]}},
        }
        if htpasswd:
            path = os.path.join(self.dir, "htpasswd")
            line = subprocess.run(["htpasswd", "-Bbn", htpasswd[0], htpasswd[1]], check=True,
                                  capture_output=True, text=True).stdout.strip()
            with open(path, "w") as f:
                f.write(line + "\n")
            config["auth"] = {"htpasswd": {"realm": "test", "path": path}}
        if proxy_url:
            config["proxy"] = {"remoteurl": proxy_url}
        self.config_path = os.path.join(self.dir, "config.yml")
        with open(self.config_path, "w") as f:
            json.dump(config, f)  # JSON is valid YAML

    @property
    def storage_path(self):
        return os.path.join(self.dir, "data")

    def blob_data_path(self, digest):
        hexd = digest.split(":", 1)[1]
        return os.path.join(self.storage_path, "docker/registry/v2/blobs/sha256", hexd[:2], hexd, "data")

    def start(self):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(["docker-registry", "serve", self.config_path], stdout=log, stderr=log,
                                     start_new_session=True)
        log.close()
        wait_until(lambda: request("GET", self.url + "/v2/", timeout=2).status in (200, 401), 15,
                   "docker-registry on " + self.url)
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def blob_gets(self, digest):
        """How many GETs of a blob the registry answered (from its access log)."""
        needle = f'"GET /v2/'.encode()
        count = 0
        with open(self.log_path, "rb") as f:
            for line in f:
                if needle in line and f"/blobs/{digest} ".encode() in line:
                    count += 1
        return count

    def requests_containing(self, text):
        with open(self.log_path, "rb") as f:
            return sum(1 for line in f if text.encode() in line and b"HTTP/1.1" in line)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    # ---- seeding through the registry API ----

    def push_blob(self, repo, data):
        digest = sha256(data)
        if request("HEAD", f"{self.url}/v2/{repo}/blobs/{digest}", auth=self.auth).status == 200:
            return digest
        r = request("POST", f"{self.url}/v2/{repo}/blobs/uploads/", body=b"", auth=self.auth)
        assert r.status == 202, (r.status, r.body)
        location = r.header("Location")
        if location.startswith("/"):
            location = self.url + location
        sep = "&" if "?" in location else "?"
        r = request("PUT", f"{location}{sep}digest={digest}", body=data, auth=self.auth,
                    headers={"Content-Type": "application/octet-stream"})
        assert r.status == 201, (r.status, r.body)
        return digest

    def push_manifest(self, repo, reference, body, media_type):
        r = request("PUT", f"{self.url}/v2/{repo}/manifests/{reference}", body=body, auth=self.auth,
                    headers={"Content-Type": media_type})
        assert r.status == 201, (r.status, r.body)
        return sha256(body)


def make_layer(files, mtime=1700000000):
    """A gzip'd tar of {path: bytes or (bytes, mode)}; deterministic."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, content in sorted(files.items()):
            mode = 0o644
            if isinstance(content, tuple):
                content, mode = content
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(content), mode, mtime
            tar.addfile(info, io.BytesIO(content))
    tar_bytes = raw.getvalue()
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=mtime) as gz:
        gz.write(tar_bytes)
    return out.getvalue(), sha256(tar_bytes)


class Image:
    def __init__(self, manifest_digest, manifest, config_digest, layer_digests, media_type):
        self.digest = manifest_digest
        self.manifest = manifest
        self.config_digest = config_digest
        self.layer_digests = layer_digests
        self.media_type = media_type


def push_image(registry, repo, tag, layers=None, media="oci", config_overrides=None, arch="amd64",
               annotations=None):
    """Builds and pushes an image. layers: list of {path: content} dicts (or raw bytes blobs)."""
    layers = layers if layers is not None else [{"hello.txt": f"hello from {repo}:{tag} {arch}\n".encode()}]
    layer_descs, diff_ids = [], []
    for files in layers:
        if isinstance(files, bytes):
            blob, diff_id = files, sha256(files)
        else:
            blob, diff_id = make_layer(files)
        digest = registry.push_blob(repo, blob)
        layer_descs.append({"mediaType": OCI_LAYER if media == "oci" else DOCKER_LAYER,
                            "digest": digest, "size": len(blob)})
        diff_ids.append(diff_id)
    config = {
        "architecture": arch, "os": "linux", "created": "2026-11-01T00:00:00Z",
        "config": {"User": "1000:1000", "Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": "COPY hello.txt / # buildkit"}],
    }
    for key, value in (config_overrides or {}).items():
        if key == "config":
            config["config"].update(value)
        else:
            config[key] = value
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_digest = registry.push_blob(repo, config_bytes)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST if media == "oci" else DOCKER_MANIFEST,
        "config": {"mediaType": OCI_CONFIG if media == "oci" else DOCKER_CONFIG,
                   "digest": config_digest, "size": len(config_bytes)},
        "layers": layer_descs,
    }
    if annotations:
        manifest["annotations"] = annotations
    body = json.dumps(manifest, indent=2).encode()
    digest = registry.push_manifest(repo, tag or sha256(body), body, manifest["mediaType"])
    return Image(digest, body, config_digest, [d["digest"] for d in layer_descs], manifest["mediaType"])


def push_index(registry, repo, tag, media="oci", arches=("amd64", "arm64")):
    children = []
    for arch in arches:
        image = push_image(registry, repo, None, media=media, arch=arch)
        children.append({"mediaType": image.media_type, "digest": image.digest, "size": len(image.manifest),
                         "platform": {"architecture": arch, "os": "linux"}})
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX if media == "oci" else DOCKER_LIST, "manifests": children}
    body = json.dumps(index).encode()
    digest = registry.push_manifest(repo, tag, body, index["mediaType"])
    return digest, body, [c["digest"] for c in children]


class Ocigate:
    """ocigate serve with a generated config; storage survives restart()."""

    def __init__(self, upstreams, default_upstream=None, max_size="256MiB", extra=None):
        self.bin = os.environ.get("OCIGATE_BIN")
        if not self.bin:
            raise RuntimeError("OCIGATE_BIN is not set")
        self.dir = tempfile.mkdtemp(prefix="ocigate-test-")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.host = f"127.0.0.1:{self.port}"
        self.proc = None
        self.stdout_path = os.path.join(self.dir, "stdout.log")
        self.stderr_path = os.path.join(self.dir, "stderr.log")
        config = {
            "server": {"listen": f"127.0.0.1:{self.port}", "threads": 2, "shutdown_grace": "5s"},
            "storage": {"path": os.path.join(self.dir, "cache"), "max_size": max_size, "chunk_size": "64KiB"},
            "upstreams": upstreams,
            "log": {"access_log": "-", "level": "debug"},
        }
        if default_upstream:
            config["default_upstream"] = default_upstream
        for key, value in (extra or {}).items():
            config[key] = value
        self.config_path = os.path.join(self.dir, "ocigate.yaml")
        with open(self.config_path, "w") as f:
            json.dump(config, f)

    def start(self, timeout=20):
        out = open(self.stdout_path, "ab")
        err = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen([self.bin, "serve", "--config", self.config_path], stdout=out, stderr=err,
                                     start_new_session=True)
        out.close()
        err.close()
        try:
            wait_until(lambda: self.proc.poll() is None and request("GET", self.url + "/readyz", timeout=2).status == 200,
                       timeout, "ocigate /readyz")
        except TimeoutError:
            raise RuntimeError("ocigate did not start:\n" + process_log_tail(self.stderr_path))
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        code = self.proc.returncode if self.proc else None
        self.proc = None
        return code

    def kill9(self):
        if self.proc:
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None

    def restart(self):
        self.stop()
        return self.start()

    def metrics(self):
        """Prometheus samples as {'name{labels}': value}."""
        text = request("GET", self.url + "/metrics").body.decode()
        samples = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                samples[key] = float(value)
        return samples

    def metric_sum(self, name, **labels):
        total = 0.0
        for key, value in self.metrics().items():
            base = key.split("{", 1)[0]
            if base != name:
                continue
            if all(f'{k}="{v}"' in key for k, v in labels.items()):
                total += value
        return total

    def stderr(self):
        return process_log_tail(self.stderr_path, 400)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def skopeo_copy(src_ref, dest_dir, extra=(), timeout=120, creds=None):
    """skopeo copy docker://<src_ref> dir:<dest_dir> over plain HTTP."""
    cmd = ["skopeo", "--insecure-policy", "copy", "--src-tls-verify=false", *extra]
    if creds:
        cmd += ["--src-creds", f"{creds[0]}:{creds[1]}"]
    cmd += ["docker://" + src_ref, "dir:" + dest_dir]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def verify_dir_copy(dest_dir):
    """Every blob skopeo wrote hashes to its file name; returns the blob digests."""
    digests = []
    for name in os.listdir(dest_dir):
        if len(name) == 64 and all(c in "0123456789abcdef" for c in name):
            with open(os.path.join(dest_dir, name), "rb") as f:
                assert hashlib.sha256(f.read()).hexdigest() == name, name
            digests.append("sha256:" + name)
    return digests


class BearerGateway:
    """A bearer-token front for an open registry, as Docker Hub and GHCR behave: requests without
    a valid token get 401 with a Bearer challenge; GET /token?service=&scope= (Basic credentials
    checked when configured) issues one. Counts token requests and forwarded requests."""

    def __init__(self, upstream_url, credentials=None):
        self.upstream_url = upstream_url
        self.credentials = credentials
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.tokens = set()
        self.token_requests = []
        self.forwarded = 0
        gateway = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                self.handle_any("GET")

            def do_HEAD(self):
                self.handle_any("HEAD")

            def reply(self, status, headers, body=b""):
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                if "Content-Length" not in headers:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def handle_any(self, method):
                if self.path.startswith("/token"):
                    gateway.token_requests.append(self.path)
                    if gateway.credentials:
                        expected = "Basic " + base64.b64encode(":".join(gateway.credentials).encode()).decode()
                        if self.headers.get("Authorization") != expected:
                            return self.reply(401, {}, b'{"details":"bad credentials"}')
                    token = base64.b16encode(os.urandom(8)).decode()
                    gateway.tokens.add(token)
                    return self.reply(200, {"Content-Type": "application/json"},
                                      json.dumps({"token": token, "expires_in": 300}).encode())
                auth = self.headers.get("Authorization", "")
                if not auth.startswith("Bearer ") or auth[7:] not in gateway.tokens:
                    challenge = f'Bearer realm="{gateway.url}/token",service="gateway"'
                    return self.reply(401, {"WWW-Authenticate": challenge, "Content-Type": "application/json"},
                                      b'{"errors":[{"code":"UNAUTHORIZED","message":"token required"}]}')
                gateway.forwarded += 1
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("accept", "range")}
                r = request(method, gateway.upstream_url + self.path, headers=headers)
                out = {k: v for k, v in r.headers.items()
                       if k.lower() in ("content-type", "docker-content-digest", "content-length", "link",
                                        "content-range", "location")}
                self.reply(r.status, out, r.body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


class CountingPassThrough:
    """A pass-through HTTP proxy in front of an upstream that counts blob GETs and can throttle
    them (bytes per second), to observe single-flight and to kill ocigate mid-fetch."""

    def __init__(self, upstream_url, throttle_bps=None):
        self.upstream_url = upstream_url
        self.throttle_bps = throttle_bps
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.blob_gets = {}
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                self.forward("GET")

            def do_HEAD(self):
                self.forward("HEAD")

            def forward(self, method):
                if method == "GET" and "/blobs/" in self.path:
                    digest = self.path.rsplit("/", 1)[1]
                    with proxy.lock:
                        proxy.blob_gets[digest] = proxy.blob_gets.get(digest, 0) + 1
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("accept", "range", "authorization")}
                r = request(method, proxy.upstream_url + self.path, headers=headers, timeout=60)
                self.send_response(r.status)
                for k, v in r.headers.items():
                    if k.lower() in ("content-type", "docker-content-digest", "content-length", "link",
                                     "www-authenticate", "location", "content-range"):
                        self.send_header(k, v)
                self.end_headers()
                if method == "HEAD":
                    return
                body = r.body
                try:
                    if not proxy.throttle_bps:
                        self.wfile.write(body)
                        return
                    step = max(1, proxy.throttle_bps // 20)
                    for i in range(0, len(body), step):
                        self.wfile.write(body[i:i + step])
                        self.wfile.flush()
                        time.sleep(0.05)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def gets(self, digest):
        with self.lock:
            return self.blob_gets.get(digest, 0)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


class FakeUpstream:
    """A scriptable upstream: handler(method, path, headers) -> (status, headers, body)."""

    def __init__(self, handler):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def answer(self):
                fake.requests.append((self.command, self.path))
                status, headers, body = handler(self.command, self.path, self.headers)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    try:
                        self.wfile.write(body)
                    except (BrokenPipeError, ConnectionResetError):
                        pass  # ocigate hung up on purpose (e.g. an oversized body)

            do_GET = do_HEAD = answer

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
