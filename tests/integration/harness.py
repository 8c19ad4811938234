"""Test harness: real peers on 127.0.0.1 (docker-registry upstreams, skopeo), images built in
Python and pushed with the registry HTTP API, and ocigate itself. Standard library only, plus the
`docker-registry`, `skopeo`, `htpasswd` and `openssl` commands.

Everything is bounded in time and cleaned up: every process this module starts and every temporary
directory it makes is also registered with an atexit hook, so a test that dies half-way (or a
setUpClass that raises, which skips tearDownClass) leaves nothing running behind it."""

import atexit
import base64
import gzip
import hashlib
import http.client
import http.server
import io
import json
import os
import shutil
import signal
import socket
import sys
import subprocess
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
ALL_MANIFESTS = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST])

START_TIMEOUT = 15  # seconds a peer or ocigate gets to become ready
STOP_GRACE = 10  # seconds between SIGTERM and SIGKILL


# ---- leftovers: whatever a failed test did not clean up is removed at interpreter exit ----

_live_procs = set()
_live_dirs = set()


def _make_dir(prefix):
    path = tempfile.mkdtemp(prefix=prefix)
    _live_dirs.add(path)
    return path


def _remove_dir(path):
    _live_dirs.discard(path)
    shutil.rmtree(path, ignore_errors=True)


def _spawn(cmd, out_path, err_path=None):
    """Starts cmd in its own session (so a kill reaches its children), output appended to files."""
    out = open(out_path, "ab")
    err = open(err_path, "ab") if err_path else out
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True)
    finally:
        out.close()
        if err is not out:
            err.close()
    _live_procs.add(proc)
    return proc


def _terminate(proc, grace=STOP_GRACE):
    """SIGTERM, then SIGKILL after `grace` seconds; returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    _live_procs.discard(proc)
    return proc.returncode


def _kill(proc):
    if proc.poll() is None:
        proc.kill()
        proc.wait(5)
    _live_procs.discard(proc)


@atexit.register
def _cleanup_leftovers():
    for proc in list(_live_procs):
        try:
            _kill(proc)
        except (OSError, subprocess.TimeoutExpired):
            pass
    for path in list(_live_dirs):
        _remove_dir(path)


# ---- small utilities ----

def free_port():
    """A port free right now on 127.0.0.1. Someone may take it before we bind it again: the
    start() methods below retry with a fresh port when that happens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


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


def basic_auth(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def request(method, url, body=None, headers=None, auth=None, timeout=30, cafile=None, source=None):
    """One HTTP request; returns HttpResult for every status (no exception on 4xx/5xx).
    auth=(user, password) sends Basic credentials; redirects are not followed; cafile: the CA that
    signed an https server's certificate, or an ssl.SSLContext (e.g. with a client certificate).
    source: the local address to connect from (e.g. "127.0.0.2": any 127/8 address is this host),
    so a test can be another client to ocigate's per-address limits (plain http only)."""
    req = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    if auth:
        req.add_header("Authorization", basic_auth(*auth))
    handlers = [NoRedirect]
    if source:
        handlers.append(_SourceHTTPHandler(source))
    if cafile:
        import ssl
        context = cafile if isinstance(cafile, ssl.SSLContext) else ssl.create_default_context(cafile=cafile)
        handlers.append(urllib.request.HTTPSHandler(context=context))
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(req, timeout=timeout) as resp:
            return HttpResult(resp.status, resp.headers, resp.read())
    except urllib.error.HTTPError as e:
        return HttpResult(e.code, e.headers, e.read())


class Pki:
    """A test CA (valid `days`) and certificates for 127.0.0.1 signed by it, made with the openssl CLI."""

    def __init__(self, directory, days=2, name="ocigate test CA"):
        self.dir = directory
        self.days = days
        self.ca_key = os.path.join(directory, "ca.key")
        self.ca_cert = os.path.join(directory, "ca.crt")
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", self.ca_key, "-out", self.ca_cert, "-days", str(days), "-subj", "/CN=" + name)
        # skopeo's --src-cert-dir wants the CA as *.crt in a directory of its own.
        self.cert_dir = os.path.join(directory, "trust")
        os.mkdir(self.cert_dir)
        shutil.copy(self.ca_cert, os.path.join(self.cert_dir, "ca.crt"))

    def server_cert(self, name, usage="serverAuth", days=None):
        """A key and a certificate for 127.0.0.1 and localhost (or a client certificate, usage clientAuth)."""
        key, csr, cert, ext = (os.path.join(self.dir, name + suffix) for suffix in (".key", ".csr", ".crt", ".ext"))
        with open(ext, "w") as f:
            f.write(f"subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage={usage}\n")
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
                 "-out", csr, "-subj", "/CN=" + name)
        _openssl("x509", "-req", "-in", csr, "-CA", self.ca_cert, "-CAkey", self.ca_key, "-CAcreateserial",
                 "-out", cert, "-days", str(days or self.days), "-extfile", ext)
        return cert, key


def _openssl(*args):
    return subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60, text=True).stdout


def raw_exchange(port, data, timeout=10, source=None):
    """Sends raw bytes to 127.0.0.1:port and reads until the server closes (or `timeout`); returns
    (status, head, body). For requests urllib refuses to send: malformed ones, huge headers.
    source: the local address to connect from, as for request()."""
    chunks = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                  source_address=(source, 0) if source else None) as s:
        s.sendall(data)
        while True:
            try:
                chunk = s.recv(1 << 16)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1]) if head.startswith(b"HTTP/1.") else 0
    return status, head.decode(errors="replace"), body


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class _SourceHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, source):
        super().__init__()
        self.source = source

    def http_open(self, req):
        return self.do_open(lambda host, **kw: http.client.HTTPConnection(host, source_address=(self.source, 0), **kw),
                            req)


def process_log_tail(path, lines=40):
    try:
        with open(path, "rb") as f:
            return b"\n".join(f.read().splitlines()[-lines:]).decode(errors="replace")
    except OSError:
        return ""


def _log_size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _log_since(path, offset):
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def _port_taken(log_text):
    return "address already in use" in log_text.lower()


class QuietHTTPServer(http.server.ThreadingHTTPServer):
    """A threaded test server on 127.0.0.1:<any free port> that does not print tracebacks when a
    client (ocigate dropping a keep-alive connection, a test hanging up on purpose) resets."""
    daemon_threads = True

    def __init__(self, handler):
        super().__init__(("127.0.0.1", 0), handler)

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


# ---- token authentication (Distribution's `auth: token`, as Docker Hub and GHCR work) ----

def _run_openssl(args, data=None):
    return subprocess.run(["openssl", *args], input=data, capture_output=True, check=True, timeout=30).stdout


def _der_ecdsa_to_raw(der, size=32):
    """OpenSSL signs ECDSA as DER SEQUENCE{INTEGER r, INTEGER s}; JWS ES256 wants r||s, 32 bytes each."""
    def read_tlv(buf, pos, tag):
        if buf[pos] != tag:
            raise ValueError("unexpected DER tag")
        length = buf[pos + 1]
        pos += 2
        if length & 0x80:
            n = length & 0x7F
            length = int.from_bytes(buf[pos:pos + n], "big")
            pos += n
        return buf[pos:pos + length], pos + length

    seq, _ = read_tlv(der, 0, 0x30)
    r, pos = read_tlv(seq, 0, 0x02)
    s, _ = read_tlv(seq, pos, 0x02)
    return int.from_bytes(r, "big").to_bytes(size, "big") + int.from_bytes(s, "big").to_bytes(size, "big")


class SigningKey:
    """A private key and its self-signed certificate made with the openssl CLI. alg: RS256 or ES256."""

    def __init__(self, directory, alg="RS256", name="token-signer"):
        if alg not in ("RS256", "ES256"):
            raise ValueError("alg must be RS256 or ES256")
        self.alg = alg
        self.key_path = os.path.join(directory, name + ".key")
        self.cert_path = os.path.join(directory, name + ".crt")
        newkey = ["-newkey", "rsa:2048"] if alg == "RS256" else ["-newkey", "ec", "-pkeyopt",
                                                                "ec_paramgen_curve:prime256v1"]
        _run_openssl(["req", "-x509", *newkey, "-nodes", "-keyout", self.key_path, "-out", self.cert_path,
                      "-days", "30", "-subj", "/CN=" + name])
        self.cert_der = _run_openssl(["x509", "-in", self.cert_path, "-outform", "DER"])

    def sign(self, signing_input):
        signature = _run_openssl(["dgst", "-sha256", "-sign", self.key_path], data=signing_input)
        return _der_ecdsa_to_raw(signature) if self.alg == "ES256" else signature

    def jwt(self, claims, header_key=None):
        """A compact JWS. The header carries x5c (the certificate of header_key, default this key), which
        is how docker-registry finds the verifying key: it must chain to its rootcertbundle."""
        header = {"typ": "JWT", "alg": self.alg,
                  "x5c": [base64.b64encode((header_key or self).cert_der).decode()]}
        signing_input = (b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())).encode()
        return signing_input.decode() + "." + b64url(self.sign(signing_input))


def parse_scopes(values):
    """['repository:a/b:pull,push', ...] (each may hold several space-separated scopes) -> access list."""
    access = []
    for value in values:
        for scope in value.split():
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind and name:
                access.append({"type": kind, "name": name, "actions": [a for a in actions.split(",") if a]})
    return access


class TokenServer:
    """The token endpoint of Distribution's token auth, in a thread. GET /token?service=&scope= (and the
    OAuth2 POST password grant) with Basic credentials from `users` returns a JWT granting what was
    asked; anonymous callers get pull-only tokens when anonymous=True, else 401. Records every request
    in `.requests` as (account or None, scopes). Pair with Registry(token=server)."""

    def __init__(self, users=None, anonymous=False, alg="RS256", service="registry.test", issuer="ocigate-test",
                 ttl=300):
        self.dir = _make_dir("ocigate-token-")
        self.users = dict(users or {})
        self.anonymous = anonymous
        self.service, self.issuer, self.ttl = service, issuer, ttl
        self.key = SigningKey(self.dir, alg)
        self.requests = []
        self.lock = threading.Lock()
        self.server = QuietHTTPServer(self._handler())
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.realm = self.url + "/token"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def cert_path(self):
        return self.key.cert_path

    def claims(self, account, access, expires_in=None):
        now = int(time.time())
        return {"iss": self.issuer, "sub": account or "", "aud": self.service, "iat": now, "nbf": now - 10,
                "exp": now + (self.ttl if expires_in is None else expires_in), "jti": uuid.uuid4().hex,
                "access": access}

    def issue(self, account, access, expires_in=None):
        return self.key.jwt(self.claims(account, access, expires_in))

    def token_for(self, scope, credentials=None):
        """Fetches a token over HTTP the way a client does; returns the token or raises."""
        query = urllib.parse.urlencode({"service": self.service, "scope": scope})
        r = request("GET", f"{self.realm}?{query}", auth=credentials)
        if r.status != 200:
            raise RuntimeError(f"token endpoint answered {r.status}: {r.body[:200]!r}")
        return r.json()["token"]

    def token_requests(self, account=...):
        """[(account, scopes)] in order; account=None selects anonymous requests, omitted selects all."""
        with self.lock:
            return [r for r in self.requests if account is ... or r[0] == account]

    def _authorize(self, authorization, form):
        """Returns (account, ok). account None means anonymous."""
        user = password = None
        if authorization.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return None, False
        elif form.get("grant_type") == ["password"]:
            user, password = form.get("username", [""])[0], form.get("password", [""])[0]
        if user is None:
            return None, self.anonymous
        return user, self.users.get(user) == password

    def _grant(self, account, scopes):
        access = parse_scopes(scopes)
        if account is None:
            for entry in access:
                entry["actions"] = [a for a in entry["actions"] if a == "pull"]
        return access

    def _handler(self):
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def reply(self, status, payload):
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def answer(self, form):
                if urllib.parse.urlsplit(self.path).path != "/token":
                    return self.reply(404, {"details": "not found"})
                account, ok = server._authorize(self.headers.get("Authorization", ""), form)
                scopes = form.get("scope", [])
                with server.lock:
                    server.requests.append((account, scopes))
                if not ok:
                    return self.reply(401, {"details": "incorrect username or password"})
                if form.get("service", [server.service])[0] != server.service:
                    return self.reply(400, {"details": "unknown service"})
                token = server.issue(account, server._grant(account, scopes))
                issued = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                self.reply(200, {"token": token, "access_token": token, "expires_in": server.ttl,
                                 "issued_at": issued})

            def do_GET(self):
                self.answer(urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query))

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.answer(urllib.parse.parse_qs(self.rfile.read(length).decode(errors="replace")))

        return Handler

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        _remove_dir(self.dir)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---- docker-registry ----

class Registry:
    """A CNCF Distribution (docker-registry) on 127.0.0.1 with filesystem storage and deletes enabled.

    htpasswd=(user, password): Basic auth, pushes use those credentials.
    token=TokenServer: bearer-token auth against that server; pushes use its first user.
    proxy_url (+ proxy_credentials): a pull-through cache of another registry (for benchmarks).
    stop()/start() simulate an outage on the same port, with the same storage."""

    def __init__(self, htpasswd=None, proxy_url=None, token=None, proxy_credentials=None):
        self.dir = _make_dir("ocigate-registry-")
        self.port = free_port()
        self.auth = htpasswd
        self.token_server = token
        self.proxy_url, self.proxy_credentials = proxy_url, proxy_credentials
        self.proc = None
        self.started_once = False
        self.log_path = os.path.join(self.dir, "registry.log")
        self.config_path = os.path.join(self.dir, "config.yml")
        self.push_tokens = {}
        self.htpasswd_path = None
        if htpasswd:
            self.htpasswd_path = os.path.join(self.dir, "htpasswd")
            line = subprocess.run(["htpasswd", "-Bbn", htpasswd[0], htpasswd[1]], check=True,
                                  capture_output=True, text=True, timeout=30).stdout.strip()
            with open(self.htpasswd_path, "w") as f:
                f.write(line + "\n")
        self._write_config()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def host(self):
        return f"127.0.0.1:{self.port}"

    def _write_config(self):
        config = {
            "version": 0.1,
            "log": {"level": "info", "accesslog": {"disabled": False}},
            "storage": {"filesystem": {"rootdirectory": os.path.join(self.dir, "data")},
                        "delete": {"enabled": True}, "cache": {}},
            "http": {"addr": f"127.0.0.1:{self.port}", "headers": {"X-Content-Type-Options": ["nosniff"]}},
        }
        if self.htpasswd_path:
            config["auth"] = {"htpasswd": {"realm": "test", "path": self.htpasswd_path}}
        if self.token_server:
            ts = self.token_server
            config["auth"] = {"token": {"realm": ts.realm, "service": ts.service, "issuer": ts.issuer,
                                        "rootcertbundle": ts.cert_path}}
        if self.proxy_url:
            config["proxy"] = {"remoteurl": self.proxy_url}
            if self.proxy_credentials:
                config["proxy"]["username"], config["proxy"]["password"] = self.proxy_credentials
        with open(self.config_path, "w") as f:
            json.dump(config, f)  # JSON is valid YAML

    @property
    def storage_path(self):
        return os.path.join(self.dir, "data")

    def blob_data_path(self, digest):
        hexd = digest.split(":", 1)[1]
        return os.path.join(self.storage_path, "docker/registry/v2/blobs/sha256", hexd[:2], hexd, "data")

    def corrupt_blob(self, digest):
        """Overwrites the stored blob with garbage of the same length (the registry serves it as is)."""
        path = self.blob_data_path(digest)
        size = os.path.getsize(path)
        with open(path, "r+b") as f:
            f.write(os.urandom(size))
        return size

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self):
        """Starts (or restarts after stop()) and waits until /v2/ answers. Only the very first start may
        move to another port, when the one picked was taken meanwhile."""
        for _ in range(3):
            offset = _log_size(self.log_path)
            self.proc = _spawn(["docker-registry", "serve", self.config_path], self.log_path)
            try:
                wait_until(lambda: self.running() and
                           request("GET", self.url + "/v2/", timeout=2).status in (200, 401),
                           START_TIMEOUT, "docker-registry on " + self.url)
                self.started_once = True
                return self
            except TimeoutError:
                _kill(self.proc)
                self.proc = None
                log = _log_since(self.log_path, offset)
                if self.started_once or not _port_taken(log):
                    raise RuntimeError("docker-registry did not start:\n" + log[-3000:])
                self.port = free_port()
                self._write_config()
        raise RuntimeError("docker-registry: no free port after 3 attempts")

    def stop(self):
        if self.proc:
            _terminate(self.proc)
        self.proc = None

    def access_log_lines(self, method=None):
        """The registry's access-log lines ('... "GET /v2/... HTTP/1.1" 200 ...')."""
        prefix = f'"{method} /'.encode() if method else b'"'
        try:
            with open(self.log_path, "rb") as f:
                return [line.decode(errors="replace") for line in f if b" HTTP/1.1\" " in line and prefix in line]
        except OSError:
            return []

    def blob_gets(self, digest):
        """How many GETs of a blob the registry answered (from its access log)."""
        return sum(1 for line in self.access_log_lines("GET") if f"/blobs/{digest} " in line)

    def requests_containing(self, text):
        return sum(1 for line in self.access_log_lines() if text in line)

    def close(self):
        self.stop()
        _remove_dir(self.dir)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    # ---- seeding through the registry API ----

    def push_headers(self, repo):
        """Authorization for pushing to repo: Basic for htpasswd, a push token for token auth."""
        if self.auth:
            return {"Authorization": basic_auth(*self.auth)}
        if self.token_server:
            token = self.push_tokens.get(repo)
            if token is None:
                user, password = next(iter(self.token_server.users.items()))
                token = self.token_server.token_for(f"repository:{repo}:pull,push", (user, password))
                self.push_tokens[repo] = token
            return {"Authorization": "Bearer " + token}
        return {}

    def push_blob(self, repo, data):
        digest = sha256(data)
        auth = self.push_headers(repo)
        if request("HEAD", f"{self.url}/v2/{repo}/blobs/{digest}", headers=auth).status == 200:
            return digest
        r = request("POST", f"{self.url}/v2/{repo}/blobs/uploads/", body=b"", headers=auth)
        assert r.status == 202, (r.status, r.body)
        location = r.header("Location")
        if location.startswith("/"):
            location = self.url + location
        sep = "&" if "?" in location else "?"
        r = request("PUT", f"{location}{sep}digest={digest}", body=data,
                    headers={**auth, "Content-Type": "application/octet-stream"}, timeout=60)
        assert r.status == 201, (r.status, r.body)
        return digest

    def push_manifest(self, repo, reference, body, media_type):
        r = request("PUT", f"{self.url}/v2/{repo}/manifests/{reference}", body=body,
                    headers={**self.push_headers(repo), "Content-Type": media_type})
        assert r.status == 201, (r.status, r.body)
        return sha256(body)


def proxy_registry(upstream):
    """docker-registry as a pull-through cache of `upstream` (a Registry), for comparisons."""
    creds = None
    if upstream.token_server:
        creds = next(iter(upstream.token_server.users.items()))
    return Registry(proxy_url=upstream.url, proxy_credentials=creds)


# ---- images built in Python ----

def make_layer(files, mtime=1700000000):
    """A gzip'd tar of {path: bytes or (bytes, mode)}; deterministic. Returns (blob, diff_id)."""
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
    def __init__(self, manifest_digest, manifest, config_digest, layer_digests, media_type, config=None):
        self.digest = manifest_digest
        self.manifest = manifest
        self.config_digest = config_digest
        self.layer_digests = layer_digests
        self.media_type = media_type
        self.config = config

    @property
    def blobs(self):
        return [self.config_digest, *self.layer_digests]


def push_image(registry, repo, tag, layers=None, media="oci", config_overrides=None, arch="amd64",
               annotations=None):
    """Builds and pushes an image; returns an Image. layers: list of {path: content} dicts (made into
    gzip'd tars) or raw bytes (pushed as is). tag None pushes by digest only."""
    if media not in ("oci", "docker"):
        raise ValueError("media must be 'oci' or 'docker'")
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
        "history": [{"created": "2026-11-01T00:00:00Z", "created_by": "COPY hello.txt / # buildkit"}],
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
    return Image(digest, body, config_digest, [d["digest"] for d in layer_descs], manifest["mediaType"], config)


def push_index(registry, repo, tag, media="oci", arches=("amd64", "arm64")):
    """A multi-arch OCI index (media='oci') or Docker manifest list (media='docker') whose children are
    pushed by digest. Returns (index digest, index bytes, [child digests] in arches order)."""
    children = []
    for arch in arches:
        image = push_image(registry, repo, None, media=media, arch=arch)
        children.append({"mediaType": image.media_type, "digest": image.digest, "size": len(image.manifest),
                         "platform": {"architecture": arch, "os": "linux"}})
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX if media == "oci" else DOCKER_LIST, "manifests": children}
    body = json.dumps(index).encode()
    digest = registry.push_manifest(repo, tag, body, index["mediaType"])
    return digest, body, [c["digest"] for c in children]


# ---- ocigate ----

class Ocigate:
    """`$OCIGATE_BIN serve --config` with a generated config (JSON, which is YAML); stdout (the access
    log) and stderr go to files in its temp dir; the storage survives stop()/start()/restart()/kill9()."""

    def __init__(self, upstreams, default_upstream=None, max_size="256MiB", extra=None):
        self.bin = os.environ.get("OCIGATE_BIN")
        if not self.bin:
            raise RuntimeError("OCIGATE_BIN is not set")
        self.dir = _make_dir("ocigate-test-")
        self.port = free_port()
        self.proc = None
        self.started_once = False
        self.stdout_path = os.path.join(self.dir, "stdout.log")
        self.stderr_path = os.path.join(self.dir, "stderr.log")
        self.config_path = os.path.join(self.dir, "ocigate.yaml")
        self.cafile = None  # with server.tls: the CA the tests trust; url is then https
        self.probe_auth = None  # (user, password) for /metrics when auth.protect_api is on
        self.probe_source = None  # the local address /metrics is read from (another client to the limits)
        self.config = {
            "server": {"threads": 2, "shutdown_grace": "5s"},
            "storage": {"path": os.path.join(self.dir, "cache"), "max_size": max_size, "chunk_size": "64KiB"},
            "upstreams": upstreams,
            "log": {"access_log": "-", "level": "debug"},
        }
        if default_upstream:
            self.config["default_upstream"] = default_upstream
        for key, value in (extra or {}).items():
            self.config[key] = value
        self._write_config()

    @property
    def url(self):
        scheme = "https" if "tls" in self.config["server"] else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def host(self):
        return f"127.0.0.1:{self.port}"

    @property
    def storage_path(self):
        return self.config["storage"]["path"]

    def _write_config(self):
        self.config["server"]["listen"] = f"127.0.0.1:{self.port}"
        with open(self.config_path, "w") as f:
            json.dump(self.config, f)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout=START_TIMEOUT):
        """Starts and waits for /readyz 200. Only the first start may move to a fresh port (when the
        picked one was taken meanwhile); a restart keeps the port clients and tests know."""
        for _ in range(3):
            offset = _log_size(self.stderr_path)
            self.proc = _spawn([self.bin, "serve", "--config", self.config_path], self.stdout_path, self.stderr_path)
            try:
                wait_until(lambda: self.running() and request("GET", self.url + "/readyz", timeout=2,
                                                              cafile=self.cafile).status == 200,
                           timeout, "ocigate /readyz")
                self.started_once = True
                return self
            except TimeoutError:
                _kill(self.proc)
                self.proc = None
                log = _log_since(self.stderr_path, offset)
                if self.started_once or not _port_taken(log):
                    raise RuntimeError("ocigate did not start:\n" + log[-3000:])
                self.port = free_port()
                self._write_config()
        raise RuntimeError("ocigate: no free port after 3 attempts")

    def stop(self):
        """SIGTERM, SIGKILL after 10 s; returns the exit code (None if it was not running)."""
        code = _terminate(self.proc) if self.proc else None
        self.proc = None
        return code

    def kill9(self):
        if self.proc:
            _kill(self.proc)
            self.proc = None

    def restart(self):
        self.stop()
        return self.start()

    def metrics(self):
        """Prometheus samples as {'name{labels}': value}."""
        text = request("GET", self.url + "/metrics", cafile=self.cafile, auth=self.probe_auth,
                       source=self.probe_source).body.decode()
        return parse_metrics(text)

    def metric_sum(self, name, **labels):
        """Sum of the samples of `name` whose labels include all of `labels`."""
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

    def close(self):
        self.stop()
        _remove_dir(self.dir)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc):
        self.close()


def parse_metrics(text):
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            try:
                samples[key] = float(value)
            except ValueError:
                continue
    return samples


# ---- skopeo ----

def skopeo_copy(src_ref, dest_dir, extra=(), timeout=120, creds=None):
    """skopeo copy docker://<src_ref> dir:<dest_dir> over plain HTTP. extra: e.g. ["--all"] or
    ["--override-arch", "arm64"]. Returns the CompletedProcess (raises TimeoutExpired after timeout)."""
    cmd = ["skopeo", "--insecure-policy", "copy", "--src-tls-verify=false", *extra]
    if creds:
        cmd += ["--src-creds", f"{creds[0]}:{creds[1]}"]
    cmd += ["docker://" + src_ref, "dir:" + dest_dir]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def verify_dir_copy(dest_dir):
    """Every blob skopeo wrote hashes to its file name; returns the blob digests."""
    digests = []
    for name in os.listdir(dest_dir):
        if len(name) == 64 and all(c in "0123456789abcdef" for c in name):
            with open(os.path.join(dest_dir, name), "rb") as f:
                assert hashlib.sha256(f.read()).hexdigest() == name, name
            digests.append("sha256:" + name)
    return digests


def dir_manifest(dest_dir):
    """The bytes of the top-level manifest skopeo wrote (manifest.json)."""
    with open(os.path.join(dest_dir, "manifest.json"), "rb") as f:
        return f.read()


class BearerGateway:
    """A bearer-token front for an open registry, as Docker Hub and GHCR behave: requests without
    a valid token get 401 with a Bearer challenge; GET /token?service=&scope= (Basic credentials
    checked when configured) issues one. Counts token requests and forwarded requests."""

    def __init__(self, upstream_url, credentials=None):
        self.upstream_url = upstream_url
        self.credentials = credentials
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

        self.server = QuietHTTPServer(Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


class CountingPassThrough:
    """A pass-through HTTP proxy in front of an upstream that counts blob GETs and can throttle
    them (bytes per second), to observe single-flight and to kill ocigate mid-fetch. Every request
    is recorded in `.requests` as (method, path) before it is answered; `inject`, when set, is
    called with (method, path) and may return (status, headers, body) to answer in the upstream's
    place (an outage, a rate limit) or None to forward."""

    def __init__(self, upstream_url, throttle_bps=None):
        self.upstream_url = upstream_url
        self.throttle_bps = throttle_bps
        self.blob_gets = {}
        self.requests = []
        self.inject = None
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
                with proxy.lock:
                    proxy.requests.append((method, self.path))
                if method == "GET" and "/blobs/" in self.path:
                    digest = self.path.rsplit("/", 1)[1]
                    with proxy.lock:
                        proxy.blob_gets[digest] = proxy.blob_gets.get(digest, 0) + 1
                injected = proxy.inject(method, self.path) if proxy.inject else None
                if injected:
                    status, headers, body = injected
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if method != "HEAD":
                        self.wfile.write(body)
                    return
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

        self.server = QuietHTTPServer(Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def gets(self, digest):
        with self.lock:
            return self.blob_gets.get(digest, 0)

    def requests_since(self, start, contains=""):
        """The (method, path) requests from index `start` on whose path contains `contains`."""
        with self.lock:
            return [r for r in self.requests[start:] if contains in r[1]]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


class FakeUpstream:
    """A scriptable upstream: handler(method, path, headers) -> (status, headers, body)."""

    def __init__(self, handler):
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

        self.server = QuietHTTPServer(Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
