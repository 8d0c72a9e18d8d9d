#pragma once
// The daemon's control thread: configuration, the io_uring event loop with
// every vhost-user socket, signals, periodic health checks and an orderly
// shutdown. main.cpp parses the command line and runs one of these.

#include <sys/signalfd.h>

#include <memory>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "daemon/control_server.hpp"
#include "daemon/introspection.hpp"
#include "daemon/metrics_server.hpp"
#include "daemon/event_loop.hpp"
#include "daemon/kick_watcher.hpp"
#include "daemon/vhost_endpoint.hpp"
#include "dataplane/dataplane.hpp"
#include "protocol/result.hpp"
#include "protocol/unique_fd.hpp"

namespace vhostd::daemon {

// Sets spdlog's level from its name; unknown names are an error.
[[nodiscard]] Status set_log_level(const std::string& level);

class Daemon {
public:
    explicit Daemon(config::Config cfg);
    ~Daemon();
    Daemon(const Daemon&) = delete;
    Daemon& operator=(const Daemon&) = delete;

    // Creates the data plane and every port's endpoint, starts the PMDs.
    Status start();
    // Runs the event loop until SIGTERM/SIGINT.
    Status run();
    // Stop rings, close connections and sockets, unlink socket files; then
    // cancel whatever the event loop still has in flight. Idempotent.
    void shutdown();

private:
    Status setup_signals();
    void arm_signal();
    void arm_health_timer();
    // The control socket and the metrics endpoint (daemon_control.cpp).
    Status start_control();
    [[nodiscard]] ControlActions control_actions();
    void stop_control();

    config::Config cfg_;
    std::unique_ptr<dataplane::Dataplane> dataplane_;
    std::unique_ptr<KickWatcher> kicks_;
    std::unique_ptr<EventLoop> loop_;
    std::vector<std::shared_ptr<VhostEndpoint>> endpoints_;
    UniqueFd signal_fd_;
    signalfd_siginfo siginfo_{};
    std::unique_ptr<Introspector> introspector_;
    std::unique_ptr<ControlServer> control_;
    std::unique_ptr<MetricsServer> metrics_;
};

} // namespace vhostd::daemon
