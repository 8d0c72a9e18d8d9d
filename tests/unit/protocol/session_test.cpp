// protocol::Session: handshake, features, REPLY_ACK, ring base, ring indices,
// ring size and layout.
// The rig (fake front-end over a socketpair, recording device, leak guard)
// is in session_rig.hpp.

#include "tests/unit/protocol/session_rig.hpp"

namespace vhostd::protocol {
namespace {

using namespace session_testing;

// ---------------------------------------------------------------------------
// The handshake.

TEST_F(SessionTest, FullHandshakeReachesLiveRings) {
    auto hs = rig.handshake();
    ASSERT_TRUE(is_ok(hs));
    EXPECT_EQ(hs->offered_features, kOfferedFeatures);
    EXPECT_EQ(hs->offered_protocol_features, kOfferedProtocolFeatures);
    EXPECT_EQ(rig.session().features(), hs->features);
    EXPECT_EQ(rig.session().protocol_features(), kOfferedProtocolFeatures);
    EXPECT_EQ(rig.session().live_rings(), 2u);

    const DeviceView& view = rig.device.last_view();
    EXPECT_EQ(view.features, hs->features);
    ASSERT_NE(view.memory, nullptr);
    ASSERT_EQ(view.memory->size(), 1u);
    ASSERT_EQ(view.rings.size(), 2u);
    for (uint32_t i = 0; i < 2; ++i) {
        const LiveRing& ring = view.rings[i];
        const VringAddr want = ring_addr(rig.memory, i, kRingSize);
        EXPECT_EQ(ring.index, i);
        EXPECT_EQ(ring.size, kRingSize);
        EXPECT_EQ(ring.desc_uva, want.desc_user_addr);
        EXPECT_EQ(ring.avail_uva, want.avail_user_addr);
        EXPECT_EQ(ring.used_uva, want.used_user_addr);
        EXPECT_EQ(ring.base, 0);
        EXPECT_NE(ring.generation, 0u);
        ASSERT_TRUE(fd_open(ring.kick_fd));
        ASSERT_TRUE(fd_open(ring.call_fd));

        // The kick fd is the front-end's kick eventfd: what the front-end
        // writes, the back-end reads.
        eventfd_write_value(rig.fe->kick_fd(i), 3);
        EXPECT_EQ(eventfd_read_value(ring.kick_fd), 3u);
        // The call fd is the front-end's call eventfd.
        eventfd_write_value(ring.call_fd, 5);
        EXPECT_EQ(eventfd_read_value(rig.fe->call_fd(i)), 5u);

        // The ring addresses translate, through the published table, to the
        // very bytes the guest driver sees.
        const uint64_t desc_gpa = rig.memory.gpa_base() + (want.desc_user_addr - rig.memory.uva_base());
        rig.memory.put<uint64_t>(desc_gpa, 0xfeedface00 + i);
        uint8_t* host = view.memory->uva_to_host(ring.desc_uva, 16ull * kRingSize);
        ASSERT_NE(host, nullptr);
        uint64_t seen = 0;
        std::memcpy(&seen, host, sizeof seen);
        EXPECT_EQ(seen, 0xfeedface00u + i);
    }
    EXPECT_NE(view.rings[0].generation, view.rings[1].generation);

    // Every view is complete: memory never null, rings sorted by index.
    for (const DeviceView& v : rig.device.views()) {
        ASSERT_NE(v.memory, nullptr);
        for (size_t k = 1; k < v.rings.size(); ++k) {
            EXPECT_LT(v.rings[k - 1].index, v.rings[k].index);
        }
    }
}

TEST_F(SessionTest, HandshakeWithReplyAckOnEverySet) {
    HandshakeOptions o;
    o.need_reply = true;
    auto hs = rig.handshake(o);
    ASSERT_TRUE(is_ok(hs));
    EXPECT_EQ(rig.session().live_rings(), 2u);
}

TEST_F(SessionTest, HandshakeWithFourRings) {
    rig.connect(SessionLimits{2, std::nullopt});
    HandshakeOptions o;
    o.rings = 4;
    ASSERT_TRUE(is_ok(rig.handshake(o)));
    EXPECT_EQ(rig.device.last_view().rings.size(), 4u);
    auto q = rig.none(Request::GetQueueNum);
    ASSERT_TRUE(succeeds(q));
    ASSERT_TRUE(q.reply);
    EXPECT_EQ(q.reply->u64(), uint64_t{2});
}

// ---------------------------------------------------------------------------
// Features.

TEST_F(SessionTest, GetFeaturesOffersTheOfferedSetWithoutMqForOnePair) {
    auto ex = rig.none(Request::GetFeatures);
    ASSERT_TRUE(succeeds(ex));
    ASSERT_TRUE(ex.reply);
    EXPECT_EQ(ex.reply->header.request, static_cast<uint32_t>(Request::GetFeatures));
    EXPECT_EQ(ex.reply->header.flags, kFlagVersion1 | kFlagReply);
    EXPECT_EQ(ex.reply->header.size, 8u);
    EXPECT_EQ(ex.reply->u64(), kOfferedFeatures);
    EXPECT_EQ(*ex.reply->u64() & bit(vf::kNetMq), 0u);
    EXPECT_EQ(rig.session().offered_features(), kOfferedFeatures);
}

TEST_F(SessionTest, GetFeaturesAddsMqForSeveralPairs) {
    rig.connect(SessionLimits{4, std::nullopt});
    auto ex = rig.none(Request::GetFeatures);
    ASSERT_TRUE(succeeds(ex));
    ASSERT_TRUE(ex.reply);
    EXPECT_EQ(ex.reply->u64(), kOfferedFeatures | bit(vf::kNetMq));
}

TEST_F(SessionTest, GetProtocolFeatures) {
    auto ex = rig.none(Request::GetProtocolFeatures);
    ASSERT_TRUE(succeeds(ex));
    ASSERT_TRUE(ex.reply);
    EXPECT_EQ(ex.reply->header.flags, kFlagVersion1 | kFlagReply);
    EXPECT_EQ(ex.reply->u64(), kOfferedProtocolFeatures);
}

TEST_F(SessionTest, SetFeaturesWithAnUnofferedBitFails) {
    for (uint64_t extra : {bit(vf::kNetMq), bit(vf::kRingPacked), bit(vf::kLogAll), bit(vf::kNetCtrlVq),
                           bit(63)}) {
        rig.connect();
        auto ex = rig.u64(Request::SetFeatures, kOfferedFeatures | extra);
        EXPECT_TRUE(fails_with(ex, {"SET_FEATURES", "never offered"})) << std::hex << extra;
        EXPECT_EQ(rig.session().features(), 0u) << "nothing was taken over";
    }
}

TEST_F(SessionTest, SetProtocolFeaturesWithAnUnofferedBitFails) {
    for (uint64_t extra : {bit(pf::kLogShmfd), bit(pf::kBackendReq), bit(pf::kInbandNotifications), bit(40)}) {
        rig.connect();
        auto ex = rig.u64(Request::SetProtocolFeatures, kOfferedProtocolFeatures | extra);
        EXPECT_TRUE(fails_with(ex, {"SET_PROTOCOL_FEATURES", "never offered"})) << std::hex << extra;
    }
}

// ---------------------------------------------------------------------------
// REPLY_ACK (vhost-user.rst "REPLY_ACK"): with the feature negotiated, a
// request with need_reply gets u64 0 on success, non-zero on failure.

TEST_F(SessionTest, ReplyAckSuccessIsZero) {
    ASSERT_TRUE(succeeds(rig.u64(Request::SetProtocolFeatures, kOfferedProtocolFeatures)));
    for (auto ex : {rig.none(Request::SetOwner, kFlagVersion1 | kFlagNeedReply),
                    rig.u64(Request::SetFeatures, kOfferedFeatures, kFlagVersion1 | kFlagNeedReply),
                    rig.state(Request::SetVringNum, 0, 256, kFlagVersion1 | kFlagNeedReply),
                    rig.state(Request::SetVringBase, 1, 9, kFlagVersion1 | kFlagNeedReply)}) {
        ASSERT_TRUE(succeeds(ex));
        ASSERT_TRUE(ex.reply) << "no ack for " << request_name(*ex.step.request) << ex.reply_error;
        EXPECT_EQ(ex.reply->header.request, static_cast<uint32_t>(*ex.step.request));
        EXPECT_EQ(ex.reply->header.flags, kFlagVersion1 | kFlagReply);
        EXPECT_EQ(ex.reply->u64(), uint64_t{0});
    }
    EXPECT_FALSE(rig.fe->reply_pending(50)) << "exactly one reply per request";
}

TEST_F(SessionTest, ReplyAckFailureIsNonZeroThenError) {
    ASSERT_TRUE(succeeds(rig.u64(Request::SetProtocolFeatures, kOfferedProtocolFeatures)));
    auto ex = rig.state(Request::SetVringNum, 0, 3, kFlagVersion1 | kFlagNeedReply);
    EXPECT_TRUE(fails_with(ex, {"SET_VRING_NUM"}));
    ASSERT_TRUE(ex.reply) << "a NACK is sent before the connection closes";
    EXPECT_EQ(ex.reply->header.request, static_cast<uint32_t>(Request::SetVringNum));
    EXPECT_EQ(ex.reply->header.flags, kFlagVersion1 | kFlagReply);
    ASSERT_TRUE(ex.reply->u64());
    EXPECT_NE(*ex.reply->u64(), 0u);
}

TEST_F(SessionTest, NoAckWithoutReplyAckNegotiated) {
    ASSERT_TRUE(succeeds(rig.u64(Request::SetProtocolFeatures, pf_without(pf::kReplyAck))));
    auto ex = rig.none(Request::SetOwner, kFlagVersion1 | kFlagNeedReply);
    ASSERT_TRUE(succeeds(ex));
    EXPECT_FALSE(ex.reply);
    EXPECT_FALSE(rig.fe->reply_pending(50));
}

TEST_F(SessionTest, RequestsWithTheirOwnReplyGetOnlyThatReply) {
    ASSERT_TRUE(succeeds(rig.u64(Request::SetProtocolFeatures, kOfferedProtocolFeatures)));
    auto ex = rig.none(Request::GetFeatures, kFlagVersion1 | kFlagNeedReply);
    ASSERT_TRUE(succeeds(ex));
    ASSERT_TRUE(ex.reply);
    EXPECT_EQ(ex.reply->u64(), kOfferedFeatures);
    EXPECT_FALSE(rig.fe->reply_pending(50));
}

// ---------------------------------------------------------------------------
// GET_VRING_BASE stops the ring and returns where the data path got to.

TEST_F(SessionTest, GetVringBaseStopsTheRingAndReturnsLastAvail) {
    ASSERT_TRUE(is_ok(rig.handshake()));
    rig.device.set_last_avail(0, 1234);
    const size_t views_before = rig.device.apply_count();

    auto ex = rig.state(Request::GetVringBase, 0, 0);
    ASSERT_TRUE(succeeds(ex));
    ASSERT_TRUE(ex.reply);
    EXPECT_EQ(ex.reply->header.request, static_cast<uint32_t>(Request::GetVringBase));
    EXPECT_EQ(ex.reply->header.flags, kFlagVersion1 | kFlagReply);
    ASSERT_TRUE(ex.reply->state());
    EXPECT_EQ(ex.reply->state()->index, 0u);
    EXPECT_EQ(ex.reply->state()->num, 1234u);

    // Ring 0 left the view; ring 1 still runs.
    ASSERT_GT(rig.device.apply_count(), views_before);
    EXPECT_EQ(rig.device.live_ring(0), nullptr);
    EXPECT_NE(rig.device.live_ring(1), nullptr);
    EXPECT_EQ(rig.session().live_rings(), 1u);

    // last_avail was asked only after a view without ring 0 was applied.
    ASSERT_FALSE(rig.device.last_avail_queries().empty());
    const auto q = rig.device.last_avail_queries().back();
    EXPECT_EQ(q.index, 0u);
    ASSERT_GT(q.applied_before, 0u);
    EXPECT_EQ(RecordingDevice::find_ring(rig.device.views()[q.applied_before - 1], 0), nullptr);

    // A stopped ring takes a new base and size, and a new kick restarts it
    // from there.
    ASSERT_TRUE(succeeds(rig.state(Request::SetVringBase, 0, 1234)));
    ASSERT_TRUE(succeeds(rig.state(Request::SetVringNum, 0, kRingSize)));
    const uint64_t old_generation = rig.device.views()[views_before - 1].rings[0].generation;
    const int kick = rig.fe->kick_fd(0);
    ASSERT_TRUE(succeeds(rig.vring_fd(Request::SetVringKick, 0, kick)));
    const LiveRing* ring = rig.device.live_ring(0);
    ASSERT_NE(ring, nullptr);
    EXPECT_EQ(ring->base, 1234);
    EXPECT_GT(ring->generation, old_generation);
}

TEST_F(SessionTest, GetVringBaseReturnsTheSetBaseWhenTheDeviceNeverRan) {
    HandshakeOptions o;
    o.base = 77;
    ASSERT_TRUE(is_ok(rig.handshake(o)));
    EXPECT_EQ(rig.device.live_ring(1)->base, 77);
    auto ex = rig.state(Request::GetVringBase, 1, 0);
    ASSERT_TRUE(succeeds(ex));
    ASSERT_TRUE(ex.reply && ex.reply->state());
    EXPECT_EQ(ex.reply->state()->index, 1u);
    EXPECT_EQ(ex.reply->state()->num, 77u);
    EXPECT_EQ(rig.device.live_ring(1), nullptr);
    EXPECT_NE(rig.device.live_ring(0), nullptr);
}

TEST_F(SessionTest, RunningRingRefusesBaseAndSizeChanges) {
    ASSERT_TRUE(is_ok(rig.handshake()));
    EXPECT_TRUE(fails_with(rig.state(Request::SetVringBase, 0, 5), {"SET_VRING_BASE", "ring 0"}));
    rig.connect();
    ASSERT_TRUE(is_ok(rig.handshake()));
    EXPECT_TRUE(fails_with(rig.state(Request::SetVringNum, 1, 512), {"SET_VRING_NUM", "ring 1"}));
}

TEST_F(SessionTest, SetVringBaseMustFitSixteenBits) {
    EXPECT_TRUE(fails_with(rig.state(Request::SetVringBase, 0, 0x10000), {"SET_VRING_BASE", "65536"}));
    rig.connect();
    EXPECT_TRUE(succeeds(rig.state(Request::SetVringBase, 0, 0xffff)));
}

// ---------------------------------------------------------------------------
// Ring indices: every vring message refuses an index at or past the ring
// count, and says which.

TEST_F(SessionTest, RingIndexOutOfRangeOnEveryVringMessage) {
    const uint32_t bad_indices[] = {2, 255, 0x10000, 0x10000000, 0xffffffff};
    const Request state_requests[] = {Request::SetVringNum, Request::SetVringBase, Request::GetVringBase,
                                      Request::SetVringEnable};
    for (Request r : state_requests) {
        for (uint32_t index : bad_indices) {
            rig.connect();
            auto ex = rig.state(r, index, r == Request::SetVringNum ? kRingSize : 0);
            EXPECT_TRUE(fails_with(ex, {request_name(r), "ring index " + std::to_string(index)}))
                << request_name(r) << " index " << index;
            if (r == Request::GetVringBase) {
                EXPECT_FALSE(ex.reply) << "no state for a ring that does not exist";
            }
        }
    }
    for (uint32_t index : bad_indices) {
        rig.connect();
        VringAddr a = ring_addr(rig.memory, 0, kRingSize);
        a.index = index;
        EXPECT_TRUE(fails_with(rig.addr(a), {"SET_VRING_ADDR", "ring index " + std::to_string(index)}))
            << "index " << index;
    }
    // KICK / CALL / ERR carry the index in bits 0-7 of a u64: an index the
    // port does not have is refused by the session, anything wider by the
    // codec (reserved bits), and the error shows the value.
    for (Request r : {Request::SetVringKick, Request::SetVringCall, Request::SetVringErr}) {
        for (uint32_t index : {2u, 255u}) {
            rig.connect();
            UniqueFd efd = testing_support::eventfd_or_die();
            auto ex = rig.vring_fd(r, index, efd.get());
            EXPECT_TRUE(fails_with(ex, {request_name(r), "ring index " + std::to_string(index)}))
                << request_name(r) << " index " << index;
        }
        for (uint64_t payload : {uint64_t{0x10000}, uint64_t{0x10000000}}) {
            rig.connect();
            UniqueFd efd = testing_support::eventfd_or_die();
            auto ex = rig.vring_fd(r, payload, efd.get());
            EXPECT_TRUE(fails_with(ex, {request_name(r), fmt_hex(payload)}))
                << request_name(r) << " payload " << payload;
        }
    }
}

// ---------------------------------------------------------------------------
// Ring size and layout (VIRTIO 1.2 §2.7).

TEST_F(SessionTest, SetVringNumMustBeAPowerOfTwoUpTo32768) {
    for (uint32_t num : {0u, 3u, 6u, 1000u, 32769u, 65535u, 65536u, 0x80000000u}) {
        rig.connect();
        EXPECT_TRUE(fails_with(rig.state(Request::SetVringNum, 0, num), {"SET_VRING_NUM", std::to_string(num)}))
            << "num " << num;
    }
    for (uint32_t num : {1u, 2u, 256u, 32768u}) {
        rig.connect();
        EXPECT_TRUE(succeeds(rig.state(Request::SetVringNum, 0, num))) << "num " << num;
    }
}

TEST_F(SessionTest, SetVringAddrMisaligned) {
    struct Case {
        const char* field;
        uint64_t VringAddr::*member;
        uint64_t offset;
    };
    const Case cases[] = {
        {"desc_user_addr", &VringAddr::desc_user_addr, 8},
        {"desc_user_addr", &VringAddr::desc_user_addr, 1},
        {"avail_user_addr", &VringAddr::avail_user_addr, 1},
        {"used_user_addr", &VringAddr::used_user_addr, 2},
        {"used_user_addr", &VringAddr::used_user_addr, 1},
    };
    for (const Case& c : cases) {
        rig.connect();
        ASSERT_TRUE(succeeds(rig.u64(Request::SetFeatures, kOfferedFeatures)));
        const int fd = rig.memory.dup_fd().release();
        UniqueFd keep(fd);
        const MemRegionWire region = rig.memory.region();
        ASSERT_TRUE(succeeds(rig.mem_table(std::span(&region, 1), std::span(&fd, 1))));
        ASSERT_TRUE(succeeds(rig.state(Request::SetVringNum, 0, kRingSize)));
        VringAddr a = ring_addr(rig.memory, 0, kRingSize);
        a.*c.member += c.offset;
        EXPECT_TRUE(fails_with(rig.addr(a), {"SET_VRING_ADDR", c.field, "aligned"}))
            << c.field << " + " << c.offset;
    }
    rig.connect();
    VringAddr a = ring_addr(rig.memory, 0, kRingSize);
    a.flags = 2;
    EXPECT_TRUE(fails_with(rig.addr(a), {"SET_VRING_ADDR", "flags"}));
}

class SessionWithMemory : public SessionTest {
protected:
    void SetUp() override { ASSERT_TRUE(set_memory()); }
    ::testing::AssertionResult set_memory() {
        auto a = rig.u64(Request::SetFeatures, kOfferedFeatures);
        if (!a.ok()) {
            return ::testing::AssertionFailure() << a.error_text();
        }
        UniqueFd fd = rig.memory.dup_fd();
        const int raw = fd.get();
        const MemRegionWire region = rig.memory.region();
        auto b = rig.mem_table(std::span(&region, 1), std::span(&raw, 1));
        if (!b.ok()) {
            return ::testing::AssertionFailure() << b.error_text();
        }
        return ::testing::AssertionSuccess();
    }
    void reconnect() {
        rig.connect();
        ASSERT_TRUE(set_memory());
    }
};

TEST_F(SessionWithMemory, SetVringAddrOutsideEveryRegion) {
    const uint64_t end_uva = rig.memory.uva_base() + rig.memory.size();
    struct Case {
        const char* field;
        uint64_t VringAddr::*member;
        uint64_t uva;
    };
    const Case cases[] = {
        {"desc_user_addr", &VringAddr::desc_user_addr, end_uva},                  // just past the end
        {"desc_user_addr", &VringAddr::desc_user_addr, end_uva - 16},             // straddles the end
        {"desc_user_addr", &VringAddr::desc_user_addr, rig.memory.uva_base() - 0x10000},  // below
        {"avail_user_addr", &VringAddr::avail_user_addr, end_uva - 2},
        {"used_user_addr", &VringAddr::used_user_addr, end_uva - 8},
        {"used_user_addr", &VringAddr::used_user_addr, 0xfffffffffffffff0},       // wraps
        {"desc_user_addr", &VringAddr::desc_user_addr, 0},
    };
    for (const Case& c : cases) {
        reconnect();
        ASSERT_TRUE(succeeds(rig.state(Request::SetVringNum, 0, kRingSize)));
        VringAddr a = ring_addr(rig.memory, 0, kRingSize);
        a.*c.member = c.uva;
        EXPECT_TRUE(fails_with(rig.addr(a), {"SET_VRING_ADDR", c.field, "memory region"}))
            << c.field << " = 0x" << std::hex << c.uva;
    }
}

TEST_F(SessionWithMemory, SetVringNumThatPushesTheRingPastMemoryFails) {
    // A ring of 256 near the end fits; 32768 entries at the same place do not.
    const uint64_t stride = fakes::ring_stride(kRingSize);
    const uint32_t last = static_cast<uint32_t>(rig.memory.size() / stride) - 1;
    ASSERT_TRUE(succeeds(rig.state(Request::SetVringNum, 0, kRingSize)));
    VringAddr a = ring_addr(rig.memory, last, kRingSize);
    a.index = 0;
    ASSERT_TRUE(succeeds(rig.addr(a)));
    EXPECT_TRUE(fails_with(rig.state(Request::SetVringNum, 0, 32768), {"SET_VRING_NUM", "memory region"}));
}

TEST_F(SessionTest, LayoutIsCheckedAgainWhenTheMissingPieceArrives) {
    // SET_VRING_ADDR before SET_MEM_TABLE cannot be checked yet: accepted.
    ASSERT_TRUE(succeeds(rig.u64(Request::SetFeatures, kOfferedFeatures)));
    ASSERT_TRUE(succeeds(rig.state(Request::SetVringNum, 0, kRingSize)));
    VringAddr a = ring_addr(rig.memory, 0, kRingSize);
    a.desc_user_addr = rig.memory.uva_base() + rig.memory.size();  // outside what will come
    ASSERT_TRUE(succeeds(rig.addr(a)));
    UniqueFd fd = rig.memory.dup_fd();
    const int raw = fd.get();
    const MemRegionWire region = rig.memory.region();
    ASSERT_TRUE(succeeds(rig.mem_table(std::span(&region, 1), std::span(&raw, 1))));
    // Starting the ring checks it.
    UniqueFd kick = testing_support::eventfd_or_die();
    EXPECT_TRUE(fails_with(rig.vring_fd(Request::SetVringKick, 0, kick.get()),
                           {"SET_VRING_KICK", "desc_user_addr"}));
    EXPECT_EQ(rig.device.live_ring(0), nullptr);
}

} // namespace
} // namespace vhostd::protocol
