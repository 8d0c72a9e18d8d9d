#include "virtio/net_rx.hpp"

#include <algorithm>
#include <cstring>

namespace vhostd::virtio {

namespace {

constexpr const char* kMrgBufferTooShort = "mergeable RX buffer is shorter than the virtio-net header";

// One reserved RX chain: its pieces are pieces[first .. first + count).
struct Reserved {
    uint16_t head;
    uint16_t first;
    uint16_t count;
    uint32_t capacity;
};

// Writes sequentially across the reserved pieces.
class PieceWriter {
public:
    PieceWriter(const Piece* pieces, size_t count) noexcept : pieces_(pieces), count_(count) {}

    // Copies `n` bytes; the caller reserved room for everything it writes.
    void write(const uint8_t* src, uint32_t n) noexcept {
        while (n != 0 && index_ < count_) {
            const Piece& p = pieces_[index_];
            const uint32_t take = std::min(p.len - offset_, n);
            std::memcpy(p.host + offset_, src, take);
            src += take;
            n -= take;
            offset_ += take;
            if (offset_ == p.len) {
                ++index_;
                offset_ = 0;
            }
        }
    }

private:
    const Piece* pieces_;
    size_t count_;
    size_t index_ = 0;
    uint32_t offset_ = 0;
};

DeliverStatus deliver(const SplitRing& ring, QueueState& state, const FrameView& frame) noexcept {
    if (state.broken) {
        return DeliverStatus::kBroken;
    }
    const uint64_t needed = uint64_t{ring.hdr_len} + frame.len;

    // Reserve chains until they hold header + frame. All chains share one
    // piece array; every chain has at least one piece (a mergeable chain
    // holds at least a header), so kMaxChainPieces records suffice.
    Piece pieces[kMaxChainPieces];
    Reserved chains[kMaxChainPieces];
    size_t num_chains = 0;
    size_t num_pieces = 0;
    uint64_t capacity = 0;
    const uint16_t saved_last_avail = state.last_avail_idx;
    const auto put_back = [&](DeliverStatus status) noexcept {
        state.last_avail_idx = saved_last_avail;
        return status;
    };

    while (capacity < needed) {
        const detail::Head head = detail::peek_head(ring, state);
        if (head.status == detail::HeadStatus::kBroken) {
            return DeliverStatus::kBroken;
        }
        if (head.status == detail::HeadStatus::kEmpty) {
            ++state.rx_no_buffer;
            return put_back(DeliverStatus::kNoBuffer);
        }
        const detail::ChainWalk w = detail::walk_chain(ring, head.index, /*device_writable=*/true,
                                                       pieces + num_pieces, kMaxChainPieces - num_pieces);
        if (w.violation != nullptr) {
            mark_broken(state, w.violation);
            return DeliverStatus::kBroken;
        }
        if (w.out_of_pieces) {
            if (num_chains == 0) {
                // It had the whole array: the chain itself is too fragmented.
                mark_broken(state, detail::kTooManyPiecesReason);
                return DeliverStatus::kBroken;
            }
            ++state.rx_too_big;
            return put_back(DeliverStatus::kTooBig);
        }
        if (ring.mrg_rxbuf && w.len < ring.hdr_len) {
            // "each buffer MUST be at least size of struct virtio_net_hdr"
            // (VIRTIO 1.2 §5.1.6.3.1); this also guarantees progress.
            mark_broken(state, kMrgBufferTooShort);
            return DeliverStatus::kBroken;
        }
        chains[num_chains] = Reserved{head.index, static_cast<uint16_t>(num_pieces), w.count, w.len};
        ++num_chains;
        num_pieces += w.count;
        capacity += w.len;
        ++state.last_avail_idx;
        if (!ring.mrg_rxbuf) {
            // "The device MUST use only a single descriptor [chain] if
            // VIRTIO_NET_F_MRG_RXBUF was not negotiated" (§5.1.6.3.2).
            if (capacity < needed) {
                ++state.rx_too_big;
                return put_back(DeliverStatus::kTooBig);
            }
            break;
        }
        if (num_chains == kMaxChainPieces && capacity < needed) {
            ++state.rx_too_big;  // unreachable: the pieces run out first
            return put_back(DeliverStatus::kTooBig);
        }
    }

    // The header: zero but for num_buffers, which the 12-byte header always
    // carries (1 without MRG_RXBUF, §5.1.6.3.2).
    VirtioNetHdrMrg hdr{};
    hdr.num_buffers = static_cast<le16>(num_chains);
    PieceWriter out(pieces, num_pieces);
    out.write(reinterpret_cast<const uint8_t*>(&hdr), ring.hdr_len);

    // The frame, one memcpy per run that is contiguous on both sides.
    uint32_t left = frame.len;
    uint32_t offset = frame.offset;
    for (size_t i = 0; i < frame.pieces.size() && left != 0; ++i) {
        const Piece& p = frame.pieces[i];
        if (offset >= p.len) {  // only for a malformed view; keeps the copy in bounds
            offset -= p.len;
            continue;
        }
        const uint32_t take = std::min(p.len - offset, left);
        out.write(p.host + offset, take);
        left -= take;
        offset = 0;
    }

    // Used elements: every chain but the last is full. `left` is non-zero only
    // if the caller's view held fewer than frame.len bytes; report only what
    // was written (§2.7.8: the device MUST write at least `len` bytes).
    uint64_t remaining = needed - left;
    for (size_t i = 0; i < num_chains; ++i) {
        const uint32_t written = static_cast<uint32_t>(std::min<uint64_t>(chains[i].capacity, remaining));
        push_used(ring, state, chains[i].head, written);
        remaining -= written;
    }
    ++state.rx_frames;
    state.rx_bytes += frame.len;
    return DeliverStatus::kDelivered;
}

} // namespace

DeliverStatus deliver_frame(const SplitRing& ring, QueueState& state, const FrameView& frame) noexcept {
    return deliver(ring, state, frame);
}

DeliverStatus deliver_frame(const SplitRing& ring, QueueState& state, const uint8_t* data, uint32_t len) noexcept {
    // Piece holds a mutable pointer; the source is only read.
    const Piece piece{const_cast<uint8_t*>(data), len};
    const FrameView frame{std::span<const Piece>(&piece, len == 0 ? 0 : 1), 0, len};
    return deliver(ring, state, frame);
}

} // namespace vhostd::virtio
