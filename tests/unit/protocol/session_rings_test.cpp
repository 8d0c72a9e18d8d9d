// protocol::Session: ring states (start, enable, disable), replacements on live
// rings, and CONFIGURE_MEM_SLOTS.
// The rig (fake front-end over a socketpair, recording device, leak guard)
// is in session_rig.hpp.

#include "tests/unit/protocol/session_rig.hpp"

namespace vhostd::protocol {
namespace {

using namespace session_testing;

// ---------------------------------------------------------------------------
// Ring states ("Ring states"): started by the kick; enabled by
// SET_VRING_ENABLE when PROTOCOL_FEATURES is negotiated, at once otherwise.

// A started ring runs even while disabled ("Ring states": no new RX packets,
// TX processed and discarded), so the view carries it with enabled = false.
TEST_F(SessionTest, RingsRunDisabledUntilEnabledWithProtocolFeatures) {
    HandshakeOptions o;
    o.enable = false;
    ASSERT_TRUE(is_ok(rig.handshake(o)));
    EXPECT_EQ(rig.session().live_rings(), 2u);
    ASSERT_EQ(rig.device.live_count(), 2u);
    EXPECT_FALSE(rig.device.live_ring(0)->enabled);
    EXPECT_FALSE(rig.device.live_ring(1)->enabled);

    ASSERT_TRUE(succeeds(rig.state(Request::SetVringEnable, 1, 1)));
    EXPECT_FALSE(rig.device.live_ring(0)->enabled);
    ASSERT_NE(rig.device.live_ring(1), nullptr);
    EXPECT_TRUE(rig.device.live_ring(1)->enabled);
    EXPECT_TRUE(fd_open(rig.device.live_ring(1)->call_fd));

    ASSERT_TRUE(succeeds(rig.state(Request::SetVringEnable, 0, 1)));
    EXPECT_EQ(rig.device.live_count(), 2u);
    EXPECT_TRUE(rig.device.live_ring(0)->enabled);
    EXPECT_TRUE(rig.device.live_ring(1)->enabled);
}

TEST_F(SessionTest, RingsAreLiveRightAfterKickWithoutProtocolFeatures) {
    HandshakeOptions o;
    o.protocol_features = false;
    o.rings = 0;
    auto hs = rig.handshake(o);
    ASSERT_TRUE(is_ok(hs));
    EXPECT_EQ(hs->features & bit(vf::kProtocolFeatures), 0u);
    ASSERT_TRUE(rig.configure_ring(0));
    EXPECT_EQ(rig.device.live_ring(0), nullptr) << "not live before the kick";
    UniqueFd kick = testing_support::eventfd_or_die();
    ASSERT_TRUE(succeeds(rig.vring_fd(Request::SetVringKick, 0, kick.get())));
    const LiveRing* ring = rig.device.live_ring(0);
    ASSERT_NE(ring, nullptr) << "live right after the kick";
    EXPECT_EQ(ring->call_fd, -1) << "no call fd yet";
    EXPECT_EQ(rig.session().live_rings(), 1u);
}

TEST_F(SessionTest, PolledKickStartsTheRingWithoutAnFd) {
    HandshakeOptions o;
    o.rings = 0;
    ASSERT_TRUE(is_ok(rig.handshake(o)));
    ASSERT_TRUE(rig.configure_ring(0));
    ASSERT_TRUE(succeeds(rig.vring_fd(Request::SetVringKick, kVringNoFdFlag | 0, -1)));
    ASSERT_TRUE(succeeds(rig.state(Request::SetVringEnable, 0, 1)));
    const LiveRing* ring = rig.device.live_ring(0);
    ASSERT_NE(ring, nullptr);
    EXPECT_EQ(ring->kick_fd, -1);
}

TEST_F(SessionTest, SetVringEnableNumMustBeZeroOrOne) {
    EXPECT_TRUE(fails_with(rig.state(Request::SetVringEnable, 0, 2), {"SET_VRING_ENABLE", "ring 0"}));
}

// Disabling does not stop the ring: it keeps its position (same generation,
// no restart) and only what the data path does with it changes.
TEST_F(SessionTest, DisablingALiveRingKeepsItRunningInPlace) {
    ASSERT_TRUE(is_ok(rig.handshake()));
    const LiveRing before = *rig.device.live_ring(0);
    ASSERT_TRUE(succeeds(rig.state(Request::SetVringEnable, 0, 0)));
    const LiveRing* ring = rig.device.live_ring(0);
    ASSERT_NE(ring, nullptr);
    EXPECT_FALSE(ring->enabled);
    EXPECT_EQ(ring->generation, before.generation);
    ASSERT_TRUE(succeeds(rig.state(Request::SetVringEnable, 0, 1)));
    ring = rig.device.live_ring(0);
    ASSERT_NE(ring, nullptr);
    EXPECT_TRUE(ring->enabled);
    EXPECT_EQ(ring->generation, before.generation);
    EXPECT_EQ(ring->base, before.base);
}

// A new kick on a running ring restarts it from where the data path got to.
TEST_F(SessionTest, NewKickOnALiveRingRestartsFromLastAvail) {
    ASSERT_TRUE(is_ok(rig.handshake()));
    const LiveRing before = *rig.device.live_ring(0);
    rig.device.set_last_avail(0, 42);
    UniqueFd kick = testing_support::eventfd_or_die();
    ASSERT_TRUE(succeeds(rig.vring_fd(Request::SetVringKick, 0, kick.get())));
    const LiveRing* ring = rig.device.live_ring(0);
    ASSERT_NE(ring, nullptr);
    EXPECT_EQ(ring->base, 42);
    EXPECT_GT(ring->generation, before.generation);
    EXPECT_TRUE(fd_closed(before.kick_fd)) << "the old kick fd is closed once replaced";
    eventfd_write_value(kick.get(), 1);
    EXPECT_EQ(eventfd_read_value(ring->kick_fd), 1u);
}

// Without PROTOCOL_FEATURES a started ring is already enabled; a front-end
// that sends SET_VRING_ENABLE 1 anyway must not make the data path restart
// the ring from the stale SET_VRING_BASE value (DeviceView: a new generation
// means "start again from base"). Either the generation stays, or the base
// is where the data path got to.
TEST_F(SessionTest, EnableOnAnAlreadyLiveRingKeepsItsPosition) {
    HandshakeOptions o;
    o.protocol_features = false;
    ASSERT_TRUE(is_ok(rig.handshake(o)));
    const LiveRing before = *rig.device.live_ring(0);
    rig.device.set_last_avail(0, 321);
    ASSERT_TRUE(succeeds(rig.state(Request::SetVringEnable, 0, 1)));
    const LiveRing* ring = rig.device.live_ring(0);
    ASSERT_NE(ring, nullptr);
    if (ring->generation != before.generation) {
        EXPECT_EQ(ring->base, 321) << "ring 0 restarted (generation " << before.generation << " -> "
                                   << ring->generation << ") from the stale base " << ring->base
                                   << " although the data path had reached 321";
    }
}

// ---------------------------------------------------------------------------
// Replacements on live rings.

TEST_F(SessionTest, SetVringCallReplacementPublishesTheNewFd) {
    ASSERT_TRUE(is_ok(rig.handshake()));
    const LiveRing before = *rig.device.live_ring(1);
    const size_t views = rig.device.apply_count();
    const int old_frontend_call = dup(rig.fe->call_fd(1));
    UniqueFd keep_old(old_frontend_call);
    const int fresh = rig.fe->new_call_fd(1);

    ASSERT_TRUE(succeeds(rig.vring_fd(Request::SetVringCall, 1, fresh)));
    EXPECT_EQ(rig.device.apply_count(), views + 1);
    const LiveRing* ring = rig.device.live_ring(1);
    ASSERT_NE(ring, nullptr);
    EXPECT_NE(ring->call_fd, -1);
    EXPECT_EQ(ring->generation, before.generation) << "a new call fd does not restart the ring";
    EXPECT_EQ(ring->kick_fd, before.kick_fd);
    EXPECT_TRUE(fd_closed(before.call_fd)) << "the old call fd is closed after the switch";

    // Signalling through the published fd reaches the new eventfd, not the old.
    eventfd_write_value(ring->call_fd, 1);
    EXPECT_EQ(eventfd_read_value(fresh), 1u);
    EXPECT_EQ(eventfd_read_value(old_frontend_call), 0u);
    EXPECT_NE(rig.device.live_ring(0), nullptr) << "the other ring is untouched";
}

TEST_F(SessionTest, SetVringCallPollingOnALiveRing) {
    ASSERT_TRUE(is_ok(rig.handshake()));
    ASSERT_TRUE(succeeds(rig.vring_fd(Request::SetVringCall, kVringNoFdFlag | 0, -1)));
    const LiveRing* ring = rig.device.live_ring(0);
    ASSERT_NE(ring, nullptr);
    EXPECT_EQ(ring->call_fd, -1);
}

TEST_F(SessionTest, SetMemTableReplacementWhileRingsRunRepublishes) {
    ASSERT_TRUE(is_ok(rig.handshake()));
    const DeviceView before = rig.device.last_view();
    const size_t views = rig.device.apply_count();

    UniqueFd fd = rig.memory.dup_fd();
    const int raw = fd.get();
    const MemRegionWire region = rig.memory.region();
    ASSERT_TRUE(succeeds(rig.mem_table(std::span(&region, 1), std::span(&raw, 1))));

    ASSERT_GT(rig.device.apply_count(), views);
    const DeviceView& after = rig.device.last_view();
    ASSERT_NE(after.memory, nullptr);
    EXPECT_NE(after.memory.get(), before.memory.get()) << "a new table was published";
    EXPECT_EQ(after.memory->size(), 1u);
    ASSERT_EQ(after.rings.size(), 2u) << "the rings keep running";
    for (size_t i = 0; i < 2; ++i) {
        EXPECT_EQ(after.rings[i].desc_uva, before.rings[i].desc_uva);
        EXPECT_NE(after.memory->uva_to_host(after.rings[i].desc_uva, 16ull * kRingSize), nullptr);
    }
    // Both tables map the same guest RAM.
    rig.memory.put<uint32_t>(rig.memory.gpa_base() + 0x40, 0xabcd1234);
    uint32_t seen = 0;
    std::memcpy(&seen, after.memory->gpa_to_host(rig.memory.gpa_base() + 0x40, 4), 4);
    EXPECT_EQ(seen, 0xabcd1234u);
}

// A table that no longer holds a running ring is refused, and the error says
// which message did it (session.hpp: "the one-line reason, which names the
// message, field and value").
TEST_F(SessionTest, NewTableThatDropsALiveRingFailsNamingTheMessage) {
    ASSERT_TRUE(is_ok(rig.handshake()));
    UniqueFd fd = rig.memory.dup_fd();
    const int raw = fd.get();
    // Only the upper half of guest RAM: ring 0 sits in the lower half.
    const MemRegionWire upper = rig.memory.slice(rig.memory.size() / 2, rig.memory.size() / 2);
    auto ex = rig.mem_table(std::span(&upper, 1), std::span(&raw, 1));
    EXPECT_TRUE(fails_with(ex, {"ring 0", "memory region"}));
    EXPECT_TRUE(fails_with(ex, {"SET_MEM_TABLE"}));
    EXPECT_EQ(rig.device.last_view().rings.size(), 2u) << "nothing changed";

    // The same through REM_MEM_REG (another region stays, so the table is
    // not empty).
    rig.connect();
    ASSERT_TRUE(is_ok(rig.handshake()));
    GuestMemory extra(0x10000, 0x40000000, 0x7f8000000000, "vhostd-extra");
    UniqueFd extra_fd = extra.dup_fd();
    const int extra_raw = extra_fd.get();
    ASSERT_TRUE(succeeds(rig.region_msg(Request::AddMemReg, extra.region(), std::span(&extra_raw, 1))));
    auto rem = rig.region_msg(Request::RemMemReg, rig.memory.region(), {});
    EXPECT_TRUE(fails_with(rem, {"ring 0", "memory region"}));
    EXPECT_TRUE(fails_with(rem, {"REM_MEM_REG"}));
}

// ---------------------------------------------------------------------------
// CONFIGURE_MEM_SLOTS: GET_MAX_MEM_SLOTS, ADD_MEM_REG, REM_MEM_REG.

TEST_F(SessionTest, MemSlotRequestsNeedConfigureMemSlots) {
    GuestMemory extra(0x10000, 0x40000000, 0x7f8000000000, "vhostd-extra");
    const MemRegionWire region = extra.region();
    for (int which = 0; which < 3; ++which) {
        rig.connect();
        ASSERT_TRUE(succeeds(rig.u64(Request::SetProtocolFeatures, pf_without(pf::kConfigureMemSlots))));
        Exchange ex;
        Request r = Request::GetMaxMemSlots;
        if (which == 0) {
            ex = rig.none(Request::GetMaxMemSlots);
        } else if (which == 1) {
            r = Request::AddMemReg;
            UniqueFd fd = extra.dup_fd();
            const int raw = fd.get();
            ex = rig.region_msg(r, region, std::span(&raw, 1));
        } else {
            r = Request::RemMemReg;
            ex = rig.region_msg(r, region, {});
        }
        EXPECT_TRUE(fails_with(ex, {request_name(r), "protocol feature bit 15"})) << request_name(r);
        EXPECT_FALSE(ex.reply);
    }
}

TEST_F(SessionTest, MemSlotsAddAndRemove) {
    ASSERT_TRUE(is_ok(rig.handshake()));
    auto slots = rig.none(Request::GetMaxMemSlots);
    ASSERT_TRUE(succeeds(slots));
    ASSERT_TRUE(slots.reply);
    EXPECT_EQ(slots.reply->u64(), uint64_t{509});

    GuestMemory extra(0x10000, 0x40000000, 0x7f8000000000, "vhostd-extra");
    {
        UniqueFd fd = extra.dup_fd();
        const int raw = fd.get();
        ASSERT_TRUE(succeeds(rig.region_msg(Request::AddMemReg, extra.region(), std::span(&raw, 1))));
    }
    ASSERT_EQ(rig.device.last_view().memory->size(), 2u);
    EXPECT_EQ(rig.device.last_view().rings.size(), 2u);
    extra.put<uint32_t>(extra.gpa_base() + 8, 0x5a5a5a5a);
    uint32_t seen = 0;
    std::memcpy(&seen, rig.device.last_view().memory->gpa_to_host(extra.gpa_base() + 8, 4), 4);
    EXPECT_EQ(seen, 0x5a5a5a5au);

    // One fd on REM_MEM_REG is tolerated (and closed).
    UniqueFd stray = testing_support::eventfd_or_die();
    const int stray_raw = stray.get();
    ASSERT_TRUE(succeeds(rig.region_msg(Request::RemMemReg, extra.region(), std::span(&stray_raw, 1))));
    EXPECT_EQ(rig.device.last_view().memory->size(), 1u);
    EXPECT_EQ(rig.device.last_view().rings.size(), 2u);

    // Removing the region the rings live in, while another region stays, is
    // refused.
    {
        UniqueFd fd = extra.dup_fd();
        const int raw = fd.get();
        ASSERT_TRUE(succeeds(rig.region_msg(Request::AddMemReg, extra.region(), std::span(&raw, 1))));
    }
    auto gone = rig.region_msg(Request::RemMemReg, rig.memory.region(), {});
    EXPECT_TRUE(fails_with(gone, {"ring 0", "memory region"}));
    EXPECT_EQ(rig.device.last_view().rings.size(), 2u) << "nothing changed";
}

// REM_MEM_REG of the last region under running rings: whether the session
// refuses it (as it does while other regions remain) or lets the rings drop
// out of the view, it must not lose where the data path got to. Rings that
// leave the view must be stopped like any other (last_avail asked after the
// view without them), or GET_VRING_BASE hands the front-end a stale index
// (on migration the destination would replay or skip descriptors).
TEST_F(SessionTest, RemovingTheLastRegionUnderLiveRingsKeepsTheirPosition) {
    ASSERT_TRUE(is_ok(rig.handshake()));
    rig.device.set_last_avail(0, 99);
    auto rem = rig.region_msg(Request::RemMemReg, rig.memory.region(), {});
    if (!rem.ok()) {
        EXPECT_TRUE(text_has(rem.error_text(), {"REM_MEM_REG", "ring 0"}));
        return;  // refused: consistent with the non-empty case
    }
    EXPECT_EQ(rig.device.live_count(), 0u) << "rings without memory cannot run";
    auto base = rig.state(Request::GetVringBase, 0, 0);
    ASSERT_TRUE(succeeds(base));
    ASSERT_TRUE(base.reply && base.reply->state());
    EXPECT_EQ(base.reply->state()->num, 99u)
        << "ring 0 left the view when its memory was removed, but its position was never asked for";
}

} // namespace
} // namespace vhostd::protocol
