// RxBatch: RX deliveries reserved at once and written at commit(), and the
// header writer they use.

#include "virtio/rx_batch.hpp"

#include <gtest/gtest.h>

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "tests/unit/virtio/rig.hpp"

namespace vhostd::virtio {
namespace {

using testing::kMrg;
using testing::kV1;
using testing::pattern;
using testing::Rig;

// A contiguous source frame, as a guest's TX buffer would be.
FrameView view_of(const std::vector<uint8_t>& bytes, Piece& piece) {
    piece = Piece{const_cast<uint8_t*>(bytes.data()), static_cast<uint32_t>(bytes.size())};
    return FrameView{std::span<const Piece>(&piece, 1), 0, static_cast<uint32_t>(bytes.size())};
}

std::vector<uint8_t> body(const std::vector<uint8_t>& chain_bytes, size_t hdr_len) {
    return {chain_bytes.begin() + static_cast<std::ptrdiff_t>(hdr_len), chain_bytes.end()};
}

// Posts one RX buffer of `len` bytes whose first `poisoned` bytes are 0xEE,
// so that bytes not written show.
uint16_t post_poisoned(Rig& rig, uint32_t len, size_t poisoned) {
    const uint16_t head = rig.drv.post_rx({len});
    rig.drv.write_bytes(rig.drv.segs_of(head)[0].gpa, std::vector<uint8_t>(poisoned, 0xEE));
    return head;
}

uint16_t num_buffers(const std::vector<uint8_t>& chain_bytes) {
    uint16_t v = 0;
    std::memcpy(&v, chain_bytes.data() + 10, sizeof(v));
    return v;
}

TEST(RxBatch, WritesNothingUntilCommit) {
    Rig rig(kV1);
    const uint16_t head = post_poisoned(rig, 2048, 2048);
    const auto frame = pattern(64);
    Piece piece{};
    RxBatch batch;

    ASSERT_EQ(batch.deliver(rig.ring, rig.st, view_of(frame, piece)), DeliverStatus::kDelivered);
    EXPECT_EQ(batch.pending(), 1u);
    EXPECT_EQ(rig.st.last_avail_idx, 1) << "the chain is taken at once";
    EXPECT_EQ(rig.st.rx_frames, 1u) << "and the frame counted";
    EXPECT_EQ(rig.st.used_idx, 0) << "but no used element is pushed yet";
    EXPECT_EQ(rig.drv.read_chain(head, 76), std::vector<uint8_t>(76, 0xEE)) << "nor a byte written";

    batch.commit();
    EXPECT_EQ(batch.pending(), 0u);
    flush_used(rig.ring, rig.st);
    const auto used = rig.drv.take_used();
    ASSERT_EQ(used.size(), 1u);
    EXPECT_EQ(used[0].id, head);
    EXPECT_EQ(used[0].len, 12u + 64u);
    const auto bytes = rig.drv.read_chain(head, 76);
    EXPECT_EQ(std::vector<uint8_t>(bytes.begin(), bytes.begin() + 10), std::vector<uint8_t>(10, 0));
    EXPECT_EQ(num_buffers(bytes), 1);
    EXPECT_EQ(body(bytes, 12), frame);
}

TEST(RxBatch, LegacyTenByteHeader) {
    Rig rig(/*features=*/0);
    const uint16_t head = post_poisoned(rig, 1526, 80);
    const auto frame = pattern(60);
    Piece piece{};
    RxBatch batch;
    ASSERT_EQ(batch.deliver(rig.ring, rig.st, view_of(frame, piece)), DeliverStatus::kDelivered);
    batch.commit();
    flush_used(rig.ring, rig.st);
    EXPECT_EQ(rig.drv.take_used().at(0).len, 70u);
    const auto bytes = rig.drv.read_chain(head, 80);
    EXPECT_EQ(std::vector<uint8_t>(bytes.begin(), bytes.begin() + 10), std::vector<uint8_t>(10, 0));
    EXPECT_EQ(std::vector<uint8_t>(bytes.begin() + 10, bytes.begin() + 70), frame);
    EXPECT_EQ(std::vector<uint8_t>(bytes.begin() + 70, bytes.end()), std::vector<uint8_t>(10, 0xEE))
        << "nothing written past the frame";
}

// A frame that cannot be deferred (its RX chain has several descriptors)
// writes the pending frames first: used elements stay in reservation order,
// which VIRTIO_F_IN_ORDER requires.
TEST(RxBatch, ImmediateFrameCommitsThePendingOnesFirst) {
    Rig rig(kV1 | kMrg);
    const uint16_t first = rig.drv.post_rx({2048});
    const uint16_t split = rig.drv.post_rx({6, 6, 2000});  // header over two descriptors
    const uint16_t last = rig.drv.post_rx({2048});
    const auto f1 = pattern(64, 1);
    const auto f2 = pattern(300, 2);
    const auto f3 = pattern(100, 3);
    Piece p1{}, p2{}, p3{};
    RxBatch batch;

    ASSERT_EQ(batch.deliver(rig.ring, rig.st, view_of(f1, p1)), DeliverStatus::kDelivered);
    EXPECT_EQ(batch.pending(), 1u);
    ASSERT_EQ(batch.deliver(rig.ring, rig.st, view_of(f2, p2)), DeliverStatus::kDelivered);
    EXPECT_EQ(batch.pending(), 0u) << "the first frame was written before the second";
    EXPECT_EQ(rig.st.used_idx, 2);
    ASSERT_EQ(batch.deliver(rig.ring, rig.st, view_of(f3, p3)), DeliverStatus::kDelivered);
    EXPECT_EQ(batch.pending(), 1u);
    batch.commit();
    flush_used(rig.ring, rig.st);

    const auto used = rig.drv.take_used();
    ASSERT_EQ(used.size(), 3u);
    EXPECT_EQ(used[0].id, first);
    EXPECT_EQ(used[1].id, split);
    EXPECT_EQ(used[2].id, last);
    EXPECT_EQ(body(rig.drv.read_chain(first, used[0].len), 12), f1);
    const auto second = rig.drv.read_chain(split, used[1].len);
    EXPECT_EQ(num_buffers(second), 1);
    EXPECT_EQ(body(second, 12), f2);
    EXPECT_EQ(body(rig.drv.read_chain(last, used[2].len), 12), f3);
}

// A source in two pieces (a header split from the frame, or a frame over two
// memory regions) is written at once too.
TEST(RxBatch, SplitSourceIsWrittenAtOnce) {
    Rig rig(kV1);
    const uint16_t head = rig.drv.post_rx({2048});
    const auto frame = pattern(200);
    const Piece pieces[2] = {{const_cast<uint8_t*>(frame.data()), 50},
                             {const_cast<uint8_t*>(frame.data()) + 50, 150}};
    RxBatch batch;
    ASSERT_EQ(batch.deliver(rig.ring, rig.st, FrameView{pieces, 0, 200}), DeliverStatus::kDelivered);
    EXPECT_EQ(batch.pending(), 0u);
    flush_used(rig.ring, rig.st);
    const auto used = rig.drv.take_used();
    ASSERT_EQ(used.size(), 1u);
    EXPECT_EQ(used[0].id, head);
    EXPECT_EQ(body(rig.drv.read_chain(head, used[0].len), 12), frame);
}

TEST(RxBatch, FramesThatAreNotDeliveredLeaveNothingPending) {
    Rig rig(kV1);
    const auto frame = pattern(100);
    Piece piece{};
    RxBatch batch;
    EXPECT_EQ(batch.deliver(rig.ring, rig.st, view_of(frame, piece)), DeliverStatus::kNoBuffer);
    EXPECT_EQ(rig.st.rx_no_buffer, 1u);
    rig.drv.post_rx({50});
    EXPECT_EQ(batch.deliver(rig.ring, rig.st, view_of(frame, piece)), DeliverStatus::kTooBig);
    EXPECT_EQ(rig.st.rx_too_big, 1u);
    EXPECT_EQ(rig.st.last_avail_idx, 0) << "the chain stays available";
    EXPECT_EQ(batch.pending(), 0u);
    EXPECT_EQ(rig.st.rx_frames, 0u);
}

// A ring that a later frame breaks is not written for the frames still
// pending: a broken ring is never written again.
TEST(RxBatch, NothingIsWrittenIntoARingThatBroke) {
    Rig rig(kV1);
    const uint16_t first = post_poisoned(rig, 2048, 128);
    rig.drv.send(std::vector<uint8_t>(100, 1));  // device-readable: a violation in an RX ring
    const auto frame = pattern(64);
    Piece piece{};
    RxBatch batch;
    ASSERT_EQ(batch.deliver(rig.ring, rig.st, view_of(frame, piece)), DeliverStatus::kDelivered);
    ASSERT_EQ(batch.deliver(rig.ring, rig.st, view_of(frame, piece)), DeliverStatus::kBroken);
    EXPECT_TRUE(rig.st.broken);
    batch.commit();
    EXPECT_EQ(batch.pending(), 0u);
    EXPECT_EQ(rig.drv.read_chain(first, 128), std::vector<uint8_t>(128, 0xEE));
    flush_used(rig.ring, rig.st);
    EXPECT_EQ(rig.drv.used_idx(), 0);
}

// More frames than the batch holds: it commits by itself and loses none.
TEST(RxBatch, FullBatchCommitsByItself) {
    constexpr size_t kFrames = RxBatch::kCapacity + 3;
    Rig rig(kV1, /*size=*/512, /*mem_size=*/4 << 20);
    std::vector<uint16_t> heads;
    for (size_t i = 0; i < kFrames; ++i) {
        heads.push_back(rig.drv.post_rx({128}));
    }
    std::vector<std::vector<uint8_t>> frames;
    for (size_t i = 0; i < kFrames; ++i) {
        frames.push_back(pattern(64, static_cast<uint8_t>(i)));
    }
    std::vector<Piece> pieces(kFrames);
    RxBatch batch;
    for (size_t i = 0; i < kFrames; ++i) {
        ASSERT_EQ(batch.deliver(rig.ring, rig.st, view_of(frames[i], pieces[i])), DeliverStatus::kDelivered) << i;
    }
    EXPECT_EQ(batch.pending(), 3u);
    EXPECT_EQ(rig.st.used_idx, RxBatch::kCapacity);
    batch.commit();
    flush_used(rig.ring, rig.st);
    const auto used = rig.drv.take_used();
    ASSERT_EQ(used.size(), kFrames);
    for (size_t i = 0; i < kFrames; ++i) {
        EXPECT_EQ(used[i].id, heads[i]) << i;
        EXPECT_EQ(body(rig.drv.read_chain(heads[i], used[i].len), 12), frames[i]) << i;
    }
}

// Streaming stores for a frame's first line: only where the frame starts on
// a cache line and fills it; every byte lands either way.
TEST(RxBatch, StreamingWritesTheSameBytes) {
    Rig rig(kV1);
    RxBatch batch;
    batch.set_streaming(true);
    const std::vector<uint32_t> lens{64, 65, 200, 1518, 40, 300};
    std::vector<std::vector<uint8_t>> frames;
    std::vector<uint16_t> heads;
    std::vector<Piece> pieces(lens.size());
    for (size_t i = 0; i < lens.size(); ++i) {
        // The header's 12 bytes end on a 64-byte boundary, but for the last
        // buffer, where the frame starts mid-line.
        const uint64_t skew = i + 1 == lens.size() ? 20 : 52;
        const uint64_t gpa = rig.drv.alloc(2048 + 64, 64) + skew;
        rig.drv.write_bytes(gpa, std::vector<uint8_t>(2048, 0xEE));
        heads.push_back(rig.drv.add_chain({{gpa, 2048, true}}));
        frames.push_back(pattern(lens[i]));
    }
    for (size_t i = 0; i < lens.size(); ++i) {
        ASSERT_EQ(batch.deliver(rig.ring, rig.st, view_of(frames[i], pieces[i])), DeliverStatus::kDelivered);
    }
    batch.commit();
    EXPECT_EQ(batch.frames_committed(), lens.size());
    EXPECT_EQ(batch.frames_streamed(), 4u) << "64, 65, 200 and 1518 bytes on a line: not 40, nor the skewed one";
    flush_used(rig.ring, rig.st);
    const auto used = rig.drv.take_used();
    ASSERT_EQ(used.size(), lens.size());
    for (size_t i = 0; i < lens.size(); ++i) {
        EXPECT_EQ(used[i].id, heads[i]) << i;
        const auto bytes = rig.drv.read_chain(heads[i], used[i].len);
        EXPECT_EQ(num_buffers(bytes), 1) << i;
        EXPECT_EQ(body(bytes, 12), frames[i]) << i;
        EXPECT_EQ(rig.drv.read_chain(heads[i], used[i].len + 1).back(), 0xEE) << i << ": nothing past the frame";
    }
}

TEST(NetHeaderWriter, WritesZeroesAndNumBuffers) {
    std::vector<uint8_t> buf(16, 0xEE);
    detail::write_net_header(buf.data(), kNetHdrMrgLen, 0x0203);
    EXPECT_EQ(buf, (std::vector<uint8_t>{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x03, 0x02, 0xEE, 0xEE, 0xEE, 0xEE}));
    std::fill(buf.begin(), buf.end(), 0xEE);
    detail::write_net_header(buf.data(), kNetHdrLen, 7);
    EXPECT_EQ(buf, (std::vector<uint8_t>{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xEE, 0xEE, 0xEE, 0xEE, 0xEE, 0xEE}));
}

// A frame starting on a cache line leaves the header its own line; the bytes
// already there that are right are left alone (the line is only read), the
// others are written.
TEST(NetHeaderWriter, OnALineOfItsOwnWritesOnlyWhatDiffers) {
    const long page = ::sysconf(_SC_PAGESIZE);
    void* mem = ::mmap(nullptr, static_cast<size_t>(page), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(mem, MAP_FAILED);
    auto* line = static_cast<uint8_t*>(mem);
    // The headers a previous lap left: 12 bytes before offset 64, 10 before 128.
    detail::write_net_header(line + 64 - kNetHdrMrgLen, kNetHdrMrgLen, 1);
    detail::write_net_header(line + 128 - kNetHdrLen, kNetHdrLen, 0);
    ASSERT_EQ(::mprotect(mem, static_cast<size_t>(page), PROT_READ), 0);
    // Any store into the read-only page would be a SIGSEGV.
    detail::write_net_header(line + 64 - kNetHdrMrgLen, kNetHdrMrgLen, 1);
    detail::write_net_header(line + 128 - kNetHdrLen, kNetHdrLen, 0);
    ASSERT_EQ(::munmap(mem, static_cast<size_t>(page)), 0);

    alignas(64) uint8_t buf[128];
    std::memset(buf, 0xEE, sizeof(buf));
    detail::write_net_header(buf + 64 - kNetHdrMrgLen, kNetHdrMrgLen, 0x0203);
    EXPECT_EQ(std::vector<uint8_t>(buf + 50, buf + 66),
              (std::vector<uint8_t>{0xEE, 0xEE, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x03, 0x02, 0xEE, 0xEE}));
    buf[52 + 1] = 7;  // one stale byte among right ones
    detail::write_net_header(buf + 64 - kNetHdrMrgLen, kNetHdrMrgLen, 0x0203);
    EXPECT_EQ(buf[53], 0);
    buf[64 - 1] = 9;  // a stale num_buffers
    detail::write_net_header(buf + 64 - kNetHdrMrgLen, kNetHdrMrgLen, 0x0203);
    EXPECT_EQ(buf[63], 0x02);
    detail::write_net_header(buf + 128 - kNetHdrLen, kNetHdrLen, 0);
    EXPECT_EQ(std::vector<uint8_t>(buf + 118, buf + 128), std::vector<uint8_t>(10, 0));
}

} // namespace
} // namespace vhostd::virtio
