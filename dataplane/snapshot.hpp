#pragma once
// What a PMD thread reads on every poll-loop iteration: one immutable
// Snapshot, published by the control thread through an atomic pointer and
// reclaimed after a QSBR grace period (dataplane/qsbr.hpp). Everything a PMD
// touches is reachable from here, and nothing in it changes while published;
// the mutable per-queue state (indices, counters, locks) lives in RingSlot
// objects owned by the ports, whose addresses never change.

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "config/config.hpp"
#include "dataplane/l2_table.hpp"
#include "dataplane/stats.hpp"
#include "protocol/memory_table.hpp"
#include "virtio/split_ring.hpp"

namespace vhostd::dataplane {

class DpdkPort;

// Per vring (or DPDK queue) state that outlives snapshots.
struct alignas(64) RingSlot {
    virtio::QueueState state;
    QueueStats stats;
    // Taken while delivering into this ring when several PMDs may deliver to
    // it (more than one PMD); uncontended otherwise and then not taken at all.
    std::atomic<bool> lock{false};
};

// Port health, shared by the port's rings: a ring violation breaks the port
// until the front-end restarts its rings (DESIGN.md "Trust boundaries").
struct alignas(64) PortHealth {
    std::atomic<bool> broken{false};
    std::atomic<const char*> reason{nullptr};
    std::atomic<bool> reported{false};  // the control thread has logged it
};

// The live rings of one connected vhost-user port.
struct VhostRings {
    struct Ring {
        virtio::SplitRing ring;
        RingSlot* slot = nullptr;
        int call_fd = -1;  // borrowed from the session; valid while published
        int kick_fd = -1;  // borrowed; KickRegistry registers a dup with the polling PMD
        uint32_t index = 0;
        uint64_t generation = 0;  // changes when the front-end restarts the ring
        bool discard = false;     // a disabled TX ring: drained, its frames dropped
    };
    std::shared_ptr<const protocol::MemoryTable> memory;  // keeps the mappings alive
    std::vector<Ring> rx;  // guest receive queues (even vrings): we write
    std::vector<Ring> tx;  // guest transmit queues (odd vrings): we read
    std::optional<uint32_t> mtu;
};

enum class PortKind : uint8_t { VhostUser, Dpdk };

struct PortEntry {
    PortKind kind = PortKind::VhostUser;
    PortId id = 0;
    const VhostRings* vhost = nullptr;  // nullptr or empty while not connected
    DpdkPort* dpdk = nullptr;
    RingSlot* dpdk_slots = nullptr;     // one per DPDK queue
    uint16_t dpdk_queues = 0;
    PortHealth* health = nullptr;
    std::optional<PortId> peer;         // xconnect peer (may be itself)
};

// One thing a PMD polls: a guest's TX ring or a DPDK rx queue.
struct Source {
    PortId port = 0;
    const VhostRings::Ring* vring = nullptr;  // vhost-user
    uint16_t dpdk_queue = 0;                  // DPDK
};

struct Snapshot {
    std::vector<PortEntry> ports;                  // indexed by PortId
    std::vector<std::vector<Source>> sources;      // one list per PMD
    // Per PMD: every source can kick it awake (KickRegistry), so it may sleep
    // with no timeout; otherwise idle.max_sleep_us bounds each sleep.
    std::vector<uint8_t> kickable;
    std::vector<std::shared_ptr<const VhostRings>> hold;  // owns what `ports` points at
    config::SwitchMode mode = config::SwitchMode::L2;
    L2Table* l2 = nullptr;
    bool shared_delivery = false;  // more than one PMD: take RingSlot::lock
    uint32_t burst = 32;
    config::IdleConfig idle;
    config::RxStores rx_stores = config::RxStores::Auto;
};

} // namespace vhostd::dataplane
