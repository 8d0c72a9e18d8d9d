#!/usr/bin/env python3
"""`vhostctl port add` / `port del` on a running vhostd (docs/control.md).

One vhostd, `switch: l2`, one vhost-user port a:

1. `vhostctl port add b --path ...` adds a server port: `show ports` lists it
   listening on its socket (mode 0660), the socket exists.
2. vhost-traffic sends an exact number of frames a <-> b through it; `show
   stats b` counts them (its rx equals a's tx and the other way round).
3. Refused, with the configuration loader's own errors and nothing changed:
   a field out of range or of the wrong type, an unknown key, a duplicate
   name, a path already in use, the control socket's path.
4. `vhostctl port del b`: gone from `show ports`, its socket file removed;
   deleting it again is an error. Added again, its counters start from 0.
5. SIGTERM: exit 0.
"""

import json
import os
import stat

import controllib
import harness
import trafficlib
from controllib import run_vhostctl, vhostctl_json, parse_table
from harness import check

COUNT = 2000
SIZE = 64


def run(env):
    sock_a = env.path("a.sock")
    sock_b = env.path("b.sock")
    vhostd = trafficlib.Vhostd(env, name="vhostd", switch="l2",
                               ports_yaml=[trafficlib.vhost_port("a", sock_a)], sockets=[sock_a])
    ctl = vhostd.control_socket

    def names():
        return [p["name"] for p in vhostctl_json(env, ctl, "show", "ports")["ports"]]

    # 1. Add.
    _rc, out, _err = run_vhostctl(env, ctl, "port", "add", "b", "--path", sock_b, "--queues", "1")
    check(out.strip() == "port b added", f"port add said {out!r}")
    check(names() == ["a", "b"], f"ports after add: {names()}")
    check(harness.is_socket(sock_b), f"no socket at {sock_b} after port add")
    check(stat.S_IMODE(os.stat(sock_b).st_mode) == 0o660, "port b's socket is not 0660")
    _rc, out, _err = run_vhostctl(env, ctl, "show", "ports")
    row = next(r for r in parse_table(out) if r["NAME"] == "b")
    check((row["STATE"], row["SOCKET"], row["MODE"]) == ("listening", sock_b, "server"),
          f"show ports b: {row}")

    # 2. Traffic through the added port.
    res = trafficlib.run_traffic(env, name="traffic", mode="pair", count=COUNT, size=SIZE,
                                 ports=[f"path={sock_a},queue_size=1024",
                                        f"path={sock_b},queue_size=1024"])
    frames = res["sent"] + res["prime_sent"]
    vhostd.stats()  # settles, and the log has the same numbers
    totals = {p["name"]: p["total"] for p in vhostctl_json(env, ctl, "show", "stats")["ports"]}
    a, b = totals["a"], totals["b"]
    check(a["rx_packets"] + b["rx_packets"] == frames and a["rx_packets"] == b["tx_packets"]
          and b["rx_packets"] == a["tx_packets"] and b["rx_packets"] > 0,
          f"stats after traffic through the added port: {totals}, {frames} frames sent")

    # 3. Refusals.
    def refused(args, want):
        _rc, _out, err = run_vhostctl(env, ctl, "port", "add", *args, expect_rc=1)
        check(want in err, f"port add {' '.join(args)}: {err!r}, expected {want!r}")

    refused(["c", "--path", env.path("c.sock"), "--queues", "99"],
            "vhostd: port add:1:")
    refused(["c", "--path", env.path("c.sock"), "--queues", "99"],
            "port.queues: out of range, must be 1..16 (99)")
    refused(["c", "--path", "relative.sock"], "port.path: must be an absolute path")
    refused(["c", "--type", "dpdk", "--devargs", "net_null0", "--mtu", "1500"],
            "port.mtu: not allowed on a dpdk port")
    refused(["a", "--path", env.path("a2.sock")], "port a: a port with this name already exists")
    refused(["c", "--path", sock_a], f"socket path {sock_a} is already used by port a")
    refused(["c", "--path", ctl], "same path as control.socket")
    resp = controllib.control_json(ctl, {"cmd": "port add", "port": {
        "name": "c", "type": "vhost-user", "path": env.path("c.sock"), "colour": "red"}})
    check(not resp["ok"] and "port.colour: unknown key" in resp["error"], f"unknown key: {resp}")
    resp = controllib.control_json(ctl, {"cmd": "port add", "port": "c"})
    check(not resp["ok"] and 'field "port" must be an object' in resp["error"], f"{resp}")
    check(names() == ["a", "b"], f"a refused port add changed the ports: {names()}")
    check(not os.path.exists(env.path("c.sock")), "a refused port add left a socket behind")

    # 4. Delete, delete again, add again.
    _rc, out, _err = run_vhostctl(env, ctl, "port", "del", "b")
    check(out.strip() == "port b removed", f"port del said {out!r}")
    check(names() == ["a"], f"ports after del: {names()}")
    check(not os.path.exists(sock_b), f"port del left {sock_b} behind")
    _rc, _out, err = run_vhostctl(env, ctl, "port", "del", "b", expect_rc=1)
    check("no such port" in err, f"second port del: {err!r}")
    out = json.loads(run_vhostctl(env, ctl, "--json", "port", "add", "b", "--path", sock_b)[1])
    check(out == {"ok": True, "result": {"name": "b"}}, f"port add --json: {out}")
    b_again = vhostctl_json(env, ctl, "show", "stats", "b")["ports"][0]["total"]
    check(b_again["rx_packets"] == 0 and b_again["tx_packets"] == 0,
          f"a port added again does not start from 0: {b_again}")

    # 5. Exit.
    vhostd.sockets.append(sock_b)
    vhostd.stop()


if __name__ == "__main__":
    def args(parser):
        trafficlib.add_args(parser)
        controllib.add_args(parser)
    harness.main(run, extra_args=args, backends=("vhostd",))
