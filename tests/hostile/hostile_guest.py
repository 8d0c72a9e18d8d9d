#!/usr/bin/env python3
"""Hostile guest descriptors against the real vhostd, beside a clean stream.

vhostd: two vhost-user ports, `xconnect [[p0, p0], [p1, p1]]`. On p1, testpmd
(a virtio-user port, io forwarding with loop topology) keeps a burst of frames
going round p1 -> vhostd -> p1 for the whole test. On p0, hostile_frontend
is a fake guest: its memfd RAM goes to vhostd by SET_MEM_TABLE, and it writes
one hostile TX ring per case (address outside memory, len 0xFFFFFFFF, a
total length overflowing 32 bits, a loop, head >= size, avail.idx jumping by
60000, an indirect table not a multiple of 16, a nested indirect table), or a
legitimate but unusual one (the header split over several descriptors: must
work; a chain shorter than the header: dropped).

Each case: vhostd survives; a broken ring breaks p0 only, logged once with the
reason and counted in p0's `broken` drops; a short chain is returned to the
guest and counted in `errors`; the split-header frames come back intact.
After each case a fresh connection on p0 gets a good session (the port is
reset). At the end testpmd's stream lost nothing: no RX/TX drop in testpmd,
none on p1 in vhostd, and vhostd's p1 counters match testpmd's. The "changed
after it was read" case is a unit test (tests/unit/virtio, TxChain.
TheCopyIsWhatIsUsedWhenTheGuestRewritesADescriptor): a race cannot be staged
reliably through a live daemon.
"""

import re

import hostilelib
from hostilelib import check, harness, log

hostilelib.long_process_timeout(280)

import trafficlib  # noqa: E402

BURST = 32
MIN_FRAMES = 10000


def run(env):
    socks = {p: env.path(f"{p}.sock") for p in ("p0", "p1")}
    vhostd = trafficlib.Vhostd(env, switch="xconnect", xconnect=[("p0", "p0"), ("p1", "p1")],
                               ports_yaml=[trafficlib.vhost_port(p, s) for p, s in socks.items()],
                               sockets=socks.values())
    tp = trafficlib.TestpmdPorts(env, "testpmd",
                                 [f"net_virtio_user0,path={socks['p1']},queue_size=1024"],
                                 ["--forward-mode=io", "--port-topology=loop", f"--burst={BURST}"])
    tp.wait_prompt()
    tp.wait_link_up(0)
    tp.command("start tx_first", r"io packet forwarding")

    listing = hostilelib.run_client(env, socks["p0"], "--list-guest")
    cases = [line.split("\t") for line in listing.splitlines() if line.count("\t") == 2]
    check(len(cases) >= 10, f"only {len(cases)} guest cases listed")
    for name, outcome, fragment in cases:
        since = vhostd.proc.mark()
        before = vhostd.stats(settle=0)
        client = hostilelib.client(env, socks["p0"], "--case", f"guest-{name}", stdin=True)
        client.expect(r"INJECTED|FAIL", 60, what="INJECTED")
        check("FAIL" not in client.output(), f"guest case {name}: {client.output().strip()}")
        if outcome == "broken":
            vhostd.proc.expect(r"port p0: broken by its front-end/guest: [^\n]*" + re.escape(fragment),
                               20, since=since, what=f"the broken-port line for {name}")
        after = vhostd.stats()  # more than a second later: a second report would show
        delta = trafficlib.stats_delta(after, before)
        p0 = {}
        for (port, _q), s in delta.items():
            if port == "p0":
                for k, v in s.items():
                    p0[k] = p0.get(k, 0) + v
        lines = re.findall(r"port p0: broken by[^\n]*", vhostd.proc.output(since))
        if outcome == "broken":
            check(len(lines) == 1, f"case {name}: broken-port lines {lines}, expected one")
            check(p0["broken"] == 1 and p0["rx_packets"] == 0,
                  f"case {name}: p0 counters moved by {p0}, expected broken 1, no frame")
        elif outcome == "dropped":
            check(not lines, f"case {name}: the port was broken: {lines}")
            check(p0["errors"] == 1 and p0["rx_packets"] == 0 and p0["broken"] == 0,
                  f"case {name}: p0 counters moved by {p0}, expected errors 1")
        else:
            check(not lines, f"case {name}: the port was broken: {lines}")
            check(p0["rx_packets"] == 3 and p0["tx_packets"] == 3 and
                  sum(p0[f] for f in trafficlib.DROP_FIELDS) == 0,
                  f"case {name}: p0 counters moved by {p0}, expected 3 frames each way")
        log(f"guest case {name}: {outcome} {lines[0] if lines else ''} p0 {p0}")
        client.send("done")
        client.wait_exit(30, expect_rc=0, action=f"finish case {name}")
        check(re.search(r"Sanitizer|runtime error", vhostd.proc.output(since)) is None,
              f"case {name}: sanitizer report")
        vhostd.check_alive()
        # p0 is reset by its next front-end: a good session works again.
        hostilelib.run_client(env, socks["p0"], "--case", "good")

    since = tp.mark()
    tp.send("stop")
    tp.expect(r"Done\.", 10, since=since, what="'Done.' after stop")
    fwd = trafficlib.parse_fwd_stats(tp.output(since))
    log(f"testpmd forward statistics: {fwd}")
    check(0 in fwd, "testpmd printed no statistics for port 0")
    check(fwd[0]["rx_dropped"] == 0 and fwd[0]["tx_dropped"] == 0,
          f"testpmd dropped frames: {fwd[0]}")
    check(fwd[0]["rx"] >= MIN_FRAMES,
          f"only {fwd[0]['rx']} frames went round p1 during {len(cases)} cases")
    stats = vhostd.stats()
    trafficlib.check_no_drops({k: v for k, v in stats.items() if k[0] == "p1"}, "vhostd on p1")
    p1 = trafficlib.port_totals(stats, "p1")
    check(p1["rx_packets"] == fwd[0]["tx"] and p1["tx_packets"] == p1["rx_packets"],
          f"p1: testpmd sent {fwd[0]['tx']}, vhostd received {p1['rx_packets']} and sent "
          f"{p1['tx_packets']}")
    unread = p1["tx_packets"] - fwd[0]["rx"]
    check(0 <= unread <= BURST, f"{unread} frames sent to testpmd are unaccounted for "
                                f"(at most {BURST} may wait in its RX ring)")
    log(f"p1 carried {fwd[0]['rx']} frames during the hostile cases, none lost")
    tp.quit()
    vhostd.stop()


if __name__ == "__main__":
    harness.main(run, extra_args=hostilelib.add_args, backends=("vhostd",))
