// Unit tests for protocol::Session, driven the way QEMU drives a back-end: a
// fake front-end writes real messages (memfd guest memory, eventfds) into one
// end of a socketpair; a BackendPump reads them from the other end through
// MessageReader and hands them to the session; a RecordingDevice records every
// DeviceView the session publishes. Single-threaded: send, step, read reply.
//
// The rules come from QEMU docs/interop/vhost-user.rst ("Ring states",
// "Starting and stopping rings", REPLY_ACK, the message descriptions) and
// VIRTIO 1.2 §2.7 (split ring sizes and alignment).

#include "protocol/session.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "protocol/features.hpp"
#include "protocol/wire.hpp"
#include "tests/fakes/fake_frontend.hpp"
#include "tests/fakes/guest_memory.hpp"
#include "tests/fakes/recording_device.hpp"
#include "tests/unit/protocol/test_support.hpp"

namespace vhostd::protocol {
namespace {

using fakes::BackendPump;
using fakes::bytes_of;
using fakes::FakeFrontend;
using fakes::GuestMemory;
using fakes::HandshakeOptions;
using fakes::HandshakeResult;
using fakes::mem_table_payload;
using fakes::RecordingDevice;
using fakes::ring_addr;
using fakes::single_region_payload;
using testing_support::fd_closed;
using testing_support::fd_open;
using testing_support::is_ok;
using testing_support::resources;
using testing_support::text_has;
using Exchange = FakeFrontend::Exchange;

constexpr uint64_t kMemSize = 1 << 20;
constexpr uint32_t kRingSize = 256;

// Everything one connection needs. Declaration order matters: the device and
// the memory outlive the pump (the session applies a last view when it dies).
struct Rig {
    explicit Rig(SessionLimits limits = {}, uint64_t mem_size = kMemSize) : memory(mem_size) {
        connect(limits);
    }

    void connect(SessionLimits limits = {}) {
        fe.reset();
        pump.reset();
        auto pair = fakes::make_socketpair();
        pump = std::make_unique<BackendPump>(std::move(pair.backend), limits, device);
        fe = std::make_unique<FakeFrontend>(std::move(pair.frontend));
    }

    Result<HandshakeResult> handshake(const HandshakeOptions& options = {}) {
        return fe->handshake(*pump, memory, options);
    }

    Exchange u64(Request r, uint64_t value, uint32_t flags = kFlagVersion1) {
        return fe->exchange_value(*pump, r, value, {}, flags);
    }
    Exchange state(Request r, uint32_t index, uint32_t num, uint32_t flags = kFlagVersion1) {
        return fe->exchange_value(*pump, r, VringState{index, num}, {}, flags);
    }
    Exchange none(Request r, uint32_t flags = kFlagVersion1) {
        return fe->exchange(*pump, r, {}, {}, flags);
    }
    Exchange addr(const VringAddr& a, uint32_t flags = kFlagVersion1) {
        return fe->exchange_value(*pump, Request::SetVringAddr, a, {}, flags);
    }
    // SET_VRING_KICK / CALL / ERR: `payload` as sent; `fd` < 0 sends none.
    Exchange vring_fd(Request r, uint64_t payload, int fd, uint32_t flags = kFlagVersion1) {
        if (fd < 0) {
            return fe->exchange_value(*pump, r, payload, {}, flags);
        }
        return fe->exchange_value(*pump, r, payload, std::span<const int>(&fd, 1), flags);
    }
    Exchange mem_table(std::span<const MemRegionWire> regions, std::span<const int> fds,
                       uint32_t flags = kFlagVersion1) {
        return fe->exchange(*pump, Request::SetMemTable, mem_table_payload(regions), fds, flags);
    }
    Exchange region_msg(Request r, const MemRegionWire& region, std::span<const int> fds) {
        return fe->exchange(*pump, r, single_region_payload(region), fds);
    }

    // SET_VRING_NUM, SET_VRING_BASE, SET_VRING_ADDR for ring `i` in `memory`.
    ::testing::AssertionResult configure_ring(uint32_t i, uint32_t size = kRingSize, uint32_t base = 0) {
        if (auto ex = state(Request::SetVringNum, i, size); !ex.ok()) {
            return ::testing::AssertionFailure() << ex.error_text();
        }
        if (auto ex = state(Request::SetVringBase, i, base); !ex.ok()) {
            return ::testing::AssertionFailure() << ex.error_text();
        }
        if (auto ex = addr(ring_addr(memory, i, size)); !ex.ok()) {
            return ::testing::AssertionFailure() << ex.error_text();
        }
        return ::testing::AssertionSuccess();
    }

    Session& session() { return pump->session(); }

    RecordingDevice device;
    GuestMemory memory;
    std::unique_ptr<BackendPump> pump;
    std::unique_ptr<FakeFrontend> fe;
};

::testing::AssertionResult fails_with(const Exchange& ex, const std::vector<std::string>& fragments) {
    if (ex.ok()) {
        return ::testing::AssertionFailure() << "succeeded where an error was expected";
    }
    return text_has(ex.error_text(), fragments);
}

::testing::AssertionResult succeeds(const Exchange& ex) {
    if (!ex.ok()) {
        return ::testing::AssertionFailure() << ex.error_text();
    }
    return ::testing::AssertionSuccess();
}

uint64_t eventfd_read_value(int fd) {
    uint64_t v = 0;
    return ::read(fd, &v, sizeof v) == sizeof v ? v : 0;
}

void eventfd_write_value(int fd, uint64_t v) { ASSERT_EQ(::write(fd, &v, sizeof v), ssize_t{sizeof v}); }

std::string fmt_hex(uint64_t v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
    return buf;
}

uint64_t pf_without(unsigned bit_to_drop) { return kOfferedProtocolFeatures & ~bit(bit_to_drop); }

// Checks, after everything declared after it is destroyed, that the process
// holds exactly the fds and mappings it held before: every SessionTest, on
// success and on every error path it provokes, is also a leak test.
class ResourceGuard {
public:
    ResourceGuard() : before_(resources()) {}
    ~ResourceGuard() {
        const auto after = resources();
        if (after.fds != before_.fds || after.maps != before_.maps || after.memfd_maps != before_.memfd_maps) {
            ADD_FAILURE() << "leak: fds " << before_.fds << " -> " << after.fds << ", mappings " << before_.maps
                          << " -> " << after.maps << ", memfd mappings " << before_.memfd_maps << " -> "
                          << after.memfd_maps;
        }
    }
    ResourceGuard(const ResourceGuard&) = delete;
    ResourceGuard& operator=(const ResourceGuard&) = delete;

private:
    testing_support::Resources before_;
};

class SessionTest : public ::testing::Test {
protected:
    ResourceGuard guard;  // first: checked after `rig` is gone
    Rig rig;
};

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

Exchange set_log_base(Rig& rig, uint64_t size, uint64_t offset, int fd) {
    return rig.fe->exchange(*rig.pump, Request::SetLogBase, bytes_of(LogWire{size, offset}),
                            std::span<const int>(&fd, 1));
}

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

// For a full handshake and for each error path: once the session, its
// socket, the device and the guest memory are gone, the process holds
// exactly the fds and mappings it held before.

struct LeakCase {
    const char* name;
    SessionLimits limits;
    std::function<void(Rig&)> run;
};

void expect_error(Rig& rig, Exchange ex, const std::string& fragment) {
    EXPECT_TRUE(fails_with(ex, {fragment}));
    rig.pump->disconnect();
}

const std::vector<LeakCase>& leak_cases() {
    static const std::vector<LeakCase> cases = {
        {"FullHandshake", {},
         [](Rig& rig) {
             HandshakeOptions o;
             o.need_reply = true;
             ASSERT_TRUE(is_ok(rig.handshake(o)));
             UniqueFd log = testing_support::memfd_of(0x2000, "vhostd-log");
             ASSERT_TRUE(succeeds(set_log_base(rig, 0x2000, 0, log.get())));
             UniqueFd err = testing_support::eventfd_or_die();
             ASSERT_TRUE(succeeds(rig.vring_fd(Request::SetVringErr, 0, err.get())));
             UniqueFd logfd = testing_support::eventfd_or_die();
             const int raw = logfd.get();
             ASSERT_TRUE(succeeds(rig.fe->exchange(*rig.pump, Request::SetLogFd, {}, std::span(&raw, 1))));
             ASSERT_TRUE(succeeds(rig.state(Request::GetVringBase, 0, 0)));
         }},
        {"FullHandshakeFourRings", {2, std::nullopt},
         [](Rig& rig) {
             HandshakeOptions o;
             o.rings = 4;
             ASSERT_TRUE(is_ok(rig.handshake(o)));
         }},
        {"SetMemTableReplacedTwice", {},
         [](Rig& rig) {
             ASSERT_TRUE(is_ok(rig.handshake()));
             for (int i = 0; i < 2; ++i) {
                 UniqueFd fd = rig.memory.dup_fd();
                 const int raw = fd.get();
                 const MemRegionWire region = rig.memory.region();
                 ASSERT_TRUE(succeeds(rig.mem_table(std::span(&region, 1), std::span(&raw, 1))));
             }
         }},
        {"SetMemTableFileTooSmall", {},
         [](Rig& rig) {
             ASSERT_TRUE(is_ok(rig.handshake()));
             UniqueFd small = testing_support::memfd_of(0x1000);
             const int raw = small.get();
             const MemRegionWire region = rig.memory.region();
             expect_error(rig, rig.mem_table(std::span(&region, 1), std::span(&raw, 1)), "SET_MEM_TABLE");
         }},
        {"SetMemTableDropsLiveRing", {},
         [](Rig& rig) {
             ASSERT_TRUE(is_ok(rig.handshake()));
             UniqueFd fd = rig.memory.dup_fd();
             const int raw = fd.get();
             const MemRegionWire upper = rig.memory.slice(rig.memory.size() / 2, rig.memory.size() / 2);
             expect_error(rig, rig.mem_table(std::span(&upper, 1), std::span(&raw, 1)), "ring 0");
         }},
        {"SetMemTableFdCountMismatch", {},
         [](Rig& rig) {
             UniqueFd a = rig.memory.dup_fd();
             UniqueFd b = rig.memory.dup_fd();
             const int raw[2] = {a.get(), b.get()};
             const MemRegionWire region = rig.memory.region();
             expect_error(rig, rig.mem_table(std::span(&region, 1), raw), "SET_MEM_TABLE");
         }},
        {"SetVringNumInvalid", {},
         [](Rig& rig) {
             ASSERT_TRUE(is_ok(rig.handshake()));
             ASSERT_TRUE(succeeds(rig.state(Request::GetVringBase, 0, 0)));
             expect_error(rig, rig.state(Request::SetVringNum, 0, 3), "SET_VRING_NUM");
         }},
        {"SetVringAddrOutside", {},
         [](Rig& rig) {
             HandshakeOptions o;
             o.rings = 1;
             ASSERT_TRUE(is_ok(rig.handshake(o)));
             ASSERT_TRUE(succeeds(rig.state(Request::SetVringNum, 1, kRingSize)));
             VringAddr a = ring_addr(rig.memory, 1, kRingSize);
             a.used_user_addr = rig.memory.uva_base() + rig.memory.size();
             expect_error(rig, rig.addr(a), "SET_VRING_ADDR");
         }},
        {"SetVringKickBadIndex", {},
         [](Rig& rig) {
             ASSERT_TRUE(is_ok(rig.handshake()));
             UniqueFd kick = testing_support::eventfd_or_die();
             expect_error(rig, rig.vring_fd(Request::SetVringKick, 5, kick.get()), "ring index 5");
         }},
        {"SetFeaturesUnoffered", {},
         [](Rig& rig) {
             expect_error(rig, rig.u64(Request::SetFeatures, bit(vf::kRingPacked)), "SET_FEATURES");
         }},
        {"ReplyAckNack", {},
         [](Rig& rig) {
             HandshakeOptions o;
             o.need_reply = true;
             ASSERT_TRUE(is_ok(rig.handshake(o)));
             expect_error(rig, rig.state(Request::SetVringEnable, 7, 1, kFlagVersion1 | kFlagNeedReply),
                          "ring index 7");
         }},
        {"SetLogBaseTooSmall", {},
         [](Rig& rig) {
             ASSERT_TRUE(is_ok(rig.handshake()));
             UniqueFd log = testing_support::memfd_of(0x1000, "vhostd-log");
             expect_error(rig, set_log_base(rig, 0x2000, 0, log.get()), "SET_LOG_BASE");
         }},
        {"AddMemRegWithoutFeature", {},
         [](Rig& rig) {
             HandshakeOptions o;
             o.protocol_feature_bits = pf_without(pf::kConfigureMemSlots);
             ASSERT_TRUE(is_ok(rig.handshake(o)));
             GuestMemory extra(0x10000, 0x40000000, 0x7f8000000000, "vhostd-extra");
             UniqueFd fd = extra.dup_fd();
             const int raw = fd.get();
             expect_error(rig, rig.region_msg(Request::AddMemReg, extra.region(), std::span(&raw, 1)),
                          "ADD_MEM_REG");
         }},
        {"AddThenRemoveMemReg", {},
         [](Rig& rig) {
             ASSERT_TRUE(is_ok(rig.handshake()));
             GuestMemory extra(0x10000, 0x40000000, 0x7f8000000000, "vhostd-extra");
             UniqueFd fd = extra.dup_fd();
             const int raw = fd.get();
             ASSERT_TRUE(succeeds(rig.region_msg(Request::AddMemReg, extra.region(), std::span(&raw, 1))));
             ASSERT_TRUE(succeeds(rig.region_msg(Request::RemMemReg, extra.region(), {})));
         }},
        {"FdOnRequestThatTakesNone", {},
         [](Rig& rig) {
             ASSERT_TRUE(is_ok(rig.handshake()));
             UniqueFd stray = testing_support::eventfd_or_die();
             const int raw = stray.get();
             expect_error(rig, rig.fe->exchange(*rig.pump, Request::SetOwner, {}, std::span(&raw, 1)),
                          "SET_OWNER");
         }},
        {"TruncatedControlData", {},
         [](Rig& rig) {
             ASSERT_TRUE(is_ok(rig.handshake()));
             testing_support::FdSet fds = testing_support::FdSet::eventfds(kMaxFdsPerMessage + 3);
             const auto bytes = encode_request(Request::GetFeatures, kFlagVersion1, std::span<const uint8_t>{});
             ASSERT_TRUE(rig.fe->send_bytes_raw(bytes, fds.raw).ok());
             expect_error(rig, rig.fe->finish(*rig.pump), "truncated");
         }},
        {"UnknownRequestWithFds", {},
         [](Rig& rig) {
             ASSERT_TRUE(is_ok(rig.handshake()));
             testing_support::FdSet fds = testing_support::FdSet::eventfds(2);
             ASSERT_TRUE(rig.fe->send_raw(MsgHeader{44, kFlagVersion1, 0}, {}, fds.raw).ok());
             expect_error(rig, rig.fe->finish(*rig.pump), "unknown request code 44");
         }},
        {"BadVersionWithMemfd", {},
         [](Rig& rig) {
             UniqueFd fd = rig.memory.dup_fd();
             const int raw = fd.get();
             const MemRegionWire region = rig.memory.region();
             ASSERT_TRUE(rig.fe->send_raw(MsgHeader{static_cast<uint32_t>(Request::SetMemTable), 0,
                                                    static_cast<uint32_t>(8 + sizeof region)},
                                          mem_table_payload(std::span(&region, 1)), std::span(&raw, 1))
                             .ok());
             expect_error(rig, rig.fe->finish(*rig.pump), "version");
         }},
        {"ResetOwnerThenDisconnect", {},
         [](Rig& rig) {
             ASSERT_TRUE(is_ok(rig.handshake()));
             ASSERT_TRUE(succeeds(rig.none(Request::ResetOwner)));
             ASSERT_TRUE(is_ok(rig.handshake()));
         }},
        {"FrontEndHangsUp", {},
         [](Rig& rig) {
             ASSERT_TRUE(is_ok(rig.handshake()));
             rig.fe->close();
             auto step = rig.pump->step();
             EXPECT_FALSE(step.ok());
             rig.pump->disconnect();
         }},
    };
    return cases;
}

class SessionLeak : public ::testing::TestWithParam<size_t> {};

TEST_P(SessionLeak, FdsAndMappingsReturnToBaseline) {
    const LeakCase& c = leak_cases()[GetParam()];
    const auto before = resources();
    {
        Rig rig(c.limits);
        c.run(rig);
        rig.pump->disconnect();
    }
    const auto after = resources();
    EXPECT_EQ(after.fds, before.fds) << c.name;
    EXPECT_EQ(after.memfd_maps, before.memfd_maps) << c.name;
    EXPECT_EQ(after.maps, before.maps) << c.name;
}

INSTANTIATE_TEST_SUITE_P(Paths, SessionLeak, ::testing::Range<size_t>(0, leak_cases().size()),
                         [](const ::testing::TestParamInfo<size_t>& info) {
                             return std::string(leak_cases()[info.param].name);
                         });

} // namespace
} // namespace vhostd::protocol
