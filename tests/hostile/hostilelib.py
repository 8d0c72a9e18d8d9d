"""Shared by the hostile-input tests: vhostd with a given configuration and a
long watchdog, hostile_frontend runs, and the daemon's fd count from /proc.

The scripts live in tests/hostile/ and reuse tests/integration/harness.py and
trafficlib.py (imported from there).
"""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))

import harness  # noqa: E402
from harness import check, log  # noqa: E402,F401


def add_args(parser):
    parser.add_argument("--hostile-frontend", default="",
                        help="path of the hostile_frontend binary (tests/hostile)")
    parser.add_argument("--vhost-traffic", default="", help="unused here; trafficlib reads it")


def require_client(env):
    path = env.args.hostile_frontend
    if not path or not os.access(path, os.X_OK):
        raise harness.TestFailure(f"hostile_frontend not found or not executable: {path!r} "
                                  "(build it: ninja -C build tests/hostile/hostile_frontend)")
    return path


def start_vhostd(env, config_text, *, name="vhostd", sockets=(), timeout=100, argv_prefix=(),
                 log_level="debug"):
    """vhostd (optionally under a wrapper such as valgrind) with `config_text`;
    returns its harness.Process once every socket in `sockets` exists."""
    config = env.write(env.path(f"{name}.yaml"), config_text)
    proc = harness.Process(name, [*argv_prefix, env.require_vhostd(), "--config", config,
                                  "--log-level", log_level],
                           env.path(f"{name}.log"), timeout=timeout)
    env.register(proc)
    for sock in sockets:
        ok = harness.wait_for(lambda s=sock: harness.is_socket(s) or not proc.alive(), 60)
        check(proc.alive(), f"{name} died at start-up")
        check(ok, f"{name} did not create {sock}")
    return proc


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def settled_fds(proc, quiet=1.0, timeout=20):
    """vhostd's fd count once it has not changed for `quiet` seconds (after
    start-up, or after a connection closed)."""
    last, since = fd_count(proc.pid), time.monotonic()
    deadline = time.monotonic() + timeout
    while time.monotonic() - since < quiet:
        check(time.monotonic() < deadline, f"vhostd's fd count did not settle in {timeout} s")
        time.sleep(0.1)
        now = fd_count(proc.pid)
        if now != last:
            last, since = now, time.monotonic()
    return last


def wait_fds(proc, want, what, timeout=20):
    """Waits until the daemon has `want` fds open again (a connection fully released)."""
    ok = harness.wait_for(lambda: fd_count(proc.pid) == want or not proc.alive(), timeout)
    check(proc.alive(), f"vhostd died ({what})")
    check(ok, f"{what}: vhostd has {fd_count(proc.pid)} fds open, {want} before: "
              "something of the connection was not closed")


_runs = 0


def client(env, socket, *args, timeout=90, stdin=False):
    """Starts hostile_frontend --socket SOCKET ARGS...; returns the Process."""
    global _runs
    _runs += 1
    name = f"client{_runs}"
    argv = [require_client(env), "--socket", socket, *args]
    proc = harness.Process(name, argv, env.path(f"{name}.log"), stdin=stdin, timeout=timeout)
    env.register(proc)
    return proc


def run_client(env, socket, *args, timeout=90):
    """Runs hostile_frontend to the end; checks it exits 0; returns its output."""
    proc = client(env, socket, *args, timeout=timeout)
    rc = proc.wait(timeout + 5)
    harness.wait_for(lambda: not proc._reader.is_alive(), 5)
    out = proc.output()
    check(rc == 0, f"hostile_frontend {' '.join(args)} exited {harness.describe_status(rc)}: "
                   f"{out.strip().splitlines()[-1] if out.strip() else ''}")
    return out


def stop_vhostd(proc, sockets=()):
    """SIGTERM: vhostd must exit 0 and remove its sockets."""
    check(proc.alive(), "vhostd died")
    proc.signal(signal.SIGTERM)
    proc.wait_exit(60, expect_rc=0, action="exit after SIGTERM")
    for sock in sockets:
        check(not os.path.exists(sock), f"vhostd left its socket file {sock} behind")


def long_process_timeout(seconds):
    """Raises the watchdog of every process started from now on (harness
    default: 100 s) for tests that run longer, such as trafficlib.Vhostd in a
    test of several minutes. Process.__init__ takes `timeout` as a
    keyword-only argument, so its default lives in __kwdefaults__."""
    harness.Process.__init__.__kwdefaults__["timeout"] = seconds
    harness.TEST_DEADLINE_S = seconds - 10
