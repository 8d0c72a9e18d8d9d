#pragma once
// The input layout of each fuzz target, in one place: the targets read it
// (FuzzInput) and tests/fuzz/seed_writer.cpp writes seeds in it (FuzzOutput).
// All integers are little-endian. Reading past the end yields zeros.
//
// codec_fuzz
//   [u8 fd_spec][message: 12-byte header + body]
//   fd_spec bits 0-3: fds attached (at most kCodecMaxFds); bit 4: the
//   ancillary data was truncated (MSG_CTRUNC); bit 5: the fds are /dev/null
//   (not regular files) instead of memfds of kCodecMemfdSize bytes.
//
// memory_table_fuzz
//   [u8 count] then count % 10 regions, each [u8 pages][MemRegionWire];
//   count bit 7: attach one fd more than there are regions. A region's fd is
//   a memfd of file_size(pages) bytes. Then operations until the end, each
//   [u8 op] and its arguments:
//     kMemGpa, kMemUva  [u8 sel][u64 addr][u32 len]
//     kMemPieces        [u8 sel][u64 addr][u32 len][u8 max_pieces]
//     kMemAdd           [u8 pages][MemRegionWire]
//     kMemRemove        [u8 sel][u8 exact] then, if exact is 0, [MemRegionWire]
//   sel bit 7: addr is absolute; otherwise addr is a signed 32-bit offset
//   from the start (gpa or uva) of region sel % n of the current table.
//   kMemRemove with exact != 0 removes region sel % n of the current table.
//
// split_ring_fuzz
//   [u8 config][u8 layout][u16 last_avail_idx][u8 nops][nops x RingOp][image]
//   config bits 0-3: log2 of the ring size (at most kRingMaxLog2); bit 4
//   INDIRECT_DESC, bit 5 EVENT_IDX, bit 6 MRG_RXBUF, bit 7 VERSION_1.
//   layout bit 0: guest memory is two regions, cut at ring_cut(layout);
//   otherwise one. The image is copied to the start of kRingImageSize bytes
//   of zeroed guest memory at kRingGpa (front-end address kRingUva); the
//   ring's descriptor table is at kRingGpa, then the avail ring, then the
//   used ring at the next 64-byte boundary (tests/fakes/fake_split_driver.hpp).
//
// l2_table_fuzz
//   [u8 capacity][u8 aging][u32 start_time][u8 pool] then operations until
//   the end, each [u8 op][u8 mac][u8 port][u8 arg]. MACs come from a pool of
//   pool % 64 + 1 addresses (l2_mac()); port byte 0xff means PortId 0xffff.

#include <cstdint>

#include "protocol/wire.hpp"

namespace vhostd::fuzz {

// ---- codec ----
inline constexpr uint8_t kCodecMaxFds = 10;  // two more than a message may carry
inline constexpr uint8_t kCodecTruncated = 1u << 4;
inline constexpr uint8_t kCodecDevNull = 1u << 5;
inline constexpr uint64_t kCodecMemfdSize = 64 * 1024;

// ---- memory table ----
enum MemOp : uint8_t { kMemGpa = 0, kMemUva = 1, kMemPieces = 2, kMemAdd = 3, kMemRemove = 4, kMemOps = 5 };
inline constexpr uint8_t kMemExtraFd = 1u << 7;
inline constexpr uint8_t kMemAbsolute = 1u << 7;
inline constexpr uint64_t kMemPage = 4096;
[[nodiscard]] constexpr uint64_t file_size(uint8_t pages) noexcept { return (pages % 16 + 1) * kMemPage; }

// ---- split ring ----
inline constexpr unsigned kRingMaxLog2 = 8;  // 256 entries
inline constexpr uint8_t kRingIndirect = 1u << 4;
inline constexpr uint8_t kRingEventIdx = 1u << 5;
inline constexpr uint8_t kRingMrg = 1u << 6;
inline constexpr uint8_t kRingV1 = 1u << 7;
inline constexpr uint8_t kRingTwoRegions = 1;
inline constexpr uint64_t kRingImageSize = 64 * 1024;
inline constexpr uint64_t kRingGpa = 0x100000;
inline constexpr uint64_t kRingUva = 0x7f0000000000;
// Offset of the cut between the two regions: 1 KiB steps, anywhere inside.
[[nodiscard]] constexpr uint64_t ring_cut(uint8_t layout) noexcept { return ((layout >> 1) % 63 + 1) * 1024; }

// Where the three areas of a ring of `size` entries sit (guest-physical), as
// FakeSplitDriver lays them out with its defaults; the seed writer checks the
// two agree.
struct RingLayout {
    uint64_t desc;
    uint64_t avail;
    uint64_t used;
    uint64_t end;  // first byte after the used ring
};
[[nodiscard]] constexpr RingLayout ring_layout(uint32_t size) noexcept {
    const uint64_t desc = kRingGpa;
    const uint64_t avail = desc + 16ull * size;
    const uint64_t used = (avail + 6 + 2ull * size + 63) & ~uint64_t{63};
    return {desc, avail, used, used + 6 + 8ull * size};
}

enum RingOpCode : uint8_t {
    kOpFetchTx = 0,   // fetch_tx_chain; push_used(head, 0)
    kOpFetchRx = 1,   // fetch_rx_chain; push_used(head, min(a, chain.len))
    kOpDeliver = 2,   // deliver_frame of an a-byte frame; b bit 0: through an RxBatch instead
    kOpFlush = 3,     // flush_used, needs_call
    kOpNotify = 4,    // enable_notifications(a & 1), has_pending
    kOpGuestWrite = 5,// the guest stores u16 b at image offset 2 * a
    kOpRestart = 6,   // QueueState::start(ring, a): a reconnect with SET_VRING_BASE a
    kRingOps = 7,
};
#pragma pack(push, 1)
struct RingOp {
    uint8_t op;
    uint16_t a;
    uint16_t b;
};
#pragma pack(pop)
static_assert(sizeof(RingOp) == 5);

// ---- L2 table ----
enum L2Op : uint8_t { kL2Learn = 0, kL2Lookup = 1, kL2Advance = 2, kL2FlushPort = 3, kL2Flush = 4, kL2Entries = 5,
                      kL2Ops = 6 };
// MAC number `i` of the pool: mostly unicast 52:54:00:12:34:xx addresses (what
// differs between guests of one host), every 7th multicast, number 0 all zero.
inline void l2_mac(uint8_t i, uint8_t out[6]) noexcept {
    out[0] = (i % 7 == 6) ? 0x53 : 0x52;
    out[1] = 0x54;
    out[2] = 0x00;
    out[3] = 0x12;
    out[4] = static_cast<uint8_t>(0x34 + (i >> 5));
    out[5] = static_cast<uint8_t>(i * 37);
    if (i == 0) {
        for (int k = 0; k < 6; ++k) {
            out[k] = 0;
        }
    }
}

} // namespace vhostd::fuzz
