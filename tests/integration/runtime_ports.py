#!/usr/bin/env python3
"""Ports added and removed at runtime lose no frame on the other ports.

vhostd runs an L2 switch with ports a and b; vhost-traffic (DPDK's
virtio-user) sends exact-count pair streams a <-> b, run after run, while
the test adds a third port c and a DPDK port d1 (net_null) and removes them
again, 100 times, by rewriting the configuration file and sending SIGHUP (each reload is awaited through the
systemd notify socket: RELOADING=1, then READY=1). Every add publishes a new
snapshot with c and d1 in the flooding set (and d1's rx queue polled),
every removal another one without them (d1's device is stopped, closed and
removed, so it can be probed again); their ids are freed and reused. Every cycle happens while a
vhost-traffic process runs, and every run must pass with exact counts (no
loss, corruption, duplicate or misrouted frame); vhostd's counters show no
drop on a or b. At the end vhostd has as many fds open as before the first
front-end came, and no socket is left bound to c's path.
"""

import threading
import time

import harness
import notifylib
import trafficlib
from harness import check, log

CYCLES = 100
FRAMES_PER_RUN = 1000000


def run(env):
    listener = notifylib.NotifyListener(env, abstract=False)
    socks = {p: env.path(f"{p}.sock") for p in ("a", "b", "c")}
    # d0, a DPDK null device, starts DPDK's EAL so that DPDK ports can come
    # and go too (no-rx: it receives nothing, so it adds no frame).
    base = [trafficlib.vhost_port(p, socks[p]) for p in ("a", "b")] + [
        trafficlib.dpdk_port("d0", "net_null0,no-rx=1")]
    with_c = base + [trafficlib.vhost_port("c", socks["c"]),
                     trafficlib.dpdk_port("d1", "net_null1,no-rx=1")]
    vhostd = trafficlib.Vhostd(env, switch="l2", ports_yaml=base,
                               sockets=[socks["a"], socks["b"]], env_vars=listener.env())
    listener.wait(lambda m: m.get("READY") == "1", 20, what="READY=1")
    fds_before = notifylib.fd_count(vhostd.proc.pid)
    log(f"vhostd has {fds_before} fds open before any front-end")

    running = threading.Event()   # a vhost-traffic run is in progress
    run_mark = [0]                # vhostd's log offset when the current run started
    cycles_done = threading.Event()
    runs = []
    failure = []
    cycle_log = []  # (run number, cycle) of each cycle

    def traffic():
        try:
            n = 0
            while not cycles_done.is_set():
                run_mark[0] = vhostd.proc.mark()
                running.set()
                res = trafficlib.run_traffic(
                    env, name=f"traffic{n}", mode="pair", count=FRAMES_PER_RUN, size=64,
                    ports=[f"path={socks['a']},queue_size=1024",
                           f"path={socks['b']},queue_size=1024"])
                running.clear()
                runs.append(res)
                n += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            failure.append(exc)
        finally:
            running.clear()
            cycles_done.set()

    thread = threading.Thread(target=traffic, name="traffic", daemon=True)
    thread.start()
    start = time.monotonic()
    def streaming():
        # The current run's rings are up on both ports (vhost-traffic then
        # primes both directions within milliseconds and streams).
        if not running.is_set():
            return False
        out = vhostd.proc.output(run_mark[0])
        return "port a: 2 ring(s) live" in out and "port b: 2 ring(s) live" in out

    for i in range(CYCLES):
        waited = False
        while not streaming():
            check(not failure, f"vhost-traffic failed before cycle {i}: {failure and failure[0]}")
            check(not cycles_done.is_set(), "traffic stopped")
            time.sleep(0.01)
            waited = True
        if waited:
            time.sleep(0.1)  # past the priming frames
        run_no = len(runs)
        notifylib.rewrite_config(vhostd, with_c)
        out = notifylib.reload(vhostd, listener)
        check("port c: added" in out and "port d1: added" in out,
              f"cycle {i}: port c or d1 was not added: {out[-500:]}")
        check(harness.is_socket(socks["c"]), f"cycle {i}: no socket {socks['c']}")
        notifylib.rewrite_config(vhostd, base)
        out = notifylib.reload(vhostd, listener)
        check("port c: removed" in out and "port d1: removed" in out,
              f"cycle {i}: port c or d1 was not removed: {out[-500:]}")
        check(not harness.os.path.exists(socks["c"]), f"cycle {i}: {socks['c']} left behind")
        cycle_log.append((run_no, i))
        time.sleep(0.01)  # spread the cycles over the stream
    elapsed = time.monotonic() - start
    cycles_done.set()
    thread.join(trafficlib.TRAFFIC_WATCHDOG_S + 10)
    check(not thread.is_alive(), "the last vhost-traffic run did not end")
    if failure:
        raise failure[0]
    per_run = {}
    for run_no, _ in cycle_log:
        per_run[run_no] = per_run.get(run_no, 0) + 1
    log(f"{CYCLES} add/remove cycles in {elapsed:.1f} s during {len(runs)} vhost-traffic runs "
        f"(cycles per run: {per_run}); every run passed with exact counts")
    check(len(runs) >= 1, "no vhost-traffic run completed")
    frames = sum(r["sent"] + r["prime_sent"] for r in runs)

    stats = vhostd.stats()
    a = trafficlib.port_totals(stats, "a")
    b = trafficlib.port_totals(stats, "b")
    check(a["rx_packets"] + b["rx_packets"] == frames,
          f"vhostd received {a['rx_packets']} + {b['rx_packets']} frames, expected {frames}")
    check(a["rx_packets"] == b["tx_packets"] and b["rx_packets"] == a["tx_packets"],
          f"a rx {a['rx_packets']} / b tx {b['tx_packets']}, b rx {b['rx_packets']} / "
          f"a tx {a['tx_packets']}")
    trafficlib.check_no_drops(stats)
    check(("c", "vring0") not in stats and ("d1", "queue0") not in stats,
          "port c or d1 still has counters")

    # Nothing leaked: the front-ends are gone, c is gone.
    ok = harness.wait_for(lambda: notifylib.fd_count(vhostd.proc.pid) == fds_before, 10)
    fds_after = notifylib.fd_count(vhostd.proc.pid)
    log(f"vhostd fds: {fds_before} before, {fds_after} after {CYCLES} cycles and {len(runs)} runs")
    check(ok, f"vhostd has {fds_after} fds open, {fds_before} before the cycles")
    ok = harness.wait_for(lambda: notifylib.bound_unix_sockets(socks["c"]) == 0, 10)
    check(ok, f"{notifylib.bound_unix_sockets(socks['c'])} socket(s) still bound to {socks['c']}")
    vhostd.check_alive()
    vhostd.stop()
    listener.close()


if __name__ == "__main__":
    harness.main(run, extra_args=trafficlib.add_args, backends=("vhostd",))
