#pragma once
// Signal set-up shared by vhostd's DPDK test tools (vhost-traffic, vhost-ping):
// SIGINT/SIGTERM ask the run to end (the tool reports what it has), SIGALRM is
// the hard timeout the tool arms around blocking set-up and tear-down calls,
// and a closed pipe is an error return rather than a death.

#include <signal.h>

namespace vhostd::tools {

inline void install_signal_handlers(void (*on_interrupt)(int), void (*on_alarm)(int)) {
    struct sigaction sa {};
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    struct sigaction al {};
    al.sa_handler = on_alarm;
    sigemptyset(&al.sa_mask);
    sigaction(SIGALRM, &al, nullptr);
    ::signal(SIGPIPE, SIG_IGN);
}

} // namespace vhostd::tools
