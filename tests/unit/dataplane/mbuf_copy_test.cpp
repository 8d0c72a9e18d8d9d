// mbuf_from_pieces / mbuf_to_pieces against real DPDK mempools.

#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "dataplane/mbuf_copy.hpp"
#include "tests/fakes/guest_memory.hpp"
#include "tests/unit/dataplane/dpdk_test_env.hpp"

namespace vhostd::dataplane::test {
namespace {

constexpr uint32_t kHdr = 12; // virtio_net_hdr_mrg_rxbuf

struct PoolDeleter {
    void operator()(rte_mempool* mp) const noexcept { rte_mempool_free(mp); }
};
using PoolPtr = std::unique_ptr<rte_mempool, PoolDeleter>;

PoolPtr make_pool(const std::string& name, unsigned n, uint16_t data_room) {
    (void)dpdk_env();
    return PoolPtr(rte_pktmbuf_pool_create(name.c_str(), n, 0, 0, data_room,
                                           static_cast<int>(rte_socket_id())));
}

rte_mempool* shared_pool() { return dpdk_env().mempool(static_cast<int>(rte_socket_id())); }

struct MbufDeleter {
    void operator()(rte_mbuf* m) const noexcept { rte_pktmbuf_free(m); }
};
using MbufPtr = std::unique_ptr<rte_mbuf, MbufDeleter>;

// Odd piece boundaries for a source that holds kHdr + len bytes: a header
// split across pieces, an empty piece, and a 1-byte piece mid-frame.
std::vector<uint32_t> odd_source_layout(uint32_t len) {
    std::vector<uint32_t> lens = {5, 0, 4, 333, 1};
    uint32_t used = 5 + 4 + 333 + 1;
    const uint32_t total = kHdr + len;
    while (used < total) {
        const uint32_t next = std::min<uint32_t>(4093, total - used);
        lens.push_back(next);
        used += next;
    }
    lens.push_back(0);
    return lens;
}

class MbufCopySizes : public ::testing::TestWithParam<uint32_t> {};

TEST_P(MbufCopySizes, FromOddPiecesThenToOddPieces) {
    const uint32_t len = GetParam();
    rte_mempool* mp = shared_pool();
    ASSERT_NE(mp, nullptr);
    const unsigned avail = rte_mempool_avail_count(mp);

    const auto frame = pattern(len, 3);
    GuardedPieces src(odd_source_layout(len));
    ASSERT_GE(src.bytes(), kHdr + len);
    src.write(kHdr, frame);

    MbufPtr m(mbuf_from_pieces(mp, src.data(), src.size(), kHdr, len));
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(m->pkt_len, len);
    const uint32_t seg_room = rte_pktmbuf_data_room_size(mp) - RTE_PKTMBUF_HEADROOM;
    EXPECT_EQ(m->nb_segs, (len + seg_room - 1) / seg_room);
    EXPECT_EQ(rte_mbuf_check(m.get(), 1, nullptr), 0);
    EXPECT_EQ(mbuf_bytes(m.get()), frame);
    EXPECT_TRUE(src.guards_intact());

    // Destination: header room split 7 + 5, a 1-byte piece, an empty piece,
    // then 333 and 2049-byte pieces, and 9 spare bytes at the end.
    std::vector<uint32_t> lens = {7, 5, 1, 0};
    uint32_t cap = 7 + 5 + 1;
    while (cap < kHdr + len) {
        const uint32_t next = std::min<uint32_t>(lens.size() == 4 ? 333 : 2049, kHdr + len - cap);
        lens.push_back(next);
        cap += next;
    }
    lens.push_back(9);
    GuardedPieces dst(lens);
    EXPECT_EQ(mbuf_to_pieces(m.get(), dst.data(), dst.size(), kHdr), len);
    const auto out = dst.contents();
    ASSERT_EQ(out.size(), kHdr + len + 9);
    EXPECT_EQ(std::vector<uint8_t>(out.begin(), out.begin() + kHdr),
              std::vector<uint8_t>(kHdr, GuardedPieces::kFillByte))
        << "the header room must be left alone";
    EXPECT_EQ(std::vector<uint8_t>(out.begin() + kHdr, out.begin() + kHdr + len), frame);
    EXPECT_EQ(std::vector<uint8_t>(out.end() - 9, out.end()),
              std::vector<uint8_t>(9, GuardedPieces::kFillByte));
    EXPECT_TRUE(dst.guards_intact());

    m.reset();
    EXPECT_EQ(rte_mempool_avail_count(mp), avail);
}

INSTANTIATE_TEST_SUITE_P(FrameSizes, MbufCopySizes, ::testing::Values(64u, 1518u, 9000u),
                         [](const auto& info) { return std::to_string(info.param); });

TEST(MbufCopy, ManySmallSegments) {
    // 64 bytes of room per segment: a 1000-byte frame takes 16 segments.
    PoolPtr pool = make_pool("ut_small_room", 63, RTE_PKTMBUF_HEADROOM + 64);
    ASSERT_NE(pool, nullptr);
    const auto frame = pattern(1000, 9);
    GuardedPieces src({3, 997});
    src.write(0, frame);
    MbufPtr m(mbuf_from_pieces(pool.get(), src.data(), src.size(), 0, 1000));
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(m->nb_segs, 16);
    EXPECT_EQ(m->pkt_len, 1000u);
    EXPECT_EQ(rte_mbuf_check(m.get(), 1, nullptr), 0);
    EXPECT_EQ(mbuf_bytes(m.get()), frame);

    GuardedPieces dst({1000});
    EXPECT_EQ(mbuf_to_pieces(m.get(), dst.data(), dst.size(), 0), 1000u);
    EXPECT_EQ(dst.contents(), frame);
    EXPECT_TRUE(dst.guards_intact());
}

TEST(MbufCopy, TooSmallDestinationWritesNothing) {
    rte_mempool* mp = shared_pool();
    for (uint32_t len : {64u, 1518u, 9000u}) {
        SCOPED_TRACE(len);
        GuardedPieces src({kHdr + len});
        src.write(kHdr, pattern(len, 5));
        MbufPtr m(mbuf_from_pieces(mp, src.data(), src.size(), kHdr, len));
        ASSERT_NE(m, nullptr);

        // One byte short, spread over odd pieces.
        const uint32_t cap = kHdr + len - 1;
        GuardedPieces dst({1, 10, cap - 11 - 2, 2});
        ASSERT_EQ(dst.bytes(), cap);
        EXPECT_EQ(mbuf_to_pieces(m.get(), dst.data(), dst.size(), kHdr), 0u);
        EXPECT_EQ(dst.contents(), std::vector<uint8_t>(cap, GuardedPieces::kFillByte));
        EXPECT_TRUE(dst.guards_intact());

        // Exactly enough.
        GuardedPieces exact({1, 10, cap - 11 - 2, 3});
        EXPECT_EQ(mbuf_to_pieces(m.get(), exact.data(), exact.size(), kHdr), len);
        const auto out = exact.contents();
        EXPECT_EQ(std::vector<uint8_t>(out.begin() + kHdr, out.end()), pattern(len, 5));
        EXPECT_TRUE(exact.guards_intact());

        // No pieces at all.
        EXPECT_EQ(mbuf_to_pieces(m.get(), nullptr, 0, 0), 0u);
    }
}

TEST(MbufCopy, SourceShorterThanSkipPlusLenGivesNothing) {
    rte_mempool* mp = shared_pool();
    const unsigned avail = rte_mempool_avail_count(mp);
    GuardedPieces src({kHdr, 50, 13});
    EXPECT_EQ(mbuf_from_pieces(mp, src.data(), src.size(), kHdr, 64), nullptr);
    EXPECT_EQ(mbuf_from_pieces(mp, src.data(), src.size(), 64, 12), nullptr);
    EXPECT_EQ(mbuf_from_pieces(mp, nullptr, 0, 0, 1), nullptr);
    EXPECT_EQ(rte_mempool_avail_count(mp), avail);
    // Exactly enough is fine.
    MbufPtr m(mbuf_from_pieces(mp, src.data(), src.size(), kHdr, 63));
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(m->pkt_len, 63u);
}

TEST(MbufCopy, SkipCanEndOnAPieceBoundaryOrSpanPieces) {
    rte_mempool* mp = shared_pool();
    const auto frame = pattern(100, 1);
    for (const std::vector<uint32_t>& lens :
         {std::vector<uint32_t>{12, 100}, std::vector<uint32_t>{0, 12, 0, 0, 100, 0},
          std::vector<uint32_t>{2, 2, 2, 2, 2, 2, 1, 99}, std::vector<uint32_t>{112}}) {
        GuardedPieces src(lens);
        src.write(kHdr, frame);
        MbufPtr m(mbuf_from_pieces(mp, src.data(), src.size(), kHdr, 100));
        ASSERT_NE(m, nullptr);
        EXPECT_EQ(mbuf_bytes(m.get()), frame);

        GuardedPieces dst(lens);
        EXPECT_EQ(mbuf_to_pieces(m.get(), dst.data(), dst.size(), kHdr), 100u);
        const auto out = dst.contents();
        EXPECT_EQ(std::vector<uint8_t>(out.begin() + kHdr, out.end()), frame);
        EXPECT_TRUE(dst.guards_intact());
    }
}

TEST(MbufCopy, ZeroLengthFrame) {
    rte_mempool* mp = shared_pool();
    GuardedPieces src({kHdr});
    MbufPtr m(mbuf_from_pieces(mp, src.data(), src.size(), kHdr, 0));
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(m->pkt_len, 0u);
    EXPECT_EQ(m->nb_segs, 1);
    GuardedPieces dst({kHdr});
    EXPECT_EQ(mbuf_to_pieces(m.get(), dst.data(), dst.size(), kHdr), 0u);
    EXPECT_TRUE(dst.guards_intact());
}

TEST(MbufCopy, PoolExhaustionReturnsNullAndLeaksNothing) {
    PoolPtr pool = make_pool("ut_tiny", 4, RTE_MBUF_DEFAULT_BUF_SIZE);
    ASSERT_NE(pool, nullptr);
    ASSERT_EQ(rte_mempool_avail_count(pool.get()), 4u);
    GuardedPieces src({kHdr + 9000});
    src.write(kHdr, pattern(9000, 2));

    // 9000 bytes need 5 segments of 2048: the pool has 4. The 4 taken for the
    // partial chain go back.
    EXPECT_EQ(mbuf_from_pieces(pool.get(), src.data(), src.size(), kHdr, 9000), nullptr);
    EXPECT_EQ(rte_mempool_avail_count(pool.get()), 4u);

    // Hold one: still no room; then a small frame still fits.
    rte_mbuf* held = rte_pktmbuf_alloc(pool.get());
    ASSERT_NE(held, nullptr);
    EXPECT_EQ(mbuf_from_pieces(pool.get(), src.data(), src.size(), kHdr, 9000), nullptr);
    EXPECT_EQ(rte_mempool_avail_count(pool.get()), 3u);
    MbufPtr small(mbuf_from_pieces(pool.get(), src.data(), src.size(), kHdr, 4000));
    ASSERT_NE(small, nullptr);
    EXPECT_EQ(small->nb_segs, 2);
    EXPECT_EQ(rte_mempool_avail_count(pool.get()), 1u);

    // Empty pool: nothing at all.
    rte_mbuf* last = rte_pktmbuf_alloc(pool.get());
    ASSERT_NE(last, nullptr);
    EXPECT_EQ(mbuf_from_pieces(pool.get(), src.data(), src.size(), kHdr, 64), nullptr);
    EXPECT_EQ(rte_mempool_avail_count(pool.get()), 0u);

    rte_pktmbuf_free(last);
    rte_pktmbuf_free(held);
    small.reset();
    EXPECT_EQ(rte_mempool_avail_count(pool.get()), 4u);
    EXPECT_TRUE(src.guards_intact());
}

TEST(MbufCopy, GuestBufferSpanningTwoRegions) {
    // A frame whose guest-physical range crosses a region boundary: two pieces
    // from MemoryTable::gpa_to_pieces, mapped at unrelated host addresses.
    fakes::GuestMemory mem(1 << 16);
    auto table = mem.split_table({0x1000});
    const uint64_t gpa = mem.gpa_base() + 0x1000 - 700;
    const auto frame = pattern(1518, 4);
    std::memcpy(mem.driver_ptr(gpa + kHdr, frame.size()), frame.data(), frame.size());

    Piece pieces[4];
    const size_t n = table->gpa_to_pieces(gpa, kHdr + 1518, pieces, 4);
    ASSERT_EQ(n, 2u);
    MbufPtr m(mbuf_from_pieces(shared_pool(), pieces, n, kHdr, 1518));
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(mbuf_bytes(m.get()), frame);

    // And back into another guest buffer that spans the boundary.
    const uint64_t back = mem.gpa_base() + 0x1000 - 5;
    Piece dst[4];
    const size_t dn = table->gpa_to_pieces(back, kHdr + 1518, dst, 4);
    ASSERT_EQ(dn, 2u);
    EXPECT_EQ(mbuf_to_pieces(m.get(), dst, dn, kHdr), 1518u);
    EXPECT_EQ(std::memcmp(mem.driver_ptr(back + kHdr, 1518), frame.data(), 1518), 0);
}

} // namespace
} // namespace vhostd::dataplane::test
