#!/usr/bin/env python3
"""ctest monitoring.rules: the alert rules load (`promtool check rules`), their unit tests pass
(`promtool test rules`), every alert has a unit test in which it fires and one in which it stays
silent, and every alert's description names its own runbook section of docs/operations.md, which
exists. Needs promtool (Debian's prometheus package) and PyYAML (python3-yaml); scripts/setup installs both."""

import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
RULES = os.path.join(ROOT, "deploy", "prometheus", "alerts.yaml")
TESTS = os.path.join(ROOT, "deploy", "prometheus", "alerts_test.yaml")
RUNBOOK = os.path.join(ROOT, "docs", "operations.md")


def fail(message):
    print("FAIL: " + message, file=sys.stderr)
    sys.exit(1)


def promtool(*args):
    tool = shutil.which("promtool")
    if not tool:
        fail("promtool not found: install Debian's prometheus package (scripts/setup does)")
    result = subprocess.run([tool, *args], capture_output=True, text=True, timeout=120,
                            cwd=os.path.dirname(RULES))
    print(result.stdout + result.stderr)
    if result.returncode != 0:
        fail("promtool " + " ".join(args) + " failed")


def main():
    try:
        import yaml
    except ImportError:
        fail("PyYAML is missing: install python3-yaml (scripts/setup does)")
    promtool("check", "rules", RULES)
    promtool("test", "rules", TESTS)

    with open(RULES) as f:
        rules = [r for g in yaml.safe_load(f)["groups"] for r in g["rules"] if "alert" in r]
    with open(TESTS) as f:
        tests = yaml.safe_load(f)["tests"]
    with open(RUNBOOK) as f:
        headings = set(re.findall(r"^### (\w+)\s*$", f.read(), re.M))

    fires, silent = set(), set()
    for test in tests:
        for case in test.get("alert_rule_test", []):
            (fires if case.get("exp_alerts") else silent).add(case["alertname"])
    problems = []
    names = [r["alert"] for r in rules]
    if len(names) != len(set(names)):
        problems.append("alert names are not unique")
    for rule in rules:
        name = rule["alert"]
        if name not in fires:
            problems.append(f"{name}: no unit test in which it fires")
        if name not in silent:
            problems.append(f"{name}: no unit test in which it stays silent")
        annotations = rule.get("annotations", {})
        for key in ("summary", "description"):
            if not annotations.get(key):
                problems.append(f"{name}: no {key} annotation")
        anchor = "docs/operations.md#" + name.lower()
        if anchor not in annotations.get("description", ""):
            problems.append(f"{name}: the description does not name its runbook section {anchor}")
        if name not in headings:
            problems.append(f"{name}: docs/operations.md has no '### {name}' section")
        if rule.get("labels", {}).get("severity") not in ("critical", "warning", "info"):
            problems.append(f"{name}: severity must be critical, warning or info")
    stray = (fires | silent) - set(names)
    if stray:
        problems.append("unit tests for alerts that do not exist: " + ", ".join(sorted(stray)))
    if problems:
        fail("\n  ".join(["alert rules:"] + problems))
    print(f"ok: {len(rules)} alerts, each tested firing and silent, each with its runbook section")


if __name__ == "__main__":
    main()
