#!/usr/bin/env python3
"""Exact-count reflection through `xconnect [p0, p0]`, per virtio-user RX/TX path.

For each case, a fresh vhostd reflects port p0 to itself and vhost-traffic
(DPDK's virtio driver over vhost-user) sends N frames of one size with a
sequence number and a payload pattern, and must get every one back intact,
exactly once. Then:
  * the driver picked the RX and TX paths the case is about (from its INFO
    log);
  * vhostd counted exactly the frames sent (N plus the priming frames) in both
    directions, with the right byte counts and no drop or error counter;
  * vhostd is still running and exits 0 on SIGTERM.

--set small: in_order=0 with mrg_rxbuf=0 and =1, in_order=1 with mrg_rxbuf=1
             and =0, vectorized=1 (with in_order=0, mrg_rxbuf=0), each at
             64 and 1518 bytes.
             And three cases with every frame's first line written with
             streaming stores (dataplane.rx_stores: streaming), which `auto`
             picks only on some hosts.
--set jumbo: 9000-byte frames: mergeable RX buffers of 10 KiB (one buffer a
             frame), mergeable 2 KiB buffers (five buffers a frame, and
             five-segment TX chains), the same in order (in_order=1), and
             big non-mergeable buffers; and one-buffer frames with
             streaming stores.

With --backend testpmd-vhost (suite integration-ref) the same cases run
against DPDK's own vhost back-end (testpmd, net_vhost, io forwarding), which
proves vhost-traffic itself; testpmd's forward counters replace vhostd's.
"""

import harness
import idle_lib
import trafficlib
from harness import check, log

SMALL_COUNT = 20000
JUMBO_COUNT = 2000

# Each case spells out in_order and mrg_rxbuf: the driver picks its RX and TX
# functions from both and from what the back-end offers. vhostd offers
# VIRTIO_F_IN_ORDER (docs/protocol.md), as DPDK's vhost (the integration-ref
# back-end) does, so in_order=1 gives the in-order paths.
MRG0 = "in_order=0,mrg_rxbuf=0"
MRG1 = "in_order=0,mrg_rxbuf=1"
INO0 = "in_order=1,mrg_rxbuf=0"
INO1 = "in_order=1,mrg_rxbuf=1"
PATHS = {  # devargs -> (RX path, TX path) as the driver logs them
    MRG0: ("standard", "standard"),
    MRG1: ("mergeable buffer", "standard"),
    INO0: ("inorder", "inorder"),
    INO1: ("inorder", "inorder"),
    # The split-ring vectorized RX path needs mrg_rxbuf=0 and no IN_ORDER:
    # otherwise the driver silently falls back ("disabled split ring
    # vectorized rx for mrg_rxbuf enabled"; IN_ORDER wins over vectorized).
    MRG0 + ",vectorized=1": ("vectorized", "standard"),
}
CASES = {
    "small": [
        # (devargs, size, count, extra vhost-traffic args, dataplane.rx_stores)
        *((devargs, size, SMALL_COUNT, (), "auto") for devargs in PATHS for size in (64, 1518)),
        (INO1, 64, SMALL_COUNT, (), "streaming"),
        (INO1, 1518, SMALL_COUNT, (), "streaming"),
        (MRG0, 1518, SMALL_COUNT, (), "streaming"),
    ],
    "jumbo": [
        (MRG1, 9000, JUMBO_COUNT, (), "auto"),
        (MRG1, 9000, JUMBO_COUNT, ("--data-room", "2176"), "auto"),
        (INO1, 9000, JUMBO_COUNT, ("--data-room", "2176"), "auto"),
        (MRG0, 9000, JUMBO_COUNT, (), "auto"),
        (MRG1, 9000, JUMBO_COUNT, (), "streaming"),
    ],
}


def extra_args(p):
    trafficlib.add_args(p)
    p.add_argument("--set", choices=sorted(CASES), default="small", help="which cases to run")


class RefBackend:
    """DPDK's own vhost back-end in testpmd (net_vhost), forwarding port 0 to
    itself (io mode): proves vhost-traffic and the machine without vhostd
    (suite integration-ref). One testpmd serves every case; its forward
    counters, reset by each `start`, replace vhostd's."""

    def __init__(self, env, sock):
        self.backend = env.backend(mode="server", socket=sock)
        self.proc = self.backend.proc
        self.proc.command("set fwd io", r"Set io packet forwarding mode")

    def start(self):
        self.proc.command("start", r"io packet forwarding")

    def check(self, name, res, _size):
        frames = res["sent"] + res["prime_sent"]
        since = self.proc.mark()
        self.proc.send("stop")
        self.proc.expect(r"Done\.", 10, since=since, what="'Done.' after stop")
        fwd = trafficlib.parse_fwd_stats(self.proc.output(since)).get(0)
        check(fwd and fwd["rx"] == frames and fwd["tx"] == frames,
              f"{name}: testpmd's vhost port forwarded {fwd}, expected {frames} frames")


def check_vhostd(name, vhostd, res, size, rx_stores):
    frames = res["sent"] + res["prime_sent"]
    stats = vhostd.stats()
    if rx_stores == "streaming":
        # The frames really went the streaming way (the PMD's cumulative
        # count, in the statistics just logged).
        streamed = max((int(m["streamed"] or 0) for m in idle_lib.PMD_STATS_RE.finditer(vhostd.proc.output())),
                       default=0)
        check(streamed >= res["sent"], f"{name}: vhostd streamed the first line of {streamed} frames, "
                                       f"expected at least the {res['sent']} sent")
    p0 = trafficlib.port_totals(stats, "p0")
    check(p0["rx_packets"] == frames and p0["tx_packets"] == frames,
          f"{name}: vhostd counted rx {p0['rx_packets']} / tx {p0['tx_packets']} frames on p0, "
          f"expected {frames} each ({res['sent']} + {res['prime_sent']} priming)")
    check(p0["rx_bytes"] == frames * size and p0["tx_bytes"] == frames * size,
          f"{name}: vhostd counted rx {p0['rx_bytes']} / tx {p0['tx_bytes']} bytes, "
          f"expected {frames * size}")
    trafficlib.check_no_drops(stats)
    vhostd.check_alive()
    vhostd.stop()


def run_case(env, ref, index, devargs, size, count, extra, rx_stores):
    name = f"case{index}"
    log(f"--- {name}: {devargs}, {size} bytes x {count} {' '.join(extra)}, rx_stores {rx_stores}")
    if ref is None:
        # A fresh vhostd per case (the reconnect of one front-end after
        # another is traffic_reconnect's subject).
        sock = env.path(f"{name}.sock")
        vhostd = trafficlib.Vhostd(env, name=f"vhostd-{name}", switch="xconnect",
                                   xconnect=[("p0", "p0")], rx_stores=rx_stores,
                                   ports_yaml=[trafficlib.vhost_port("p0", sock)], sockets=[sock])
    else:
        sock = ref.backend.socket
        ref.start()
    res = trafficlib.run_traffic(env, name=f"traffic-{name}", mode="reflect", count=count,
                                 size=size, ports=[f"path={sock},queue_size=1024,{devargs}"],
                                 extra=extra)
    want = PATHS[devargs]
    got = (res.rx_paths.get(0), res.tx_paths.get(0))
    check(got == want, f"{name} ({devargs}): the virtio driver picked the {got[0]!r} Rx and "
                       f"{got[1]!r} Tx paths, expected {want[0]!r} and {want[1]!r}")
    if ref is None:
        check_vhostd(name, vhostd, res, size, rx_stores)
    else:
        ref.check(name, res, size)
    return res


def run(env):
    ref = None if env.backend_kind == "vhostd" else RefBackend(env, env.path("ref.sock"))
    results = []
    for i, (devargs, size, count, extra, rx_stores) in enumerate(CASES[env.args.set]):
        res = run_case(env, ref, i, devargs, size, count, extra, rx_stores)
        results.append((devargs, size, extra, res))
    if ref is not None:
        ref.backend.stop()
    log("summary:")
    for devargs, size, extra, res in results:
        log(f"  {devargs:36} {' '.join(extra):18} {size:5} B: {res['received']} frames "
            f"in {res['seconds']:.3f} s, {res['pps']:.0f} pps, {res['mbps']:.0f} Mbit/s "
            f"(Rx path: {res.rx_paths.get(0)}, Tx path: {res.tx_paths.get(0)})")


if __name__ == "__main__":
    harness.main(run, extra_args=extra_args)
