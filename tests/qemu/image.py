#!/usr/bin/env python3
"""Builds the guest image (tools/guest/build-image) and boots it once, without a NIC.

Runs first in the suite (meson priority), so the one-time kernel download is
not charged to the network tests' timeouts, and a broken image or QEMU shows
here rather than as five network failures. The guest must print
"VHOSTD-TEST PASS" (vtest.cmd=none) and power off.
"""

import time

import qemu_harness as qh


def run(env, image):
    serial = env.path("boot.serial")
    open(serial, "w").close()
    env._files.append(serial)
    qemu = qh.require_program(qh.QEMU, "qemu-system-x86")
    argv = [qemu, "-name", "boot", "-accel", "tcg", "-cpu", "max", "-m", str(qh.GUEST_MEM_MB),
            "-smp", "1", "-nodefaults", "-nographic", "-no-reboot", "-monitor", "none",
            "-serial", f"file:{serial}", "-kernel", image["KERNEL"], "-initrd", image["INITRD"],
            "-append", f"{qh.KERNEL_ARGS} vtest.cmd=none vtest.timeout=60"]
    t0 = time.monotonic()
    proc = qh.harness.Process("boot", argv, env.path("boot.log"), timeout=90)
    env.register(proc)
    rc = proc.wait(90)
    qh.check(rc is not None, "the guest did not power off within 90 s")
    with open(serial, errors="replace") as f:
        console = f.read()
    qh.check(rc == 0, f"QEMU exited with status {qh.describe_status(rc)}")
    qh.check("VHOSTD-TEST PASS" in console, f"no VHOSTD-TEST PASS on the console: {console[-300:]!r}")
    qh.log(f"boot to poweroff: {time.monotonic() - t0:.1f} s "
           f"({image.get('KERNEL_KIND')}, modules: {image.get('MODULES')})")


if __name__ == "__main__":
    # The first build downloads the kernel package (meson timeout: 660 s).
    qh.main(run, deadline=qh.IMAGE_TIMEOUT_S + 40)
