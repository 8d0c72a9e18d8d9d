"""One benchmark run: a fresh back-end and a fresh peer, one case, numbers out."""

from __future__ import annotations

import itertools
import os
import shutil
import statistics
import sys
import time
import traceback
from dataclasses import dataclass

import harness
import parse
import placement
import procs


@dataclass(frozen=True)
class Case:
    name: str
    size: int       # frame length as testpmd sends it (no CRC)
    vsv: bool       # two ports through the switch, else one port reflected
    target: float   # the A/B target for this case

    @property
    def nports(self):
        return 2 if self.vsv else 1

    @property
    def title(self):
        what = "V-S-V (2 ports, switched)" if self.vsv else "single port, reflect"
        return f"{what}, {self.size} B"


CASES = {c.name: c for c in (
    Case("reflect-64", 64, False, 1.3),
    Case("reflect-1518", 1518, False, 1.5),
    Case("vsv-64", 64, True, 1.1),
    Case("vsv-1518", 1518, True, 1.1),
)}
DEFAULT_CASES = ("reflect-64", "reflect-1518", "vsv-64")


def dpdk_runtime_dir():
    return "/var/run/dpdk" if os.geteuid() == 0 else os.path.join(
        os.environ.get("XDG_RUNTIME_DIR", "/tmp"), "dpdk")


class RunContext:
    """Folder, unique names and processes of one run; close() ends them all."""

    _seq = itertools.count()

    def __init__(self, workdir, name, opts):
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir)
        self.testpmd = opts.testpmd
        self.vhostd = opts.vhostd
        self.peer_vdev_args = opts.peer_vdev_args
        # vhostd's dataplane.idle setting: busy polling for the throughput
        # benchmark; `tools/bench idle` runs the same case in adaptive mode too.
        self.idle_yaml = getattr(opts, "idle_yaml", "{ mode: poll }")
        # Long enough for start-up, warm-up, window and teardown; the watchdog
        # kills the process group if anything hangs.
        self.proc_timeout = opts.warmup + opts.seconds + 240
        self.prefixes = []
        self.procs = []

    def path(self, name):
        return os.path.join(self.dir, name)

    def prefix(self, role):
        p = f"vhb{os.getpid()}-{next(self._seq)}-{role}"
        self.prefixes.append(p)
        return p

    def register(self, proc):
        self.procs.append(proc)
        return proc

    def dump_logs(self, stream=sys.stderr, lines=40):
        for proc in self.procs:
            stream.write(f"----- {proc.name} (pid {proc.pid}, status "
                         f"{harness.describe_status(proc.popen.poll())}): last {lines} lines "
                         f"of {proc.log_path}\n")
            try:
                with open(proc.log_path, errors="replace") as f:
                    stream.write("\n".join(f.read().splitlines()[-lines:]) + "\n")
            except OSError as exc:
                stream.write(f"<cannot read: {exc}>\n")
        stream.flush()

    def close(self):
        for proc in reversed(self.procs):
            try:
                proc.close()
            except Exception:  # noqa: BLE001 - keep closing the others
                pass
        runtime = dpdk_runtime_dir()
        for p in self.prefixes:
            shutil.rmtree(os.path.join(runtime, p), ignore_errors=True)


def _sum(stats, key):
    return sum(p[key] for p in stats.values())


def run_one(case: Case, kind: str, index: int, workdir: str, opts) -> dict:
    """Runs `case` against back-end `kind` ("A" or "B"); returns a result dict.

    result["ok"] is False, with result["error"], when the run produced no
    trustworthy numbers.
    """
    name = f"{case.name}-{kind}-{index}"
    ctx = RunContext(workdir, name, opts)
    res = {"case": case.name, "backend": kind, "run": index, "ok": False, "error": None,
           "notes": [], "started": time.strftime("%H:%M:%S")}
    t_start = time.monotonic()
    try:
        sockets = [ctx.path(f"p{i}.sock") for i in range(case.nports)]
        backend = procs.BACKENDS[kind](ctx, sockets, case.vsv)
        peer = procs.start_peer(ctx, sockets, case.vsv)
        for port in range(case.nports):
            peer.wait_link_up(port, timeout=procs.START_S)
        backend.wait_ready()
        peer.simple(f"set txpkts {case.size}")
        peer.command("start tx_first 32", r"Logical Core \d+ .*forwards packets", procs.REPLY_S)

        time.sleep(opts.warmup)
        backend.check_alive()
        _hop(res, "hop_before", opts, (backend.pid, peer.pid))
        peer.simple("clear fwd stats all")
        prev_counters = backend.window_begin()
        # --per-second (A only): vhostd's busy cycles per frame in every second,
        # to see the host move the CPUs within one run (docs/performance.md).
        per_second = getattr(opts, "per_second", False) and kind == "A"
        per_sec_cycles = []
        baseline = peer.port_stats(case.nports)  # its Rx-pps is a partial reading: dropped
        t0 = time.monotonic()
        thr_be0, thr_peer0 = backend.threads(), peer.threads()
        readings = []
        # Per second, also the CPU time the two busy-polling threads got: when a
        # second moves nothing, it tells a starved thread from a stuck one.
        per_sec_cpu = []
        prev = (thr_be0, thr_peer0, t0)
        for i in range(1, opts.seconds + 1):
            delay = t0 + i - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            readings.append(peer.port_stats(case.nports))
            if per_second:
                prev_counters, frames, busy = backend.since(prev_counters)
                per_sec_cycles.append(round(busy / frames) if frames else None)
            now = (backend.threads(), peer.threads(), time.monotonic())
            per_sec_cpu.append({
                "backend": parse.thread_shares(prev[0], now[0], now[2] - prev[2]),
                "peer": parse.thread_shares(prev[1], now[1], now[2] - prev[2])})
            prev = now
        t1 = time.monotonic()
        thr_be1, thr_peer1 = prev[0], prev[1]
        be = backend.window_end()
        peer_fwd = peer.fwd_stats()
        _hop(res, "hop_after", opts, (backend.pid, peer.pid))
        peer.fwd_stats("stop")

        # -- numbers ------------------------------------------------------
        last = readings[-1]
        per_second = [_sum(r, "rx_pps") for r in readings]
        rx_pkts = _sum(last, "rx_packets") - _sum(baseline, "rx_packets")
        rx_bytes = _sum(last, "rx_bytes") - _sum(baseline, "rx_bytes")
        tx_pkts = _sum(last, "tx_packets") - _sum(baseline, "tx_packets")
        res.update({
            "readings_pps": per_second,
            "median_pps": statistics.median(per_second),
            "per_port_median_pps": {
                p: statistics.median(r[p]["rx_pps"] for r in readings) for p in last},
            "window_s": t1 - t0,
            "counter_pps": rx_pkts / (t1 - t0) if t1 > t0 else 0.0,
            "rx_packets": rx_pkts,
            "tx_packets": tx_pkts,
            "bytes_per_packet": rx_bytes / rx_pkts if rx_pkts else 0.0,
            "peer_tx_dropped": _sum(peer_fwd, "tx_dropped"),
            "peer_rx_dropped": _sum(peer_fwd, "rx_dropped"),
            "peer_rx_missed": _sum(last, "rx_missed") - _sum(baseline, "rx_missed"),
            "peer_polls": parse.poll_summary(peer_fwd),
            "peer_virtio": parse.virtio_negotiation(peer.output()),
            "backend_stats": be,
            "backend_threads": parse.thread_shares(thr_be0, thr_be1, t1 - t0),
            "peer_threads": parse.thread_shares(thr_peer0, thr_peer1, t1 - t0),
            "per_second_cpu": per_sec_cpu,
        })
        if per_second:
            res["per_second_cycles_per_frame"] = per_sec_cycles
        _stalls(res)
        _checks(case, kind, res, opts)

        # -- teardown (its failures are noted, the numbers stand) ---------
        try:
            peer.quit(procs.STOP_S)
            backend.stop()
        except harness.TestFailure as exc:
            res["notes"].append(f"teardown: {exc}")
        res["ok"] = res["error"] is None
    except harness.TestFailure as exc:
        res["error"] = str(exc)
    except Exception as exc:  # noqa: BLE001 - a bench bug fails the run, not the whole tool
        res["error"] = f"unexpected error: {exc!r}"
        traceback.print_exc()
    except BaseException:  # interrupted (SIGINT/SIGTERM): clean up, no log dump
        res["error"] = "interrupted"
        raise
    finally:
        if not res["ok"] and res["error"] != "interrupted":
            sys.stderr.write(f"\nrun {name} FAILED: {res['error']}\n")
            ctx.dump_logs()
        ctx.close()
        res["elapsed_s"] = time.monotonic() - t_start
    return res


def _hop(res, key, opts, pgids):
    """The CPU 1 <-> CPU 0 round trip (placement.py), the pollers stopped meanwhile."""
    binary = getattr(opts, "cpu_hop", None)
    if not binary:
        return
    res[key], why = placement.measure_paused(binary, pgids)
    if why:
        res["notes"].append(f"{key}: {why}")


def _stalls(res):
    """Notes the seconds in which the peer received nothing, with how much CPU
    the back-end's and the peer's polling threads got in each of them."""
    stalled = [i for i, pps in enumerate(res["readings_pps"]) if pps == 0]
    if not stalled:
        return

    def on_cpu(share):
        one = next(iter(share.values()), None)
        return f"{100 * one['run']:.0f}%" if one else "?"

    detail = ", ".join(f"s{i + 1}: back-end {on_cpu(res['per_second_cpu'][i]['backend'])} / "
                       f"peer {on_cpu(res['per_second_cpu'][i]['peer'])}" for i in stalled)
    res["stalled_seconds"] = len(stalled)
    res["notes"].append(f"stalled: nothing received in {len(stalled)} of "
                        f"{len(res['readings_pps'])} s; on-CPU in those seconds: {detail}")


def _checks(case, kind, res, opts):
    """Is this a real measurement? Sets res["error"] when it is not."""
    if res["median_pps"] < opts.min_pps:
        res["error"] = (f"the peer received {res['median_pps']:.0f} pps (median), below "
                        f"--min-pps {opts.min_pps}: the run moved (almost) nothing")
        return
    bpp = res["bytes_per_packet"]
    if abs(bpp - case.size) > 1:
        res["error"] = (f"frames are {bpp:.1f} B on average, not {case.size} B: "
                        "'set txpkts' did not take effect")
        return
    # Cross-checks, noted but not fatal.
    ratio = res["counter_pps"] / res["median_pps"]
    if not 0.8 <= ratio <= 1.2:
        res["notes"].append(f"counter-based rate {res['counter_pps']:.0f} pps differs from the "
                            f"median per-second reading by {100 * (ratio - 1):+.0f}%")
    if case.vsv:
        ports = res["per_port_median_pps"]
        lo, hi = min(ports.values()), max(ports.values())
        if hi > 0 and lo < 0.5 * hi:
            res["notes"].append(f"unbalanced ports: peer RX pps per port {ports}")
        _check_crossing(kind, res)


def _check_crossing(kind, res):
    """V-S-V: every frame the back-end took from one port went out of the other."""
    be = res["backend_stats"]
    if kind == "A":
        q = be["queues"]
        for src, dst in (("p0", "p1"), ("p1", "p0")):
            took = q.get(f"{src}/vring1", {}).get("rx_packets", 0)   # guest TX ring
            gave = q.get(f"{dst}/vring0", {}).get("tx_packets", 0)   # guest RX ring
            lost = q.get(f"{dst}/vring0", {}).get("no_buffer", 0)
            if took and abs(took - gave - lost) > 0.01 * took + 64:
                res["notes"].append(f"vhostd: {src} received {took}, {dst} sent {gave} "
                                    f"(+{lost} no_buffer): frames not crossing")
        if be["drops"]["no_route"]:
            res["notes"].append(f"vhostd: {be['drops']['no_route']} frames had no route")
    else:
        p = be["ports"]
        for src, dst in ((0, 1), (1, 0)):
            took, gave = p[src]["rx_packets"], p[dst]["tx_packets"] + p[dst]["tx_dropped"]
            if took and abs(took - gave) > 0.01 * took + 64:
                res["notes"].append(f"B: port {src} received {took}, port {dst} sent+dropped "
                                    f"{gave}: frames not crossing")
