"""Helpers for the idle-core tests (idle_wake.py, idle_stress.py); standard library only.

Builds on harness.py (processes, temporary folder, clean-up, logs on failure):

* IdleVhostd: vhostd reflecting one vhost-user port to itself (`xconnect
  [p0, p0]`) with a chosen `dataplane.idle` setting, a watchdog as long as the
  test needs, and its SIGUSR1 statistics parsed: the per-PMD line (polls,
  sleeps, woken, timeouts, back-outs, busy and idle TSC cycles) and the
  per-queue lines.
* run_ping(): one run of tools/vhost-ping against that port, its JSON summary
  and (optionally) every round trip read back.

Test scripts call harness.main(run, extra_args=idle_lib.add_args).
"""

from __future__ import annotations

import json
import os
import re
import signal

import harness
import trafficlib
from harness import check, log

# vhostd's per-PMD line (Dataplane::log_stats); tools/bench parses it with
# this pattern too. Lines from before the cycles were logged read 0 cycles.
PMD_STATS_RE = re.compile(
    r"stats (?P<pmd>pmd\d+) cpu (?P<cpu>\d+): polls busy (?P<busy>\d+) empty (?P<empty>\d+) "
    r"\(empty share [\d.]+%\), sleeps (?P<sleeps>\d+), woken (?P<woken>\d+) "
    r"\(by control (?P<control_woken>\d+)\), "
    r"timeouts (?P<timeouts>\d+), back-outs (?P<backouts>\d+)"
    r"(?:, cycles busy (?P<busy_cycles>\d+) idle (?P<idle_cycles>\d+) \(busy share [\d.]+%\)"
    r"(?:, rx first lines streamed in (?P<streamed>\d+) frames "
    r"\(store switches (?P<store_switches>\d+)\))?)?")

# Per-queue lines and drop reasons: the same as the traffic tests read.
QUEUE_STATS_RE = trafficlib.STATS_RE
DROP_FIELDS = trafficlib.DROP_FIELDS


def add_args(parser):
    parser.add_argument("--vhost-ping", default=os.environ.get("VHOST_PING", ""),
                        help="path of the vhost-ping binary (tools/vhost-ping)")


def require_ping(env):
    return trafficlib.require_tool(env.args.vhost_ping, "vhost-ping")


class IdleVhostd:
    """vhostd, one server port p0 cross-connected to itself, one PMD on CPU 1."""

    def __init__(self, env, *, mode="adaptive", poll_us=200, max_sleep_us=1000,
                 name="vhostd", timeout=harness.PROCESS_TIMEOUT_S):
        self.env = env
        self.name = name
        self.socket = env.path(f"{name}-p0.sock")
        prefix = env.dpdk_prefix("vhostd")
        text = (
            f'dpdk: {{ eal_args: ["--no-huge", "-m", "{harness.VHOSTD_MEM_MB}", "--no-pci", '
            f'"--file-prefix", "{prefix}"] }}\n'
            f"dataplane: {{ pmd_cores: [1], burst: 32, idle: {{ mode: {mode}, "
            f"poll_us: {poll_us}, max_sleep_us: {max_sleep_us} }} }}\n"
            "switch: { mode: xconnect }\n"
            "xconnect: [ [p0, p0] ]\n"
            "ports:\n"
            f"  - {{ name: p0, type: vhost-user, path: {self.socket}, mode: server, queues: 1 }}\n"
            f"control: {{ socket: {env.path(name + '-ctl.sock')} }}\n"
            # info, not debug: a stress run must not log per connection event
            # more than it has to.
            "log: { level: info }\n")
        self.config_path = env.write(env.path(f"{name}.yaml"), text)
        self.proc = harness.Process(name, [env.require_vhostd(), "--config", self.config_path],
                                    env.path(f"{name}.log"), timeout=timeout)
        env.register(self.proc)
        ok = harness.wait_for(lambda: harness.is_socket(self.socket) or not self.proc.alive(), 30)
        self.check_alive()
        check(ok, f"{name} did not create {self.socket} within 30 s")
        log(f"{name} is up: idle mode {mode}, poll_us {poll_us}, max_sleep_us {max_sleep_us}")

    def check_alive(self):
        check(self.proc.alive(), f"{self.name} died (status "
                                 f"{harness.describe_status(self.proc.popen.poll())})")

    def stats(self):
        """SIGUSR1; returns (pmds, queues): {"pmd0": {...}}, {("p0", "vring1"): {...}}."""
        self.check_alive()
        since = self.proc.mark()
        self.proc.signal(signal.SIGUSR1)
        # One PMD line, then two queue lines (p0's vring0 and vring1).
        ok = harness.wait_for(
            lambda: len(QUEUE_STATS_RE.findall(self.proc.output(since))) >= 2, 10)
        check(ok, f"{self.name} logged no statistics within 10 s of SIGUSR1")
        out = self.proc.output(since)
        pmds = {m["pmd"]: {k: int(v or 0) for k, v in m.groupdict().items() if k != "pmd"}
                for m in PMD_STATS_RE.finditer(out)}
        queues = {(m["port"], m["queue"]): {k: int(v) for k, v in m.groupdict().items()
                                            if k not in ("port", "queue")}
                  for m in QUEUE_STATS_RE.finditer(out)}
        check(pmds, f"{self.name}: no 'stats pmdN' line after SIGUSR1")
        for pmd, s in sorted(pmds.items()):
            log(f"{self.name} {pmd}: polls busy {s['busy']} empty {s['empty']}, sleeps "
                f"{s['sleeps']}, woken {s['woken']}, timeouts {s['timeouts']}, back-outs "
                f"{s['backouts']}, cycles busy {s['busy_cycles']} idle {s['idle_cycles']}")
        for (port, queue), s in sorted(queues.items()):
            log(f"{self.name} {port}/{queue}: rx {s['rx_packets']} tx {s['tx_packets']} drops "
                f"{ {f: s[f] for f in DROP_FIELDS if s[f]} or 0}")
        return pmds, queues

    def stop(self):
        """SIGTERM: vhostd must exit 0 within 10 s and remove its socket file."""
        self.check_alive()
        self.proc.signal(signal.SIGTERM)
        self.proc.wait_exit(10, expect_rc=0, action="exit after SIGTERM")
        check(not os.path.exists(self.socket), f"{self.name} left {self.socket} behind")


def run_ping(env, socket, args, *, name="ping", watchdog=60, samples=False):
    """Runs vhost-ping on `socket` with `args` to completion.

    Returns (exit status, JSON summary, samples): samples is a list of
    (seq, rtt_ns or None when lost, self_ns) when asked for, else None.
    self_ns is the part of the round trip during which vhost-ping itself was
    not polling (descheduled): delay of the tool, not of vhostd.
    """
    tool = require_ping(env)
    prefix = env.dpdk_prefix("ping")
    argv = [tool, "--eal", f"-l 0 --no-huge -m 1024 --no-pci --file-prefix {prefix}",
            "--port", f"path={socket},queue_size=1024", "--json", *args]
    samples_path = env.path(f"{name}.samples") if samples else None
    if samples_path:
        argv += ["--samples", samples_path]
    proc = harness.Process(name, argv, env.path(f"{name}.log"), timeout=watchdog)
    env.register(proc)
    rc = proc.wait(watchdog + 5)
    harness.wait_for(lambda: not proc._reader.is_alive(), 5)
    out = proc.output()
    summary = None
    for line in out.splitlines():
        if line.startswith('{"result"'):
            summary = json.loads(line)
    for line in out.splitlines():
        if line.startswith(("rtt ", "vhost-ping: PASS", "vhost-ping: FAIL")) or " sent, " in line:
            log(f"{name}: {line}")
    check(rc is not None, f"{name} did not finish within {watchdog} s")
    errors = [l for l in out.splitlines() if l.startswith("vhost-ping: error:")]
    check(summary is not None, f"{name} printed no JSON summary (exit "
                               f"{harness.describe_status(rc)}): {' / '.join(errors)}")
    rtts = None
    if samples_path:
        rtts = []
        with open(samples_path) as f:
            for line in f:
                parts = line.split()
                if parts[1] == "lost":
                    rtts.append((int(parts[0]), None, 0))
                else:
                    rtts.append((int(parts[0]), int(parts[1]), int(parts[2])))
    return rc, summary, rtts


def slowest(rtts, n=10):
    """The n slowest round trips as text for the log: '#seq rtt us (self s us)'."""
    back = sorted((r for r in rtts if r[1] is not None), key=lambda r: r[1], reverse=True)
    return ", ".join(f"#{seq} {ns / 1e3:.0f} us" + (f" (self {me / 1e3:.0f})" if me else "")
                     for seq, ns, me in back[:n])
