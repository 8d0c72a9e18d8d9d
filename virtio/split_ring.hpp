#pragma once
// Split virtqueues (VIRTIO 1.2 §2.7): the wire layout of the descriptor table,
// the available ring and the used ring, and the two halves of a queue as the
// device side holds it:
//
//  - SplitRing: an immutable view of one ring in guest memory: our pointers to
//    its three areas, its size, the memory table that translates the guest
//    addresses found in descriptors, and the negotiated features that change
//    how the ring is used. The control thread builds it (SET_VRING_ADDR,
//    SET_MEM_TABLE) and rebuilds it whenever the memory table changes; PMD
//    threads only read it.
//  - QueueState: the running indices of the queue, owned by whichever thread
//    polls it. They survive a rebuilt SplitRing: SET_VRING_BASE seeds
//    last_avail_idx, GET_VRING_BASE reads it back.
//
// The operations on a queue take (const SplitRing&, QueueState&); they are in
// virtio/split_queue.hpp (chains, used ring, notifications) and
// virtio/net_rx.hpp (virtio-net receive with mergeable buffers).
//
// Everything in the ring is written by the guest and is hostile (DESIGN.md,
// "Trust boundaries"): SplitRing::create checks what SET_VRING_ADDR and
// SET_VRING_NUM gave us, and the queue operations check every index, flag,
// address and length they read.

#include <bit>
#include <cstddef>
#include <cstdint>

#include "protocol/memory_table.hpp"
#include "protocol/result.hpp"

namespace vhostd::virtio {

// Every multi-byte field of a virtio 1.x ring is little-endian (VIRTIO 1.2
// §2.7, "le16", "le32", "le64"). Legacy rings use the guest's byte order,
// which for the x86-64 and arm64 guests vhostd serves is little-endian too.
// vhostd runs only on little-endian hosts, so these are plain integers.
static_assert(std::endian::native == std::endian::little, "vhostd assumes a little-endian host");
using le16 = uint16_t;
using le32 = uint32_t;
using le64 = uint64_t;

using Piece = protocol::MemoryTable::Piece;

// ---- Wire layout (VIRTIO 1.2 §2.7.5, §2.7.6, §2.7.8) ----

// struct virtq_desc.
struct VringDesc {
    le64 addr;   // guest-physical
    le32 len;
    le16 flags;  // kDescF*
    le16 next;   // valid if flags & kDescFNext
};
static_assert(sizeof(VringDesc) == 16);
static_assert(offsetof(VringDesc, addr) == 0);
static_assert(offsetof(VringDesc, len) == 8);
static_assert(offsetof(VringDesc, flags) == 12);
static_assert(offsetof(VringDesc, next) == 14);

inline constexpr le16 kDescFNext = 1;      // VIRTQ_DESC_F_NEXT: the chain continues at `next`
inline constexpr le16 kDescFWrite = 2;     // VIRTQ_DESC_F_WRITE: device-writable (else device-readable)
inline constexpr le16 kDescFIndirect = 4;  // VIRTQ_DESC_F_INDIRECT: addr/len is a table of descriptors

// struct virtq_avail: flags, idx, ring[size], then used_event (EVENT_IDX).
struct VringAvailHeader {
    le16 flags;
    le16 idx;
};
static_assert(sizeof(VringAvailHeader) == 4);
static_assert(offsetof(VringAvailHeader, idx) == 2);
inline constexpr le16 kAvailFNoInterrupt = 1;  // VIRTQ_AVAIL_F_NO_INTERRUPT (VRING_AVAIL_F_NO_INTERRUPT)

// struct virtq_used_elem. `id` is a le32 "for padding reasons" (§2.7.8).
struct VringUsedElem {
    le32 id;
    le32 len;
};
static_assert(sizeof(VringUsedElem) == 8);
static_assert(offsetof(VringUsedElem, len) == 4);

// struct virtq_used: flags, idx, ring[size], then avail_event (EVENT_IDX).
struct VringUsedHeader {
    le16 flags;
    le16 idx;
};
static_assert(sizeof(VringUsedHeader) == 4);
static_assert(offsetof(VringUsedHeader, idx) == 2);
inline constexpr le16 kUsedFNoNotify = 1;  // VIRTQ_USED_F_NO_NOTIFY (VRING_USED_F_NO_NOTIFY)

// Alignment the spec requires of each area (VIRTIO 1.2 §2.7, table "Virtqueue
// Part Alignment"), and their sizes for a queue of `size` entries. The avail
// and used sizes include the 2-byte event-index trailer, which the driver
// always allocates (§2.7: "6 + 2 * Queue Size", "6 + 8 * Queue Size").
inline constexpr uint64_t kDescAlign = 16;
inline constexpr uint64_t kAvailAlign = 2;
inline constexpr uint64_t kUsedAlign = 4;
[[nodiscard]] constexpr uint64_t desc_table_bytes(uint32_t size) noexcept { return 16ull * size; }
[[nodiscard]] constexpr uint64_t avail_ring_bytes(uint32_t size) noexcept { return 6ull + 2ull * size; }
[[nodiscard]] constexpr uint64_t used_ring_bytes(uint32_t size) noexcept { return 6ull + 8ull * size; }

// virtio-net header sizes (VIRTIO 1.2 §5.1.6): 12 bytes with VERSION_1 or
// MRG_RXBUF (num_buffers present), 10 bytes for a legacy device without
// MRG_RXBUF.
inline constexpr uint8_t kNetHdrLen = 10;
inline constexpr uint8_t kNetHdrMrgLen = 12;

// ---- The immutable view ----

struct SplitRing {
    // Our pointers into the three areas. Every entry lies inside one mapped
    // region (checked by create()). The device only reads the avail ring and
    // only writes the used ring, but both are shared memory the guest also
    // writes, so they are accessed through atomic_ref (split_queue.cpp).
    VringDesc* desc = nullptr;           // desc[size]
    le16* avail_flags = nullptr;
    le16* avail_idx = nullptr;
    le16* avail_ring = nullptr;          // avail_ring[size]
    le16* used_event = nullptr;          // avail_ring[size], EVENT_IDX only
    le16* used_flags = nullptr;
    le16* used_idx = nullptr;
    VringUsedElem* used_ring = nullptr;  // used_ring[size]
    le16* avail_event = nullptr;         // after used_ring[size], EVENT_IDX only

    // Translates the guest-physical addresses in descriptors. Not owned: the
    // snapshot that holds this ring holds the table too, and both are
    // reclaimed together after a grace period (DESIGN.md, "Threads").
    const protocol::MemoryTable* mem = nullptr;

    uint16_t size = 0;  // power of two, 1..32768
    uint16_t mask = 0;  // size - 1

    // Negotiated features that change the data path.
    bool event_idx = false;   // VIRTIO_F_EVENT_IDX (bit 29): used_event / avail_event
    bool indirect = false;    // VIRTIO_F_INDIRECT_DESC (bit 28)
    bool mrg_rxbuf = false;   // VIRTIO_NET_F_MRG_RXBUF (bit 15)
    uint8_t hdr_len = kNetHdrLen;  // virtio-net header: 12 with VERSION_1 or MRG_RXBUF, else 10

    // Builds the view of the ring whose areas the front-end placed at these
    // front-end virtual addresses (SET_VRING_ADDR; vhost-user.rst: "ring
    // addresses are user addresses"), for SET_VRING_NUM `size` and the
    // negotiated `features` (SET_FEATURES). Checks: size a power of two in
    // 1..kMaxQueueSize; desc 16-, avail 2- and used 4-byte aligned; each area,
    // at its full length, inside one region of `mem`. The error message names
    // the field and its value. `mem` must outlive the ring.
    static Result<SplitRing> create(const protocol::MemoryTable& mem, uint64_t desc_uva, uint64_t avail_uva,
                                    uint64_t used_uva, uint32_t size, uint64_t features);
};

// ---- The mutable state ----

// Owned by the one thread that polls the queue; aligned so that two queues'
// states never share a cache line (DPDK keeps producer and consumer state
// apart the same way).
struct alignas(64) QueueState {
    // Next avail ring entry to consume. SET_VRING_BASE sets it; GET_VRING_BASE
    // returns it (vhost-user.rst: "the next index of the available ring").
    uint16_t last_avail_idx = 0;
    // avail.idx as last read (acquire); entries in [last_avail_idx, avail_idx)
    // are known to be published and are consumed without reading avail.idx.
    uint16_t avail_idx_shadow = 0;
    // Next used ring slot to fill. Entries in [used_idx_published, used_idx)
    // are written but not yet visible to the driver (flush_used publishes).
    uint16_t used_idx = 0;
    // What this device last stored in used.idx.
    uint16_t used_idx_published = 0;
    // used.idx at the last needs_call(); the EVENT_IDX check is over
    // (used_idx_signalled, used_idx_published].
    uint16_t used_idx_signalled = 0;
    // Entries published since the last needs_call(), saturating at 65536 (a
    // full wrap of the 16-bit index, after which the EVENT_IDX test is
    // meaningless and we notify unconditionally).
    uint32_t unsignalled = 0;

    // Set on the first ring violation: every operation then returns at once
    // without touching the ring, and the owner resets the port. The reason
    // is static text (no allocation on the data path).
    bool broken = false;
    const char* broken_reason = nullptr;

    // Counters, owned by the poller like everything above.
    uint64_t chains = 0;        // chains fetched by fetch_tx_chain / fetch_rx_chain
    uint64_t rx_frames = 0;     // frames delivered by deliver_frame
    uint64_t rx_bytes = 0;      // their payload bytes (without virtio-net header)
    uint64_t rx_no_buffer = 0;  // deliver_frame: not enough RX buffers
    uint64_t rx_too_big = 0;    // deliver_frame: frame larger than the buffers can hold

    // The state of a queue that starts (or resumes) at avail index
    // `last_avail_idx` (from SET_VRING_BASE). The used index continues from
    // what the ring holds: used.idx is the driver-visible truth, also after a
    // reconnect (Linux vhost's vhost_vq_init_access and DPDK do the same).
    static QueueState start(const SplitRing& ring, uint16_t last_avail_idx) noexcept;
};

} // namespace vhostd::virtio
