#include "virtio/rx_batch.hpp"

#include <cstring>

namespace vhostd::virtio {

DeliverStatus RxBatch::deliver(const SplitRing& ring, QueueState& state, const FrameView& frame) noexcept {
    if (count_ == kCapacity) {
        commit();
    }
    detail::Reservation r;
    const DeliverStatus status = detail::reserve(ring, state, frame.len, r);
    if (status != DeliverStatus::kDelivered) {
        return status;
    }
    // One RX buffer that holds header and frame (r.pieces[0].len >= needed:
    // a single piece carries the chain's whole capacity), and a source that
    // is one run.
    const bool simple = r.num_pieces == 1 && !frame.pieces.empty() &&
                        frame.pieces[0].len >= frame.offset && frame.pieces[0].len - frame.offset >= frame.len;
    if (!simple) {
        commit();  // keep the used elements in reservation order
        detail::fill(ring, state, frame, r);
        return status;
    }
    pending_[count_++] = Pending{r.pieces[0].host, frame.pieces[0].host + frame.offset, &ring, &state,
                                 frame.len, r.chains[0].head, ring.hdr_len};
    ++state.rx_frames;
    state.rx_bytes += frame.len;
    return status;
}

void RxBatch::commit() noexcept {
    // The guest-memory stores first, as one run (see the header), then the
    // used elements, which publish nothing until flush_used().
    for (size_t i = 0; i < count_; ++i) {
        const Pending& p = pending_[i];
        detail::write_net_header(p.dst, p.hdr_len, 1);
        std::memcpy(p.dst + p.hdr_len, p.src, p.len);
    }
    for (size_t i = 0; i < count_; ++i) {
        const Pending& p = pending_[i];
        push_used(*p.ring, *p.state, p.head, p.hdr_len + p.len);
    }
    count_ = 0;
}

} // namespace vhostd::virtio
