"""The command line: every subcommand's --help, usage errors, and `ocigate healthcheck` against a
running mirror (and against nothing)."""

import os
import subprocess
import time
import unittest

import harness


def setUpModule():
    if not os.environ.get("OCIGATE_BIN"):
        raise unittest.SkipTest("OCIGATE_BIN is not set (run through ctest)")


def run(*args, timeout=30):
    return subprocess.run([os.environ["OCIGATE_BIN"], *args], capture_output=True, text=True, timeout=timeout)


class Help(unittest.TestCase):
    SUBCOMMANDS = {
        ("serve",): "ocigate serve [--config FILE]",
        ("check",): "ocigate check [--config FILE]",
        ("cache", "verify"): "ocigate cache verify [--config FILE]",
        ("cache",): "ocigate cache verify [--config FILE]",
        ("healthcheck",): "ocigate healthcheck",
        ("vulndb", "update"): "ocigate vulndb update [--config FILE]",
        ("vulndb",): "ocigate vulndb update [--config FILE]",
        ("version",): "ocigate version",
    }

    def test_every_subcommand_prints_its_own_usage_on_help_and_exits_0(self):
        for command, usage in self.SUBCOMMANDS.items():
            for flag in ("--help", "-h"):
                result = run(*command, flag)
                self.assertEqual(result.returncode, 0, (command, flag, result.stderr))
                self.assertIn(usage, result.stdout, (command, flag))
                self.assertEqual(result.stderr, "", (command, flag))
                others = [u for c, u in self.SUBCOMMANDS.items() if u != usage]
                for other in others:
                    self.assertNotIn(other, result.stdout, (command, flag))

    def test_help_after_other_arguments_still_wins(self):
        result = run("check", "--format", "json", "alpine", "--help")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("ocigate check", result.stdout)

    def test_top_level_help_lists_every_subcommand(self):
        for args in (("--help",), ("-h",), ("help",)):
            result = run(*args)
            self.assertEqual(result.returncode, 0)
            for usage in self.SUBCOMMANDS.values():
                self.assertIn(usage, result.stdout)
        result = run("help", "healthcheck")
        self.assertEqual(result.returncode, 0)
        self.assertIn("ocigate healthcheck", result.stdout)
        self.assertNotIn("ocigate serve", result.stdout)

    def test_usage_errors_exit_2_on_stderr(self):
        for args in (("serve", "--bogus"), ("check",), ("check", "--format", "xml", "alpine"),
                     ("check", "--platform", "linux", "alpine"), ("check", "alpine", "--config"),
                     ("cache",), ("cache", "verify", "--bogus"), ("healthcheck", "--timeout", "soon"),
                     ("healthcheck", "--url", "ftp://x/"), ("vulndb",), ("vulndb", "fetch"),
                     ("vulndb", "update", "--bogus"), ("version", "extra"), ("nonsense",), ()):
            result = run(*args)
            self.assertEqual(result.returncode, 2, args)
            self.assertTrue(result.stderr.startswith("ocigate: "), (args, result.stderr))
            self.assertEqual(result.stdout, "", args)

    def test_version(self):
        result = run("version")
        self.assertEqual(result.returncode, 0)
        self.assertRegex(result.stdout, r"^ocigate \d+\.\d+\.\d+\n$")


class Healthcheck(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.registry = harness.Registry()
        cls.addClassCleanup(cls.registry.close)
        cls.registry.start()
        cls.gate = harness.Ocigate([{"name": "up", "url": cls.registry.url}], default_upstream="up")
        cls.addClassCleanup(cls.gate.close)
        cls.gate.start()

    def test_a_running_mirror_is_healthy_by_url_and_by_config(self):
        result = run("healthcheck", "--url", f"http://127.0.0.1:{self.gate.port}/healthz")
        self.assertEqual(result.returncode, 0, result.stderr)
        result = run("healthcheck", "--config", self.gate.config_path)
        self.assertEqual(result.returncode, 0, result.stderr)

    def test_another_status_is_unhealthy(self):
        result = run("healthcheck", "--url", f"http://127.0.0.1:{self.gate.port}/nothing-here")
        self.assertEqual(result.returncode, 1)
        self.assertIn("HTTP 404", result.stderr)

    def test_nothing_listening_is_unhealthy(self):
        port = harness.free_port()
        result = run("healthcheck", "--url", f"http://127.0.0.1:{port}/healthz")
        self.assertEqual(result.returncode, 1)
        self.assertIn("cannot connect", result.stderr)

    def test_a_silent_listener_times_out_within_the_timeout(self):
        import socket
        with socket.socket() as silent:
            silent.bind(("127.0.0.1", 0))
            silent.listen(1)
            started = time.monotonic()
            result = run("healthcheck", "--url", f"http://127.0.0.1:{silent.getsockname()[1]}/healthz",
                         "--timeout", "1s")
            elapsed = time.monotonic() - started
        self.assertEqual(result.returncode, 1)
        self.assertIn("no answer within 1000 ms", result.stderr)
        self.assertLess(elapsed, 10, "bounded by --timeout, with room for a loaded sanitizer build")


if __name__ == "__main__":
    unittest.main()
