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

} // namespace vhostd::virtio
