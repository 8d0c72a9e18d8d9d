#include "daemon/vhost_endpoint.hpp"

#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include <spdlog/spdlog.h>

namespace vhostd::daemon {

using namespace std::chrono_literals;

namespace {
// Client-mode reconnect back-off: start fast (QEMU creates its socket right
// before it waits), double up to a bound so a missing front-end costs nothing.
constexpr std::chrono::milliseconds kBackoffFirst = 50ms;
constexpr std::chrono::milliseconds kBackoffMax = 2000ms;
} // namespace

struct VhostEndpoint::Connection {
    Connection(UniqueFd socket, protocol::SessionLimits limits, protocol::VhostDevice& device,
               uint64_t id)
        : fd(std::move(socket)), session(std::in_place, limits, device), id(id) {}

    UniqueFd fd;
    protocol::MessageReader reader;
    // Destroyed when the connection closes, not when the last io_uring
    // callback lets go of the connection: the session calls into the port's
    // device, which may be gone by then (a port removed at runtime).
    std::optional<protocol::Session> session;
    uint64_t id;
    uint64_t messages = 0;
    bool closed = false;
    iovec iov{};
    msghdr msg{};
    alignas(cmsghdr) uint8_t control[protocol::kCmsgSpace] = {};
};

VhostEndpoint::VhostEndpoint(EventLoop& loop, const config::PortConfig& port,
                             const config::SocketPerms& perms, protocol::VhostDevice& device)
    : loop_(loop), name_(port.name), path_(port.path), mode_(port.mode), queues_(port.queues),
      mtu_(port.mtu), perms_(perms), device_(device) {}

VhostEndpoint::~VhostEndpoint() { shutdown(); }

Status VhostEndpoint::start() {
    if (mode_ == config::SocketMode::Client) {
        spdlog::info("port {}: connecting to front-end socket {}", name_, path_);
        try_connect();
        return Ok{};
    }
    protocol::ListenOptions options;
    options.mode = perms_.mode;
    if (perms_.group) {
        group* g = ::getgrnam(perms_.group->c_str());
        if (g == nullptr) {
            return make_error(fmt::format("port {}: socket group '{}' does not exist", name_,
                                          *perms_.group));
        }
        options.group = g->gr_gid;
    }
    auto fd = protocol::listen_unix(path_, options);
    if (!fd) {
        return make_error(fmt::format("port {}: {}", name_, fd.error().message));
    }
    listen_fd_ = std::move(fd).value();
    created_socket_file_ = true;
    spdlog::info("port {}: listening on {} (mode {:04o})", name_, path_, perms_.mode);
    arm_accept();
    return Ok{};
}

void VhostEndpoint::shutdown(const char* why) {
    shutting_down_ = true;
    if (connection_) {
        auto conn = connection_;
        close_connection(conn, why);
    }
    if (listen_fd_) {
        // Completes the accept still in flight on the io_uring (with
        // EINVAL), so that it lets go of the listening socket; closing the
        // fd alone would leave the socket alive in the pending request.
        ::shutdown(listen_fd_.get(), SHUT_RDWR);
    }
    listen_fd_.reset();
    if (created_socket_file_) {
        ::unlink(path_.c_str());
        created_socket_file_ = false;
    }
}

void VhostEndpoint::arm_accept() {
    std::weak_ptr<VhostEndpoint> weak = weak_from_this();
    loop_.accept(listen_fd_.get(), [weak](int result) {
        auto self = weak.lock();
        if (!self || self->shutting_down_) {
            if (result >= 0) {
                ::close(result);
            }
            return;
        }
        if (result < 0) {
            if (result != -ECANCELED) {
                spdlog::warn("port {}: accept: {}", self->name_, std::strerror(-result));
            }
            if (result == -EINTR || result == -ECONNABORTED || result == -EAGAIN ||
                result == -EMFILE || result == -ENFILE) {
                self->arm_accept();
            }
            return;
        }
        UniqueFd fd(result);
        if (!self->peer_allowed(fd.get())) {
            // Refused: fd closes here; keep accepting.
        } else if (self->connection_) {
            // One front-end per port: a second one would fight over the rings.
            spdlog::warn("port {}: refusing a second front-end connection on {}", self->name_,
                         self->path_);
        } else {
            self->adopt(std::move(fd));
        }
        self->arm_accept();
    });
}

bool VhostEndpoint::peer_allowed(int fd) const {
    if (perms_.allowed_uids.empty()) {
        return true;
    }
    ucred cred{};
    socklen_t len = sizeof(cred);
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
        spdlog::warn("port {}: refusing a front-end whose credentials cannot be read: {}", name_,
                     std::strerror(errno));
        return false;
    }
    for (uint32_t uid : perms_.allowed_uids) {
        if (uid == cred.uid) {
            return true;
        }
    }
    spdlog::warn("port {}: refusing front-end pid {} uid {}: not in socket.allowed_uids", name_,
                 cred.pid, cred.uid);
    return false;
}

void VhostEndpoint::try_connect() {
    if (shutting_down_) {
        return;
    }
    auto result = protocol::connect_unix(path_);
    if (auto* fd = std::get_if<UniqueFd>(&result)) {
        if (failed_attempts_ > 0) {
            spdlog::info("port {}: front-end socket {} is up after {} attempts", name_, path_,
                         failed_attempts_);
        }
        failed_attempts_ = 0;
        backoff_ = 0ms;
        adopt(std::move(*fd));
        return;
    }
    const auto& err = std::get<protocol::ConnectError>(result);
    // Log the first failure and then rarely: a missing front-end is normal.
    if (failed_attempts_ == 0 || failed_attempts_ % 64 == 0) {
        spdlog::info("port {}: front-end not reachable yet ({}); retrying", name_, err.message);
    }
    ++failed_attempts_;
    schedule_reconnect();
}

void VhostEndpoint::schedule_reconnect() {
    backoff_ = backoff_ == 0ms ? kBackoffFirst : std::min(backoff_ * 2, kBackoffMax);
    std::weak_ptr<VhostEndpoint> weak = weak_from_this();
    loop_.after(backoff_, [weak](int) {
        if (auto self = weak.lock()) {
            self->try_connect();
        }
    });
}

void VhostEndpoint::adopt(UniqueFd fd) {
    protocol::SessionLimits limits;
    limits.queue_pairs = queues_;
    limits.max_mtu = mtu_;
    ++connections_;
    auto conn = std::make_shared<Connection>(std::move(fd), limits, device_, connections_);
    connection_ = conn;
    spdlog::info("port {}: front-end connected (connection {})", name_, conn->id);
    arm_recv(conn);
}

void VhostEndpoint::arm_recv(const std::shared_ptr<Connection>& conn) {
    auto buf = conn->reader.buffer();
    conn->iov = {buf.data(), buf.size()};
    conn->msg = {};
    conn->msg.msg_iov = &conn->iov;
    conn->msg.msg_iovlen = 1;
    conn->msg.msg_control = conn->control;
    conn->msg.msg_controllen = sizeof(conn->control);
    std::weak_ptr<VhostEndpoint> weak = weak_from_this();
    // The callback holds the connection: its buffers live until the kernel is done.
    loop_.recvmsg(conn->fd.get(), &conn->msg, [weak, conn](int result) {
        if (auto self = weak.lock()) {
            self->on_recv(conn, result);
        }
    });
}

void VhostEndpoint::on_recv(const std::shared_ptr<Connection>& conn, int result) {
    if (conn->closed) {
        return;
    }
    // Every fd that arrived is owned from here on, whatever else happens.
    std::vector<UniqueFd> fds = result >= 0 ? protocol::take_fds(conn->msg) : std::vector<UniqueFd>{};
    if (result == 0) {
        close_connection(conn, "front-end closed the connection");
        return;
    }
    if (result < 0) {
        close_connection(conn, fmt::format("recvmsg: {}", std::strerror(-result)));
        return;
    }
    const bool truncated = (conn->msg.msg_flags & MSG_CTRUNC) != 0;
    auto decoded = conn->reader.consume(static_cast<size_t>(result), std::move(fds), truncated);
    if (!decoded) {
        arm_recv(conn); // message incomplete
        return;
    }
    if (!decoded->ok()) {
        spdlog::error("port {}: protocol error, closing connection: {}", name_,
                      decoded->error().message);
        close_connection(conn, "protocol error");
        return;
    }
    protocol::Message msg = std::move(*decoded).value();
    const auto request = msg.request;
    ++conn->messages;
    spdlog::debug("port {}: {}", name_, protocol::request_name(request));
    auto outcome = conn->session->handle(std::move(msg));
    if (!outcome.reply.empty()) {
        if (auto sent = protocol::send_all(conn->fd.get(), outcome.reply); !sent) {
            close_connection(conn, fmt::format("sending the {} reply: {}",
                                               protocol::request_name(request),
                                               sent.error().message));
            return;
        }
    }
    if (outcome.error) {
        spdlog::error("port {}: protocol error, closing connection: {}", name_,
                      outcome.error->message);
        close_connection(conn, "protocol error");
        return;
    }
    arm_recv(conn);
}

void VhostEndpoint::close_connection(const std::shared_ptr<Connection>& conn,
                                     const std::string& why) {
    if (conn->closed) {
        return;
    }
    conn->closed = true;
    spdlog::info("port {}: connection {} closed ({}) after {} messages", name_, conn->id, why,
                 conn->messages);
    // Stops every ring (waiting for the data path), closes every fd and drops
    // the memory table. A recvmsg may still be in flight: shutdown() makes it
    // complete, and its callback sees `closed` and lets go of the buffers.
    conn->session.reset();  // ~Session resets the device: rings stopped, fds closed
    ::shutdown(conn->fd.get(), SHUT_RDWR);
    if (connection_ == conn) {
        connection_.reset();
    }
    if (mode_ == config::SocketMode::Client && !shutting_down_) {
        backoff_ = 0ms;
        schedule_reconnect();
    }
}

} // namespace vhostd::daemon
