#include "daemon/control_server.hpp"

#include <unistd.h>

#include <spdlog/spdlog.h>

#include "protocol/socket.hpp"

namespace vhostd::daemon {

Result<std::unique_ptr<ControlServer>> ControlServer::create(EventLoop& loop, const std::string& path,
                                                             ControlActions actions) {
    std::unique_ptr<ControlServer> self(new ControlServer(path, std::move(actions)));
    protocol::ListenOptions options;
    options.mode = kControlSocketMode;
    // Room for a burst of clients (a monitoring loop, several operators)
    // between two turns of the event loop.
    options.backlog = 128;
    auto fd = protocol::listen_unix(path, options);
    if (!fd) {
        return make_error(fmt::format("control.socket: {}", fd.error().message));
    }
    ControlServer* raw = self.get();
    auto framer = [raw](std::string_view buffered) -> std::optional<StreamServer::Reply> {
        const size_t eol = buffered.find('\n');
        if (eol == std::string_view::npos) {
            return std::nullopt;
        }
        std::string_view line = buffered.substr(0, eol);
        if (!line.empty() && line.back() == '\r') {
            line.remove_suffix(1);
        }
        StreamServer::Reply reply;
        reply.consumed = eol + 1;
        if (!line.empty()) {  // blank lines are ignored
            reply.bytes = handle_control_request(line, raw->actions_) + "\n";
        }
        return reply;
    };
    auto overflow = [](size_t max) {
        return nlohmann::ordered_json{{"ok", false},
                              {"error", fmt::format("request longer than {} bytes; closing", max)}}
                   .dump() +
               "\n";
    };
    StreamServer::Limits limits;
    limits.max_request = kMaxControlRequest;
    self->server_ = std::make_unique<StreamServer>(loop, "control socket", std::move(fd).value(),
                                                   limits, framer, overflow);
    self->server_->start();
    spdlog::info("control socket listening on {} (mode {:04o})", path, kControlSocketMode);
    return self;
}

ControlServer::~ControlServer() { shutdown(); }

void ControlServer::shutdown() {
    if (server_) {
        server_->shutdown();
        server_.reset();
        ::unlink(path_.c_str());
    }
}

} // namespace vhostd::daemon
