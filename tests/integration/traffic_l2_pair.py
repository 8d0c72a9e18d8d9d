#!/usr/bin/env python3
"""Two virtio-user ports through vhostd's learning switch (`switch: { mode: l2 }`).

vhost-traffic in pair mode owns both ports: it first sends one broadcast
priming frame from each port (flooded to the other one, so vhostd learns
both MACs), then N frames alternately 0 -> 1 and 1 -> 0, each addressed to
the other port's MAC. Every frame must arrive intact, exactly once, on the
other port (a frame on the wrong port counts as misrouted). vhostd's counters
must show each frame received once and sent once, port a's rx equal to port
b's tx and the other way round, and no drop; then vhostd still runs and exits
0 on SIGTERM. One fresh vhostd per frame size.
"""

import harness
import trafficlib
from harness import check, log

CASES = ((64, 20000), (1518, 20000))


def run_case(env, size, count):
    tag = f"s{size}"
    socks = {p: env.path(f"{tag}-{p}.sock") for p in ("a", "b")}
    vhostd = trafficlib.Vhostd(env, name=f"vhostd-{tag}", switch="l2",
                               ports_yaml=[trafficlib.vhost_port(p, s) for p, s in socks.items()],
                               sockets=socks.values())
    res = trafficlib.run_traffic(env, name=f"traffic-{tag}", mode="pair", count=count, size=size,
                                 ports=[f"path={socks['a']},queue_size=1024",
                                        f"path={socks['b']},queue_size=1024"])
    frames = res["sent"] + res["prime_sent"]
    stats = vhostd.stats()
    a = trafficlib.port_totals(stats, "a")
    b = trafficlib.port_totals(stats, "b")
    check(a["rx_packets"] + b["rx_packets"] == frames,
          f"vhostd received {a['rx_packets']} + {b['rx_packets']} frames, expected {frames} "
          f"({res['sent']} + {res['prime_sent']} priming)")
    check(a["rx_packets"] == b["tx_packets"] and b["rx_packets"] == a["tx_packets"],
          f"what one port sent is not what the other received: a rx {a['rx_packets']} / "
          f"b tx {b['tx_packets']}, b rx {b['rx_packets']} / a tx {a['tx_packets']}")
    check(a["rx_bytes"] + b["rx_bytes"] == frames * size,
          f"vhostd received {a['rx_bytes'] + b['rx_bytes']} bytes, expected {frames * size}")
    trafficlib.check_no_drops(stats)
    vhostd.check_alive()
    vhostd.stop()
    return res


def run(env):
    results = [(size, run_case(env, size, count)) for size, count in CASES]
    for size, res in results:
        log(f"  pair {size:5} B: {res['received']} frames in {res['seconds']:.3f} s, "
            f"{res['pps']:.0f} pps, {res['mbps']:.0f} Mbit/s")


if __name__ == "__main__":
    harness.main(run, extra_args=trafficlib.add_args, backends=("vhostd",))
