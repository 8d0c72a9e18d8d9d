#include "daemon/introspection.hpp"

#include <fmt/format.h>

#include "daemon/vhost_endpoint.hpp"
#include "dataplane/dataplane.hpp"
#include "dataplane/dpdk_port.hpp"

namespace vhostd::daemon {

namespace {

struct BitName {
    unsigned bit;
    const char* name;
};

// VIRTIO 1.2 §5.1.3 (network device feature bits) and §6 (reserved
// feature bits), plus the vhost-specific bits 26 and 30 (vhost-user.rst).
constexpr BitName kVirtioBits[] = {
    {0, "VIRTIO_NET_F_CSUM"},
    {1, "VIRTIO_NET_F_GUEST_CSUM"},
    {2, "VIRTIO_NET_F_CTRL_GUEST_OFFLOADS"},
    {3, "VIRTIO_NET_F_MTU"},
    {5, "VIRTIO_NET_F_MAC"},
    {7, "VIRTIO_NET_F_GUEST_TSO4"},
    {8, "VIRTIO_NET_F_GUEST_TSO6"},
    {9, "VIRTIO_NET_F_GUEST_ECN"},
    {10, "VIRTIO_NET_F_GUEST_UFO"},
    {11, "VIRTIO_NET_F_HOST_TSO4"},
    {12, "VIRTIO_NET_F_HOST_TSO6"},
    {13, "VIRTIO_NET_F_HOST_ECN"},
    {14, "VIRTIO_NET_F_HOST_UFO"},
    {15, "VIRTIO_NET_F_MRG_RXBUF"},
    {16, "VIRTIO_NET_F_STATUS"},
    {17, "VIRTIO_NET_F_CTRL_VQ"},
    {18, "VIRTIO_NET_F_CTRL_RX"},
    {19, "VIRTIO_NET_F_CTRL_VLAN"},
    {20, "VIRTIO_NET_F_CTRL_RX_EXTRA"},
    {21, "VIRTIO_NET_F_GUEST_ANNOUNCE"},
    {22, "VIRTIO_NET_F_MQ"},
    {23, "VIRTIO_NET_F_CTRL_MAC_ADDR"},
    {24, "VIRTIO_F_NOTIFY_ON_EMPTY"},
    {26, "VHOST_F_LOG_ALL"},
    {27, "VIRTIO_F_ANY_LAYOUT"},
    {28, "VIRTIO_RING_F_INDIRECT_DESC"},
    {29, "VIRTIO_RING_F_EVENT_IDX"},
    {30, "VHOST_USER_F_PROTOCOL_FEATURES"},
    {32, "VIRTIO_F_VERSION_1"},
    {33, "VIRTIO_F_ACCESS_PLATFORM"},
    {34, "VIRTIO_F_RING_PACKED"},
    {35, "VIRTIO_F_IN_ORDER"},
    {36, "VIRTIO_F_ORDER_PLATFORM"},
    {37, "VIRTIO_F_SR_IOV"},
    {38, "VIRTIO_F_NOTIFICATION_DATA"},
    {39, "VIRTIO_F_NOTIF_CONFIG_DATA"},
    {40, "VIRTIO_F_RING_RESET"},
    {59, "VIRTIO_NET_F_GUEST_HDRLEN"},
    {60, "VIRTIO_NET_F_RSS"},
    {61, "VIRTIO_NET_F_RSC_EXT"},
    {62, "VIRTIO_NET_F_STANDBY"},
    {63, "VIRTIO_NET_F_SPEED_DUPLEX"},
};

// vhost-user.rst, "Protocol features".
constexpr BitName kProtocolBits[] = {
    {0, "VHOST_USER_PROTOCOL_F_MQ"},
    {1, "VHOST_USER_PROTOCOL_F_LOG_SHMFD"},
    {2, "VHOST_USER_PROTOCOL_F_RARP"},
    {3, "VHOST_USER_PROTOCOL_F_REPLY_ACK"},
    {4, "VHOST_USER_PROTOCOL_F_NET_MTU"},
    {5, "VHOST_USER_PROTOCOL_F_BACKEND_REQ"},
    {6, "VHOST_USER_PROTOCOL_F_CROSS_ENDIAN"},
    {7, "VHOST_USER_PROTOCOL_F_CRYPTO_SESSION"},
    {8, "VHOST_USER_PROTOCOL_F_PAGEFAULT"},
    {9, "VHOST_USER_PROTOCOL_F_CONFIG"},
    {10, "VHOST_USER_PROTOCOL_F_BACKEND_SEND_FD"},
    {11, "VHOST_USER_PROTOCOL_F_HOST_NOTIFIER"},
    {12, "VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD"},
    {13, "VHOST_USER_PROTOCOL_F_RESET_DEVICE"},
    {14, "VHOST_USER_PROTOCOL_F_INBAND_NOTIFICATIONS"},
    {15, "VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS"},
    {16, "VHOST_USER_PROTOCOL_F_STATUS"},
    {17, "VHOST_USER_PROTOCOL_F_XEN_MMAP"},
    {18, "VHOST_USER_PROTOCOL_F_SHARED_OBJECT"},
    {19, "VHOST_USER_PROTOCOL_F_DEVICE_STATE"},
};

template <size_t N>
FeatureInfo decode(uint64_t bits, const BitName (&table)[N]) {
    FeatureInfo info;
    info.bits = bits;
    for (unsigned b = 0; b < 64; ++b) {
        if ((bits & (uint64_t{1} << b)) == 0) {
            continue;
        }
        const char* name = nullptr;
        for (const BitName& entry : table) {
            if (entry.bit == b) {
                name = entry.name;
            }
        }
        info.names.push_back(name != nullptr ? std::string(name) : fmt::format("bit {}", b));
    }
    return info;
}

std::string mac_text(const dataplane::Mac& mac) {
    return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", mac[0], mac[1], mac[2], mac[3],
                       mac[4], mac[5]);
}

QueueCounters read(const dataplane::QueueStats& s) {
    QueueCounters c;
    c.rx_packets = s.rx_packets.get();
    c.rx_bytes = s.rx_bytes.get();
    c.tx_packets = s.tx_packets.get();
    c.tx_bytes = s.tx_bytes.get();
    c.drop_no_buffer = s.drop_no_buffer.get();
    c.drop_too_big = s.drop_too_big.get();
    c.drop_broken = s.drop_broken.get();
    c.drop_no_route = s.drop_no_route.get();
    c.errors = s.errors.get();
    return c;
}

// `now - base`, or `now` when the counter restarted below its baseline.
QueueCounters since(const QueueCounters& now, const QueueCounters& base) {
    for (const auto& f : QueueCounters::fields()) {
        if (now.*f.member < base.*f.member) {
            return now;
        }
    }
    QueueCounters out;
    for (const auto& f : QueueCounters::fields()) {
        out.*f.member = now.*f.member - base.*f.member;
    }
    return out;
}

} // namespace

const std::vector<QueueCounters::Field>& QueueCounters::fields() {
    static const std::vector<Field> kFields{
        {"rx_packets", nullptr, &QueueCounters::rx_packets},
        {"rx_bytes", nullptr, &QueueCounters::rx_bytes},
        {"tx_packets", nullptr, &QueueCounters::tx_packets},
        {"tx_bytes", nullptr, &QueueCounters::tx_bytes},
        {"drops", "no_buffer", &QueueCounters::drop_no_buffer},
        {"drops", "too_big", &QueueCounters::drop_too_big},
        {"drops", "broken", &QueueCounters::drop_broken},
        {"drops", "no_route", &QueueCounters::drop_no_route},
        {"errors", nullptr, &QueueCounters::errors},
    };
    return kFields;
}

double PmdInfo::busy_share() const noexcept {
    const uint64_t total = busy_cycles + idle_cycles;
    return total == 0 ? 0.0 : static_cast<double>(busy_cycles) / static_cast<double>(total);
}

FeatureInfo decode_features(uint64_t bits) { return decode(bits, kVirtioBits); }

FeatureInfo decode_protocol_features(uint64_t bits) { return decode(bits, kProtocolBits); }

Introspector::Introspector(const dataplane::Dataplane& dataplane, EndpointLookup endpoints)
    : dataplane_(dataplane), endpoints_(std::move(endpoints)) {}

std::vector<PortInfo> Introspector::raw_ports() const {
    const auto views = dataplane_.port_views();
    const auto fdb = dataplane_.fdb();
    const config::Config& cfg = dataplane_.config();
    std::vector<PortInfo> out;
    for (const auto& v : views) {
        PortInfo p;
        p.name = *v.name;
        p.broken = v.health->broken.load(std::memory_order_acquire);
        if (p.broken) {
            const char* reason = v.health->reason.load(std::memory_order_relaxed);
            p.broken_reason = reason != nullptr ? reason : "ring violation";
        }
        if (v.vhost != nullptr) {
            p.type = config::to_string(config::PortType::VhostUser);
            p.queue_pairs = v.vhost->queue_pairs();
            p.live_rings = v.vhost->live_rings();
            if (const config::PortConfig* pc = cfg.find_port(p.name)) {
                p.mtu = pc->mtu;
            }
            if (const VhostEndpoint* ep = endpoints_(p.name)) {
                const auto st = ep->state();
                p.path = ep->path();
                p.socket_mode = config::to_string(ep->mode());
                if (ep->mode() == config::SocketMode::Server) {
                    p.socket_perms = ep->socket_perms();
                }
                p.state = st.state;
                p.features = decode_features(st.features);
                p.protocol_features = decode_protocol_features(st.protocol_features);
                if (st.mtu) {
                    p.mtu = st.mtu;
                }
                p.connections = st.connections;
            }
            for (const auto& e : fdb) {
                if (e.port == v.id) {
                    p.macs.push_back(mac_text(e.mac));
                }
            }
            for (uint32_t q = 0; q < v.vhost->vrings(); ++q) {
                p.queues.push_back(
                    QueueInfo{fmt::format("vring{}", q), read(v.vhost->slot(q).stats)});
            }
        } else {
            p.type = config::to_string(config::PortType::Dpdk);
            p.devargs = v.dpdk->devargs();
            p.state = v.dpdk->link_up() ? "up" : "down";
            p.queue_pairs = v.dpdk->rx_queues();
            p.mtu = v.dpdk->mtu();
            p.macs.push_back(dataplane::format_mac(v.dpdk->mac()));
            for (uint16_t q = 0; q < v.dpdk_queues; ++q) {
                p.queues.push_back(QueueInfo{fmt::format("queue{}", q), read(v.dpdk_slots[q].stats)});
            }
        }
        out.push_back(std::move(p));
    }
    return out;
}

std::vector<PmdInfo> Introspector::raw_pmds() const {
    const config::Config& cfg = dataplane_.config();
    const dataplane::Snapshot* snap = dataplane_.current_snapshot();
    const auto views = dataplane_.port_views();
    auto port_name = [&](dataplane::PortId id) -> std::string {
        for (const auto& v : views) {
            if (v.id == id) {
                return *v.name;
            }
        }
        return fmt::format("port{}", id);
    };
    std::vector<PmdInfo> out;
    for (size_t i = 0; i < dataplane_.pmd_count(); ++i) {
        const dataplane::PmdControl& c = dataplane_.pmd_control(i);
        PmdInfo p;
        p.index = static_cast<uint32_t>(i);
        p.core = i < cfg.pmd_cores.size() ? cfg.pmd_cores[i] : 0;
        p.sleeping = c.word.load(std::memory_order_relaxed) == dataplane::kSleeping;
        p.busy_polls = c.busy_polls.get();
        p.idle_polls = c.idle_polls.get();
        p.busy_cycles = c.busy_cycles.get();
        p.idle_cycles = c.idle_cycles.get();
        p.sleeps = c.sleeps.get();
        p.wakeups = c.kick_wakeups.get();
        p.timeouts = c.timeouts.get();
        p.backouts = c.backouts.get();
        p.streamed_frames = c.streamed_frames.get();
        p.store_switches = c.store_switches.get();
        if (snap != nullptr && i < snap->sources.size()) {
            for (const auto& s : snap->sources[i]) {
                // A guest TX ring is vring 2q+1; a DPDK source is an rx queue.
                std::string queue = s.vring != nullptr ? fmt::format("vring{}", s.vring->index)
                                                       : fmt::format("queue{}", s.dpdk_queue);
                p.sources.push_back(PmdSourceInfo{port_name(s.port), std::move(queue)});
            }
        }
        out.push_back(std::move(p));
    }
    return out;
}

Model Introspector::collect() const {
    Model m;
    m.switch_mode = config::to_string(dataplane_.config().switch_mode);
    m.ports = raw_ports();
    for (auto& port : m.ports) {
        for (auto& q : port.queues) {
            auto it = queue_base_.find({port.name, q.name});
            if (it != queue_base_.end()) {
                q.counters = since(q.counters, it->second);
            }
        }
    }
    m.pmds = raw_pmds();
    for (auto& p : m.pmds) {
        auto it = pmd_base_.find(p.index);
        if (it == pmd_base_.end()) {
            continue;
        }
        const PmdInfo& b = it->second;
        auto sub = [](uint64_t now, uint64_t base) { return now >= base ? now - base : now; };
        p.busy_polls = sub(p.busy_polls, b.busy_polls);
        p.idle_polls = sub(p.idle_polls, b.idle_polls);
        p.busy_cycles = sub(p.busy_cycles, b.busy_cycles);
        p.idle_cycles = sub(p.idle_cycles, b.idle_cycles);
        p.sleeps = sub(p.sleeps, b.sleeps);
        p.wakeups = sub(p.wakeups, b.wakeups);
        p.timeouts = sub(p.timeouts, b.timeouts);
        p.backouts = sub(p.backouts, b.backouts);
        p.streamed_frames = sub(p.streamed_frames, b.streamed_frames);
        p.store_switches = sub(p.store_switches, b.store_switches);
    }
    const auto views = dataplane_.port_views();
    for (const auto& e : dataplane_.fdb()) {
        std::string port = fmt::format("port{}", e.port);
        for (const auto& v : views) {
            if (v.id == e.port) {
                port = *v.name;
            }
        }
        m.fdb.push_back(FdbInfo{mac_text(e.mac), std::move(port), e.age_s});
    }
    return m;
}

void Introspector::forget_port(const std::string& name) {
    std::erase_if(queue_base_, [&](const auto& entry) { return entry.first.first == name; });
}

void Introspector::clear_stats() {
    queue_base_.clear();
    for (const auto& port : raw_ports()) {
        for (const auto& q : port.queues) {
            queue_base_[{port.name, q.name}] = q.counters;
        }
    }
    pmd_base_.clear();
    for (const auto& p : raw_pmds()) {
        pmd_base_[p.index] = p;
    }
}

} // namespace vhostd::daemon
