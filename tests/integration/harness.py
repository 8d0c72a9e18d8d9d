"""Integration-test harness for vhostd (Python 3 standard library only).

A test script builds an Env, starts a back-end (vhostd, or DPDK's own vhost PMD
in testpmd as a stand-in) and front-ends (dpdk-testpmd with a virtio-user
port), and checks what they do. Every process runs in its own session and
process group, under a hard timeout, and is killed with its whole group when
the test ends, however it ends. On failure the logs of every process are
printed.

A test also fails, after it has run, when any of its processes printed a
sanitizer report (a build with ASan/UBSan: tools/test's build-san) or when a
vhostd it started exited with a non-zero status that the test did not
expect itself (Process.wait_exit).

Usage from a test script:

    import harness

    def run(env):
        be = env.backend(mode="server")
        fe = env.testpmd_frontend(be.socket)
        fe.wait_link_up()
        ...

    if __name__ == "__main__":
        harness.main(run)

Command line of every test script (meson passes --vhostd and --testpmd):

    --vhostd PATH         the vhostd binary (back-end "vhostd", the default)
    --testpmd PATH        dpdk-testpmd (default: found on PATH)
    --backend NAME        vhostd | testpmd-vhost
    --keep                keep the temporary folder
"""

from __future__ import annotations

import argparse
import atexit
import ctypes
import itertools
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import traceback

# Hard limit for one whole test; meson's own timeout is 120 s and must not be
# reached first, or nothing would print the logs.
TEST_DEADLINE_S = 105
# Hard limit for any single process we start.
PROCESS_TIMEOUT_S = 100
# DPDK memory for each process; no hugepages anywhere.
EAL_COMMON = ["--no-huge", "--no-pci"]
TESTPMD_MEM_MB = "1024"
VHOSTD_MEM_MB = "512"

BACKENDS = ("vhostd", "testpmd-vhost")

# The first line of every AddressSanitizer, LeakSanitizer and
# UndefinedBehaviorSanitizer report.
SANITIZER_REPORT = re.compile(r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:")


def sanitizer_reports(text):
    """The lines of `text` that start a sanitizer report."""
    return [line for line in text.splitlines() if SANITIZER_REPORT.search(line)]


class TestFailure(Exception):
    """A check failed; the message says which and why."""


def check(cond, message):
    if not cond:
        raise TestFailure(message)


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --------------------------------------------------------------------------
# Processes

_PR_SET_PDEATHSIG = 1
try:
    _libc = ctypes.CDLL("libc.so.6", use_errno=True)
except OSError:  # pragma: no cover - glibc is always there on Debian
    _libc = None


def _child_setup():
    # Runs in the child between fork and exec: if the harness dies (even by
    # SIGKILL from meson), the kernel kills the child too.
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


_live_processes: list["Process"] = []


class Process:
    """A child process in its own process group, with its output captured.

    Output (stdout and stderr together) is appended to `log_path` as it comes
    and kept in memory for expect(). A watchdog kills the whole group after
    `timeout` seconds, whatever the test is doing.
    """

    def __init__(self, name, argv, log_path, *, stdin=False, timeout=PROCESS_TIMEOUT_S,
                 env=None, cwd=None):
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.timed_out = False
        self.exit_checked = False  # wait_exit() checked the exit status
        self._buf = bytearray()
        self._cond = threading.Condition()
        self._eof = False
        self._log = open(log_path, "wb")
        self._log.write(("$ " + " ".join(self.argv) + "\n").encode())
        self._log.flush()
        log(f"start {name}: {' '.join(self.argv)}")
        self.popen = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_child_setup,
            env=env,
            cwd=cwd,
        )
        self.pid = self.popen.pid
        _live_processes.append(self)
        self._reader = threading.Thread(target=self._read_loop, name=f"read-{name}",
                                        daemon=True)
        self._reader.start()
        self._watchdog = threading.Timer(timeout, self._expire)
        self._watchdog.daemon = True
        self._watchdog.start()

    # -- output ------------------------------------------------------------

    def _read_loop(self):
        fd = self.popen.stdout.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            with self._cond:
                self._buf += chunk
                self._cond.notify_all()
            try:
                self._log.write(chunk)
                self._log.flush()
            except ValueError:  # closed during cleanup
                pass
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def output(self, start=0) -> str:
        with self._cond:
            return self._buf[start:].decode(errors="replace")

    def mark(self) -> int:
        """An offset into the output; expect(..., since=mark) looks only after it."""
        with self._cond:
            return len(self._buf)

    def expect(self, pattern, timeout, since=0, what=None):
        """Waits until `pattern` (a regex) appears in the output after `since`.

        Returns the match. Raises TestFailure on timeout or if the process
        ends (closes its output) without printing it.
        """
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                m = rx.search(self._buf[since:].decode(errors="replace"))
                if m:
                    return m
                left = deadline - time.monotonic()
                if self._eof:
                    rc = self.popen.poll()
                    raise TestFailure(f"{self.name} exited (status {rc}) before printing "
                                      f"{what or repr(pattern)}")
                if left <= 0:
                    raise TestFailure(f"{self.name}: no {what or repr(pattern)} "
                                      f"within {timeout:g} s")
                self._cond.wait(min(left, 0.5))

    def send(self, line):
        log(f"{self.name} <- {line}")
        try:
            self.popen.stdin.write((line + "\n").encode())
            self.popen.stdin.flush()
        except (BrokenPipeError, ValueError) as exc:
            raise TestFailure(f"{self.name}: cannot send {line!r}: process gone ({exc})")

    # -- life --------------------------------------------------------------

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig):
        if self.alive():
            log(f"{self.name}: sending {signal.Signals(sig).name}")
            self.popen.send_signal(sig)

    def wait(self, timeout):
        """Waits for exit; returns the exit status or None on timeout."""
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def wait_exit(self, timeout, expect_rc=0, action="exit"):
        rc = self.wait(timeout)
        check(rc is not None, f"{self.name} did not {action} within {timeout:g} s")
        self._reader.join(5)
        check(rc == expect_rc, f"{self.name} exited with status {describe_status(rc)}, "
                               f"expected {expect_rc}")
        self.exit_checked = True
        log(f"{self.name} exited with status {rc}")
        return rc

    def _expire(self):
        if self.alive():
            self.timed_out = True
            sys.stderr.write(f"harness: {self.name} hit its hard timeout; killing its group\n")
            self.kill_group()

    def kill_group(self, grace=3.0):
        """SIGTERM to the whole process group, then SIGKILL after `grace` s."""
        for sig, wait_s in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.pid, sig)
            except (ProcessLookupError, PermissionError):
                break
            if self.wait(wait_s) is not None and not _group_exists(self.pid):
                break

    def close(self):
        """Ends the process group (if still running) and releases everything."""
        self._watchdog.cancel()
        if self.alive() or _group_exists(self.pid):
            self.kill_group()
        self.wait(1)
        if self.popen.stdin:
            try:
                self.popen.stdin.close()
            except OSError:
                pass
        self._reader.join(5)
        try:
            self.popen.stdout.close()
        except OSError:
            pass
        self._log.close()
        if self in _live_processes:
            _live_processes.remove(self)


def _group_exists(pgid) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def describe_status(rc):
    if rc is None:
        return "none (still running)"
    if rc < 0:
        try:
            return f"{rc} (killed by {signal.Signals(-rc).name})"
        except ValueError:
            return str(rc)
    return str(rc)


@atexit.register
def _kill_leftovers():
    for proc in list(_live_processes):
        try:
            proc.close()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


def wait_for(predicate, timeout, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def is_socket(path) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except FileNotFoundError:
        return False


# --------------------------------------------------------------------------
# testpmd

class Testpmd(Process):
    """dpdk-testpmd in interactive mode, driven over stdin.

    Its stdout is a pipe, so it runs under `stdbuf -oL` to get each line as
    soon as it is printed; the prompt itself is written unbuffered.
    """

    PROMPT = r"testpmd> "

    def __init__(self, env, name, vdev, lcores, stdin=True):
        self.file_prefix = env.dpdk_prefix(name)
        argv = ["stdbuf", "-oL", "-eL", env.testpmd,
                "--lcores", lcores, *EAL_COMMON, "-m", TESTPMD_MEM_MB,
                "--file-prefix", self.file_prefix, "--vdev", vdev,
                "--", "-i", "--no-mlockall"]
        super().__init__(name, argv, env.path(f"{name}.log"), stdin=stdin)
        env.register(self)

    def wait_prompt(self, timeout=30):
        self.expect(self.PROMPT, timeout, what="the testpmd> prompt")

    def command(self, cmd, until, timeout=5):
        """Sends `cmd` and waits for `until` (regex) in what follows."""
        since = self.mark()
        self.send(cmd)
        return self.expect(until, timeout, since=since, what=f"{until!r} after {cmd!r}")

    def link_status(self, port=0):
        m = self.command(f"show port info {port}", r"Link status: (\w+)")
        return m.group(1)

    def wait_link_up(self, port=0, timeout=20):
        """Asks `show port info` until the link is up, for up to `timeout` s."""
        deadline = time.monotonic() + timeout
        status = None
        while time.monotonic() < deadline:
            status = self.link_status(port)
            if status == "up":
                log(f"{self.name}: port {port} link up")
                return
            time.sleep(0.5)
        raise TestFailure(f"{self.name}: port {port} link still {status!r} after {timeout:g} s")

    def quit(self, timeout=15):
        """`quit`, then expects a clean exit with status 0."""
        self.send("quit")
        self.wait_exit(timeout, expect_rc=0, action="quit")


# --------------------------------------------------------------------------
# back-ends

class VhostdBackend:
    """vhostd itself, configured with one vhost-user port `p0` reflected to itself."""

    kind = "vhostd"

    def __init__(self, env, mode, socket):
        self.env = env
        self.mode = mode
        self.socket = socket
        self.config_path = env.path("vhostd.yaml")
        env.write(self.config_path, env.vhostd_config(port_mode=mode, socket=socket))
        self.proc = Process("vhostd", [env.vhostd, "--config", self.config_path,
                                       "--log-level", "debug"],
                            env.path("vhostd.log"))
        env.register(self.proc)
        if mode == "server":
            self.wait_socket()
        else:
            # Nothing to see from outside yet; it must simply stay up while it
            # retries to connect.
            time.sleep(1.0)
            check(self.proc.alive(), f"vhostd exited at start-up with status "
                                     f"{describe_status(self.proc.popen.poll())}")

    def wait_socket(self, timeout=15):
        ok = wait_for(lambda: is_socket(self.socket) or not self.proc.alive(), timeout)
        check(self.proc.alive(), f"vhostd exited at start-up with status "
                                 f"{describe_status(self.proc.popen.poll())}")
        check(ok, f"vhostd did not create {self.socket} within {timeout} s")
        log(f"vhostd listens on {self.socket}")

    def check_alive(self):
        check(self.proc.alive(), f"vhostd died (status {describe_status(self.proc.popen.poll())})")

    def stop(self):
        """SIGTERM; vhostd must exit 0 within 10 s and remove its socket file."""
        self.check_alive()
        self.proc.signal(signal.SIGTERM)
        self.proc.wait_exit(10, expect_rc=0, action="exit after SIGTERM")
        if self.mode == "server":
            check(not os.path.exists(self.socket),
                  f"vhostd left its socket file {self.socket} behind")


class TestpmdVhostBackend:
    """Stand-in back-end: DPDK's vhost PMD (net_vhost) inside testpmd, on CPU 1.

    It lets the tests run, and the harness be proven, without vhostd.
    """

    kind = "testpmd-vhost"

    def __init__(self, env, mode, socket):
        self.env = env
        self.mode = mode
        self.socket = socket
        client = 1 if mode == "client" else 0
        self.proc = Testpmd(env, "backend", f"net_vhost0,iface={socket},client={client}",
                            lcores="0@1,1@1")
        self.proc.wait_prompt()
        if mode == "server":
            ok = wait_for(lambda: is_socket(socket), 15)
            check(ok, f"testpmd (net_vhost) did not create {socket}")

    def check_alive(self):
        check(self.proc.alive(), "the testpmd back-end died")

    def stop(self):
        self.check_alive()
        self.proc.quit()
        if self.mode == "server":
            check(not os.path.exists(self.socket),
                  f"the testpmd back-end left its socket file {self.socket} behind")


# --------------------------------------------------------------------------
# the test environment

def _dpdk_runtime_dir():
    if os.geteuid() == 0:
        return "/var/run/dpdk"
    return os.path.join(os.environ.get("XDG_RUNTIME_DIR", "/tmp"), "dpdk")


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def sweep_stale():
    """Removes what an earlier harness killed by SIGKILL could not clean up.

    Only our own names: DPDK runtime folders `vhd-ROLE-PID-N` and test folders
    /tmp/vhd* holding a `harness.pid`, whose harness PID is gone.
    """
    runtime = _dpdk_runtime_dir()
    try:
        names = os.listdir(runtime)
    except OSError:
        names = []
    for name in names:
        m = re.fullmatch(r"vhd-[a-z0-9]+-(\d+)-\d+", name)
        if m and not _pid_alive(int(m.group(1))):
            shutil.rmtree(os.path.join(runtime, name), ignore_errors=True)
    for name in os.listdir("/tmp"):
        if not name.startswith("vhd"):
            continue
        pidfile = os.path.join("/tmp", name, "harness.pid")
        try:
            with open(pidfile) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            continue
        if not _pid_alive(pid):
            shutil.rmtree(os.path.join("/tmp", name), ignore_errors=True)


class Env:
    def __init__(self, args):
        self.args = args
        self.vhostd = args.vhostd
        self.testpmd_path = args.testpmd
        self.backend_kind = args.backend
        # Short: AF_UNIX paths must fit in 107 bytes.
        sweep_stale()
        self.tmpdir = tempfile.mkdtemp(prefix="vhd", dir="/tmp")
        with open(os.path.join(self.tmpdir, "harness.pid"), "w") as f:
            f.write(f"{os.getpid()}\n")
        self.uid = f"{os.getpid()}"
        self._seq = itertools.count()
        self._procs: list[Process] = []
        self._prefixes: list[str] = []
        self._files: list[str] = []
        log(f"test folder {self.tmpdir}, back-end {self.backend_kind}")

    # -- files -------------------------------------------------------------

    def path(self, name):
        return os.path.join(self.tmpdir, name)

    def write(self, path, text):
        with open(path, "w") as f:
            f.write(text)
        self._files.append(path)
        return path

    def dpdk_prefix(self, role):
        prefix = f"vhd-{role}-{self.uid}-{next(self._seq)}"
        self._prefixes.append(prefix)
        return prefix

    def register(self, proc):
        self._procs.append(proc)
        return proc

    # -- programs ----------------------------------------------------------

    @property
    def testpmd(self):
        path = self.testpmd_path or shutil.which("dpdk-testpmd") or "/usr/bin/dpdk-testpmd"
        if not os.access(path, os.X_OK):
            raise TestFailure("dpdk-testpmd not found: the Debian package 'dpdk' is missing "
                              "(tools/test installs it)")
        return path

    def require_vhostd(self):
        if not self.vhostd or not os.access(self.vhostd, os.X_OK):
            raise TestFailure(f"vhostd binary not found or not executable: {self.vhostd!r}")
        return self.vhostd

    def vhostd_config(self, *, port_mode="server", socket=None, queues=1):
        socket = socket or self.path("p0.sock")
        prefix = self.dpdk_prefix("vhostd")
        return (
            f'dpdk: {{ eal_args: ["--no-huge", "-m", "{VHOSTD_MEM_MB}", "--no-pci", '
            f'"--file-prefix", "{prefix}"] }}\n'
            "dataplane: { pmd_cores: [1], burst: 32, "
            "idle: { mode: adaptive, poll_us: 200, max_sleep_us: 1000 } }\n"
            "switch: { mode: xconnect }\n"
            "xconnect: [ [p0, p0] ]\n"
            "ports:\n"
            f"  - {{ name: p0, type: vhost-user, path: {socket}, mode: {port_mode}, "
            f"queues: {queues} }}\n"
            f"control: {{ socket: {self.path('ctl.sock')} }}\n"
            "log: { level: debug }\n"
        )

    def backend(self, mode, socket=None):
        """Starts the back-end under test with one port whose socket is `socket`.

        mode "server": the back-end listens (returns once the socket exists);
        mode "client": the back-end connects to a socket a front-end creates,
        retrying until it appears.
        """
        socket = socket or self.path("p0.sock")
        if self.backend_kind == "vhostd":
            self.require_vhostd()
            return VhostdBackend(self, mode, socket)
        return TestpmdVhostBackend(self, mode, socket)

    def testpmd_frontend(self, socket, *, server=False, name=None, queue_size=1024):
        """testpmd with a virtio-user port on `socket`, on CPU 0.

        server=True: testpmd creates the socket and waits for the back-end to
        connect (it blocks before its prompt until then).
        """
        name = name or f"testpmd{next(self._seq)}"
        vdev = f"net_virtio_user0,path={socket},queue_size={queue_size}"
        if server:
            vdev += ",server=1"
        return Testpmd(self, name, vdev, lcores="0@0,1@0")

    # -- end ---------------------------------------------------------------

    def dump_logs(self, stream=sys.stderr, lines=150):
        for proc in self._procs:
            stream.write(f"\n===== {proc.name} (pid {proc.pid}, status "
                         f"{describe_status(proc.popen.poll())}"
                         f"{', hit hard timeout' if proc.timed_out else ''}): "
                         f"last {lines} lines of {proc.log_path} =====\n")
            try:
                with open(proc.log_path, errors="replace") as f:
                    text = f.read().splitlines()
            except OSError as exc:
                text = [f"<cannot read: {exc}>"]
            stream.write("\n".join(text[-lines:]) + "\n")
        for path in self._files:
            stream.write(f"\n===== {path} =====\n")
            try:
                with open(path) as f:
                    stream.write(f.read())
            except OSError as exc:
                stream.write(f"<cannot read: {exc}>\n")
        stream.flush()

    def check_processes(self):
        """After the processes ended: no sanitizer report from any of them, and
        every vhostd exited 0 unless the test checked its status itself."""
        problems = []
        for proc in self._procs:
            reports = sanitizer_reports(proc.output())
            if reports:
                problems.append(f"{proc.name} (pid {proc.pid}) printed a sanitizer report: "
                                f"{reports[0].strip()}")
            is_vhostd = bool(self.vhostd) and proc.argv[0] == self.vhostd
            rc = proc.popen.poll()
            if is_vhostd and not proc.exit_checked and rc != 0:
                problems.append(f"{proc.name} (pid {proc.pid}) exited with status "
                                f"{describe_status(rc)}")
        if problems:
            raise TestFailure("; ".join(problems))

    def stop_processes(self):
        """Ends every process still running (whole groups), newest first."""
        for proc in reversed(self._procs):
            proc.close()

    def cleanup(self):
        self.stop_processes()
        runtime = _dpdk_runtime_dir()
        for prefix in self._prefixes:
            shutil.rmtree(os.path.join(runtime, prefix), ignore_errors=True)
        if self.args.keep:
            log(f"kept {self.tmpdir}")
        else:
            shutil.rmtree(self.tmpdir, ignore_errors=True)


# --------------------------------------------------------------------------
# entry point

def parse_args(argv=None, extra=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vhostd", default=os.environ.get("VHOSTD", ""),
                   help="path of the vhostd binary")
    p.add_argument("--testpmd", default="", help="path of dpdk-testpmd")
    p.add_argument("--backend", choices=BACKENDS, default="vhostd",
                   help="back-end under test (testpmd-vhost: DPDK's vhost PMD as a stand-in)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    if extra:
        extra(p)
    return p.parse_args(argv)


class _Deadline(BaseException):
    pass


def main(test, name=None, extra_args=None, backends=BACKENDS):
    """Runs `test(env)` with full clean-up; exits 0 on success, 1 on failure."""
    args = parse_args(extra=extra_args)
    name = name or os.path.splitext(os.path.basename(sys.argv[0]))[0]

    def on_signal(signum, _frame):
        raise SystemExit(f"{name}: interrupted by {signal.Signals(signum).name}")

    def on_alarm(_signum, _frame):
        raise _Deadline()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    signal.signal(signal.SIGALRM, on_alarm)

    if args.backend not in backends:
        print(f"FAIL {name}: this test has no meaning for back-end {args.backend}")
        sys.exit(1)

    env = Env(args)
    ok = False
    start = time.monotonic()
    try:
        signal.alarm(TEST_DEADLINE_S)
        test(env)
        ok = True
    except TestFailure as exc:
        print(f"FAIL {name}: {exc}", flush=True)
    except _Deadline:
        print(f"FAIL {name}: the whole test took more than {TEST_DEADLINE_S} s", flush=True)
        traceback.print_exc()
    except SystemExit as exc:
        print(f"FAIL {name}: {exc}", flush=True)
    except Exception:  # noqa: BLE001 - a harness bug is a failure too
        print(f"FAIL {name}: unexpected error", flush=True)
        traceback.print_exc()
    finally:
        signal.alarm(0)
        try:
            env.stop_processes()
            if ok:
                try:
                    env.check_processes()
                except TestFailure as exc:
                    ok = False
                    print(f"FAIL {name}: {exc}", flush=True)
            if not ok:
                env.dump_logs()
        finally:
            env.cleanup()
    elapsed = time.monotonic() - start
    if ok:
        print(f"PASS {name} (back-end {args.backend}, {elapsed:.1f} s)", flush=True)
        sys.exit(0)
    sys.exit(1)
