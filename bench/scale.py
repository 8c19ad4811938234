"""`bench/run --scale` (issue #26, part 3): how ocigate's costs grow with the number of cached blobs.

For each N: bench/cache_fill.cpp fills a fresh cache with N small synthetic blobs (images of one config and
nine 1-4 KiB layers, each tagged v1) straight through cache::Store; then ocigate starts on that cache with an
upstream that refuses every connection (the cached tags are younger than the tag TTL, so they are served
without it) and every policy check off. Figures per N:
  - start-up: from spawning ocigate until /readyz answers 200 (polled every 50 ms), page cache warm from the fill;
  - RSS (VmRSS) once ready, and its growth per blob between sizes;
  - p99 of a warm manifest GET by tag and of a HEAD blob (httpload, 4 connections, one thread), over the tags and
    layers of 2,000 images spread over the whole cache, after one pass over the tags warmed their verdicts; three
    rounds of each, alternated, the median p99 reported; from the second size on, the first size's cache is served
    again beside it and its rounds alternate with them, so the p99 goal compares figures taken in the same minutes
    on a shared machine; taken once ocigate is idle (under 5% of a core over a
    second, at most a minute: RocksDB compacts what the fill left after the open);
  - eviction of 10% of the cache's bytes: the one commit that runs the pass, and until its files are deleted
    (cache_fill evict), ocigate stopped.
Results go to bench/results/scale.json and the scale section of bench/README.md (not in --smoke)."""

import json
import os
import subprocess
import time

import bench as b

MODES = {
    "full": {"sizes": [10_000, 100_000, 1_000_000], "load_s": 5},
    "quick": {"sizes": [10_000, 100_000], "load_s": 3},
    "smoke": {"sizes": [1_000, 5_000], "load_s": 1},
}
SAMPLE_IMAGES = 2000   # images whose tag and one layer the latency figures cycle through
CONNECTIONS = 4        # few: the figure is a request's latency, not the rate under queueing
ROUNDS = 3             # latency rounds per figure; the one with the median p99 is reported
READY_TIMEOUT = 600
FILL_BUDGET_S = 15 * 60  # a fill predicted to take longer is skipped (and said so)
RESULTS = os.path.join(b.BENCH_DIR, "results", "scale.json")
BEGIN = "<!-- bench:scale:begin (bench/run --scale rewrites this section) -->"
END = "<!-- bench:scale:end -->"
ACCEPT = ("Accept: " + b.OCI_ACCEPT,)


def disk_bytes(path):
    out = subprocess.run(["du", "-sb", path], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def remove_tree(path):
    """rm -rf (a million small files)."""
    subprocess.run(["rm", "-rf", path], check=False, stdin=subprocess.DEVNULL)


def run_tool(cmd, timeout):
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed: {out.stderr[-1500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def settle(pid, timeout=60):
    """Waits until ocigate uses under 5% of a core over a second (RocksDB compacts what the fill left
    after the open); a latency figure taken meanwhile measures the compaction. Returns seconds waited."""
    hz, started = os.sysconf("SC_CLK_TCK"), time.monotonic()
    while time.monotonic() - started < timeout:
        before = cpu_ticks(pid)
        time.sleep(1)
        if cpu_ticks(pid) - before < 0.05 * hz:
            break
    return time.monotonic() - started


def warm_tags(port, paths_file):
    """One GET of every sampled tag, so the timed pass finds their verdicts cached."""
    with open(paths_file) as f:
        paths = [line.strip() for line in f if line.strip()]
    b.sequential_latencies(port, paths, {"Accept": b.OCI_ACCEPT})


class ScaleBench:
    def __init__(self, args, workdir):
        self.args = args
        self.mode_name = "smoke" if args.smoke else "quick" if args.quick else "full"
        self.mode = dict(MODES[self.mode_name])
        if args.scale_sizes:
            self.mode["sizes"] = [int(n) for n in args.scale_sizes.split(",")]
        self.workdir = workdir
        self.rows = []
        self.skipped = []
        self.errors = []
        self.fill_rate = None  # blobs per second of the last fill

    def run(self):
        self.tools = b.Tools(self.workdir)
        self.check_ids = b.policy_check_ids(self.args.ocigate, self.workdir)
        self.reference = None  # the first size's (root, paths), kept for the paired latency rounds
        for n in self.mode["sizes"]:
            if self.fill_rate and n / self.fill_rate > FILL_BUDGET_S:
                why = (f"N = {n:,} skipped: the fill would take ~{n / self.fill_rate / 60:.0f} min at the "
                       f"{self.fill_rate:.0f} blobs/s of the last fill (budget {FILL_BUDGET_S // 60} min)")
                b.log(why)
                self.skipped.append(why)
                continue
            try:
                self.rows.append(self.measure(n))
            except Exception as e:  # noqa: BLE001 - one size failing must not lose the others
                self.errors.append(f"N = {n:,}: {e}")
                b.log(f"N = {n:,} failed: {e}")
        if self.reference:  # its eviction last: it would have dropped blobs the paired rounds HEAD
            self.rows[0]["evict"] = self.evict(self.reference[0])
            remove_tree(self.reference[0])

    def measure(self, n):
        root = os.path.join(self.workdir, f"scale-{n}")
        cache, paths = os.path.join(root, "ocigate", "cache"), os.path.join(root, "paths")
        os.makedirs(root, exist_ok=True)
        fill = run_tool([self.args.cache_fill, "fill", cache, str(n), "--paths", paths,
                         "--sample", str(SAMPLE_IMAGES)], FILL_BUDGET_S * 3)
        os.sync()  # the fill's dirty pages are written back now, not during the figures
        self.fill_rate = fill["blobs"] / fill["fill_seconds"]
        b.log(f"N = {n:,}: filled {fill['blobs']:,} blobs in {fill['fill_seconds']:.0f} s ({self.fill_rate:.0f}/s)")
        row = {"n": n, "fill": fill, "disk_bytes": disk_bytes(cache)}
        row.update(self.serve(root, paths))
        row["cache_open"] = run_tool([self.args.cache_fill, "open", cache], 600)
        b.log(f"N = {n:,}: ready {row['ready_s']:.2f} s, RSS {row['rss_kib'] / 1024:.0f} MiB, manifest p99 "
              f"{row['manifest']['p99_us'] / 1000:.2f} ms, HEAD p99 {row['head']['p99_us'] / 1000:.2f} ms")
        if self.reference is None:
            self.reference = (root, paths)
            return row
        row["evict"] = self.evict(root)
        remove_tree(root)
        return row

    def evict(self, root):
        out = run_tool([self.args.cache_fill, "evict", os.path.join(root, "ocigate", "cache"), "--fraction", "0.1"], 1200)
        b.log(f"{root}: evicting 10% took {out['eviction_commit_seconds']:.2f} s, its files deleted after "
              f"{out['files_deleted_seconds']:.2f} s")
        return out

    def start(self, root):
        server = b.ocigate(self.args.ocigate, os.path.join(root, "ocigate"), "http://127.0.0.1:1",
                           b.policy_off(self.check_ids))
        server.start_timeout = READY_TIMEOUT
        return server.start()

    def serve(self, root, paths):
        """Starts ocigate on the filled cache; start-up time, RSS and the latency figures, in rounds
        alternated with the first size's (started again beside it) after the first size."""
        started = time.monotonic()
        server = self.start(root)
        out = {"ready_s": time.monotonic() - started, "rss_kib": b.proc_status_kib(server.pid, "VmRSS")}
        ref = None
        try:
            warm_tags(server.port, paths + ".tags")
            contestants = [("", server, paths)]
            if self.reference:
                ref = self.start(self.reference[0])
                warm_tags(ref.port, self.reference[1] + ".tags")
                contestants.append(("reference_", ref, self.reference[1]))
                settle(ref.pid)
            out["settle_s"] = settle(server.pid)
            out.update(self.latencies(contestants))
            out["rss_kib_after_load"] = b.proc_status_kib(server.pid, "VmRSS")
        finally:
            server.stop()
            if ref:
                ref.stop()
        return out

    def latencies(self, contestants):
        """Rounds of manifest GETs and HEADs, alternated (between the figures, and between the servers),
        so a burst of load from elsewhere hits one round of each."""
        load_s, rounds = self.mode["load_s"], {}
        for _ in range(ROUNDS):
            for who, server, paths in contestants:
                rounds.setdefault(who + "manifest", []).append(
                    self.tools.load(server.port, paths + ".tags", "GET", load_s, CONNECTIONS, 1, ACCEPT))
                rounds.setdefault(who + "head", []).append(
                    self.tools.load(server.port, paths + ".blobs", "HEAD", load_s, CONNECTIONS, 1))
        return {k: median_round(v) for k, v in rounds.items()}


def median_round(rounds):
    """The round with the median p99, all rounds kept beside it."""
    ordered = sorted(rounds, key=lambda r: r["p99_us"])
    return dict(ordered[len(ordered) // 2], rounds=rounds)


def growth_per_blob(rows):
    """RSS bytes added per blob between consecutive sizes measured: ocigate's, and the cache's alone."""
    out = []
    for a, c in zip(rows, rows[1:]):
        blobs = c["fill"]["blobs"] - a["fill"]["blobs"]
        cache = (c["cache_open"]["vm_rss_kib"] - a["cache_open"]["vm_rss_kib"]) * 1024 / blobs
        out.append({"from": a["n"], "to": c["n"], "bytes_per_blob": (c["rss_kib"] - a["rss_kib"]) * 1024 / blobs,
                    "cache_bytes_per_blob": cache})
    return out


def render(rows, growth):
    ms = lambda us: f"{us / 1000:.2f}"
    lines = ["| blobs | fill | on disk | ready after | RSS when ready | manifest GET p50 / p99 | HEAD blob p50 / p99 "
             "| evict 10% |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        e = r["evict"]
        lines.append(f"| {r['fill']['blobs']:,} | {r['fill']['fill_seconds']:.0f} s | {r['disk_bytes'] / b.GiB:.2f} GiB "
                     f"| {r['ready_s']:.2f} s | {r['rss_kib'] / 1024:.0f} MiB "
                     f"| {ms(r['manifest']['p50_us'])} / {ms(r['manifest']['p99_us'])} ms "
                     f"| {ms(r['head']['p50_us'])} / {ms(r['head']['p99_us'])} ms "
                     f"| {e['eviction_commit_seconds']:.2f} s ({e['evicted']:,} blobs; files deleted after "
                     f"{e['files_deleted_seconds']:.2f} s; files checked "
                     f"{e.get('checked_seconds', 0):.1f} s after open; lookups meanwhile: p99 "
                     f"{e['probe_p99_ms']:.2f} ms, worst {e['probe_worst_ms']:.0f} ms) |")
    text = "\n".join(lines) + "\n"
    if growth:
        text += "\nRSS growth per blob, ocigate (the cache alone, `cache_fill open`): " + "; ".join(
            f"{g['from']:,} → {g['to']:,}: {g['bytes_per_blob']:.0f} B ({g['cache_bytes_per_blob']:.0f} B)"
            for g in growth) + ".\n"
    return text


def goals(rows):
    """The issue's goals at the largest N measured, against the smallest."""
    if len(rows) < 2:
        return ""
    small, big = rows[0], rows[-1]

    def p99_goal(figure, label):
        mine, ref = big[figure]["p99_us"], big.get("reference_" + figure, small[figure])["p99_us"]
        return (f"{label} p99 at {big['n']:,} within 10% of {small['n']:,}",
                f"{mine / ref:.2f}× ({mine / 1000:.2f} against {ref / 1000:.2f} ms)", mine <= 1.1 * ref)

    checks = [
        (f"ready ≤ 10 s at {big['n']:,}", f"{big['ready_s']:.2f} s", big["ready_s"] <= 10),
        (f"RSS ≤ 256 MiB at {big['n']:,}", f"{big['rss_kib'] / 1024:.0f} MiB", big["rss_kib"] <= 256 * 1024),
        p99_goal("manifest", "manifest GET"),
        p99_goal("head", "HEAD blob"),
    ]
    note = (f"\nThe p99 goals compare rounds against {small['n']:,} blobs run again beside {big['n']:,}, alternated "
            f"with them in the same minutes.\n" if "reference_manifest" in big else "")
    return note + "\n| goal | measured | met? |\n|---|---|---|\n" + "".join(
        f"| {g} | {v} | {'yes' if ok else '**no**'} |\n" for g, v, ok in checks)


def main(args, started):
    if not args.cache_fill or not os.access(args.cache_fill, os.X_OK):
        raise SystemExit("bench: --scale needs the bench/cache_fill.cpp program (bench/run builds it)")
    bench = ScaleBench(args, b._workdir)
    try:
        bench.run()
    finally:
        b._cleanup()
    rows = bench.rows
    growth = growth_per_blob(rows)
    text = render(rows, growth) + goals(rows)
    if bench.skipped:
        text += "\n" + "".join(f"- {s}\n" for s in bench.skipped)
    date = b.run_span(started)
    heading = (f"`bench/run --scale`{' --' + bench.mode_name if bench.mode_name != 'full' else ''}, "
               f"{os.cpu_count()} cores, {date}; latency: median p99 of {ROUNDS} rounds of {bench.mode['load_s']} s, "
               f"{CONNECTIONS} connections (httpload); {time.monotonic() - started:.0f} s in all.")
    print("\n" + heading + "\n\n" + text)
    errors = "".join(f"- measurement error: {e}\n" for e in bench.errors)
    if errors:
        print(errors)
    results = RESULTS if bench.mode_name != "smoke" else os.path.join(b.BENCH_DIR, "results", "scale-smoke.json")
    os.makedirs(os.path.dirname(results), exist_ok=True)
    with open(results, "w") as f:
        json.dump({"date": date, "cores": os.cpu_count(), "mode": bench.mode_name, "sizes": bench.mode,
                   "sample_images": SAMPLE_IMAGES, "connections": CONNECTIONS, "rows": rows, "growth": growth,
                   "skipped": bench.skipped, "errors": bench.errors, "table": text}, f, indent=1)
        f.write("\n")
    if not args.no_readme and bench.mode_name != "smoke" and os.path.exists(b.README):
        b.rewrite_readme_section(BEGIN, END, f"{heading}\n\n{text}{errors}", "scale")
    return 1 if bench.errors or not rows else 0
