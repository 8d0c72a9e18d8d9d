"""systemd's notify protocol from the listening side, and config reloads
(standard library only).

* NotifyListener: the datagram socket systemd would give a Type=notify
  service in $NOTIFY_SOCKET — a file in the test folder, or a name in the
  abstract namespace ('@...'). A thread collects every datagram vhostd sends,
  parsed into {KEY: VALUE}, in order.
* reload(): rewrites the `ports:` (and `xconnect:`) lines of a
  trafficlib.Vhostd configuration, sends SIGHUP and waits for RELOADING=1
  and then READY=1, as systemd does for `systemctl reload`.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import socket
import threading
import time

from harness import check, log

_seq = itertools.count()


class NotifyListener:
    def __init__(self, env, *, abstract):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        n = next(_seq)
        if abstract:
            name = f"vhd-notify-{os.getpid()}-{n}"
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            self.address = env.path(f"notify{n}.sock")
            self.sock.bind(self.address)
        self.sock.settimeout(0.2)
        self.messages: list[dict] = []
        self.times: list[float] = []
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._read, name="notify", daemon=True)
        self._thread.start()
        log(f"notify socket {self.address}")

    def _read(self):
        while not self._stop:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            fields = {}
            for line in data.decode(errors="replace").split("\n"):
                if "=" in line:
                    k, v = line.split("=", 1)
                    fields[k] = v
            with self._cond:
                self.messages.append(fields)
                self.times.append(time.monotonic())
                self._cond.notify_all()

    def env(self, **extra):
        out = {"NOTIFY_SOCKET": self.address}
        out.update({k: str(v) for k, v in extra.items()})
        return out

    def count(self):
        with self._cond:
            return len(self.messages)

    def wait(self, predicate, timeout, since=0, what="a notification"):
        """Index of the first message at or after `since` for which
        predicate(message) holds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i in range(since, len(self.messages)):
                    if predicate(self.messages[i]):
                        return i
                left = deadline - time.monotonic()
                check(left > 0, f"no {what} from vhostd within {timeout:g} s; got "
                                f"{self.messages[since:][-10:]}")
                self._cond.wait(min(left, 0.5))

    def close(self):
        self._stop = True
        self._thread.join(2)
        self.sock.close()


def rewrite_config(vhostd, ports_yaml, xconnect=None, extra=None):
    """Replaces the port list (and the xconnect pairs) of vhostd's file;
    `extra` maps a top-level key to a replacement line."""
    with open(vhostd.config_path) as f:
        lines = f.read().splitlines()
    out = []
    skipping = False
    for line in lines:
        if skipping and line.startswith("  - "):
            continue
        skipping = False
        if line.startswith("xconnect:"):
            continue
        key = line.split(":", 1)[0]
        if extra and key in extra:
            out.append(extra[key])
            continue
        if line == "ports:":
            if xconnect:
                out.append("xconnect: [ " + ", ".join(f"[{a}, {b}]" for a, b in xconnect) + " ]")
            out.append("ports:")
            out.extend(f"  - {item}" for item in ports_yaml)
            skipping = True
            continue
        out.append(line)
    tmp = vhostd.config_path + ".new"
    with open(tmp, "w") as f:
        f.write("\n".join(out) + "\n")
    os.replace(tmp, vhostd.config_path)


def reload(vhostd, listener, timeout=20):
    """SIGHUP; waits for RELOADING=1, then READY=1. Returns vhostd's log
    output of the reload."""
    vhostd.check_alive()
    n = listener.count()
    since = vhostd.proc.mark()
    vhostd.proc.signal(signal.SIGHUP)
    i = listener.wait(lambda m: m.get("RELOADING") == "1", timeout, since=n, what="RELOADING=1")
    check("MONOTONIC_USEC" in listener.messages[i], "RELOADING=1 without MONOTONIC_USEC")
    listener.wait(lambda m: m.get("READY") == "1", timeout, since=i + 1,
                  what="READY=1 after RELOADING=1")
    vhostd.proc.expect(r"reload: .*(port\(s\) removed|running configuration is kept)", timeout,
                       since=since, what="the reload's summary line")
    return vhostd.proc.output(since)


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def bound_unix_sockets(path):
    """How many AF_UNIX sockets in the system are bound to `path` (even if
    the file is gone): one a leaked listener would still show."""
    with open("/proc/net/unix") as f:
        return sum(1 for line in f if line.rstrip("\n").endswith(" " + path))


STATUS_RE = re.compile(r"(\d+) port\(s\): (\d+) vhost-user \((\d+) connected\), (\d+) dpdk; (\d+) PMD")
