#!/usr/bin/env python3
"""bench/vulndb.cpp keeps working: it loads a small database written by bench/vulndb_gen.py and
matches that generator's 500-package Debian 12 inventory. Not a benchmark (no figure is judged):
it fails when the program does not build, does not load, or matches nothing.

Usage: check_vulndb_program.py PROGRAM GENERATOR
"""
import json
import subprocess
import sys
import tempfile


def main():
    program, generator = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory(prefix="ocigate-vulndb-check-") as out:
        subprocess.run([sys.executable, generator, out, "--debian", "3000", "--ubuntu", "200", "--alpine", "200"],
                       check=True, capture_output=True, timeout=120)
        run = subprocess.run([program, out + "/db", "--inventory", out + "/inventory-debian-12.json", "--rounds", "3"],
                             capture_output=True, text=True, timeout=120)
        if run.returncode != 0:
            sys.exit(f"{program} exited {run.returncode}: {run.stderr.strip()}")
        report = json.loads(run.stdout)
    match = report["match"]
    problems = []
    if report["records_loaded"] <= 0:
        problems.append("no records loaded")
    if not match["supported"] or match["packages"] != 500 or match["findings"] <= 0:
        problems.append(f"unexpected match: {match}")
    if problems:
        sys.exit("; ".join(problems))
    print(f"loaded {report['records_loaded']} records; {match['findings']} findings in 500 packages")


if __name__ == "__main__":
    main()
