#!/usr/bin/env python3
"""A guest and the host talk through a DPDK tap port in a network namespace.

vhostd runs an l2 switch between a vhost-user port (vm1, QEMU as client) and
a DPDK port `net_tap0,iface=vhdtNNN`. Once the tap's kernel interface exists,
the test moves it into a network namespace it creates and gives it 10.0.0.2.
The guest (10.0.0.1) pings the namespace; then the namespace pings the guest.
The tap keeps working after the move: its file descriptor stays with vhostd.
"""

import os

import qemu_harness as qh

GUEST_IP = "10.0.0.1"
NS_IP = "10.0.0.2"


def run(env, image):
    # Named after this process, so a later run can delete them if it was killed.
    ifname = f"vhdt{os.getpid()}"       # at most 15 characters
    ns = qh.Netns(f"vhd-{os.getpid()}")
    try:
        _run(env, image, ns, ifname)
    finally:
        env.stop_processes()   # vhostd holds the tap: stop it before the namespace goes
        ns.delete()


def _run(env, image, ns, ifname):
    sock = env.path("vm1.sock")
    vhostd = qh.Vhostd(env, qh.vhostd_config(env, [
        {"name": "vm1", "path": sock, "mode": "server"},
        {"name": "up0", "type": "dpdk", "devargs": f"net_tap0,iface={ifname}"},
    ]), server_sockets=[sock])
    ok = qh.wait_for(lambda: os.path.exists(f"/sys/class/net/{ifname}"), 15)
    qh.check(ok, f"vhostd's net_tap0 did not create the interface {ifname}")
    ns.run("ip", "link", "set", ifname, "netns", ns.name, host=True)
    ns.run("ip", "link", "set", "lo", "up")
    ns.run("ip", "addr", "add", f"{NS_IP}/24", "dev", ifname)
    ns.run("ip", "link", "set", ifname, "up")
    qh.log(f"{ifname} moved into {ns.name} with {NS_IP}/24")

    guest = qh.Guest(env, image, "vm1", sock, nic_mac=qh.mac(1),
                     opts={"ip": f"{GUEST_IP}/24", "peer": NS_IP, "cmd": "ping",
                           "hold": 60})
    guest.result(timeout=120)
    guest.expect(r"VHOSTD-TEST HOLD", 10)
    busybox = qh.require_program("busybox", "busybox-static")
    res = ns.run(busybox, "ping", "-c", "5", "-i", "0.2", "-W", "5", GUEST_IP, check_rc=False)
    qh.log(f"ping from {ns.name}:\n{res.stdout.strip()}")
    qh.check("5 packets transmitted, 5 packets received" in res.stdout,
             f"ping from the namespace to the guest: {res.stdout.strip().splitlines()[-2:]}")
    guest.check_kernel()
    guest.stop()
    vhostd.stop()


if __name__ == "__main__":
    qh.main(run)
