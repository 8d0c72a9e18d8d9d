#!/usr/bin/env python3
"""vhostd's control socket and vhostctl against known state (docs/control.md).

One vhostd, `switch: l2`, two vhost-user ports a and b:

1. The control socket is a socket of mode 0660 (it replaced a stale socket
   file); a second vhostd on the same path refuses to start; vhostctl
   against a socket nobody serves fails (exit 1) saying so.
2. `show ports` (table and --json) before any front-end: both listening on
   their paths, server mode, 0660, one queue pair, no live ring.
3. vhost-traffic sends an exact number of frames a <-> b. `show stats`
   (--json and table, every port, and one port) equals, field by field, the
   counters vhostd logs on SIGUSR1, and adds up to what vhost-traffic sent;
   `show fdb` is empty once the front-ends are gone.
4. `stats clear`: every counter reads 0 afterwards (table and JSON).
5. testpmd connects to a: `show ports` says connected with the negotiated
   features by name (VERSION_1, ...); `show pmd` shows PMD 0 on core 1
   polling a/vring1; after one burst from testpmd, `show fdb` lists its MAC
   on a. testpmd quits: a is listening again.
6. `log level warn` silences info lines, `log level info` restores them; an
   unknown level is refused (exit 1).
7. Protocol: malformed JSON, a non-object, a missing/unknown command, a bad
   field type each get {"ok":false,"error":...}; several requests on one
   connection are answered in order; 1 MiB without a newline gets an error
   and the connection is closed; an idle client is disconnected after the
   idle timeout while others are served; 32 clients at once are all served.
8. SIGTERM: exit 0, the control socket file is gone.
"""

import json
import os
import socket
import stat
import subprocess
import threading
import time

import controllib
import harness
import trafficlib
from controllib import run_vhostctl, vhostctl_json, parse_table
from harness import check, log

COUNT = 2000
SIZE = 128


def check_stats_table(text, by_queue):
    rows = parse_table(text)
    seen = set()
    for r in rows:
        key = (r["PORT"], r["QUEUE"])
        if r["QUEUE"] == "total":
            want = {}
            for (p, _q), s in by_queue.items():
                if p == r["PORT"]:
                    for f, v in s.items():
                        want[f] = want.get(f, 0) + v
        else:
            check(key in by_queue, f"table row {key} not in the JSON")
            want = by_queue[key]
            seen.add(key)
        got = {"rx_packets": r["RX_PACKETS"], "rx_bytes": r["RX_BYTES"],
               "tx_packets": r["TX_PACKETS"], "tx_bytes": r["TX_BYTES"], "errors": r["ERRORS"]}
        for reason in controllib.DROP_REASONS:
            got["drop_" + reason] = r["DROP_" + reason.upper()]
        got = {k: int(v) for k, v in got.items()}
        check(got == want, f"stats table row {key}: {got}, JSON says {want}")
    check(seen == set(by_queue), f"table rows {sorted(seen)} != JSON queues {sorted(by_queue)}")


def run(env):
    socks = {p: env.path(f"{p}.sock") for p in ("a", "b")}
    # A stale control socket (bound, nobody listening) left by a crashed
    # vhostd is replaced.
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(env.path("vhostd-ctl.sock"))
    stale.close()
    vhostd = trafficlib.Vhostd(env, name="vhostd", switch="l2",
                               ports_yaml=[trafficlib.vhost_port(p, s) for p, s in socks.items()],
                               sockets=socks.values())
    ctl = vhostd.control_socket
    check(harness.wait_for(lambda: harness.is_socket(ctl), 10), f"no control socket at {ctl}")

    # 1. Mode, and a daemon that is not there.
    st = os.stat(ctl)
    check(stat.S_ISSOCK(st.st_mode), f"{ctl} is not a socket")
    check(stat.S_IMODE(st.st_mode) == 0o660,
          f"control socket mode {oct(stat.S_IMODE(st.st_mode))}, expected 0o660")
    _rc, _out, err = run_vhostctl(env, env.path("nobody.sock"), "show", "ports", expect_rc=1)
    check("is vhostd running?" in err, f"vhostctl without a daemon said {err!r}")

    # A second vhostd on the same control socket refuses to start.
    text = open(vhostd.config_path).read()
    for p in ("a", "b"):
        text = text.replace(socks[p], env.path(f"{p}2.sock"))
    text = text.replace("vhd-vhostd", "vhd-vhostd2")
    second = env.write(env.path("second.yaml"), text)
    proc = subprocess.run([env.require_vhostd(), "--config", second], capture_output=True,
                          text=True, timeout=60, check=False)
    check(proc.returncode == 1 and "another process is listening on it" in proc.stderr
          and ctl in proc.stderr,
          f"a second vhostd on {ctl}: exit {proc.returncode}, {proc.stderr[-500:]!r}")
    check(controllib.control_json(ctl, {"cmd": "show fdb"})["ok"], "first vhostd unwell")

    # 2. show ports before any front-end.
    ports = vhostctl_json(env, ctl, "show", "ports")
    check(ports["switch_mode"] == "l2", f"switch_mode {ports['switch_mode']}")
    check([p["name"] for p in ports["ports"]] == ["a", "b"], f"ports {ports['ports']}")
    for p in ports["ports"]:
        want = {"type": "vhost-user", "state": "listening", "path": socks[p["name"]],
                "socket_mode": "server", "socket_perms": "0660", "queue_pairs": 1,
                "live_rings": 0, "broken": False}
        got = {k: p[k] for k in want}
        check(got == want, f"show ports {p['name']}: {got}, expected {want}")
    _rc, out, _err = run_vhostctl(env, ctl, "show", "ports")
    rows = parse_table(out)
    check([(r["NAME"], r["TYPE"], r["STATE"], r["SOCKET"], r["MODE"], r["PERMS"], r["QUEUES"])
           for r in rows] ==
          [(n, "vhost-user", "listening", socks[n], "server", "0660", "1") for n in ("a", "b")],
          f"show ports table:\n{out}")

    # 3. Exact counts.
    res = trafficlib.run_traffic(env, name="traffic", mode="pair", count=COUNT, size=SIZE,
                                 ports=[f"path={socks['a']},queue_size=1024",
                                        f"path={socks['b']},queue_size=1024"])
    frames = res["sent"] + res["prime_sent"]
    logged = vhostd.stats()  # SIGUSR1, after the rings settled
    stats = vhostctl_json(env, ctl, "show", "stats")
    by_queue = controllib.stats_by_queue(stats)
    check(set(by_queue) == set(logged), f"queues {sorted(by_queue)} vs SIGUSR1 {sorted(logged)}")
    for key, s in logged.items():
        want = {f: s[f] for f in controllib.COUNTER_FIELDS}
        want.update({"drop_" + r: s[r] for r in controllib.DROP_REASONS})
        check(by_queue[key] == want, f"show stats {key}: {by_queue[key]}, SIGUSR1 logged {want}")
    totals = {p["name"]: p["total"] for p in stats["ports"]}
    a, b = totals["a"], totals["b"]
    check(a["rx_packets"] + b["rx_packets"] == frames,
          f"show stats: rx {a['rx_packets']} + {b['rx_packets']}, vhost-traffic sent {frames}")
    check(a["rx_bytes"] + b["rx_bytes"] == frames * SIZE, "rx bytes do not add up")
    check(a["rx_packets"] == b["tx_packets"] and b["rx_packets"] == a["tx_packets"],
          f"a rx {a['rx_packets']} / b tx {b['tx_packets']}, b rx {b['rx_packets']} / "
          f"a tx {a['tx_packets']}")
    check(all(v == 0 for t in totals.values() for v in t["drops"].values()) and
          all(t["errors"] == 0 for t in totals.values()), f"drops or errors: {totals}")
    _rc, out, _err = run_vhostctl(env, ctl, "show", "stats")
    check_stats_table(out, by_queue)
    only_b = vhostctl_json(env, ctl, "show", "stats", "b")
    check([p["name"] for p in only_b["ports"]] == ["b"] and only_b["ports"][0]["total"] == b,
          f"show stats b: {only_b}")
    _rc, out, _err = run_vhostctl(env, ctl, "show", "stats", "b")
    check({r["PORT"] for r in parse_table(out)} == {"b"}, f"show stats b table:\n{out}")
    _rc, _out, err = run_vhostctl(env, ctl, "show", "stats", "nope", expect_rc=1)
    check("no port named 'nope'" in err, f"show stats nope: {err!r}")

    # A front-end's MACs leave the L2 table with its connection.
    check(vhostctl_json(env, ctl, "show", "fdb")["entries"] == [],
          "show fdb lists MACs of front-ends that are gone")

    # 4. stats clear.
    _rc, out, _err = run_vhostctl(env, ctl, "stats", "clear")
    check("cleared" in out, f"stats clear said {out!r}")
    cleared = controllib.stats_by_queue(vhostctl_json(env, ctl, "show", "stats"))
    check(all(v == 0 for s in cleared.values() for v in s.values()), f"after clear: {cleared}")
    _rc, out, _err = run_vhostctl(env, ctl, "show", "stats")
    check_stats_table(out, cleared)

    # 5. A connected front-end: features, rings, PMD sources.
    tp = env.testpmd_frontend(socks["a"], name="testpmd-a")
    tp.wait_prompt()
    tp.wait_link_up()

    def port_a():
        return next(p for p in vhostctl_json(env, ctl, "show", "ports")["ports"] if p["name"] == "a")

    check(harness.wait_for(lambda: port_a()["live_rings"] >= 2, 20, interval=0.5),
          f"port a never showed its rings live: {port_a()}")
    pa = port_a()
    check(pa["state"] == "connected" and pa["connections"] == 2, f"port a: {pa}")
    names = set(pa["features"]["names"])
    for want in ("VIRTIO_F_VERSION_1", "VHOST_USER_F_PROTOCOL_FEATURES"):
        check(want in names, f"negotiated features of a lack {want}: {sorted(names)}")
    check(int(pa["features"]["bits"], 16) & (1 << 32), f"bits {pa['features']['bits']}")
    _rc, out, _err = run_vhostctl(env, ctl, "show", "ports")
    row = next(r for r in parse_table(out) if r["NAME"] == "a")
    check(row["STATE"] == "connected", f"show ports table:\n{out}")
    check("VERSION_1" in out, f"feature names missing from the table output:\n{out}")
    pmd = vhostctl_json(env, ctl, "show", "pmd")["pmds"]
    check(len(pmd) == 1 and pmd[0]["pmd"] == 0 and pmd[0]["core"] == 1, f"show pmd: {pmd}")
    check({"port": "a", "queue": "vring1"} in pmd[0]["sources"], f"pmd sources {pmd[0]['sources']}")
    check(pmd[0]["state"] in ("polling", "sleeping") and 0.0 <= pmd[0]["busy_share"] <= 1.0,
          f"show pmd: {pmd}")
    _rc, out, _err = run_vhostctl(env, ctl, "show", "pmd")
    rows = parse_table(out)
    check(len(rows) == 1 and rows[0]["CORE"] == "1" and "a/vring1" in rows[0]["SOURCES"],
          f"show pmd table:\n{out}")
    # One burst from testpmd: the L2 table learns its MAC on a.
    mac = tp.command("show port info 0", r"MAC address: ([0-9A-Fa-f:]{17})").group(1).lower()
    tp.command("start tx_first", r"testpmd> ")
    tp.command("stop", r"Done|testpmd> ")

    def fdb():
        return {e["mac"]: e["port"] for e in vhostctl_json(env, ctl, "show", "fdb")["entries"]}

    check(harness.wait_for(lambda: fdb() == {mac: "a"}, 20, interval=0.5),
          f"show fdb: {fdb()}, expected {{{mac!r}: 'a'}}")
    entries = vhostctl_json(env, ctl, "show", "fdb")["entries"]
    check(all(0 <= e["age_s"] < 120 for e in entries), f"fdb ages {entries}")
    _rc, out, _err = run_vhostctl(env, ctl, "show", "fdb")
    check({r["MAC"]: r["PORT"] for r in parse_table(out)} == {mac: "a"}, f"show fdb table:\n{out}")
    check(port_a()["macs"] == [mac], f"show ports a: macs {port_a()['macs']}, expected [{mac}]")
    tp.quit()
    check(harness.wait_for(lambda: port_a()["state"] == "listening", 20, interval=0.5),
          f"port a not listening again after testpmd quit: {port_a()}")

    # 6. log level.
    _rc, out, _err = run_vhostctl(env, ctl, "log", "level", "warn")
    check(out.strip() == "log level set to warn", f"log level warn said {out!r}")
    mark = vhostd.proc.mark()
    run_vhostctl(env, ctl, "stats", "clear")
    check(vhostctl_json(env, ctl, "log", "level", "info") == {"level": "info"}, "log level --json")
    check(vhostctl_json(env, ctl, "stats", "clear") == {}, "stats clear --json")
    vhostd.proc.expect(r"control: statistics cleared", 10, since=mark)
    check(vhostd.proc.output(mark).count("control: statistics cleared") == 1,
          "with log level warn, vhostd still logged an info line")
    _rc, _out, err = run_vhostctl(env, ctl, "log", "level", "loud", expect_rc=1)
    check("unknown log level 'loud'" in err, f"log level loud: {err!r}")

    # 7. The protocol, raw.
    for raw, want in ((b"not json\n", "malformed request"),
                      (b"[1, 2]\n", "must be a JSON object"),
                      (b'{"cmd": 7}\n', 'field "cmd" must be a string'),
                      (b"{}\n", 'missing field "cmd"'),
                      (b'{"cmd": "reboot"}\n', "unknown command 'reboot'"),
                      (b'{"cmd": "log level"}\n', 'missing field "level"'),
                      (b'{"cmd": "show stats", "port": 1}\n', 'field "port" must be a string')):
        resp = json.loads(controllib.control_request(ctl, raw).decode())
        check(resp.get("ok") is False and want in resp.get("error", ""),
              f"request {raw!r}: {resp}, expected an error with {want!r}")
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(20)
    s.connect(ctl)
    s.sendall(b'{"cmd":"show fdb"}\n\n{"cmd":"bogus"}\r\n{"cmd":"show pmd"}\n')
    got = b""
    while got.count(b"\n") < 3:
        chunk = s.recv(65536)
        check(chunk, f"connection closed after {got!r}")
        got += chunk
    s.close()
    replies = [json.loads(l) for l in got.decode().splitlines()]
    check([r["ok"] for r in replies] == [True, False, True] and "entries" in replies[0]["result"]
          and "pmds" in replies[2]["result"], f"pipelined replies: {replies}")

    big = controllib.control_request(ctl, b"x" * (1 << 20), read_to_eof=True).decode()
    check("request longer than 65536 bytes" in big, f"1 MiB request got {big[:200]!r}")
    check(controllib.control_json(ctl, {"cmd": "show fdb"})["ok"], "daemon unwell after 1 MiB")

    idle = socket.socket(socket.AF_UNIX)
    idle.settimeout(40)
    idle.connect(ctl)
    idle.sendall(b'{"cmd":')  # half a request, then nothing
    started = time.monotonic()
    results = []

    def client():
        try:
            results.append(controllib.control_json(ctl, {"cmd": "show ports"})["ok"])
        except Exception as exc:  # noqa: BLE001 - reported below
            results.append(repr(exc))

    threads = [threading.Thread(target=client) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    check(results == [True] * 32, f"32 concurrent clients: {results}")
    check(idle.recv(100) == b"", "the idle client got data instead of being disconnected")
    waited = time.monotonic() - started
    idle.close()
    log(f"idle client disconnected after {waited:.1f} s")
    check(5 <= waited <= 35, f"idle client disconnected after {waited:.1f} s, expected ~10 s")

    # 8. Exit.
    vhostd.stop()
    check(not os.path.exists(ctl), f"vhostd left {ctl} behind")


if __name__ == "__main__":
    def args(parser):
        trafficlib.add_args(parser)
        controllib.add_args(parser)
    harness.main(run, extra_args=args, backends=("vhostd",))
