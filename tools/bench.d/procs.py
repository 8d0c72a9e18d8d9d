"""The processes of one benchmark run: the testpmd peer and the two back-ends.

Process life (own process group, PDEATHSIG, hard-timeout watchdog, output
capture, expect) comes from tests/integration/harness.py, imported read-only.
"""

from __future__ import annotations

import os
import signal
import time

import harness
import parse

TESTPMD_MEM_MB = "1024"
EAL = ["--no-huge", "-m", TESTPMD_MEM_MB, "--no-pci"]

# The peer's two virtio-user ports in the V-S-V case get fixed MACs so that
# mac forwarding can address the other port through the back-end's switch.
PEER_MACS = ("02:00:00:00:0b:00", "02:00:00:00:0b:01")

PROMPT = r"testpmd> "

# Upper bounds, not expectations: on a shared machine a process can wait
# seconds for a CPU, and a slow answer must not fail a run that measures fine.
REPLY_S = 20      # a testpmd command's answer, vhostd's SIGUSR1 statistics
START_S = 60      # a process up to its prompt / socket, a link up
STOP_S = 30       # quit / SIGTERM to exit


class Testpmd(harness.Testpmd):
    """dpdk-testpmd, interactive on stdin, with any EAL and application args."""

    def __init__(self, name, argv, log_path, timeout):
        # harness.Testpmd.__init__ builds a fixed command line; only its
        # methods (wait_prompt, command, link_status, wait_link_up, quit) are
        # reused here.
        harness.Process.__init__(self, name, argv, log_path, stdin=True, timeout=timeout)
        self.core_cycles = None  # fwd_stats(core_cycles=True) fills it in

    def link_status(self, port=0, timeout=REPLY_S):
        # harness.Testpmd.link_status with a longer wait; wait_link_up uses it.
        return self.command(f"show port info {port}", r"Link status: (\w+)", timeout).group(1)

    def port_stats(self, nports, timeout=REPLY_S):
        """`show port stats all`, parsed: {port: counters}."""
        since = self.mark()
        self.send("show port stats all")
        last = nports - 1
        self.expect(rf"NIC statistics for port {last}\s[\s\S]*?Tx-pps:\s+\d+\s+Tx-bps:\s+\d+",
                    timeout, since=since, what="the port statistics")
        stats = parse.port_stats(self.output(since))
        harness.check(len(stats) == nports,
                      f"{self.name}: expected statistics of {nports} port(s), got {sorted(stats)}")
        return stats

    def fwd_stats(self, cmd="show fwd stats all", timeout=REPLY_S, core_cycles=False):
        """{port: forward counters}. With core_cycles (testpmd runs with
        --record-core-cycles), also waits for the cycles line and keeps it,
        parsed, in self.core_cycles."""
        since = self.mark()
        self.send(cmd)
        tail = r"[\s\S]*?MHz Clock" if core_cycles else ""
        self.expect(r"Accumulated forward statistics for all ports\+*\s+RX-packets[\s\S]*?"
                    r"TX-total:\s+\d+" + tail, timeout, since=since, what=f"the output of {cmd!r}")
        text = self.output(since)
        if core_cycles:
            self.core_cycles = parse.testpmd_core_cycles(text)
        return parse.fwd_stats(text.split("Accumulated forward statistics")[0])

    def simple(self, cmd, timeout=REPLY_S):
        """A command that prints nothing of interest: waits for the next prompt."""
        self.command(cmd, PROMPT, timeout)

    def threads(self, comm=r"rte-worker-\d+"):
        return parse.thread_times(self.pid, comm)


def testpmd_argv(testpmd, lcores, prefix, vdevs, app_args, eal_extra=()):
    argv = ["stdbuf", "-oL", "-eL", testpmd, "--lcores", lcores, *EAL,
            "--file-prefix", prefix, *eal_extra]
    for vdev in vdevs:
        argv += ["--vdev", vdev]
    # --record-burst-stats: per-port RX poll counts with the share of empty
    # polls, in `show fwd stats` (one counter increment per poll).
    argv += ["--", "-i", "--no-mlockall", "--record-burst-stats", *app_args]
    return argv


def start_peer(ctx, sockets, vsv):
    """The traffic source and sink: testpmd with virtio-user port(s) on CPU 0.

    Single port: io forwarding, so each frame received is sent straight back.
    V-S-V: two ports, paired topology, mac forwarding: a frame received on
    port 0 leaves port 1 with source MAC = port 1, destination MAC = port 0
    (and the other way round), so an L2 switch behind them must carry it over
    to the other port.
    """
    vdevs = []
    for i, sock in enumerate(sockets):
        vdev = f"net_virtio_user{i},path={sock},queue_size=1024"
        if ctx.peer_vdev_args:
            vdev += "," + ctx.peer_vdev_args
        if vsv:
            vdev += f",mac={PEER_MACS[i]}"
        vdevs.append(vdev)
    if vsv:
        app = ["--forward-mode=mac", "--port-topology=paired",
               f"--eth-peer=0,{PEER_MACS[1]}", f"--eth-peer=1,{PEER_MACS[0]}"]
    else:
        app = ["--forward-mode=io"]
    # virtio init at debug level: the negotiated features and the RX/TX paths
    # the peer picked (they differ with what each back-end offers).
    argv = testpmd_argv(ctx.testpmd, "0@0,1@0", ctx.prefix("peer"), vdevs, app,
                        ["--log-level=pmd.net.virtio.init:debug"])
    peer = Testpmd("peer", argv, ctx.path("peer.log"), ctx.proc_timeout)
    ctx.register(peer)
    peer.wait_prompt(START_S)
    return peer


# --------------------------------------------------------------------------
# back-ends

class VhostdBackend:
    """(A) vhostd with one busy-polling PMD on CPU 1 (or, with another
    ctx.idle_yaml, one that sleeps when idle: `tools/bench idle`)."""

    kind = "A"
    label = "vhostd"
    worker = r"pmd\d+"

    def __init__(self, ctx, sockets, vsv):
        self.ctx = ctx
        self.nports = len(sockets)
        self.config_path = ctx.path("vhostd.yaml")
        ports = "".join(f"  - {{ name: p{i}, type: vhost-user, path: {sock}, mode: server, "
                        f"queues: 1 }}\n" for i, sock in enumerate(sockets))
        if vsv:
            switch = "switch: { mode: l2 }\n"
        else:
            switch = "switch: { mode: xconnect }\nxconnect: [ [p0, p0] ]\n"
        text = (f'dpdk: {{ eal_args: ["--no-huge", "-m", "{TESTPMD_MEM_MB}", "--no-pci", '
                f'"--file-prefix", "{ctx.prefix("vhostd")}"] }}\n'
                f"dataplane: {{ pmd_cores: [1], idle: {getattr(ctx, 'idle_yaml', '{ mode: poll }')} }}\n"
                f"{switch}"
                f"ports:\n{ports}"
                f"control: {{ socket: {ctx.path('ctl.sock')} }}\n"
                "log: { level: info }\n")
        with open(self.config_path, "w") as f:
            f.write(text)
        argv = [ctx.vhostd, "--config", self.config_path, "--log-level", "info"]
        self.proc = harness.Process("vhostd", argv, ctx.path("vhostd.log"),
                                    timeout=ctx.proc_timeout)
        ctx.register(self.proc)
        for sock in sockets:
            ok = harness.wait_for(lambda s=sock: harness.is_socket(s) or not self.proc.alive(),
                                  START_S)
            self.check_alive()
            harness.check(ok, f"vhostd did not create {sock} within {START_S} s")

    @property
    def pid(self):
        return self.proc.pid

    def check_alive(self):
        harness.check(self.proc.alive(), "vhostd exited with status "
                      f"{harness.describe_status(self.proc.popen.poll())}")

    def wait_ready(self, timeout=START_S):
        # Each port logs "N ring(s) live" as the front-end enables its rings.
        for i in range(self.nports):
            self.proc.expect(rf"port p{i}: 2 ring\(s\) live", timeout,
                             what=f"both rings of p{i} live")

    def snapshot(self, timeout=REPLY_S):
        """SIGUSR1 and the stats lines it logs: ({(port, vringN): counters},
        {"pmd0": PMD counters, ...})."""
        self.check_alive()
        since = self.proc.mark()
        os.kill(self.proc.pid, signal.SIGUSR1)
        want = 2 * self.nports

        def logged():
            text = self.proc.output(since)
            return parse.count_vhostd_stats_lines(text) >= want and parse.vhostd_pmd_stats(text)

        ok = harness.wait_for(logged, timeout)
        harness.check(ok, f"vhostd logged no statistics within {timeout} s of SIGUSR1")
        text = self.proc.output(since)
        return parse.vhostd_stats(text), parse.vhostd_pmd_stats(text)[-1]

    def window_begin(self):
        self._before = self.snapshot()
        return self._before

    def since(self, prev):
        """A new snapshot, and the frames the PMDs took in and their busy
        cycles since snapshot `prev`: (snapshot, frames, busy_cycles)."""
        cur = self.snapshot()
        frames = sum(q["rx_packets"] for q in parse.vhostd_delta(prev[0], cur[0]).values())
        busy = sum(d["busy_cycles"] for d in parse.pmd_delta(prev[1], cur[1]).values())
        return cur, frames, busy

    def window_end(self):
        """Counter increase over the window, the drops in it and the PMDs' polls."""
        queues, pmds = self.snapshot()
        delta = parse.vhostd_delta(self._before[0], queues)
        drops = {k: sum(q[k] for q in delta.values())
                 for k in ("no_buffer", "too_big", "broken", "no_route", "errors")}
        polls = parse.pmd_poll_summary(parse.pmd_delta(self._before[1], pmds))
        # Frames the PMD took in (from the guests' TX rings): its work.
        frames = sum(q["rx_packets"] for q in delta.values())
        if polls and frames and polls["busy_cycles"]:
            polls["cycles_per_frame"] = polls["busy_cycles"] / frames
        if polls and frames:
            # Frames whose first line was streamed (StoreTuner), over the
            # frames taken in: each is delivered once in these cases.
            polls["streamed_share"] = min(1.0, polls["streamed"] / frames)
        return {"queues": {f"{p}/{q}": c for (p, q), c in delta.items()}, "drops": drops,
                "drop_total": sum(drops.values()), "polls": polls}

    def threads(self):
        return parse.thread_times(self.proc.pid, self.worker)

    def stop(self):
        self.check_alive()
        self.proc.signal(signal.SIGTERM)
        self.proc.wait_exit(STOP_S, expect_rc=0, action="exit after SIGTERM")


class TestpmdVhostBackend:
    """(B) the reference: DPDK's vhost library (net_vhost) in testpmd, io fwd, CPU 1."""

    kind = "B"
    label = "testpmd net_vhost"
    worker = r"rte-worker-\d+"

    def __init__(self, ctx, sockets, vsv):
        self.ctx = ctx
        self.nports = len(sockets)
        vdevs = [f"net_vhost{i},iface={sock},queues=1" for i, sock in enumerate(sockets)]
        app = ["--forward-mode=io", "--record-core-cycles"]
        if vsv:
            app.append("--port-topology=paired")  # RX on vhost0 -> TX on vhost1, and back
        argv = testpmd_argv(ctx.testpmd, "0@1,1@1", ctx.prefix("B"), vdevs, app)
        self.proc = Testpmd("backend", argv, ctx.path("backend.log"), ctx.proc_timeout)
        ctx.register(self.proc)
        self.proc.wait_prompt(START_S)
        for sock in sockets:
            ok = harness.wait_for(lambda s=sock: harness.is_socket(s), START_S)
            harness.check(ok, f"testpmd (net_vhost) did not create {sock}")
        self.proc.command("start", r"Logical Core \d+ .*forwards packets", REPLY_S)

    @property
    def pid(self):
        return self.proc.pid

    def check_alive(self):
        harness.check(self.proc.alive(), "the testpmd back-end died")

    def wait_ready(self, timeout=START_S):
        deadline = time.monotonic() + timeout
        for port in range(self.nports):
            while True:
                if self.proc.link_status(port) == "up":
                    break
                harness.check(time.monotonic() < deadline,
                              f"back-end port {port} link not up after {timeout} s")
                time.sleep(0.3)

    def window_begin(self):
        self.proc.simple("clear fwd stats all")  # the core cycles too
        self._t0 = time.monotonic()

    def window_end(self):
        fwd = self.proc.fwd_stats(core_cycles=True)
        wall = time.monotonic() - self._t0
        # TX-dropped: frames the vhost PMD could not enqueue into the peer's
        # RX ring (no free buffer) — vhostd's no_buffer.
        drops = {"tx_dropped": sum(p["tx_dropped"] for p in fwd.values()),
                 "rx_dropped": sum(p["rx_dropped"] for p in fwd.values())}
        polls = parse.poll_summary(fwd)
        cyc = self.proc.core_cycles
        if polls and cyc and cyc["packets"]:
            # The forwarding iterations that received something: busy time.
            polls["busy_cycles"] = cyc["busy_cycles"]
            polls["busy_share"] = min(1.0, cyc["busy_cycles"] / (cyc["hz"] * wall))
            polls["cycles_per_frame"] = cyc["busy_cycles"] / cyc["packets"]
        return {"ports": fwd, "drops": drops, "drop_total": sum(drops.values()), "polls": polls}

    def threads(self):
        return self.proc.threads(self.worker)

    def stop(self):
        self.check_alive()
        self.proc.fwd_stats("stop")
        self.proc.quit(STOP_S)


BACKENDS = {"A": VhostdBackend, "B": TestpmdVhostBackend}
