"""QEMU end-to-end tests for vhostd: shared helpers (Python 3 standard library only).

Builds on tests/integration/harness.py (processes in their own groups with hard
timeouts, a temporary folder, logs printed on failure) and adds:

  * the guest image (tools/guest/build-image: a Debian cloud kernel and a busybox
    initramfs whose /init runs one test command and prints VHOSTD-TEST PASS/FAIL);
  * vhostd started from a config text, stopped with SIGTERM, restarted;
  * QEMU guests (TCG) with a vhost-user virtio-net NIC and the serial console in
    a file, which the test reads as it grows.

Every test script calls qemu_harness.main(run); meson passes --vhostd,
--build-image and --image-dir. By hand:

    python3 tests/qemu/l2_ping.py --vhostd build/daemon/vhostd
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness  # noqa: E402  (tests/integration/harness.py)
from harness import TestFailure, check, log, wait_for, is_socket, describe_status  # noqa: E402,F401

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

# One whole test, including the guest image check; meson's timeout (180 s in
# tests/qemu/meson.build) must not be reached first, or nothing prints the logs.
TEST_DEADLINE_S = 160
# Any single process (vhostd, QEMU).
PROCESS_TIMEOUT_S = 150
# Building the image the first time downloads a 27 MB kernel package.
IMAGE_TIMEOUT_S = 600

GUEST_MEM_MB = 128
VHOSTD_MEM_MB = "256"
QEMU = "qemu-system-x86_64"
# Guests run on CPU 0, vhostd's PMD on CPU 1 (dataplane.pmd_cores).
GUEST_CPUS = os.environ.get("VHOSTD_QEMU_GUEST_CPUS", "0")
PMD_CORE = 1
# adaptive (default) or poll; see docs/qemu.md for the measurements.
IDLE_MODE = os.environ.get("VHOSTD_QEMU_IDLE", "adaptive")

RESULT_RX = r"VHOSTD-TEST (PASS|FAIL)([^\r\n]*)"
# Kernel messages that mean the guest saw more than lost packets.
GUEST_ERROR_RX = re.compile(
    r"(Kernel panic|Oops|\bBUG: |\bWARNING: |Call Trace|NETDEV WATCHDOG"
    r"|transmit queue \d+ timed out|virtio_net.*(?:[Ee]rror|timeout|bad|not a head))")
# Kernel parameters of every guest: a console on ttyS0, few messages, and no
# work that only costs time under TCG (the 8254 timer check, which also
# prints "MP-BIOS bug" when the host is loaded; CPU vulnerability mitigations).
KERNEL_ARGS = "console=ttyS0 quiet no_timer_check mitigations=off"


def mac(n):
    return f"52:54:00:12:34:{n:02x}"


# --------------------------------------------------------------------------
# guest image

def require_program(name, package):
    path = shutil.which(name)
    if not path:
        raise TestFailure(f"{name} not found: the Debian package '{package}' is missing "
                          "(tools/test installs it)")
    return path


def build_image(env):
    """Runs tools/guest/build-image (fast when cached); returns image.env as a dict.

    It runs as a harness.Process: its own process group, killed with all its
    children (apt-get, dpkg) on timeout or when the test ends.
    """
    args = env.args
    script = args.build_image or os.path.join(REPO, "tools", "guest", "build-image")
    image_dir = args.image_dir or os.path.join(REPO, "build", "guest")
    check(os.path.exists(script), f"{script} not found")
    t0 = time.monotonic()
    proc = harness.Process("build-image", ["bash", script, image_dir],
                           env.path("build-image.log"), timeout=IMAGE_TIMEOUT_S)
    try:
        rc = proc.wait(IMAGE_TIMEOUT_S + 10)
        proc._reader.join(5)
        output = proc.output().strip()
    finally:
        proc.close()
    if rc is None or proc.timed_out:
        raise TestFailure(f"tools/guest/build-image took more than {IMAGE_TIMEOUT_S} s")
    if rc != 0:
        tail = "\n".join(output.splitlines()[-15:])
        raise TestFailure(f"tools/guest/build-image failed (status {describe_status(rc)}):\n{tail}")
    image = {}
    try:
        with open(os.path.join(image_dir, "image.env")) as f:
            for line in f:
                k, sep, v = line.strip().partition("=")
                if sep:
                    image[k] = v.strip("'")
    except OSError as exc:
        raise TestFailure(f"build-image wrote no image.env: {exc}")
    for key in ("KERNEL", "INITRD"):
        check(os.path.isfile(image.get(key, "")), f"build-image gave no {key} file")
    log(f"guest image: {image.get('KERNEL_KIND')} of {image.get('KERNEL_PACKAGE')} "
        f"{image.get('KERNEL_VERSION')} ({time.monotonic() - t0:.1f} s)")
    return image


# --------------------------------------------------------------------------
# vhostd

def vhostd_config(env, ports, *, switch="l2", xconnect=None, idle=None):
    """Config text. `ports`: list of dicts with name/type/path/mode/devargs."""
    idle = idle or IDLE_MODE
    prefix = env.dpdk_prefix("vhostd")
    idle_text = ("{ mode: poll }" if idle == "poll"
                 else "{ mode: adaptive, poll_us: 200, max_sleep_us: 1000 }")
    lines = [
        f'dpdk: {{ eal_args: ["--no-huge", "-m", "{VHOSTD_MEM_MB}", "--no-pci", '
        f'"--file-prefix", "{prefix}"] }}',
        f"dataplane: {{ pmd_cores: [{PMD_CORE}], burst: 32, idle: {idle_text} }}",
        f"switch: {{ mode: {switch} }}",
    ]
    if xconnect:
        lines.append("xconnect: [ " + ", ".join(f"[{a}, {b}]" for a, b in xconnect) + " ]")
    lines.append("ports:")
    for p in ports:
        if p.get("type", "vhost-user") == "vhost-user":
            lines.append(f"  - {{ name: {p['name']}, type: vhost-user, path: {p['path']}, "
                         f"mode: {p.get('mode', 'server')}, queues: 1 }}")
        else:
            lines.append(f"  - {{ name: {p['name']}, type: dpdk, devargs: \"{p['devargs']}\" }}")
    lines.append(f"control: {{ socket: {env.path('ctl.sock')} }}")
    lines.append("log: { level: debug }")
    return "\n".join(lines) + "\n"


class Vhostd:
    """vhostd on one config file; start() may be called again after stop()."""

    def __init__(self, env, config_text, server_sockets=()):
        env.require_vhostd()
        self.env = env
        self.server_sockets = list(server_sockets)
        self.config_path = env.write(env.path("vhostd.yaml"), config_text)
        self.runs = 0
        self.proc = None
        self.start()

    def start(self):
        self.runs += 1
        name = "vhostd" if self.runs == 1 else f"vhostd-run{self.runs}"
        self.proc = harness.Process(name, [self.env.vhostd, "--config", self.config_path,
                                           "--log-level", "debug"],
                                    self.env.path(f"{name}.log"), timeout=PROCESS_TIMEOUT_S)
        self.env.register(self.proc)
        for sock in self.server_sockets:
            ok = wait_for(lambda: is_socket(sock) or not self.proc.alive(), 20)
            self.check_alive()
            check(ok, f"vhostd did not create {sock} within 20 s")
        if not self.server_sockets:
            time.sleep(0.5)
            self.check_alive()
        log(f"vhostd up (run {self.runs})")

    def check_alive(self):
        check(self.proc.alive(),
              f"{self.proc.name} died (status {describe_status(self.proc.popen.poll())})")

    def stop(self, timeout=15):
        """SIGTERM; vhostd must exit 0 and remove its server sockets."""
        self.check_alive()
        self.proc.signal(signal.SIGTERM)
        self.proc.wait_exit(timeout, expect_rc=0, action="exit after SIGTERM")
        for sock in self.server_sockets:
            check(not os.path.exists(sock), f"vhostd left its socket file {sock} behind")


# --------------------------------------------------------------------------
# guests

class Guest:
    """A QEMU guest (TCG) with one vhost-user virtio-net NIC.

    The serial console goes to a file (-serial file:), read as it grows.
    chardev "client": QEMU connects to `sock` (vhostd is the server), reconnect=1;
    chardev "server": QEMU creates `sock` (server=on,wait=off) and vhostd connects.
    """

    def __init__(self, env, image, name, sock, *, nic_mac, chardev="client", opts=None,
                 timeout=PROCESS_TIMEOUT_S):
        self.env = env
        self.name = name
        self.serial = env.path(f"{name}.serial")
        open(self.serial, "w").close()
        env._files.append(self.serial)  # printed with the logs on failure
        opts = dict(opts or {})
        opts.setdefault("timeout", str(int(timeout) - 10))
        append = KERNEL_ARGS + " " + " ".join(f"vtest.{k}={v}" for k, v in opts.items())
        if chardev == "client":
            chr_opts = f"socket,id=c0,path={sock},reconnect=1"
        else:
            chr_opts = f"socket,id=c0,path={sock},server=on,wait=off"
        self.argv = qemu_argv(image, name=name, chardev=chr_opts, nic_mac=nic_mac,
                              serial=self.serial, append=append)
        if GUEST_CPUS:
            self.argv = ["taskset", "-c", GUEST_CPUS] + self.argv
        self.proc = harness.Process(name, self.argv, env.path(f"{name}.log"), timeout=timeout)
        env.register(self.proc)

    # -- console -----------------------------------------------------------

    def console(self, start=0):
        try:
            with open(self.serial, "rb") as f:
                f.seek(start)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def mark(self):
        try:
            return os.path.getsize(self.serial)
        except OSError:
            return 0

    def expect(self, pattern, timeout, since=0, what=None):
        """Waits for `pattern` (regex) on the console after offset `since`."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            text = self.console(since)
            m = rx.search(text)
            if m:
                return m
            if not self.proc.alive():
                m = rx.search(self.console(since))
                if m:
                    return m
                raise TestFailure(f"{self.name}: QEMU exited (status "
                                  f"{describe_status(self.proc.popen.poll())}) before "
                                  f"{what or repr(pattern)}; console tail: "
                                  f"{self.console()[-300:]!r}")
            if time.monotonic() >= deadline:
                raise TestFailure(f"{self.name}: no {what or repr(pattern)} within "
                                  f"{timeout:g} s; console tail: {self.console()[-300:]!r}")
            time.sleep(0.1)

    def result(self, timeout):
        """Waits for the guest's PASS/FAIL line; raises on FAIL."""
        m = self.expect(RESULT_RX, timeout, what="a VHOSTD-TEST PASS/FAIL line")
        self.check_kernel()
        if m.group(1) != "PASS":
            raise TestFailure(f"{self.name}: guest says FAIL{m.group(2)}")
        log(f"{self.name}: guest says PASS")
        return m

    def check_kernel(self):
        for line in self.console().splitlines():
            if GUEST_ERROR_RX.search(line) and "VHOSTD-TEST" not in line:
                raise TestFailure(f"{self.name}: guest kernel reports: {line.strip()}")

    def wait_poweroff(self, timeout=30):
        rc = self.proc.wait(timeout)
        check(rc is not None, f"{self.name}: QEMU did not exit within {timeout} s of the result")
        check(rc == 0, f"{self.name}: QEMU exited with status {describe_status(rc)}")

    def stop(self):
        self.proc.close()


def qemu_argv(image, *, name, chardev, nic_mac, serial, append):
    """The QEMU command line of a test guest (docs/qemu.md quotes it)."""
    qemu = require_program(QEMU, "qemu-system-x86")
    return [
        qemu, "-name", name,
        "-accel", "tcg", "-cpu", "max", "-m", str(GUEST_MEM_MB), "-smp", "1",
        "-nodefaults", "-nographic", "-no-reboot", "-monitor", "none",
        "-object", f"memory-backend-memfd,id=mem,size={GUEST_MEM_MB}M,share=on",
        "-numa", "node,memdev=mem",
        "-chardev", chardev,
        "-netdev", "vhost-user,id=n0,chardev=c0",
        "-device", f"virtio-net-pci,netdev=n0,mac={nic_mac},vectors=0,romfile=",
        "-serial", f"file:{serial}",
        "-kernel", image["KERNEL"], "-initrd", image["INITRD"],
        "-append", append,
    ]


# --------------------------------------------------------------------------
# network namespaces (test 3)

class Netns:
    """A network namespace the test creates and always deletes."""

    def __init__(self, name):
        require_program("ip", "iproute2")
        self.name = name
        self.sweep_stale()
        subprocess.run(["ip", "netns", "delete", name], stderr=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL)
        self.run("ip", "netns", "add", name, host=True)
        self.deleted = False
        atexit.register(self.delete)   # in case the test's own clean-up is cut short
        log(f"created network namespace {name}")

    def run(self, *argv, host=False, timeout=30, check_rc=True):
        cmd = list(argv) if host else ["ip", "netns", "exec", self.name, *argv]
        try:
            res = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TestFailure(f"{' '.join(cmd)}: no exit within {timeout} s")
        if check_rc and res.returncode != 0:
            raise TestFailure(f"{' '.join(cmd)} failed ({res.returncode}): {res.stdout.strip()}")
        return res

    @staticmethod
    def sweep_stale():
        """Deletes namespaces vhd-PID left by a test that was killed (SIGKILL)."""
        res = subprocess.run(["ip", "netns", "list"], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
        for line in res.stdout.splitlines():
            m = re.match(r"vhd-(\d+)\b", line)
            if m and not harness._pid_alive(int(m.group(1))):
                subprocess.run(["ip", "netns", "delete", f"vhd-{m.group(1)}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def delete(self):
        if self.deleted:
            return
        self.deleted = True
        res = subprocess.run(["ip", "netns", "delete", self.name], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if res.returncode != 0:
            log(f"ip netns delete {self.name}: {res.stdout.strip()}")
        else:
            log(f"deleted network namespace {self.name}")


# --------------------------------------------------------------------------
# entry point

def _extra_args(p):
    p.add_argument("--build-image", default="", help="tools/guest/build-image")
    p.add_argument("--image-dir", default="", help="guest image cache (default build/guest)")


def main(test, deadline=TEST_DEADLINE_S):
    """Runs test(env, image) under harness.main with this suite's deadline."""
    harness.TEST_DEADLINE_S = deadline

    def run(env):
        require_program(QEMU, "qemu-system-x86")
        require_program("taskset", "util-linux")
        image = build_image(env)
        test(env, image)

    harness.main(run, extra_args=_extra_args, backends=("vhostd",))
