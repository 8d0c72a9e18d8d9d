// SplitRing::create: what SET_VRING_NUM / SET_VRING_ADDR / SET_FEATURES may
// and may not give us, and QueueState::start.

#include "virtio/split_ring.hpp"

#include <gtest/gtest.h>

#include <string>

#include "tests/unit/virtio/rig.hpp"

namespace vhostd::virtio {
namespace {

using testing::kEventIdx;
using testing::kIndirect;
using testing::kMrg;
using testing::kV1;

class SplitRingCreate : public ::testing::Test {
protected:
    fakes::GuestMemory mem{1 << 20};
    std::shared_ptr<const protocol::MemoryTable> table = mem.table();
    fakes::FakeSplitDriver drv{mem, 256};

    Result<SplitRing> create(uint64_t desc, uint64_t avail, uint64_t used, uint32_t size, uint64_t features = kV1) {
        return SplitRing::create(*table, desc, avail, used, size, features);
    }
    static std::string message(const Result<SplitRing>& r) { return r ? std::string("ok") : r.error().message; }
};

TEST_F(SplitRingCreate, BuildsAViewOfTheDriversLayout) {
    auto r = create(drv.desc_uva(), drv.avail_uva(), drv.used_uva(), 256);
    ASSERT_TRUE(r) << message(r);
    EXPECT_EQ(r->size, 256);
    EXPECT_EQ(r->mask, 255);
    EXPECT_EQ(r->mem, table.get());
    EXPECT_EQ(reinterpret_cast<uint8_t*>(r->desc), table->gpa_to_host(drv.desc_gpa(), 1));
    EXPECT_EQ(reinterpret_cast<uint8_t*>(r->avail_flags), table->gpa_to_host(drv.avail_gpa(), 1));
    EXPECT_EQ(reinterpret_cast<uint8_t*>(r->avail_idx), table->gpa_to_host(drv.avail_gpa() + 2, 1));
    EXPECT_EQ(reinterpret_cast<uint8_t*>(r->used_event), table->gpa_to_host(drv.avail_gpa() + 4 + 2 * 256, 1));
    EXPECT_EQ(reinterpret_cast<uint8_t*>(r->used_idx), table->gpa_to_host(drv.used_gpa() + 2, 1));
    EXPECT_EQ(reinterpret_cast<uint8_t*>(r->avail_event), table->gpa_to_host(drv.used_gpa() + 4 + 8 * 256, 1));
    EXPECT_FALSE(r->event_idx);
    EXPECT_FALSE(r->indirect);
    EXPECT_FALSE(r->mrg_rxbuf);
}

TEST_F(SplitRingCreate, FeaturesAndHeaderLength) {
    const auto with = [&](uint64_t f) {
        auto r = create(drv.desc_uva(), drv.avail_uva(), drv.used_uva(), 256, f);
        EXPECT_TRUE(r) << message(r);
        return *r;
    };
    EXPECT_EQ(with(0).hdr_len, 10);           // legacy, no MRG_RXBUF
    EXPECT_EQ(with(kV1).hdr_len, 12);         // VERSION_1
    EXPECT_EQ(with(kMrg).hdr_len, 12);        // legacy with MRG_RXBUF
    EXPECT_EQ(with(kV1 | kMrg).hdr_len, 12);
    const SplitRing all = with(kV1 | kMrg | kIndirect | kEventIdx);
    EXPECT_TRUE(all.mrg_rxbuf);
    EXPECT_TRUE(all.indirect);
    EXPECT_TRUE(all.event_idx);
}

TEST_F(SplitRingCreate, EveryPowerOfTwoUpTo32768) {
    fakes::GuestMemory big(1 << 20);
    auto big_table = big.table();
    for (uint32_t size = 1; size <= 32768; size *= 2) {
        // desc 16*size + avail + used fits in 1 MiB for every size.
        const uint64_t desc = big.uva_base();
        const uint64_t avail = desc + 16ull * size;
        const uint64_t used = (avail + 6 + 2ull * size + 3) & ~3ull;
        auto r = SplitRing::create(*big_table, desc, avail, used, size, kV1);
        EXPECT_TRUE(r) << "size " << size << ": " << message(r);
    }
}

TEST_F(SplitRingCreate, RejectsSizesThatAreNotPowersOfTwoUpTo32768) {
    for (uint32_t size : {0u, 3u, 6u, 255u, 65536u, 32769u, 0xFFFFFFFFu}) {
        auto r = create(drv.desc_uva(), drv.avail_uva(), drv.used_uva(), size);
        ASSERT_FALSE(r) << "size " << size;
        EXPECT_NE(r.error().message.find("vring size " + std::to_string(size)), std::string::npos)
            << r.error().message;
    }
}

TEST_F(SplitRingCreate, RejectsMisalignedAreas) {
    auto r = create(drv.desc_uva() + 8, drv.avail_uva(), drv.used_uva(), 16);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("desc_user_addr"), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("16-byte aligned"), std::string::npos) << r.error().message;

    r = create(drv.desc_uva(), drv.avail_uva() + 1, drv.used_uva(), 16);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("avail_user_addr"), std::string::npos) << r.error().message;

    r = create(drv.desc_uva(), drv.avail_uva(), drv.used_uva() + 2, 16);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("used_user_addr"), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("4-byte aligned"), std::string::npos) << r.error().message;
}

TEST_F(SplitRingCreate, RejectsAreasOutsideGuestMemory) {
    const uint64_t end = mem.uva_base() + mem.size();
    // Wholly outside.
    auto r = create(end + 0x1000, drv.avail_uva(), drv.used_uva(), 256);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("desc_user_addr"), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("not inside one guest memory region"), std::string::npos)
        << r.error().message;
    // Starts inside, ends outside: 256 descriptors need 4 KiB.
    r = create(end - 16 * 16, drv.avail_uva(), drv.used_uva(), 256);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("desc_user_addr"), std::string::npos) << r.error().message;
    // The used ring's event-index trailer is part of its length.
    r = create(drv.desc_uva(), drv.avail_uva(), end - (4 + 8 * 256), 256);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("used_user_addr"), std::string::npos) << r.error().message;
    r = create(drv.desc_uva(), end - (4 + 2 * 256), drv.used_uva(), 256);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("avail_user_addr"), std::string::npos) << r.error().message;
    // An address whose end wraps around 2^64.
    r = create(~uint64_t{0} - 15, drv.avail_uva(), drv.used_uva(), 256);
    EXPECT_FALSE(r);
}

TEST_F(SplitRingCreate, RejectsAnAreaSpanningTwoRegions) {
    // Cut guest memory in the middle of the descriptor table: both halves are
    // mapped, but not contiguously in our address space.
    auto split = mem.split_table({0x800});
    auto r = SplitRing::create(*split, drv.desc_uva(), drv.avail_uva(), drv.used_uva(), 256, kV1);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("desc_user_addr"), std::string::npos) << r.error().message;
}

TEST(QueueStateStart, TakesLastAvailFromTheBaseAndUsedIdxFromTheRing) {
    testing::Rig rig;
    rig.drv.set_used_idx(7);
    const QueueState st = QueueState::start(rig.ring, 42);
    EXPECT_EQ(st.last_avail_idx, 42);
    EXPECT_EQ(st.avail_idx_shadow, 42);
    EXPECT_EQ(st.used_idx, 7);
    EXPECT_EQ(st.used_idx_published, 7);
    EXPECT_FALSE(st.broken);
    EXPECT_EQ(alignof(QueueState), 64u);
}

} // namespace
} // namespace vhostd::virtio
