"""tools/bench: command line, the A/B loop, the report. See tools/bench --help."""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import tempfile
import time

import harness
import placement
import report
import runner

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DESCRIPTION = """\
Throughput of vhostd (A) against DPDK's own vhost library in testpmd (B).

The same peer, dpdk-testpmd with virtio-user port(s) on CPU 0, loops frames
through the back-end under test on CPU 1 ("start tx_first 32": 1024 frames
injected, then every frame received is sent again). The peer's RX rate is
read once a second over a steady-state window; the median of those readings
is the run's number. Runs alternate A, B, A, B, each with fresh processes,
sockets and DPDK file prefixes.

Each back-end's busy time (TSC cycles of its loop iterations that found
work: vhostd's PMD counters, testpmd's --record-core-cycles) says whether it
was the bottleneck (near 100%: then A/B compares back-ends) and what one
frame cost it (busy cycles per frame; "B÷A cycles" > 1: vhostd is cheaper).

Cases: reflect-64, reflect-1518 (one port; vhostd cross-connects p0 to
itself, testpmd io-forwards net_vhost0 to itself), vsv-64, vsv-1518 (two
ports; the peer mac-forwards port 0 <-> port 1 with each other's MAC as
destination; vhostd switches in L2 mode, testpmd io-forwards paired ports).
"""

EPILOG = """\
examples:
  tools/bench                         # 5 runs x 3 cases x A/B, 10 s each; writes docs/performance.md
  tools/bench --quick                 # 1 short run per case (smoke test); writes no doc
  tools/bench --runs 7 --cases reflect-64,vsv-64 --no-doc --json /tmp/r.json

Build vhostd for measurements first:
  meson setup build-bench --buildtype=release -Dtests=false && ninja -C build-bench

Exit status: 0 when every run produced numbers, 1 when a run failed, 2 on usage errors.
"""

_verbose = False


def say(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _harness_log(msg):
    if _verbose:
        say(msg)


def parse_args(argv):
    p = argparse.ArgumentParser(prog="tools/bench", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=5, help="runs per case and back-end (default 5)")
    p.add_argument("--seconds", type=int, default=10,
                   help="measurement window per run, one reading per second (default 10)")
    p.add_argument("--warmup", type=int, default=3,
                   help="seconds between 'start tx_first' and the window (default 3)")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 1 run, 3 s window, 1 s warm-up, no doc written")
    p.add_argument("--cases", default=",".join(runner.DEFAULT_CASES),
                   help="comma-separated, from: " + ", ".join(runner.CASES) +
                        f" (default {','.join(runner.DEFAULT_CASES)}; 'all' for every case)")
    p.add_argument("--backends", default="A,B",
                   help="A (vhostd), B (testpmd net_vhost), or A,B (default)")
    p.add_argument("--vhostd", default=os.path.join(ROOT, "build-bench", "daemon", "vhostd"),
                   help="vhostd binary (default build-bench/daemon/vhostd, a release build)")
    p.add_argument("--testpmd", default=shutil.which("dpdk-testpmd") or "/usr/bin/dpdk-testpmd",
                   help="dpdk-testpmd binary")
    p.add_argument("--peer-vdev-args", default="",
                   help="extra net_virtio_user devargs for the peer in every run, e.g. "
                        "'in_order=0' to keep the peer on the same datapath with A and B")
    p.add_argument("--min-pps", type=float, default=10000,
                   help="a run whose median is below this moved (almost) nothing: it fails "
                        "(default 10000)")
    p.add_argument("--doc", default=os.path.join(ROOT, "docs", "performance.md"),
                   help="the results section of this file is replaced (default docs/performance.md)")
    p.add_argument("--no-doc", action="store_true", help="do not write the doc")
    p.add_argument("--json", help="write every run's raw numbers to this file")
    p.add_argument("--per-second", action="store_true",
                   help="A: also read vhostd's counters every second and print each second's "
                        "rate and busy cycles per frame (the host's fast and slow states show "
                        "within a run); adds a SIGUSR1 per second")
    p.add_argument("--cpu-hop", default=None,
                   help="cpu-hop binary, run at both ends of every window to tell the CPUs' "
                        "placement (default: tools/cpu-hop in vhostd's build folder)")
    p.add_argument("--no-cpu-hop", action="store_true",
                   help="do not measure the CPUs' placement")
    p.add_argument("--keep", action="store_true", help="keep the work folder (logs, configs)")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="log every process start and testpmd command")
    opts = p.parse_args(argv)
    if opts.quick:
        opts.runs, opts.seconds, opts.warmup, opts.no_doc = 1, 3, 1, True
    names = list(runner.CASES) if opts.cases == "all" else \
        [c.strip() for c in opts.cases.split(",") if c.strip()]
    bad = [c for c in names if c not in runner.CASES]
    if bad or not names:
        p.error(f"unknown case(s) {bad}; known: {', '.join(runner.CASES)}")
    opts.case_list = [runner.CASES[c] for c in names]
    kinds = [k.strip().upper() for k in opts.backends.split(",") if k.strip()]
    if not kinds or any(k not in ("A", "B") for k in kinds):
        p.error("--backends takes A, B or A,B")
    opts.kinds = list(dict.fromkeys(kinds))
    if opts.runs < 1 or opts.seconds < 2 or opts.warmup < 0:
        p.error("--runs >= 1, --seconds >= 2 and --warmup >= 0")
    if "A" in opts.kinds and not os.access(opts.vhostd, os.X_OK):
        p.error(f"vhostd binary not found: {opts.vhostd}\n  build it: meson setup build-bench "
                "--buildtype=release -Dtests=false && ninja -C build-bench")
    if opts.no_cpu_hop:
        opts.cpu_hop = None
    else:
        if opts.cpu_hop is None:
            opts.cpu_hop = os.path.join(os.path.dirname(os.path.dirname(
                os.path.abspath(opts.vhostd))), "tools", "cpu-hop")
        if not os.access(opts.cpu_hop, os.X_OK):
            p.error(f"cpu-hop binary not found: {opts.cpu_hop}\n  build it: ninja -C "
                    f"{os.path.dirname(os.path.dirname(opts.cpu_hop))} tools/cpu-hop "
                    "(or pass --no-cpu-hop)")
    if not os.access(opts.testpmd, os.X_OK):
        p.error(f"dpdk-testpmd not found: {opts.testpmd} (Debian package 'dpdk')")
    if (os.cpu_count() or 1) < 2:
        p.error("needs at least 2 CPUs (the peer on CPU 0, the back-end on CPU 1)")
    return opts


def sweep_stale():
    """Removes DPDK runtime folders and work folders left by a bench that was SIGKILLed."""
    def dead(pid):
        try:
            os.kill(pid, 0)
            return False
        except ProcessLookupError:
            return True
        except PermissionError:
            return False

    runtime = runner.dpdk_runtime_dir()
    try:
        names = os.listdir(runtime)
    except OSError:
        names = []
    for name in names:
        m = re.fullmatch(r"vhb(\d+)-\d+-[A-Za-z]+", name)
        if m and dead(int(m.group(1))):
            shutil.rmtree(os.path.join(runtime, name), ignore_errors=True)
    for name in os.listdir("/tmp"):
        if name.startswith("vhb"):
            try:
                with open(os.path.join("/tmp", name, "bench.pid")) as f:
                    pid = int(f.read())
            except (OSError, ValueError):
                continue
            if dead(pid):
                shutil.rmtree(os.path.join("/tmp", name), ignore_errors=True)


def describe(res):
    if not res["ok"]:
        extra = "".join(f"\n    note: {n}" for n in res["notes"])
        return f"FAILED: {res['error']}{extra}"
    be = res["backend_stats"]
    thr = next(iter(res["backend_threads"].items()), None)
    cpu = (f", {thr[0]} on-CPU {100 * thr[1]['run']:.0f}% waiting {100 * thr[1]['wait']:.0f}%"
           if thr else "")
    polls = ""
    if res.get("peer_polls"):
        polls += f", peer empty polls {100 * res['peer_polls']['empty_share']:.0f}%"
    if be.get("polls"):
        bp = be["polls"]
        polls += f", back-end empty polls {100 * bp['empty_share']:.0f}%"
        if bp.get("busy_share") is not None:
            polls += f", busy {100 * bp['busy_share']:.0f}% of the time"
        if bp.get("cycles_per_frame"):
            polls += f", {bp['cycles_per_frame']:.0f} busy cycles/frame"
        if bp.get("streamed_share") is not None:
            polls += (f", first lines streamed for {100 * bp['streamed_share']:.0f}% of frames "
                      f"({bp['store_switches']} store switches)")
    seconds = ""
    if res.get("per_second_cycles_per_frame"):
        seconds = ", per second Mpps/busy cycles per frame: " + " ".join(
            f"{pps / 1e6:.2f}/{cyc if cyc is not None else '-'}"
            for pps, cyc in zip(res["readings_pps"], res["per_second_cycles_per_frame"]))
    if res.get("hop_before") or res.get("hop_after"):
        seconds += (f", CPU 1<->0 line round trip before/after "
                    f"{res.get('hop_before') or '-'}/{res.get('hop_after') or '-'} cycles")
    return (f"{res['median_pps'] / 1e6:.3f} Mpps median ({res['counter_pps'] / 1e6:.3f} by "
            f"counters), {res['bytes_per_packet']:.0f} B/frame, peer TX-dropped "
            f"{res['peer_tx_dropped']}, back-end drops {be['drops']}{cpu}{polls}{seconds}")


def main(argv):
    global _verbose
    opts = parse_args(argv)
    _verbose = opts.verbose
    harness.log = _harness_log  # the harness's per-command chatter, only with -v

    def on_signal(signum, _frame):
        raise SystemExit(f"tools/bench: interrupted by {signal.Signals(signum).name}")

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)

    sweep_stale()
    workdir = tempfile.mkdtemp(prefix="vhb", dir="/tmp")  # short: sun_path is 108 bytes
    with open(os.path.join(workdir, "bench.pid"), "w") as f:
        f.write(f"{os.getpid()}\n")
    command = "tools/bench" + ("" if not argv else " " + shlex.join(argv))
    meta = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "command": command,
            "runs": opts.runs, "seconds": opts.seconds, "warmup": opts.warmup,
            "load_start": report.loadavg(),
            "machine": report.machine(ROOT, opts.vhostd if "A" in opts.kinds else "not run")}
    say(f"{command}: {len(opts.case_list)} case(s) x {'/'.join(opts.kinds)} x {opts.runs} "
        f"run(s), {opts.seconds} s window; work folder {workdir}")
    say(f"CPU {meta['machine']['cpu']}, load {meta['load_start']}, vhostd "
        f"{meta['machine']['vhostd']} ({meta['machine']['buildtype']})")

    if opts.peer_vdev_args:
        meta["peer_vdev_args"] = opts.peer_vdev_args
    results = []
    failed = False
    try:
        for run in range(1, opts.runs + 1):
            for case in opts.case_list:
                for kind in opts.kinds:
                    say(f"run {run}/{opts.runs} {case.name} {kind} …")
                    res = runner.run_one(case, kind, run, workdir, opts)
                    results.append(res)
                    failed |= not res["ok"]
                    say(f"run {run}/{opts.runs} {case.name} {kind}: {describe(res)}")
                    if res["ok"]:
                        for note in res["notes"]:
                            say(f"  note: {note}")
    finally:
        meta["load_end"] = report.loadavg()
        if opts.json:
            with open(opts.json, "w") as f:
                json.dump({"meta": meta, "results": results}, f, indent=1, default=str)
        if opts.keep or failed:
            os.unlink(os.path.join(workdir, "bench.pid"))  # not stale: keep it from sweep_stale
            say(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    rows = report.summarize(opts.case_list, results)
    print()
    for kind in opts.kinds:
        print(f"peer virtio-user against {kind}: {report.peer_datapaths(results, kind)}")
    print()
    print(report.format_text(rows))
    print()
    print("Drops are summed over the runs' windows. Empty polls: the share of polls that found\n"
          "nothing (vhostd: PMD poll rounds over all its queues; testpmd: RX bursts). Busy time and\n"
          "busy cycles/frame: TSC cycles of the loop iterations that found work (vhostd's PMD\n"
          "counters; testpmd --record-core-cycles), as a share of the window and per frame taken\n"
          "in; B÷A cycles > 1 means vhostd spends fewer cycles per frame. The worker columns are\n"
          "the busy-polling thread's on-CPU and runnable-but-waiting shares of the window\n"
          "(/proc/PID/task/TID/schedstat). A/B near/far CPUs: the same ratio over only the runs\n"
          "whose CPUs 1 and 0 were placed near (a cache line's round trip, timed by cpu-hop at both\n"
          f"ends of the window, within {placement.NEAR_FACTOR:g}x the lowest seen) or both far.")
    if not opts.no_doc:
        report.write_doc(opts.doc, report.results_section(meta, opts.case_list, results, rows))
        say(f"results written to {opts.doc}")
    if failed:
        say("some runs produced no numbers: exit status 1")
        return 1
    return 0
