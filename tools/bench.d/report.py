"""Aggregation over runs, the side-by-side table, and docs/performance.md."""

from __future__ import annotations

import os
import platform
import re
import statistics
import subprocess

import placement

BEGIN = "<!-- tools/bench results: begin (generated, do not edit by hand) -->"
END = "<!-- tools/bench results: end -->"


def summarize(cases, results):
    """Per case and back-end: medians of the per-run medians, ranges, drops, CPU."""
    rows = []
    lowest = placement.floor(results)
    for case in cases:
        row = {"case": case, "by": {}}
        runs_of = {}
        for kind in ("A", "B"):
            runs = runs_of[kind] = [r for r in results if r["case"] == case.name and r["backend"] == kind]
            good = [r for r in runs if r["ok"]]
            med = [r["median_pps"] for r in good]
            s = {"runs": len(runs), "good": len(good), "medians": med}
            if med:
                s.update(median=statistics.median(med), min=min(med), max=max(med))
                s["peer_tx_dropped"] = sum(r["peer_tx_dropped"] for r in good)
                s["peer_rx_missed"] = sum(r["peer_rx_missed"] + r["peer_rx_dropped"] for r in good)
                s["backend_drops"] = sum(r["backend_stats"]["drop_total"] for r in good)
                s["rx_packets"] = sum(r["rx_packets"] for r in good)
                shares = [next(iter(r["backend_threads"].values()), None) for r in good]
                shares = [x for x in shares if x]
                if shares:
                    s["be_run"] = statistics.median(x["run"] for x in shares)
                    s["be_wait"] = statistics.median(x["wait"] for x in shares)
                pshares = [next(iter(r["peer_threads"].values()), None) for r in good]
                pshares = [x for x in pshares if x]
                if pshares:
                    s["peer_run"] = statistics.median(x["run"] for x in pshares)
                    s["peer_wait"] = statistics.median(x["wait"] for x in pshares)
                pe = [r["peer_polls"]["empty_share"] for r in good if r.get("peer_polls")]
                if pe:
                    s["peer_empty"] = statistics.median(pe)
                bpolls = [r["backend_stats"]["polls"] for r in good
                          if r["backend_stats"].get("polls")]
                if bpolls:
                    s["be_empty"] = statistics.median(p["empty_share"] for p in bpolls)
                for key, name in (("busy_share", "be_busy"), ("cycles_per_frame", "be_cpf")):
                    v = [p[key] for p in bpolls if p.get(key) is not None]
                    if v:
                        s[name] = statistics.median(v)
            row["by"][kind] = s
        a, b = row["by"]["A"].get("median"), row["by"]["B"].get("median")
        row["ratio"] = a / b if a and b else None
        # The same comparison over the runs whose CPUs were placed alike.
        row["placed"] = {where: placement.matched_ratio(runs_of["A"], runs_of["B"], lowest, where)
                         for where in ("near", "far")}
        # Per-core speed when busy: B's cycles per frame over A's.
        ca, cb = row["by"]["A"].get("be_cpf"), row["by"]["B"].get("be_cpf")
        row["cycle_ratio"] = cb / ca if ca and cb else None
        rows.append(row)
    return rows


def _mpps(x):
    return f"{x / 1e6:.3f}"


def _range(s):
    if "median" not in s:
        return "no data"
    return f"{_mpps(s['median'])} ({_mpps(s['min'])}–{_mpps(s['max'])})"


def _pct(x):
    return f"{100 * x:.0f}%" if x is not None else "n/a"


def _num(x):
    return f"{x:.0f}" if x is not None else "n/a"


def _cpu(s, prefix):
    if f"{prefix}_run" not in s:
        return "n/a"
    return f"{_pct(s[f'{prefix}_run'])} / {_pct(s[f'{prefix}_wait'])}"


def _drops(s):
    if "median" not in s:
        return "–"
    return f"{s['peer_tx_dropped']} / {s['backend_drops']}"


def throughput_rows(rows):
    """Table 1: the peer's RX rate, Mpps, median of the per-run medians."""
    out = [["case", "runs A+B", "A: vhostd Mpps, median (min–max)",
            "B: testpmd net_vhost Mpps, median (min–max)", "A/B", "target",
            "busy cycles/frame A; B", "B÷A cycles", "A/B near CPUs (runs A+B)",
            "A/B far CPUs (runs A+B)"]]
    for row in rows:
        a, b = row["by"]["A"], row["by"]["B"]
        ratio, target = row["ratio"], row["case"].target
        verdict = "" if ratio is None else (" met" if round(ratio, 2) >= target else " not met")
        cr = row.get("cycle_ratio")
        out.append([row["case"].name, f"{a['good']}+{b['good']}", _range(a), _range(b),
                    f"{ratio:.2f}" if ratio else "n/a", f"≥ {target:.1f}{verdict}",
                    f"{_num(a.get('be_cpf'))}; {_num(b.get('be_cpf'))}",
                    f"{cr:.2f}" if cr else "n/a",
                    _placed(row, "near"), _placed(row, "far")])
    return out


def _placed(row, where):
    ratio, na, nb = row.get("placed", {}).get(where, (None, 0, 0))
    return f"{ratio:.2f} ({na}+{nb})" if ratio else f"n/a ({na}+{nb})"


def health_rows(rows):
    """Table 2: drops, empty polls and where the CPU time went (medians over runs)."""
    out = [["case", "drops A: peer TX-dropped / vhostd", "drops B: peer TX-dropped / B TX-dropped",
            "empty polls A PMD", "empty polls B worker", "empty polls peer (A; B)",
            "busy time A; B",
            "on-CPU / waiting A pmd0", "on-CPU / waiting B worker",
            "on-CPU / waiting peer (A; B)"]]
    for row in rows:
        a, b = row["by"]["A"], row["by"]["B"]
        out.append([row["case"].name, _drops(a), _drops(b),
                    _pct(a.get("be_empty")), _pct(b.get("be_empty")),
                    f"{_pct(a.get('peer_empty'))}; {_pct(b.get('peer_empty'))}",
                    f"{_pct(a.get('be_busy'))}; {_pct(b.get('be_busy'))}",
                    _cpu(a, "be"), _cpu(b, "be"),
                    f"{_cpu(a, 'peer')}; {_cpu(b, 'peer')}"])
    return out


def text_table(t):
    """rows[0] is the header: aligned columns under a rule."""
    widths = [max(len(r[i]) for r in t) for i in range(len(t[0]))]
    lines = []
    for n, r in enumerate(t):
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(t):
    """rows[0] is the header: a Markdown table."""
    lines = ["| " + " | ".join(t[0]) + " |", "|" + "---|" * len(t[0])]
    lines += ["| " + " | ".join(r) + " |" for r in t[1:]]
    return "\n".join(lines)


def format_text(rows):
    return text_table(throughput_rows(rows)) + "\n\n" + text_table(health_rows(rows))


def format_markdown(rows):
    return markdown_table(throughput_rows(rows)) + "\n\n" + markdown_table(health_rows(rows))


def per_run_markdown(cases, results):
    lowest = placement.floor(results)
    lines = ["| case | back-end | per-run median Mpps, in run order | busy cycles/frame per run "
             "| peer TX-dropped per run | CPU 1↔0 round trip before/after, cycles: placement |",
             "|---|---|---|---|---|---|"]
    for case in cases:
        for kind in ("A", "B"):
            runs = [r for r in results if r["case"] == case.name and r["backend"] == kind]
            vals = ", ".join(_mpps(r["median_pps"]) if r["ok"] else "FAILED" for r in runs)
            cpf = ", ".join(_num((r.get("backend_stats", {}).get("polls") or {})
                                 .get("cycles_per_frame")) for r in runs)
            drops = ", ".join(str(r.get("peer_tx_dropped", "–")) for r in runs)
            hops = ", ".join(f"{r.get('hop_before') or '–'}/{r.get('hop_after') or '–'}: "
                             f"{placement.classify(r, lowest) or '?'}" for r in runs)
            lines.append(f"| {case.name} | {kind} | {vals} | {cpf} | {drops} | {hops} |")
    return "\n".join(lines)


def peer_datapaths(results, kind):
    """What the peer negotiated with back-end `kind`, as one phrase (all runs)."""
    paths, names = set(), set()
    for r in results:
        if r["backend"] == kind and r.get("peer_virtio"):
            paths.update(r["peer_virtio"]["paths"])
            names.update(r["peer_virtio"]["feature_names"])
    if not paths and not names:
        return ""
    return (f"{', '.join(sorted(paths)) or 'paths not logged'} path(s); features "
            f"{', '.join(sorted(names)) or 'not logged'}")


# --------------------------------------------------------------------------
# the machine

def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "unknown"


def _run(argv, cwd=None):
    try:
        return subprocess.run(argv, cwd=cwd, capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def dpdk_version():
    return _run(["dpkg-query", "-W", "-f", "${Version}", "dpdk"]) or "unknown"


def git_describe(root):
    rev = _run(["git", "rev-parse", "--short", "HEAD"], cwd=root) or "unknown"
    dirty = _run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root)
    return rev + ("+uncommitted changes" if dirty else "")


def build_type(binary):
    """The meson buildtype of the build folder holding `binary`, if any."""
    import json

    d = os.path.dirname(os.path.abspath(binary))
    while d != "/":
        info = os.path.join(d, "meson-info", "intro-buildoptions.json")
        if os.path.exists(info):
            try:
                with open(info) as f:
                    for opt in json.load(f):
                        if opt.get("name") == "buildtype":
                            return f"{opt['value']} ({d})"
            except (OSError, ValueError):
                break
        d = os.path.dirname(d)
    return "unknown"


def machine(root, vhostd):
    return {"cpu": cpu_model(), "ncpu": os.cpu_count(), "kernel": platform.release(),
            "dpdk": dpdk_version(), "git": git_describe(root), "vhostd": vhostd,
            "buildtype": build_type(vhostd)}


# --------------------------------------------------------------------------
# docs/performance.md

def results_section(meta, cases, results, rows):
    m = meta["machine"]
    busy = meta["load_start"], meta["load_end"]
    lines = [
        BEGIN,
        "",
        f"### Latest run: {meta['date']}",
        "",
        "```sh",
        meta["command"],
        "```",
        "",
        f"* CPU: {m['cpu']}, {m['ncpu']} CPUs; kernel {m['kernel']}; DPDK {m['dpdk']}",
        f"* vhostd: {m['vhostd']}, commit {m['git']}, buildtype {m['buildtype']}",
        f"* {meta['runs']} run(s) per case and back-end, A and B alternating; window "
        f"{meta['seconds']} s after {meta['warmup']} s warm-up; frames counted at the peer",
        f"* load average at start / end: {busy[0]} / {busy[1]}",
    ]
    lowest = placement.floor(results)
    if lowest:
        lines.append(f"* CPU placement: right after the warm-up and right after the window, "
                     f"both pollers stopped, tools/cpu-hop timed a cache line's round trip "
                     f"between CPU 1 and CPU 0; a run is *near* when both "
                     f"took at most {placement.NEAR_FACTOR:g}× the lowest ({lowest} cycles), "
                     "*far* when both took more, *mixed* otherwise")
    if meta.get("peer_vdev_args"):
        lines.append(f"* extra peer devargs: `{meta['peer_vdev_args']}`")
    # The two busy pollers alone make a load of 2, so the load average cannot
    # tell whether anything else ran: their runnable-but-waiting share can.
    waits = [s[k] for row in rows for s in row["by"].values() for k in ("be_wait", "peer_wait")
             if k in s]
    if waits and max(waits) > 0.05:
        lines.append(f"* **Preliminary: the machine was busy with other work**: a busy-polling "
                     f"thread spent up to {100 * max(waits):.0f}% of a window runnable but "
                     "without a CPU (medians per case; see the waiting columns).")
    for kind, label in (("A", "vhostd"), ("B", "testpmd net_vhost")):
        neg = peer_datapaths(results, kind)
        if neg:
            lines.append(f"* the peer's virtio-user against {kind} ({label}): {neg}")
    lines += ["", format_markdown(rows), "", "Per run:", "", per_run_markdown(cases, results), ""]
    notes = [f"{r['case']}-{r['backend']}-{r['run']}: {n}" for r in results for n in r["notes"]]
    notes += [f"{r['case']}-{r['backend']}-{r['run']}: FAILED: {r['error']}"
              for r in results if not r["ok"]]
    if notes:
        lines += ["Notes from the runs:", ""] + [f"* {n}" for n in notes] + [""]
    lines.append(END)
    return "\n".join(lines) + "\n"


DOC_SKELETON = """# vhostd performance

Measured with `tools/bench`; see the tool's `--help`.

## Results

{section}"""


def write_doc(path, section):
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        text = DOC_SKELETON.format(section=BEGIN + "\n" + END + "\n")
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END) + r"\n?", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _m: section, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n## Results\n\n" + section
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
