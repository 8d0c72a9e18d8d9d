#pragma once
// The control-plane side of one vhost-user port: its socket (server: listen
// and accept one front-end at a time; client: connect with bounded back-off,
// and again after the front-end goes away), the connection's message loop on
// the io_uring, and the protocol Session that drives the port's device.

#include <sys/socket.h>

#include <chrono>
#include <memory>
#include <string>

#include "config/config.hpp"
#include "daemon/event_loop.hpp"
#include "protocol/device.hpp"
#include "protocol/session.hpp"
#include "protocol/socket.hpp"

namespace vhostd::daemon {

class VhostEndpoint : public std::enable_shared_from_this<VhostEndpoint> {
public:
    VhostEndpoint(EventLoop& loop, const config::PortConfig& port, const config::SocketPerms& perms,
                  protocol::VhostDevice& device);
    ~VhostEndpoint();

    // Server: create the socket and start accepting. Client: start connecting.
    Status start();
    // Closes the connection (stopping every ring) and the listening socket,
    // and removes the socket file this endpoint created. `why` is logged
    // with the connection's end.
    void shutdown(const char* why = "daemon shutting down");

    [[nodiscard]] const std::string& name() const noexcept { return name_; }
    [[nodiscard]] bool connected() const noexcept { return connection_ != nullptr; }

private:
    struct Connection;

    void arm_accept();
    [[nodiscard]] bool peer_allowed(int fd) const;
    void try_connect();
    void schedule_reconnect();
    void adopt(UniqueFd fd);
    void arm_recv(const std::shared_ptr<Connection>& conn);
    void on_recv(const std::shared_ptr<Connection>& conn, int result);
    void close_connection(const std::shared_ptr<Connection>& conn, const std::string& why);

    EventLoop& loop_;
    std::string name_;
    std::string path_;
    config::SocketMode mode_;
    uint32_t queues_;
    std::optional<uint32_t> mtu_;
    config::SocketPerms perms_;
    protocol::VhostDevice& device_;

    UniqueFd listen_fd_;
    bool created_socket_file_ = false;
    bool shutting_down_ = false;
    std::shared_ptr<Connection> connection_;
    std::chrono::milliseconds backoff_{0};
    unsigned failed_attempts_ = 0;
    uint64_t connections_ = 0;
};

} // namespace vhostd::daemon
