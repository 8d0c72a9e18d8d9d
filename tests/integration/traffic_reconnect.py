#!/usr/bin/env python3
"""Front-end restarts with traffic: one vhostd, three vhost-traffic runs in a row.

A guest that reboots, or a DPDK application that restarts, connects again to
the same vhost-user socket with fresh rings whose indices start from 0
again. Each run reflects an exact number of frames through `xconnect [p0, p0]`
and must get every one back; the second and third runs prove that vhostd
restarted its ring state (indices, port health) for the new connection
instead of carrying the previous connection's over. The runs alternate
mrg_rxbuf so the negotiated features change between connections too.

Afterwards vhostd's counters must add up over all runs with no drops, and
vhostd must still run and exit 0 on SIGTERM.
"""

import harness
import trafficlib
from harness import check, log

COUNT = 5000
RUNS = ("mrg_rxbuf=1", "mrg_rxbuf=0", "mrg_rxbuf=1")


def run(env):
    sock = env.path("p0.sock")
    vhostd = trafficlib.Vhostd(env, switch="xconnect", xconnect=[("p0", "p0")],
                               ports_yaml=[trafficlib.vhost_port("p0", sock)], sockets=[sock])
    frames = 0
    for i, devargs in enumerate(RUNS, 1):
        log(f"--- connection {i}: {devargs}")
        res = trafficlib.run_traffic(env, name=f"traffic{i}", mode="reflect", count=COUNT,
                                     size=64, ports=[f"path={sock},queue_size=1024,{devargs}"])
        frames += res["sent"] + res["prime_sent"]
        vhostd.check_alive()

    stats = vhostd.stats()
    p0 = trafficlib.port_totals(stats, "p0")
    check(p0["rx_packets"] == frames and p0["tx_packets"] == frames,
          f"vhostd counted rx {p0['rx_packets']} / tx {p0['tx_packets']} frames over "
          f"{len(RUNS)} connections, expected {frames} each")
    trafficlib.check_no_drops(stats)
    vhostd.stop()


if __name__ == "__main__":
    harness.main(run, extra_args=trafficlib.add_args, backends=("vhostd",))
