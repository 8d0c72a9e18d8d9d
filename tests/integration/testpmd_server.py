#!/usr/bin/env python3
"""The back-end listens (port mode: server); testpmd's virtio-user connects.

Checks: the link comes up in testpmd, testpmd quits cleanly, and the back-end
then exits 0 on SIGTERM within 10 s and removes the socket file it created.
"""

import harness


def run(env):
    backend = env.backend(mode="server")
    fe = env.testpmd_frontend(backend.socket)
    fe.wait_prompt()
    fe.wait_link_up(timeout=20)
    fe.quit()
    backend.check_alive()
    backend.stop()


if __name__ == "__main__":
    harness.main(run)
