#include "daemon/daemon.hpp"

#include <signal.h>
#include <unistd.h>

#include <cstring>

#include <spdlog/spdlog.h>

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
    kicks_ = std::make_unique<KickWatcher>(*loop_, *dataplane_);
    dataplane_->set_publish_observer(
        [this](const dataplane::Snapshot& snap) { kicks_->update(snap); });
    for (const auto& port : cfg_.ports) {
        if (port.type != config::PortType::VhostUser) {
            continue;
        }
        auto endpoint = std::make_shared<VhostEndpoint>(*loop_, port, cfg_.socket,
                                                        *dataplane_->vhost_port(port.name));
        if (auto s = endpoint->start(); !s) {
            return s;
        }
        endpoints_.push_back(std::move(endpoint));
    }
    if (auto s = dataplane_->start(); !s) {
        return s;
    }
    arm_health_timer();
    if (auto s = start_control(); !s) {
        return s;
    }
    spdlog::info("vhostd {} running: {} port(s), switch mode {}, {} PMD(s)", VHOSTD_VERSION,
                 cfg_.ports.size(), config::to_string(cfg_.switch_mode), cfg_.pmd_cores.size());
    return Ok{};
}

Status Daemon::run() { return loop_->run(); }

void Daemon::shutdown() {
    stop_control();
    for (auto& endpoint : endpoints_) {
        endpoint->shutdown();
    }
    endpoints_.clear();
    if (dataplane_) {
        dataplane_->set_publish_observer(nullptr);
    }
    kicks_.reset();
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
            loop_->stop();
            return;
        case SIGHUP:
            spdlog::warn("SIGHUP: configuration reload is not implemented yet; ignored");
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

// Once a second: log ports that a guest broke since the last look.
void Daemon::arm_health_timer() {
    loop_->after(std::chrono::seconds(1), [this](int) {
        dataplane_->report_health();
        arm_health_timer();
    });
}

} // namespace vhostd::daemon
