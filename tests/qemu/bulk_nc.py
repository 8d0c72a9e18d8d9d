#!/usr/bin/env python3
"""Bulk transfer between two guests through vhostd (l2), checked by md5 on both ends.

vm2 listens with busybox nc; vm1 waits until vm2 answers pings, fills a file
with MIB MiB from /dev/urandom and sends it with nc. Both print the md5 and
size of what they hold; the test compares them. A few MiB of TCP crosses
thousands of descriptors and, with mergeable RX buffers, frames spread over
several buffers, so any corruption or loss of order shows in the sum.
"""

import re

import qemu_harness as qh

MIB = 8
MD5_RX = r"VHOSTD-TEST MD5 ([0-9a-f]{32}) (\d+)"


def run(env, image):
    socks = {n: env.path(f"{n}.sock") for n in ("vm1", "vm2")}
    qh.Vhostd(env, qh.vhostd_config(env, [
        {"name": n, "path": s, "mode": "server"} for n, s in socks.items()]),
        server_sockets=socks.values())
    sender = qh.Guest(env, image, "vm1", socks["vm1"], nic_mac=qh.mac(1),
                      opts={"ip": "10.0.0.1/24", "peer": "10.0.0.2", "cmd": "send",
                            "mib": MIB, "port": 5001})
    receiver = qh.Guest(env, image, "vm2", socks["vm2"], nic_mac=qh.mac(2),
                        opts={"ip": "10.0.0.2/24", "peer": "10.0.0.1", "cmd": "recv",
                              "port": 5001, "wait": 120})
    sums = {}
    for g in (sender, receiver):
        g.result(timeout=130)
        m = re.search(MD5_RX, g.console())
        qh.check(m, f"{g.name}: no MD5 line")
        sums[g.name] = (m.group(1), int(m.group(2)))
        qh.log(f"{g.name}: md5 {m.group(1)}, {m.group(2)} bytes")
    m = re.search(r"VHOSTD-TEST SENT (\d+) bytes start=([\d.]+) end=([\d.]+)", sender.console())
    if m:
        secs = float(m.group(3)) - float(m.group(2))
        qh.log(f"transfer: {int(m.group(1)) / 1048576:.0f} MiB in {secs:.1f} s "
               f"({int(m.group(1)) * 8 / max(secs, 0.001) / 1e6:.1f} Mbit/s, guest clock)")
    qh.check(sums["vm1"][1] == MIB * 1048576, f"vm1 sent {sums['vm1'][1]} bytes, "
                                              f"expected {MIB * 1048576}")
    qh.check(sums["vm2"][1] == sums["vm1"][1],
             f"vm2 received {sums['vm2'][1]} bytes, vm1 sent {sums['vm1'][1]}")
    qh.check(sums["vm2"][0] == sums["vm1"][0],
             f"md5 differs: sent {sums['vm1'][0]}, received {sums['vm2'][0]}")
    for g in (sender, receiver):
        g.wait_poweroff()


if __name__ == "__main__":
    qh.main(run)
