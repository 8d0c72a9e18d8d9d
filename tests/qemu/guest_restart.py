#!/usr/bin/env python3
"""A guest's QEMU goes away and a new one takes its port while vhostd keeps running.

This is what a VM restart (or a live migration's destination) looks like to
vhostd: the front-end on port vm1 closes its connection, and a new QEMU with
fresh rings connects to the same socket. vm2 stays up the whole time. Both
QEMUs on vm1 must reach vm2 (ping, all replies), and vhostd must not mark the
port broken: the new connection's rings start from their own SET_VRING_BASE,
not from where the previous connection's rings stopped.
"""

import qemu_harness as qh


def run(env, image):
    socks = {n: env.path(f"{n}.sock") for n in ("vm1", "vm2")}
    vhostd = qh.Vhostd(env, qh.vhostd_config(env, [
        {"name": n, "path": s, "mode": "server"} for n, s in socks.items()]),
        server_sockets=socks.values())
    peer = qh.Guest(env, image, "vm2", socks["vm2"], nic_mac=qh.mac(2),
                    opts={"ip": "10.0.0.2/24", "cmd": "idle", "deadline": 140})
    peer.expect(r"VHOSTD-TEST IDLE", 90, what="vm2 up")
    for run_no in (1, 2):
        g = qh.Guest(env, image, f"vm1-run{run_no}", socks["vm1"], nic_mac=qh.mac(1),
                     opts={"ip": "10.0.0.1/24", "peer": "10.0.0.2", "cmd": "ping",
                           "wait": 30})
        g.result(timeout=90)
        g.wait_poweroff()
        vhostd.check_alive()
    peer.check_kernel()
    broken = [line for line in vhostd.proc.output().splitlines() if "broken by" in line]
    qh.check(not broken, f"vhostd marked a port broken: {broken[0] if broken else ''}")
    peer.stop()
    vhostd.stop()


if __name__ == "__main__":
    qh.main(run)
