#!/usr/bin/env python3
"""dpdk-testpmd in the middle: a MAC-forwarding loop through vhostd's L2 switch.

testpmd has two virtio-user ports, P0 on vhostd port a and P1 on port b, and
forwards in mac mode: what P1 receives goes out of P0 with destination
eth-peer 0, and the other way round. With eth-peer 0 = P1's MAC and
eth-peer 1 = P0's MAC every frame crosses vhostd's switch again on every
turn:

    P0 tx --> a -[vhostd l2]-> b --> P1 rx ==> P1 tx --> b -[vhostd l2]-> a --> P0 rx ==> P0 tx ...
                                     (testpmd: rx P1 -> tx P0 with dst = P1's MAC, and so on)

`start tx_first` puts one burst per port into the loop; the loop then runs for
a few seconds, `stop`. Checks: frames went round (hundreds of thousands on
a 2-core machine), testpmd reports no RX/TX drop, vhostd counted no drop or
error, every frame testpmd sent on a port was received by vhostd on that port,
and what vhostd received on one port it sent out of the other (no frame lost,
flooded twice or hair-pinned). The frames testpmd has not read yet when it
stops are at most the two tx_first bursts. vhostd still runs and exits 0 on
SIGTERM.
"""

import time

import harness
import trafficlib
from harness import check, log

MAC0 = "02:00:00:00:01:00"
MAC1 = "02:00:00:00:01:01"
RUN_S = 4
BURST = 32  # testpmd's default burst: frames per port put in by tx_first
MIN_FRAMES = 20000


def run(env):
    socks = {p: env.path(f"{p}.sock") for p in ("a", "b")}
    vhostd = trafficlib.Vhostd(env, switch="l2",
                               ports_yaml=[trafficlib.vhost_port(p, s) for p, s in socks.items()],
                               sockets=socks.values())
    tp = trafficlib.TestpmdPorts(
        env, "testpmd",
        [f"net_virtio_user0,path={socks['a']},queue_size=1024,mac={MAC0}",
         f"net_virtio_user1,path={socks['b']},queue_size=1024,mac={MAC1}"],
        ["--forward-mode=mac", f"--eth-peer=0,{MAC1}", f"--eth-peer=1,{MAC0}",
         f"--burst={BURST}"])
    tp.wait_prompt()
    tp.wait_link_up(0)
    tp.wait_link_up(1)
    tp.command("start tx_first", r"mac packet forwarding")
    time.sleep(RUN_S)
    since = tp.mark()
    tp.send("stop")
    tp.expect(r"Done\.", 10, since=since, what="'Done.' after stop")
    fwd = trafficlib.parse_fwd_stats(tp.output(since))
    log(f"testpmd forward statistics: {fwd}")
    check(set(fwd) == {0, 1}, f"testpmd printed statistics for ports {sorted(fwd)}, expected 0, 1")
    for port, s in fwd.items():
        check(s["rx_dropped"] == 0 and s["tx_dropped"] == 0,
              f"testpmd port {port} dropped frames: {s}")
    total_rx = fwd[0]["rx"] + fwd[1]["rx"]
    check(total_rx >= MIN_FRAMES, f"only {total_rx} frames went round the loop in {RUN_S} s")
    log(f"{total_rx} frames forwarded in about {RUN_S} s: about {total_rx / RUN_S:.0f} frames/s "
        f"through vhostd")

    stats = vhostd.stats()
    trafficlib.check_no_drops(stats)
    a = trafficlib.port_totals(stats, "a")
    b = trafficlib.port_totals(stats, "b")
    check(a["rx_packets"] == fwd[0]["tx"] and b["rx_packets"] == fwd[1]["tx"],
          f"vhostd received a {a['rx_packets']} / b {b['rx_packets']}, testpmd sent "
          f"P0 {fwd[0]['tx']} / P1 {fwd[1]['tx']}")
    check(a["rx_packets"] == b["tx_packets"] and b["rx_packets"] == a["tx_packets"],
          f"vhostd's switch did not deliver each frame exactly once: a rx {a['rx_packets']} -> "
          f"b tx {b['tx_packets']}, b rx {b['rx_packets']} -> a tx {a['tx_packets']}")
    unread = (a["tx_packets"] + b["tx_packets"]) - total_rx
    check(0 <= unread <= 2 * BURST,
          f"vhostd delivered {a['tx_packets'] + b['tx_packets']} frames, testpmd received "
          f"{total_rx}: {unread} unaccounted (at most {2 * BURST} may wait in its RX rings)")
    tp.quit()
    vhostd.check_alive()
    vhostd.stop()


if __name__ == "__main__":
    harness.main(run, extra_args=trafficlib.add_args, backends=("vhostd",))
