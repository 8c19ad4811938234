"""Runs one integration module the way `python3 -m unittest -v <module>` does, for ctest.

Exit codes: 0 when every test passed and at least one ran; 1 on any failure or error (skipped
tests beside them change nothing); SKIP_CODE when nothing failed and every test was skipped (the
module or its classes skipped themselves, e.g. OCIGATE_BIN unset or a tool missing), which
CMakeLists.txt declares as SKIP_RETURN_CODE so ctest shows the suite as skipped, not passed.

    python3 run_suite.py test_policy [test_policy.Gate.test_x ...]"""

import sys
import unittest

SKIP_CODE = 77  # the automake convention; matches SKIP_RETURN_CODE in CMakeLists.txt


def verdict(result):
    """0, 1 or SKIP_CODE for a finished unittest result."""
    if not result.wasSuccessful():
        return 1
    # Module- and class-level skips are recorded against a placeholder, not a test, and are not in
    # testsRun; skipped tests are.
    skipped_tests = sum(1 for test, _ in result.skipped if isinstance(test, unittest.TestCase))
    if result.testsRun - skipped_tests > 0:
        return 0
    return SKIP_CODE if result.skipped else 1  # nothing ran and nothing skipped: a broken module


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    program = unittest.main(module=None, argv=[argv[0], "-v", *argv[1:]], exit=False)
    code = verdict(program.result)
    if code == SKIP_CODE:
        print(f"{argv[1]}: every test was skipped", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
