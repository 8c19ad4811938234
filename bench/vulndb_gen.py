#!/usr/bin/env python3
"""Writes a synthetic OSV database shaped like osv.dev's distro zips, for bench/vulndb.

osv.dev's all.zip files cannot be downloaded here, so this writes records of the same shape
and of a realistic size, seeded (the same arguments give the same bytes):

  <out>/db/Debian/all.zip   DEBIAN-CVE-* records (the Debian security tracker converter's shape:
                            `upstream` CVE, one affected entry per release with
                            ecosystem_specific.urgency, introduced 0 + fixed or unfixed), plus
                            DSA/DLA advisories (aliases, one release)
  <out>/db/Ubuntu/all.zip   UBUNTU-CVE-* records (CVSS + "Ubuntu" priority, `versions` lists of
                            every published version, purls, ecosystem_specific.binaries), Pro
                            streams included
  <out>/db/Alpine/all.zip   ALPINE-CVE-* records over v3.18..v3.21, no severity
  <out>/inventory-debian-12.json   500 installed packages of a Debian 12 image (binary name,
                            version, Source), for the match timing

Default counts (--debian 60000 --ubuntu 45000 --alpine 10000) are estimates of osv.dev's
record counts for those ecosystems; source package names follow a Zipf law over a pool of
4,000 names, so a few packages (the kernel, browsers) carry thousands of records, as in the
real data.

Usage: bench/vulndb_gen.py OUT [--debian N] [--ubuntu N] [--alpine N] [--seed S]
"""

import argparse
import json
import os
import random
import zipfile

DEBIAN_RELEASES = ["10", "11", "12", "13"]
UBUNTU_RELEASES = ["20.04:LTS", "22.04:LTS", "24.04:LTS", "24.10", "Pro:16.04:LTS", "Pro:18.04:LTS"]
ALPINE_RELEASES = ["v3.18", "v3.19", "v3.20", "v3.21"]
URGENCIES = ["low", "medium", "high", "unimportant", "not yet assigned"]
WORDS = ("buffer overflow heap use after free null pointer dereference integer out of bounds read write "
         "remote attacker crafted packet denial of service memory corruption in the parser allows").split()


def zipf_name(rng, pool):
    # Rank r with probability ~ 1/r.
    r = int(len(pool) ** rng.random()) - 1
    return pool[min(max(r, 0), len(pool) - 1)]


def cvss(rng):
    pick = lambda *v: rng.choice(v)
    return (f"CVSS:3.1/AV:{pick('N', 'A', 'L', 'P')}/AC:{pick('L', 'H')}/PR:{pick('N', 'L', 'H')}/UI:{pick('N', 'R')}"
            f"/S:{pick('U', 'C')}/C:{pick('H', 'L', 'N')}/I:{pick('H', 'L', 'N')}/A:{pick('H', 'L', 'N')}")


def details(rng):
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(30, 90))) + "."


def deb_version(rng, release):
    major = rng.randint(0, 9)
    return f"{major}.{rng.randint(0, 30)}.{rng.randint(0, 20)}-{rng.randint(1, 9)}+deb{release}u{rng.randint(1, 5)}"


def debian_records(rng, n, pool):
    for i in range(n):
        cve = f"CVE-{rng.randint(1999, 2026)}-{i:05d}"
        name = zipf_name(rng, pool)
        if i % 6 == 0:  # DSA / DLA advisories: one release, CVE aliases
            release = rng.choice(DEBIAN_RELEASES)
            yield {"id": f"{rng.choice(['DSA', 'DLA'])}-{i}-1", "aliases": [cve], "summary": f"{name} security update",
                   "details": details(rng), "modified": "2026-01-01T00:00:00Z", "published": "2025-01-01T00:00:00Z",
                   "affected": [{"package": {"ecosystem": f"Debian:{release}", "name": name,
                                             "purl": f"pkg:deb/debian/{name}?arch=source"},
                                 "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"},
                                                                             {"fixed": deb_version(rng, release)}]}]}],
                   "references": [{"type": "ADVISORY", "url": f"https://security-tracker.debian.org/tracker/{cve}"}]}
            continue
        affected = []
        for release in rng.sample(DEBIAN_RELEASES, rng.randint(2, 4)):
            events = [{"introduced": "0"}]
            if rng.random() < 0.7:
                events.append({"fixed": deb_version(rng, release)})
            affected.append({"package": {"ecosystem": f"Debian:{release}", "name": name},
                             "ranges": [{"type": "ECOSYSTEM", "events": events}],
                             "ecosystem_specific": {"urgency": rng.choice(URGENCIES)}})
        record = {"id": f"DEBIAN-{cve}", "upstream": [cve], "published": "2025-01-01T00:00:00Z",
                  "modified": "2026-01-01T00:00:00Z", "details": details(rng), "affected": affected,
                  "references": [{"type": "ADVISORY", "url": f"https://security-tracker.debian.org/tracker/{cve}"}]}
        if rng.random() < 0.6:
            record["severity"] = [{"type": "CVSS_V3", "score": cvss(rng)}]
        yield record


def ubuntu_records(rng, n, pool):
    for i in range(n):
        cve = f"CVE-{rng.randint(2005, 2026)}-{i:05d}"
        name = zipf_name(rng, pool)
        affected = []
        for release in rng.sample(UBUNTU_RELEASES, rng.randint(2, 5)):
            base = f"{rng.randint(0, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 9)}"
            versions = [f"{base}-{rng.randint(0, 3)}ubuntu{k // 3}.{k}" for k in range(rng.randint(3, 40))]
            events = [{"introduced": "0"}]
            if rng.random() < 0.6:
                events.append({"fixed": f"{base}-9ubuntu9.{rng.randint(1, 30)}"})
            binaries = [{"binary_name": f"{name}-{b}", "binary_version": versions[-1]} for b in range(rng.randint(1, 12))]
            affected.append({"package": {"ecosystem": f"Ubuntu:{release}", "name": name,
                                         "purl": f"pkg:deb/ubuntu/{name}@{versions[-1]}?arch=source&distro=x"},
                             "ranges": [{"type": "ECOSYSTEM", "events": events}], "versions": versions,
                             "ecosystem_specific": {"binaries": binaries}})
        severity = [{"type": "Ubuntu", "score": rng.choice(["negligible", "low", "medium", "high"])}]
        if rng.random() < 0.7:
            severity.insert(0, {"type": "CVSS_V3", "score": cvss(rng)})
        yield {"schema_version": "1.7.0", "id": f"UBUNTU-{cve}", "aliases": [], "upstream": [cve],
               "related": [f"USN-{rng.randint(1000, 7999)}-1"], "details": details(rng), "severity": severity,
               "published": "2025-01-01T00:00:00Z", "modified": "2026-01-01T00:00:00Z", "affected": affected,
               "references": [{"type": "REPORT", "url": f"https://ubuntu.com/security/{cve}"}]}


def alpine_records(rng, n, pool):
    for i in range(n):
        cve = f"CVE-{rng.randint(2010, 2026)}-{i:05d}"
        name = zipf_name(rng, pool)
        affected = []
        for release in rng.sample(ALPINE_RELEASES, rng.randint(1, 3)):
            fixed = f"{rng.randint(0, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 9)}-r{rng.randint(0, 5)}"
            affected.append({"package": {"ecosystem": f"Alpine:{release}", "name": name,
                                         "purl": f"pkg:apk/alpine/{name}?arch=source"},
                             "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}]})
        yield {"id": f"ALPINE-{cve}", "upstream": [cve], "details": details(rng), "modified": "2026-01-01T00:00:00Z",
               "affected": affected}


def write_zip(path, records):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    count = 0
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for r in records:
            z.writestr(r["id"] + ".json", json.dumps(r, indent=2))
            count += 1
    return count


def inventory(rng, pool, n=500):
    # A Debian 12 image: binaries built from ~250 sources outside the few giants (images ship no
    # kernel or browser), each at a version above the synthetic fixes (majors 0-9) except one in
    # ten, so findings come from the unfixed records and the outdated tenth, as in a real image.
    sources = rng.sample(pool[20:2000], 250)
    out = []
    for k in range(n):
        source = sources[k % len(sources)]
        major = rng.randint(0, 9) if rng.random() < 0.1 else 10
        version = f"{major}.{rng.randint(0, 30)}.{rng.randint(0, 20)}-{rng.randint(1, 9)}"
        out.append({"name": f"{source}-bin{k}", "version": version, "format": "dpkg", "source": source})
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--debian", type=int, default=60000)
    ap.add_argument("--ubuntu", type=int, default=45000)
    ap.add_argument("--alpine", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=22)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    pool = [f"src{k}" for k in range(4000)]
    pool[0], pool[1], pool[2] = "linux", "chromium", "firefox-esr"
    db = os.path.join(args.out, "db")
    counts = {
        "Debian": write_zip(os.path.join(db, "Debian", "all.zip"), debian_records(rng, args.debian, pool)),
        "Ubuntu": write_zip(os.path.join(db, "Ubuntu", "all.zip"), ubuntu_records(rng, args.ubuntu, pool)),
        "Alpine": write_zip(os.path.join(db, "Alpine", "all.zip"), alpine_records(rng, args.alpine, pool)),
    }
    with open(os.path.join(args.out, "inventory-debian-12.json"), "w") as f:
        json.dump(inventory(rng, pool), f)
    sizes = {k: os.path.getsize(os.path.join(db, k, "all.zip")) for k in counts}
    print(json.dumps({"records": counts, "zip_bytes": sizes}))


if __name__ == "__main__":
    main()
