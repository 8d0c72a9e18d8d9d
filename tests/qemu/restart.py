#!/usr/bin/env python3
"""vhostd is stopped (SIGTERM) and started again while two guests ping each other.

The QEMUs are socket clients with reconnect=1: when vhostd goes away they
keep running and retry once a second, so the new vhostd sees both
front-ends again and they set their devices up anew (SET_VRING_BASE from the
rings' used indexes). Each guest pings the other continuously (ping -i 0.2
with a deadline), so the test sees replies before the restart and replies again within a few seconds of the restart, with
ping's sequence numbers still going up (the guests noticed nothing but lost
packets). The restarted vhostd's exit statistics prove it carried them.
(Replies printed while vhostd is down are not an error: a TCG guest on a loaded
host may print a reply it received before the stop a second later.)
"""

import os
import re
import time

import qemu_harness as qh

REPLY_RX = re.compile(r"bytes from [0-9.]+: seq=(\d+)")
# From the new vhostd's start to the first reply, in each guest.
RESUME_LIMIT_S = 20
# How long vhostd stays down.
DOWN_S = float(os.environ.get("VHOSTD_QEMU_DOWN_S", "2"))


def replies(guest, since=0):
    return [int(m.group(1)) for m in REPLY_RX.finditer(guest.console(since))]


def wait_replies(guest, n, timeout, since=0):
    ok = qh.wait_for(lambda: len(replies(guest, since)) >= n or not guest.proc.alive(),
                     timeout, interval=0.1)
    qh.check(guest.proc.alive(), f"{guest.name}: QEMU exited "
                                 f"(status {qh.describe_status(guest.proc.popen.poll())})")
    qh.check(ok, f"{guest.name}: fewer than {n} ping replies within {timeout} s "
                 f"(got {len(replies(guest, since))})")


def run(env, image):
    socks = {n: env.path(f"{n}.sock") for n in ("vm1", "vm2")}
    vhostd = qh.Vhostd(env, qh.vhostd_config(env, [
        {"name": n, "path": s, "mode": "server"} for n, s in socks.items()]),
        server_sockets=socks.values())
    opts = {"cmd": "pingloop", "interval": "0.2", "deadline": 120}
    g1 = qh.Guest(env, image, "vm1", socks["vm1"], nic_mac=qh.mac(1),
                  opts={"ip": "10.0.0.1/24", "peer": "10.0.0.2", **opts})
    g2 = qh.Guest(env, image, "vm2", socks["vm2"], nic_mac=qh.mac(2),
                  opts={"ip": "10.0.0.2/24", "peer": "10.0.0.1", **opts})
    guests = (g1, g2)
    for g in guests:
        wait_replies(g, 3, timeout=90)
    before = {g.name: max(replies(g)) for g in guests}
    qh.log(f"pings flow: last seq before the restart {before}")

    vhostd.stop()
    down = {g.name: g.mark() for g in guests}
    time.sleep(DOWN_S)
    qh.log(f"vhostd was down for {DOWN_S:g} s; starting it again")

    t0 = time.monotonic()
    vhostd.start()
    for g in guests:
        wait_replies(g, 1, timeout=RESUME_LIMIT_S - (time.monotonic() - t0), since=down[g.name])
        qh.log(f"{g.name}: first reply {time.monotonic() - t0:.1f} s after the restart")
    for g in guests:
        wait_replies(g, 5, timeout=20, since=down[g.name])
        after = replies(g, down[g.name])
        qh.check(min(after) > before[g.name],
                 f"{g.name}: ping sequence went back ({before[g.name]} -> {min(after)})")
        qh.log(f"{g.name}: replies resumed at seq {min(after)} (last before: "
               f"{before[g.name]}, {min(after) - before[g.name] - 1} lost)")
        g.check_kernel()
    for g in guests:
        g.stop()
    # The new vhostd itself must have carried the pings: its exit statistics.
    mark = vhostd.proc.mark()
    vhostd.stop()
    stats = vhostd.proc.output(mark)
    for port in ("vm1", "vm2"):
        m = re.search(rf"stats {port} vring1: rx (\d+) pkts", stats)
        qh.check(m, f"the restarted vhostd printed no statistics for {port}'s TX ring")
        qh.check(int(m.group(1)) >= 5, f"the restarted vhostd received only {m.group(1)} "
                                      f"packets from {port}")
        qh.log(f"restarted vhostd: {m.group(1)} packets from {port}")


if __name__ == "__main__":
    qh.main(run)
