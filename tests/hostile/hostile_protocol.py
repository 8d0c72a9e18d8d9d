#!/usr/bin/env python3
"""A hostile vhost-user front-end against the real vhostd, over its real socket.

vhostd runs with one server port p0 (xconnect [p0, p0]; no DPDK port, so no
EAL). hostile_frontend sends each malformed request on a fresh connection:
truncated and oversized messages, unknown codes, the reply bit on a request,
bad ring indices on every vring message, bad ring sizes, bad memory tables
(0 or 9 regions, overflowing offsets and addresses, fds missing, extra or
beyond the per-message limit), vring addresses outside memory or misaligned,
an overflowing SET_LOG_BASE. After each case:

* hostile_frontend saw vhostd close the connection, and saw every fd it sent
  closed by vhostd (a pipe's write end: its read end gets EOF);
* vhostd logged the error naming the request and the field;
* vhostd's open fds (/proc/PID/fd) are back to what they were before;
* vhostd still runs and serves a good session on the same socket: full
  handshake, rings started, a frame sent on ring 1 comes back on ring 0.

Finally vhostd exits 0 on SIGTERM. docs/security.md maps the cases to the bug
classes they cover.
"""

import re

import hostilelib
from hostilelib import check, harness, log

harness.TEST_DEADLINE_S = 280


def run(env):
    sock = env.path("p0.sock")
    vhostd = hostilelib.start_vhostd(env, env.vhostd_config(socket=sock), sockets=[sock],
                                     timeout=290)
    hostilelib.run_client(env, sock, "--case", "good")
    idle = hostilelib.settled_fds(vhostd)
    log(f"vhostd has {idle} fds open between connections")
    listing = hostilelib.run_client(env, sock, "--list")
    cases = [line.split("\t", 1) for line in listing.splitlines() if "\t" in line]
    check(len(cases) >= 40, f"only {len(cases)} protocol cases listed")
    for name, fragment in cases:
        since = vhostd.mark()
        hostilelib.run_client(env, sock, "--case", name)
        hostilelib.wait_fds(vhostd, idle, f"case {name}")
        # The log reaches us through a pipe: wait for it.
        m = vhostd.expect(r"[^\n]*" + re.escape(fragment) + r"[^\n]*", 10, since=since,
                          what=f"'{fragment}' (case {name})")
        log(f"case {name}: {m.group(0).strip()[-150:]}")
        out = vhostd.output(since)
        check(not re.search(r"Sanitizer|runtime error", out), f"case {name}: sanitizer report")
        hostilelib.run_client(env, sock, "--case", "good")
        hostilelib.wait_fds(vhostd, idle, f"good session after {name}")
    log(f"{len(cases)} hostile cases, each followed by a good session")
    hostilelib.stop_vhostd(vhostd, [sock])


if __name__ == "__main__":
    harness.main(run, extra_args=hostilelib.add_args, backends=("vhostd",))
