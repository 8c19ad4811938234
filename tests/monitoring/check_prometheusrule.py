#!/usr/bin/env python3
"""ctest monitoring.prometheusrule_in_sync: deploy/k8s/monitoring/prometheusrule.yaml is exactly what
deploy/prometheus/make-prometheusrule writes from alerts.yaml, and `kubectl kustomize` of
deploy/k8s/monitoring renders one PrometheusRule whose spec holds the same rule groups as alerts.yaml.
Needs kubectl (it renders offline) and PyYAML."""

import os
import shutil
import subprocess
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def fail(message):
    print("FAIL: " + message, file=sys.stderr)
    sys.exit(1)


def main():
    try:
        import yaml
    except ImportError:
        fail("PyYAML is missing: install python3-yaml (scripts/setup does)")
    generator = os.path.join(ROOT, "deploy", "prometheus", "make-prometheusrule")
    check = subprocess.run([sys.executable, generator, "--check"], capture_output=True, text=True, timeout=60)
    print(check.stdout + check.stderr)
    if check.returncode != 0:
        fail("the PrometheusRule is not what make-prometheusrule writes from alerts.yaml")
    kubectl = shutil.which("kubectl")
    if not kubectl:
        fail("kubectl not found: it renders the Kustomize directory offline")
    rendered = subprocess.run([kubectl, "kustomize", os.path.join(ROOT, "deploy", "k8s", "monitoring")],
                              capture_output=True, text=True, timeout=60)
    if rendered.returncode != 0:
        fail("kubectl kustomize deploy/k8s/monitoring failed:\n" + rendered.stderr)
    documents = [d for d in yaml.safe_load_all(rendered.stdout) if d]
    if [(d.get("apiVersion"), d.get("kind")) for d in documents] != [("monitoring.coreos.com/v1", "PrometheusRule")]:
        fail("expected exactly one monitoring.coreos.com/v1 PrometheusRule, got " +
             str([(d.get("apiVersion"), d.get("kind")) for d in documents]))
    with open(os.path.join(ROOT, "deploy", "prometheus", "alerts.yaml")) as f:
        rules = yaml.safe_load(f)
    if documents[0].get("spec") != rules:
        fail("the rendered PrometheusRule's spec differs from deploy/prometheus/alerts.yaml")
    print("ok: the PrometheusRule wraps the same %d rules" % sum(len(g["rules"]) for g in rules["groups"]))


if __name__ == "__main__":
    main()
