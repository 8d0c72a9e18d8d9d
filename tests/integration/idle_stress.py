#!/usr/bin/env python3
"""No packet is ever stranded by an idle PMD (issue 5, the stress test).

vhostd reflects p0 to itself (`xconnect [p0, p0]`) in adaptive idle mode with
the default settings: a PMD that found no work for poll_us = 200 us enables
guest notifications, publishes "sleeping", polls once more and waits in
epoll on its rings' kick eventfds; the guest's kick wakes it directly. The
ring can kick, so the sleep has no timeout: a lost kick would strand a frame
for good. tools/vhost-ping sends 100 000 single frames, one at a time, each
after a random idle gap of 0-2 ms. The gaps straddle poll_us, so frames land
on a PMD that is busy-polling, deciding to sleep, in the re-check window, or
asleep: every side of the sleep protocol's races, tens of thousands of times.

Checks:
* every frame comes back (vhost-ping's --timeout-ms 1000: a frame not back
  within 1 s counts as lost and fails the test);
* none takes longer than max_sleep_us + slack (max_sleep_us bounds sleeps only
  for PMDs with sources that cannot kick; here it is just a yardstick: a
  kick-woken PMD answers in microseconds). Anything beyond that is the
  scheduler: on this 2-CPU machine, shared with other engineers'
  builds, QEMU guests and busy-polling benchmarks, vhostd's PMD and vhost-ping can each sit runnable
  without a CPU for a few time slices. Two corrections keep the check about
  vhostd:
  - vhost-ping records when its own polling loop stalled (descheduled) while
    a frame was in flight; that part of a round trip ("self") is the tool's
    delay and is subtracted before the comparison (the plain round trips are
    logged too);
  - the slack is 20 ms (--slack-ms). In the runs so far (load 0.3-5) the
    slowest round trips, less the tool's own stalls, took up to ~12 ms; one run
    before the tool told its own stalls apart, with other engineers' QEMU
    guests and pollers on the machine, had one frame at 163 ms. Raise the
    slack when the machine is that busy.
  A frame stranded for good (a PMD that never polls its ring again) is caught
  by the loss check;
* vhostd slept and was woken by kicks (woken >= 1/4 of the frames: about nine
  in ten gaps exceed poll_us, and a kick should end those sleeps), counted every frame once each way with no drops, and exits 0.

The slowest round trips and how many took longer than half of max_sleep_us
(timeout-shaped: a lost kick, or a descheduled thread) are logged.
"""

import harness
import idle_lib
from harness import check, log

POLL_US = 200
MAX_SLEEP_US = 1000
TEST_BUDGET_S = 285  # meson's timeout for this test is 300 s


def extra_args(p):
    idle_lib.add_args(p)
    p.add_argument("--count", type=int, default=100_000, help="frames to send (default 100000)")
    p.add_argument("--gap-us", default="0-2000", help="idle gap before each frame (default 0-2000)")
    p.add_argument("--slack-ms", type=float, default=20.0,
                   help="allowed round trip above max_sleep_us (default 20 ms)")
    p.add_argument("--max-sleep-us", type=int, default=MAX_SLEEP_US,
                   help="vhostd's max_sleep_us (default 1000; a large value, e.g. 1000000, "
                        "makes a lost kick show as a round trip that long)")


def run(env):
    a = env.args
    vhostd = idle_lib.IdleVhostd(env, poll_us=POLL_US, max_sleep_us=a.max_sleep_us,
                                 timeout=TEST_BUDGET_S + 5)
    max_rtt_us = a.max_sleep_us + a.slack_ms * 1000
    log(f"{a.count} frames, gaps {a.gap_us} us, max round trip {max_rtt_us:.0f} us "
        f"(max_sleep_us {a.max_sleep_us} + {a.slack_ms:g} ms slack)")
    rc, res, rtts = idle_lib.run_ping(
        env, vhostd.socket,
        ["--count", str(a.count), "--gap-us", a.gap_us, "--timeout-ms", "1000"],
        name="ping-stress", watchdog=TEST_BUDGET_S - 15, samples=True)
    rtt = res["rtt_us"]
    log(f"round trip p50 {rtt['p50']:.1f} us, p99 {rtt['p99']:.1f} us, p99.9 {rtt['p999']:.1f} "
        f"us, max {rtt['max']:.1f} us; slowest: {idle_lib.slowest(rtts)}")
    lost = [seq for seq, ns, _me in rtts if ns is None]
    back = [(seq, ns, me) for seq, ns, me in rtts if ns is not None]
    over = [r for r in back if r[1] > max_rtt_us * 1000]
    slow = [r for r in over if r[1] - r[2] > max_rtt_us * 1000]
    shaped = sum(1 for _seq, ns, me in back if ns - me > a.max_sleep_us * 500)
    net = sorted(back, key=lambda r: r[1] - r[2], reverse=True)[:5]
    log("slowest without vhost-ping's own stalls: " +
        ", ".join(f"#{seq} {(ns - me) / 1e3:.0f} us" for seq, ns, me in net))
    log(f"{len(over)} round trip(s) above {max_rtt_us:.0f} us, {len(over) - len(slow)} of them "
        f"only because vhost-ping itself was descheduled; {res['self_stalled']} round trip(s) "
        f"include such a stall; {shaped} took longer than max_sleep_us / 2 "
        f"({a.max_sleep_us // 2} us) without it (a lost kick, or vhostd descheduled)")
    check(res["sent"] == a.count, f"vhost-ping sent {res['sent']} of {a.count} frames "
                                  f"(exit {harness.describe_status(rc)})")
    check(not lost, f"{len(lost)} frame(s) never came back within 1 s (stranded): sequence "
                    f"numbers {lost[:20]}{' …' if len(lost) > 20 else ''}")
    check(not slow, f"{len(slow)} frame(s) came back later than max_sleep_us + slack "
                    f"({max_rtt_us:.0f} us), not counting the time vhost-ping itself was "
                    "stalled: " +
          ", ".join(f"#{s} {ns / 1e3:.0f} us (self {me / 1e3:.0f} us)" for s, ns, me in slow[:20]))
    check(res["corrupt"] == 0 and res["duplicate"] == 0,
          f"corrupt {res['corrupt']}, duplicate {res['duplicate']}")
    check(rc == 0 and res["result"] == "pass", f"vhost-ping exited "
                                               f"{harness.describe_status(rc)}")

    pmds, queues = vhostd.stats()
    pmd = pmds["pmd0"]
    check(pmd["sleeps"] > 0, "pmd0 never slept in adaptive mode")
    check(pmd["woken"] >= a.count // 4,
          f"pmd0 was woken by kicks only {pmd['woken']} times for {a.count} frames (sleeps "
          f"{pmd['sleeps']}, timeouts {pmd['timeouts']}): the timeout, not the kick, got the "
          "frames through")
    frames = res["sent"] + res["prime_sent"]
    took = queues[("p0", "vring1")]["rx_packets"]
    gave = queues[("p0", "vring0")]["tx_packets"]
    check(took == frames and gave == frames,
          f"vhostd took {took} and delivered {gave} frames, expected {frames}")
    drops = {f"{p}/{q}": {f: s[f] for f in idle_lib.DROP_FIELDS if s[f]}
             for (p, q), s in queues.items() if any(s[f] for f in idle_lib.DROP_FIELDS)}
    check(not drops, f"vhostd counted drops: {drops}")
    vhostd.stop()


if __name__ == "__main__":
    harness.TEST_DEADLINE_S = TEST_BUDGET_S  # the harness's default (105 s) is for short tests
    harness.main(run, extra_args=extra_args, backends=("vhostd",))
