// protocol::Session: STATUS, NET_SET_MTU, SEND_RARP, SET_LOG_BASE, RESET_OWNER,
// and what destroying a session releases.
// The rig (fake front-end over a socketpair, recording device, leak guard)
// is in session_rig.hpp.

#include "tests/unit/protocol/session_rig.hpp"

namespace vhostd::protocol {
namespace {

using namespace session_testing;

// ---------------------------------------------------------------------------
// SET_STATUS / GET_STATUS, NET_SET_MTU, SEND_RARP.

TEST_F(SessionTest, StatusRoundTrip) {
    ASSERT_TRUE(succeeds(rig.u64(Request::SetProtocolFeatures, kOfferedProtocolFeatures)));
    auto initial = rig.none(Request::GetStatus);
    ASSERT_TRUE(succeeds(initial));
    ASSERT_TRUE(initial.reply);
    EXPECT_EQ(initial.reply->u64(), uint64_t{0});
    const uint64_t status = kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk | kStatusDriverOk;
    ASSERT_TRUE(succeeds(rig.u64(Request::SetStatus, status)));
    auto got = rig.none(Request::GetStatus);
    ASSERT_TRUE(succeeds(got));
    ASSERT_TRUE(got.reply);
    EXPECT_EQ(got.reply->header.request, static_cast<uint32_t>(Request::GetStatus));
    EXPECT_EQ(got.reply->u64(), status);
    EXPECT_EQ(rig.session().status(), status);
    EXPECT_TRUE(fails_with(rig.u64(Request::SetStatus, 0x100), {"SET_STATUS", "0x100"}));
}

TEST_F(SessionTest, StatusNeedsTheStatusFeature) {
    ASSERT_TRUE(succeeds(rig.u64(Request::SetProtocolFeatures, pf_without(pf::kStatus))));
    EXPECT_TRUE(fails_with(rig.u64(Request::SetStatus, 1), {"SET_STATUS", "bit 16"}));
    rig.connect();
    ASSERT_TRUE(succeeds(rig.u64(Request::SetProtocolFeatures, pf_without(pf::kStatus))));
    auto ex = rig.none(Request::GetStatus);
    EXPECT_TRUE(fails_with(ex, {"GET_STATUS", "bit 16"}));
    EXPECT_FALSE(ex.reply);
}

TEST_F(SessionTest, NetSetMtuBoundsWithAConfiguredMaximum) {
    rig.connect(SessionLimits{1, 9000});
    ASSERT_TRUE(succeeds(rig.u64(Request::SetProtocolFeatures, kOfferedProtocolFeatures)));
    for (uint64_t ok : {68u, 1500u, 9000u}) {
        ASSERT_TRUE(succeeds(rig.u64(Request::NetSetMtu, ok))) << ok;
        EXPECT_EQ(rig.session().mtu(), std::optional<uint32_t>(static_cast<uint32_t>(ok)));
        EXPECT_EQ(rig.device.last_view().mtu, std::optional<uint32_t>(static_cast<uint32_t>(ok)));
    }
    for (uint64_t bad : {0u, 67u, 9001u, 65536u}) {
        rig.connect(SessionLimits{1, 9000});
        ASSERT_TRUE(succeeds(rig.u64(Request::SetProtocolFeatures, kOfferedProtocolFeatures)));
        EXPECT_TRUE(fails_with(rig.u64(Request::NetSetMtu, bad), {"NET_SET_MTU", std::to_string(bad)})) << bad;
    }
}

TEST_F(SessionTest, NetSetMtuBoundsWithoutAConfiguredMaximum) {
    ASSERT_TRUE(succeeds(rig.u64(Request::SetProtocolFeatures, kOfferedProtocolFeatures)));
    ASSERT_TRUE(succeeds(rig.u64(Request::NetSetMtu, 65535)));
    EXPECT_EQ(rig.session().mtu(), std::optional<uint32_t>(65535));
    for (uint64_t bad : {67ull, 65536ull, 0x1'0000'05dcull}) {
        rig.connect();
        ASSERT_TRUE(succeeds(rig.u64(Request::SetProtocolFeatures, kOfferedProtocolFeatures)));
        EXPECT_TRUE(fails_with(rig.u64(Request::NetSetMtu, bad), {"NET_SET_MTU"})) << bad;
    }
    rig.connect();
    ASSERT_TRUE(succeeds(rig.u64(Request::SetProtocolFeatures, pf_without(pf::kMtu))));
    EXPECT_TRUE(fails_with(rig.u64(Request::NetSetMtu, 1500), {"NET_SET_MTU", "bit 4"}));
}

TEST_F(SessionTest, SendRarpAnnouncesTheMac) {
    ASSERT_TRUE(succeeds(rig.u64(Request::SetProtocolFeatures, kOfferedProtocolFeatures)));
    // "The first 6 bytes of the payload contain the mac address"; the last
    // two are noise the back-end must ignore.
    const std::array<uint8_t, 8> payload = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0xee, 0xff};
    auto ex = rig.fe->exchange(*rig.pump, Request::SendRarp, payload);
    ASSERT_TRUE(succeeds(ex));
    EXPECT_FALSE(ex.reply);
    ASSERT_EQ(rig.device.announced().size(), 1u);
    const std::array<uint8_t, 6> want = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
    EXPECT_EQ(rig.device.announced()[0], want);

    rig.connect();
    ASSERT_TRUE(succeeds(rig.u64(Request::SetProtocolFeatures, pf_without(pf::kRarp))));
    EXPECT_TRUE(fails_with(rig.fe->exchange(*rig.pump, Request::SendRarp, payload), {"SEND_RARP", "bit 2"}));
}

// ---------------------------------------------------------------------------
// SET_LOG_BASE.

TEST_F(SessionTest, SetLogBaseGood) {
    UniqueFd log = testing_support::memfd_of(0x3000, "vhostd-log");
    auto ex = set_log_base(rig, 0x1000, 0x1000, log.get());
    ASSERT_TRUE(succeeds(ex));
    ASSERT_TRUE(ex.reply) << "the front-end waits for a reply";
    EXPECT_EQ(ex.reply->header.request, static_cast<uint32_t>(Request::SetLogBase));
    EXPECT_EQ(ex.reply->header.flags, kFlagVersion1 | kFlagReply);
    EXPECT_EQ(ex.reply->header.size, 0u);
    EXPECT_TRUE(rig.session().has_log());
    // Not page-aligned, and up to the last byte of the file.
    rig.connect();
    ASSERT_TRUE(succeeds(set_log_base(rig, 0x2000 - 0x10, 0x1010, log.get())));
}

TEST_F(SessionTest, SetLogBaseRejections) {
    UniqueFd log = testing_support::memfd_of(0x2000, "vhostd-log");
    struct Case {
        uint64_t size;
        uint64_t offset;
        std::vector<std::string> fragments;
    };
    const Case cases[] = {
        {0x1000, 0xfffffffffffff001, {"SET_LOG_BASE", "overflows"}},
        {0xffffffffffffffff, 1, {"SET_LOG_BASE", "overflows"}},
        {0x3000, 0, {"SET_LOG_BASE", "exceeds"}},
        {0x1000, 0x1001, {"SET_LOG_BASE", "exceeds"}},
        {0, 0, {"SET_LOG_BASE"}},
    };
    for (const Case& c : cases) {
        rig.connect();
        auto ex = set_log_base(rig, c.size, c.offset, log.get());
        EXPECT_TRUE(fails_with(ex, c.fragments)) << std::hex << c.size << " @ " << c.offset;
        EXPECT_FALSE(ex.reply);
        EXPECT_FALSE(rig.session().has_log());
    }
    rig.connect();
    UniqueFd not_a_file = testing_support::eventfd_or_die();
    EXPECT_TRUE(fails_with(set_log_base(rig, 0x1000, 0, not_a_file.get()), {"SET_LOG_BASE", "regular file"}));
}

// ---------------------------------------------------------------------------
// RESET_OWNER (deprecated): "It is recommended that back-ends either ignore
// this message, or use it to disable all rings." vhostd stops every ring.

TEST_F(SessionTest, ResetOwnerStopsEveryRing) {
    ASSERT_TRUE(is_ok(rig.handshake()));
    ASSERT_EQ(rig.device.last_view().rings.size(), 2u);
    rig.device.set_last_avail(0, 17);

    ASSERT_TRUE(succeeds(rig.none(Request::ResetOwner)));
    const DeviceView& after = rig.device.last_view();
    EXPECT_TRUE(after.rings.empty());
    ASSERT_NE(after.memory, nullptr);
    EXPECT_EQ(rig.session().live_rings(), 0u);

    // The connection stays usable: the front-end sets the rings up again.
    ASSERT_TRUE(is_ok(rig.handshake()));
    EXPECT_EQ(rig.device.live_count(), 2u);
}

// ... but the same paragraph says that back-ends which took RESET_OWNER to
// "also discard connection state" got it wrong. The protocol features are
// negotiated once per connection (QEMU sends SET_PROTOCOL_FEATURES only at
// init): a front-end that negotiated REPLY_ACK keeps setting need_reply after
// a reset and blocks until the ack comes.
TEST_F(SessionTest, ResetOwnerKeepsTheConnectionsProtocolFeatures) {
    HandshakeOptions o;
    o.need_reply = true;
    ASSERT_TRUE(is_ok(rig.handshake(o)));
    auto reset = rig.none(Request::ResetOwner, kFlagVersion1 | kFlagNeedReply);
    ASSERT_TRUE(succeeds(reset));
    ASSERT_TRUE(reset.reply);
    EXPECT_EQ(reset.reply->u64(), uint64_t{0});
    EXPECT_TRUE(rig.device.last_view().rings.empty());

    // What QEMU sends next when it restarts the device.
    auto features = rig.u64(Request::SetFeatures, kOfferedFeatures, kFlagVersion1 | kFlagNeedReply);
    ASSERT_TRUE(succeeds(features));
    EXPECT_TRUE(features.reply) << "no REPLY_ACK after RESET_OWNER: the front-end would wait forever";
    EXPECT_EQ(rig.session().protocol_features(), kOfferedProtocolFeatures);
}

// ---------------------------------------------------------------------------
// Disconnect: destroying the session releases everything it held.

TEST_F(SessionTest, DestroyingTheSessionStopsRingsAndClosesFds) {
    ASSERT_TRUE(is_ok(rig.handshake()));
    std::vector<int> ring_fds;
    for (const LiveRing& r : rig.device.last_view().rings) {
        ring_fds.push_back(r.kick_fd);
        ring_fds.push_back(r.call_fd);
    }
    ASSERT_EQ(ring_fds.size(), 4u);
    const size_t memfd_maps_with_session = testing_support::count_maps("/memfd:vhostd-guest");
    EXPECT_EQ(memfd_maps_with_session, 2u) << "the driver's mapping and the session's";
    rig.device.clear();  // recorded views hold the memory table too
    rig.pump->disconnect();
    ASSERT_TRUE(rig.device.has_views()) << "the session applies a last view when it dies";
    EXPECT_TRUE(rig.device.last_view().rings.empty());
    EXPECT_EQ(rig.device.last_view().memory->size(), 0u);
    for (int fd : ring_fds) {
        EXPECT_TRUE(fd_closed(fd)) << "fd " << fd;
    }
    rig.device.clear();
    // Only GuestMemory's own (driver) mapping of the memfd is left.
    EXPECT_EQ(testing_support::count_maps("/memfd:vhostd-guest"), memfd_maps_with_session - 1);
    EXPECT_EQ(testing_support::count_maps("/memfd:vhostd-guest"), 1u);
}

} // namespace
} // namespace vhostd::protocol
