#pragma once
// Delivering a frame into a guest's virtio-net receive queue (VIRTIO 1.2
// §5.1.6.3 "Setting Up Receive Buffers", §5.1.6.4 "Processing of Incoming
// Packets"), including mergeable receive buffers (VIRTIO_NET_F_MRG_RXBUF).
//
// The frame is copied once, straight from its source pieces (another guest's
// TX buffers, or a DPDK mbuf) into the RX buffers, with one memcpy per
// contiguous run. Data path: noexcept, no allocation (about 6 KiB of stack).
//
//     for each frame of the burst:
//         switch (deliver_frame(rx_ring, rx_state, frame)) { ... count ... }
//     flush_used(rx_ring, rx_state);
//     if (needs_call(rx_ring, rx_state)) { write the call eventfd; }

#include <cstdint>
#include <cstring>

#include "virtio/net_hdr.hpp"
#include "virtio/split_queue.hpp"
#include "virtio/split_ring.hpp"

namespace vhostd::virtio {

enum class DeliverStatus : uint8_t {
    // Header and frame written, used elements pushed (visible after
    // flush_used). state.rx_frames / rx_bytes count it.
    kDelivered,
    // Not enough RX buffers are available now. Nothing was consumed: the
    // chains looked at are put back (last_avail_idx rolled back), and nothing
    // was copied. state.rx_no_buffer counts it; the caller drops the frame
    // or retries later.
    kNoBuffer,
    // The frame cannot fit: without MRG_RXBUF, header + frame is larger than
    // the next RX chain; with it, the frame needs more than kMaxChainPieces
    // buffer pieces. Nothing was consumed: the chain stays available for a
    // frame that fits (DPDK does the same; returning it with used.len 0 would
    // show the guest an empty packet). state.rx_too_big counts it; the caller
    // drops the frame.
    kTooBig,
    // A ring violation: state.broken_reason says which.
    kBroken,
};

// Writes a virtio-net header (all zero except num_buffers) and `frame` into
// the guest's RX buffers:
//  - without MRG_RXBUF: one chain, which must hold ring.hdr_len + frame.len
//    bytes; num_buffers (12-byte header only) is 1 (§5.1.6.3.2).
//  - with MRG_RXBUF: as many chains as needed, filled in order, the header in
//    the first, num_buffers = the number of chains (§5.1.6.3.2). Each chain
//    must hold at least a header (§5.1.6.3.1), else it is a violation.
// Pushes one used element per chain with the bytes written into it.
[[nodiscard]] DeliverStatus deliver_frame(const SplitRing& ring, QueueState& state, const FrameView& frame) noexcept;

// The same for a frame in one contiguous buffer (e.g. a DPDK mbuf segment).
[[nodiscard]] DeliverStatus deliver_frame(const SplitRing& ring, QueueState& state, const uint8_t* data,
                                          uint32_t len) noexcept;

namespace detail {

// Internal to virtio/: deliver_frame() in two steps, shared with RxBatch.

// One reserved RX chain: its pieces are Reservation::pieces[first .. first + count).
struct ReservedChain {
    uint16_t head;
    uint16_t first;
    uint16_t count;
    uint32_t capacity;
};

// The RX chains taken for one frame. Large (about 7 KiB): lives on the stack.
struct Reservation {
    Piece pieces[kMaxChainPieces];
    ReservedChain chains[kMaxChainPieces];
    size_t num_chains = 0;
    size_t num_pieces = 0;
    uint64_t needed = 0;  // header + frame bytes
};

// Takes RX chains off the avail ring until they hold the header and a
// `frame_len`-byte frame. Anything but kDelivered leaves last_avail_idx as it
// was and counts the reason in `state` (rx_no_buffer, rx_too_big) or marks the
// queue broken. On kDelivered the frame is counted (rx_frames, rx_bytes) but
// nothing has been written yet.
[[nodiscard]] DeliverStatus reserve(const SplitRing& ring, QueueState& state, uint32_t frame_len,
                                    Reservation& out) noexcept;

// Writes the header (num_buffers = the number of chains) and `frame` into the
// reserved chains and pushes their used elements.
void fill(const SplitRing& ring, QueueState& state, const FrameView& frame, const Reservation& r) noexcept;

inline constexpr uintptr_t kCacheLine = 64;

// Whether `p` starts a cache line.
inline bool line_aligned(const uint8_t* p) noexcept {
    return reinterpret_cast<uintptr_t>(p) % kCacheLine == 0;
}

// Stores `v` at `dst`; with `only_if_differs`, reads first and stores only
// when the bytes there differ (write_net_header).
template <typename T>
inline void store_header_field(uint8_t* dst, T v, bool only_if_differs) noexcept {
    if (only_if_differs) {
        T have{};
        std::memcpy(&have, dst, sizeof(have));
        if (have == v) {
            return;
        }
    }
    std::memcpy(dst, &v, sizeof(v));
}

// Writes a `hdr_len`-byte (10 or 12) virtio-net header, zero but for
// num_buffers, to one contiguous buffer with plain stores: a header built on
// the stack and copied out would be read back through a store-to-load
// forward that straddles stores, which waits until every older store is in
// the cache — the guest-buffer stores included.
//
// When the frame starts on a cache line, the header has its line to itself,
// and a driver that recycles its RX buffers (DPDK's virtio PMD) finds there
// the header we wrote on the previous lap. Such a line is only read, and a
// store of equal bytes would take it from the guest CPU's cache for nothing,
// so only the fields that differ are written (DPDK's vhost library does the
// same). Otherwise the frame's first bytes share the line, which is written
// anyway, and a read first would only add a transfer. The guest may change
// the bytes under us: it only spoils its own buffer, which is ours until the
// used element is published.
inline void write_net_header(uint8_t* dst, uint32_t hdr_len, uint16_t num_buffers) noexcept {
    const bool own_line = line_aligned(dst + hdr_len);
    store_header_field(dst, uint64_t{0}, own_line);  // flags, gso_type, hdr_len, gso_size, csum_start
    if (hdr_len == kNetHdrMrgLen) {
        // csum_offset 0, num_buffers (le16)
        store_header_field(dst + 8, uint32_t{num_buffers} << 16, own_line);
    } else {
        store_header_field(dst + 8, uint16_t{0}, own_line);  // csum_offset
    }
}

} // namespace detail

} // namespace vhostd::virtio
