// protocol::Session: fds and mappings return to baseline after every kind of
// session, good or broken.
// The rig (fake front-end over a socketpair, recording device, leak guard)
// is in session_rig.hpp.

#include "tests/unit/protocol/session_rig.hpp"

namespace vhostd::protocol {
namespace {

using namespace session_testing;

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
