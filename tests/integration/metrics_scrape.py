#!/usr/bin/env python3
"""vhostd's Prometheus endpoint (`metrics.listen`) against known state.

One vhostd, `xconnect [p0, p0]`, metrics on 127.0.0.1 and a free port:

1. vhost-traffic reflects an exact number of frames through p0.
2. GET /metrics (HTTP/1.0, connection closed after the response): status
   200, Content-Type text/plain version 0.0.4, and a body that parses
   strictly as the text format (HELP and TYPE before every family's samples,
   counters named *_total, no duplicate sample).
3. Every per-queue counter (rx/tx packets and bytes, errors, drops by each
   reason) equals `vhostctl show stats --json`, and p0's rx equals what
   vhost-traffic sent; PMD 0 on core 1 is there with its busy/idle cycles,
   polls, sleeps and wake-ups at least what `vhostctl show pmd` showed just
   before; p0 is reported down (its front-end is gone).
4. `vhostctl stats clear`: a new scrape shows every queue counter at 0.
5. Other paths get 404, other methods 405, an oversized request 431, a
   garbled request line 400; the endpoint still answers afterwards.
6. `vhostd --check-config` rejects a bad `metrics.listen` with FILE:LINE.
"""

import socket
import subprocess

import controllib
import harness
import trafficlib
from controllib import http_get, parse_metrics, sample, vhostctl_json
from harness import check, log

COUNT = 3000
SIZE = 256
HOST = "127.0.0.1"

QUEUE_METRICS = {
    "rx_packets": "vhostd_port_rx_packets_total",
    "rx_bytes": "vhostd_port_rx_bytes_total",
    "tx_packets": "vhostd_port_tx_packets_total",
    "tx_bytes": "vhostd_port_tx_bytes_total",
    "errors": "vhostd_port_errors_total",
}
PMD_METRICS = {
    "busy_cycles": "vhostd_pmd_busy_cycles_total",
    "idle_cycles": "vhostd_pmd_idle_cycles_total",
    "busy_polls": "vhostd_pmd_busy_polls_total",
    "idle_polls": "vhostd_pmd_idle_polls_total",
    "sleeps": "vhostd_pmd_sleeps_total",
    "wakeups": "vhostd_pmd_wakeups_total",
    "timeouts": "vhostd_pmd_sleep_timeouts_total",
    "backouts": "vhostd_pmd_sleep_backouts_total",
    "streamed_frames": "vhostd_pmd_streamed_frames_total",
    "store_switches": "vhostd_pmd_store_switches_total",
}


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def scrape(port):
    status, headers, body = http_get(HOST, port, b"GET /metrics HTTP/1.0\r\n\r\n")
    check(status == 200, f"GET /metrics: status {status}")
    check(headers.get("content-type", "").startswith("text/plain; version=0.0.4"),
          f"Content-Type {headers.get('content-type')!r}")
    return parse_metrics(body)


def check_queues_equal(fams, stats):
    by_queue = controllib.stats_by_queue(stats)
    for (port, queue), s in by_queue.items():
        for field, metric in QUEUE_METRICS.items():
            got = sample(fams, metric, port=port, queue=queue)
            check(got == s[field], f"{metric}{{{port},{queue}}} = {got}, vhostctl says {s[field]}")
        for reason in controllib.DROP_REASONS:
            got = sample(fams, "vhostd_port_drops_total", port=port, queue=queue, reason=reason)
            check(got == s["drop_" + reason],
                  f"drops {port}/{queue}/{reason} = {got}, vhostctl says {s['drop_' + reason]}")
    n = len(fams["vhostd_port_rx_packets_total"]["samples"])
    check(n == len(by_queue), f"{n} rx_packets samples for {len(by_queue)} queues")
    return by_queue


def run(env):
    sock = env.path("p0.sock")
    mport = free_port()
    vhostd = trafficlib.Vhostd(env, name="vhostd", switch="xconnect", xconnect=[("p0", "p0")],
                               ports_yaml=[trafficlib.vhost_port("p0", sock)], sockets=[sock],
                               extra_yaml=[f'metrics: {{ listen: "{HOST}:{mport}" }}'])
    ctl = vhostd.control_socket
    vhostd.proc.expect(rf"metrics: serving http://{HOST}:{mport}/metrics", 10)

    # 1-3. Traffic, then one scrape that agrees with vhostctl.
    res = trafficlib.run_traffic(env, name="traffic", mode="reflect", count=COUNT, size=SIZE,
                                 ports=[f"path={sock},queue_size=1024"])
    vhostd.stats()  # SIGUSR1 after a settle delay: the rings are quiet from here on
    stats = vhostctl_json(env, ctl, "show", "stats")
    pmd_before = vhostctl_json(env, ctl, "show", "pmd")["pmds"][0]
    fams = scrape(mport)
    by_queue = check_queues_equal(fams, stats)
    frames = res["sent"] + res["prime_sent"]
    rx = sum(s["rx_packets"] for (p, _q), s in by_queue.items() if p == "p0")
    check(rx == frames, f"metrics: p0 rx {rx}, vhost-traffic sent {frames}")
    for fam in ("vhostd_port_drops_total",):
        check(all(v == 0 for v in fams[fam]["samples"].values()), f"{fam} not all 0")
    for field, metric in PMD_METRICS.items():
        got = sample(fams, metric, pmd="0", core="1")
        check(got >= pmd_before[field], f"{metric} = {got}, below vhostctl's {pmd_before[field]}")
    check(sample(fams, "vhostd_pmd_busy_polls_total", pmd="0", core="1") > 0, "no busy poll")
    check(sample(fams, "vhostd_pmd_sleeping", pmd="0", core="1") in (0, 1), "pmd sleeping gauge")
    check(sample(fams, "vhostd_port_up", port="p0", type="vhost-user", state="listening") == 0,
          "p0 should be down (listening) after vhost-traffic left")
    check(sample(fams, "vhostd_port_connections_total", port="p0") == 1, "p0 connections")
    check(fams["vhostd_port_up"]["type"] == "gauge", "vhostd_port_up is not a gauge")
    log(f"scrape: {sum(len(f['samples']) for f in fams.values())} samples in {len(fams)} families")

    # 4. stats clear.
    controllib.run_vhostctl(env, ctl, "stats", "clear")
    fams = scrape(mport)
    cleared = check_queues_equal(fams, vhostctl_json(env, ctl, "show", "stats"))
    check(all(v == 0 for s in cleared.values() for v in s.values()), f"after clear: {cleared}")
    for fam in list(QUEUE_METRICS.values()) + ["vhostd_port_drops_total"]:
        check(all(v == 0 for v in fams[fam]["samples"].values()), f"{fam} not 0 after stats clear")

    # 5. Everything else.
    for raw, want in ((b"GET / HTTP/1.0\r\n\r\n", 404),
                      (b"GET /metricsx HTTP/1.1\r\nHost: x\r\n\r\n", 404),
                      (b"POST /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n", 405),
                      (b"HELLO\r\n\r\n", 400),
                      (b"GET /metrics HTTP/1.0\r\nX-Pad: " + b"a" * 20000 + b"\r\n\r\n", 431)):
        status, _h, _b = http_get(HOST, mport, raw)
        check(status == want, f"{raw[:40]!r}: status {status}, expected {want}")
    status, _h, body = http_get(HOST, mport, b"GET /metrics?x=1 HTTP/1.1\nHost: x\n\n")
    check(status == 200 and "vhostd_fdb_entries" in body, "bare-LF request with a query failed")

    # 6. Config validation.
    bad = env.write(env.path("bad.yaml"),
                    "ports:\n  - { name: p0, type: vhost-user, path: /tmp/x.sock }\n"
                    "metrics:\n  listen: localhost:9464\n")
    proc = subprocess.run([env.require_vhostd(), "--check-config", bad], capture_output=True,
                          text=True, timeout=30, check=False)
    check(proc.returncode == 1 and f"{bad}:4:11: metrics.listen:" in proc.stderr,
          f"--check-config with a bad metrics.listen: exit {proc.returncode}, {proc.stderr!r}")

    vhostd.stop()
    try:
        http_get(HOST, mport, b"GET /metrics HTTP/1.0\r\n\r\n", timeout=5)
        check(False, "metrics endpoint still answers after vhostd stopped")
    except ConnectionRefusedError:
        pass


if __name__ == "__main__":
    def args(parser):
        trafficlib.add_args(parser)
        controllib.add_args(parser)
    harness.main(run, extra_args=args, backends=("vhostd",))
