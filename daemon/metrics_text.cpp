#include "daemon/metrics_text.hpp"

#include <fmt/format.h>

namespace vhostd::daemon {

namespace {

// One metric family: HELP and TYPE once, then its samples.
class Family {
public:
    Family(std::string& out, const char* name, const char* type, const char* help)
        : out_(out), name_(name) {
        fmt::format_to(std::back_inserter(out_), "# HELP {} {}\n# TYPE {} {}\n", name, help, name,
                       type);
    }
    // labels: already rendered `k="v",...` (without braces), may be empty.
    template <typename T>
    void sample(const std::string& labels, T value) {
        if (labels.empty()) {
            fmt::format_to(std::back_inserter(out_), "{} {}\n", name_, value);
        } else {
            fmt::format_to(std::back_inserter(out_), "{}{{{}}} {}\n", name_, labels, value);
        }
    }

private:
    std::string& out_;
    const char* name_;
};

std::string label(const char* key, const std::string& value) {
    return fmt::format("{}=\"{}\"", key, escape_label_value(value));
}

struct QueueMetric {
    const char* name;
    const char* help;
    uint64_t QueueCounters::*member;
};

constexpr QueueMetric kQueueMetrics[] = {
    {"vhostd_port_rx_packets_total", "Frames the port gave vhostd (guest TX ring, DPDK rx queue).",
     &QueueCounters::rx_packets},
    {"vhostd_port_rx_bytes_total", "Bytes of the frames the port gave vhostd.",
     &QueueCounters::rx_bytes},
    {"vhostd_port_tx_packets_total", "Frames vhostd gave the port (guest RX ring, DPDK tx queue).",
     &QueueCounters::tx_packets},
    {"vhostd_port_tx_bytes_total", "Bytes of the frames vhostd gave the port.",
     &QueueCounters::tx_bytes},
    {"vhostd_port_errors_total", "Errors such as an empty mbuf pool or a refused DPDK tx.",
     &QueueCounters::errors},
};

} // namespace

std::string escape_label_value(const std::string& value) {
    std::string out;
    out.reserve(value.size());
    for (char c : value) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '"') {
            out += "\\\"";
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
    return out;
}

std::string render_metrics(const Model& model) {
    std::string out;
    for (const QueueMetric& m : kQueueMetrics) {
        Family f(out, m.name, "counter", m.help);
        for (const auto& p : model.ports) {
            for (const auto& q : p.queues) {
                f.sample(label("port", p.name) + "," + label("queue", q.name), q.counters.*m.member);
            }
        }
    }
    {
        Family f(out, "vhostd_port_drops_total", "counter", "Frames dropped, by reason.");
        for (const auto& p : model.ports) {
            for (const auto& q : p.queues) {
                for (const auto& field : QueueCounters::fields()) {
                    if (field.reason != nullptr) {
                        f.sample(label("port", p.name) + "," + label("queue", q.name) + "," +
                                     label("reason", field.reason),
                                 q.counters.*field.member);
                    }
                }
            }
        }
    }
    {
        Family f(out, "vhostd_port_up", "gauge",
                 "1 when the port's front-end is connected (vhost-user) or its link is up (DPDK).");
        for (const auto& p : model.ports) {
            f.sample(label("port", p.name) + "," + label("type", p.type) + "," +
                         label("state", p.state),
                     (p.state == "connected" || p.state == "up") ? 1 : 0);
        }
    }
    {
        Family f(out, "vhostd_port_broken", "gauge",
                 "1 while the port is broken by a ring violation of its guest.");
        for (const auto& p : model.ports) {
            f.sample(label("port", p.name), p.broken ? 1 : 0);
        }
    }
    {
        Family f(out, "vhostd_port_connections_total", "counter",
                 "Front-end connections accepted or made on a vhost-user port.");
        for (const auto& p : model.ports) {
            if (p.type == "vhost-user") {
                f.sample(label("port", p.name), p.connections);
            }
        }
    }
    struct PmdMetric {
        const char* name;
        const char* type;
        const char* help;
        uint64_t PmdInfo::*member;
    };
    static constexpr PmdMetric kPmdMetrics[] = {
        {"vhostd_pmd_busy_cycles_total", "counter", "TSC cycles in poll iterations that found work.",
         &PmdInfo::busy_cycles},
        {"vhostd_pmd_idle_cycles_total", "counter", "TSC cycles in poll iterations that found none, sleeps included.",
         &PmdInfo::idle_cycles},
        {"vhostd_pmd_busy_polls_total", "counter", "Poll iterations that found work.",
         &PmdInfo::busy_polls},
        {"vhostd_pmd_idle_polls_total", "counter", "Poll iterations that found none.",
         &PmdInfo::idle_polls},
        {"vhostd_pmd_sleeps_total", "counter", "Times the PMD went to sleep (adaptive idle).",
         &PmdInfo::sleeps},
        {"vhostd_pmd_wakeups_total", "counter", "Times a guest kick (or a reconfiguration) woke the PMD.",
         &PmdInfo::wakeups},
        {"vhostd_pmd_sleep_timeouts_total", "counter", "Sleeps that ended by timeout.",
         &PmdInfo::timeouts},
        {"vhostd_pmd_sleep_backouts_total", "counter",
         "Sleeps abandoned because work raced in.", &PmdInfo::backouts},
        {"vhostd_pmd_streamed_frames_total", "counter",
         "Frames whose first line went into a guest RX buffer with streaming stores.",
         &PmdInfo::streamed_frames},
        {"vhostd_pmd_store_switches_total", "counter",
         "Times the PMD changed how it writes frames' first lines (ordinary or streaming stores).",
         &PmdInfo::store_switches},
    };
    auto pmd_labels = [](const PmdInfo& p) {
        return label("pmd", std::to_string(p.index)) + "," + label("core", std::to_string(p.core));
    };
    for (const PmdMetric& m : kPmdMetrics) {
        Family f(out, m.name, m.type, m.help);
        for (const auto& p : model.pmds) {
            f.sample(pmd_labels(p), p.*m.member);
        }
    }
    {
        Family f(out, "vhostd_pmd_sleeping", "gauge", "1 while the PMD sleeps (adaptive idle, waiting for a kick).");
        for (const auto& p : model.pmds) {
            f.sample(pmd_labels(p), p.sleeping ? 1 : 0);
        }
    }
    {
        Family f(out, "vhostd_pmd_sources", "gauge", "Receive queues the PMD polls.");
        for (const auto& p : model.pmds) {
            f.sample(pmd_labels(p), p.sources.size());
        }
    }
    {
        Family f(out, "vhostd_fdb_entries", "gauge", "MAC addresses in the L2 table.");
        f.sample("", model.fdb.size());
    }
    return out;
}

} // namespace vhostd::daemon
