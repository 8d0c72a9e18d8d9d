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
    // One `ports:` entry, checked by the configuration loader itself (the
    // JSON object is YAML too), then added as SIGHUP would add it.
    a.add_port = [this](const nlohmann::ordered_json& port) -> Status {
        auto parsed = config::load_port(port.dump(), "port add");
        if (!parsed) {
            return std::move(parsed).error();
        }
        const config::PortConfig& pc = *parsed;
        if (pc.type == config::PortType::VhostUser && pc.path == cfg_.control_socket) {
            return make_error(fmt::format("port {}: path: same path as control.socket ({})",
                                          pc.name, pc.path));
        }
        auto s = add_port(pc);
        if (s) {
            introspector_->forget_port(pc.name);  // its counters start from 0
        }
        return s;
    };
    a.remove_port = [this](const std::string& name) -> Status {
        auto s = remove_port(name);
        if (s) {
            introspector_->forget_port(name);
        }
        return s;
    };
    return a;
}

Status Daemon::start_control() {
    introspector_ = std::make_unique<Introspector>(
        *dataplane_, [this](const std::string& port) { return endpoint(port); });
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
