"""tools/bench idle: what an idle PMD costs, how fast it wakes, and what sleeping costs
under load; vhostd in adaptive idle mode against vhostd busy-polling. See --help."""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import statistics
import tempfile
import time
import traceback
from types import SimpleNamespace

import harness
import parse
import procs
import report
import runner

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

MODES = ("adaptive", "poll")


def idle_yaml(opts, mode):
    """vhostd's dataplane.idle setting for `mode`."""
    if mode == "poll":
        return "{ mode: poll }"
    return f"{{ mode: adaptive, poll_us: {opts.poll_us}, max_sleep_us: {opts.max_sleep_us} }}"

PARTS = ("cpu", "wake", "throughput")

# Idle gap before each frame (us) -> frames per run; the quick variant.
DEFAULT_GAPS = "1000:2000,10000:500,1000000:30"
QUICK_GAPS = "1000:200,10000:30,1000000:2"

# Targets (issue 5).
CPU_TARGET = 0.01          # adaptive: at most 1% of one core when idle
WAKE_TARGET_US = 20.0      # adaptive p99 at most this much above poll p99
TPUT_TARGET = 0.95         # adaptive full-load rate at least this share of poll's

BEGIN = "<!-- tools/bench idle results: begin (generated, do not edit by hand) -->"
END = "<!-- tools/bench idle results: end -->"

DESCRIPTION = """\
vhostd's idle modes side by side: `dataplane.idle.mode: adaptive` (poll_us
200, max_sleep_us 1000: the PMD sleeps until a guest kick wakes it)
against `poll` (the PMD busy-polls forever). vhostd reflects one port to
itself (xconnect [p0, p0]), its PMD pinned to CPU 1; the peers run on CPU 0.

  cpu         vhostd's CPU time (all threads, /proc/PID/task/*/stat) over
              --seconds with a virtio-user peer attached (dpdk-testpmd at its
              prompt: port started, no traffic).
  wake        round trips of single frames (tools/vhost-ping) after idle
              gaps of 1 ms, 10 ms and 1 s: p50 / p99 / max. Beside them, in
              the adaptive runs, the host's wake floor after the same gaps
              (tools/wake-floor: a thread on CPU 1 asleep in epoll_pwait2 on
              an eventfd, woken from CPU 0, no vhostd involved).
  throughput  the full-load loop of `tools/bench` (testpmd io forwarding,
              start tx_first 32, 64-byte frames): Mpps, adaptive / poll.

Runs alternate the two modes (adaptive, poll, then poll, adaptive, ...), each
with fresh processes, sockets and DPDK file prefixes.
"""

EPILOG = """\
examples:
  tools/bench idle                      # 3 runs, 60 s CPU windows; writes docs/performance.md
  tools/bench idle --quick              # smoke test, well under a minute; writes no doc
  tools/bench idle --parts wake --gaps 1000:5000 --runs 5 --no-doc

Build vhostd, vhost-ping and wake-floor for measurements first:
  meson setup build-bench --buildtype=release -Dtests=false && ninja -C build-bench

Exit status: 0 when every part produced numbers, 1 when one did not, 2 on usage errors.
Targets (adaptive mode, issue 5): idle CPU <= 1% of a core; wake-up p99 <= 20 us above
the busy-poll p99 at the same gap; full-load rate >= 0.95 x poll.
"""

_verbose = False


def say(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _harness_log(msg):
    if _verbose:
        say(msg)


def _parse_gaps(text):
    gaps = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        m = re.fullmatch(r"(\d+):(\d+)", item)
        if not m or int(m[1]) < 0 or int(m[2]) < 1:
            raise ValueError(item)
        gaps.append((int(m[1]), int(m[2])))
    if not gaps:
        raise ValueError(text)
    return gaps


def gap_label(us):
    if us >= 1_000_000 and us % 1_000_000 == 0:
        return f"{us // 1_000_000} s"
    if us >= 1000 and us % 1000 == 0:
        return f"{us // 1000} ms"
    return f"{us} us"


def parse_args(argv):
    p = argparse.ArgumentParser(prog="tools/bench idle", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3, help="runs per part and mode (default 3)")
    p.add_argument("--seconds", type=int, default=60,
                   help="cpu: the idle window per run (default 60)")
    p.add_argument("--gaps", default=DEFAULT_GAPS,
                   help="wake: GAP_US:FRAMES,... idle gap before each frame and frames per run "
                        f"(default {DEFAULT_GAPS})")
    p.add_argument("--tput-runs", type=int, default=5,
                   help="throughput: runs per mode (default 5, as tools/bench)")
    p.add_argument("--tput-seconds", type=int, default=10,
                   help="throughput: window per run, one reading per second (default 10)")
    p.add_argument("--warmup", type=int, default=3,
                   help="throughput: seconds between 'start tx_first' and the window (default 3)")
    p.add_argument("--parts", default=",".join(PARTS),
                   help=f"comma-separated, from: {', '.join(PARTS)} (default all)")
    p.add_argument("--modes", default=",".join(MODES),
                   help="adaptive, poll or both (default adaptive,poll)")
    p.add_argument("--poll-us", type=int, default=200,
                   help="adaptive mode: poll_us (default 200, vhostd's default)")
    p.add_argument("--max-sleep-us", type=int, default=1000,
                   help="adaptive mode: max_sleep_us (default 1000, vhostd's default)")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 1 run, 3 s CPU window, gaps " + QUICK_GAPS +
                        ", 3 s throughput window after 1 s; no doc written")
    p.add_argument("--vhostd", default=os.path.join(ROOT, "build-bench", "daemon", "vhostd"),
                   help="vhostd binary (default build-bench/daemon/vhostd, a release build)")
    p.add_argument("--vhost-ping", default=None,
                   help="vhost-ping binary (default: tools/vhost-ping in vhostd's build folder)")
    p.add_argument("--wake-floor", default=None,
                   help="wake-floor binary (default: tools/wake-floor in vhostd's build folder)")
    p.add_argument("--testpmd", default=shutil.which("dpdk-testpmd") or "/usr/bin/dpdk-testpmd",
                   help="dpdk-testpmd binary")
    p.add_argument("--doc", default=os.path.join(ROOT, "docs", "performance.md"),
                   help="its idle results section is replaced (default docs/performance.md)")
    p.add_argument("--no-doc", action="store_true", help="do not write the doc")
    p.add_argument("--json", help="write every run's raw numbers to this file")
    p.add_argument("--keep", action="store_true", help="keep the work folder (logs, configs)")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="log every process start and testpmd command")
    opts = p.parse_args(argv)
    if opts.quick:
        opts.runs, opts.tput_runs, opts.seconds, opts.tput_seconds, opts.warmup = 1, 1, 3, 3, 1
        opts.gaps, opts.no_doc = QUICK_GAPS, True
    try:
        opts.gap_list = _parse_gaps(opts.gaps)
    except ValueError as exc:
        p.error(f"--gaps: {exc}: expected GAP_US:FRAMES[,GAP_US:FRAMES...]")
    opts.part_list = [x.strip() for x in opts.parts.split(",") if x.strip()]
    if not opts.part_list or any(x not in PARTS for x in opts.part_list):
        p.error(f"--parts takes some of {', '.join(PARTS)}")
    opts.mode_list = [x.strip() for x in opts.modes.split(",") if x.strip()]
    if not opts.mode_list or any(x not in MODES for x in opts.mode_list):
        p.error("--modes takes adaptive, poll or adaptive,poll")
    opts.mode_list = list(dict.fromkeys(opts.mode_list))
    if opts.poll_us < 0 or opts.max_sleep_us < 1:
        p.error("--poll-us >= 0 and --max-sleep-us >= 1")
    if opts.runs < 1 or opts.tput_runs < 1 or opts.seconds < 1 or opts.tput_seconds < 2 or \
            opts.warmup < 0:
        p.error("--runs >= 1, --tput-runs >= 1, --seconds >= 1, --tput-seconds >= 2, "
                "--warmup >= 0")
    if not os.access(opts.vhostd, os.X_OK):
        p.error(f"vhostd binary not found: {opts.vhostd}\n  build it: meson setup build-bench "
                "--buildtype=release -Dtests=false && ninja -C build-bench")
    if opts.vhost_ping is None:
        opts.vhost_ping = os.path.join(os.path.dirname(os.path.dirname(
            os.path.abspath(opts.vhostd))), "tools", "vhost-ping")
    if "wake" in opts.part_list and not os.access(opts.vhost_ping, os.X_OK):
        p.error(f"vhost-ping binary not found: {opts.vhost_ping}\n  build it: ninja -C "
                f"{os.path.dirname(os.path.dirname(opts.vhost_ping))} tools/vhost-ping")
    if opts.wake_floor is None:
        opts.wake_floor = os.path.join(os.path.dirname(opts.vhost_ping), "wake-floor")
    if "wake" in opts.part_list and not os.access(opts.wake_floor, os.X_OK):
        p.error(f"wake-floor binary not found: {opts.wake_floor}\n  build it: ninja -C "
                f"{os.path.dirname(os.path.dirname(opts.wake_floor))} tools/wake-floor")
    if not os.access(opts.testpmd, os.X_OK):
        p.error(f"dpdk-testpmd not found: {opts.testpmd} (Debian package 'dpdk')")
    if (os.cpu_count() or 1) < 2:
        p.error("needs at least 2 CPUs (the peers on CPU 0, vhostd's PMD on CPU 1)")
    return opts


def _sub_opts(opts, mode, seconds, warmup):
    """What runner.RunContext / runner.run_one read, for one mode."""
    return SimpleNamespace(testpmd=opts.testpmd, vhostd=opts.vhostd, peer_vdev_args="",
                           seconds=seconds, warmup=warmup, min_pps=10000,
                           idle_yaml=idle_yaml(opts, mode))


def pmd_stats(backend):
    """SIGUSR1 to vhostd; its per-PMD counters: {"pmd0": {...}}."""
    return backend.snapshot()[1]


def _cpu_stat():
    """Aggregate /proc/stat CPU counters: (steal, total) in ticks."""
    try:
        with open("/proc/stat") as f:
            vals = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return vals[7] if len(vals) > 7 else 0, sum(vals[:8])


def _run_part(fn, ctx, res):
    """Runs fn(); failures become res["error"], logs are dumped, processes closed."""
    try:
        fn()
        res["ok"] = res["error"] is None
    except harness.TestFailure as exc:
        res["error"] = str(exc)
    except Exception as exc:  # noqa: BLE001 - a bench bug fails the run, not the tool
        res["error"] = f"unexpected error: {exc!r}"
        traceback.print_exc()
    except BaseException:
        res["error"] = "interrupted"
        raise
    finally:
        if not res["ok"] and res["error"] != "interrupted":
            import sys

            sys.stderr.write(f"\n{res['name']} FAILED: {res['error']}\n")
            ctx.dump_logs()
        ctx.close()


# --------------------------------------------------------------------------
# the three parts


def run_cpu(opts, mode, index, workdir):
    """vhostd's CPU time with an idle peer attached."""
    name = f"cpu-{mode}-{index}"
    res = {"part": "cpu", "mode": mode, "run": index, "name": name, "ok": False, "error": None,
           "notes": []}
    ctx = runner.RunContext(workdir, name, _sub_opts(opts, mode, opts.seconds, 0))

    def body():
        sock = ctx.path("p0.sock")
        backend = procs.VhostdBackend(ctx, [sock], False)
        peer = procs.start_peer(ctx, [sock], False)  # at its prompt: port up, no forwarding
        peer.wait_link_up(0, timeout=procs.START_S)
        backend.wait_ready()
        time.sleep(0.5 if opts.quick else 2)  # connection set-up done, PMD settled
        s0 = pmd_stats(backend)
        c0, t0 = parse.process_cpu(backend.pid), time.monotonic()
        q0 = parse.process_cpu(peer.pid)
        time.sleep(opts.seconds)
        c1, t1 = parse.process_cpu(backend.pid), time.monotonic()
        q1 = parse.process_cpu(peer.pid)
        s1 = pmd_stats(backend)
        wall = t1 - t0
        use = parse.process_cpu_delta(c0, c1, wall)
        pmd = parse.pmd_delta(s0, s1).get("pmd0", {})
        res.update({
            "window_s": wall,
            "cpu_share": use["total"]["cpu"],       # utime+stime, /proc/PID/task/*/stat
            "run_share": use["total"]["run"],       # on-CPU time, schedstat
            "threads": use["threads"],
            "pmd": {k: v / wall for k, v in pmd.items()},  # per second
            "peer_cpu_share": parse.process_cpu_delta(q0, q1, wall)["total"]["cpu"],
        })
        try:
            peer.quit(procs.STOP_S)
            backend.stop()
        except harness.TestFailure as exc:
            res["notes"].append(f"teardown: {exc}")

    _run_part(body, ctx, res)
    return res


def run_ping(ctx, opts, sock, gap_us, frames, label):
    tool = opts.vhost_ping
    samples = ctx.path(f"ping-{gap_us}.samples")
    # Frames not back within 1 s are lost; the watchdog allows every frame its
    # gap plus that timeout, plus start-up.
    watchdog = int(frames * (gap_us / 1e6 + 0.01) + 90)
    argv = [tool, "--eal", f"-l 0 --no-huge -m 1024 --no-pci --file-prefix {ctx.prefix('ping')}",
            "--port", f"path={sock},queue_size=1024", "--count", str(frames),
            "--gap-us", str(gap_us), "--timeout-ms", "1000", "--json", "--samples", samples]
    proc = harness.Process(f"ping-{label}", argv, ctx.path(f"ping-{gap_us}.log"),
                           timeout=watchdog)
    ctx.register(proc)
    rc = proc.wait(watchdog + 5)
    harness.wait_for(lambda: not proc._reader.is_alive(), 5)
    out = proc.output()
    summary = next((json.loads(line) for line in reversed(out.splitlines())
                    if line.startswith('{"result"')), None)
    harness.check(rc is not None, f"vhost-ping ({label} gaps) did not finish")
    errors = [line for line in out.splitlines() if line.startswith("vhost-ping: error:")]
    harness.check(summary is not None, f"vhost-ping ({label} gaps) exited "
                                       f"{harness.describe_status(rc)} with no result: "
                                       f"{' / '.join(errors)}")
    with open(samples) as f:
        rtts, lost = parse.ping_samples(f.read())
    selfs = []
    with open(samples) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3:
                selfs.append(int(parts[2]))
    return {"gap_us": gap_us, "frames": frames, "rc": rc, "rtts_ns": rtts, "lost": lost,
            "self_stalled": sum(1 for x in selfs if x > 0), "summary": summary}


def run_floor(ctx, opts, gap_us, frames, label):
    """tools/wake-floor: the host's own wake-up cost after the same gaps, with
    the waiter on vhostd's PMD CPU and the sender on vhost-ping's."""
    samples = ctx.path(f"floor-{gap_us}.samples")
    watchdog = int(frames * (gap_us / 1e6 + 0.01) + 60)
    argv = [opts.wake_floor, "--waiter-cpu", "1", "--sender-cpu", "0", "--gap-us", str(gap_us),
            "--count", str(frames), "--json", "--samples", samples]
    proc = harness.Process(f"floor-{label}", argv, ctx.path(f"floor-{gap_us}.log"),
                           timeout=watchdog)
    ctx.register(proc)
    rc = proc.wait(watchdog + 5)
    harness.check(rc == 0, f"wake-floor ({label} gaps) exited {harness.describe_status(rc)}")
    with open(samples) as f:
        v = sorted(parse.ping_samples(f.read())[0])
    harness.check(len(v) == frames, f"wake-floor ({label} gaps) measured {len(v)} of {frames}")
    return {"p50": parse.percentile(v, 0.5) / 1e3, "p99": parse.percentile(v, 0.99) / 1e3,
            "max": v[-1] / 1e3}


def run_wake(opts, mode, index, workdir):
    """Round trips after idle gaps, one vhost-ping per gap, one vhostd for all."""
    name = f"wake-{mode}-{index}"
    res = {"part": "wake", "mode": mode, "run": index, "name": name, "ok": False, "error": None,
           "notes": [], "gaps": []}
    total = sum(frames * (gap / 1e6 + 0.002) + 10 for gap, frames in opts.gap_list)
    ctx = runner.RunContext(workdir, name, _sub_opts(opts, mode, int(total), 0))

    def body():
        sock = ctx.path("p0.sock")
        backend = procs.VhostdBackend(ctx, [sock], False)
        s0 = pmd_stats(backend)
        for gap_us, frames in opts.gap_list:
            th0 = backend.threads().get("pmd0")
            r = run_ping(ctx, opts, sock, gap_us, frames, gap_label(gap_us))
            th1 = backend.threads().get("pmd0")
            if th0 and th1:
                # Time pmd0 was runnable but had no CPU: woken, not yet running.
                r["pmd_wait_ms"] = 1e3 * (th1["wait_s"] - th0["wait_s"])
            v = sorted(r["rtts_ns"])
            if v:
                r["p50"], r["p99"], r["max"] = (parse.percentile(v, 0.5) / 1e3,
                                                parse.percentile(v, 0.99) / 1e3, v[-1] / 1e3)
            if mode == "adaptive":
                # Right after the round trips, with vhostd idle: what waking any
                # sleeping thread on the PMD's CPU costs here.
                r["floor"] = run_floor(ctx, opts, gap_us, frames, gap_label(gap_us))
            res["gaps"].append(r)
            if r["lost"]:
                res["notes"].append(f"{gap_label(gap_us)} gaps: {r['lost']} of {frames} frames "
                                    "lost (not back within 1 s)")
            backend.check_alive()
        s1 = pmd_stats(backend)
        res["pmd"] = parse.pmd_delta(s0, s1).get("pmd0", {})
        try:
            backend.stop()
        except harness.TestFailure as exc:
            res["notes"].append(f"teardown: {exc}")

    _run_part(body, ctx, res)
    return res


def run_throughput(opts, mode, index, workdir):
    """tools/bench's reflect-64 loop against vhostd in `mode`."""
    case = runner.Case(f"fullload-{mode}", 64, False, TPUT_TARGET)
    sub = _sub_opts(opts, mode, opts.tput_seconds, opts.warmup)
    r = runner.run_one(case, "A", index, workdir, sub)
    res = {"part": "throughput", "mode": mode, "run": index, "name": f"{case.name}-A-{index}",
           "ok": r["ok"], "error": r["error"], "notes": r["notes"], "raw": r}
    # vhostd's per-PMD counters at the window's start and end (the SIGUSR1s
    # of the throughput run) and at exit.
    try:
        with open(os.path.join(workdir, res["name"], "vhostd.log"), errors="replace") as f:
            blocks = parse.vhostd_pmd_stats(f.read())
        if len(blocks) >= 2:
            res["pmd"] = parse.pmd_delta(blocks[0], blocks[1]).get("pmd0", {})
    except OSError:
        pass
    return res


RUNNERS = {"cpu": run_cpu, "wake": run_wake, "throughput": run_throughput}


def describe(res):
    if not res["ok"]:
        return f"FAILED: {res['error']}"
    if res["part"] == "cpu":
        thr = ", ".join(f"{c} {100 * t['cpu']:.2f}%" for c, t in sorted(res["threads"].items()))
        pmd = res["pmd"]
        return (f"vhostd {100 * res['cpu_share']:.2f}% of a core (on-CPU {100 * res['run_share']:.2f}%;"
                f" {thr}); pmd0 per second: sleeps {pmd.get('sleeps', 0):.0f}, timeouts "
                f"{pmd.get('timeouts', 0):.0f}, woken {pmd.get('woken', 0):.0f}")
    if res["part"] == "wake":
        parts = []
        for g in res["gaps"]:
            if "p50" in g:
                wait = g.get("pmd_wait_ms")
                parts.append(f"{gap_label(g['gap_us'])}: p50 {g['p50']:.1f} p99 {g['p99']:.1f} "
                             f"max {g['max']:.1f} us"
                             f"{', lost ' + str(g['lost']) if g['lost'] else ''}"
                             f"{f', pmd0 waited {wait:.1f} ms' if wait is not None else ''}")
        return "; ".join(parts)
    r = res["raw"]
    return (f"{r['median_pps'] / 1e6:.3f} Mpps median; pmd0 sleeps in the window "
            f"{res.get('pmd', {}).get('sleeps', '?')}")


# --------------------------------------------------------------------------
# summary and report


def _stats(values):
    return (statistics.median(values), min(values), max(values)) if values else None


def summarize(opts, results):
    out = {"cpu": {}, "wake": {}, "throughput": {}}
    for mode in opts.mode_list:
        good = [r for r in results if r["ok"] and r["mode"] == mode]
        cpu = [r for r in good if r["part"] == "cpu"]
        if cpu:
            threads = {}
            for r in cpu:
                for comm, t in r["threads"].items():
                    threads.setdefault(comm, []).append(t["cpu"])
            out["cpu"][mode] = {
                "runs": len(cpu),
                "cpu": _stats([r["cpu_share"] for r in cpu]),
                "run": _stats([r["run_share"] for r in cpu]),
                "threads": {c: statistics.median(v) for c, v in threads.items()},
                "pmd": {k: statistics.median(r["pmd"].get(k, 0) for r in cpu)
                        for k in ("sleeps", "timeouts", "woken", "backouts")},
                "peer": statistics.median(r["peer_cpu_share"] for r in cpu),
            }
        wake = [r for r in good if r["part"] == "wake"]
        for gap_us, _frames in opts.gap_list:
            runs = [g for r in wake for g in r["gaps"] if g["gap_us"] == gap_us and "p50" in g]
            if runs:
                # Medians of the per-run percentiles: one disturbed run (the
                # machine is shared) does not decide the figure. Max over all.
                out["wake"].setdefault(gap_us, {})[mode] = {
                    "n": sum(len(g["rtts_ns"]) for g in runs),
                    "sent": sum(g["frames"] for g in runs),
                    "lost": sum(g["lost"] for g in runs),
                    "self_stalled": sum(g["self_stalled"] for g in runs),
                    "runs": len(runs),
                    "p50": statistics.median(g["p50"] for g in runs),
                    "p99": statistics.median(g["p99"] for g in runs),
                    "max": max(g["max"] for g in runs),
                    "per_run": [(g["p50"], g["p99"], g["max"], g.get("pmd_wait_ms"))
                                for g in runs]}
                floors = [g["floor"] for g in runs if "floor" in g]
                if floors:
                    out["wake"][gap_us]["floor"] = {
                        "runs": len(floors),
                        "p50": statistics.median(f["p50"] for f in floors),
                        "p99": statistics.median(f["p99"] for f in floors),
                        "max": max(f["max"] for f in floors)}
        if wake:
            out.setdefault("wake_pmd", {})[mode] = {
                k: sum(r["pmd"].get(k, 0) for r in wake) for k in ("sleeps", "woken", "timeouts",
                                                                   "backouts")}
        tput = [r for r in good if r["part"] == "throughput"]
        if tput:
            out["throughput"][mode] = {
                "runs": len(tput),
                "pps": _stats([r["raw"]["median_pps"] for r in tput]),
                "sleeps": statistics.median(r.get("pmd", {}).get("sleeps", 0) for r in tput),
                "per_run": [r["raw"]["median_pps"] for r in tput],
                "be_run": statistics.median(
                    next(iter(r["raw"]["backend_threads"].values()), {"run": 0})["run"]
                    for r in tput),
                "be_wait": statistics.median(
                    next(iter(r["raw"]["backend_threads"].values()), {"wait": 0})["wait"]
                    for r in tput),
            }
    return out


def _pct(x, digits=2):
    return "n/a" if x is None else f"{100 * x:.{digits}f}%"


def _verdict(ok):
    return "met" if ok else "not met"


def tables(opts, summary):
    """[(title, rows)] with rows[0] the header."""
    out = []
    cpu = summary["cpu"]
    if cpu:
        rows = [["mode", "runs", "vhostd CPU, % of one core: median (min–max)",
                 "on-CPU (schedstat)", "pmd0", "control thread", "pmd0 sleeps / timeouts / "
                 "kick wake-ups per s", "target"]]
        for mode in opts.mode_list:
            s = cpu.get(mode)
            if not s:
                rows.append([mode, "0", "no data", "", "", "", "", ""])
                continue
            med, lo, hi = s["cpu"]
            target = ""
            if mode == "adaptive":
                target = f"≤ 1% {_verdict(round(med, 4) <= CPU_TARGET)}"
            ctl = s["threads"].get("vhostd")
            rows.append([mode, str(s["runs"]), f"{_pct(med)} ({_pct(lo)}–{_pct(hi)})",
                         _pct(s["run"][0]), _pct(s["threads"].get("pmd0")), _pct(ctl),
                         f"{s['pmd']['sleeps']:.0f} / {s['pmd']['timeouts']:.0f} / "
                         f"{s['pmd']['woken']:.0f}", target])
        out.append((f"Idle CPU ({opts.seconds} s windows, a virtio-user peer attached, no "
                    "traffic)", rows))
    wake = summary["wake"]
    if wake:
        rows = [["idle gap", "frames per mode", "poll: p50 / p99 / max µs",
                 "adaptive: p50 / p99 / max µs", "p50, p99 adaptive − poll",
                 "host wake floor: p50 / p99 / max µs", "lost (poll; adaptive)", "target"]]
        for gap_us, _f in opts.gap_list:
            w = wake.get(gap_us, {})
            p, a = w.get("poll"), w.get("adaptive")

            def cell(s):
                return f"{s['p50']:.1f} / {s['p99']:.1f} / {s['max']:.1f}" if s else "no data"

            delta = target = ""
            if p and a:
                d = a["p99"] - p["p99"]
                delta = f"{a['p50'] - p['p50']:+.1f}, {d:+.1f} µs"
                target = f"≤ +{WAKE_TARGET_US:.0f} µs {_verdict(d <= WAKE_TARGET_US)}"
            n = max((s["sent"] for s in (p, a) if s), default=0)
            rows.append([gap_label(gap_us), str(n), cell(p), cell(a), delta,
                         cell(w.get("floor")),
                         f"{p['lost'] if p else '–'}; {a['lost'] if a else '–'}", target])
        out.append(("Round trip of a single frame after an idle gap (vhost-ping, 64 B): medians "
                    "of the per-run p50 and p99, max over all runs. Host wake floor: "
                    "tools/wake-floor after the same gaps, no vhostd involved (one thread on "
                    "CPU 1 asleep in epoll_pwait2 on an eventfd, woken from CPU 0): the part "
                    "of a wake-up no back-end can avoid on this machine", rows))
    tput = summary["throughput"]
    if tput:
        rows = [["case", "runs poll+adaptive", "poll Mpps: median (min–max)",
                 "adaptive Mpps: median (min–max)", "adaptive / poll",
                 "adaptive pmd0 sleeps in window", "pmd0 on-CPU / waiting (poll; adaptive)",
                 "target"]]
        p, a = tput.get("poll"), tput.get("adaptive")

        def rng(s):
            return (f"{s['pps'][0] / 1e6:.3f} ({s['pps'][1] / 1e6:.3f}–{s['pps'][2] / 1e6:.3f})"
                    if s else "no data")

        def cpu(s):
            return f"{100 * s['be_run']:.0f}% / {100 * s['be_wait']:.0f}%" if s else "–"

        ratio = target = ""
        if p and a:
            r = a["pps"][0] / p["pps"][0]
            ratio = f"{r:.2f}"
            target = f"≥ {TPUT_TARGET:.2f} {_verdict(round(r, 2) >= TPUT_TARGET)}"
        rows.append(["reflect-64, full load", f"{p['runs'] if p else 0}+{a['runs'] if a else 0}",
                     rng(p), rng(a), ratio, f"{a['sleeps']:.0f}" if a else "–",
                     f"{cpu(p)}; {cpu(a)}", target])
        out.append((f"Throughput under full load ({opts.tput_seconds} s windows after "
                    f"{opts.warmup} s, testpmd io loop, start tx_first 32)", rows))
    return out


def wake_runs_table(opts, summary):
    """Per-run wake-up figures, in run order, so a disturbed run can be seen."""
    rows = [["idle gap", "mode", "p50 per run, µs", "p99 per run, µs", "max per run, µs",
             "pmd0 runnable but waiting, ms per run"]]
    for gap_us, _f in opts.gap_list:
        for mode in opts.mode_list:
            s = summary["wake"].get(gap_us, {}).get(mode)
            if not s:
                continue
            pr = s["per_run"]
            rows.append([gap_label(gap_us), mode, ", ".join(f"{x[0]:.1f}" for x in pr),
                         ", ".join(f"{x[1]:.1f}" for x in pr), ", ".join(f"{x[2]:.0f}" for x in pr),
                         ", ".join("?" if x[3] is None else f"{x[3]:.1f}" for x in pr)])
    return rows if len(rows) > 1 else None


def notes(results):
    out = [f"{r['name']}: {n}" for r in results for n in r["notes"]]
    out += [f"{r['name']}: FAILED: {r['error']}" for r in results if not r["ok"]]
    return out


def doc_section(meta, opts, summary, results):
    m = meta["machine"]
    lines = [BEGIN, "", f"### Latest run: {meta['date']}", "", "```sh", meta["command"], "```", "",
             f"* CPU: {m['cpu']}, {m['ncpu']} CPUs; kernel {m['kernel']}; DPDK {m['dpdk']}",
             f"* vhostd: {m['vhostd']}, commit {m['git']}, buildtype {m['buildtype']}; "
             f"vhost-ping: {meta['vhost_ping']}; wake-floor: {meta.get('wake_floor', 'not run')}",
             f"* {opts.runs} run(s) of cpu and wake, {opts.tput_runs} of throughput, per mode; "
             "modes alternating (A, B, then B, A, ...); adaptive = "
             f"`{idle_yaml(opts, 'adaptive')}`",
             f"* load average at start / end: {meta['load_start']} / {meta['load_end']}; CPU "
             f"time stolen by the hypervisor during the run: {meta.get('steal', 'unknown')}"]
    # The busy pollers of the throughput part alone make a load of 2: judge by
    # how long the PMD waited for a CPU instead.
    waits = [t["be_wait"] for t in summary["throughput"].values()]
    waits += [x[3] / 1e3 / (g / 1e6 * f) for g, f in opts.gap_list
              for mode_s in summary["wake"].get(g, {}).values() if isinstance(mode_s, dict)
              for x in mode_s.get("per_run", []) if x[3] is not None]
    if waits and max(waits) > 0.05:
        lines.append(f"* **Preliminary: the machine was busy with other work**: vhostd's PMD "
                     f"spent up to {100 * max(waits):.0f}% of a window runnable but without a CPU.")
    for title, rows in tables(opts, summary):
        lines += ["", f"{title}:", "", report.markdown_table(rows)]
    per_run = wake_runs_table(opts, summary)
    if per_run:
        lines += ["", "Wake-up runs one by one (run order; modes alternate):", "",
                  report.markdown_table(per_run)]
    wp = summary.get("wake_pmd", {}).get("adaptive")
    if wp:
        lines += ["", f"Adaptive wake runs, pmd0 over all gaps: sleeps {wp['sleeps']}, woken by a "
                      f"kick {wp['woken']}, timeouts {wp['timeouts']}, back-outs "
                      f"{wp['backouts']}."]
    stalled = {mode: sum(s.get(mode, {}).get("self_stalled", 0) for s in summary["wake"].values())
               for mode in opts.mode_list}
    if any(stalled.values()):
        lines += ["", "Round trips that include time vhost-ping itself was descheduled (counted "
                      "as they are): " + ", ".join(f"{k} {v}" for k, v in stalled.items()) + "."]
    n = notes(results)
    if n:
        lines += ["", "Notes from the runs:", ""] + [f"* {x}" for x in n]
    lines += ["", END]
    return "\n".join(lines) + "\n"


DOC_SECTION_HEAD = """\
## Idle cores

Measured with `tools/bench idle`; see its `--help`.

"""


def write_doc(path, section):
    with open(path) as f:
        text = f.read()
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END) + r"\n?", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _m: section, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + DOC_SECTION_HEAD + section
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


# --------------------------------------------------------------------------


def sweep_stale():
    import bench_main

    bench_main.sweep_stale()


def main(argv):
    global _verbose
    opts = parse_args(argv)
    _verbose = opts.verbose
    harness.log = _harness_log

    def on_signal(signum, _frame):
        raise SystemExit(f"tools/bench idle: interrupted by {signal.Signals(signum).name}")

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)

    sweep_stale()
    workdir = tempfile.mkdtemp(prefix="vhb", dir="/tmp")
    with open(os.path.join(workdir, "bench.pid"), "w") as f:
        f.write(f"{os.getpid()}\n")
    command = "tools/bench idle" + ("" if not argv else " " + shlex.join(argv))
    meta = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "command": command,
            "load_start": report.loadavg(), "machine": report.machine(ROOT, opts.vhostd),
            "vhost_ping": opts.vhost_ping, "wake_floor": opts.wake_floor}
    stat0 = _cpu_stat()
    say(f"{command}: parts {', '.join(opts.part_list)} x modes {'/'.join(opts.mode_list)}; "
        f"{opts.runs} run(s) of cpu/wake, {opts.tput_runs} of throughput; work folder {workdir}")
    say(f"CPU {meta['machine']['cpu']}, load {meta['load_start']}, vhostd "
        f"{meta['machine']['vhostd']} ({meta['machine']['buildtype']})")
    results = []
    failed = False
    started = time.monotonic()
    runs_of = {"cpu": opts.runs, "wake": opts.runs, "throughput": opts.tput_runs}
    last = max(runs_of[p] for p in opts.part_list)
    try:
        for run in range(1, last + 1):
            for part in opts.part_list:
                if run > runs_of[part]:
                    continue
                # A, B in odd runs and B, A in even ones: drift in the
                # machine's load hits both modes alike.
                order = opts.mode_list if run % 2 else list(reversed(opts.mode_list))
                for mode in order:
                    say(f"run {run}/{runs_of[part]} {part} {mode} …")
                    res = RUNNERS[part](opts, mode, run, workdir)
                    results.append(res)
                    failed |= not res["ok"]
                    say(f"run {run}/{runs_of[part]} {part} {mode}: {describe(res)}")
                    for note in res["notes"]:
                        say(f"  note: {note}")
    finally:
        meta["load_end"] = report.loadavg()
        stat1 = _cpu_stat()
        if stat0 and stat1 and stat1[1] > stat0[1]:
            meta["steal"] = f"{100 * (stat1[0] - stat0[0]) / (stat1[1] - stat0[1]):.1f}%"
        meta["elapsed_s"] = time.monotonic() - started
        if opts.json:
            with open(opts.json, "w") as f:
                json.dump({"meta": meta, "results": results}, f, indent=1, default=str)
        if opts.keep or failed:
            os.unlink(os.path.join(workdir, "bench.pid"))
            say(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    summary = summarize(opts, results)
    print()
    for title, rows in tables(opts, summary):
        print(f"{title}:\n")
        print(report.text_table(rows))
        print()
    per_run = wake_runs_table(opts, summary)
    if per_run:
        print("Wake-up runs one by one:\n")
        print(report.text_table(per_run))
        print()
    for n in notes(results):
        print(f"note: {n}")
    say(f"done in {meta['elapsed_s']:.0f} s")
    if not opts.no_doc:
        write_doc(opts.doc, doc_section(meta, opts, summary, results))
        say(f"results written to {opts.doc}")
    if failed:
        say("some runs produced no numbers: exit status 1")
        return 1
    return 0
