#pragma once
// Deferred delivery: a burst's frames are reserved one by one as they are
// switched, and written into the guests' RX buffers together at the end.
//
// deliver() takes the RX chains at once, so every frame's fate (delivered,
// no buffer, too big, broken ring) is known and counted when it is switched,
// exactly as with deliver_frame(). What it postpones is the writing, for the
// common frame that is one contiguous run going into one RX buffer: header,
// frame and used element are written by commit(), back to back with the rest
// of the burst. Those stores go to cache lines the receiving guest's CPU
// touched last, and each one waits for its line. Interleaved with every
// frame's descriptor work they waited one at a time, and the loads behind
// them with them; written as a run, the CPU overlaps the waits, and while
// one frame is copied the next one's source and RX buffer are prefetched
// (docs/performance.md, "Deferred RX writes"). Any other frame (several
// source pieces, several RX buffers or descriptors) commits the batch, then is
// written at once, so each ring's used elements keep the reservation order
// (VIRTIO_F_IN_ORDER).
//
// Rules for the caller:
//  - a deferred frame's source bytes stay valid until commit();
//  - commit() before flush_used() on any ring delivered into;
//  - one writer per ring: not for rings several PMDs deliver into.
//
// Data path: noexcept, no allocation, no locks, no syscalls.
//
//     for each frame of the burst:
//         switch (batch.deliver(rx_ring, rx_state, frame)) { ... count ... }
//     batch.commit();
//     flush_used(rx_ring, rx_state);
//     if (needs_call(rx_ring, rx_state)) { write the call eventfd; }

#include <array>
#include <cstddef>
#include <cstdint>

#include "virtio/net_hdr.hpp"
#include "virtio/net_rx.hpp"
#include "virtio/split_ring.hpp"

namespace vhostd::virtio {

class RxBatch {
public:
    // Frames held before deliver() commits by itself.
    static constexpr size_t kCapacity = 256;

    // Like deliver_frame(); on kDelivered the frame may still be pending.
    [[nodiscard]] DeliverStatus deliver(const SplitRing& ring, QueueState& state, const FrameView& frame) noexcept;

    // Writes every pending frame and pushes its used element. A frame whose
    // ring broke after it was reserved (a later frame found a violation) is
    // not written: a broken ring is never written again. It stays counted as
    // delivered.
    void commit() noexcept;

    [[nodiscard]] size_t pending() const noexcept { return count_; }

    // Whether commit() writes the first line of a frame that starts on a
    // cache line with streaming (non-temporal) stores: the line the guest's
    // driver reads, so its CPU holds it. A streaming store does not wait to
    // take the line over; the guest then reads it from memory. Which is
    // cheaper depends on where the two CPUs are (dataplane/store_tuner.hpp).
    // The rest of the frame is always written with ordinary stores.
    void set_streaming(bool on) noexcept { streaming_ = on; }
    [[nodiscard]] bool streaming() const noexcept { return streaming_; }
    // Frames written by commit() so far, with either kind of store, and
    // those of them whose first line was streamed.
    [[nodiscard]] uint64_t frames_committed() const noexcept { return committed_; }
    [[nodiscard]] uint64_t frames_streamed() const noexcept { return streamed_; }

private:
    struct Pending {
        uint8_t* dst;        // the RX buffer: header, then frame
        const uint8_t* src;  // the frame, contiguous
        const SplitRing* ring;
        QueueState* state;
        uint32_t len;        // frame bytes
        uint16_t head;       // the RX chain, for its used element
    };
    std::array<Pending, kCapacity> pending_;  // deliberately not zeroed
    size_t count_ = 0;
    bool streaming_ = false;
    uint64_t committed_ = 0;
    uint64_t streamed_ = 0;
};

} // namespace vhostd::virtio
