// Unit tests for protocol/codec: the two decode stages (header, then body and
// fds) for every request vhostd knows, every rejection of a malformed
// message, the fate of every fd that arrives with one, and the reply encoders.
// Rules: QEMU docs/interop/vhost-user.rst, "Message Specification" and
// "Front-end message types".

#include "protocol/codec.hpp"

#include <gtest/gtest.h>

#include <cctype>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "protocol/wire.hpp"
#include "tests/fakes/fake_frontend.hpp"
#include "tests/unit/protocol/test_support.hpp"

namespace vhostd::protocol {
namespace {

using fakes::bytes_of;
using fakes::mem_table_payload;
using fakes::single_region_payload;
using testing_support::count_fds;
using testing_support::fd_closed;
using testing_support::FdSet;
using testing_support::is_error;
using testing_support::is_ok;

// header + body, header.size = body size unless `size` says otherwise.
std::vector<uint8_t> message(uint32_t request, std::span<const uint8_t> body,
                             uint32_t flags = kFlagVersion1,
                             std::optional<uint32_t> size = std::nullopt) {
    MsgHeader h{request, flags, size.value_or(static_cast<uint32_t>(body.size()))};
    std::vector<uint8_t> out = bytes_of(h);
    out.insert(out.end(), body.begin(), body.end());
    return out;
}

std::vector<uint8_t> message(Request r, std::span<const uint8_t> body, uint32_t flags = kFlagVersion1) {
    return message(static_cast<uint32_t>(r), body, flags);
}

Result<Message> decode_msg(Request r, std::span<const uint8_t> body, std::vector<UniqueFd> fds = {},
                           uint32_t flags = kFlagVersion1, bool truncated = false) {
    return decode(message(r, body, flags), std::move(fds), truncated);
}

void expect_all_closed(const std::vector<int>& raw) {
    for (int fd : raw) {
        EXPECT_TRUE(fd_closed(fd)) << "fd " << fd << " is still open";
    }
}

MemRegionWire region(uint64_t i) {
    return MemRegionWire{0x100000 * (i + 1), 0x1000, 0x7f0000000000 + 0x100000 * (i + 1), 0};
}

std::vector<MemRegionWire> regions(size_t n) {
    std::vector<MemRegionWire> out;
    for (size_t i = 0; i < n; ++i) {
        out.push_back(region(i));
    }
    return out;
}

// ---------------------------------------------------------------------------
// Body size rules: exact size accepted, one byte short or long rejected, and
// the error names the request.

struct SizeRule {
    Request request;
    size_t size;
    size_t fds;
};

const SizeRule kSizeRules[] = {
    {Request::GetFeatures, 0, 0},
    {Request::SetFeatures, 8, 0},
    {Request::SetOwner, 0, 0},
    {Request::ResetOwner, 0, 0},
    {Request::SetMemTable, 8 + 32, 1},
    {Request::SetLogBase, 16, 1},
    {Request::SetLogFd, 0, 1},
    {Request::SetVringNum, 8, 0},
    {Request::SetVringAddr, 40, 0},
    {Request::SetVringBase, 8, 0},
    {Request::GetVringBase, 8, 0},
    {Request::SetVringKick, 8, 1},
    {Request::SetVringCall, 8, 1},
    {Request::SetVringErr, 8, 1},
    {Request::GetProtocolFeatures, 0, 0},
    {Request::SetProtocolFeatures, 8, 0},
    {Request::GetQueueNum, 0, 0},
    {Request::SetVringEnable, 8, 0},
    {Request::SendRarp, 8, 0},
    {Request::NetSetMtu, 8, 0},
    {Request::ResetDevice, 0, 0},
    {Request::GetMaxMemSlots, 0, 0},
    {Request::AddMemReg, 40, 1},
    {Request::RemMemReg, 40, 0},
    {Request::SetStatus, 8, 0},
    {Request::GetStatus, 0, 0},
};

// A body of `size` bytes that is valid for `r` when size is right: zeros,
// except SET_MEM_TABLE's num_regions = 1.
std::vector<uint8_t> body_for(Request r, size_t size) {
    std::vector<uint8_t> body(size, 0);
    if (r == Request::SetMemTable && size >= 4) {
        const uint32_t one = 1;
        std::memcpy(body.data(), &one, sizeof one);
    }
    return body;
}

class BodySize : public ::testing::TestWithParam<SizeRule> {};

TEST_P(BodySize, ExactSizeIsAccepted) {
    const SizeRule rule = GetParam();
    FdSet fds = FdSet::eventfds(rule.fds);
    auto msg = decode_msg(rule.request, body_for(rule.request, rule.size), fds.take());
    ASSERT_TRUE(is_ok(msg));
    EXPECT_EQ(msg->request, rule.request);
    EXPECT_EQ(msg->flags, kFlagVersion1);
}

TEST_P(BodySize, OneByteShortIsRejected) {
    const SizeRule rule = GetParam();
    if (rule.size == 0) {
        GTEST_SUCCEED() << "no shorter body exists";
        return;
    }
    FdSet fds = FdSet::eventfds(rule.fds);
    auto msg = decode_msg(rule.request, body_for(rule.request, rule.size - 1), fds.take());
    EXPECT_TRUE(is_error(msg, {request_name(rule.request)}));
    expect_all_closed(fds.raw);
}

TEST_P(BodySize, OneByteLongIsRejected) {
    const SizeRule rule = GetParam();
    FdSet fds = FdSet::eventfds(rule.fds);
    auto msg = decode_msg(rule.request, body_for(rule.request, rule.size + 1), fds.take());
    EXPECT_TRUE(is_error(msg, {request_name(rule.request)}));
    expect_all_closed(fds.raw);
}

TEST_P(BodySize, MuchLongerIsRejected) {
    const SizeRule rule = GetParam();
    FdSet fds = FdSet::eventfds(rule.fds);
    auto msg = decode_msg(rule.request, body_for(rule.request, rule.size + 64), fds.take());
    EXPECT_TRUE(is_error(msg, {request_name(rule.request)}));
    expect_all_closed(fds.raw);
}

INSTANTIATE_TEST_SUITE_P(EveryRequest, BodySize, ::testing::ValuesIn(kSizeRules),
                         [](const ::testing::TestParamInfo<SizeRule>& info) {
                             // GET_FEATURES -> GetFeatures (test names take no '_').
                             std::string name;
                             bool upper = true;
                             for (const char* c = request_name(info.param.request); *c != 0; ++c) {
                                 if (*c == '_') {
                                     upper = true;
                                     continue;
                                 }
                                 name += upper ? *c : static_cast<char>(std::tolower(*c));
                                 upper = false;
                             }
                             return name;
                         });

// The decoded body carries the payload's values in the right alternative.
TEST(Codec, BodiesDecodeToTheirTypes) {
    {
        auto m = decode_msg(Request::SetFeatures, bytes_of(uint64_t{0x1234'5678'9abc'def0}));
        ASSERT_TRUE(is_ok(m));
        EXPECT_EQ(std::get<uint64_t>(m->body), 0x1234'5678'9abc'def0u);
    }
    {
        auto m = decode_msg(Request::SetVringNum, bytes_of(VringState{1, 256}));
        ASSERT_TRUE(is_ok(m));
        EXPECT_EQ(std::get<VringState>(m->body).index, 1u);
        EXPECT_EQ(std::get<VringState>(m->body).num, 256u);
    }
    {
        VringAddr a{1, kVringFlagLog, 0x1000, 0x3000, 0x2000, 0x4000};
        auto m = decode_msg(Request::SetVringAddr, bytes_of(a));
        ASSERT_TRUE(is_ok(m));
        const auto& got = std::get<VringAddr>(m->body);
        EXPECT_EQ(got.index, 1u);
        EXPECT_EQ(got.flags, kVringFlagLog);
        EXPECT_EQ(got.desc_user_addr, 0x1000u);
        EXPECT_EQ(got.used_user_addr, 0x3000u);
        EXPECT_EQ(got.avail_user_addr, 0x2000u);
        EXPECT_EQ(got.log_guest_addr, 0x4000u);
    }
    {
        FdSet fds = FdSet::eventfds(1);
        auto m = decode_msg(Request::SetVringCall, bytes_of(uint64_t{0xff}), fds.take());
        ASSERT_TRUE(is_ok(m));
        const auto& v = std::get<VringFd>(m->body);
        EXPECT_EQ(v.index, 0xffu);
        EXPECT_FALSE(v.polling);
        EXPECT_EQ(v.fd.get(), fds.raw[0]);  // handed over, not duplicated
    }
    {
        FdSet fds = FdSet::eventfds(1);
        auto m = decode_msg(Request::SetLogBase, bytes_of(LogWire{0x2000, 0x1000}), fds.take());
        ASSERT_TRUE(is_ok(m));
        const auto& log = std::get<LogBase>(m->body);
        EXPECT_EQ(log.log.mmap_size, 0x2000u);
        EXPECT_EQ(log.log.mmap_offset, 0x1000u);
        EXPECT_EQ(log.fd.get(), fds.raw[0]);
    }
    {
        FdSet fds = FdSet::eventfds(1);
        auto m = decode_msg(Request::SetLogFd, {}, fds.take());
        ASSERT_TRUE(is_ok(m));
        EXPECT_EQ(std::get<FdOnly>(m->body).fd.get(), fds.raw[0]);
    }
    {
        FdSet fds = FdSet::eventfds(1);
        auto m = decode_msg(Request::AddMemReg, single_region_payload(region(3)), fds.take());
        ASSERT_TRUE(is_ok(m));
        const auto& r = std::get<SingleRegion>(m->body);
        EXPECT_EQ(r.region.guest_phys_addr, region(3).guest_phys_addr);
        EXPECT_EQ(r.region.memory_size, region(3).memory_size);
        EXPECT_EQ(r.region.userspace_addr, region(3).userspace_addr);
        EXPECT_EQ(r.fd.get(), fds.raw[0]);
    }
    {
        auto m = decode_msg(Request::GetFeatures, {}, {}, kFlagVersion1 | kFlagNeedReply);
        ASSERT_TRUE(is_ok(m));
        EXPECT_TRUE(std::holds_alternative<NoBody>(m->body));
        EXPECT_TRUE(m->need_reply());
    }
}

// Request codes the spec defines whose features vhostd never offers.
TEST(Codec, UnsupportedRequestsAreRejectedByName) {
    const uint32_t unsupported[] = {21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 35, 41, 42, 43};
    for (uint32_t code : unsupported) {
        FdSet fds = FdSet::eventfds(1);
        auto m = decode(message(code, std::vector<uint8_t>(8, 0)), fds.take(), false);
        EXPECT_TRUE(is_error(m, {request_name(code), "not supported"})) << "code " << code;
        expect_all_closed(fds.raw);
    }
}

// ---------------------------------------------------------------------------
// Stage 1: the header.

TEST(CodecHeader, UnknownRequestCodes) {
    for (uint32_t code : {0u, 44u, 45u, 1000u, 0xFFFFFFFFu}) {
        const auto bytes = bytes_of(MsgHeader{code, kFlagVersion1, 0});
        EXPECT_TRUE(is_error(decode_header(bytes), {"unknown request code", std::to_string(code)}))
            << "code " << code;
        FdSet fds = FdSet::eventfds(2);
        EXPECT_TRUE(is_error(decode(bytes, fds.take(), false), {"unknown request code"}));
        expect_all_closed(fds.raw);
    }
}

TEST(CodecHeader, VersionMustBeOne) {
    for (uint32_t flags : {0u, 2u, 3u, kFlagNeedReply, 2u | kFlagNeedReply}) {
        const auto bytes = bytes_of(MsgHeader{static_cast<uint32_t>(Request::GetFeatures), flags, 0});
        EXPECT_TRUE(is_error(decode_header(bytes), {"GET_FEATURES", "version"})) << "flags " << flags;
    }
    EXPECT_TRUE(is_ok(decode_header(bytes_of(MsgHeader{1, kFlagVersion1, 0}))));
    EXPECT_TRUE(is_ok(decode_header(bytes_of(MsgHeader{1, kFlagVersion1 | kFlagNeedReply, 0}))));
}

TEST(CodecHeader, ReplyBitOnARequestIsRejected) {
    const auto bytes =
        bytes_of(MsgHeader{static_cast<uint32_t>(Request::SetOwner), kFlagVersion1 | kFlagReply, 0});
    EXPECT_TRUE(is_error(decode_header(bytes), {"SET_OWNER", "reply"}));
}

// Bits 4..31 of the flags are reserved (only version, reply and need_reply
// exist; wire.hpp's kFlagKnownMask). A header that sets one is not a message
// this back-end understands: refuse it, as rust-vmm's header check does.
TEST(CodecHeader, ReservedFlagBitsAreRejected) {
    for (uint32_t reserved : {1u << 4, 1u << 5, 1u << 16, 1u << 31}) {
        const uint32_t flags = kFlagVersion1 | reserved;
        const auto bytes = bytes_of(MsgHeader{static_cast<uint32_t>(Request::SetOwner), flags, 0});
        EXPECT_TRUE(is_error(decode_header(bytes), {"SET_OWNER"}))
            << "flags 0x" << std::hex << flags << " accepted";
    }
}

TEST(CodecHeader, SizeAboveTheLimitIsRejected) {
    for (uint32_t size : {kMaxPayload + 1, 0x10000u, 0xFFFFFFFFu}) {
        const auto bytes = bytes_of(MsgHeader{static_cast<uint32_t>(Request::SetMemTable), kFlagVersion1, size});
        EXPECT_TRUE(is_error(decode_header(bytes), {"SET_MEM_TABLE", std::to_string(size)}))
            << "size " << size;
    }
    // The limit itself passes stage 1 (the body rule then decides).
    auto h = decode_header(bytes_of(MsgHeader{static_cast<uint32_t>(Request::SetMemTable), kFlagVersion1, kMaxPayload}));
    ASSERT_TRUE(is_ok(h));
    EXPECT_EQ(h->size, kMaxPayload);
}

TEST(CodecHeader, WrongHeaderLength) {
    std::vector<uint8_t> bytes(sizeof(MsgHeader) + 1, 0);
    EXPECT_TRUE(is_error(decode_header(std::span<const uint8_t>(bytes).first(11)), {"header"}));
    EXPECT_TRUE(is_error(decode_header(bytes), {"header"}));
    EXPECT_TRUE(is_error(decode(std::span<const uint8_t>(bytes).first(5), {}, false), {"header"}));
}

TEST(CodecHeader, BodyLengthMustMatchHeaderSize) {
    // decode(): the bytes after the header are the body; the header's size
    // must say exactly that many.
    const auto body = bytes_of(uint64_t{1});
    auto longer = decode(message(static_cast<uint32_t>(Request::SetFeatures), body, kFlagVersion1, 4), {}, false);
    EXPECT_TRUE(is_error(longer, {"SET_FEATURES"}));
    auto shorter = decode(message(static_cast<uint32_t>(Request::SetFeatures), body, kFlagVersion1, 16), {}, false);
    EXPECT_TRUE(is_error(shorter, {"SET_FEATURES"}));
}

// ---------------------------------------------------------------------------
// Stage 2: SET_MEM_TABLE.

TEST(CodecMemTable, ZeroRegions) {
    auto m = decode_msg(Request::SetMemTable, mem_table_payload({}));
    EXPECT_TRUE(is_error(m, {"SET_MEM_TABLE", "num_regions 0"}));
}

TEST(CodecMemTable, NineRegions) {
    const auto r = regions(9);
    FdSet fds = FdSet::eventfds(9);
    auto m = decode_msg(Request::SetMemTable, mem_table_payload(r), fds.take());
    EXPECT_TRUE(is_error(m, {"SET_MEM_TABLE", "num_regions 9"}));
    expect_all_closed(fds.raw);
}

TEST(CodecMemTable, EightRegionsWithEightFds) {
    const auto r = regions(8);
    FdSet fds = FdSet::eventfds(8);
    auto m = decode_msg(Request::SetMemTable, mem_table_payload(r), fds.take());
    ASSERT_TRUE(is_ok(m));
    const auto& table = std::get<MemTable>(m->body);
    ASSERT_EQ(table.regions.size(), 8u);
    ASSERT_EQ(table.fds.size(), 8u);
    for (size_t i = 0; i < 8; ++i) {
        EXPECT_EQ(table.regions[i].guest_phys_addr, r[i].guest_phys_addr);
        EXPECT_EQ(table.regions[i].memory_size, r[i].memory_size);
        EXPECT_EQ(table.regions[i].userspace_addr, r[i].userspace_addr);
        EXPECT_EQ(table.regions[i].mmap_offset, r[i].mmap_offset);
        EXPECT_EQ(table.fds[i].get(), fds.raw[i]) << "fds keep the order of the regions";
    }
}

TEST(CodecMemTable, SizeMustMatchNumRegions) {
    {
        // num_regions 2, body of one region.
        FdSet fds = FdSet::eventfds(2);
        auto m = decode_msg(Request::SetMemTable, mem_table_payload(regions(1), 2), fds.take());
        EXPECT_TRUE(is_error(m, {"SET_MEM_TABLE", "size"}));
        expect_all_closed(fds.raw);
    }
    {
        // num_regions 1, body of two regions.
        FdSet fds = FdSet::eventfds(1);
        auto m = decode_msg(Request::SetMemTable, mem_table_payload(regions(2), 1), fds.take());
        EXPECT_TRUE(is_error(m, {"SET_MEM_TABLE", "size"}));
        expect_all_closed(fds.raw);
    }
    {
        // Shorter than its own 8-byte head.
        auto m = decode_msg(Request::SetMemTable, std::vector<uint8_t>(4, 0));
        EXPECT_TRUE(is_error(m, {"SET_MEM_TABLE"}));
    }
}

TEST(CodecMemTable, FdCountMustMatchRegions) {
    for (size_t nfds : {0u, 1u, 3u, 8u}) {
        FdSet fds = FdSet::eventfds(nfds);
        auto m = decode_msg(Request::SetMemTable, mem_table_payload(regions(2)), fds.take());
        EXPECT_TRUE(is_error(m, {"SET_MEM_TABLE", "fds"})) << nfds << " fds";
        expect_all_closed(fds.raw);
    }
}

// ---------------------------------------------------------------------------
// Fds: only the requests that take them may carry them; every other fd is
// closed at once.

TEST(CodecFds, FdsOnRequestsThatTakeNoneAreRejectedAndClosed) {
    const size_t before = count_fds();
    for (const SizeRule& rule : kSizeRules) {
        if (rule.fds != 0) {
            continue;
        }
        for (size_t extra : {1u, 2u}) {
            FdSet fds = FdSet::eventfds(extra);
            if (rule.request == Request::RemMemReg && extra == 1) {
                continue;  // tolerated, see RemMemRegFds
            }
            auto m = decode_msg(rule.request, body_for(rule.request, rule.size), fds.take());
            EXPECT_TRUE(is_error(m, {request_name(rule.request), "fds"}))
                << request_name(rule.request) << " with " << extra << " fds";
            expect_all_closed(fds.raw);
        }
    }
    EXPECT_EQ(count_fds(), before);
}

TEST(CodecFds, MissingFdIsRejected) {
    for (Request r : {Request::SetVringKick, Request::SetVringCall, Request::SetVringErr,
                      Request::AddMemReg, Request::SetLogBase, Request::SetLogFd}) {
        size_t size = 0;
        for (const SizeRule& rule : kSizeRules) {
            if (rule.request == r) {
                size = rule.size;
            }
        }
        auto m = decode_msg(r, body_for(r, size), {});
        EXPECT_TRUE(is_error(m, {request_name(r), "0 fds"})) << request_name(r);
    }
}

TEST(CodecFds, TooManyFdsAreRejectedAndClosed) {
    for (Request r : {Request::SetVringKick, Request::AddMemReg, Request::SetLogBase, Request::SetLogFd}) {
        size_t size = 0;
        for (const SizeRule& rule : kSizeRules) {
            if (rule.request == r) {
                size = rule.size;
            }
        }
        FdSet fds = FdSet::eventfds(2);
        auto m = decode_msg(r, body_for(r, size), fds.take());
        EXPECT_TRUE(is_error(m, {request_name(r), "2 fds"})) << request_name(r);
        expect_all_closed(fds.raw);
    }
}

TEST(CodecFds, VringFdPollingBit) {
    // Bit 8 set and no fd: the ring is polled.
    {
        auto m = decode_msg(Request::SetVringKick, bytes_of(uint64_t{kVringNoFdFlag | 1}));
        ASSERT_TRUE(is_ok(m));
        const auto& v = std::get<VringFd>(m->body);
        EXPECT_EQ(v.index, 1u);
        EXPECT_TRUE(v.polling);
        EXPECT_FALSE(v.fd.valid());
    }
    // Bit 8 set and an fd anyway: contradictory, refused, fd closed.
    for (Request r : {Request::SetVringKick, Request::SetVringCall, Request::SetVringErr}) {
        FdSet fds = FdSet::eventfds(1);
        auto m = decode_msg(r, bytes_of(uint64_t{kVringNoFdFlag}), fds.take());
        EXPECT_TRUE(is_error(m, {request_name(r)})) << request_name(r);
        expect_all_closed(fds.raw);
    }
}

TEST(CodecFds, VringFdReservedBits) {
    for (uint64_t value : {uint64_t{1} << 9, uint64_t{1} << 16, uint64_t{0x10000000},
                           uint64_t{1} << 32, uint64_t{1} << 63, ~uint64_t{0}}) {
        FdSet fds = FdSet::eventfds(1);
        auto m = decode_msg(Request::SetVringCall, bytes_of(value), fds.take());
        EXPECT_TRUE(is_error(m, {"SET_VRING_CALL", "reserved"})) << std::hex << value;
        expect_all_closed(fds.raw);
    }
}

TEST(CodecFds, TruncatedControlDataIsRejected) {
    FdSet fds = FdSet::eventfds(8);
    auto m = decode_msg(Request::SetMemTable, mem_table_payload(regions(8)), fds.take(),
                        kFlagVersion1, /*truncated=*/true);
    EXPECT_TRUE(is_error(m, {"SET_MEM_TABLE", "truncated"}));
    expect_all_closed(fds.raw);

    auto none = decode_msg(Request::GetFeatures, {}, {}, kFlagVersion1, true);
    EXPECT_TRUE(is_error(none, {"GET_FEATURES", "truncated"}));
}

// REM_MEM_REG: "No file descriptors SHOULD be passed... the back-end MAY
// accept messages with one file descriptor... MUST close it".
TEST(CodecFds, RemMemRegFds) {
    const auto body = single_region_payload(region(0));
    {
        auto m = decode_msg(Request::RemMemReg, body, {});
        ASSERT_TRUE(is_ok(m));
        EXPECT_FALSE(std::get<SingleRegion>(m->body).fd.valid());
    }
    {
        FdSet fds = FdSet::eventfds(1);
        auto m = decode_msg(Request::RemMemReg, body, fds.take());
        ASSERT_TRUE(is_ok(m));
        EXPECT_FALSE(std::get<SingleRegion>(m->body).fd.valid());
        expect_all_closed(fds.raw);  // closed unused, before the session sees it
    }
    {
        FdSet fds = FdSet::eventfds(2);
        auto m = decode_msg(Request::RemMemReg, body, fds.take());
        EXPECT_TRUE(is_error(m, {"REM_MEM_REG", "2 fds"}));
        expect_all_closed(fds.raw);
    }
}

TEST(CodecFds, NoFdLeaksAcrossManyRejections) {
    const size_t before = count_fds();
    for (int i = 0; i < 50; ++i) {
        FdSet fds = FdSet::eventfds(3);
        (void)decode_msg(Request::SetOwner, {}, fds.take());
        FdSet more = FdSet::eventfds(2);
        (void)decode(bytes_of(MsgHeader{0, kFlagVersion1, 0}), more.take(), false);
    }
    EXPECT_EQ(count_fds(), before);
}

// ---------------------------------------------------------------------------
// Encoders.

MsgHeader header_of(const std::vector<uint8_t>& bytes) {
    MsgHeader h{};
    EXPECT_GE(bytes.size(), sizeof h);
    std::memcpy(&h, bytes.data(), sizeof h);
    return h;
}

TEST(CodecEncode, ReplyU64) {
    const auto bytes = encode_reply_u64(Request::GetFeatures, 0x1'0000'0042);
    ASSERT_EQ(bytes.size(), sizeof(MsgHeader) + 8);
    const MsgHeader h = header_of(bytes);
    EXPECT_EQ(h.request, static_cast<uint32_t>(Request::GetFeatures));
    EXPECT_EQ(h.flags, kFlagVersion1 | kFlagReply);
    EXPECT_EQ(h.size, 8u);
    uint64_t v = 0;
    std::memcpy(&v, bytes.data() + sizeof h, 8);
    EXPECT_EQ(v, 0x1'0000'0042u);
}

TEST(CodecEncode, ReplyState) {
    const auto bytes = encode_reply_state(Request::GetVringBase, VringState{3, 0xbeef});
    ASSERT_EQ(bytes.size(), sizeof(MsgHeader) + 8);
    const MsgHeader h = header_of(bytes);
    EXPECT_EQ(h.request, static_cast<uint32_t>(Request::GetVringBase));
    EXPECT_EQ(h.flags, kFlagVersion1 | kFlagReply);
    EXPECT_EQ(h.size, 8u);
    VringState s{};
    std::memcpy(&s, bytes.data() + sizeof h, 8);
    EXPECT_EQ(s.index, 3u);
    EXPECT_EQ(s.num, 0xbeefu);
}

TEST(CodecEncode, ReplyEmpty) {
    const auto bytes = encode_reply_empty(Request::SetLogBase);
    ASSERT_EQ(bytes.size(), sizeof(MsgHeader));
    const MsgHeader h = header_of(bytes);
    EXPECT_EQ(h.request, static_cast<uint32_t>(Request::SetLogBase));
    EXPECT_EQ(h.flags, kFlagVersion1 | kFlagReply);
    EXPECT_EQ(h.size, 0u);
}

// A reply parsed the way a front-end parses it round-trips; fed back to the
// request decoder, it is refused (reply bit on a "request").
TEST(CodecEncode, RepliesRoundTripAndAreNotRequests) {
    const auto u64 = encode_reply_u64(Request::GetProtocolFeatures, 0xabcdef);
    auto h = decode_header(std::span<const uint8_t>(u64).first(sizeof(MsgHeader)));
    EXPECT_TRUE(is_error(h, {"GET_PROTOCOL_FEATURES", "reply"}));
    EXPECT_TRUE(is_error(decode(u64, {}, false), {"reply"}));

    // Clearing the reply bit gives a well-formed message again.
    auto as_request = u64;
    MsgHeader hh = header_of(as_request);
    hh.flags &= ~kFlagReply;
    std::memcpy(as_request.data(), &hh, sizeof hh);
    auto m = decode(as_request, {}, false);
    // GET_PROTOCOL_FEATURES takes no body: the 8-byte payload is refused.
    EXPECT_TRUE(is_error(m, {"GET_PROTOCOL_FEATURES", "size 8"}));

    auto state = encode_reply_state(Request::GetVringBase, VringState{1, 77});
    MsgHeader sh = header_of(state);
    sh.flags &= ~kFlagReply;
    std::memcpy(state.data(), &sh, sizeof sh);
    auto sm = decode(state, {}, false);
    ASSERT_TRUE(is_ok(sm));
    EXPECT_EQ(std::get<VringState>(sm->body).index, 1u);
    EXPECT_EQ(std::get<VringState>(sm->body).num, 77u);
}

TEST(CodecEncode, RequestsRoundTrip) {
    {
        VringAddr a{1, 0, 0x7f0000001000, 0x7f0000003000, 0x7f0000002000, 0};
        auto m = decode(encode_request(Request::SetVringAddr, kFlagVersion1 | kFlagNeedReply, a), {}, false);
        ASSERT_TRUE(is_ok(m));
        EXPECT_TRUE(m->need_reply());
        EXPECT_EQ(std::memcmp(&std::get<VringAddr>(m->body), &a, sizeof a), 0);
    }
    {
        const auto r = regions(3);
        FdSet fds = FdSet::eventfds(3);
        auto m = decode(encode_request(Request::SetMemTable, kFlagVersion1, std::span<const uint8_t>(mem_table_payload(r))),
                        fds.take(), false);
        ASSERT_TRUE(is_ok(m));
        const auto& t = std::get<MemTable>(m->body);
        ASSERT_EQ(t.regions.size(), 3u);
        EXPECT_EQ(std::memcmp(t.regions.data(), r.data(), 3 * sizeof(MemRegionWire)), 0);
    }
    {
        auto m = decode(encode_request(Request::GetFeatures, kFlagVersion1, std::span<const uint8_t>{}), {}, false);
        ASSERT_TRUE(is_ok(m));
        EXPECT_EQ(m->request, Request::GetFeatures);
    }
}

// A std::vector payload is its contents, not the vector object's own bytes
// (the template overload for wire structs once took it and encoded a
// pointer and a size).
TEST(CodecEncode, AVectorPayloadIsEncodedByItsContents) {
    const std::vector<uint8_t> payload = mem_table_payload(regions(1));
    const auto bytes = encode_request(Request::SetMemTable, kFlagVersion1, payload);
    ASSERT_EQ(bytes.size(), sizeof(MsgHeader) + payload.size());
    EXPECT_EQ(std::memcmp(bytes.data() + sizeof(MsgHeader), payload.data(), payload.size()), 0);
}

TEST(Wire, RequestNames) {
    EXPECT_STREQ(request_name(Request::SetVringKick), "SET_VRING_KICK");
    EXPECT_STREQ(request_name(uint32_t{44}), "UNKNOWN");
    EXPECT_STREQ(request_name(uint32_t{0xFFFFFFFF}), "UNKNOWN");
    for (uint32_t code = 1; code < static_cast<uint32_t>(Request::Max); ++code) {
        EXPECT_STRNE(request_name(code), "UNKNOWN") << code;
    }
}

} // namespace
} // namespace vhostd::protocol
