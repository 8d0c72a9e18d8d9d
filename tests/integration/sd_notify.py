#!/usr/bin/env python3
"""vhostd speaks systemd's notify protocol.

The test listens where systemd would ($NOTIFY_SOCKET; an abstract-namespace
name '@...', then a socket file) and runs vhostd with WATCHDOG_USEC set:

1. READY=1 comes first, with a STATUS= summary (ports, connected, PMDs), once
   the port's socket is listening.
2. WATCHDOG=1 follows every WATCHDOG_USEC/2 (the PMD health check passes).
3. A front-end (testpmd, virtio-user) connects: STATUS= changes to say so;
   it leaves: STATUS= changes back.
4. SIGHUP: RELOADING=1 (with MONOTONIC_USEC), then READY=1.
5. SIGTERM: STOPPING=1 is the last message, and vhostd exits 0.

A second vhostd gets WATCHDOG_PID naming another process: the watchdog is
not its, so it sends READY=1 but never WATCHDOG=1.
"""

import signal
import time

import harness
import notifylib
import trafficlib
from harness import check, log

WATCHDOG_USEC = 400000  # WATCHDOG=1 every 200 ms


def status_of(msg):
    m = notifylib.STATUS_RE.search(msg.get("STATUS", ""))
    return m and tuple(int(x) for x in m.groups())


def run_main(env):
    listener = notifylib.NotifyListener(env, abstract=True)
    sock = env.path("p0.sock")
    vhostd = trafficlib.Vhostd(env, name="vhostd", xconnect=[("p0", "p0")],
                               ports_yaml=[trafficlib.vhost_port("p0", sock)], sockets=[sock],
                               env_vars=listener.env(WATCHDOG_USEC=WATCHDOG_USEC))
    ready = listener.wait(lambda m: m.get("READY") == "1", 20, what="READY=1")
    check(ready == 0, f"READY=1 is not the first message: {listener.messages[:ready + 1]}")
    first = listener.messages[0]
    check(status_of(first) == (1, 1, 0, 0, 1),
          f"STATUS with READY=1: {first.get('STATUS')!r}, expected 1 port, 0 connected, 1 PMD")
    check(harness.is_socket(sock), "READY=1 before the port listens")
    log(f"READY=1 with STATUS={first['STATUS']!r}")

    # The watchdog: several WATCHDOG=1, about every 200 ms.
    t0 = time.monotonic()
    idx = ready
    for _ in range(5):
        idx = listener.wait(lambda m: m.get("WATCHDOG") == "1", 10, since=idx + 1, what="WATCHDOG=1")
    took = time.monotonic() - t0
    log(f"5 x WATCHDOG=1 in {took:.2f} s")
    check(took < 8, f"5 watchdog pings took {took:.1f} s with WATCHDOG_USEC={WATCHDOG_USEC}")

    # A front-end comes and goes: the summary follows.
    fe = env.testpmd_frontend(sock)
    fe.wait_prompt()
    fe.wait_link_up()
    conn = listener.wait(lambda m: status_of(m) == (1, 1, 1, 0, 1), 10, since=idx + 1,
                         what="STATUS with 1 connected")
    log(f"STATUS={listener.messages[conn]['STATUS']!r}")
    fe.quit()
    gone = listener.wait(lambda m: status_of(m) == (1, 1, 0, 0, 1), 10, since=conn + 1,
                         what="STATUS with 0 connected")

    # A reload: RELOADING=1, then READY=1.
    out = notifylib.reload(vhostd, listener)
    check("0 port(s) removed, 0 added (0 changed), 0 failed, 0 key(s)" in out,
          f"an unchanged file changed something: {out[-400:]}")

    # Stop: STOPPING=1 last.
    n = listener.count()
    vhostd.proc.signal(signal.SIGTERM)
    stop = listener.wait(lambda m: m.get("STOPPING") == "1", 10, since=n, what="STOPPING=1")
    vhostd.proc.wait_exit(10, expect_rc=0, action="exit after SIGTERM")
    time.sleep(0.3)
    check(stop == listener.count() - 1,
          f"messages after STOPPING=1: {listener.messages[stop + 1:]}")
    kinds = [k for m in listener.messages for k in ("READY", "WATCHDOG", "RELOADING", "STOPPING")
             if m.get(k) == "1"]
    log(f"{len(listener.messages)} messages: " + " ".join(
        k for i, k in enumerate(kinds) if i == 0 or k != kinds[i - 1] or k != "WATCHDOG"))
    check(not harness.os.path.exists(sock), "vhostd left its socket behind")
    listener.close()
    return gone


def run_foreign_watchdog(env):
    listener = notifylib.NotifyListener(env, abstract=False)
    sock = env.path("q0.sock")
    vhostd = trafficlib.Vhostd(env, name="vhostd-pid", xconnect=[("q0", "q0")],
                               ports_yaml=[trafficlib.vhost_port("q0", sock)], sockets=[sock],
                               env_vars=listener.env(WATCHDOG_USEC=WATCHDOG_USEC, WATCHDOG_PID=1))
    listener.wait(lambda m: m.get("READY") == "1", 20, what="READY=1")
    time.sleep(1.0)
    pings = [m for m in listener.messages if "WATCHDOG" in m]
    check(not pings, f"WATCHDOG=1 sent although WATCHDOG_PID names another process: {pings}")
    vhostd.stop()
    check(listener.messages[-1].get("STOPPING") == "1", "no STOPPING=1")
    listener.close()


def run(env):
    run_main(env)
    run_foreign_watchdog(env)


if __name__ == "__main__":
    harness.main(run, extra_args=trafficlib.add_args, backends=("vhostd",))
