// L2Table: the MAC learning table the PMDs share (dataplane/l2_table.hpp).
// Time is passed in explicitly, so aging is tested without sleeping.

#include "dataplane/l2_table.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <optional>
#include <set>
#include <thread>
#include <vector>

namespace vhostd::dataplane {
namespace {

constexpr uint32_t kAging = 300;

// A locally administered unicast MAC numbered `n` (in its middle bytes).
Mac mac(uint32_t n) {
    return Mac{0x02, static_cast<uint8_t>(n >> 16), static_cast<uint8_t>(n >> 8), static_cast<uint8_t>(n), 0x00,
               0x01};
}
// How hypervisors number their guests: a fixed prefix (QEMU's 52:54:00)
// and a counter in the last bytes.
Mac vm_mac(uint16_t n) {
    return Mac{0x52, 0x54, 0x00, 0x12, static_cast<uint8_t>(n >> 8), static_cast<uint8_t>(n)};
}

std::optional<PortId> lookup(const L2Table& t, const Mac& m, uint32_t now) { return t.lookup(m.data(), now); }

// learn() says when it wrote: the PMD then forgets the lookups it remembered.
TEST(L2Table, LearnSaysWhetherItChangedTheTable) {
    L2Table t(1024, kAging);
    EXPECT_TRUE(t.learn(mac(1).data(), 3, 100)) << "new MAC";
    EXPECT_FALSE(t.learn(mac(1).data(), 3, 100)) << "same port, same second";
    EXPECT_TRUE(t.learn(mac(1).data(), 4, 100)) << "moved";
    EXPECT_TRUE(t.learn(mac(1).data(), 4, 101)) << "seen again a second later";
    EXPECT_EQ(lookup(t, mac(1), 101), PortId{4});
    const Mac group{0x01, 0x00, 0x5e, 0x00, 0x00, 0x01};
    EXPECT_FALSE(t.learn(group.data(), 1, 101)) << "a group address is never learned";
    EXPECT_FALSE(t.learn(mac(2).data(), kUnlearnablePort, 101));
}

// The packed-key API is the byte API: bytes in memory order, byte 0 lowest.
TEST(L2Table, PackedKeysAreTheBytesInMemoryOrder) {
    L2Table t(1024, kAging);
    const Mac m{0x02, 0x11, 0x22, 0x33, 0x44, 0x55};
    EXPECT_EQ(L2Table::pack_mac(m.data()), 0x554433221102ull);
    t.learn(0x554433221102ull, 7, 100);
    EXPECT_EQ(lookup(t, m, 100), PortId{7});
    EXPECT_EQ(t.lookup(0x554433221102ull, 100), PortId{7});
    EXPECT_TRUE(is_multicast(L2Table::pack_mac(std::array<uint8_t, 6>{0x01, 0, 0, 0, 0, 0}.data())));
    EXPECT_FALSE(is_multicast(uint64_t{0x554433221102ull}));
}

// An Ethernet header's two addresses give the same keys as packing each one.
TEST(L2Table, EthernetAddressesPackLikeEachMac) {
    const std::array<uint8_t, 14> hdr{0x02, 0x11, 0x22, 0x33, 0x44, 0x55,  // destination
                                      0x52, 0x54, 0x00, 0x12, 0x34, 0x56,  // source
                                      0x08, 0x00};
    const auto keys = L2Table::pack_eth_addrs(hdr.data());
    EXPECT_EQ(keys.dst, L2Table::pack_mac(hdr.data()));
    EXPECT_EQ(keys.src, L2Table::pack_mac(hdr.data() + 6));
    EXPECT_EQ(keys.src, 0x563412005452ull) << "the ethertype is not part of the source key";
}

TEST(L2Table, LearnThenLookup) {
    L2Table t(1024, kAging);
    EXPECT_EQ(lookup(t, mac(1), 100), std::nullopt) << "empty table";
    t.learn(mac(1).data(), 3, 100);
    t.learn(mac(2).data(), 0, 100);
    EXPECT_EQ(lookup(t, mac(1), 100), PortId{3});
    EXPECT_EQ(lookup(t, mac(2), 100), PortId{0}) << "port 0 is a real port, not 'empty'";
    EXPECT_EQ(lookup(t, mac(3), 100), std::nullopt);
}

TEST(L2Table, AllZeroMacIsAnOrdinaryAddress) {
    L2Table t(64, kAging);
    const Mac zero{};
    EXPECT_EQ(lookup(t, zero, 10), std::nullopt) << "an unused slot must not match MAC 0";
    t.learn(zero.data(), 0, 10);
    EXPECT_EQ(lookup(t, zero, 10), PortId{0});
}

// Found by fuzz_l2_table: port 0xffff packed as port + 1 wrapped to 0, so
// the all-zero MAC learned there looked like an empty slot, any other MAC
// lost its port, and flush_port(0xffff) never removed it.
TEST(L2Table, PortFfffIsNeverLearned) {
    L2Table t(64, kAging);
    const Mac zero{};
    const Mac m = mac(7);
    t.learn(zero.data(), kUnlearnablePort, 10);
    t.learn(m.data(), kUnlearnablePort, 10);
    EXPECT_EQ(t.lookup(zero.data(), 10), std::nullopt);
    EXPECT_EQ(t.lookup(m.data(), 10), std::nullopt);
    t.flush_port(kUnlearnablePort);
    EXPECT_TRUE(t.entries(10).empty());
    // The port below it is an ordinary port.
    t.learn(m.data(), kUnlearnablePort - 1, 10);
    EXPECT_EQ(t.lookup(m.data(), 10), std::optional<PortId>(kUnlearnablePort - 1));
    t.flush_port(kUnlearnablePort - 1);
    EXPECT_EQ(t.lookup(m.data(), 10), std::nullopt);
}

TEST(L2Table, MacMovesToAnotherPort) {
    L2Table t(1024, kAging);
    t.learn(mac(7).data(), 1, 100);
    t.learn(mac(7).data(), 2, 101);  // the VM migrated, or the cable moved
    EXPECT_EQ(lookup(t, mac(7), 101), PortId{2});
    const auto all = t.entries(101);
    ASSERT_EQ(all.size(), 1u) << "a moved MAC is one entry, not two";
    EXPECT_EQ(all[0].mac, mac(7));
    EXPECT_EQ(all[0].port, 2);
}

TEST(L2Table, MulticastAndBroadcastSourcesAreNeverLearned) {
    L2Table t(1024, kAging);
    const Mac bcast{0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    const Mac ipv4_mcast{0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb};
    const Mac ipv6_mcast{0x33, 0x33, 0x00, 0x00, 0x00, 0x01};
    for (const Mac& m : {bcast, ipv4_mcast, ipv6_mcast}) {
        EXPECT_TRUE(is_multicast(m.data()));
        t.learn(m.data(), 1, 100);
        EXPECT_EQ(lookup(t, m, 100), std::nullopt);
    }
    EXPECT_TRUE(t.entries(100).empty());
    EXPECT_FALSE(is_multicast(mac(1).data()));
}

TEST(L2Table, EntriesAgeOutAfterTheAgingTime) {
    L2Table t(1024, kAging);
    t.learn(mac(1).data(), 4, 1000);
    EXPECT_EQ(lookup(t, mac(1), 1000 + kAging), PortId{4}) << "exactly aging_s old is still valid";
    EXPECT_EQ(lookup(t, mac(1), 1000 + kAging + 1), std::nullopt);
    EXPECT_TRUE(t.entries(1000 + kAging + 1).empty());
    // Seen again: valid again, from the new time.
    t.learn(mac(1).data(), 5, 2000);
    EXPECT_EQ(lookup(t, mac(1), 2000 + kAging), PortId{5});
    EXPECT_EQ(t.aging_s(), kAging);
}

TEST(L2Table, RelearningRefreshesTheAge) {
    L2Table t(1024, 10);
    t.learn(mac(1).data(), 1, 100);
    t.learn(mac(1).data(), 1, 108);
    EXPECT_EQ(lookup(t, mac(1), 115), PortId{1}) << "seen at 108, so valid until 118";
    EXPECT_EQ(lookup(t, mac(1), 119), std::nullopt);
}

// Every PMD samples the clock once per burst, so one PMD can learn a MAC with
// a now_s one second later than another PMD's, which then looks the MAC up (or
// learns another MAC next to it) with its older now_s. An entry seen "in the
// future" is fresh, not expired (and its slot is not free for reuse).
TEST(L2Table, EntrySeenSlightlyLaterThanTheReadersClockIsNotExpired) {
    L2Table t(1024, kAging);
    t.learn(mac(1).data(), 2, 101);  // PMD 1, its clock just ticked
    EXPECT_EQ(lookup(t, mac(1), 100), PortId{2}) << "PMD 0 still at now_s 100 must find it";
    const auto all = t.entries(100);
    ASSERT_EQ(all.size(), 1u);
    EXPECT_LE(all[0].age_s, kAging) << "age must not wrap to ~4e9";
}

TEST(L2Table, LiveEntrySeenLaterIsNotEvictedByALearnerWithAnOlderClock) {
    // 16 slots = one probe window: every MAC probes the whole table.
    L2Table t(16, kAging);
    for (uint32_t i = 0; i < 16; ++i) {
        t.learn(mac(i).data(), 1, 101);
    }
    t.learn(mac(100).data(), 2, 100);  // a PMD whose now_s is one behind
    for (uint32_t i = 0; i < 16; ++i) {
        EXPECT_EQ(lookup(t, mac(i), 101), PortId{1}) << "live MAC " << i << " was evicted";
    }
}

TEST(L2Table, ExpiredSlotsAreReused) {
    L2Table t(16, 10);  // one probe window
    for (uint32_t i = 0; i < 16; ++i) {
        t.learn(mac(i).data(), 1, 100);
    }
    t.learn(mac(100).data(), 2, 105);
    EXPECT_EQ(lookup(t, mac(100), 105), std::nullopt) << "table full of live entries: not learned";
    t.learn(mac(100).data(), 2, 200);  // everything else aged out
    EXPECT_EQ(lookup(t, mac(100), 200), PortId{2});
    EXPECT_EQ(lookup(t, mac(0), 200), std::nullopt);
}

TEST(L2Table, FlushPortForgetsOnlyThatPort) {
    L2Table t(1024, kAging);
    t.learn(mac(1).data(), 1, 100);
    t.learn(mac(2).data(), 1, 100);
    t.learn(mac(3).data(), 2, 100);
    t.learn(mac(4).data(), 0, 100);
    t.flush_port(1);
    EXPECT_EQ(lookup(t, mac(1), 100), std::nullopt);
    EXPECT_EQ(lookup(t, mac(2), 100), std::nullopt);
    EXPECT_EQ(lookup(t, mac(3), 100), PortId{2});
    EXPECT_EQ(lookup(t, mac(4), 100), PortId{0});
    // The freed slots are usable again.
    t.learn(mac(1).data(), 3, 100);
    EXPECT_EQ(lookup(t, mac(1), 100), PortId{3});

    t.flush();
    for (uint32_t i = 1; i <= 4; ++i) {
        EXPECT_EQ(lookup(t, mac(i), 100), std::nullopt);
    }
    EXPECT_TRUE(t.entries(100).empty());
}

TEST(L2Table, EntriesListsMacPortAndAge) {
    L2Table t(1024, kAging);
    t.learn(mac(3).data(), 3, 50);  // aged out at 400
    t.learn(mac(1).data(), 1, 100);
    t.learn(mac(2).data(), 2, 103);
    auto all = t.entries(400);
    std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.mac < b.mac; });
    ASSERT_EQ(all.size(), 2u);
    EXPECT_EQ(all[0].mac, mac(1));
    EXPECT_EQ(all[0].port, 1);
    EXPECT_EQ(all[0].age_s, 300u);
    EXPECT_EQ(all[1].mac, mac(2));
    EXPECT_EQ(all[1].port, 2);
    EXPECT_EQ(all[1].age_s, 297u);
}

// More MACs than fit in a probe window: some are not learned (they will be
// flooded), but a lookup never answers with a wrong port.
TEST(L2Table, PressureNeverGivesAWrongPort) {
    L2Table t(16, kAging);  // rounded to the probe window: 16 slots
    auto port_of = [](uint32_t i) { return static_cast<PortId>(i % 7); };
    for (uint32_t i = 0; i < 1000; ++i) {
        t.learn(mac(i).data(), port_of(i), 100);
    }
    size_t present = 0;
    for (uint32_t i = 0; i < 1000; ++i) {
        const auto p = lookup(t, mac(i), 100);
        if (p) {
            ++present;
            EXPECT_EQ(*p, port_of(i)) << "MAC " << i;
        }
    }
    EXPECT_EQ(present, 16u) << "every slot holds one learned MAC";
    const auto all = t.entries(100);
    EXPECT_EQ(all.size(), 16u);
    std::set<Mac> distinct;
    for (const auto& e : all) {
        distinct.insert(e.mac);
    }
    EXPECT_EQ(distinct.size(), all.size()) << "a MAC is in the table at most once";

    // A bigger table under the same load learns what fits, still exactly.
    L2Table big(256, kAging);
    for (uint32_t i = 0; i < 5000; ++i) {
        big.learn(mac(i).data(), port_of(i), 100);
    }
    present = 0;
    for (uint32_t i = 0; i < 5000; ++i) {
        if (const auto p = lookup(big, mac(i), 100)) {
            ++present;
            EXPECT_EQ(*p, port_of(i)) << "MAC " << i;
        }
    }
    EXPECT_GT(present, 0u);
    EXPECT_LE(present, 256u);
}

// The table must spread MACs that differ only in their last bytes: that is
// how a host's guests are numbered. 200 of them in a table of 16384 slots
// must all be learned (they would fit 80 times over).
TEST(L2Table, SequentialGuestMacsAreAllLearned) {
    L2Table t(16384, kAging);
    for (uint16_t i = 0; i < 200; ++i) {
        t.learn(vm_mac(i).data(), static_cast<PortId>(i % 5), 100);
    }
    size_t missing = 0;
    for (uint16_t i = 0; i < 200; ++i) {
        const auto p = lookup(t, vm_mac(i), 100);
        if (!p) {
            ++missing;
        } else {
            EXPECT_EQ(*p, i % 5);
        }
    }
    EXPECT_EQ(missing, 0u) << "of 200 MACs 52:54:00:12:00:00.. in 16384 slots";
    EXPECT_EQ(t.entries(100).size(), 200u);
}

TEST(L2Table, CapacityIsRoundedUpToAPowerOfTwo) {
    L2Table t(100, kAging);  // 128 slots
    for (uint32_t i = 0; i < 1000; ++i) {
        t.learn(mac(i).data(), 1, 100);
    }
    EXPECT_EQ(t.entries(100).size(), 128u);
}

// Two PMDs learn the same MACs at once, each with its own port, while a
// third thread looks them up. Each (MAC, thread) pair has a port of its own,
// so a MAC paired with another entry's port (a torn entry) would show.
TEST(L2Table, ConcurrentLearnersNeverTearAnEntry) {
    constexpr uint32_t kMacs = 200;
    constexpr int kRounds = 2000;
    L2Table t(1024, kAging);
    auto port_of = [](uint32_t mac_index, uint32_t thread) {
        return static_cast<PortId>(mac_index * 2 + thread);
    };
    std::atomic<int> running{2};
    std::atomic<bool> go{false};
    auto learner = [&](uint32_t thread) {
        while (!go.load()) {
            std::this_thread::yield();
        }
        for (int r = 0; r < kRounds; ++r) {
            for (uint32_t i = 0; i < kMacs; ++i) {
                // Different orders, so the threads race on inserting new MACs too.
                const uint32_t m = thread == 0 ? i : kMacs - 1 - i;
                t.learn(mac(m).data(), port_of(m, thread), 100);
            }
        }
        running.fetch_sub(1);
    };
    std::thread a(learner, 0);
    std::thread b(learner, 1);
    go.store(true);
    uint64_t checked = 0;
    uint64_t wrong = 0;
    while (running.load() != 0) {
        for (uint32_t i = 0; i < kMacs; ++i) {
            if (const auto p = lookup(t, mac(i), 100)) {
                ++checked;
                if (*p != port_of(i, 0) && *p != port_of(i, 1)) {
                    ++wrong;
                    ADD_FAILURE() << "MAC " << i << " -> port " << *p;
                }
            }
        }
    }
    a.join();
    b.join();
    EXPECT_EQ(wrong, 0u) << "of " << checked << " lookups";
    for (uint32_t i = 0; i < kMacs; ++i) {
        const auto p = lookup(t, mac(i), 100);
        ASSERT_TRUE(p.has_value()) << "MAC " << i << " was never learned";
        EXPECT_TRUE(*p == port_of(i, 0) || *p == port_of(i, 1)) << "MAC " << i << " -> port " << *p;
    }
    const auto all = t.entries(100);
    std::set<Mac> distinct;
    for (const auto& e : all) {
        distinct.insert(e.mac);
    }
    EXPECT_EQ(all.size(), kMacs);
    EXPECT_EQ(distinct.size(), all.size()) << "a MAC learned twice at once got two slots";
}

} // namespace
} // namespace vhostd::dataplane
