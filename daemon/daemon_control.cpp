// The Daemon's operator interfaces: the control socket (control_server.hpp)
// and the optional Prometheus endpoint (metrics_server.hpp), both fed by one
// Introspector so they always agree.

#include <spdlog/spdlog.h>

#include "daemon/daemon.hpp"

namespace vhostd::daemon {

ControlActions Daemon::control_actions() {
    ControlActions a;
    a.introspect = [this] { return introspector_->collect(); };
    a.clear_stats = [this] {
        introspector_->clear_stats();
        spdlog::info("control: statistics cleared");
    };
    a.set_log_level = [](const std::string& level) {
        auto s = set_log_level(level);
        if (s) {
            spdlog::info("control: log level set to {}", level);
        }
        return s;
    };
    return a;
}

Status Daemon::start_control() {
    introspector_ = std::make_unique<Introspector>(
        *dataplane_, [this](const std::string& port) -> const VhostEndpoint* {
            for (const auto& endpoint : endpoints_) {
                if (endpoint->name() == port) {
                    return endpoint.get();
                }
            }
            return nullptr;
        });
    auto control = ControlServer::create(*loop_, cfg_.control_socket, control_actions());
    if (!control) {
        return std::move(control).error();
    }
    control_ = std::move(control).value();
    if (cfg_.metrics) {
        auto metrics = MetricsServer::create(*loop_, *cfg_.metrics,
                                             [this] { return introspector_->collect(); });
        if (!metrics) {
            return std::move(metrics).error();
        }
        metrics_ = std::move(metrics).value();
    }
    return Ok{};
}

void Daemon::stop_control() {
    metrics_.reset();
    control_.reset();
    introspector_.reset();
}

} // namespace vhostd::daemon
