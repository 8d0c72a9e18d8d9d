#!/usr/bin/env python3
"""The back-end connects (port mode: client) to a socket testpmd creates.

The back-end starts first, while the socket does not exist yet, so it has to
retry until testpmd (virtio-user, server=1) creates it. Then testpmd quits and
a second testpmd takes the same path: the back-end must notice the front-end
went away, reconnect, and bring the link up again.
"""

import harness


def run(env):
    sock = env.path("p0.sock")
    backend = env.backend(mode="client", socket=sock)

    for round_no in (1, 2):
        harness.log(f"round {round_no}: testpmd creates {sock}")
        fe = env.testpmd_frontend(sock, server=True, name=f"testpmd{round_no}")
        # With server=1 testpmd waits for the back-end to connect before it
        # shows its prompt, so this also bounds the back-end's retry back-off.
        fe.wait_prompt(timeout=40)
        fe.wait_link_up(timeout=20)
        fe.quit()
        backend.check_alive()

    backend.stop()


if __name__ == "__main__":
    harness.main(run)
