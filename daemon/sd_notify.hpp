#pragma once
// systemd's service notification protocol (sd_notify(3), "NOTIFY_SOCKET"),
// spoken directly: each state change is one AF_UNIX datagram of
// newline-separated KEY=VALUE assignments sent to the socket named by
// $NOTIFY_SOCKET — a file path, or an abstract-namespace name written with
// a leading '@'. Without $NOTIFY_SOCKET (not run by systemd with
// Type=notify) every call is a no-op.
//
// The watchdog (sd_watchdog_enabled(3)): $WATCHDOG_USEC, when set and
// $WATCHDOG_PID is unset or names this process, is the interval within
// which the service must send WATCHDOG=1; the daemon sends it every half
// interval while its health check passes.

#include <sys/socket.h>
#include <sys/un.h>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "protocol/result.hpp"
#include "protocol/unique_fd.hpp"

namespace vhostd::daemon {

class Notifier {
public:
    // Disabled: sends nothing.
    Notifier() = default;
    // From $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID. A malformed
    // variable is an error naming it; an unset NOTIFY_SOCKET gives a
    // disabled notifier.
    static Result<Notifier> from_environment();

    [[nodiscard]] bool enabled() const noexcept { return fd_.valid(); }
    // Sends `state` ("READY=1\nSTATUS=...") as one datagram. Never blocks;
    // a failure is returned (the caller logs it) and changes nothing else.
    Status send(std::string_view state) const;
    // The watchdog timeout systemd expects WATCHDOG=1 within, if any.
    [[nodiscard]] std::optional<std::chrono::microseconds> watchdog() const noexcept {
        return watchdog_;
    }
    // Where the datagrams go, as given ("@name" or a path), for logs.
    [[nodiscard]] const std::string& address() const noexcept { return address_; }

private:
    UniqueFd fd_;
    sockaddr_un addr_{};
    socklen_t addr_len_ = 0;
    std::string address_;
    std::optional<std::chrono::microseconds> watchdog_;
};

} // namespace vhostd::daemon
