#pragma once
// The rig the PMD tests share (pmd_*_test.cpp): Pmd::poll_once driven synchronously over hand-built snapshots: guests with
// real memfd memory, fake drivers on their rings, real call eventfds. What a
// guest sends on its TX ring must arrive, byte-exact, in the right guests' RX
// rings, with the source chains completed, counters right, and the guests
// signalled only when they asked.

#include "dataplane/pmd.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "dataplane/idle.hpp"
#include "dataplane/l2_table.hpp"
#include "dataplane/qsbr.hpp"
#include "dataplane/snapshot.hpp"
#include "protocol/unique_fd.hpp"
#include "protocol/wire.hpp"
#include "tests/fakes/fake_split_driver.hpp"
#include "tests/fakes/guest_memory.hpp"
#include "virtio/net_hdr.hpp"
#include "virtio/split_queue.hpp"
#include "virtio/split_ring.hpp"

namespace vhostd::dataplane::pmd_testing {

using protocol::bit;
namespace vf = protocol::vf;

constexpr uint64_t kV1 = bit(vf::kVersion1);
constexpr uint64_t kMrg = bit(vf::kNetMrgRxbuf);
constexpr uint64_t kEventIdx = bit(vf::kRingEventIdx);
constexpr uint64_t kKiB = 1024;
constexpr uint64_t kMiB = 1024 * kKiB;

inline UniqueFd make_eventfd() {
    UniqueFd fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!fd) {
        throw std::system_error(errno, std::system_category(), "eventfd");
    }
    return fd;
}

// The eventfd counter (how many times it was written since the last read),
// without blocking: 0 if it was not written.
inline uint64_t take_calls(int fd) {
    uint64_t v = 0;
    const ssize_t n = ::read(fd, &v, sizeof(v));
    if (n == static_cast<ssize_t>(sizeof(v))) {
        return v;
    }
    if (n < 0 && errno != EAGAIN) {
        throw std::system_error(errno, std::system_category(), "read eventfd");
    }
    return 0;
}

inline Mac mac_of(uint8_t n) { return Mac{0x02, 0x00, 0x00, 0x00, 0x00, n}; }
inline const Mac kBroadcast{0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

// An Ethernet frame of `len` bytes (header included): dst, src, a local
// experimental EtherType, then a pattern that depends on `seed`.
inline std::vector<uint8_t> eth(const Mac& dst, const Mac& src, size_t len, uint8_t seed = 1) {
    std::vector<uint8_t> f(len);
    for (size_t i = 0; i < len; ++i) {
        f[i] = static_cast<uint8_t>(seed + i * 7 + (i >> 8));
    }
    for (size_t i = 0; i < 6 && i < len; ++i) {
        f[i] = dst[i];
    }
    for (size_t i = 0; i < 6 && 6 + i < len; ++i) {
        f[6 + i] = src[i];
    }
    if (len >= 14) {
        f[12] = 0x88;
        f[13] = 0xb5;
    }
    return f;
}

// What a guest driver got on its RX ring: one frame, perhaps over several
// chains (mergeable buffers).
struct Received {
    virtio::VirtioNetHdrMrg hdr{};
    std::vector<uint8_t> frame;
    std::vector<uint32_t> used_lens;  // one per chain
};

// A guest with one queue pair: vring 0 (RX, we write) and vring 1 (TX, we
// read), both in one memfd. RX buffers come from the upper half of its
// memory, TX buffers from the lower half.
class Guest {
public:
    explicit Guest(PortId id, uint64_t features = kV1, uint16_t ring_size = 256)
        : id(id), mem(16 * kMiB), table(mem.table()),
          rx(mem, ring_size, mem.gpa_base(), mem.gpa_base() + 8 * kMiB),
          tx(mem, ring_size, mem.gpa_base() + 512 * kKiB, mem.gpa_base() + 1 * kMiB), rx_call(make_eventfd()),
          tx_call(make_eventfd()) {
        rings.memory = table;
        VhostRings::Ring r;
        r.ring = rx.ring(*table, features);
        r.slot = &rx_slot;
        r.call_fd = rx_call.get();
        r.index = 0;
        rx_slot.state = virtio::QueueState::start(r.ring, 0);
        rings.rx.push_back(r);
        VhostRings::Ring t;
        t.ring = tx.ring(*table, features);
        t.slot = &tx_slot;
        t.call_fd = tx_call.get();
        t.index = 1;
        tx_slot.state = virtio::QueueState::start(t.ring, 0);
        rings.tx.push_back(t);
    }
    Guest(const Guest&) = delete;
    Guest& operator=(const Guest&) = delete;

    [[nodiscard]] uint32_t hdr_len() const { return rings.rx[0].ring.hdr_len; }
    [[nodiscard]] bool mrg() const { return rings.rx[0].ring.mrg_rxbuf; }

    // TX: a virtio-net header (zero) and `frame`, cut into descriptors of
    // the lengths in `split`. Returns the chain's head.
    uint16_t send(const std::vector<uint8_t>& frame, const std::vector<uint32_t>& split = {}) {
        std::vector<uint8_t> bytes(hdr_len(), 0);
        bytes.insert(bytes.end(), frame.begin(), frame.end());
        return tx.send(bytes, split);
    }
    // RX: `n` chains of one buffer of `len` bytes each.
    void post_rx(size_t n, uint32_t len = 2048) {
        for (size_t i = 0; i < n; ++i) {
            rx.post_rx({len});
        }
    }

    // Frames the device completed on the RX ring since the last call.
    std::vector<Received> received() {
        std::vector<Received> out;
        const auto used = rx.take_used();
        for (size_t i = 0; i < used.size();) {
            Received r;
            const auto first = rx.read_chain(static_cast<uint16_t>(used[i].id), used[i].len);
            if (first.size() < hdr_len()) {
                throw std::runtime_error("RX used element shorter than the header");
            }
            std::memcpy(&r.hdr, first.data(), hdr_len());
            const size_t chains = mrg() ? r.hdr.num_buffers : 1;
            if (chains == 0 || i + chains > used.size()) {
                throw std::runtime_error("bad num_buffers " + std::to_string(chains));
            }
            for (size_t k = 0; k < chains; ++k) {
                const auto bytes = rx.read_chain(static_cast<uint16_t>(used[i + k].id), used[i + k].len);
                r.frame.insert(r.frame.end(), bytes.begin() + (k == 0 ? hdr_len() : 0), bytes.end());
                r.used_lens.push_back(used[i + k].len);
            }
            out.push_back(std::move(r));
            i += chains;
        }
        return out;
    }

    [[nodiscard]] PortEntry entry(std::optional<PortId> peer = std::nullopt) {
        PortEntry e;
        e.kind = PortKind::VhostUser;
        e.id = id;
        e.vhost = &rings;
        e.health = &health;
        e.peer = peer;
        return e;
    }

    // Counters of the guest's TX ring (rx_* = frames it gave us) and of its
    // RX ring (tx_* = frames we gave it).
    QueueStats& from_guest() { return tx_slot.stats; }
    QueueStats& to_guest() { return rx_slot.stats; }

    PortId id;
    fakes::GuestMemory mem;
    std::shared_ptr<const protocol::MemoryTable> table;
    fakes::FakeSplitDriver rx;
    fakes::FakeSplitDriver tx;
    UniqueFd rx_call;
    UniqueFd tx_call;
    RingSlot rx_slot;
    RingSlot tx_slot;
    PortHealth health;
    VhostRings rings;
};

// One PMD (index 0) over a snapshot the test builds port by port.
struct Harness {
    explicit Harness(config::SwitchMode mode, uint32_t burst = 32) {
        snap.mode = mode;
        snap.l2 = &l2;
        snap.burst = burst;
        snap.sources.resize(1);
    }
    // Ports must be added in id order (the snapshot is indexed by PortId).
    void add(Guest& g, std::optional<PortId> peer = std::nullopt) {
        ASSERT_EQ(g.id, snap.ports.size());
        snap.ports.push_back(g.entry(peer));
        snap.sources[0].push_back(Source{g.id, &g.rings.tx[0], 0});
    }
    // A configured vhost-user port whose front-end is not connected.
    void add_disconnected(PortId id, PortHealth& health, std::optional<PortId> peer = std::nullopt) {
        ASSERT_EQ(id, snap.ports.size());
        PortEntry e;
        e.kind = PortKind::VhostUser;
        e.id = id;
        e.health = &health;
        e.peer = peer;
        snap.ports.push_back(e);
    }
    bool poll() { return pmd.poll_once(snap); }

    L2Table l2{1024, 300};
    Qsbr qsbr{1};
    std::atomic<const Snapshot*> current{nullptr};
    std::atomic<bool> stop{false};
    PmdControl control;
    Snapshot snap;
    Pmd pmd{0, qsbr, current, stop, control};
};

inline void expect_counts(const QueueStats& s, uint64_t rx_packets, uint64_t rx_bytes, uint64_t tx_packets,
                   uint64_t tx_bytes) {
    EXPECT_EQ(s.rx_packets.get(), rx_packets);
    EXPECT_EQ(s.rx_bytes.get(), rx_bytes);
    EXPECT_EQ(s.tx_packets.get(), tx_packets);
    EXPECT_EQ(s.tx_bytes.get(), tx_bytes);
}

inline uint64_t drops(const QueueStats& s) {
    return s.drop_no_buffer.get() + s.drop_too_big.get() + s.drop_broken.get() + s.drop_no_route.get() +
           s.errors.get();
}

} // namespace vhostd::dataplane::pmd_testing
