#!/usr/bin/env python3
"""SIGHUP reloads vhostd.yaml and applies the difference.

vhostd starts in xconnect mode with ports p0 (reflect pair [p0, p0]), q0 and
q1 (paired). Each step rewrites the file, sends SIGHUP and waits for
RELOADING=1 / READY=1 on the notify socket:

1. A broken file (queues: 99): vhostd logs the FILE:LINE:COLUMN error and
   keeps running what it ran (every socket still there).
2. Restart-only keys (dataplane.pmd_cores, dataplane.burst): a warning
   naming each key, nothing else changes.
3. q1's path changes while testpmd is connected to it: q1 is removed (the
   front-end is disconnected and sees its link go down) and added again (old
   socket file gone, new one listening); q0 is removed (its socket file gone); r0 is added with
   a new pair [r0, r0].
4. A port that cannot be added (a socket path below a regular file): the
   error names the file and line; the other changes still apply.

Then vhost-traffic reflects 2000 frames through p0 (untouched by every
reload) and 2000 through r0 (added and paired by a reload), exactly. vhostd
exits 0 on SIGTERM and leaves no socket file behind.
"""

import os
import re

import harness
import notifylib
import trafficlib
from harness import check, log


def ports(env, *names, **paths):
    return [trafficlib.vhost_port(n, paths.get(n, env.path(f"{n}.sock"))) for n in names]


def run(env):
    listener = notifylib.NotifyListener(env, abstract=False)
    p = {n: env.path(f"{n}.sock") for n in ("p0", "q0", "q1", "r0")}
    q1_new = env.path("q1-new.sock")
    vhostd = trafficlib.Vhostd(env, xconnect=[("p0", "p0"), ("q0", "q1")],
                               ports_yaml=ports(env, "p0", "q0", "q1"),
                               sockets=[p["p0"], p["q0"], p["q1"]], env_vars=listener.env())
    listener.wait(lambda m: m.get("READY") == "1", 20, what="READY=1")

    # 1. A broken file.
    with open(vhostd.config_path) as f:
        good = f.read()
    broken = good.replace(f"path: {p['q1']}, mode: server", f"path: {p['q1']}, mode: server, queues: 99")
    check(broken != good, "could not break the file")
    with open(vhostd.config_path, "w") as f:
        f.write(broken)
    line = next(i + 1 for i, l in enumerate(broken.splitlines()) if "queues: 99" in l)
    out = notifylib.reload(vhostd, listener)
    check(f"reload: {vhostd.config_path}:{line}:" in out and "ports[2].queues" in out,
          f"no FILE:LINE error for the broken file: {out[-600:]}")
    check("the running configuration is kept" in out, "no word that the configuration is kept")
    for n in ("p0", "q0", "q1"):
        check(harness.is_socket(p[n]), f"port {n} is gone after a broken reload")
    log("broken file: error with its line, nothing changed")

    # 2. Keys that need a restart.
    with open(vhostd.config_path, "w") as f:
        f.write(good)
    notifylib.rewrite_config(vhostd, ports(env, "p0", "q0", "q1"), xconnect=[("p0", "p0"), ("q0", "q1")],
                             extra={"dataplane": "dataplane: { pmd_cores: [0], burst: 64, "
                                                 "idle: { mode: adaptive, poll_us: 200, max_sleep_us: 1000 } }"})
    out = notifylib.reload(vhostd, listener)
    for key in ("dataplane.pmd_cores: [1] -> [0]", "dataplane.burst: 32 -> 64"):
        check(f"reload: {key}: not applied, takes effect at the next restart" in out,
              f"no warning for {key}: {out[-600:]}")
    check("0 port(s) removed, 0 added (0 changed), 0 failed, 2 key(s) waiting for a restart" in out,
          f"unexpected summary: {out[-400:]}")

    # 3. Ports: q1 changed (with a front-end connected), q0 removed, r0
    #    added and paired.
    fe = env.testpmd_frontend(p["q1"])
    fe.wait_prompt()
    fe.wait_link_up()
    vhostd.proc.expect(r"port q1: 2 ring\(s\) live", 20, what="q1's rings live")
    notifylib.rewrite_config(vhostd, ports(env, "p0", "q1", "r0", q1=q1_new),
                             xconnect=[("p0", "p0"), ("r0", "r0")])
    out = notifylib.reload(vhostd, listener)
    check("port q1 changed: removed, added again" in out, f"q1 not re-created: {out[-800:]}")
    check("1 port(s) removed, 1 added (1 changed), 0 failed" in out, f"summary: {out[-400:]}")
    check("reload: xconnect pairs replaced (2 pair(s))" in out, "xconnect pairs not replaced")
    check(not os.path.exists(p["q0"]) and not os.path.exists(p["q1"]),
          "a removed or changed port left its socket file")
    check(harness.is_socket(q1_new) and harness.is_socket(p["r0"]), "q1 or r0 is not listening")
    check(re.search(r"port q1: connection \d+ closed \(port removed\)", out),
          f"q1's front-end was not disconnected: {out[-800:]}")
    ok = harness.wait_for(lambda: fe.link_status() == "down", 15)
    check(ok, "testpmd still sees q1's link up after the port was removed")
    # testpmd's quit writes to the socket vhostd closed: it may die of SIGPIPE.
    fe.send("quit")
    check(fe.wait(15) is not None, "testpmd did not quit")
    log("ports: q0 removed, q1 moved, r0 added")

    # 4. A port that cannot open: the rest applies, the error names the line.
    missing = vhostd.config_path + "/s0.sock"  # below a regular file: ENOTDIR
    notifylib.rewrite_config(vhostd, ports(env, "p0", "q1", "r0", "s0", "t0", q1=q1_new, s0=missing),
                             xconnect=[("p0", "p0"), ("r0", "r0")])
    with open(vhostd.config_path) as f:
        s0_line = next(i + 1 for i, l in enumerate(f.read().splitlines()) if "name: s0" in l)
    out = notifylib.reload(vhostd, listener)
    check(f"reload: {vhostd.config_path}:{s0_line}: port s0:" in out and "the port is not running" in out,
          f"no FILE:LINE error for s0: {out[-800:]}")
    check(harness.is_socket(env.path("t0.sock")), "t0 was not added after s0 failed")
    check("0 port(s) removed, 2 added (0 changed), 1 failed" in out, f"summary: {out[-400:]}")

    # The data path: p0 untouched, r0 added and paired by reloads.
    for n in ("p0", "r0"):
        trafficlib.run_traffic(env, name=f"traffic-{n}", mode="reflect", count=2000, size=64,
                               ports=[f"path={p[n]},queue_size=1024"])
    stats = vhostd.stats()
    trafficlib.check_no_drops(stats)
    vhostd.sockets = [p["p0"], q1_new, p["r0"], env.path("t0.sock")]
    vhostd.stop()
    listener.close()


if __name__ == "__main__":
    harness.main(run, extra_args=trafficlib.add_args, backends=("vhostd",))
