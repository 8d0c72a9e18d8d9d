#!/usr/bin/env python3
"""`vhostd --check-config FILE`: 0 for a valid file; 1 and FILE:LINE: for a bad one."""

import os
import subprocess

import harness

# A valid file, with the port written out in block style so that `queues`
# sits on line 7 (the bad file below changes only that value).
GOOD = """\
dpdk: {{ eal_args: ["--no-huge", "-m", "512", "--no-pci", "--file-prefix", "vhd-cc"] }}
dataplane: {{ pmd_cores: [1], burst: 32, idle: {{ mode: adaptive, poll_us: 200, max_sleep_us: 1000 }} }}
switch: {{ mode: xconnect }}
xconnect: [ [p0, p0] ]
ports:
  - name: p0
    queues: {queues}
    type: vhost-user
    path: {sock}
    mode: server
control: {{ socket: {ctl} }}
log: {{ level: debug }}
"""


def check_config(env, path):
    vhostd = env.require_vhostd()
    harness.log(f"$ {vhostd} --check-config {path}")
    r = subprocess.run([vhostd, "--check-config", path], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=30)
    harness.log(f"exit {r.returncode}; stdout: {r.stdout.strip()!r}; stderr: {r.stderr.strip()!r}")
    return r


def run(env):
    fields = dict(sock=env.path("p0.sock"), ctl=env.path("ctl.sock"))
    good = env.write(env.path("good.yaml"), GOOD.format(queues=1, **fields))
    bad = env.write(env.path("bad.yaml"), GOOD.format(queues=0, **fields))
    with open(bad) as f:
        line7 = f.read().splitlines()[6]
    assert line7.strip() == "queues: 0", line7

    r = check_config(env, good)
    harness.check(r.returncode == 0,
                  f"--check-config on a valid file exited {r.returncode}, expected 0 "
                  f"(stderr: {r.stderr.strip()})")

    r = check_config(env, bad)
    harness.check(r.returncode == 1,
                  f"--check-config with queues: 0 exited {r.returncode}, expected 1")
    harness.check(f"{bad}:7:" in r.stderr,
                  f"stderr does not name {bad}:7: (got: {r.stderr.strip()!r})")

    missing = env.path("missing.yaml")
    r = check_config(env, missing)
    harness.check(r.returncode != 0, "--check-config on a missing file exited 0")
    harness.check(missing in r.stderr,
                  f"stderr does not name the missing file (got: {r.stderr.strip()!r})")

    # Checking a file must not start anything.
    harness.check(not os.path.exists(fields["sock"]), "--check-config created a socket")


if __name__ == "__main__":
    harness.main(run, backends=("vhostd",))
