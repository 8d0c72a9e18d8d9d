#include "config/config_diff.hpp"

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace vhostd::config {

namespace {

std::string show(const IdleConfig& idle) {
    return fmt::format("{{mode: {}, poll_us: {}, max_sleep_us: {}}}", to_string(idle.mode), idle.poll_us,
                       idle.max_sleep_us);
}

std::string show(const std::optional<std::string>& v) { return v ? *v : std::string("(none)"); }

}  // namespace

bool same_port(const PortConfig& a, const PortConfig& b) {
    return a.name == b.name && a.type == b.type && a.path == b.path && a.mode == b.mode &&
           a.queues == b.queues && a.mtu == b.mtu && a.devargs == b.devargs;
}

ConfigDiff diff(const Config& running, const Config& next) {
    ConfigDiff d;
    for (const auto& old : running.ports) {
        const PortConfig* now = next.find_port(old.name);
        if (now == nullptr) {
            d.removed.push_back(old.name);
        } else if (!same_port(old, *now)) {
            d.removed.push_back(old.name);
            d.changed.push_back(old.name);
        }
    }
    for (const auto& now : next.ports) {
        const PortConfig* old = running.find_port(now.name);
        if (old == nullptr || !same_port(*old, now)) {
            d.added.push_back(now);
        }
    }
    d.xconnect_changed = running.xconnect != next.xconnect;
    d.log_level_changed = running.log_level != next.log_level;

    auto restart = [&](const char* key, const std::string& was, const std::string& is) {
        if (was != is) {
            d.restart_only.push_back(fmt::format("{}: {} -> {}", key, was, is));
        }
    };
    restart("dpdk.eal_args", fmt::format("{}", running.eal_args), fmt::format("{}", next.eal_args));
    restart("dataplane.pmd_cores", fmt::format("{}", running.pmd_cores),
            fmt::format("{}", next.pmd_cores));
    restart("dataplane.burst", std::to_string(running.burst), std::to_string(next.burst));
    restart("dataplane.idle", show(running.idle), show(next.idle));
    restart("dataplane.rx_stores", to_string(running.rx_stores), to_string(next.rx_stores));
    restart("switch.mode", to_string(running.switch_mode), to_string(next.switch_mode));
    restart("switch.mac_aging_s", std::to_string(running.mac_aging_s),
            std::to_string(next.mac_aging_s));
    restart("control.socket", running.control_socket, next.control_socket);
    auto listen = [](const std::optional<MetricsListen>& m) {
        if (!m) {
            return std::string("(off)");
        }
        return m->ipv6 ? fmt::format("[{}]:{}", m->host, m->port)
                       : fmt::format("{}:{}", m->host, m->port);
    };
    restart("metrics.listen", listen(running.metrics), listen(next.metrics));
    restart("socket.mode", fmt::format("{:04o}", running.socket.mode),
            fmt::format("{:04o}", next.socket.mode));
    restart("socket.group", show(running.socket.group), show(next.socket.group));
    restart("socket.allowed_uids", fmt::format("{}", running.socket.allowed_uids),
            fmt::format("{}", next.socket.allowed_uids));
    return d;
}

}  // namespace vhostd::config
