// Pmd switching: cross-connect and L2 (learning, flooding, no hair-pinning).
// The rig (memfd guests with fake drivers, hand-built snapshots) is in
// pmd_rig.hpp.

#include "tests/unit/dataplane/pmd_rig.hpp"

namespace vhostd::dataplane {
namespace {

using namespace pmd_testing;

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

// Three guests on one L2 switch (ports 0, 1, 2), each with `rx_buffers` RX
// buffers posted.
struct L2Trio {
    explicit L2Trio(size_t rx_buffers) {
        for (Guest* g : {&a, &b, &c}) {
            h.add(*g);
            g->post_rx(rx_buffers);
        }
    }
    Guest a{0};
    Guest b{1};
    Guest c{2};
    Harness h{config::SwitchMode::L2};
};

TEST(PmdL2, UnknownUnicastFloodsToEveryOtherPort) {
    L2Trio trio(4);
    auto& [a, b, c, h] = trio;
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
    L2Trio trio(4);
    auto& [a, b, c, h] = trio;
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
    L2Trio trio(8);
    auto& [a, b, c, h] = trio;
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

// The PMD learns and looks up once per flow and poll pass (consecutive frames
// carry the same addresses), but what one frame teaches the table must reach
// the next frame of the same pass.
TEST(PmdL2, WhatAFrameTeachesHoldsForTheNextFrameOfThePass) {
    L2Trio trio(8);
    auto& [a, b, c, h] = trio;
    // One pass polls a, b, c in turn.
    a.send(eth(mac_of(2), mac_of(1), 60, 1));  // mac 2 unknown: flooded to b and c
    b.send(eth(mac_of(2), mac_of(2), 60, 2));  // teaches mac 2 on b; to itself: dropped
    c.send(eth(mac_of(2), mac_of(3), 60, 3));  // mac 2 known now: only to b
    EXPECT_TRUE(h.poll());
    EXPECT_TRUE(a.received().empty()) << "b's frame was not flooded";
    const auto at_b = b.received();
    ASSERT_EQ(at_b.size(), 2u);
    EXPECT_EQ(at_b[0].frame, eth(mac_of(2), mac_of(1), 60, 1));
    EXPECT_EQ(at_b[1].frame, eth(mac_of(2), mac_of(3), 60, 3));
    EXPECT_EQ(c.received().size(), 1u);
    EXPECT_EQ(b.from_guest().drop_no_route.get(), 1u);

    // A MAC that moves to another port within a pass is learned there.
    a.send(eth(kBroadcast, mac_of(9), 60));
    b.send(eth(kBroadcast, mac_of(9), 60));
    EXPECT_TRUE(h.poll());
    EXPECT_EQ(h.l2.lookup(mac_of(9).data(), L2Table::now_s()), PortId{1});
}

// A burst of one flow: every frame goes to the learned port, in order.
TEST(PmdL2, ABurstOfOneFlowGoesToItsPortInOrder) {
    L2Trio trio(16);
    auto& [a, b, c, h] = trio;
    b.send(eth(kBroadcast, mac_of(2), 60));
    EXPECT_TRUE(h.poll());
    a.received();
    c.received();
    std::vector<std::vector<uint8_t>> sent;
    for (uint8_t i = 0; i < 10; ++i) {
        sent.push_back(eth(mac_of(2), mac_of(1), 60 + i, i));
        a.send(sent.back());
    }
    EXPECT_TRUE(h.poll());
    const auto at_b = b.received();
    ASSERT_EQ(at_b.size(), sent.size());
    for (size_t i = 0; i < sent.size(); ++i) {
        EXPECT_EQ(at_b[i].frame, sent[i]) << i;
    }
    EXPECT_TRUE(c.received().empty());
    EXPECT_EQ(h.l2.lookup(mac_of(1).data(), L2Table::now_s()), PortId{0});
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

} // namespace
} // namespace vhostd::dataplane
