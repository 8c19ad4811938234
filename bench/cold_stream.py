#!/usr/bin/env python3
"""Where a cold single stream's time goes (issue #26, part 2): one client GETs a blob that neither
proxy has seen, through a fresh ocigate and a fresh Distribution proxy, alternating, and this
prints for each GET its rate with what each process and each of ocigate's threads did meanwhile:
CPU seconds (user + system, from /proc/<pid>/task/<tid>/stat), and voluntary context switches
(a thread that gave up the CPU to wait), with the upstream's and the client's CPU. The machine's idle
share comes from /proc/stat. With --skopeo it does the same for `skopeo copy` of 20 gzip layers of 5 MiB.

  bench/cold_stream.py [--ocigate BIN] [--size MiB] [--rounds N] [--only ocigate|peer] [--skopeo]

A figure of this script is not a bench row: it explains the rows "cold blob, 1 client" and "cold pull
overhead" of bench/run.
Builds on bench/bench.py's helpers (processes, upstream seeding, blobget); cleans up on exit.
"""

import argparse
import atexit
import os
import resource
import signal
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def threads_of(pid):
    """{tid: (name, cpu seconds, voluntary switches, involuntary switches)} of a live process."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                stat = f.read()
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                status = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        cpu = (int(fields[11]) + int(fields[12])) / TICK
        out[tid] = (name, cpu, int(status["voluntary_ctxt_switches"]), int(status["nonvoluntary_ctxt_switches"]))
    return out


def machine_times():
    with open("/proc/stat") as f:
        cpu = [int(x) for x in f.readline().split()[1:]]
    return sum(cpu), cpu[3] + cpu[4]  # total, idle + iowait


def process_cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def measured(proxy, upstream, action):
    """Runs action() and returns (its result, per-thread deltas of the proxy, upstream CPU s, client CPU s,
    machine idle share). The client is this script's child that action() ran to its end."""
    before, up_before, (total0, idle0) = threads_of(proxy.pid), process_cpu(upstream.pid), machine_times()
    client_before = children_cpu()
    result = action()
    after, up_after, (total1, idle1) = threads_of(proxy.pid), process_cpu(upstream.pid), machine_times()
    client = children_cpu() - client_before
    deltas = []
    for tid, (name, cpu, vol, invol) in after.items():
        b = before.get(tid, (name, 0.0, 0, 0))
        if cpu - b[1] > 0.005 or vol - b[2] > 10:
            deltas.append((name, tid, cpu - b[1], vol - b[2], invol - b[3]))
    deltas.sort(key=lambda d: -d[2])
    idle = (idle1 - idle0) / max(1, total1 - total0)
    return result, deltas, up_after - up_before, client, idle


def children_cpu():
    """CPU seconds of this script's finished children: the client (blobget, skopeo) once it has exited."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def push_twenty(port, layers=20, size=5 * bench.MiB):
    pusher = bench.Pusher(port)
    pushed = [pusher.push_bytes("bench/twenty", bench.gzip_tar_layer(f"app/part{i}.bin", size)) for i in range(layers)]
    pusher.push_image("bench/twenty", "v1", [(digest, size) for digest in pushed])


def alternate(args, upstream, off, fetch, shown):
    """Rounds of fetch(port) straight from the upstream, then through a fresh ocigate and a fresh peer (the order
    alternating), each printed with shown(result) and what every process and ocigate's threads did meanwhile."""
    wd = bench._workdir
    up_url = f"http://127.0.0.1:{upstream.port}"
    who_list = [args.only] if args.only else ["ocigate", "peer"]
    for r in range(args.rounds):
        os.sync()
        result, _, up_cpu, client, idle = measured(upstream, upstream, lambda: fetch(upstream.port))
        print(f"round {r + 1}: direct {shown(result)} (upstream CPU {up_cpu:.2f} s, client CPU {client:.2f} s, "
              f"idle {100 * idle:.0f}%)")
        for who in (who_list if r % 2 == 0 else list(reversed(who_list))):
            directory = os.path.join(wd, f"{who}-{r}")
            bench.settle(wd, args.touch)  # as bench/run: the cache's writes go into resident memory
            if who == "ocigate":
                server = bench.ocigate(args.ocigate, directory, up_url, off).start()
            else:
                server = bench.registry(directory, proxy_url=up_url).start()
            result, deltas, up_cpu, client, idle = measured(server, upstream, lambda: fetch(server.port))
            total = sum(d[2] for d in deltas)
            print(f"  {who}: {shown(result)}; proxy CPU {total:.2f} s, upstream CPU {up_cpu:.2f} s, "
                  f"client CPU {client:.2f} s, machine idle {100 * idle:.0f}%")
            for name, tid, cpu, vol, invol in deltas[:8]:
                print(f"    {name:>16} {tid:>7}: {cpu:5.2f} s CPU, {vol:6d} waits, {invol:5d} preempted")
            server.destroy()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ocigate", default=os.environ.get("OCIGATE_BIN", bench.DEFAULT_BIN))
    ap.add_argument("--size", type=int, default=1024, help="blob size in MiB (default 1024)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", choices=("ocigate", "peer"))
    ap.add_argument("--skopeo", action="store_true",
                    help="instead: `skopeo copy` of an image of 20 gzip layers of 5 MiB (bench/run's cold pull overhead)")
    args = ap.parse_args()
    args.touch = (4 * 20 * 5 if args.skopeo else 2 * args.size) * bench.MiB  # as bench/run
    bench._workdir = tempfile.mkdtemp(prefix="ocigate-bench-cold-", dir="/tmp")
    atexit.register(bench._cleanup)
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, bench._on_signal)
    wd = bench._workdir
    off = bench.policy_off(bench.policy_check_ids(args.ocigate, wd))
    upstream = bench.registry(os.path.join(wd, "upstream")).start()
    if args.skopeo:
        push_twenty(upstream.port)
        dest = os.path.join(wd, "copy")
        alternate(args, upstream, off, lambda port: bench.skopeo_copy(port, "bench/twenty:v1", dest),
                  lambda seconds: f"{seconds:.3f} s")
    else:
        tools = bench.Tools(wd)
        blob = os.path.join(wd, "blob.bin")
        digest = bench.make_random_file(blob, args.size * bench.MiB)
        with open(blob, "rb") as f:
            bench.Pusher(upstream.port).push_blob("bench/big", f, digest, args.size * bench.MiB)
        path = f"/v2/bench/big/blobs/{digest}"
        alternate(args, upstream, off, lambda port: tools.get(port, path, 1)["bytes_per_second"] / bench.GiB,
                  lambda rate: f"{rate:.2f} GiB/s")
    upstream.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
