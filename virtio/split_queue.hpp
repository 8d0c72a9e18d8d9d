#pragma once
// Device-side operations on a split virtqueue (VIRTIO 1.2 §2.7): taking
// descriptor chains off the available ring, returning them through the used
// ring, and notification suppression in both directions.
//
// Data path: noexcept, no allocation, no locks, no syscalls. Every operation
// takes the immutable view and the poller's mutable state:
//     (const SplitRing& ring, QueueState& state)
//
// A burst on a guest's TX queue looks like:
//
//     Chain chain;  // 4 KiB; lives on the PMD's stack
//     while (n < 32 && fetch_tx_chain(ring, st, chain) == FetchStatus::kChain) {
//         ... use chain.pieces[0 .. chain.count) (skip_net_header) ...
//         push_used(ring, st, chain.head, 0);   // TX writes nothing
//     }
//     flush_used(ring, st);
//     if (needs_call(ring, st)) { write the call eventfd; }
//     if (st.broken) { log st.broken_reason once, reset the port; }
//
// Ring violations (a hostile or buggy guest) are not errors returned to the
// caller one by one: the first one marks the QueueState broken with a static
// reason, and from then on every operation returns at once without touching
// the ring (kBroken / false / no-op). The owner logs the reason once and
// resets the port; other ports are unaffected (DESIGN.md, "Trust boundaries").

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "virtio/split_ring.hpp"

namespace vhostd::virtio {

// Most host pieces one chain may translate to. Each descriptor is at least one
// piece, more if its buffer spans memory regions. Linux's virtio-net uses at
// most MAX_SKB_FRAGS + 2 descriptors per packet; a chain that needs more than
// this is treated as a ring violation.
inline constexpr size_t kMaxChainPieces = 256;

// Longest chain in bytes: used.len is 32 bits, and "Drivers MUST NOT add a
// descriptor chain longer than 2^32 bytes in total" (VIRTIO 1.2 §2.7.5.2).
inline constexpr uint64_t kMaxChainBytes = UINT32_MAX;

// One descriptor chain, translated: the buffers of all its descriptors (after
// indirect tables are followed, zero-length descriptors dropped) as host
// pieces, in chain order. Every descriptor was copied out of guest memory once
// and only the copy was checked and used; the pieces point into guest memory.
struct Chain {
    uint16_t head = 0;   // descriptor index of the head; the id for push_used
    uint16_t count = 0;  // pieces[0 .. count) are valid
    uint32_t len = 0;    // total bytes of all pieces
    std::array<Piece, kMaxChainPieces> pieces;  // deliberately not zeroed

    [[nodiscard]] std::span<const Piece> view() const noexcept { return {pieces.data(), count}; }
};

enum class FetchStatus : uint8_t {
    kChain,   // a chain was taken off the avail ring; push_used its head later
    kEmpty,   // no chain available
    kBroken,  // the queue is broken (now or before); see state.broken_reason
};

// Takes the next chain off the avail ring. The TX variant requires every
// descriptor to be device-readable (a guest's transmit queue), the RX variant
// every descriptor to be device-writable (a receive queue); a descriptor of
// the other kind is a violation. Checks (VIRTIO 1.2 §2.7): avail.idx moves by
// at most the queue size; head and next indices in range; at most `size`
// descriptors per chain (a loop is a violation); total length at most
// kMaxChainBytes, summed in 64 bits; INDIRECT only if negotiated, not with
// NEXT, never inside an indirect table, table length a non-zero multiple of
// 16 (§2.7.5.3.1); a direct chain may end in one indirect descriptor
// (§2.7.5.3.2); every buffer inside guest memory; at most kMaxChainPieces
// pieces. On kChain, last_avail_idx has advanced by one.
[[nodiscard]] FetchStatus fetch_tx_chain(const SplitRing& ring, QueueState& state, Chain& chain) noexcept;
[[nodiscard]] FetchStatus fetch_rx_chain(const SplitRing& ring, QueueState& state, Chain& chain) noexcept;

// Writes used element (id, len) into the next used ring slot. Not visible to
// the driver until flush_used(). `len` is the number of bytes written into the
// chain's device-writable buffers (0 for TX). Push each fetched chain once;
// at most ring.size elements can be pending between flushes, which holds when
// every element is a chain taken from this ring. No-op on a broken queue.
void push_used(const SplitRing& ring, QueueState& state, uint16_t id, uint32_t len) noexcept;

// Publishes every pushed element by storing used.idx once, with release
// order. Call once per burst. No-op if nothing was pushed or the queue is
// broken.
void flush_used(const SplitRing& ring, QueueState& state) noexcept;

// After flush_used(): whether the driver asked to be notified of what was
// published since the last needs_call(). With EVENT_IDX: vring_need_event
// (used_event, new used.idx, used.idx at the last call), VIRTIO 1.2 §2.7.10;
// without: avail.flags lacks NO_INTERRUPT (§2.7.7). The caller writes the
// call eventfd when this returns true; virtio/ makes no syscalls. False on a
// broken queue or when nothing new was published.
[[nodiscard]] bool needs_call(const SplitRing& ring, QueueState& state) noexcept;

// Device-side notification suppression (VIRTIO 1.2 §2.7.10): whether the
// driver should kick us when it makes buffers available. Without EVENT_IDX
// this clears / sets VRING_USED_F_NO_NOTIFY in used.flags; with EVENT_IDX,
// enabling writes avail_event = last_avail_idx (kick at the next buffer) and
// disabling leaves avail_event behind (at most one more kick per wrap).
//
// Enabling ends in a full fence. Before sleeping, a poller must enable and
// then call has_pending(): either the driver sees notifications on and kicks,
// or has_pending() sees its new avail.idx — never neither (no lost kick).
void enable_notifications(const SplitRing& ring, const QueueState& state, bool enable) noexcept;

// Re-reads avail.idx: whether chains are available beyond last_avail_idx.
// False on a broken queue.
[[nodiscard]] bool has_pending(const SplitRing& ring, const QueueState& state) noexcept;

// Marks the queue broken with a static reason (the first reason is kept).
// For callers that find a violation the ring code cannot see.
void mark_broken(QueueState& state, const char* reason) noexcept;

// The EVENT_IDX test (VIRTIO 1.2 §2.7.10, Linux include/uapi/linux/
// virtio_ring.h): whether `event` lies in [old_idx, new_idx), in 16-bit
// arithmetic — i.e. the other side asked to hear about an index we passed.
[[nodiscard]] constexpr bool vring_need_event(uint16_t event, uint16_t new_idx, uint16_t old_idx) noexcept {
    return static_cast<uint16_t>(new_idx - event - 1) < static_cast<uint16_t>(new_idx - old_idx);
}

namespace detail {

// Reason for a chain that needs more than kMaxChainPieces pieces.
inline constexpr const char* kTooManyPiecesReason = "descriptor chain needs more than 256 host buffer pieces";
static_assert(kMaxChainPieces == 256, "update kTooManyPiecesReason");

// Internal to virtio/: the chain walker shared by the fetch functions and
// deliver_frame(). Exactly one of `violation` / `out_of_pieces` is set on
// failure; on success pieces[0 .. count) hold `len` bytes.
struct ChainWalk {
    const char* violation = nullptr;  // static reason: the chain breaks the spec
    bool out_of_pieces = false;       // the chain is valid but needs more than `max_pieces` pieces
    uint16_t count = 0;
    uint32_t len = 0;
};
[[nodiscard]] ChainWalk walk_chain(const SplitRing& ring, uint16_t head, bool device_writable, Piece* pieces,
                                   size_t max_pieces) noexcept;

enum class HeadStatus : uint8_t { kHead, kEmpty, kBroken };
struct Head {
    HeadStatus status;
    uint16_t index;  // valid for kHead: < ring.size
};
// The head at state.last_avail_idx, not consumed (the caller advances
// last_avail_idx). Reads avail.idx only when the shadow is used up; marks the
// state broken on a violation.
[[nodiscard]] Head peek_head(const SplitRing& ring, QueueState& state) noexcept;

} // namespace detail

} // namespace vhostd::virtio
