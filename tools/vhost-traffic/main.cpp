// vhost-traffic: a vhost-user front-end for exact-count data-path tests.
//
// It drives one or two net_virtio_user ports (DPDK's own virtio driver, which
// speaks vhost-user to the back-end under test), sends exactly --count test
// frames with at most --window in flight, polls RX all the time and checks
// every frame that comes back: magic, length, sequence number, payload
// pattern, the port it arrived on. It exits 0 only if every frame came back
// intact exactly once.
//
// Modes:
//   reflect  one port; what port 0 sends must come back on port 0
//            (vhostd: xconnect [p, p]).
//   pair     two ports; even sequence numbers go 0 -> 1, odd ones 1 -> 0,
//            each addressed to the other port's MAC (vhostd: switch l2).
//   icmp     one port; IPv4 echo requests to --dst-ip, each must be answered
//            by an echo reply carrying the same payload (vhostd: xconnect to a
//            DPDK port whose far end is a kernel interface).
//
// Exit status: 0 pass; 1 traffic failed (loss, corruption, duplicates,
// misrouting, timeout, interrupted); 2 usage or set-up error.

#include <unistd.h>

#include "../common/signals.hpp"
#include "options.hpp"
#include "traffic.hpp"

namespace {

void on_signal(int sig) { vhost_traffic::note_interrupt(sig); }

// Backstop for calls that can block (a virtio-user server=1 probe waits for
// the back-end to connect): well after --timeout, give up hard.
void on_alarm(int) {
    static const char msg[] = "vhost-traffic: FAIL: hard timeout (blocked in set-up or tear-down)\n";
    [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, msg, sizeof(msg) - 1);
    ::_exit(vhost_traffic::kExitFail);
}

} // namespace

int main(int argc, char** argv) {
    using namespace vhost_traffic;
    Options opt;
    if (const auto rc = parse_command_line(argc, argv, opt)) {
        return *rc;
    }
    vhostd::tools::install_signal_handlers(on_signal, on_alarm);

    Traffic t(std::move(opt));
    return t.run();
}
