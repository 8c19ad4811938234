"""ocigate's own container image passes ocigate's own gate. scripts/image builds the `prebuilt`
target of deploy/docker/Dockerfile around the ocigate under test (buildah: vfs storage, chroot
isolation, Docker format) on a bookworm base made from Debian's mirror; the image is pushed to a
local docker-registry and `ocigate check` judges it with the default policy (every check on) in
enforce mode: it must be allowed. The bare base image, judged the same way, is blocked, so the
check is one that can fail.

Skipped, with the reason, where no image can be built (no buildah or mmdebstrap, not root, or
Debian's mirror out of reach for the base rootfs)."""

import json
import os
import shutil
import subprocess
import unittest

import harness

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD_TIMEOUT = 900  # seconds: the base rootfs (first run on a machine) plus the image build
SKIP = "image cannot be built here: "


def setUpModule():
    if not os.environ.get("OCIGATE_BIN"):
        raise unittest.SkipTest("OCIGATE_BIN is not set (run through ctest)")


def unavailable():
    for tool in ("buildah", "mmdebstrap"):
        if not shutil.which(tool):
            return f"{tool} is not installed (scripts/setup installs it)"
    if os.geteuid() != 0:
        return "buildah's chroot isolation and vfs storage need root"
    return None


def sanitizer_packages(binary):
    """The runtime packages an ASan/UBSan build needs beyond a Release build's."""
    libs = subprocess.run(["ldd", binary], capture_output=True, text=True, timeout=30).stdout
    return " ".join(pkg for lib, pkg in (("libasan.so.8", "libasan8"), ("libubsan.so.1", "libubsan1")) if lib in libs)


class OwnImage(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        reason = unavailable()
        if reason:
            raise unittest.SkipTest(SKIP + reason)
        cls.dir = harness._make_dir("ocigate-image-")
        cls.storage = ["--root", os.path.join(cls.dir, "root"), "--runroot", os.path.join(cls.dir, "run")]
        cls.tag = "localhost/ocigate:ci"
        build = subprocess.run([os.path.join(REPO_ROOT, "scripts", "image"), "--prebuilt", os.environ["OCIGATE_BIN"],
                                "--tag", cls.tag, "--extra-packages", sanitizer_packages(os.environ["OCIGATE_BIN"]),
                                *cls.storage], capture_output=True, text=True, timeout=BUILD_TIMEOUT,
                               stdin=subprocess.DEVNULL)
        if build.returncode == 3:  # scripts/image: the base rootfs could not be made (no Debian mirror)
            harness._remove_dir(cls.dir)
            raise unittest.SkipTest(SKIP + build.stderr.strip().splitlines()[-1])
        if build.returncode != 0:
            harness._remove_dir(cls.dir)
            raise AssertionError("scripts/image failed:\n" + build.stderr[-4000:])
        cls.registry = harness.Registry().start()
        cls.push(cls.tag, "ocigate:ci")
        cls.push("localhost/debian:bookworm-slim", "debian:bookworm-slim")

    @classmethod
    def tearDownClass(cls):
        cls.registry.close()
        harness._remove_dir(cls.dir)

    @classmethod
    def push(cls, image, repo):
        # v2s2 keeps the Docker config (HEALTHCHECK) as built.
        subprocess.run(["buildah", "--storage-driver", "vfs", *cls.storage, "push", "--quiet", "--tls-verify=false",
                        "--format", "v2s2", image, f"docker://{cls.registry.host}/{repo}"],
                       check=True, capture_output=True, timeout=300, stdin=subprocess.DEVNULL)

    def check(self, image):
        config = os.path.join(self.dir, "check.yaml")
        with open(config, "w") as f:
            json.dump({"upstreams": [{"name": "local", "url": self.registry.url}], "default_upstream": "local",
                       "storage": {"path": os.path.join(self.dir, "unused-cache")},
                       "policy": {"mode": "enforce"}}, f)
        result = subprocess.run([os.environ["OCIGATE_BIN"], "check", "--config", config, "--format", "json",
                                 "local/" + image], capture_output=True, text=True, timeout=300,
                                stdin=subprocess.DEVNULL)
        self.assertIn(result.returncode, (0, 1), result.stderr)
        return result.returncode, json.loads(result.stdout)

    def image_config(self, repo, tag):
        manifest = harness.request("GET", f"{self.registry.url}/v2/{repo}/manifests/{tag}",
                                   headers={"Accept": harness.DOCKER_MANIFEST}).json()
        blob = harness.request("GET", f"{self.registry.url}/v2/{repo}/blobs/{manifest['config']['digest']}")
        return manifest, blob.json()

    def run_in_image(self, container, *command):
        # chroot isolation shares this machine's network: 127.0.0.1 inside is this machine's loopback.
        return subprocess.run(["buildah", "--storage-driver", "vfs", *self.storage, "run", "--isolation", "chroot",
                               container, "--", *command], capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL)

    def test_the_images_healthcheck_command_reports_a_running_and_a_missing_ocigate(self):
        buildah = ["buildah", "--storage-driver", "vfs", *self.storage]
        health = self.image_config("ocigate", "ci")[1]["config"]["Healthcheck"]["Test"][1:]  # after "CMD"
        container = subprocess.run([*buildah, "from", "--pull=false", self.tag], check=True, capture_output=True,
                                   text=True, timeout=300, stdin=subprocess.DEVNULL).stdout.strip()
        self.addCleanup(subprocess.run, [*buildah, "rm", container], capture_output=True, timeout=120)
        with harness.Ocigate([{"name": "local", "url": self.registry.url}]) as gate:
            up = self.run_in_image(container, *health, "--url", gate.url + "/healthz")
        self.assertEqual(up.returncode, 0, up.stdout + up.stderr)
        down = self.run_in_image(container, *health, "--url", f"http://127.0.0.1:{harness.free_port()}/healthz",
                                 "--timeout", "2s")
        self.assertEqual(down.returncode, 1, down.stdout + down.stderr)

    def test_own_image_is_allowed_by_the_default_policy_in_enforce_mode(self):
        code, verdict = self.check("ocigate:ci")
        results = {c["check"]: c["result"] for c in verdict["checks"]}
        self.assertEqual((code, verdict["verdict"]), (0, "allow"), json.dumps(verdict["checks"], indent=1))
        # Each practice is checked and passes; none is merely unknown for want of data.
        for check in ("non-root-user", "healthcheck", "no-secrets", "copy-not-add", "no-update-alone", "pinned-base",
                      "pinned-reference", "image-age", "no-setuid", "no-package-manager"):
            self.assertEqual(results.get(check), "pass", f"{check}: {results.get(check)}")
        self.assertEqual(verdict["violations"], [])
        packages = {p["name"] for p in verdict["inventory"]["packages"]}
        self.assertIn("librocksdb7.8", packages)
        self.assertFalse({"apt", "dpkg"} & packages, "installers are gone from the dpkg database too")

    def test_own_image_carries_the_runtime_settings(self):
        manifest, config = self.image_config("ocigate", "ci")
        self.assertEqual(manifest["mediaType"], harness.DOCKER_MANIFEST)
        c = config["config"]
        self.assertEqual(c["User"], "65532:65532")
        self.assertEqual(c["Healthcheck"]["Test"], ["CMD", "/usr/local/bin/ocigate", "healthcheck"])
        self.assertEqual(c["Entrypoint"], ["/usr/local/bin/ocigate"])
        self.assertIn("5000/tcp", c["ExposedPorts"])
        self.assertIn("/var/lib/ocigate", c["Volumes"])
        self.assertEqual(c["StopSignal"], "SIGTERM")
        labels = c["Labels"]
        self.assertEqual(labels["org.opencontainers.image.base.name"], "localhost/debian:bookworm-slim")
        self.assertRegex(labels["org.opencontainers.image.base.digest"], r"^sha256:[0-9a-f]{64}$")

    def test_the_bare_base_image_is_blocked(self):
        # The same check on the base: root user, no HEALTHCHECK, installers, setuid files.
        code, verdict = self.check("debian:bookworm-slim")
        self.assertEqual((code, verdict["verdict"]), (1, "block"))
        failed = {v["check"] for v in verdict["violations"]}
        self.assertTrue({"non-root-user", "healthcheck", "no-setuid", "no-package-manager"} <= failed, failed)


if __name__ == "__main__":
    unittest.main()
