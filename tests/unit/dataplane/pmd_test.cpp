// Pmd::poll_once driven synchronously over hand-built snapshots: guests with
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

namespace vhostd::dataplane {
namespace {

using protocol::bit;
namespace vf = protocol::vf;

constexpr uint64_t kV1 = bit(vf::kVersion1);
constexpr uint64_t kMrg = bit(vf::kNetMrgRxbuf);
constexpr uint64_t kEventIdx = bit(vf::kRingEventIdx);
constexpr uint64_t kKiB = 1024;
constexpr uint64_t kMiB = 1024 * kKiB;

UniqueFd make_eventfd() {
    UniqueFd fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!fd) {
        throw std::system_error(errno, std::system_category(), "eventfd");
    }
    return fd;
}

// The eventfd counter (how many times it was written since the last read),
// without blocking: 0 if it was not written.
uint64_t take_calls(int fd) {
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

Mac mac_of(uint8_t n) { return Mac{0x02, 0x00, 0x00, 0x00, 0x00, n}; }
const Mac kBroadcast{0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

// An Ethernet frame of `len` bytes (header included): dst, src, a local
// experimental EtherType, then a pattern that depends on `seed`.
std::vector<uint8_t> eth(const Mac& dst, const Mac& src, size_t len, uint8_t seed = 1) {
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

void expect_counts(const QueueStats& s, uint64_t rx_packets, uint64_t rx_bytes, uint64_t tx_packets,
                   uint64_t tx_bytes) {
    EXPECT_EQ(s.rx_packets.get(), rx_packets);
    EXPECT_EQ(s.rx_bytes.get(), rx_bytes);
    EXPECT_EQ(s.tx_packets.get(), tx_packets);
    EXPECT_EQ(s.tx_bytes.get(), tx_bytes);
}

uint64_t drops(const QueueStats& s) {
    return s.drop_no_buffer.get() + s.drop_too_big.get() + s.drop_broken.get() + s.drop_no_route.get() +
           s.errors.get();
}

// ---- Cross-connect ----

TEST(PmdXconnect, ReflectReturnsTheFrameByteExact) {
    Guest p(0);
    Harness h(config::SwitchMode::Xconnect);
    h.add(p, /*peer=*/PortId{0});
    p.post_rx(4);
    const auto frame = eth(mac_of(9), mac_of(1), 60);
    const uint16_t head = p.send(frame, {5, 20});  // header split over two descriptors

    EXPECT_TRUE(h.poll());

    const auto tx_used = p.tx.take_used();
    ASSERT_EQ(tx_used.size(), 1u);
    EXPECT_EQ(tx_used[0].id, head);
    EXPECT_EQ(tx_used[0].len, 0u) << "TX chains are read-only: used.len 0";

    const auto got = p.received();
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].frame, frame);
    ASSERT_EQ(got[0].used_lens.size(), 1u);
    EXPECT_EQ(got[0].used_lens[0], 12u + frame.size());
    EXPECT_EQ(got[0].hdr.hdr.flags, 0);
    EXPECT_EQ(got[0].hdr.hdr.gso_type, virtio::kNetHdrGsoNone);
    EXPECT_EQ(got[0].hdr.num_buffers, 1);

    expect_counts(p.from_guest(), 1, frame.size(), 0, 0);
    expect_counts(p.to_guest(), 0, 0, 1, frame.size());
    EXPECT_EQ(drops(p.from_guest()) + drops(p.to_guest()), 0u);
    EXPECT_FALSE(p.health.broken.load());

    EXPECT_FALSE(h.poll()) << "nothing left to do";
    EXPECT_TRUE(p.received().empty());
}

TEST(PmdXconnect, ReflectsABurstInOrder) {
    Guest p(0);
    Harness h(config::SwitchMode::Xconnect);
    h.add(p, PortId{0});
    p.post_rx(16);
    std::vector<std::vector<uint8_t>> sent;
    uint64_t bytes = 0;
    for (uint8_t i = 0; i < 10; ++i) {
        sent.push_back(eth(mac_of(9), mac_of(1), 60 + 97 * i, i));
        bytes += sent.back().size();
        p.send(sent.back(), i % 2 == 0 ? std::vector<uint32_t>{} : std::vector<uint32_t>{12, 3});
    }
    EXPECT_TRUE(h.poll());
    EXPECT_EQ(p.tx.take_used().size(), 10u);
    const auto got = p.received();
    ASSERT_EQ(got.size(), 10u);
    for (size_t i = 0; i < got.size(); ++i) {
        EXPECT_EQ(got[i].frame, sent[i]) << "frame " << i;
    }
    expect_counts(p.from_guest(), 10, bytes, 0, 0);
    expect_counts(p.to_guest(), 0, 0, 10, bytes);
}

TEST(PmdXconnect, AToBGoesOnlyToB) {
    Guest a(0);
    Guest b(1);
    Harness h(config::SwitchMode::Xconnect);
    h.add(a, PortId{1});
    h.add(b, PortId{0});
    a.post_rx(4);
    b.post_rx(4);
    const auto ab = eth(mac_of(2), mac_of(1), 100, 1);
    const auto ba = eth(mac_of(1), mac_of(2), 200, 2);
    a.send(ab);
    b.send(ba);
    EXPECT_TRUE(h.poll());

    const auto at_b = b.received();
    ASSERT_EQ(at_b.size(), 1u);
    EXPECT_EQ(at_b[0].frame, ab);
    const auto at_a = a.received();
    ASSERT_EQ(at_a.size(), 1u);
    EXPECT_EQ(at_a[0].frame, ba);
    EXPECT_EQ(a.tx.take_used().size(), 1u);
    EXPECT_EQ(b.tx.take_used().size(), 1u);
    expect_counts(a.from_guest(), 1, ab.size(), 0, 0);
    expect_counts(b.to_guest(), 0, 0, 1, ab.size());
    expect_counts(b.from_guest(), 1, ba.size(), 0, 0);
    expect_counts(a.to_guest(), 0, 0, 1, ba.size());
}

TEST(PmdXconnect, PortWithoutPeerIsNoRoute) {
    Guest a(0);
    Harness h(config::SwitchMode::Xconnect);
    h.add(a);  // in no pair
    a.post_rx(4);
    a.send(eth(mac_of(2), mac_of(1), 64));
    EXPECT_TRUE(h.poll());
    EXPECT_EQ(a.tx.take_used().size(), 1u) << "the chain is completed anyway";
    EXPECT_TRUE(a.received().empty());
    EXPECT_EQ(a.from_guest().rx_packets.get(), 1u);
    EXPECT_EQ(a.from_guest().drop_no_route.get(), 1u);
}

// stats.hpp: drop_no_route counts "no destination (xconnect peer down, ...)".
// A peer whose front-end is not connected is down; the frame must not vanish
// without a trace.
TEST(PmdXconnect, FrameToADisconnectedPeerIsCountedAsNoRoute) {
    Guest a(0);
    PortHealth b_health;
    Harness h(config::SwitchMode::Xconnect);
    h.add(a, PortId{1});
    h.add_disconnected(1, b_health, PortId{0});
    a.send(eth(mac_of(2), mac_of(1), 64));
    EXPECT_TRUE(h.poll());
    EXPECT_EQ(a.tx.take_used().size(), 1u);
    EXPECT_EQ(a.from_guest().rx_packets.get(), 1u);
    EXPECT_EQ(a.from_guest().drop_no_route.get(), 1u) << "frame to a down xconnect peer dropped uncounted";
}

// A disabled TX ring (vhost-user.rst "Ring states") is drained: its chains
// are completed, its frames discarded and counted.
TEST(PmdXconnect, DisabledTxRingIsDrainedAndDiscarded) {
    Guest a(0);
    Guest b(1);
    a.rings.tx[0].discard = true;
    Harness h(config::SwitchMode::Xconnect);
    h.add(a, PortId{1});
    h.add(b, PortId{0});
    b.post_rx(4);
    a.send(eth(mac_of(2), mac_of(1), 60));
    a.send(eth(mac_of(2), mac_of(1), 60));
    EXPECT_TRUE(h.poll());
    EXPECT_EQ(a.tx.take_used().size(), 2u);
    EXPECT_TRUE(b.received().empty());
    EXPECT_EQ(a.from_guest().drop_no_route.get(), 2u);
    EXPECT_EQ(b.to_guest().tx_packets.get(), 0u);
}

// ---- L2 switching ----

TEST(PmdL2, UnknownUnicastFloodsToEveryOtherPort) {
    Guest a(0);
    Guest b(1);
    Guest c(2);
    Harness h(config::SwitchMode::L2);
    for (Guest* g : {&a, &b, &c}) {
        h.add(*g);
        g->post_rx(4);
    }
    const auto f = eth(mac_of(42), mac_of(1), 80);
    a.send(f);
    EXPECT_TRUE(h.poll());
    EXPECT_TRUE(a.received().empty()) << "never back out of the source port";
    for (Guest* g : {&b, &c}) {
        const auto got = g->received();
        ASSERT_EQ(got.size(), 1u) << "port " << g->id;
        EXPECT_EQ(got[0].frame, f);
        expect_counts(g->to_guest(), 0, 0, 1, f.size());
    }
    EXPECT_EQ(a.tx.take_used().size(), 1u);
    EXPECT_EQ(a.from_guest().rx_packets.get(), 1u);
    EXPECT_EQ(h.l2.lookup(mac_of(1).data(), L2Table::now_s()), PortId{0}) << "source learned";
}

TEST(PmdL2, BroadcastFloodsEvenWhenTheSourceIsKnown) {
    Guest a(0);
    Guest b(1);
    Guest c(2);
    Harness h(config::SwitchMode::L2);
    for (Guest* g : {&a, &b, &c}) {
        h.add(*g);
        g->post_rx(4);
    }
    c.send(eth(kBroadcast, mac_of(3), 60, 1));
    a.send(eth(kBroadcast, mac_of(1), 60, 2));
    EXPECT_TRUE(h.poll());
    // a's broadcast reached b and c; c's broadcast reached a and b.
    const auto at_a = a.received();
    const auto at_b = b.received();
    const auto at_c = c.received();
    ASSERT_EQ(at_a.size(), 1u);
    ASSERT_EQ(at_b.size(), 2u);
    ASSERT_EQ(at_c.size(), 1u);
    EXPECT_EQ(at_a[0].frame, eth(kBroadcast, mac_of(3), 60, 1));
    EXPECT_EQ(at_c[0].frame, eth(kBroadcast, mac_of(1), 60, 2));
    // Multicast destinations flood too.
    const Mac mcast{0x01, 0x00, 0x5e, 0x00, 0x00, 0x01};
    b.send(eth(mcast, mac_of(2), 60));
    EXPECT_TRUE(h.poll());
    EXPECT_EQ(a.received().size(), 1u);
    EXPECT_EQ(c.received().size(), 1u);
    EXPECT_TRUE(b.received().empty());
}

TEST(PmdL2, LearnedUnicastGoesOnlyToItsPort) {
    Guest a(0);
    Guest b(1);
    Guest c(2);
    Harness h(config::SwitchMode::L2);
    for (Guest* g : {&a, &b, &c}) {
        h.add(*g);
        g->post_rx(8);
    }
    // b announces itself (flooded to a and c); a learns nothing yet about c.
    b.send(eth(kBroadcast, mac_of(2), 60));
    EXPECT_TRUE(h.poll());
    EXPECT_EQ(a.received().size(), 1u);
    EXPECT_EQ(c.received().size(), 1u);

    const auto f = eth(mac_of(2), mac_of(1), 300);
    a.send(f);
    EXPECT_TRUE(h.poll());
    const auto at_b = b.received();
    ASSERT_EQ(at_b.size(), 1u);
    EXPECT_EQ(at_b[0].frame, f);
    EXPECT_TRUE(c.received().empty()) << "a known MAC is not flooded";
    EXPECT_TRUE(a.received().empty());

    // And back: b -> a is unicast now that a's MAC was learned.
    const auto g = eth(mac_of(1), mac_of(2), 70);
    b.send(g);
    EXPECT_TRUE(h.poll());
    const auto at_a = a.received();
    ASSERT_EQ(at_a.size(), 1u);
    EXPECT_EQ(at_a[0].frame, g);
    EXPECT_TRUE(c.received().empty());
}

TEST(PmdL2, FrameToAMacOnTheSourcePortIsDroppedNotHairpinned) {
    Guest a(0);
    Guest b(1);
    Harness h(config::SwitchMode::L2);
    h.add(a);
    h.add(b);
    a.post_rx(4);
    b.post_rx(4);
    a.send(eth(kBroadcast, mac_of(1), 60));  // mac 1 lives behind a
    EXPECT_TRUE(h.poll());
    EXPECT_EQ(b.received().size(), 1u);

    a.send(eth(mac_of(1), mac_of(11), 60));  // a second host behind a talks to the first
    EXPECT_TRUE(h.poll());
    EXPECT_TRUE(a.received().empty());
    EXPECT_TRUE(b.received().empty());
    EXPECT_EQ(a.tx.take_used().size(), 2u);
    EXPECT_EQ(a.from_guest().rx_packets.get(), 2u);
    EXPECT_EQ(a.from_guest().drop_no_route.get(), 1u);
}

TEST(PmdL2, FloodFromTheOnlyPortIsNoRoute) {
    Guest a(0);
    Harness h(config::SwitchMode::L2);
    h.add(a);
    a.post_rx(4);
    a.send(eth(kBroadcast, mac_of(1), 60));
    EXPECT_TRUE(h.poll());
    EXPECT_TRUE(a.received().empty());
    EXPECT_EQ(a.from_guest().drop_no_route.get(), 1u);
}

// stats.hpp: drop_no_route also counts "nothing to flood to". A configured
// port whose front-end is not connected receives nothing.
TEST(PmdL2, FloodThatReachesNoConnectedPortIsNoRoute) {
    Guest a(0);
    PortHealth b_health;
    Harness h(config::SwitchMode::L2);
    h.add(a);
    h.add_disconnected(1, b_health);
    a.send(eth(kBroadcast, mac_of(1), 60));
    EXPECT_TRUE(h.poll());
    EXPECT_EQ(a.tx.take_used().size(), 1u);
    EXPECT_EQ(a.from_guest().drop_no_route.get(), 1u) << "flooded to nobody, counted nowhere";
}

// A port whose MAC was learned and whose RX ring was then disabled (its TX
// still runs, so the MAC stays learned): unicast to it cannot be delivered
// and must be counted, as the xconnect path counts it.
TEST(PmdL2, UnicastToAPortWithoutRxRingIsNoRoute) {
    Guest a(0);
    Guest b(1);
    Harness h(config::SwitchMode::L2);
    h.add(a);
    h.add(b);
    a.post_rx(4);
    b.send(eth(kBroadcast, mac_of(2), 60));  // mac 2 lives behind b
    EXPECT_TRUE(h.poll());
    EXPECT_EQ(a.received().size(), 1u);
    b.rings.rx.clear();  // b's RX ring disabled (vhost-user.rst "Ring states")
    a.send(eth(mac_of(2), mac_of(1), 60));
    EXPECT_TRUE(h.poll());
    EXPECT_EQ(a.tx.take_used().size(), 1u);
    EXPECT_EQ(a.from_guest().drop_no_route.get(), 1u) << "unicast to a port without RX ring dropped uncounted";
}

// ---- Delivery ----

TEST(PmdDelivery, NoRxBufferDropsTheFrameAndStillCompletesTheSource) {
    Guest a(0);
    Guest b(1);
    Harness h(config::SwitchMode::Xconnect);
    h.add(a, PortId{1});
    h.add(b, PortId{0});
    const auto f = eth(mac_of(2), mac_of(1), 60);
    a.send(f);
    a.send(f);
    EXPECT_TRUE(h.poll());
    EXPECT_EQ(a.tx.take_used().size(), 2u);
    EXPECT_EQ(b.to_guest().drop_no_buffer.get(), 2u);
    EXPECT_EQ(b.to_guest().tx_packets.get(), 0u);
    EXPECT_FALSE(b.health.broken.load()) << "an empty RX ring is no violation";

    // Buffers posted later are used by later frames (nothing half-consumed).
    b.post_rx(1);
    a.send(f);
    EXPECT_TRUE(h.poll());
    const auto got = b.received();
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].frame, f);
}

TEST(PmdDelivery, MergeableRxSpreadsA1518ByteFrameOverTwoBuffers) {
    Guest a(0);
    Guest b(1, kV1 | kMrg);
    Harness h(config::SwitchMode::Xconnect);
    h.add(a, PortId{1});
    h.add(b, PortId{0});
    b.post_rx(4, 1024);
    const auto f = eth(mac_of(2), mac_of(1), 1518);
    a.send(f, {12, 700});
    EXPECT_TRUE(h.poll());
    const auto got = b.received();
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].hdr.num_buffers, 2);
    EXPECT_EQ(got[0].used_lens, (std::vector<uint32_t>{1024, 12 + 1518 - 1024}));
    EXPECT_EQ(got[0].frame, f);
    expect_counts(b.to_guest(), 0, 0, 1, 1518);
}

TEST(PmdDelivery, MergeableRxSpreadsAJumboFrameOverManyBuffers) {
    Guest a(0, kV1 | kMrg);
    Guest b(1, kV1 | kMrg);
    Harness h(config::SwitchMode::Xconnect);
    h.add(a, PortId{1});
    h.add(b, PortId{0});
    b.post_rx(8, 2048);
    const auto f = eth(mac_of(2), mac_of(1), 9000);
    a.send(f, {12, 4096, 1});
    EXPECT_TRUE(h.poll());
    const auto got = b.received();
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].hdr.num_buffers, 5);
    EXPECT_EQ(got[0].used_lens, (std::vector<uint32_t>{2048, 2048, 2048, 2048, 12 + 9000 - 4 * 2048}));
    EXPECT_EQ(got[0].frame, f);
    expect_counts(a.from_guest(), 1, 9000, 0, 0);
    expect_counts(b.to_guest(), 0, 0, 1, 9000);
    EXPECT_EQ(drops(b.to_guest()), 0u);
}

TEST(PmdDelivery, WithoutMergeableAFrameLargerThanTheBufferIsDropped) {
    Guest a(0);
    Guest b(1);  // VERSION_1 only
    Harness h(config::SwitchMode::Xconnect);
    h.add(a, PortId{1});
    h.add(b, PortId{0});
    b.post_rx(4, 1024);
    a.send(eth(mac_of(2), mac_of(1), 1518));
    const auto small = eth(mac_of(2), mac_of(1), 500);
    a.send(small);
    EXPECT_TRUE(h.poll());
    EXPECT_EQ(a.tx.take_used().size(), 2u);
    EXPECT_EQ(b.to_guest().drop_too_big.get(), 1u);
    const auto got = b.received();
    ASSERT_EQ(got.size(), 1u) << "the buffer stays for the next frame that fits";
    EXPECT_EQ(got[0].frame, small);
}

TEST(PmdDelivery, FrameLargerThanTheGuestMtuIsDropped) {
    Guest a(0);
    Guest b(1);
    b.rings.mtu = 1500;
    Harness h(config::SwitchMode::Xconnect);
    h.add(a, PortId{1});
    h.add(b, PortId{0});
    b.post_rx(4);
    a.send(eth(mac_of(2), mac_of(1), 1500 + 14 + 4 + 1));
    const auto fits = eth(mac_of(2), mac_of(1), 1500 + 14 + 4);  // with a VLAN tag
    a.send(fits);
    EXPECT_TRUE(h.poll());
    EXPECT_EQ(b.to_guest().drop_too_big.get(), 1u);
    const auto got = b.received();
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].frame, fits);
}

TEST(PmdDelivery, RuntFramesAreCompletedAndCountedAsErrors) {
    Guest a(0);
    Harness h(config::SwitchMode::Xconnect);
    h.add(a, PortId{0});
    a.post_rx(4);
    a.send(eth(mac_of(2), mac_of(1), 13));     // header + 13 bytes: no Ethernet header
    a.tx.send(std::vector<uint8_t>(8, 0));      // shorter than the virtio-net header
    a.send({});                                 // header only
    EXPECT_TRUE(h.poll());
    const auto used = a.tx.take_used();
    ASSERT_EQ(used.size(), 3u) << "every chain goes back to the guest";
    for (const auto& u : used) {
        EXPECT_EQ(u.len, 0u);
    }
    EXPECT_EQ(a.from_guest().errors.get(), 3u);
    EXPECT_EQ(a.from_guest().rx_packets.get(), 0u);
    EXPECT_TRUE(a.received().empty());
    EXPECT_FALSE(a.health.broken.load()) << "a runt is the guest's loss, not a ring violation";

    const auto ok = eth(mac_of(2), mac_of(1), 14);  // the shortest frame that is switched
    a.send(ok);
    EXPECT_TRUE(h.poll());
    const auto got = a.received();
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].frame, ok);
}

TEST(PmdDelivery, BurstSizeBoundsOnePoll) {
    Guest a(0);
    Harness h(config::SwitchMode::Xconnect, /*burst=*/4);
    h.add(a, PortId{0});
    a.post_rx(16);
    for (uint8_t i = 0; i < 10; ++i) {
        a.send(eth(mac_of(2), mac_of(1), 60, i));
    }
    EXPECT_TRUE(h.poll());
    EXPECT_EQ(a.tx.take_used().size(), 4u);
    EXPECT_EQ(a.received().size(), 4u);
    EXPECT_TRUE(h.poll());
    EXPECT_TRUE(h.poll());
    EXPECT_FALSE(h.poll());
    EXPECT_EQ(a.tx.take_used().size(), 6u);
    EXPECT_EQ(a.received().size(), 6u);
}

// ---- Broken rings ----

struct BreakCase {
    const char* name;
    std::function<void(Guest&)> breaks;  // makes the guest's TX ring violate the spec
    const char* reason;                  // part of the expected reason
};

class PmdBrokenSource : public ::testing::TestWithParam<BreakCase> {};

TEST_P(PmdBrokenSource, BreaksOnlyThatPortAndOthersForwardInTheSamePoll) {
    Guest bad(0);
    Guest b(1);
    Guest c(2);
    Harness h(config::SwitchMode::Xconnect);
    h.add(bad, PortId{0});  // polled first
    h.add(b, PortId{2});
    h.add(c, PortId{1});
    for (Guest* g : {&bad, &b, &c}) {
        g->post_rx(4);
    }
    GetParam().breaks(bad);
    const auto f = eth(mac_of(3), mac_of(2), 100);
    b.send(f);

    EXPECT_TRUE(h.poll());
    EXPECT_TRUE(bad.health.broken.load());
    const char* reason = bad.health.reason.load();
    ASSERT_NE(reason, nullptr);
    EXPECT_NE(std::string(reason).find(GetParam().reason), std::string::npos) << reason;
    EXPECT_EQ(bad.from_guest().drop_broken.get(), 1u);
    EXPECT_TRUE(bad.received().empty());

    const auto got = c.received();
    ASSERT_EQ(got.size(), 1u) << "the healthy pair forwards in the same poll";
    EXPECT_EQ(got[0].frame, f);
    EXPECT_EQ(b.tx.take_used().size(), 1u);
    EXPECT_FALSE(b.health.broken.load());
    EXPECT_FALSE(c.health.broken.load());

    // Later polls leave the broken port alone and keep serving the others.
    c.send(f);
    EXPECT_TRUE(h.poll());
    EXPECT_EQ(b.received().size(), 1u);
    EXPECT_EQ(bad.from_guest().drop_broken.get(), 1u) << "a broken port is not polled again";
}

INSTANTIATE_TEST_SUITE_P(
    Rings, PmdBrokenSource,
    ::testing::Values(
        BreakCase{"AvailIdxJump", [](Guest& g) { g.tx.set_avail_idx(60000); }, "avail.idx"},
        BreakCase{"LoopingChain",
                  [](Guest& g) {
                      const uint64_t buf = g.tx.alloc(64);
                      g.tx.write_desc(0, buf, 64, virtio::kDescFNext, 1);
                      g.tx.write_desc(1, buf, 64, virtio::kDescFNext, 0);
                      g.tx.publish(0);
                  },
                  "loop"},
        BreakCase{"HeadOutOfRange", [](Guest& g) { g.tx.publish(256); }, "chain head"},
        BreakCase{"WritableDescriptorInTx", [](Guest& g) { g.tx.post_rx({64}); }, "device-writable"}),
    [](const ::testing::TestParamInfo<BreakCase>& info) { return std::string(info.param.name); });

TEST(PmdBrokenSource, GoodChainsBeforeTheViolationAreForwarded) {
    Guest bad(0);
    Guest b(1);
    Harness h(config::SwitchMode::Xconnect);
    h.add(bad, PortId{1});
    h.add(b, PortId{0});
    b.post_rx(4);
    const auto f = eth(mac_of(2), mac_of(1), 60);
    bad.send(f);
    bad.tx.publish(300);  // then a head out of range
    EXPECT_TRUE(h.poll());
    EXPECT_TRUE(bad.health.broken.load());
    EXPECT_EQ(b.received().size(), 1u);
}

TEST(PmdBrokenDestination, ViolationInTheRxRingBreaksThePortAndLaterFramesAreDropBroken) {
    Guest a(0);
    Guest b(1);
    Harness h(config::SwitchMode::Xconnect);
    h.add(a, PortId{1});
    h.add(b, PortId{0});
    // b posts a device-readable buffer on its RX ring.
    const uint64_t buf = b.rx.alloc(2048);
    b.rx.write_desc(0, buf, 2048, /*flags=*/0, 0);
    b.rx.publish(0);
    a.post_rx(4);
    const auto f = eth(mac_of(2), mac_of(1), 60);
    a.send(f);
    EXPECT_TRUE(h.poll());
    EXPECT_TRUE(b.health.broken.load());
    ASSERT_NE(b.health.reason.load(), nullptr);
    EXPECT_NE(std::string(b.health.reason.load()).find("device-readable"), std::string::npos);
    EXPECT_EQ(b.to_guest().drop_broken.get(), 1u);
    EXPECT_EQ(a.tx.take_used().size(), 1u) << "the source chain is completed";
    EXPECT_FALSE(a.health.broken.load());

    a.send(f);
    a.send(f);
    EXPECT_TRUE(h.poll());
    EXPECT_EQ(b.to_guest().drop_broken.get(), 3u);
    EXPECT_EQ(a.tx.take_used().size(), 2u);
    EXPECT_EQ(b.rx.used_idx(), 0u) << "nothing was written into the broken ring";
}

TEST(PmdBrokenDestination, PortMarkedBrokenReceivesNothing) {
    Guest a(0);
    Guest b(1);
    Guest c(2);
    Harness h(config::SwitchMode::L2);
    for (Guest* g : {&a, &b, &c}) {
        h.add(*g);
        g->post_rx(4);
    }
    b.health.broken.store(true);
    a.send(eth(kBroadcast, mac_of(1), 60));
    EXPECT_TRUE(h.poll());
    EXPECT_TRUE(b.received().empty());
    EXPECT_EQ(b.to_guest().drop_broken.get(), 1u);
    EXPECT_EQ(c.received().size(), 1u);
    // And a broken port's own TX ring is not polled.
    b.send(eth(kBroadcast, mac_of(2), 60));
    EXPECT_FALSE(h.poll());
    EXPECT_EQ(b.tx.used_idx(), 0u);
}

// ---- Notifications ----

TEST(PmdNotify, CallsEachGuestThatAskedOncePerBurst) {
    Guest a(0);
    Guest b(1);
    Harness h(config::SwitchMode::Xconnect);
    h.add(a, PortId{1});
    h.add(b, PortId{0});
    b.post_rx(8);
    for (uint8_t i = 0; i < 3; ++i) {
        a.send(eth(mac_of(2), mac_of(1), 60, i));
    }
    EXPECT_TRUE(h.poll());
    EXPECT_EQ(take_calls(a.tx_call.get()), 1u) << "a's TX chains completed: one call for the burst";
    EXPECT_EQ(take_calls(b.rx_call.get()), 1u) << "b received: one call for the burst";
    EXPECT_EQ(take_calls(a.rx_call.get()), 0u);
    EXPECT_EQ(take_calls(b.tx_call.get()), 0u);
    EXPECT_FALSE(h.poll());
    EXPECT_EQ(take_calls(a.tx_call.get()), 0u) << "no new used entries, no call";
    EXPECT_EQ(take_calls(b.rx_call.get()), 0u);
}

TEST(PmdNotify, NoCallWhenTheDriverSetNoInterrupt) {
    Guest a(0);
    Guest b(1);
    Harness h(config::SwitchMode::Xconnect);
    h.add(a, PortId{1});
    h.add(b, PortId{0});
    a.tx.set_avail_flags(virtio::kAvailFNoInterrupt);
    b.rx.set_avail_flags(virtio::kAvailFNoInterrupt);
    b.post_rx(4);
    a.send(eth(mac_of(2), mac_of(1), 60));
    EXPECT_TRUE(h.poll());
    EXPECT_EQ(b.received().size(), 1u);
    EXPECT_EQ(a.tx.take_used().size(), 1u);
    EXPECT_EQ(take_calls(a.tx_call.get()), 0u);
    EXPECT_EQ(take_calls(b.rx_call.get()), 0u);

    // The driver turns interrupts back on.
    a.tx.set_avail_flags(0);
    b.rx.set_avail_flags(0);
    a.send(eth(mac_of(2), mac_of(1), 60));
    EXPECT_TRUE(h.poll());
    EXPECT_EQ(take_calls(a.tx_call.get()), 1u);
    EXPECT_EQ(take_calls(b.rx_call.get()), 1u);
}

TEST(PmdNotify, EventIdxCallsOnlyWhenUsedEventIsPassed) {
    Guest a(0, kV1 | kEventIdx);
    Guest b(1, kV1 | kEventIdx);
    Harness h(config::SwitchMode::Xconnect);
    h.add(a, PortId{1});
    h.add(b, PortId{0});
    b.post_rx(8);
    // Wants to hear about used index 0 -> 1; NO_INTERRUPT is ignored with EVENT_IDX.
    a.tx.set_used_event(0);
    b.rx.set_used_event(0);
    a.tx.set_avail_flags(virtio::kAvailFNoInterrupt);
    a.send(eth(mac_of(2), mac_of(1), 60));
    EXPECT_TRUE(h.poll());
    EXPECT_EQ(take_calls(a.tx_call.get()), 1u);
    EXPECT_EQ(take_calls(b.rx_call.get()), 1u);

    // Now only after the 5th entry (used_event 4).
    a.tx.set_used_event(4);
    b.rx.set_used_event(4);
    a.send(eth(mac_of(2), mac_of(1), 60));
    EXPECT_TRUE(h.poll());
    EXPECT_EQ(take_calls(a.tx_call.get()), 0u);
    EXPECT_EQ(take_calls(b.rx_call.get()), 0u);
    for (int i = 0; i < 3; ++i) {
        a.send(eth(mac_of(2), mac_of(1), 60));
    }
    EXPECT_TRUE(h.poll());
    EXPECT_EQ(take_calls(a.tx_call.get()), 1u);
    EXPECT_EQ(take_calls(b.rx_call.get()), 1u);
    EXPECT_EQ(b.received().size(), 5u);
}

TEST(PmdNotify, NoCallFdMeansNoCall) {
    Guest a(0);
    a.rings.tx[0].call_fd = -1;  // the front-end polls the used ring
    a.rings.rx[0].call_fd = -1;
    Harness h(config::SwitchMode::Xconnect);
    h.add(a, PortId{0});
    a.post_rx(2);
    a.send(eth(mac_of(2), mac_of(1), 60));
    EXPECT_TRUE(h.poll());
    EXPECT_EQ(a.received().size(), 1u);
    EXPECT_EQ(take_calls(a.tx_call.get()), 0u);
    EXPECT_EQ(take_calls(a.rx_call.get()), 0u);
}

} // namespace
} // namespace vhostd::dataplane
