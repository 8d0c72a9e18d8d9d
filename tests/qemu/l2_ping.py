#!/usr/bin/env python3
"""Two guests ping each other through vhostd in l2 mode; vhostd is the socket server.

vhostd listens on vm1.sock and vm2.sock (ports in mode server); each QEMU
connects as a client (-chardev socket,...,reconnect=1). The switch learns both
MACs from the ARP exchange. Each guest waits until its peer answers, then
sends 5 pings and must get all 5 replies.
"""

import qemu_harness as qh


def run(env, image):
    socks = {n: env.path(f"{n}.sock") for n in ("vm1", "vm2")}
    qh.Vhostd(env, qh.vhostd_config(env, [
        {"name": n, "path": s, "mode": "server"} for n, s in socks.items()]),
        server_sockets=socks.values())
    g1 = qh.Guest(env, image, "vm1", socks["vm1"], nic_mac=qh.mac(1),
                  opts={"ip": "10.0.0.1/24", "peer": "10.0.0.2", "cmd": "ping"})
    g2 = qh.Guest(env, image, "vm2", socks["vm2"], nic_mac=qh.mac(2),
                  opts={"ip": "10.0.0.2/24", "peer": "10.0.0.1", "cmd": "ping"})
    for g in (g1, g2):
        g.result(timeout=120)
    for g in (g1, g2):
        g.wait_poweroff()


if __name__ == "__main__":
    qh.main(run)
