#include "daemon/sd_notify.hpp"

#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

namespace vhostd::daemon {

namespace {

std::optional<uint64_t> parse_u64(std::string_view text) {
    uint64_t v = 0;
    const auto* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, v);
    if (ec != std::errc{} || ptr != end || text.empty()) {
        return std::nullopt;
    }
    return v;
}

} // namespace

Result<Notifier> Notifier::from_environment() {
    Notifier n;
    const char* socket_env = std::getenv("NOTIFY_SOCKET");
    if (socket_env == nullptr || *socket_env == '\0') {
        return n;
    }
    const std::string_view name(socket_env);
    // sd_notify(3): an absolute path, or '@' for Linux's abstract namespace
    // (the name then starts with a NUL byte and is not NUL-terminated).
    if (name.front() != '/' && name.front() != '@') {
        return make_error(fmt::format("NOTIFY_SOCKET={}: neither an absolute path nor an "
                                      "abstract socket name ('@...')",
                                      name));
    }
    if (name.size() > sizeof(n.addr_.sun_path) - (name.front() == '/' ? 1 : 0) || name.size() < 2) {
        return make_error(fmt::format("NOTIFY_SOCKET={}: not a valid AF_UNIX socket name", name));
    }
    n.addr_.sun_family = AF_UNIX;
    std::memcpy(n.addr_.sun_path, name.data(), name.size());
    if (name.front() == '@') {
        n.addr_.sun_path[0] = '\0';
        n.addr_len_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
    } else {
        n.addr_len_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size() + 1);
    }
    n.address_ = std::string(name);

    if (const char* usec = std::getenv("WATCHDOG_USEC"); usec != nullptr && *usec != '\0') {
        const auto v = parse_u64(usec);
        if (!v || *v == 0) {
            return make_error(fmt::format("WATCHDOG_USEC={}: not a positive number of microseconds",
                                          usec));
        }
        bool ours = true;
        if (const char* pid = std::getenv("WATCHDOG_PID"); pid != nullptr && *pid != '\0') {
            const auto p = parse_u64(pid);
            if (!p) {
                return make_error(fmt::format("WATCHDOG_PID={}: not a process id", pid));
            }
            ours = *p == static_cast<uint64_t>(::getpid());
        }
        if (ours) {
            n.watchdog_ = std::chrono::microseconds(*v);
        }
    }

    n.fd_.reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!n.fd_) {
        return make_error(fmt::format("NOTIFY_SOCKET: socket: {}", std::strerror(errno)));
    }
    return n;
}

Status Notifier::send(std::string_view state) const {
    if (!fd_) {
        return Ok{};
    }
    const ssize_t n = ::sendto(fd_.get(), state.data(), state.size(), MSG_NOSIGNAL,
                               reinterpret_cast<const sockaddr*>(&addr_), addr_len_);
    if (n < 0) {
        return make_error(fmt::format("sd_notify to {}: {}", address_, std::strerror(errno)));
    }
    if (static_cast<size_t>(n) != state.size()) {
        return make_error(fmt::format("sd_notify to {}: datagram truncated", address_));
    }
    return Ok{};
}

} // namespace vhostd::daemon
