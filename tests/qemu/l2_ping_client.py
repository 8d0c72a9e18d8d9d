#!/usr/bin/env python3
"""Two guests ping each other through vhostd in l2 mode; QEMU is the socket server.

Each QEMU creates its socket (-chardev socket,...,server=on,wait=off) and, even
with wait=off, does not boot until a back-end has connected and set the device
up. vhostd's ports are in mode client: it connects to both sockets (retrying
until they exist). Then the same checks as l2_ping.
"""

import qemu_harness as qh


def run(env, image):
    socks = {n: env.path(f"{n}.sock") for n in ("vm1", "vm2")}
    g1 = qh.Guest(env, image, "vm1", socks["vm1"], nic_mac=qh.mac(1), chardev="server",
                  opts={"ip": "10.0.0.1/24", "peer": "10.0.0.2", "cmd": "ping"})
    g2 = qh.Guest(env, image, "vm2", socks["vm2"], nic_mac=qh.mac(2), chardev="server",
                  opts={"ip": "10.0.0.2/24", "peer": "10.0.0.1", "cmd": "ping"})
    for g, s in ((g1, socks["vm1"]), (g2, socks["vm2"])):
        ok = qh.wait_for(lambda: qh.is_socket(s) or not g.proc.alive(), 30)
        qh.check(g.proc.alive(), f"{g.name}: QEMU exited at start-up "
                                 f"(status {qh.describe_status(g.proc.popen.poll())})")
        qh.check(ok, f"{g.name}: QEMU did not create {s} within 30 s")
    qh.log("both QEMUs listen; starting vhostd with client ports")
    qh.Vhostd(env, qh.vhostd_config(env, [
        {"name": n, "path": s, "mode": "client"} for n, s in socks.items()]))
    for g in (g1, g2):
        g.result(timeout=120)
    for g in (g1, g2):
        g.wait_poweroff()


if __name__ == "__main__":
    qh.main(run)
