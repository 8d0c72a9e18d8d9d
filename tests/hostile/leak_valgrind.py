#!/usr/bin/env python3
"""vhostd under valgrind (memcheck) for a whole control-plane life: start, a
testpmd virtio-user peer connects (full handshake, rings started and polled by
the PMD) and leaves, 120 connect/handshake/disconnect cycles (churn-connect
with --count 20, after its 100 warm-up cycles) and hostile
requests from hostile_frontend (extra fds, overflowing memory tables, ring
addresses outside memory, a bad ring index, an oversized header), SIGTERM.

Failures: any definite leak or invalid memory access (valgrind's summary is
checked, and --error-exitcode makes vhostd exit 99). The configuration has no
DPDK port, so vhostd never starts EAL. Undefined-value checks are off: the
kernel fills vhostd's receive buffers through io_uring, which valgrind cannot
see, so every message read would be reported as uninitialised.

Traffic is not part of it: under valgrind 3.19 the frames vhostd writes into
a peer's shared memory did not reliably become visible to the peer (vhostd
counted a frame delivered that the peer never saw), so a traffic check would
test valgrind. The data path's leaks and memory errors are covered by the
sanitized build (ASan + LeakSanitizer), which runs the traffic tests: a leak
at exit makes vhostd exit non-zero, and every test checks exit 0.
"""

import re
import shutil

import hostilelib
from hostilelib import check, harness, log

hostilelib.long_process_timeout(170)

import trafficlib  # noqa: E402

HOSTILE_CASES = ("mem-table-extra-fds", "mem-table-gpa-overflow", "vring-addr-outside-memory",
                 "ring-index-SET_VRING_KICK-0x2", "size-ffffffff", "log-base-beyond-file")


def run(env):
    valgrind = shutil.which("valgrind")
    check(valgrind, "valgrind not found (Debian package valgrind; tools/test installs it)")
    sock = env.path("p0.sock")
    vg_log = env.path("valgrind.txt")
    vhostd = hostilelib.start_vhostd(
        env, env.vhostd_config(socket=sock), sockets=[sock], timeout=160,
        argv_prefix=[valgrind, "--tool=memcheck", "--leak-check=full",
                     "--show-leak-kinds=definite", "--errors-for-leak-kinds=definite",
                     "--undef-value-errors=no", "--error-exitcode=99",
                     f"--log-file={vg_log}"])
    since = vhostd.mark()
    tp = trafficlib.TestpmdPorts(env, "testpmd", [f"net_virtio_user0,path={sock},queue_size=1024"],
                                 ["--forward-mode=io", "--port-topology=loop"])
    tp.wait_prompt(60)
    tp.wait_link_up(timeout=60)
    vhostd.expect(r"port p0: 2 ring\(s\) live", 60, since=since, what="both rings live")
    tp.quit(30)
    vhostd.expect(r"port p0: connection 1 closed", 30, since=since, what="testpmd's disconnect")
    hostilelib.run_client(env, sock, "--case", "churn-connect", "--pid", str(vhostd.pid),
                          "--count", "20", timeout=120)
    for case in HOSTILE_CASES:
        hostilelib.run_client(env, sock, "--case", case)
    log(f"testpmd, 120 hostile_frontend connections and {len(HOSTILE_CASES)} hostile cases "
        "under valgrind")
    hostilelib.stop_vhostd(vhostd, [sock])
    with open(vg_log) as f:
        report = f.read()
    summary = re.search(r"ERROR SUMMARY: (\d+) errors", report)
    check(summary, "no ERROR SUMMARY in valgrind's report")
    definite = re.search(r"definitely lost: ([\d,]+) bytes", report)
    log(f"valgrind: {summary.group(0)}; "
        f"{definite.group(0) if definite else 'all heap blocks freed'}")
    check(summary.group(1) == "0", f"valgrind found errors:\n{report[-4000:]}")
    check(not definite or definite.group(1) == "0", f"definite leaks:\n{report[-4000:]}")


if __name__ == "__main__":
    harness.main(run, extra_args=hostilelib.add_args, backends=("vhostd",))
