// Chains off the avail ring (TX and RX), the used ring, notification
// suppression, and every way a hostile driver can break a queue.

#include "virtio/split_queue.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/unit/virtio/rig.hpp"
#include "virtio/net_hdr.hpp"

namespace vhostd::virtio {
namespace {

using fakes::FakeSplitDriver;
using testing::gather;
using testing::kEventIdx;
using testing::kIndirect;
using testing::kV1;
using testing::pattern;
using testing::Rig;
using testing::with_header;

bool reason_has(const QueueState& st, const std::string& text) {
    return st.broken && st.broken_reason != nullptr && std::string(st.broken_reason).find(text) != std::string::npos;
}

// ---------------------------------------------------------------- TX chains

TEST(TxChain, SingleDescriptor) {
    Rig rig;
    const auto frame = pattern(64);
    const auto bytes = with_header(frame);
    const uint16_t head = rig.drv.send(bytes);

    Chain chain;
    ASSERT_EQ(fetch_tx_chain(rig.ring, rig.st, chain), FetchStatus::kChain);
    EXPECT_EQ(chain.head, head);
    EXPECT_EQ(chain.len, bytes.size());
    ASSERT_EQ(chain.count, 1);
    const auto& seg = rig.drv.segs_of(head)[0];
    EXPECT_EQ(chain.pieces[0].host, rig.host(seg.gpa, seg.len));
    EXPECT_EQ(chain.pieces[0].len, bytes.size());
    EXPECT_EQ(rig.st.last_avail_idx, 1);
    EXPECT_EQ(rig.st.chains, 1u);

    const auto payload = skip_net_header(chain.view(), chain.len, rig.ring.hdr_len);
    ASSERT_TRUE(payload);
    EXPECT_EQ(payload->len, frame.size());
    std::vector<uint8_t> out(frame.size());
    EXPECT_EQ(copy_frame(*payload, out.data(), static_cast<uint32_t>(out.size())), frame.size());
    EXPECT_EQ(out, frame);

    EXPECT_EQ(fetch_tx_chain(rig.ring, rig.st, chain), FetchStatus::kEmpty);

    push_used(rig.ring, rig.st, chain.head, 0);
    EXPECT_EQ(rig.drv.used_idx(), 0) << "not visible before flush";
    flush_used(rig.ring, rig.st);
    const auto used = rig.drv.take_used();
    ASSERT_EQ(used.size(), 1u);
    EXPECT_EQ(used[0].id, head);
    EXPECT_EQ(used[0].len, 0u);
}

TEST(TxChain, SeveralDescriptorsInOrder) {
    Rig rig;
    const auto frame = pattern(300);
    const auto bytes = with_header(frame);
    const uint16_t head = rig.drv.send(bytes, {12, 20, 30, 100});  // + the rest in a 5th
    Chain chain;
    ASSERT_EQ(fetch_tx_chain(rig.ring, rig.st, chain), FetchStatus::kChain);
    EXPECT_EQ(chain.head, head);
    EXPECT_EQ(chain.count, 5);
    EXPECT_EQ(chain.len, bytes.size());
    EXPECT_EQ(gather(chain.view()), bytes);
}

TEST(TxChain, HeaderSplitOverThreeDescriptors) {
    Rig rig;
    const auto frame = pattern(100);
    // 4 + 4 + 4: the header ends exactly at the end of the third descriptor.
    rig.drv.send(with_header(frame, 12, kNetHdrFNeedsCsum), {4, 4, 4});
    // 5 + 5 + 5: the header ends 2 bytes into the third descriptor.
    rig.drv.send(with_header(frame, 12, kNetHdrFNeedsCsum), {5, 5, 5});

    for (uint32_t expect_offset : {0u, 2u}) {
        Chain chain;
        ASSERT_EQ(fetch_tx_chain(rig.ring, rig.st, chain), FetchStatus::kChain);
        const auto hdr = read_net_header(chain.view(), rig.ring.hdr_len);
        ASSERT_TRUE(hdr);
        EXPECT_EQ(hdr->hdr.flags, kNetHdrFNeedsCsum);
        EXPECT_EQ(hdr->num_buffers, 0);

        const auto payload = skip_net_header(chain.view(), chain.len, rig.ring.hdr_len);
        ASSERT_TRUE(payload);
        EXPECT_EQ(payload->len, frame.size());
        EXPECT_EQ(payload->offset, expect_offset);
        std::vector<uint8_t> out(frame.size());
        ASSERT_EQ(copy_frame(*payload, out.data(), static_cast<uint32_t>(out.size())), frame.size());
        EXPECT_EQ(out, frame);
    }
}

TEST(TxChain, ChainShorterThanTheHeaderIsADropNotABreak) {
    Rig rig;
    const uint16_t head = rig.drv.send(pattern(8));
    Chain chain;
    ASSERT_EQ(fetch_tx_chain(rig.ring, rig.st, chain), FetchStatus::kChain);
    EXPECT_FALSE(skip_net_header(chain.view(), chain.len, rig.ring.hdr_len));
    EXPECT_FALSE(read_net_header(chain.view(), rig.ring.hdr_len));
    EXPECT_FALSE(rig.st.broken);
    // The PMD returns it with len 0 and counts the drop.
    push_used(rig.ring, rig.st, chain.head, 0);
    flush_used(rig.ring, rig.st);
    ASSERT_EQ(rig.drv.take_used().at(0).id, head);
}

TEST(TxChain, HeaderOnlyChainHasAnEmptyPayload) {
    Rig rig;
    rig.drv.send(with_header({}), {});
    Chain chain;
    ASSERT_EQ(fetch_tx_chain(rig.ring, rig.st, chain), FetchStatus::kChain);
    const auto payload = skip_net_header(chain.view(), chain.len, rig.ring.hdr_len);
    ASSERT_TRUE(payload);
    EXPECT_EQ(payload->len, 0u);
    EXPECT_TRUE(payload->pieces.empty());
}

TEST(TxChain, LegacyTenByteHeader) {
    Rig rig(/*features=*/0);
    ASSERT_EQ(rig.ring.hdr_len, 10);
    const auto frame = pattern(20);
    rig.drv.send(with_header(frame, 10, kNetHdrFNeedsCsum), {3, 3});
    Chain chain;
    ASSERT_EQ(fetch_tx_chain(rig.ring, rig.st, chain), FetchStatus::kChain);
    const auto hdr = read_net_header(chain.view(), 10);
    ASSERT_TRUE(hdr);
    EXPECT_EQ(hdr->hdr.flags, kNetHdrFNeedsCsum);
    const auto payload = skip_net_header(chain.view(), chain.len, 10);
    ASSERT_TRUE(payload);
    std::vector<uint8_t> out(frame.size());
    ASSERT_EQ(copy_frame(*payload, out.data(), static_cast<uint32_t>(out.size())), frame.size());
    EXPECT_EQ(out, frame);
}

TEST(TxChain, IndirectTable) {
    Rig rig(kV1 | kIndirect);
    const auto bytes = with_header(pattern(200));
    const uint16_t head = rig.drv.send(bytes, {12, 50, 50}, /*indirect=*/true);
    Chain chain;
    ASSERT_EQ(fetch_tx_chain(rig.ring, rig.st, chain), FetchStatus::kChain);
    EXPECT_EQ(chain.head, head);
    EXPECT_EQ(chain.count, 4);
    EXPECT_EQ(gather(chain.view()), bytes);
    EXPECT_EQ(rig.drv.free_descriptors(), rig.ring.size - 1u) << "one ring descriptor for the whole chain";
}

TEST(TxChain, UnalignedIndirectTableAndIgnoredWriteFlagOnItsDescriptor) {
    Rig rig(kV1 | kIndirect);
    const auto bytes = pattern(40);
    const uint64_t buf = rig.drv.alloc(bytes.size());
    rig.drv.write_bytes(buf, bytes);
    const uint64_t table = rig.drv.alloc(64) + 3;  // no alignment required of a table
    rig.drv.write_table_desc(table, 0, buf, 10, kDescFNext, 1);
    rig.drv.write_table_desc(table, 1, buf + 10, 30, 0, 0);
    // §2.7.5.3.2: the device ignores WRITE on the descriptor that points at a table.
    rig.drv.write_desc(0, table, 32, kDescFIndirect | kDescFWrite, 0);
    rig.drv.publish(0);
    Chain chain;
    ASSERT_EQ(fetch_tx_chain(rig.ring, rig.st, chain), FetchStatus::kChain) << rig.st.broken_reason;
    EXPECT_EQ(gather(chain.view()), bytes);
}

TEST(TxChain, DirectDescriptorsFollowedByOneIndirect) {
    // §2.7.5.3.2: "zero or more normal chained descriptors followed by a
    // single descriptor with flags & INDIRECT" must be handled.
    Rig rig(kV1 | kIndirect);
    const auto bytes = pattern(90);
    const uint64_t buf = rig.drv.alloc(bytes.size());
    rig.drv.write_bytes(buf, bytes);
    const uint64_t table = rig.drv.alloc(32);
    rig.drv.write_table_desc(table, 0, buf + 30, 30, kDescFNext, 1);
    rig.drv.write_table_desc(table, 1, buf + 60, 30, 0, 0);
    rig.drv.write_desc(5, buf, 30, kDescFNext, 9);
    rig.drv.write_desc(9, table, 32, kDescFIndirect, 0);
    rig.drv.publish(5);
    Chain chain;
    ASSERT_EQ(fetch_tx_chain(rig.ring, rig.st, chain), FetchStatus::kChain) << rig.st.broken_reason;
    EXPECT_EQ(chain.head, 5);
    EXPECT_EQ(chain.count, 3);
    EXPECT_EQ(gather(chain.view()), bytes);
}

TEST(TxChain, ZeroLengthDescriptorsAreSkipped) {
    Rig rig;
    const auto bytes = pattern(30);
    const uint64_t buf = rig.drv.alloc(bytes.size());
    rig.drv.write_bytes(buf, bytes);
    rig.drv.write_desc(0, buf, 0, kDescFNext, 1);
    rig.drv.write_desc(1, buf, 30, kDescFNext, 2);
    rig.drv.write_desc(2, 0xdead0000, 0, 0, 0);  // len 0: its address is never used
    rig.drv.publish(0);
    Chain chain;
    ASSERT_EQ(fetch_tx_chain(rig.ring, rig.st, chain), FetchStatus::kChain) << rig.st.broken_reason;
    EXPECT_EQ(chain.count, 1);
    EXPECT_EQ(gather(chain.view()), bytes);
}

TEST(TxChain, BufferSpanningTwoRegionsBecomesTwoPieces) {
    fakes::GuestMemory mem(1 << 20);
    // Two regions, adjacent in guest-physical space, mapped separately.
    auto table = mem.split_table({0x40000});
    FakeSplitDriver drv(mem, 64);
    const SplitRing ring = drv.ring(*table, kV1);
    QueueState st = QueueState::start(ring, 0);

    const auto bytes = pattern(0x100);
    const uint64_t buf = mem.gpa_base() + 0x40000 - 0x40;  // 0x40 bytes before the cut
    drv.write_bytes(buf, bytes);
    drv.add_chain({{buf, static_cast<uint32_t>(bytes.size())}});
    Chain chain;
    ASSERT_EQ(fetch_tx_chain(ring, st, chain), FetchStatus::kChain) << st.broken_reason;
    ASSERT_EQ(chain.count, 2);
    EXPECT_EQ(chain.pieces[0].len, 0x40u);
    EXPECT_EQ(chain.pieces[1].len, 0xC0u);
    EXPECT_EQ(chain.pieces[0].host, table->gpa_to_host(buf, 0x40));
    EXPECT_EQ(chain.pieces[1].host, table->gpa_to_host(buf + 0x40, 0xC0));
    EXPECT_EQ(gather(chain.view()), bytes);
}

TEST(TxChain, TheCopyIsWhatIsUsedWhenTheGuestRewritesADescriptor) {
    Rig rig;
    const auto bytes = with_header(pattern(64));
    const uint16_t head = rig.drv.send(bytes);
    Chain chain;
    ASSERT_EQ(fetch_tx_chain(rig.ring, rig.st, chain), FetchStatus::kChain);
    const Piece before = chain.pieces[0];

    // The "guest" now points the descriptor elsewhere, with a huge length.
    rig.drv.write_desc(head, 0x10, 0xFFFFFFFF, kDescFWrite | kDescFNext, 77);
    EXPECT_EQ(chain.pieces[0].host, before.host);
    EXPECT_EQ(chain.pieces[0].len, before.len);
    EXPECT_EQ(chain.len, bytes.size());
    EXPECT_EQ(gather(chain.view()), bytes);
    EXPECT_FALSE(rig.st.broken);
}

TEST(TxChain, ResumesFromTheVringBaseAcrossIndexWrap) {
    Rig rig(kV1, 4);
    // Pretend 65534 chains went by before this back-end took over.
    rig.drv.set_avail_idx(65534);
    rig.drv.set_used_idx(65534);
    rig.st = QueueState::start(rig.ring, 65534);
    for (int round = 0; round < 10; ++round) {
        const auto bytes = with_header(pattern(10 + round));
        const uint16_t head = rig.drv.send(bytes);
        Chain chain;
        ASSERT_EQ(fetch_tx_chain(rig.ring, rig.st, chain), FetchStatus::kChain) << rig.st.broken_reason;
        EXPECT_EQ(chain.head, head);
        EXPECT_EQ(gather(chain.view()), bytes);
        push_used(rig.ring, rig.st, chain.head, 0);
        flush_used(rig.ring, rig.st);
        const auto used = rig.drv.take_used();
        ASSERT_EQ(used.size(), 1u);
        EXPECT_EQ(used[0].id, head);
    }
    EXPECT_EQ(rig.st.last_avail_idx, static_cast<uint16_t>(65534 + 10));
    EXPECT_EQ(rig.drv.used_idx(), static_cast<uint16_t>(65534 + 10));
}

TEST(TxChain, ARebuiltRingViewContinuesWithTheSameState) {
    Rig rig;
    rig.drv.send(with_header(pattern(10)));
    Chain chain;
    ASSERT_EQ(fetch_tx_chain(rig.ring, rig.st, chain), FetchStatus::kChain);
    push_used(rig.ring, rig.st, chain.head, 0);

    // New memory table (as after ADD_MEM_REG): a new view, the same state.
    auto table2 = rig.mem.table();
    const SplitRing ring2 = rig.drv.ring(*table2, kV1);
    rig.drv.send(with_header(pattern(20)));
    ASSERT_EQ(fetch_tx_chain(ring2, rig.st, chain), FetchStatus::kChain);
    EXPECT_EQ(chain.pieces[0].host, table2->gpa_to_host(rig.drv.segs_of(chain.head)[0].gpa, 1));
    push_used(ring2, rig.st, chain.head, 0);
    flush_used(ring2, rig.st);
    EXPECT_EQ(rig.drv.take_used().size(), 2u);
    EXPECT_EQ(rig.st.last_avail_idx, 2);
}

// ---------------------------------------------------------------- RX chains

TEST(RxChain, WritableBuffers) {
    Rig rig;
    const uint16_t head = rig.drv.post_rx({100, 200});
    Chain chain;
    ASSERT_EQ(fetch_rx_chain(rig.ring, rig.st, chain), FetchStatus::kChain);
    EXPECT_EQ(chain.head, head);
    EXPECT_EQ(chain.count, 2);
    EXPECT_EQ(chain.len, 300u);
}

TEST(RxChain, ReadOnlyDescriptorIsAViolation) {
    Rig rig;
    const uint64_t a = rig.drv.alloc(100);
    const uint64_t b = rig.drv.alloc(100);
    rig.drv.add_chain({{a, 100, true}, {b, 100, false}});
    Chain chain;
    EXPECT_EQ(fetch_rx_chain(rig.ring, rig.st, chain), FetchStatus::kBroken);
    EXPECT_TRUE(reason_has(rig.st, "device-readable descriptor in an RX")) << rig.st.broken_reason;
}

// ---------------------------------------------------------- hostile drivers

class Hostile : public ::testing::Test {
protected:
    Rig rig{kV1 | kIndirect};
    Chain chain;

    FetchStatus fetch() { return fetch_tx_chain(rig.ring, rig.st, chain); }
    uint64_t buffer(uint32_t len) { return rig.drv.alloc(len); }
};

TEST_F(Hostile, AddressOutsideGuestMemory) {
    rig.drv.write_desc(0, 0x10, 64, 0, 0);  // below the start of guest memory
    rig.drv.publish(0);
    EXPECT_EQ(fetch(), FetchStatus::kBroken);
    EXPECT_TRUE(reason_has(rig.st, "outside guest memory")) << rig.st.broken_reason;
    EXPECT_EQ(rig.st.last_avail_idx, 0) << "a violating chain is not consumed";
}

TEST_F(Hostile, AddressPastTheEndOfGuestMemory) {
    const uint64_t end = rig.mem.gpa_base() + rig.mem.size();
    rig.drv.write_desc(0, end - 10, 64, 0, 0);  // straddles the end
    rig.drv.publish(0);
    EXPECT_EQ(fetch(), FetchStatus::kBroken);
    EXPECT_TRUE(reason_has(rig.st, "outside guest memory")) << rig.st.broken_reason;
}

TEST_F(Hostile, AddressPlusLengthWrapsAround) {
    rig.drv.write_desc(0, ~uint64_t{0} - 4, 64, 0, 0);
    rig.drv.publish(0);
    EXPECT_EQ(fetch(), FetchStatus::kBroken);
    EXPECT_TRUE(reason_has(rig.st, "outside guest memory")) << rig.st.broken_reason;
}

TEST_F(Hostile, LengthFFFFFFFF) {
    rig.drv.write_desc(0, buffer(64), 0xFFFFFFFF, 0, 0);
    rig.drv.publish(0);
    EXPECT_EQ(fetch(), FetchStatus::kBroken);
    EXPECT_TRUE(reason_has(rig.st, "outside guest memory")) << rig.st.broken_reason;
}

TEST_F(Hostile, TotalLengthOverflowing32Bits) {
    // 0x10 + 0xFFFFFFFF does not fit in 32 bits; the sum is checked before
    // the second buffer is even translated.
    const uint64_t buf = buffer(64);
    rig.drv.write_desc(0, buf, 0x10, kDescFNext, 1);
    rig.drv.write_desc(1, buf, 0xFFFFFFFF, 0, 0);
    rig.drv.publish(0);
    EXPECT_EQ(fetch(), FetchStatus::kBroken);
    EXPECT_TRUE(reason_has(rig.st, "longer than 4 GiB")) << rig.st.broken_reason;
}

TEST_F(Hostile, ChainThatLoops) {
    const uint64_t buf = buffer(64);
    rig.drv.write_desc(0, buf, 64, kDescFNext, 1);
    rig.drv.write_desc(1, buf, 64, kDescFNext, 0);
    rig.drv.publish(0);
    EXPECT_EQ(fetch(), FetchStatus::kBroken);
    EXPECT_TRUE(reason_has(rig.st, "longer than the queue size")) << rig.st.broken_reason;
}

TEST_F(Hostile, ZeroLengthSelfLoop) {
    // No bytes and no pieces: only the descriptor count stops it.
    rig.drv.write_desc(3, 0, 0, kDescFNext, 3);
    rig.drv.publish(3);
    EXPECT_EQ(fetch(), FetchStatus::kBroken);
    EXPECT_TRUE(reason_has(rig.st, "longer than the queue size")) << rig.st.broken_reason;
}

TEST_F(Hostile, LoopInsideAnIndirectTable) {
    const uint64_t buf = buffer(64);
    const uint64_t table = buffer(32);
    rig.drv.write_table_desc(table, 0, buf, 64, kDescFNext, 1);
    rig.drv.write_table_desc(table, 1, buf, 64, kDescFNext, 0);
    rig.drv.write_desc(0, table, 32, kDescFIndirect, 0);
    rig.drv.publish(0);
    EXPECT_EQ(fetch(), FetchStatus::kBroken);
    EXPECT_TRUE(reason_has(rig.st, "longer than the queue size")) << rig.st.broken_reason;
}

TEST_F(Hostile, HeadNotBelowQueueSize) {
    rig.drv.publish(256);
    EXPECT_EQ(fetch(), FetchStatus::kBroken);
    EXPECT_TRUE(reason_has(rig.st, "chain head")) << rig.st.broken_reason;
}

TEST_F(Hostile, NextNotBelowQueueSize) {
    rig.drv.write_desc(0, buffer(64), 64, kDescFNext, 256);
    rig.drv.publish(0);
    EXPECT_EQ(fetch(), FetchStatus::kBroken);
    EXPECT_TRUE(reason_has(rig.st, "next index is out of range")) << rig.st.broken_reason;
}

TEST_F(Hostile, NextPastTheEndOfAnIndirectTable) {
    const uint64_t table = buffer(32);
    rig.drv.write_table_desc(table, 0, buffer(64), 64, kDescFNext, 2);  // the table has 2 entries
    rig.drv.write_desc(0, table, 32, kDescFIndirect, 0);
    rig.drv.publish(0);
    EXPECT_EQ(fetch(), FetchStatus::kBroken);
    EXPECT_TRUE(reason_has(rig.st, "next index is out of range")) << rig.st.broken_reason;
}

TEST_F(Hostile, AvailIndexJumpsBy60000) {
    rig.drv.set_avail_idx(60000);
    EXPECT_EQ(fetch(), FetchStatus::kBroken);
    EXPECT_TRUE(reason_has(rig.st, "avail.idx moved")) << rig.st.broken_reason;
}

TEST_F(Hostile, AvailIndexJustOverTheQueueSize) {
    // A full ring (256 chains; the zeroed descriptor 0 is a valid empty chain)
    // is fine...
    rig.drv.set_avail_idx(256);
    for (int i = 0; i < 256; ++i) {
        ASSERT_EQ(fetch(), FetchStatus::kChain) << i << ": " << rig.st.broken_reason;
    }
    EXPECT_EQ(fetch(), FetchStatus::kEmpty);
    // ...257 beyond last_avail_idx is not.
    rig.drv.set_avail_idx(256 + 257);
    EXPECT_EQ(fetch(), FetchStatus::kBroken);
    EXPECT_TRUE(reason_has(rig.st, "avail.idx moved")) << rig.st.broken_reason;
}

TEST_F(Hostile, IndirectTableLengthNotAMultipleOf16) {
    rig.drv.write_desc(0, buffer(64), 24, kDescFIndirect, 0);
    rig.drv.publish(0);
    EXPECT_EQ(fetch(), FetchStatus::kBroken);
    EXPECT_TRUE(reason_has(rig.st, "multiple of 16")) << rig.st.broken_reason;
}

TEST_F(Hostile, IndirectTableOfLengthZero) {
    rig.drv.write_desc(0, buffer(64), 0, kDescFIndirect, 0);
    rig.drv.publish(0);
    EXPECT_EQ(fetch(), FetchStatus::kBroken);
    EXPECT_TRUE(reason_has(rig.st, "multiple of 16")) << rig.st.broken_reason;
}

TEST_F(Hostile, NestedIndirectTable) {
    const uint64_t inner = buffer(16);
    rig.drv.write_table_desc(inner, 0, buffer(64), 64, 0, 0);
    const uint64_t outer = buffer(16);
    rig.drv.write_table_desc(outer, 0, inner, 16, kDescFIndirect, 0);
    rig.drv.write_desc(0, outer, 16, kDescFIndirect, 0);
    rig.drv.publish(0);
    EXPECT_EQ(fetch(), FetchStatus::kBroken);
    EXPECT_TRUE(reason_has(rig.st, "inside an indirect table")) << rig.st.broken_reason;
}

TEST_F(Hostile, IndirectTogetherWithNext) {
    const uint64_t table = buffer(16);
    rig.drv.write_table_desc(table, 0, buffer(64), 64, 0, 0);
    rig.drv.write_desc(0, table, 16, kDescFIndirect | kDescFNext, 1);
    rig.drv.write_desc(1, buffer(64), 64, 0, 0);
    rig.drv.publish(0);
    EXPECT_EQ(fetch(), FetchStatus::kBroken);
    EXPECT_TRUE(reason_has(rig.st, "NEXT")) << rig.st.broken_reason;
}

TEST_F(Hostile, IndirectTableOutsideGuestMemory) {
    rig.drv.write_desc(0, 0x1000, 64, kDescFIndirect, 0);
    rig.drv.publish(0);
    EXPECT_EQ(fetch(), FetchStatus::kBroken);
    EXPECT_TRUE(reason_has(rig.st, "indirect descriptor table is outside")) << rig.st.broken_reason;
}

TEST(HostileNoIndirect, IndirectWithoutTheFeature) {
    Rig rig(kV1);
    const uint64_t table = rig.drv.alloc(16);
    rig.drv.write_table_desc(table, 0, rig.drv.alloc(64), 64, 0, 0);
    rig.drv.write_desc(0, table, 16, kDescFIndirect, 0);
    rig.drv.publish(0);
    Chain chain;
    EXPECT_EQ(fetch_tx_chain(rig.ring, rig.st, chain), FetchStatus::kBroken);
    EXPECT_TRUE(reason_has(rig.st, "without VIRTIO_F_INDIRECT_DESC")) << rig.st.broken_reason;
}

TEST_F(Hostile, WriteOnlyDescriptorInTx) {
    const uint64_t a = buffer(64);
    const uint64_t b = buffer(64);
    rig.drv.add_chain({{a, 64, false}, {b, 64, true}});
    EXPECT_EQ(fetch(), FetchStatus::kBroken);
    EXPECT_TRUE(reason_has(rig.st, "device-writable descriptor in a TX")) << rig.st.broken_reason;
}

TEST(HostileBig, ChainNeedingMoreThan256Pieces) {
    Rig rig(kV1 | kIndirect, 512);
    const uint64_t buf = rig.drv.alloc(300);
    const uint64_t table = rig.drv.alloc(16 * 300);
    for (uint16_t i = 0; i < 300; ++i) {
        rig.drv.write_table_desc(table, i, buf + i, 1, i + 1 < 300 ? kDescFNext : 0,
                                 static_cast<uint16_t>(i + 1));
    }
    rig.drv.write_desc(0, table, 16 * 300, kDescFIndirect, 0);
    rig.drv.publish(0);
    Chain chain;
    EXPECT_EQ(fetch_tx_chain(rig.ring, rig.st, chain), FetchStatus::kBroken);
    EXPECT_TRUE(reason_has(rig.st, "more than 256")) << rig.st.broken_reason;
}

TEST(HostileBig, ExactlyTheQueueSizeAndExactly256PiecesIsFine) {
    Rig rig(kV1, 256);
    const uint64_t buf = rig.drv.alloc(256);
    for (uint16_t i = 0; i < 256; ++i) {
        rig.drv.write_desc(i, buf + i, 1, i < 255 ? kDescFNext : 0, static_cast<uint16_t>(i + 1));
    }
    rig.drv.publish(0);
    Chain chain;
    ASSERT_EQ(fetch_tx_chain(rig.ring, rig.st, chain), FetchStatus::kChain) << rig.st.broken_reason;
    EXPECT_EQ(chain.count, 256);
    EXPECT_EQ(chain.len, 256u);
}

TEST_F(Hostile, ABrokenQueueIsNotTouchedAgain) {
    rig.drv.send(with_header(pattern(10)));
    ASSERT_EQ(fetch(), FetchStatus::kChain);
    push_used(rig.ring, rig.st, chain.head, 0);

    rig.drv.publish(999);  // violation
    EXPECT_EQ(fetch(), FetchStatus::kBroken);
    const char* reason = rig.st.broken_reason;

    // Everything is now a no-op: nothing published, nothing enabled, no call.
    rig.drv.send(with_header(pattern(10)));
    EXPECT_EQ(fetch(), FetchStatus::kBroken);
    push_used(rig.ring, rig.st, 1, 0);
    flush_used(rig.ring, rig.st);
    EXPECT_EQ(rig.drv.used_idx(), 0);
    EXPECT_FALSE(needs_call(rig.ring, rig.st));
    enable_notifications(rig.ring, rig.st, false);
    EXPECT_EQ(rig.drv.used_flags(), 0);
    EXPECT_FALSE(has_pending(rig.ring, rig.st));
    mark_broken(rig.st, "another reason");
    EXPECT_EQ(rig.st.broken_reason, reason) << "the first reason is kept";
}

// ------------------------------------------------------ used ring and calls

TEST(Used, FlushPublishesOncePerBurst) {
    Rig rig;
    for (int i = 0; i < 5; ++i) {
        rig.drv.send(with_header(pattern(10)));
    }
    Chain chain;
    std::vector<uint16_t> heads;
    while (fetch_tx_chain(rig.ring, rig.st, chain) == FetchStatus::kChain) {
        heads.push_back(chain.head);
        push_used(rig.ring, rig.st, chain.head, 0);
    }
    ASSERT_EQ(heads.size(), 5u);
    EXPECT_EQ(rig.drv.used_idx(), 0);
    flush_used(rig.ring, rig.st);
    EXPECT_EQ(rig.drv.used_idx(), 5);
    const auto used = rig.drv.take_used();
    ASSERT_EQ(used.size(), 5u);
    for (size_t i = 0; i < 5; ++i) {
        EXPECT_EQ(used[i].id, heads[i]);
    }
}

TEST(Calls, WithoutEventIdxFollowTheNoInterruptFlag) {
    Rig rig;
    EXPECT_FALSE(needs_call(rig.ring, rig.st)) << "nothing published";

    push_used(rig.ring, rig.st, 0, 0);
    flush_used(rig.ring, rig.st);
    EXPECT_TRUE(needs_call(rig.ring, rig.st));
    EXPECT_FALSE(needs_call(rig.ring, rig.st)) << "nothing new since";

    rig.drv.set_avail_flags(kAvailFNoInterrupt);
    push_used(rig.ring, rig.st, 1, 0);
    flush_used(rig.ring, rig.st);
    EXPECT_FALSE(needs_call(rig.ring, rig.st));

    rig.drv.set_avail_flags(0);
    push_used(rig.ring, rig.st, 2, 0);
    flush_used(rig.ring, rig.st);
    EXPECT_TRUE(needs_call(rig.ring, rig.st));
}

TEST(Calls, WithEventIdxFollowUsedEvent) {
    Rig rig(kV1 | kEventIdx);
    const auto publish = [&](int n) {
        for (int i = 0; i < n; ++i) {
            push_used(rig.ring, rig.st, 0, 0);
        }
        flush_used(rig.ring, rig.st);
    };
    // used_event 0: notify when the entry at index 0 is used (used.idx 0 -> 1).
    rig.drv.set_used_event(0);
    publish(1);
    EXPECT_TRUE(needs_call(rig.ring, rig.st));
    publish(1);  // 1 -> 2: index 1 is not the one asked for
    EXPECT_FALSE(needs_call(rig.ring, rig.st));

    // The driver asks about index 4; we go 2 -> 5 in one flush.
    rig.drv.set_used_event(4);
    publish(3);
    EXPECT_TRUE(needs_call(rig.ring, rig.st));

    // Asked about 10; 5 -> 7 and 7 -> 9 do not reach it, 9 -> 11 does.
    rig.drv.set_used_event(10);
    publish(2);
    EXPECT_FALSE(needs_call(rig.ring, rig.st));
    publish(2);
    EXPECT_FALSE(needs_call(rig.ring, rig.st));
    publish(2);
    EXPECT_TRUE(needs_call(rig.ring, rig.st));

    // The avail flags are ignored with EVENT_IDX (§2.7.7.2).
    rig.drv.set_avail_flags(kAvailFNoInterrupt);
    rig.drv.set_used_event(11);
    publish(1);
    EXPECT_TRUE(needs_call(rig.ring, rig.st));
}

TEST(Calls, EventIdxCoversEveryFlushSinceTheLastCheck) {
    Rig rig(kV1 | kEventIdx);
    rig.drv.set_used_event(0);
    // Two flushes (0 -> 1 -> 2) before one check: index 0 was passed.
    push_used(rig.ring, rig.st, 0, 0);
    flush_used(rig.ring, rig.st);
    push_used(rig.ring, rig.st, 1, 0);
    flush_used(rig.ring, rig.st);
    EXPECT_TRUE(needs_call(rig.ring, rig.st));
}

TEST(Calls, VringNeedEvent) {
    static_assert(vring_need_event(0, 1, 0));
    static_assert(!vring_need_event(1, 1, 0));
    static_assert(vring_need_event(4, 5, 2));
    static_assert(!vring_need_event(5, 5, 2));
    static_assert(vring_need_event(65535, 1, 65534));  // across the wrap
    static_assert(!vring_need_event(3, 3, 3));         // nothing new
}

// ---------------------------------------------------------- notifications

TEST(Notifications, FlagWithoutEventIdx) {
    Rig rig;
    enable_notifications(rig.ring, rig.st, false);
    EXPECT_EQ(rig.drv.used_flags(), kUsedFNoNotify);
    enable_notifications(rig.ring, rig.st, true);
    EXPECT_EQ(rig.drv.used_flags(), 0);
}

TEST(Notifications, AvailEventWithEventIdx) {
    Rig rig(kV1 | kEventIdx);
    for (int i = 0; i < 5; ++i) {
        rig.drv.send(with_header(pattern(10)));
    }
    Chain chain;
    while (fetch_tx_chain(rig.ring, rig.st, chain) == FetchStatus::kChain) {
    }
    ASSERT_EQ(rig.st.last_avail_idx, 5);
    enable_notifications(rig.ring, rig.st, true);
    EXPECT_EQ(rig.drv.avail_event(), 5);
    EXPECT_EQ(rig.drv.used_flags(), 0) << "flags stay 0 with EVENT_IDX (§2.7.10)";

    // The driver's kick decision for its next buffer (index 5): kick.
    EXPECT_TRUE(vring_need_event(rig.drv.avail_event(), 6, 5));

    // Disabling leaves avail_event where it was.
    enable_notifications(rig.ring, rig.st, false);
    EXPECT_EQ(rig.drv.avail_event(), 5);
    EXPECT_EQ(rig.drv.used_flags(), 0);
}

TEST(Notifications, ReCheckAfterEnablingCatchesARacingBuffer) {
    for (uint64_t features : {kV1, kV1 | kEventIdx}) {
        Rig rig(features);
        // Busy: notifications off.
        enable_notifications(rig.ring, rig.st, false);
        EXPECT_FALSE(has_pending(rig.ring, rig.st));

        // The driver adds a chain while notifications are off: it does not kick.
        rig.drv.send(with_header(pattern(10)));

        // Going to sleep: enable, then re-check. The re-check sees the chain,
        // so the poller does not sleep on it.
        enable_notifications(rig.ring, rig.st, true);
        EXPECT_TRUE(has_pending(rig.ring, rig.st));
        Chain chain;
        ASSERT_EQ(fetch_tx_chain(rig.ring, rig.st, chain), FetchStatus::kChain);
        EXPECT_FALSE(has_pending(rig.ring, rig.st));

        // Nothing raced in this time: safe to sleep, and a new buffer kicks.
        enable_notifications(rig.ring, rig.st, true);
        EXPECT_FALSE(has_pending(rig.ring, rig.st));
        if (rig.ring.event_idx) {
            EXPECT_TRUE(vring_need_event(rig.drv.avail_event(), 2, 1));
        } else {
            EXPECT_EQ(rig.drv.used_flags() & kUsedFNoNotify, 0);
        }
    }
}

} // namespace
} // namespace vhostd::virtio
