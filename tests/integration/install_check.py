#!/usr/bin/env python3
"""`meson install` puts vhostd, its systemd unit and its configuration in place.

Installs the build into a temporary DESTDIR (`meson install --destdir
--no-rebuild`) and checks: the vhostd binary is there and runs; the unit is
in the unit folder, is Type=notify with the reload, watchdog, runtime folder
and memory-lock settings, and starts the installed binary with the installed
configuration; that configuration passes `vhostd --check-config`; and
`systemd-analyze verify` finds nothing to say about the unit (the binary path
pointed into DESTDIR, since verify checks that it is executable; no running
systemd is needed).
"""

import os
import re
import shutil
import subprocess

import harness
from harness import check, log


def add_args(p):
    p.add_argument("--meson", required=True)
    p.add_argument("--build-dir", required=True)
    p.add_argument("--prefix", required=True)
    p.add_argument("--bindir", required=True)
    p.add_argument("--sysconfdir", required=True)
    p.add_argument("--unitdir", required=True)


def sh(argv, **kw):
    log("$ " + " ".join(argv))
    res = subprocess.run(argv, capture_output=True, text=True, timeout=60, **kw)
    return res.returncode, res.stdout + res.stderr


def run(env):
    a = env.args
    dest = env.path("destdir")
    rc, out = sh([a.meson, "install", "-C", a.build_dir, "--no-rebuild", "--destdir", dest])
    check(rc == 0, f"meson install failed ({rc}):\n{out[-2000:]}")

    def staged(path):
        return os.path.join(dest, os.path.relpath(path, "/"))

    bindir = os.path.join(a.prefix, a.bindir)
    sysconfdir = os.path.join(a.prefix, a.sysconfdir)
    binary = os.path.join(bindir, "vhostd")
    config = os.path.join(sysconfdir, "vhostd", "vhostd.yaml")
    unit = os.path.join(a.unitdir, "vhostd.service")
    for path in (binary, config, unit):
        check(os.path.isfile(staged(path)), f"meson install did not install {path}")
    check(os.access(staged(binary), os.X_OK), f"{binary} is not executable")
    log(f"installed: {binary}, {config}, {unit}")

    rc, out = sh([staged(binary), "--version"])
    check(rc == 0 and out.startswith("vhostd "), f"installed vhostd --version: {rc} {out!r}")
    rc, out = sh([staged(binary), "--check-config", staged(config)])
    check(rc == 0, f"the installed configuration does not pass --check-config: {out}")

    with open(staged(unit)) as f:
        text = f.read()
    check("@" not in re.sub(r"(?m)^#.*$", "", text), "the unit still has @...@ placeholders")
    want = {
        "Type": "notify",
        "NotifyAccess": "main",
        "ExecStart": f"{binary} --config {config}",
        "ExecReload": "/bin/kill -HUP $MAINPID",
        "RuntimeDirectory": "vhostd",
        "LimitMEMLOCK": "infinity",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
    }
    settings = dict(re.findall(r"(?m)^(\w+)=(.*)$", text))
    for key, value in want.items():
        check(settings.get(key) == value, f"unit: {key}={settings.get(key)!r}, expected {value!r}")
    check(re.match(r"\d+s$", settings.get("WatchdogSec", "")), "unit: no WatchdogSec")
    caps = set(settings.get("CapabilityBoundingSet", "").split())
    check(caps == {"CAP_IPC_LOCK", "CAP_SYS_NICE", "CAP_NET_ADMIN", "CAP_CHOWN"},
          f"unit: CapabilityBoundingSet {sorted(caps)}")

    analyze = shutil.which("systemd-analyze")
    check(analyze, "systemd-analyze not found (Debian package systemd; tools/test installs it)")
    probe = env.path("vhostd.service")
    with open(probe, "w") as f:
        f.write(text.replace(f"ExecStart={binary} ", f"ExecStart={staged(binary)} "))
    rc, out = sh([analyze, "verify", probe])
    check(rc == 0 and not out.strip(), f"systemd-analyze verify ({rc}):\n{out}")
    log("systemd-analyze verify: clean")


if __name__ == "__main__":
    harness.main(run, extra_args=add_args, backends=("vhostd",))
