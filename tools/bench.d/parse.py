"""Parsers for what dpdk-testpmd and vhostd print (pure functions, no I/O)."""

from __future__ import annotations

import re

# The line patterns live with the integration tests (tests/integration, on
# sys.path: see tools/bench and test_parse.py).
import idle_lib
import trafficlib

# `show port stats all`: one block per port.
_PORT_STATS = re.compile(
    r"NIC statistics for port (?P<port>\d+)\s+#+\s+"
    r"RX-packets:\s+(?P<rx_packets>\d+)\s+RX-missed:\s+(?P<rx_missed>\d+)\s+"
    r"RX-bytes:\s+(?P<rx_bytes>\d+)\s+"
    r"RX-errors:\s+(?P<rx_errors>\d+)\s+"
    r"RX-nombuf:\s+(?P<rx_nombuf>\d+)\s+"
    r"TX-packets:\s+(?P<tx_packets>\d+)\s+TX-errors:\s+(?P<tx_errors>\d+)\s+"
    r"TX-bytes:\s+(?P<tx_bytes>\d+)\s+"
    r"Throughput \(since last show\)\s+"
    r"Rx-pps:\s+(?P<rx_pps>\d+)\s+Rx-bps:\s+(?P<rx_bps>\d+)\s+"
    r"Tx-pps:\s+(?P<tx_pps>\d+)\s+Tx-bps:\s+(?P<tx_bps>\d+)")

# `show fwd stats all` / `stop`: one block per port, then the accumulated one.
_FWD_STATS = re.compile(
    r"Forward statistics for port (?P<port>\d+)\s+-+\s+"
    r"RX-packets:\s+(?P<rx_packets>\d+)\s+RX-dropped:\s+(?P<rx_dropped>\d+)\s+"
    r"RX-total:\s+(?P<rx_total>\d+)\s+"
    r"(?:.*\n\s*)*?"  # per-queue / bad checksum lines some modes print
    r"TX-packets:\s+(?P<tx_packets>\d+)\s+TX-dropped:\s+(?P<tx_dropped>\d+)\s+"
    r"TX-total:\s+(?P<tx_total>\d+)")

# vhostd, on SIGUSR1 and at exit (dataplane/dataplane.cpp, Dataplane::log_stats):
# the per-queue lines, with the pattern the integration tests use.
_VHOSTD_STATS = trafficlib.STATS_RE

VHOSTD_COUNTERS = ("rx_packets", "rx_bytes", "tx_packets", "tx_bytes", "no_buffer",
                   "too_big", "broken", "no_route", "errors")


_NEGOTIATED = re.compile(r"features after negotiate = ([0-9a-fA-F]+)")
_PATH = re.compile(r"virtio: using (.+?) (Rx|Tx) path on port (\d+)")

# Feature bits worth naming in a report (virtio 1.x numbering).
FEATURE_NAMES = {15: "MRG_RXBUF", 28: "INDIRECT_DESC", 29: "EVENT_IDX", 32: "VERSION_1",
                 33: "ACCESS_PLATFORM", 34: "RING_PACKED", 35: "IN_ORDER"}


def virtio_negotiation(text: str) -> dict:
    """What the peer's virtio PMD negotiated and which datapaths it chose
    (logged with --log-level=pmd.net.virtio.init:debug)."""
    feats = [int(x, 16) for x in _NEGOTIATED.findall(text)]
    names = sorted({name for f in feats for bit, name in FEATURE_NAMES.items() if f >> bit & 1})
    paths = sorted({f"{d} {what}" for what, d, _port in _PATH.findall(text)})
    return {"features": [hex(f) for f in feats], "feature_names": names, "paths": paths}


def _ints(m, skip=("port", "queue")):
    return {k: int(v) for k, v in m.groupdict().items() if k not in skip}


def port_stats(text: str) -> dict[int, dict[str, int]]:
    """{port: {rx_packets, rx_missed, rx_bytes, ..., rx_pps, tx_pps, ...}}."""
    return {int(m["port"]): _ints(m) for m in _PORT_STATS.finditer(text)}


# With --record-burst-stats: "RX-bursts : 1234 [97% of 0 pkts + 2% of 32 pkts + 1% of other]".
# testpmd always lists the 0-packet (empty poll) share first, truncated to an integer.
_BURSTS = re.compile(r"(?P<dir>RX|TX)-bursts : (?P<total>\d+) \[(?P<spread>[^\]]*)\]")
_SPREAD = re.compile(r"(\d+)% of (\d+|other)")


def fwd_stats(text: str) -> dict[int, dict[str, int]]:
    """{port: {rx_packets, rx_dropped, tx_packets, tx_dropped, ...}}.

    With burst statistics recorded, also rx_bursts (polls of the port's RX
    queue) and rx_empty_pct (the share of those that returned nothing, %).
    """
    out = {}
    matches = list(_FWD_STATS.finditer(text))
    for i, m in enumerate(matches):
        stats = _ints(m)
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        for b in _BURSTS.finditer(text, m.end(), end):
            d = b["dir"].lower()
            stats[f"{d}_bursts"] = int(b["total"])
            spread = {size: int(pct) for pct, size in _SPREAD.findall(b["spread"])}
            stats[f"{d}_empty_pct"] = spread.get("0", 0)
        out[int(m["port"])] = stats
    return out


def vhostd_stats(text: str) -> dict[tuple[str, str], dict[str, int]]:
    """{(port, "vring0"): counters}; a later line for the same queue wins."""
    return {(m["port"], m["queue"]): _ints(m) for m in _VHOSTD_STATS.finditer(text)}


def poll_summary(fwd):
    """Over all ports of a testpmd: RX polls, empty-poll share (0..1), packets per poll."""
    polls = sum(p.get("rx_bursts", 0) for p in fwd.values())
    if not polls:
        return None
    empty = sum(p.get("rx_bursts", 0) * p.get("rx_empty_pct", 0) / 100 for p in fwd.values())
    pkts = sum(p["rx_packets"] for p in fwd.values())
    return {"polls": polls, "empty_share": empty / polls, "pkts_per_poll": pkts / polls}


def count_vhostd_stats_lines(text: str) -> int:
    return sum(1 for _ in _VHOSTD_STATS.finditer(text))


def vhostd_delta(before, after):
    """Per-queue counter increase between two vhostd_stats() snapshots."""
    out = {}
    for key, end in after.items():
        start = before.get(key, {})
        out[key] = {k: end[k] - start.get(k, 0) for k in VHOSTD_COUNTERS}
    return out


# --------------------------------------------------------------------------
# /proc

def thread_times(pid: int, comm_regex: str) -> dict[str, dict[str, float]]:
    """Scheduler times of the threads of `pid` whose name matches `comm_regex`.

    {comm: {"run_s": on-CPU time, "wait_s": runnable but waiting for a CPU,
            "cpu_s": utime+stime}} from /proc/PID/task/TID/{comm,schedstat,stat}.
    """
    import os

    rx = re.compile(comm_regex)
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    base = f"/proc/{pid}/task"
    try:
        tids = os.listdir(base)
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"{base}/{tid}/comm") as f:
                comm = f.read().strip()
            if not rx.fullmatch(comm):
                continue
            with open(f"{base}/{tid}/schedstat") as f:
                run_ns, wait_ns, _slices = (int(x) for x in f.read().split())
            with open(f"{base}/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            # fields[0] is field 3 (state): utime is field 14, stime 15.
            utime, stime = int(fields[11]), int(fields[12])
        except (OSError, ValueError):
            continue
        out[comm] = {"run_s": run_ns / 1e9, "wait_s": wait_ns / 1e9,
                     "cpu_s": (utime + stime) / tick}
    return out


def thread_shares(before, after, wall_s):
    """Shares of the wall-clock window: {comm: {"run": .., "wait": .., "cpu": ..}}."""
    out = {}
    for comm, end in after.items():
        start = before.get(comm)
        if start is None or wall_s <= 0:
            continue
        out[comm] = {"run": (end["run_s"] - start["run_s"]) / wall_s,
                     "wait": (end["wait_s"] - start["wait_s"]) / wall_s,
                     "cpu": (end["cpu_s"] - start["cpu_s"]) / wall_s}
    return out


# vhostd's per-PMD line, on SIGUSR1 and at exit (Dataplane::log_stats), with
# the pattern of the idle-core tests: "stats pmd0 cpu 1: polls busy N empty N
# (empty share X%), sleeps N, woken N (by control N), timeouts N, back-outs N,
# cycles busy N idle N (busy share X%)". A line without cycles reads 0 cycles.
_VHOSTD_PMD = idle_lib.PMD_STATS_RE

VHOSTD_PMD_COUNTERS = ("busy", "empty", "sleeps", "woken", "timeouts", "backouts", "busy_cycles",
                       "idle_cycles", "streamed", "store_switches")


def vhostd_pmd_stats(text: str) -> list[dict[str, dict[str, int]]]:
    """Every per-PMD statistics block in `text`, in order: [{"pmd0": counters}, ...].

    Lines logged by one SIGUSR1 (or the exit) for pmd0, pmd1, ... form one
    block; a new pmd0 line starts the next.
    """
    blocks = []
    for m in _VHOSTD_PMD.finditer(text):
        if m["pmd"] == "pmd0" or not blocks:
            blocks.append({})
        blocks[-1][m["pmd"]] = {k: int(m[k] or 0) for k in ("cpu", *VHOSTD_PMD_COUNTERS)}
    return blocks


def pmd_delta(before, after):
    """{pmd: counter increase} between two vhostd_pmd_stats() blocks."""
    return {pmd: {k: end[k] - before.get(pmd, {}).get(k, 0) for k in VHOSTD_PMD_COUNTERS}
            for pmd, end in after.items()}


def pmd_poll_summary(delta):
    """Over all PMDs of a pmd_delta(): poll rounds, the share that found no
    work (0..1), the TSC cycles spent in rounds that found work and their share
    of all cycles (busy_share, 0..1; None without cycle counts)."""
    busy = sum(d["busy"] for d in delta.values())
    empty = sum(d["empty"] for d in delta.values())
    if not busy + empty:
        return None
    busy_cycles = sum(d["busy_cycles"] for d in delta.values())
    all_cycles = busy_cycles + sum(d["idle_cycles"] for d in delta.values())
    return {"polls": busy + empty, "empty_share": empty / (busy + empty),
            "busy_cycles": busy_cycles,
            "streamed": sum(d["streamed"] for d in delta.values()),
            "store_switches": sum(d["store_switches"] for d in delta.values()),
            "busy_share": busy_cycles / all_cycles if all_cycles else None}


# testpmd with --record-core-cycles, after the forward statistics: "CPU
# cycles/packet=257.28 (total cycles=7672012823 / total io packets=29819264)
# at 2600 MHz Clock". DPDK 22.11 counts only the cycles of forwarding
# iterations that received something (an empty poll returns before the end
# timestamp), like vhostd's busy cycles.
_CORE_CYCLES = re.compile(r"CPU cycles/packet=[\d.]+ \(total cycles=(?P<cycles>\d+) / total "
                          r"\w+ packets=(?P<packets>\d+)\) at (?P<mhz>\d+) MHz Clock")


def testpmd_core_cycles(text: str):
    """The last --record-core-cycles line in `text`: {"busy_cycles", "packets",
    "hz"}, or None."""
    found = list(_CORE_CYCLES.finditer(text))
    if not found:
        return None
    m = found[-1]
    return {"busy_cycles": int(m["cycles"]), "packets": int(m["packets"]),
            "hz": int(m["mhz"]) * 1_000_000}


def process_cpu(pid: int) -> dict[int, dict]:
    """Every thread of `pid`: {tid: {"comm", "cpu_s" (utime+stime from
    /proc/PID/task/TID/stat), "run_s" (on-CPU time from schedstat, ns precision)}}.
    Threads that ended are not there: compare totals over threads present at
    both ends only when the set of threads is stable (vhostd's is)."""
    import os

    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    base = f"/proc/{pid}/task"
    try:
        tids = os.listdir(base)
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"{base}/{tid}/stat") as f:
                head, rest = f.read().rsplit(")", 1)
            fields = rest.split()
            comm = head.split("(", 1)[1]
            with open(f"{base}/{tid}/schedstat") as f:
                run_ns = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        out[int(tid)] = {"comm": comm, "cpu_s": (int(fields[11]) + int(fields[12])) / tick,
                         "run_s": run_ns / 1e9}
    return out


def process_cpu_delta(before, after, wall_s):
    """CPU use between two process_cpu() readings, as shares of one core over
    `wall_s`: {"total": {"cpu", "run"}, "threads": {comm: {"cpu", "run"}}}.
    A thread born in between counts from 0."""
    threads = {}
    total = {"cpu": 0.0, "run": 0.0}
    for tid, end in after.items():
        start = before.get(tid, {"cpu_s": 0.0, "run_s": 0.0})
        cpu = (end["cpu_s"] - start["cpu_s"]) / wall_s
        run = (end["run_s"] - start["run_s"]) / wall_s
        t = threads.setdefault(end["comm"], {"cpu": 0.0, "run": 0.0})
        t["cpu"] += cpu
        t["run"] += run
        total["cpu"] += cpu
        total["run"] += run
    return {"total": total, "threads": threads}


def ping_samples(text: str) -> tuple[list[int], int]:
    """vhost-ping --samples output: (round trips in ns of the frames back in
    time, number of frames lost)."""
    rtts, lost = [], 0
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        if parts[1] == "lost":
            lost += 1
        else:
            rtts.append(int(parts[1]))
    return rtts, lost


def percentile(sorted_values, q):
    """Nearest rank: the smallest value with at least q of all values <= it."""
    import math

    if not sorted_values:
        return None
    i = max(1, math.ceil(q * len(sorted_values))) - 1
    return sorted_values[min(i, len(sorted_values) - 1)]
