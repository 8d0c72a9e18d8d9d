// A guest that rewrites a descriptor while the device walks it (TOCTOU,
// "double fetch"): DPDK once read descriptor fields from guest memory twice,
// checking one value and using another. vhostd copies each descriptor once
// and uses only the copy. split_queue_test checks that a chain already
// fetched does not change when the guest rewrites it; here a second thread
// (the guest) flips descriptor 0 between two valid buffers and a hostile
// value (an address outside guest memory, length 0xFFFFFFFF, NEXT into a
// loop) as fast as it can while the device walks the chain over and over.
//
// Each walk must end either as a violation or as a chain that is consistent
// with what was checked: its length is the sum of its pieces, every piece
// lies inside guest memory, and the hostile address and length never appear.
// The fields of one descriptor may mix values of two writes (the guest's
// store is not atomic); any mix of valid values is a valid descriptor.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdint>
#include <thread>

#include "tests/unit/virtio/rig.hpp"
#include "virtio/split_queue.hpp"

namespace vhostd::virtio::testing {
namespace {

TEST(DescriptorRace, AWalkUsesOnlyTheValuesItChecked) {
    Rig rig;
    const uint64_t buf_a = rig.drv.alloc(64);
    const uint64_t buf_b = rig.drv.alloc(1000);
    const uint8_t* host_a = rig.host(buf_a, 64);
    const uint8_t* host_b = rig.host(buf_b, 1000);
    const uint8_t* mem_lo = rig.host(rig.mem.gpa_base(), rig.mem.size());
    const uint8_t* mem_hi = mem_lo + rig.mem.size();
    rig.drv.write_desc(1, 0x10, 0xFFFFFFFF, kDescFNext, 0);  // a loop back to 0, outside memory
    rig.drv.write_desc(0, buf_a, 64, 0, 0);

    std::atomic<bool> stop{false};
    std::thread guest([&] {
        for (uint64_t i = 0; !stop.load(std::memory_order_relaxed); ++i) {
            switch (i % 3) {
            case 0: rig.drv.write_desc(0, buf_a, 64, 0, 0); break;
            case 1: rig.drv.write_desc(0, 0x10, 0xFFFFFFFF, kDescFNext, 1); break;
            default: rig.drv.write_desc(0, buf_b, 1000, 0, 0); break;
            }
        }
    });

    // At least kWalks walks, and until both outcomes were seen often (the
    // guest thread may get little CPU on a loaded machine), within 30 s.
    constexpr int kWalks = 200000;
    constexpr int kEach = 1000;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    int chains = 0;
    int violations = 0;
    int n = 0;
    Piece pieces[kMaxChainPieces];
    for (; n < kWalks || chains < kEach || violations < kEach; ++n) {
        if ((n & 1023) == 0 && std::chrono::steady_clock::now() > deadline) {
            break;
        }
        // The walker the fetch functions share (a fetch would break the queue
        // for good at the first violation).
        const detail::ChainWalk w = detail::walk_chain(rig.ring, 0, false, pieces, kMaxChainPieces);
        if (w.violation != nullptr) {
            ++violations;
            continue;
        }
        ++chains;
        ASSERT_FALSE(w.out_of_pieces);
        uint64_t sum = 0;
        for (uint16_t i = 0; i < w.count; ++i) {
            ASSERT_GE(pieces[i].host, mem_lo) << "walk " << n;
            ASSERT_LE(pieces[i].host + pieces[i].len, mem_hi) << "walk " << n;
            sum += pieces[i].len;
        }
        ASSERT_EQ(sum, w.len) << "walk " << n << ": the length used is not the length checked";
        ASSERT_TRUE(w.len == 64 || w.len == 1000) << "walk " << n << ": len " << w.len;
        ASSERT_EQ(w.count, 1) << "walk " << n;
        ASSERT_TRUE(pieces[0].host == host_a || pieces[0].host == host_b) << "walk " << n;
    }
    stop.store(true);
    guest.join();
    // Both outcomes happened often, or the race was not exercised.
    EXPECT_GE(chains, kEach) << n << " walks";
    EXPECT_GE(violations, kEach) << n << " walks";
    std::printf("%d walks: %d chains, %d violations\n", n, chains, violations);
}

} // namespace
} // namespace vhostd::virtio::testing
