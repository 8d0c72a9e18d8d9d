"""Helpers for the data-path integration tests (standard library only).

Builds on harness.py (processes, temporary folder, clean-up, logs on
failure) and adds:

* Vhostd: vhostd started with any generated configuration (several ports,
  switch l2 or xconnect, DPDK ports), its per-queue statistics read through
  SIGUSR1, and the SIGTERM -> exit 0 check.
* run_traffic(): one run of tools/vhost-traffic (a DPDK virtio-user front-end
  that sends an exact number of frames and checks each one that comes back),
  with its JSON summary parsed and the exact-count checks applied.
* TestpmdPorts: dpdk-testpmd with several virtio-user ports and extra
  testpmd arguments, driven over stdin like harness.Testpmd.

Test scripts call harness.main(run, extra_args=trafficlib.add_args).
"""

from __future__ import annotations

import json
import os
import re
import signal
import time

import harness
from harness import check, log

# vhost-traffic's own limit for one run, and the watchdog around it.
TRAFFIC_TIMEOUT_S = 30
TRAFFIC_WATCHDOG_S = TRAFFIC_TIMEOUT_S + 20

# The Rx burst function DPDK's virtio driver picked, as it logs it at INFO
# ("virtio: using mergeable buffer Rx path on port 0").
RX_PATH_RE = re.compile(r"virtio: using (.+?) Rx path on port (\d+)")
TX_PATH_RE = re.compile(r"virtio: using (.+?) Tx path on port (\d+)")

STATS_RE = re.compile(
    r"stats (?P<port>\S+) (?P<queue>\S+): rx (?P<rx_packets>\d+) pkts (?P<rx_bytes>\d+) bytes, "
    r"tx (?P<tx_packets>\d+) pkts (?P<tx_bytes>\d+) bytes, drops: no_buffer (?P<no_buffer>\d+) "
    r"too_big (?P<too_big>\d+) broken (?P<broken>\d+) no_route (?P<no_route>\d+), "
    r"errors (?P<errors>\d+)")

DROP_FIELDS = ("no_buffer", "too_big", "broken", "no_route", "errors")


def add_args(parser):
    parser.add_argument("--vhost-traffic", default=os.environ.get("VHOST_TRAFFIC", ""),
                        help="path of the vhost-traffic binary (tools/vhost-traffic)")


def require_tool(path, name):
    """`path` if it is an executable file, else a TestFailure saying how to build tools/NAME."""
    if not path or not os.access(path, os.X_OK):
        raise harness.TestFailure(f"{name} binary not found or not executable: {path!r} "
                                  f"(build it: ninja -C build tools/{name})")
    return path


def require_traffic(env):
    return require_tool(env.args.vhost_traffic, "vhost-traffic")


# --------------------------------------------------------------------------
# vhostd with a generated configuration

class Vhostd:
    """vhostd with `ports_yaml` (the YAML list items under `ports:`) and a switch.

    `switch` is "l2" or "xconnect"; `xconnect` a list of name pairs.
    `sockets` are the server-mode socket paths to wait for. `env_vars` are
    added to vhostd's environment (NOTIFY_SOCKET, ...).
    """

    def __init__(self, env, *, ports_yaml, sockets, switch="xconnect", xconnect=None,
                 name="vhostd", pmd_cores=(1,), idle="adaptive", env_vars=None, extra_yaml=(),
                 rx_stores="auto"):
        self.env = env
        self.name = name
        self.sockets = list(sockets)
        prefix = env.dpdk_prefix("vhostd")
        lines = [
            f'dpdk: {{ eal_args: ["--no-huge", "-m", "{harness.VHOSTD_MEM_MB}", "--no-pci", '
            f'"--file-prefix", "{prefix}"] }}',
            f"dataplane: {{ pmd_cores: [{', '.join(str(c) for c in pmd_cores)}], burst: 32, "
            f"idle: {{ mode: {idle}, poll_us: 200, max_sleep_us: 1000 }}, rx_stores: {rx_stores} }}",
            f"switch: {{ mode: {switch} }}",
        ]
        if xconnect:
            pairs = ", ".join(f"[{a}, {b}]" for a, b in xconnect)
            lines.append(f"xconnect: [ {pairs} ]")
        lines.append("ports:")
        lines.extend(f"  - {item}" for item in ports_yaml)
        self.control_socket = env.path(name + '-ctl.sock')
        lines.append(f"control: {{ socket: {self.control_socket} }}")
        lines.append("log: { level: debug }")
        lines.extend(extra_yaml)  # further top-level keys, e.g. metrics
        self.config_path = env.write(env.path(f"{name}.yaml"), "\n".join(lines) + "\n")
        self.proc = harness.Process(name, [env.require_vhostd(), "--config", self.config_path,
                                           "--log-level", "debug"],
                                    env.path(f"{name}.log"),
                                    env={**os.environ, **env_vars} if env_vars else None)
        env.register(self.proc)
        # Generous: with a DPDK port, EAL and pool set-up take seconds on a
        # loaded machine.
        for sock in self.sockets:
            ok = harness.wait_for(lambda s=sock: harness.is_socket(s) or not self.proc.alive(), 30)
            self.check_alive()
            check(ok, f"{name} did not create {sock} within 30 s")
        log(f"{name} is up ({len(self.sockets)} socket(s))")

    def check_alive(self):
        check(self.proc.alive(), f"{self.name} died (status "
                                 f"{harness.describe_status(self.proc.popen.poll())})")

    def stats(self, settle=0.3):
        """SIGUSR1; returns {(port, queue): {field: int}} from the lines it logs."""
        self.check_alive()
        time.sleep(settle)  # let the PMD finish what is still in the rings
        since = self.proc.mark()
        self.proc.signal(signal.SIGUSR1)
        # One line per port and queue, all from one call: wait for the first,
        # then until the output is quiet.
        self.proc.expect(r"stats \S+ \S+: rx", 10, since=since, what="stats lines after SIGUSR1")
        size = -1
        deadline = time.monotonic() + 5
        while self.proc.mark() != size and time.monotonic() < deadline:
            size = self.proc.mark()
            time.sleep(0.2)
        out = self.proc.output(since)
        result = {}
        for m in STATS_RE.finditer(out):
            key = (m.group("port"), m.group("queue"))
            if key not in result:
                result[key] = {k: int(v) for k, v in m.groupdict().items()
                               if k not in ("port", "queue")}
        check(result, f"{self.name}: no parsable stats lines after SIGUSR1")
        log(f"{self.name} stats: " + "; ".join(
            f"{p}/{q} rx {s['rx_packets']} tx {s['tx_packets']} drops "
            f"{sum(s[f] for f in DROP_FIELDS)}" for (p, q), s in sorted(result.items())))
        return result

    def stop(self):
        """SIGTERM: vhostd must exit 0 within 10 s and remove its socket files."""
        self.check_alive()
        self.proc.signal(signal.SIGTERM)
        self.proc.wait_exit(10, expect_rc=0, action="exit after SIGTERM")
        for sock in self.sockets:
            check(not os.path.exists(sock), f"{self.name} left its socket file {sock} behind")


def vhost_port(name, path, **extra):
    fields = ", ".join([f"name: {name}", "type: vhost-user", f"path: {path}", "mode: server"] +
                       [f"{k}: {v}" for k, v in extra.items()])
    return "{ " + fields + " }"


def dpdk_port(name, devargs):
    return "{ " + f'name: {name}, type: dpdk, devargs: "{devargs}"' + " }"


def port_totals(stats, port):
    """Sums one port's queues: {field: int}."""
    total = {}
    for (p, _q), s in stats.items():
        if p == port:
            for k, v in s.items():
                total[k] = total.get(k, 0) + v
    check(total, f"no stats for port {port}")
    return total


def stats_delta(after, before):
    """after - before, per (port, queue) and field."""
    return {key: {f: v - before.get(key, {}).get(f, 0) for f, v in s.items()}
            for key, s in after.items()}


def total_drops(stats, port=None):
    return sum(s[f] for (p, _q), s in stats.items() if port in (None, p) for f in DROP_FIELDS)


def check_no_drops(stats, what="vhostd"):
    bad = {f"{p}/{q}": {f: s[f] for f in DROP_FIELDS if s[f]}
           for (p, q), s in stats.items() if any(s[f] for f in DROP_FIELDS)}
    check(not bad, f"{what} counted drops or errors: {bad}")


# --------------------------------------------------------------------------
# vhost-traffic

class TrafficResult:
    def __init__(self, summary, rx_paths, tx_paths, output):
        self.summary = summary
        self.rx_paths = rx_paths  # {port: "mergeable buffer", ...}
        self.tx_paths = tx_paths
        self.output = output

    def __getitem__(self, key):
        return self.summary[key]


def run_traffic(env, *, ports, mode, count, size, name=None, extra=(), expect_pass=True):
    """Runs vhost-traffic to completion and returns its TrafficResult.

    `ports` are the virtio-user devargs (one per port). With expect_pass,
    checks exit status 0 and the exact counts: every frame sent and received,
    none lost, corrupt, duplicated or misrouted.
    """
    tool = require_traffic(env)
    name = name or f"traffic-{mode}-{size}"
    prefix = env.dpdk_prefix("traffic")
    argv = [tool, "--eal", f"-l 0 --no-huge -m 1024 --no-pci --file-prefix {prefix}",
            "--mode", mode, "--count", str(count), "--size", str(size),
            "--timeout", str(TRAFFIC_TIMEOUT_S), "--json"]
    for p in ports:
        argv += ["--port", p]
    argv += list(extra)
    proc = harness.Process(name, argv, env.path(f"{name}.log"), timeout=TRAFFIC_WATCHDOG_S)
    env.register(proc)
    rc = proc.wait(TRAFFIC_WATCHDOG_S + 5)
    # All of its output, up to the end of the pipe.
    harness.wait_for(lambda: not proc._reader.is_alive(), 5)
    out = proc.output()
    summary = None
    for line in out.splitlines():
        if line.startswith('{"result"'):
            summary = json.loads(line)
    rx_paths = {int(m.group(2)): m.group(1) for m in RX_PATH_RE.finditer(out)}
    tx_paths = {int(m.group(2)): m.group(1) for m in TX_PATH_RE.finditer(out)}
    line = next((l for l in out.splitlines() if l.startswith("vhost-traffic: PASS")
                 or l.startswith("vhost-traffic: FAIL")), None)
    log(f"{name}: exit {harness.describe_status(rc)}: {line}")
    if rx_paths:
        log(f"{name}: virtio Rx path {rx_paths}, Tx path {tx_paths}")
    check(rc is not None, f"{name} did not finish")
    errors = [l for l in out.splitlines() if l.startswith("vhost-traffic: error:")]
    check(summary is not None, f"{name} printed no JSON summary (exit "
                               f"{harness.describe_status(rc)}): {' / '.join(errors)}")
    if expect_pass:
        check(rc == 0, f"{name} exited {harness.describe_status(rc)}: {line}"
                       f"{' (' + ' / '.join(errors) + ')' if errors else ''}")
        check(summary["result"] == "pass", f"{name}: result {summary['result']}")
        for key, want in (("sent", count), ("received", count), ("lost", 0), ("corrupt", 0),
                          ("dup", 0), ("misrouted", 0)):
            check(summary[key] == want, f"{name}: {key} = {summary[key]}, expected {want}: {line}")
    return TrafficResult(summary, rx_paths, tx_paths, out)


# --------------------------------------------------------------------------
# testpmd with several ports

class TestpmdPorts(harness.Testpmd):
    """dpdk-testpmd (interactive) with one virtio-user port per vdev and extra
    testpmd arguments, on CPU 0."""

    def __init__(self, env, name, vdevs, testpmd_args=(), lcores="0@0,1@0"):
        self.file_prefix = env.dpdk_prefix(name)
        argv = ["stdbuf", "-oL", "-eL", env.testpmd, "--lcores", lcores, *harness.EAL_COMMON,
                "-m", harness.TESTPMD_MEM_MB, "--file-prefix", self.file_prefix]
        for vdev in vdevs:
            argv += ["--vdev", vdev]
        argv += ["--", "-i", "--no-mlockall", *testpmd_args]
        harness.Process.__init__(self, name, argv, env.path(f"{name}.log"), stdin=True)
        env.register(self)


FWD_BLOCK_RE = re.compile(
    r"Forward statistics for port (\d+)\s+-+\s+"
    r"RX-packets: (\d+)\s+RX-dropped: (\d+)\s+RX-total: (\d+)\s+"
    r"TX-packets: (\d+)\s+TX-dropped: (\d+)\s+TX-total: (\d+)")


def parse_fwd_stats(text):
    """testpmd's per-port 'Forward statistics' blocks (the last one of each port)."""
    result = {}
    for m in FWD_BLOCK_RE.finditer(text):
        result[int(m.group(1))] = {
            "rx": int(m.group(2)), "rx_dropped": int(m.group(3)),
            "tx": int(m.group(5)), "tx_dropped": int(m.group(6)),
        }
    return result
