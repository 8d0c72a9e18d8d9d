#pragma once
// The daemon's control thread: configuration, the io_uring event loop with
// every vhost-user socket, signals (SIGHUP reloads the file, SIGUSR1 logs
// counters, SIGTERM/SIGINT stop), periodic health checks, the systemd notify
// protocol (sd_notify.hpp) and an orderly shutdown. main.cpp parses the
// command line and runs one of these.

#include <sys/signalfd.h>

#include <memory>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "daemon/control_server.hpp"
#include "daemon/introspection.hpp"
#include "daemon/metrics_server.hpp"
#include "daemon/event_loop.hpp"
#include "daemon/sd_notify.hpp"
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
    // The log level was given on the command line: a reload keeps it.
    void pin_log_level() noexcept { log_level_pinned_ = true; }
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

    // Runtime port changes (control thread; vhostctl port add/del, SIGHUP),
    // while frames keep flowing on the other ports. `port` comes from the
    // configuration loader (load_file, or load_port for vhostctl), which
    // checked the port's own rules; add_port checks that its name, socket
    // path or DPDK device is not in use, opens it in the data plane and, for a
    // vhost-user port, starts its socket (listening or connecting). On any
    // error nothing is left behind.
    Status add_port(const config::PortConfig& port);
    // Closes the port's connection (stopping its rings), its socket (the
    // file is removed) and then the port itself (a DPDK device is removed).
    Status remove_port(const std::string& name);

    // Re-reads the configuration file (Config::source) and applies the
    // difference: ports removed, added, changed (removed, then added),
    // xconnect pairs, the log level. Keys that need a restart are logged as
    // not applied; a file that does not load is logged with its FILE:LINE
    // errors and the running configuration stays. SIGHUP runs this.
    void reload();
    // Applies a loaded configuration's difference to the running one.
    void apply(const config::Config& next);

    // The running configuration: the ports and xconnect pairs as they run
    // now (after port add/del and reloads), every other key as started.
    [[nodiscard]] const config::Config& running_config() const noexcept { return cfg_; }
    // The endpoint of vhost-user port `name`, or nullptr.
    [[nodiscard]] const VhostEndpoint* endpoint(const std::string& name) const noexcept;

private:
    // Creates and starts the endpoint of a vhost-user port (nothing for DPDK).
    Status start_endpoint(const config::PortConfig& port);
    Status setup_signals();
    void arm_signal();
    void arm_health_timer();
    void arm_watchdog();
    // Ports and xconnect pairs from the data plane into cfg_.
    void sync_running();
    // systemd: the one-line STATUS= summary, sent when it changed.
    [[nodiscard]] std::string status_line() const;
    void notify_status();
    void notify(const std::string& state);
    // The control socket and the metrics endpoint (daemon_control.cpp).
    Status start_control();
    [[nodiscard]] ControlActions control_actions();
    void stop_control();

    config::Config cfg_;
    bool log_level_pinned_ = false;
    Notifier notifier_;
    std::string last_status_;
    bool watchdog_failing_ = false;
    bool stopping_ = false;
    std::unique_ptr<dataplane::Dataplane> dataplane_;
    std::unique_ptr<EventLoop> loop_;
    std::vector<std::shared_ptr<VhostEndpoint>> endpoints_;
    UniqueFd signal_fd_;
    signalfd_siginfo siginfo_{};
    std::unique_ptr<Introspector> introspector_;
    std::unique_ptr<ControlServer> control_;
    std::unique_ptr<MetricsServer> metrics_;
};

} // namespace vhostd::daemon
