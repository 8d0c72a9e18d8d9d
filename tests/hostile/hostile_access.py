#!/usr/bin/env python3
"""Access control on vhost-user server sockets.

1. Default `socket` settings: the socket is created 0660 (owner root, root's
   group), so a process running as uid/gid 65534 (nobody) cannot connect
   (EACCES).
2. `socket: { mode: "0666", allowed_uids: [0] }`: the socket is 0666, so
   nobody can connect, but vhostd checks the peer's credentials
   (SO_PEERCRED) and closes the connection at once, logging the peer's pid
   and uid; root (in the list) then gets a good session (full handshake, a
   frame reflected).

The unprivileged peer is a forked child that drops to uid/gid 65534.
"""

import errno
import os
import socket
import stat
import struct

import hostilelib
from hostilelib import check, harness, log

NOBODY = 65534
GET_FEATURES = struct.pack("<III", 1, 1, 0)


def as_nobody(path):
    """In a child running as nobody: connect and send GET_FEATURES.

    Returns (pid, outcome) with outcome one of "eacces", "closed", "reply".
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        outcome = "error"
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(20)
            try:
                s.connect(path)
            except PermissionError:
                outcome = "eacces"
            else:
                try:
                    s.sendall(GET_FEATURES)
                    outcome = "reply" if s.recv(64) else "closed"
                except (ConnectionResetError, BrokenPipeError):
                    outcome = "closed"
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            outcome = f"error {exc!r}"
        finally:
            os.write(w, outcome.encode())
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        outcome = f.read()
    os.waitpid(pid, 0)
    return pid, outcome


def run(env):
    # The test folder is 0700 (mkdtemp): let others reach the socket, so that
    # only the socket's own mode and vhostd decide.
    os.chmod(env.tmpdir, 0o711)
    # 1. defaults
    sock = env.path("p0.sock")
    vhostd = hostilelib.start_vhostd(env, env.vhostd_config(socket=sock), sockets=[sock])
    st = os.stat(sock)
    check(stat.S_IMODE(st.st_mode) == 0o660, f"default socket mode {oct(st.st_mode)}, expected 0660")
    _pid, outcome = as_nobody(sock)
    check(outcome == "eacces", f"uid {NOBODY} connecting to a 0660 root socket: {outcome}")
    log(f"default: socket 0660, uid {NOBODY} gets EACCES")
    hostilelib.run_client(env, sock, "--case", "good")
    hostilelib.stop_vhostd(vhostd, [sock])

    # 2. allowed_uids
    sock = env.path("p1.sock")
    config = (env.vhostd_config(socket=sock) +
              'socket: { mode: "0666", allowed_uids: [0] }\n')
    vhostd = hostilelib.start_vhostd(env, config, name="vhostd-uids", sockets=[sock])
    st = os.stat(sock)
    check(stat.S_IMODE(st.st_mode) == 0o666, f"socket mode {oct(st.st_mode)}, expected 0666")
    since = vhostd.mark()
    pid, outcome = as_nobody(sock)
    check(outcome == "closed", f"uid {NOBODY} not in allowed_uids: {outcome}, expected the "
                               "connection closed without a reply")
    line = vhostd.expect(rf"refusing front-end pid {pid} uid {NOBODY}[^\n]*", 10, since=since,
                         what=f"the refusal naming pid {pid} and uid {NOBODY}")
    log(f"refused: {line.group(0)}")
    check("front-end connected" not in vhostd.output(since),
          "vhostd adopted the refused connection")
    hostilelib.run_client(env, sock, "--case", "good")
    log("uid 0 (allowed) gets a good session")
    hostilelib.stop_vhostd(vhostd, [sock])


if __name__ == "__main__":
    harness.main(run, extra_args=hostilelib.add_args, backends=("vhostd",))
