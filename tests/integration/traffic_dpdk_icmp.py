#!/usr/bin/env python3
"""VM <-> DPDK port: pings through `xconnect [[vm0, up0]]` to a kernel stack.

vhostd runs a vhost-user port vm0 cross-connected to a DPDK port up0, DPDK's
TAP driver (`net_tap0,iface=vhdtapN`). Once vhostd has created the TAP
interface, the test moves it into a network namespace of its own
(`vhd-<pid>`) and gives it 192.0.2.1/24 there, with a permanent neighbour
entry for the front-end's address and IPv6 off (so the kernel sends nothing
unasked). vhost-traffic, on vm0, resolves 192.0.2.1 with ARP and sends N ICMP
echo requests from 192.0.2.2; every one must be answered by the namespace's
kernel with an echo reply carrying the same payload (sequence number and
pattern checked). This crosses both of vhostd's conversions: guest ring ->
mbuf -> TAP, and TAP -> mbuf -> guest ring.

vhostd's counters must match: during the pings, what vm0 sent is what up0
transmitted and the other way round, with no drop or error. Before vm0 has a
front-end, the namespace sends one UDP datagram to 192.0.2.2: vhostd must
drop it (its xconnect peer is down) and count that drop, so that over its
whole life every frame up0 received was either given to vm0 or counted
(checked last, after the pings). vhostd still runs and exits 0 on SIGTERM.
One fresh vhostd (and TAP) per frame size; the namespace is deleted at the
end, also on failure. Needs root (CAP_NET_ADMIN).
"""

import json
import os
import re
import subprocess
import time

import harness
import trafficlib
from harness import check, log

CASES = ((64, 2000), (1514, 2000))  # 1514: a full 1500-byte IP packet
TAP_IP = "192.0.2.1"
VM_IP = "192.0.2.2"
VM_MAC = "02:00:00:00:00:00"  # vhost-traffic's port 0


def sh(*argv, ns=None, ok_rc=(0,)):
    if ns:
        argv = ("ip", "netns", "exec", ns) + argv
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20)
    log(f"$ {' '.join(argv)} -> {r.returncode}{(': ' + r.stderr.strip()) if r.stderr.strip() else ''}")
    check(r.returncode in ok_rc, f"`{' '.join(argv)}` failed ({r.returncode}): {r.stderr.strip()}")
    return r


def sweep_namespaces():
    """Deletes namespaces vhd-PID left behind by a test whose process is gone."""
    r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10)
    for line in r.stdout.splitlines():
        m = re.match(r"(vhd-(\d+))\b", line)
        if m and not os.path.exists(f"/proc/{m.group(2)}"):
            subprocess.run(["ip", "netns", "del", m.group(1)], capture_output=True, timeout=10)


def link_exists(iface, ns=None):
    argv = ["ip", "link", "show", "dev", iface]
    if ns:
        argv = ["ip", "netns", "exec", ns] + argv
    return subprocess.run(argv, capture_output=True, timeout=10).returncode == 0


def tap_counters(ns, iface):
    """The kernel's view of the TAP: (frames it sent to DPDK, frames it got from DPDK)."""
    r = sh("ip", "-s", "-j", "link", "show", "dev", iface, ns=ns)
    st = json.loads(r.stdout)[0]["stats64"]
    return st["tx"]["packets"], st["rx"]["packets"]


def settled_stats(vhostd, ns, iface, timeout=15):
    """(vhostd's stats, kernel TX, kernel RX) once nothing moves on the TAP.

    A frame the kernel writes to the TAP reaches vhostd's counters a little
    later (under load, a while later): wait until vhostd has read at least as
    many frames as the kernel wrote and two readings in a row agree. (The
    kernel's TX count can be lower: what it sent while the interface was
    still in vhostd's namespace need not be in it.)
    """
    deadline = time.monotonic() + timeout
    last = None
    while True:
        kernel_tx, kernel_rx = tap_counters(ns, iface)
        stats = vhostd.stats(settle=0.2)
        up = trafficlib.port_totals(stats, "up0")
        now = (kernel_tx, kernel_rx, up["rx_packets"], up["tx_packets"])
        if now == last and up["rx_packets"] >= kernel_tx:
            return stats, kernel_tx, kernel_rx
        check(time.monotonic() < deadline,
              f"{iface} does not settle: kernel wrote {kernel_tx} / read {kernel_rx} frames, "
              f"vhostd's up0 read {up['rx_packets']} / wrote {up['tx_packets']}")
        last = now
        time.sleep(0.3)


def run_case(env, ns, index, size, count):
    iface = f"vhdtap{os.getpid() % 1000000}{index}"
    sock = env.path(f"vm{index}.sock")
    vhostd = trafficlib.Vhostd(
        env, name=f"vhostd-{size}", switch="xconnect", xconnect=[("vm0", "up0")],
        ports_yaml=[trafficlib.vhost_port("vm0", sock),
                    trafficlib.dpdk_port("up0", f"net_tap{index},iface={iface}")],
        sockets=[sock])
    check(harness.wait_for(lambda: link_exists(iface) or not vhostd.proc.alive(), 20),
          f"vhostd did not create the TAP interface {iface}")
    vhostd.check_alive()

    # Into the namespace: from now on only that namespace's stack talks to it.
    sh("ip", "link", "set", "dev", iface, "netns", ns)
    sh("sysctl", "-qw", f"net.ipv6.conf.{iface}.disable_ipv6=1", ns=ns)
    sh("ip", "addr", "add", f"{TAP_IP}/24", "dev", iface, ns=ns)
    sh("ip", "link", "set", "dev", iface, "up", ns=ns)
    sh("ip", "neigh", "replace", VM_IP, "lladdr", VM_MAC, "dev", iface, "nud", "permanent", ns=ns)

    # While vm0 has no front-end, one frame from the kernel (a UDP datagram;
    # the neighbour entry is permanent): vhostd must drop it, since its
    # xconnect peer is down, and count the drop.
    sh("python3", "-c", "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
       f".sendto(b'vm0 is down', ('{VM_IP}', 9))", ns=ns)
    before, ktx0, krx0 = settled_stats(vhostd, ns, iface)

    res = trafficlib.run_traffic(env, name=f"traffic-icmp-{size}", mode="icmp", count=count,
                                 size=size, ports=[f"path={sock},queue_size=1024"],
                                 extra=["--src-ip", VM_IP, "--dst-ip", TAP_IP])
    after, ktx1, krx1 = settled_stats(vhostd, ns, iface)
    delta = trafficlib.stats_delta(after, before)
    trafficlib.check_no_drops(delta, "vhostd (during the pings)")
    vm = trafficlib.port_totals(delta, "vm0")
    up = trafficlib.port_totals(delta, "up0")
    check(up["rx_packets"] == ktx1 - ktx0 and up["tx_packets"] == krx1 - krx0,
          f"during the pings the kernel wrote {ktx1 - ktx0} / read {krx1 - krx0} frames on "
          f"{iface}, vhostd's up0 read {up['rx_packets']} / wrote {up['tx_packets']}")
    sent = res["sent"] + res["prime_sent"]
    check(vm["rx_packets"] == sent,
          f"vhostd received {vm['rx_packets']} frames on vm0, vhost-traffic sent {sent} "
          f"({res['sent']} echo requests + {res['prime_sent']} ARP requests)")
    check(up["tx_packets"] == vm["rx_packets"],
          f"vm0 -> up0: {vm['rx_packets']} frames in, {up['tx_packets']} sent to the TAP")
    check(vm["tx_packets"] == up["rx_packets"],
          f"up0 -> vm0: {up['rx_packets']} frames from the TAP, {vm['tx_packets']} to vm0")
    check(vm["tx_packets"] >= res["received"] + res["prime_received"],
          f"vhostd gave vm0 {vm['tx_packets']} frames, vhost-traffic got "
          f"{res['received']} replies + {res['prime_received']} ARP replies")
    vhostd.check_alive()
    vhostd.stop()

    # Over vhostd's whole life, every frame up0 received was given to vm0 or
    # counted as a drop: the UDP datagram (and whatever the kernel sent before
    # the interface moved) arrived while vm0 was down.
    up_all = trafficlib.port_totals(after, "up0")
    vm_all = trafficlib.port_totals(after, "vm0")
    unaccounted = up_all["rx_packets"] - vm_all["tx_packets"] - trafficlib.total_drops(after)
    log(f"up0 received {up_all['rx_packets']} frames in all, vm0 got {vm_all['tx_packets']}, "
        f"drops counted {trafficlib.total_drops(after)}: {unaccounted} unaccounted")
    return res, unaccounted


def run(env):
    sweep_namespaces()
    ns = f"vhd-{os.getpid()}"
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "link", "set", "dev", "lo", "up", ns=ns)
        results = [(size, *run_case(env, ns, i, size, count))
                   for i, (size, count) in enumerate(CASES)]
        for size, res, _ in results:
            log(f"  icmp {size:5} B: {res['received']} echo replies in {res['seconds']:.3f} s, "
                f"{res['pps']:.0f} pps")
        # Checked last, so that the data path is proven whatever this says.
        lost = {size: n for size, _, n in results if n}
        check(not lost, f"vhostd dropped frames without counting them: {lost} frame(s) received "
                        "on up0 while its xconnect peer vm0 had no front-end appear in no "
                        "counter (expected in up0's no_route)")
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)
        log(f"deleted namespace {ns}")


if __name__ == "__main__":
    harness.main(run, extra_args=trafficlib.add_args, backends=("vhostd",))
