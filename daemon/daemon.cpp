#include "daemon/daemon.hpp"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <ctime>

#include <spdlog/spdlog.h>

#include "config/config_diff.hpp"

#ifndef VHOSTD_VERSION
#define VHOSTD_VERSION "unknown"
#endif

namespace vhostd::daemon {

Status set_log_level(const std::string& level) {
    const auto parsed = spdlog::level::from_str(level);
    // from_str maps anything unknown to "off": only accept "off" when asked for.
    if (parsed == spdlog::level::off && level != "off") {
        return make_error(fmt::format("unknown log level '{}'", level));
    }
    spdlog::set_level(parsed);
    return Ok{};
}

Daemon::Daemon(config::Config cfg) : cfg_(std::move(cfg)) {}

Daemon::~Daemon() { shutdown(); }

Status Daemon::start() {
    auto notifier = Notifier::from_environment();
    if (!notifier) {
        return std::move(notifier).error();
    }
    notifier_ = std::move(notifier).value();
    if (notifier_.enabled()) {
        spdlog::info("systemd notification socket {}{}", notifier_.address(),
                     notifier_.watchdog()
                         ? fmt::format(", watchdog every {} ms",
                                       std::chrono::duration_cast<std::chrono::milliseconds>(
                                           *notifier_.watchdog())
                                           .count())
                         : std::string());
    }
    auto loop = EventLoop::create();
    if (!loop) {
        return std::move(loop).error();
    }
    loop_ = std::move(loop).value();
    if (auto s = setup_signals(); !s) {
        return s;
    }
    auto dp = dataplane::Dataplane::create(cfg_);
    if (!dp) {
        return std::move(dp).error();
    }
    dataplane_ = std::move(dp).value();
    for (const auto& port : cfg_.ports) {
        if (auto s = start_endpoint(port); !s) {
            return s;
        }
    }
    if (auto s = dataplane_->start(); !s) {
        return s;
    }
    sync_running();
    arm_health_timer();
    if (auto s = start_control(); !s) {
        return s;
    }
    spdlog::info("vhostd {} running: {} port(s), switch mode {}, {} PMD(s)", VHOSTD_VERSION,
                 cfg_.ports.size(), config::to_string(cfg_.switch_mode), cfg_.pmd_cores.size());
    // Every port is listening, connecting or (DPDK) up: ready.
    last_status_ = status_line();
    notify("READY=1\nSTATUS=" + last_status_);
    arm_watchdog();
    return Ok{};
}

Status Daemon::start_endpoint(const config::PortConfig& port) {
    if (port.type != config::PortType::VhostUser) {
        return Ok{};
    }
    auto endpoint = std::make_shared<VhostEndpoint>(*loop_, port, cfg_.socket,
                                                    *dataplane_->vhost_port(port.name));
    if (auto s = endpoint->start(); !s) {
        endpoint->shutdown();
        return s;
    }
    endpoints_.push_back(std::move(endpoint));
    return Ok{};
}

Status Daemon::add_port(const config::PortConfig& port) {
    if (!dataplane_) {
        return make_error(fmt::format("port {}: the daemon is not running", port.name));
    }
    auto id = dataplane_->add_port(port);
    if (!id) {
        return std::move(id).error();
    }
    if (auto s = start_endpoint(port); !s) {
        if (auto undone = dataplane_->remove_port(port.name); !undone) {
            spdlog::error("{}", undone.error().message);
        }
        return s;
    }
    sync_running();
    notify_status();
    if (port.type == config::PortType::VhostUser) {
        spdlog::info("port {}: added (vhost-user, {} {}, {} queue pair(s))", port.name,
                     config::to_string(port.mode), port.path, port.queues);
    } else {
        spdlog::info("port {}: added (dpdk, {})", port.name, port.devargs);
    }
    return Ok{};
}

Status Daemon::remove_port(const std::string& name) {
    if (!dataplane_ || !dataplane_->port_id(name)) {
        return make_error(fmt::format("port {}: no such port", name));
    }
    // The endpoint first: closing its connection stops the port's rings
    // (the session hands the port an empty view) and closes their fds, and
    // the session lets go of the port. Only then can the port go.
    auto it = std::find_if(endpoints_.begin(), endpoints_.end(),
                           [&](const auto& e) { return e->name() == name; });
    if (it != endpoints_.end()) {
        (*it)->shutdown("port removed");
        endpoints_.erase(it);
    }
    auto removed = dataplane_->remove_port(name);
    sync_running();
    notify_status();
    if (!removed) {
        return removed;
    }
    spdlog::info("port {}: removed", name);
    return Ok{};
}

const VhostEndpoint* Daemon::endpoint(const std::string& name) const noexcept {
    for (const auto& e : endpoints_) {
        if (e->name() == name) {
            return e.get();
        }
    }
    return nullptr;
}

Status Daemon::run() { return loop_->run(); }

void Daemon::shutdown() {
    if (!stopping_ && loop_) {
        stopping_ = true;
        notify("STOPPING=1");
    }
    stop_control();
    for (auto& endpoint : endpoints_) {
        endpoint->shutdown();
    }
    endpoints_.clear();
    loop_.reset();  // drops in-flight operations and the connections they held
    if (dataplane_) {
        dataplane_->stop();
        dataplane_->log_stats();
        dataplane_.reset();
    }
}

Status Daemon::setup_signals() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR1);
    if (::sigprocmask(SIG_BLOCK, &set, nullptr) != 0) {
        return make_error(fmt::format("sigprocmask: {}", std::strerror(errno)));
    }
    ::signal(SIGPIPE, SIG_IGN);
    signal_fd_.reset(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
    if (!signal_fd_) {
        return make_error(fmt::format("signalfd: {}", std::strerror(errno)));
    }
    arm_signal();
    return Ok{};
}

void Daemon::arm_signal() {
    loop_->read(signal_fd_.get(), &siginfo_, sizeof(siginfo_), [this](int result) {
        if (result != static_cast<int>(sizeof(siginfo_))) {
            arm_signal();
            return;
        }
        switch (siginfo_.ssi_signo) {
        case SIGTERM:
        case SIGINT:
            spdlog::info("signal {}: shutting down",
                         strsignal(static_cast<int>(siginfo_.ssi_signo)));
            stopping_ = true;
            notify("STOPPING=1");
            loop_->stop();
            return;
        case SIGHUP:
            reload();
            break;
        case SIGUSR1:
            dataplane_->log_stats();
            break;
        default:
            break;
        }
        arm_signal();
    });
}

// Once a second: log ports that a guest broke since the last look, and
// tell systemd when the summary changed (a front-end came or went).
void Daemon::arm_health_timer() {
    loop_->after(std::chrono::seconds(1), [this](int) {
        dataplane_->report_health();
        notify_status();
        arm_health_timer();
    });
}

// sd_watchdog_enabled(3): WATCHDOG=1 every half interval, but only while
// every PMD is making progress or legitimately asleep. A stalled PMD (or a
// stalled control thread, which then runs no timer) lets the interval run
// out and systemd restarts the service (WatchdogSec=, Restart=).
void Daemon::arm_watchdog() {
    const auto interval = notifier_.watchdog();
    if (!interval) {
        return;
    }
    loop_->after(*interval / 2, [this](int) {
        const auto stalled = dataplane_->stalled_pmds();
        if (stalled.empty()) {
            if (watchdog_failing_) {
                spdlog::info("watchdog: every PMD makes progress again");
                watchdog_failing_ = false;
            }
            notify("WATCHDOG=1");
        } else if (!watchdog_failing_) {
            watchdog_failing_ = true;
            std::string names;
            for (size_t i : stalled) {
                names += fmt::format("{}pmd{}", names.empty() ? "" : ", ", i);
            }
            spdlog::error("watchdog: {} made no progress in {} ms and is not asleep; not sending "
                          "WATCHDOG=1 (systemd restarts vhostd when WatchdogSec runs out)",
                          names,
                          std::chrono::duration_cast<std::chrono::milliseconds>(
                              *notifier_.watchdog() / 2)
                              .count());
        }
        arm_watchdog();
    });
}

void Daemon::notify(const std::string& state) {
    if (auto s = notifier_.send(state); !s) {
        spdlog::warn("{}", s.error().message);
    }
}

std::string Daemon::status_line() const {
    size_t connected = 0;
    for (const auto& e : endpoints_) {
        connected += e->connected() ? 1 : 0;
    }
    const size_t ports = dataplane_ ? dataplane_->port_count() : 0;
    const size_t vhost = endpoints_.size();
    std::string line = fmt::format("{} port(s): {} vhost-user ({} connected), {} dpdk; {} PMD(s)", ports,
                                   vhost, connected, ports - vhost, cfg_.pmd_cores.size());
    if (watchdog_failing_) {
        line += "; a PMD is stalled";
    }
    return line;
}

void Daemon::notify_status() {
    if (!notifier_.enabled()) {
        return;
    }
    std::string line = status_line();
    if (line != last_status_) {
        last_status_ = std::move(line);
        notify("STATUS=" + last_status_);
    }
}

void Daemon::sync_running() {
    cfg_.ports = dataplane_->config().ports;
    cfg_.xconnect = dataplane_->config().xconnect;
}

void Daemon::reload() {
    // sd_notify(3): RELOADING=1 (with the time, for Type=notify-reload),
    // then READY=1 once the reload is complete, whatever its outcome.
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    notify(fmt::format("RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=reloading {}",
                       static_cast<uint64_t>(ts.tv_sec) * 1'000'000u +
                           static_cast<uint64_t>(ts.tv_nsec) / 1000u,
                       cfg_.source));
    spdlog::info("SIGHUP: reloading {}", cfg_.source);
    auto loaded = config::load_file(cfg_.source);
    if (!loaded) {
        spdlog::error("reload: {}", loaded.error().message);
        spdlog::error("reload: {} has errors; the running configuration is kept", cfg_.source);
    } else {
        apply(loaded.value());
    }
    last_status_ = status_line();
    notify("READY=1\nSTATUS=" + last_status_);
}

void Daemon::apply(const config::Config& next) {
    const config::ConfigDiff d = config::diff(cfg_, next);
    for (const auto& key : d.restart_only) {
        spdlog::warn("reload: {}: not applied, takes effect at the next restart", key);
    }
    size_t failed = 0;
    for (const auto& name : d.removed) {
        const bool changed = std::find(d.changed.begin(), d.changed.end(), name) != d.changed.end();
        if (auto s = remove_port(name); !s) {
            spdlog::error("reload: {}", s.error().message);
            ++failed;
        } else if (changed) {
            spdlog::info("reload: port {} changed: removed, added again with its new settings",
                         name);
        }
    }
    for (const auto& port : d.added) {
        if (auto s = add_port(port); !s) {
            spdlog::error("reload: {}:{}: {}; the port is not running", next.source, port.line,
                          s.error().message);
            ++failed;
        }
    }
    if (d.xconnect_changed) {
        dataplane_->set_xconnect(next.xconnect);
        sync_running();
        spdlog::info("reload: xconnect pairs replaced ({} pair(s))", next.xconnect.size());
    }
    if (d.log_level_changed) {
        if (log_level_pinned_) {
            spdlog::warn("reload: log.level: not applied, --log-level on the command line wins");
        } else if (auto s = set_log_level(next.log_level); !s) {
            spdlog::error("reload: log.level: {}", s.error().message);
        } else {
            cfg_.log_level = next.log_level;
            spdlog::info("reload: log level {}", next.log_level);
        }
    }
    spdlog::info("reload: {}: {} port(s) removed, {} added ({} changed), {} failed, {} key(s) "
                 "waiting for a restart",
                 next.source, d.removed.size() - d.changed.size(), d.added.size() - d.changed.size(),
                 d.changed.size(), failed, d.restart_only.size());
}

} // namespace vhostd::daemon
