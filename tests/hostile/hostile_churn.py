#!/usr/bin/env python3
"""10 000 repetitions of SET_VRING_NUM, of SET_MEM_TABLE, and of a whole
connection (connect, full handshake with rings started, disconnect) against
the real vhostd; its resources must stay flat.

hostile_frontend measures vhostd from /proc after a warm-up (5 % of the
count, at least 100) and again after the repetitions, each time with no
connection open:

* open fds (/proc/PID/fd): exactly equal. The client also waits for the count
  to come back to its value before each connection, so a single fd kept per
  connection (a memfd, an eventfd, the socket) fails the test. For the two
  message repetitions it also compares, while still connected, the fds and
  mappings after the warm-up with those after all repetitions (a replaced
  memory table must be released at once, not at disconnect).
* mappings (/proc/PID/maps lines): at most 2 more, with no connection open
  and (for the message repetitions) while connected. glibc may add a heap
  mapping when its arenas grow; a guest-memory mapping kept per
  SET_MEM_TABLE would add thousands.
* RssAnon (/proc/PID/status): at most 1 MiB more. Freed memory that malloc
  keeps for reuse and heap fragmentation move it by some hundreds of KiB
  without any leak; a leak of 100 bytes per repetition would add about 1 MiB
  and anything larger more.

The count can be lowered by hand with --count. In a sanitized build
(--sanitized, set by meson) only the fds are compared: ASan keeps freed memory
in its quarantine and maps its own heap, so RSS and mappings grow by design
there, and LeakSanitizer checks for leaks when vhostd exits.
"""

import re

import hostilelib
from hostilelib import check, harness, log

hostilelib.long_process_timeout(590)

MAX_MAPS_GROWTH = 2
MAX_RSS_ANON_GROWTH_KB = 1024
CHURN_RE = re.compile(r"CHURN (\S+) count (\d+) seconds (\S+) fds (\d+) (\d+) maps (\d+) (\d+) "
                      r"rss_anon_kb (\d+) (\d+) rss_kb (\d+) (\d+) connected_fds (\d+) (\d+) "
                      r"connected_maps (\d+) (\d+)")


def add_args(parser):
    hostilelib.add_args(parser)
    parser.add_argument("--count", type=int, default=10000)
    parser.add_argument("--sanitized", action="store_true",
                        help="vhostd is an ASan build: compare fds only")


def run(env):
    sock = env.path("p0.sock")
    # Info level: debug would log every one of the ~250 000 messages.
    vhostd = hostilelib.start_vhostd(env, env.vhostd_config(socket=sock), sockets=[sock],
                                     timeout=580, log_level="info")
    for kind in ("churn-vring-num", "churn-mem-table", "churn-connect"):
        out = hostilelib.run_client(env, sock, "--case", kind, "--pid", str(vhostd.pid),
                                    "--count", str(env.args.count), timeout=400)
        m = CHURN_RE.search(out)
        check(m, f"{kind}: no CHURN line in {out!r}")
        (_k, count, secs, fds0, fds1, maps0, maps1, anon0, anon1, rss0, rss1, cfd0, cfd1,
         cmaps0, cmaps1) = (int(v) if v.isdigit() else v for v in m.groups())
        log(f"{kind}: {count} in {float(secs):.1f} s; fds {fds0} -> {fds1}, maps {maps0} -> "
            f"{maps1}, RssAnon {anon0} -> {anon1} KiB, VmRSS {rss0} -> {rss1} KiB, fds while "
            f"connected {cfd0} -> {cfd1}, mappings while connected {cmaps0} -> {cmaps1}")
        check(fds1 == fds0, f"{kind}: vhostd's fds went from {fds0} to {fds1}")
        if env.args.sanitized:
            continue
        check(maps1 - maps0 <= MAX_MAPS_GROWTH,
              f"{kind}: vhostd's mappings went from {maps0} to {maps1}")
        check(cmaps1 - cmaps0 <= MAX_MAPS_GROWTH,
              f"{kind}: while connected, vhostd's mappings went from {cmaps0} to {cmaps1}")
        check(anon1 - anon0 <= MAX_RSS_ANON_GROWTH_KB,
              f"{kind}: vhostd's RssAnon grew by {anon1 - anon0} KiB over {count} repetitions")
        check(vhostd.alive(), f"vhostd died during {kind}")
    hostilelib.run_client(env, sock, "--case", "good")
    hostilelib.stop_vhostd(vhostd, [sock])


if __name__ == "__main__":
    harness.main(run, extra_args=add_args, backends=("vhostd",))
