"""Where the hypervisor placed CPU 0 and CPU 1: near or far, by tools/cpu-hop.

On a VM the two vCPUs the peer and the back-end run on are placed by the
host, and moved while they are idle, so between runs. On this kind of host a
cache line's round trip between them costs about four times more when they
are far apart, and every back-end's packet rate follows (docs/performance.md).
Each run's window is therefore bracketed by a cpu-hop measurement, and A is
also compared with B over the runs that had the same placement.

The busy pollers are stopped (SIGSTOP to their process groups) while cpu-hop
runs: its two threads need both CPUs to themselves, and the vCPUs never idle
in between, so the reading is the placement the window ran on.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess

# A run is "near" when the round trips before and after it are both within
# NEAR_FACTOR of the lowest round trip of the whole invocation, "far" when
# both are beyond it, "mixed" otherwise (the placement changed, or could have).
NEAR_FACTOR = 2.0


def measure(binary, cpus=(1, 0), timeout_s=10):
    """One round trip in TSC cycles (median of cpu-hop's rounds); (None, why) on failure."""
    argv = [binary, "--cpus", f"{cpus[0]},{cpus[1]}", "--json", "--count", "20000",
            "--rounds", "5", "--timeout-ms", "3000"]
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"cpu-hop did not run: {exc}"
    if p.returncode != 0:
        return None, f"cpu-hop exit status {p.returncode}: {p.stderr.strip()}"
    try:
        return int(json.loads(p.stdout)["result"]["round_trip_cycles"]), None
    except (ValueError, KeyError, TypeError) as exc:
        return None, f"cpu-hop printed {p.stdout.strip()!r}: {exc}"


def measure_paused(binary, pgids):
    """measure() with the process groups `pgids` stopped meanwhile."""
    stopped = []
    try:
        for pgid in pgids:
            os.killpg(pgid, signal.SIGSTOP)
            stopped.append(pgid)
        return measure(binary)
    except OSError as exc:
        return None, f"cannot stop process group for cpu-hop: {exc}"
    finally:
        for pgid in stopped:
            try:
                os.killpg(pgid, signal.SIGCONT)
            except OSError:
                pass


def floor(results):
    """The lowest round trip measured around any run, or None."""
    hops = [h for r in results for h in (r.get("hop_before"), r.get("hop_after")) if h]
    return min(hops) if hops else None


def classify(res, lowest):
    """'near', 'far', 'mixed' or None (not measured) for one run."""
    before, after = res.get("hop_before"), res.get("hop_after")
    if not before or not after or not lowest:
        return None
    limit = NEAR_FACTOR * lowest
    near = [h <= limit for h in (before, after)]
    if all(near):
        return "near"
    if not any(near):
        return "far"
    return "mixed"


def matched_ratio(a_runs, b_runs, lowest, where):
    """A/B of the median rates over the good runs with placement `where`:
    (ratio or None, number of A runs, number of B runs)."""
    a = [r["median_pps"] for r in a_runs if r["ok"] and classify(r, lowest) == where]
    b = [r["median_pps"] for r in b_runs if r["ok"] and classify(r, lowest) == where]
    if not a or not b:
        return None, len(a), len(b)
    return statistics.median(a) / statistics.median(b), len(a), len(b)
