#pragma once
// The control socket (docs/control.md): an AF_UNIX stream socket at
// `control.socket`, mode 0660, served on the control thread's io_uring loop.
// Each newline-terminated request line gets one response line
// (control_commands.hpp); requests are bounded (StreamServer).

#include <memory>
#include <string>

#include "daemon/control_commands.hpp"
#include "daemon/event_loop.hpp"
#include "daemon/stream_server.hpp"
#include "protocol/result.hpp"

namespace vhostd::daemon {

inline constexpr size_t kMaxControlRequest = 64 * 1024;
inline constexpr uint32_t kControlSocketMode = 0660;

class ControlServer {
public:
    // Creates the socket (and its directory), replacing a stale one; refuses
    // when another process listens on it.
    static Result<std::unique_ptr<ControlServer>> create(EventLoop& loop, const std::string& path,
                                                         ControlActions actions);
    ~ControlServer();
    ControlServer(const ControlServer&) = delete;
    ControlServer& operator=(const ControlServer&) = delete;

    // Stops serving and removes the socket file. Idempotent.
    void shutdown();

private:
    ControlServer(std::string path, ControlActions actions)
        : path_(std::move(path)), actions_(std::move(actions)) {}

    std::string path_;
    ControlActions actions_;
    std::unique_ptr<StreamServer> server_;
};

} // namespace vhostd::daemon
