// deliver_frame: virtio-net receive into a guest, with and without mergeable
// RX buffers, and the whole VM A -> VM B path with one copy.

#include "virtio/net_rx.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "tests/unit/virtio/rig.hpp"

namespace vhostd::virtio {
namespace {

using testing::kEventIdx;
using testing::kMrg;
using testing::kV1;
using testing::pattern;
using testing::Rig;
using testing::with_header;

VirtioNetHdrMrg header_of(const std::vector<uint8_t>& bytes) {
    VirtioNetHdrMrg hdr{};
    std::memcpy(&hdr, bytes.data(), std::min(bytes.size(), sizeof(hdr)));
    return hdr;
}

DeliverStatus deliver(Rig& rig, const std::vector<uint8_t>& frame) {
    return deliver_frame(rig.ring, rig.st, frame.data(), static_cast<uint32_t>(frame.size()));
}

TEST(Rx, OneBufferVersion1) {
    Rig rig(kV1);
    const uint16_t head = rig.drv.post_rx({2048});
    const auto frame = pattern(100);
    // Poison the buffer: the header must be written in full.
    rig.drv.write_bytes(rig.drv.segs_of(head)[0].gpa, std::vector<uint8_t>(2048, 0xEE));

    ASSERT_EQ(deliver(rig, frame), DeliverStatus::kDelivered);
    EXPECT_EQ(rig.drv.used_idx(), 0) << "visible only after flush";
    flush_used(rig.ring, rig.st);
    const auto used = rig.drv.take_used();
    ASSERT_EQ(used.size(), 1u);
    EXPECT_EQ(used[0].id, head);
    EXPECT_EQ(used[0].len, 12u + 100u);

    const auto bytes = rig.drv.read_chain(head, 112);
    const VirtioNetHdrMrg hdr = header_of(bytes);
    EXPECT_EQ(hdr.hdr.flags, 0);
    EXPECT_EQ(hdr.hdr.gso_type, kNetHdrGsoNone);
    EXPECT_EQ(hdr.hdr.csum_start, 0);
    EXPECT_EQ(hdr.num_buffers, 1) << "1 without MRG_RXBUF (§5.1.6.3.2)";
    EXPECT_EQ(std::vector<uint8_t>(bytes.begin() + 12, bytes.end()), frame);
    EXPECT_EQ(rig.st.rx_frames, 1u);
    EXPECT_EQ(rig.st.rx_bytes, 100u);
}

TEST(Rx, LegacyTenByteHeader) {
    Rig rig(/*features=*/0);
    const uint16_t head = rig.drv.post_rx({1526});
    rig.drv.write_bytes(rig.drv.segs_of(head)[0].gpa, std::vector<uint8_t>(16, 0xEE));
    const auto frame = pattern(60);
    ASSERT_EQ(deliver(rig, frame), DeliverStatus::kDelivered);
    flush_used(rig.ring, rig.st);
    const auto used = rig.drv.take_used();
    ASSERT_EQ(used.size(), 1u);
    EXPECT_EQ(used[0].len, 10u + 60u);
    const auto bytes = rig.drv.read_chain(head, 70);
    EXPECT_EQ(std::vector<uint8_t>(bytes.begin(), bytes.begin() + 10), std::vector<uint8_t>(10, 0));
    EXPECT_EQ(std::vector<uint8_t>(bytes.begin() + 10, bytes.end()), frame);
}

TEST(Rx, OneChainOfSeveralDescriptors) {
    Rig rig(kV1);
    // Header split over the first two descriptors, frame over all four.
    const uint16_t head = rig.drv.post_rx({5, 5, 50, 2000});
    const auto frame = pattern(500);
    ASSERT_EQ(deliver(rig, frame), DeliverStatus::kDelivered);
    flush_used(rig.ring, rig.st);
    const auto used = rig.drv.take_used();
    ASSERT_EQ(used.size(), 1u);
    EXPECT_EQ(used[0].len, 512u);
    const auto bytes = rig.drv.read_chain(head, 512);
    EXPECT_EQ(header_of(bytes).num_buffers, 1);
    EXPECT_EQ(std::vector<uint8_t>(bytes.begin() + 12, bytes.end()), frame);
}

TEST(Rx, NonMergeableTooBigIsDroppedWithoutConsumingTheChain) {
    Rig rig(kV1);
    const uint16_t head = rig.drv.post_rx({100});
    EXPECT_EQ(deliver(rig, pattern(89)), DeliverStatus::kTooBig) << "12 + 89 > 100";
    EXPECT_EQ(rig.st.rx_too_big, 1u);
    EXPECT_EQ(rig.st.last_avail_idx, 0) << "the chain stays available";
    flush_used(rig.ring, rig.st);
    EXPECT_EQ(rig.drv.used_idx(), 0);
    EXPECT_FALSE(rig.st.broken);

    // A frame that fits uses the same chain.
    const auto frame = pattern(88);
    ASSERT_EQ(deliver(rig, frame), DeliverStatus::kDelivered);
    flush_used(rig.ring, rig.st);
    const auto used = rig.drv.take_used();
    ASSERT_EQ(used.size(), 1u);
    EXPECT_EQ(used[0].id, head);
    EXPECT_EQ(used[0].len, 100u);
}

TEST(Rx, NoBufferAtAll) {
    Rig rig(kV1);
    EXPECT_EQ(deliver(rig, pattern(10)), DeliverStatus::kNoBuffer);
    EXPECT_EQ(rig.st.rx_no_buffer, 1u);
    EXPECT_FALSE(rig.st.broken);
}

TEST(RxMergeable, FrameAcrossThreeBuffers) {
    Rig rig(kV1 | kMrg);
    std::vector<uint16_t> heads;
    for (int i = 0; i < 5; ++i) {
        heads.push_back(rig.drv.post_rx({100}));
    }
    const auto frame = pattern(250);  // 12 + 250 = 262 = 100 + 100 + 62
    ASSERT_EQ(deliver(rig, frame), DeliverStatus::kDelivered) << rig.st.broken_reason;
    EXPECT_EQ(rig.st.last_avail_idx, 3);
    flush_used(rig.ring, rig.st);
    const auto used = rig.drv.take_used();
    ASSERT_EQ(used.size(), 3u);
    EXPECT_EQ(used[0].id, heads[0]);
    EXPECT_EQ(used[0].len, 100u);
    EXPECT_EQ(used[1].id, heads[1]);
    EXPECT_EQ(used[1].len, 100u);
    EXPECT_EQ(used[2].id, heads[2]);
    EXPECT_EQ(used[2].len, 62u);

    std::vector<uint8_t> got = rig.drv.read_chain(heads[0], 100);
    EXPECT_EQ(header_of(got).num_buffers, 3);
    const auto b1 = rig.drv.read_chain(heads[1], 100);
    const auto b2 = rig.drv.read_chain(heads[2], 62);
    got.insert(got.end(), b1.begin(), b1.end());
    got.insert(got.end(), b2.begin(), b2.end());
    EXPECT_EQ(std::vector<uint8_t>(got.begin() + 12, got.end()), frame) << "no header in later buffers";

    // The next frame starts in the fourth buffer with a header of its own.
    ASSERT_EQ(deliver(rig, pattern(20, 9)), DeliverStatus::kDelivered);
    flush_used(rig.ring, rig.st);
    const auto next = rig.drv.take_used();
    ASSERT_EQ(next.size(), 1u);
    EXPECT_EQ(next[0].id, heads[3]);
    EXPECT_EQ(header_of(rig.drv.read_chain(heads[3], 12)).num_buffers, 1);
}

TEST(RxMergeable, FrameThatFitsOneBufferUsesOne) {
    Rig rig(kV1 | kMrg);
    rig.drv.post_rx({1536});
    rig.drv.post_rx({1536});
    ASSERT_EQ(deliver(rig, pattern(1000)), DeliverStatus::kDelivered);
    EXPECT_EQ(rig.st.last_avail_idx, 1);
}

TEST(RxMergeable, NotEnoughBuffersRollsBack) {
    Rig rig(kV1 | kMrg);
    const uint16_t a = rig.drv.post_rx({100});
    const uint16_t b = rig.drv.post_rx({100});
    const auto frame = pattern(250);
    EXPECT_EQ(deliver(rig, frame), DeliverStatus::kNoBuffer);
    EXPECT_EQ(rig.st.last_avail_idx, 0) << "nothing consumed";
    EXPECT_EQ(rig.st.rx_no_buffer, 1u);
    flush_used(rig.ring, rig.st);
    EXPECT_EQ(rig.drv.used_idx(), 0);
    EXPECT_FALSE(rig.st.broken);

    // One more buffer and the same frame goes through, into a, b, c.
    const uint16_t c = rig.drv.post_rx({100});
    ASSERT_EQ(deliver(rig, frame), DeliverStatus::kDelivered);
    flush_used(rig.ring, rig.st);
    const auto used = rig.drv.take_used();
    ASSERT_EQ(used.size(), 3u);
    EXPECT_EQ(used[0].id, a);
    EXPECT_EQ(used[1].id, b);
    EXPECT_EQ(used[2].id, c);
}

TEST(RxMergeable, BufferShorterThanTheHeaderIsAViolation) {
    Rig rig(kV1 | kMrg);
    rig.drv.post_rx({100});
    rig.drv.post_rx({8});  // §5.1.6.3.1: each buffer at least a header
    EXPECT_EQ(deliver(rig, pattern(150)), DeliverStatus::kBroken);
    EXPECT_NE(std::string(rig.st.broken_reason).find("shorter than the virtio-net header"), std::string::npos);
}

TEST(RxMergeable, ManySmallBuffersRunOutOfPiecesAndPutEverythingBack) {
    Rig rig(kV1 | kMrg, 512, 2 << 20);
    for (int i = 0; i < 300; ++i) {
        rig.drv.post_rx({12});
    }
    // 12 + 3000 bytes needs 251 buffers of 12: fits in 256 pieces.
    ASSERT_EQ(deliver(rig, pattern(3000)), DeliverStatus::kDelivered) << rig.st.broken_reason;
    EXPECT_EQ(rig.st.last_avail_idx, 251);
    flush_used(rig.ring, rig.st);
    (void)rig.drv.take_used();
    for (int i = 0; i < 300; ++i) {
        rig.drv.post_rx({12});
    }
    // 12 + 3600 needs 301 buffers: more pieces than one delivery may use.
    EXPECT_EQ(deliver(rig, pattern(3600)), DeliverStatus::kTooBig);
    EXPECT_EQ(rig.st.last_avail_idx, 251) << "nothing consumed";
    EXPECT_FALSE(rig.st.broken);
}

TEST(RxHostile, ReadOnlyDescriptorInAnRxChain) {
    Rig rig(kV1);
    const uint64_t a = rig.drv.alloc(2048);
    rig.drv.add_chain({{a, 2048, false}});
    EXPECT_EQ(deliver(rig, pattern(10)), DeliverStatus::kBroken);
    EXPECT_NE(std::string(rig.st.broken_reason).find("device-readable descriptor in an RX"), std::string::npos);
}

TEST(RxCalls, EventIdxOnTheRxQueue) {
    Rig rig(kV1 | kEventIdx);
    rig.drv.post_rx({2048});
    rig.drv.post_rx({2048});
    rig.drv.set_used_event(1);  // wake me after the second packet
    ASSERT_EQ(deliver(rig, pattern(10)), DeliverStatus::kDelivered);
    flush_used(rig.ring, rig.st);
    EXPECT_FALSE(needs_call(rig.ring, rig.st));
    ASSERT_EQ(deliver(rig, pattern(10)), DeliverStatus::kDelivered);
    flush_used(rig.ring, rig.st);
    EXPECT_TRUE(needs_call(rig.ring, rig.st));
}

// VM A transmits, VM B receives: the frame goes straight from A's TX buffers
// into B's RX buffers, with the pieces on both sides cut differently.
TEST(VmToVm, OneCopyFromTxPiecesIntoRxPieces) {
    Rig a(kV1);
    Rig b(kV1 | kMrg);
    const auto frame = pattern(1000, 42);
    a.drv.send(with_header(frame), {4, 4, 4, 300, 7});  // header split over 3, frame over 3

    std::vector<uint16_t> rx_heads;
    rx_heads.push_back(b.drv.post_rx({64, 200}));
    rx_heads.push_back(b.drv.post_rx({500}));
    rx_heads.push_back(b.drv.post_rx({1000}));

    Chain chain;
    ASSERT_EQ(fetch_tx_chain(a.ring, a.st, chain), FetchStatus::kChain);
    const auto payload = skip_net_header(chain.view(), chain.len, a.ring.hdr_len);
    ASSERT_TRUE(payload);
    ASSERT_EQ(deliver_frame(b.ring, b.st, *payload), DeliverStatus::kDelivered) << b.st.broken_reason;
    push_used(a.ring, a.st, chain.head, 0);
    flush_used(a.ring, a.st);
    flush_used(b.ring, b.st);

    EXPECT_EQ(a.drv.take_used().size(), 1u);
    const auto used = b.drv.take_used();
    ASSERT_EQ(used.size(), 3u);  // 264 + 500 + 248 = 1012
    EXPECT_EQ(used[0].len, 264u);
    EXPECT_EQ(used[1].len, 500u);
    EXPECT_EQ(used[2].len, 248u);
    std::vector<uint8_t> got;
    for (size_t i = 0; i < 3; ++i) {
        const auto part = b.drv.read_chain(rx_heads[i], used[i].len);
        got.insert(got.end(), part.begin(), part.end());
    }
    EXPECT_EQ(header_of(got).num_buffers, 3);
    EXPECT_EQ(std::vector<uint8_t>(got.begin() + 12, got.end()), frame);
}

TEST(VmToVm, LegacySenderToVersion1Receiver) {
    Rig a(/*features=*/0);  // 10-byte header
    Rig b(kV1);             // 12-byte header
    const auto frame = pattern(64);
    a.drv.send(with_header(frame, 10));
    const uint16_t rx = b.drv.post_rx({1526});
    Chain chain;
    ASSERT_EQ(fetch_tx_chain(a.ring, a.st, chain), FetchStatus::kChain);
    const auto payload = skip_net_header(chain.view(), chain.len, a.ring.hdr_len);
    ASSERT_TRUE(payload);
    ASSERT_EQ(deliver_frame(b.ring, b.st, *payload), DeliverStatus::kDelivered);
    flush_used(b.ring, b.st);
    EXPECT_EQ(b.drv.take_used().at(0).len, 76u);
    const auto got = b.drv.read_chain(rx, 76);
    EXPECT_EQ(std::vector<uint8_t>(got.begin() + 12, got.end()), frame);
}

} // namespace
} // namespace vhostd::virtio
