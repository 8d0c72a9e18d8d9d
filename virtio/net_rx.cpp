#include "virtio/net_rx.hpp"

#include <algorithm>
#include <cstring>

namespace vhostd::virtio {

namespace {

constexpr const char* kMrgBufferTooShort = "mergeable RX buffer is shorter than the virtio-net header";

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

    // Steps over `n` bytes written by other means.
    void skip(uint32_t n) noexcept {
        while (n != 0 && index_ < count_) {
            const uint32_t take = std::min(pieces_[index_].len - offset_, n);
            n -= take;
            offset_ += take;
            if (offset_ == pieces_[index_].len) {
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

} // namespace

namespace detail {

DeliverStatus reserve(const SplitRing& ring, QueueState& state, uint32_t frame_len, Reservation& out) noexcept {
    if (state.broken) {
        return DeliverStatus::kBroken;
    }
    const uint64_t needed = uint64_t{ring.hdr_len} + frame_len;

    // Reserve chains until they hold header + frame. All chains share one
    // piece array; every chain has at least one piece (a mergeable chain
    // holds at least a header), so kMaxChainPieces records suffice.
    size_t num_chains = 0;
    size_t num_pieces = 0;
    uint64_t capacity = 0;
    const uint16_t saved_last_avail = state.last_avail_idx;
    const auto put_back = [&](DeliverStatus status) noexcept {
        state.last_avail_idx = saved_last_avail;
        return status;
    };

    while (capacity < needed) {
        const Head head = peek_head(ring, state);
        if (head.status == HeadStatus::kBroken) {
            return DeliverStatus::kBroken;
        }
        if (head.status == HeadStatus::kEmpty) {
            ++state.rx_no_buffer;
            return put_back(DeliverStatus::kNoBuffer);
        }
        const ChainWalk w = walk_chain(ring, head.index, /*device_writable=*/true, out.pieces + num_pieces,
                                       kMaxChainPieces - num_pieces);
        if (w.violation != nullptr) {
            mark_broken(state, w.violation);
            return DeliverStatus::kBroken;
        }
        if (w.out_of_pieces) {
            if (num_chains == 0) {
                // It had the whole array: the chain itself is too fragmented.
                mark_broken(state, kTooManyPiecesReason);
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
        out.chains[num_chains] = ReservedChain{head.index, static_cast<uint16_t>(num_pieces), w.count, w.len};
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
    out.num_chains = num_chains;
    out.num_pieces = num_pieces;
    out.needed = needed;
    ++state.rx_frames;
    state.rx_bytes += frame_len;
    return DeliverStatus::kDelivered;
}

void fill(const SplitRing& ring, QueueState& state, const FrameView& frame, const Reservation& r) noexcept {
    // The header: zero but for num_buffers, which the 12-byte header always
    // carries (1 without MRG_RXBUF, §5.1.6.3.2).
    const auto num_buffers = static_cast<uint16_t>(r.num_chains);
    PieceWriter out(r.pieces, r.num_pieces);
    if (r.pieces[0].len >= ring.hdr_len) {
        write_net_header(r.pieces[0].host, ring.hdr_len, num_buffers);
        out.skip(ring.hdr_len);
    } else {  // a header split over descriptors: assemble it, then copy
        VirtioNetHdrMrg hdr{};
        hdr.num_buffers = num_buffers;
        out.write(reinterpret_cast<const uint8_t*>(&hdr), ring.hdr_len);
    }

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
    uint64_t remaining = r.needed - left;
    for (size_t i = 0; i < r.num_chains; ++i) {
        const uint32_t written = static_cast<uint32_t>(std::min<uint64_t>(r.chains[i].capacity, remaining));
        push_used(ring, state, r.chains[i].head, written);
        remaining -= written;
    }
}

} // namespace detail

DeliverStatus deliver_frame(const SplitRing& ring, QueueState& state, const FrameView& frame) noexcept {
    detail::Reservation r;
    const DeliverStatus status = detail::reserve(ring, state, frame.len, r);
    if (status == DeliverStatus::kDelivered) {
        detail::fill(ring, state, frame, r);
    }
    return status;
}

DeliverStatus deliver_frame(const SplitRing& ring, QueueState& state, const uint8_t* data, uint32_t len) noexcept {
    // Piece holds a mutable pointer; the source is only read.
    const Piece piece{const_cast<uint8_t*>(data), len};
    const FrameView frame{std::span<const Piece>(&piece, len == 0 ? 0 : 1), 0, len};
    return deliver_frame(ring, state, frame);
}

} // namespace vhostd::virtio
