// Pmd delivery into guest RX rings, broken rings (source and destination), and
// guest notifications.
// The rig (memfd guests with fake drivers, hand-built snapshots) is in
// pmd_rig.hpp.

#include "tests/unit/dataplane/pmd_rig.hpp"

namespace vhostd::dataplane {
namespace {

using namespace pmd_testing;

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
