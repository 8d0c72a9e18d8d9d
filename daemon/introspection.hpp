#pragma once
// What the daemon shows about itself: one plain model of ports, queues, PMDs
// and the L2 table, collected on the control thread. The control socket
// renders it as JSON (control_commands.cpp) and the metrics endpoint as
// Prometheus text (metrics_text.cpp), so both always report the same numbers.

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace vhostd::dataplane {
class Dataplane;
}

namespace vhostd::daemon {

class VhostEndpoint;

// The counters of one queue (dataplane/stats.hpp), as plain numbers.
struct QueueCounters {
    uint64_t rx_packets = 0;
    uint64_t rx_bytes = 0;
    uint64_t tx_packets = 0;
    uint64_t tx_bytes = 0;
    uint64_t drop_no_buffer = 0;
    uint64_t drop_too_big = 0;
    uint64_t drop_broken = 0;
    uint64_t drop_no_route = 0;
    uint64_t errors = 0;

    // Every field with its name, in a fixed order; drops carry their reason.
    struct Field {
        const char* name;    // "rx_packets", "drops", ...
        const char* reason;  // drops only: "no_buffer", ...; else nullptr
        uint64_t QueueCounters::*member;
    };
    static const std::vector<Field>& fields();
};

struct QueueInfo {
    std::string name;  // "vring0" (vhost-user), "queue0" (DPDK)
    QueueCounters counters;
};

struct FeatureInfo {
    uint64_t bits = 0;
    std::vector<std::string> names;  // decoded, unknown bits as "bit N"
};

struct PortInfo {
    std::string name;
    std::string type;         // "vhost-user", "dpdk"
    std::string path;         // vhost-user socket
    std::string socket_mode;  // "server", "client"
    std::optional<uint32_t> socket_perms;  // server sockets: file mode
    std::string devargs;      // DPDK
    std::string state;        // connected, listening, connecting, stopped, up, down
    bool broken = false;
    std::string broken_reason;
    FeatureInfo features;
    FeatureInfo protocol_features;
    uint32_t queue_pairs = 0;  // configured
    uint64_t live_rings = 0;   // vhost-user rings the PMDs poll or fill now
    std::optional<uint32_t> mtu;
    std::vector<std::string> macs;  // DPDK: the device's; vhost-user: learned in the L2 table
    uint64_t connections = 0;
    std::vector<QueueInfo> queues;
};

struct PmdSourceInfo {
    std::string port;
    std::string queue;
};

struct PmdInfo {
    uint32_t index = 0;
    unsigned core = 0;
    std::vector<PmdSourceInfo> sources;
    bool sleeping = false;
    uint64_t busy_polls = 0;
    uint64_t idle_polls = 0;
    uint64_t busy_cycles = 0;
    uint64_t idle_cycles = 0;
    uint64_t sleeps = 0;
    uint64_t wakeups = 0;
    uint64_t timeouts = 0;
    uint64_t backouts = 0;
    uint64_t streamed_frames = 0;
    uint64_t store_switches = 0;
    // busy_cycles / (busy_cycles + idle_cycles), 0 before the first poll.
    [[nodiscard]] double busy_share() const noexcept;
};

struct FdbInfo {
    std::string mac;
    std::string port;
    uint32_t age_s = 0;
};

struct Model {
    std::vector<PortInfo> ports;
    std::vector<PmdInfo> pmds;
    std::vector<FdbInfo> fdb;
    std::string switch_mode;
};

// Decodes virtio (VIRTIO 1.2 §5.1.3, §6) and vhost-user protocol feature bits
// into their names.
[[nodiscard]] FeatureInfo decode_features(uint64_t bits);
[[nodiscard]] FeatureInfo decode_protocol_features(uint64_t bits);

// Collects the model and implements `stats clear`. The data path's counters
// have a single writer each (the PMD), so the control thread must not write
// them: clearing records the current values as a baseline that later reads
// subtract (a counter found below its baseline belongs to a queue created
// since, and starts from 0).
class Introspector {
public:
    using EndpointLookup = std::function<const VhostEndpoint*(const std::string& port)>;

    Introspector(const dataplane::Dataplane& dataplane, EndpointLookup endpoints);

    [[nodiscard]] Model collect() const;
    void clear_stats();
    // A removed port's baseline must not apply to a new port of that name.
    void forget_port(const std::string& name);

private:
    [[nodiscard]] std::vector<PortInfo> raw_ports() const;
    [[nodiscard]] std::vector<PmdInfo> raw_pmds() const;

    const dataplane::Dataplane& dataplane_;
    EndpointLookup endpoints_;
    std::map<std::pair<std::string, std::string>, QueueCounters> queue_base_;  // (port, queue)
    std::map<uint32_t, PmdInfo> pmd_base_;
};

} // namespace vhostd::daemon
