#!/usr/bin/env python3
"""Idle PMDs wake up on a guest kick, not only on their timeout (issue 5).

vhostd reflects p0 to itself (`xconnect [p0, p0]`) with `dataplane.idle.mode:
adaptive`. tools/vhost-ping sends one frame at a time with an idle gap of
10 ms before each: far longer than poll_us (200), so the PMD is asleep every
time a frame arrives, and the frame can only get through if the
PMD is woken.

1. Default settings (poll_us 200, max_sleep_us 1000): every frame comes back;
   vhostd's statistics show sleeps and kick wake-ups ("woken"), at least one
   per two frames. The ring can kick, so the PMD sleeps with no timeout.
2. max_sleep_us 10 s: the same, and every frame must still come back within
   500 ms, so each one was delivered by a kick wake-up (the guest's write to
   the kick eventfd ends the PMD's epoll wait).

In both, vhostd counts every frame once each way with no drops and exits 0 on
SIGTERM.
"""

import harness
import idle_lib
from harness import check, log

GAP_US = 10_000
PHASES = (
    # (name, max_sleep_us, frames, timeout_ms)
    ("default", 1000, 100, 1000),
    ("no-timeout-rescue", 10_000_000, 50, 500),
)


def run(env):
    for name, max_sleep_us, count, timeout_ms in PHASES:
        log(f"--- {name}: adaptive, poll_us 200, max_sleep_us {max_sleep_us}; {count} frames "
            f"after {GAP_US // 1000} ms idle gaps")
        vhostd = idle_lib.IdleVhostd(env, max_sleep_us=max_sleep_us, name=f"vhostd-{name}")
        rc, res, _ = idle_lib.run_ping(env, vhostd.socket,
                                       ["--count", str(count), "--gap-us", str(GAP_US),
                                        "--timeout-ms", str(timeout_ms)],
                                       name=f"ping-{name}")
        check(rc == 0 and res["result"] == "pass",
              f"{name}: vhost-ping exited {harness.describe_status(rc)}: sent {res['sent']}, "
              f"received {res['received']}, lost {res['lost']} (timeout {timeout_ms} ms), "
              f"corrupt {res['corrupt']}, duplicate {res['duplicate']}")
        check(res["received"] == count, f"{name}: {res['received']} of {count} frames came back")
        rtt = res["rtt_us"]
        log(f"{name}: round trip after {GAP_US // 1000} ms idle: p50 {rtt['p50']:.1f} us, "
            f"p99 {rtt['p99']:.1f} us, max {rtt['max']:.1f} us")

        pmds, queues = vhostd.stats()
        pmd = pmds["pmd0"]
        check(pmd["sleeps"] > 0, f"{name}: pmd0 never slept (sleeps 0) in adaptive mode")
        check(pmd["woken"] > 0, f"{name}: pmd0 was never woken by a kick (woken 0): only "
                                f"timeouts ({pmd['timeouts']}) got the frames through")
        check(pmd["woken"] >= count // 2,
              f"{name}: pmd0 woken by kicks {pmd['woken']} times for {count} frames that each "
              f"arrived at a sleeping PMD (timeouts {pmd['timeouts']}): the kick path misses "
              "wake-ups")
        # The TSC cycles: frames were switched in busy iterations, and the
        # sleeps between them count as idle (vhostctl's busy share, the
        # benchmark's busy cycles per frame).
        check(pmd["busy_cycles"] > 0, f"{name}: pmd0 counted no busy cycles for {count} frames")
        check(pmd["idle_cycles"] > pmd["busy_cycles"],
              f"{name}: pmd0 counted {pmd['busy_cycles']} busy and only {pmd['idle_cycles']} "
              "idle cycles although it slept between frames")
        frames = res["sent"] + res["prime_sent"]
        took = queues[("p0", "vring1")]["rx_packets"]   # the guest's TX ring
        gave = queues[("p0", "vring0")]["tx_packets"]   # the guest's RX ring
        check(took == frames and gave == frames,
              f"{name}: vhostd took {took} and delivered {gave} frames, expected {frames}")
        drops = {f"{p}/{q}": {f: s[f] for f in idle_lib.DROP_FIELDS if s[f]}
                 for (p, q), s in queues.items() if any(s[f] for f in idle_lib.DROP_FIELDS)}
        check(not drops, f"{name}: vhostd counted drops: {drops}")
        vhostd.stop()


if __name__ == "__main__":
    harness.main(run, extra_args=idle_lib.add_args, backends=("vhostd",))
