#include "virtio/split_queue.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>

#include "virtio/guest_access.hpp"

namespace vhostd::virtio {

namespace {

// Static reasons for ring violations (QueueState::broken_reason).
constexpr const char* kAvailIdxJump = "avail.idx moved ahead of last_avail_idx by more than the queue size";
constexpr const char* kHeadOutOfRange = "avail ring entry (chain head) is not below the queue size";
constexpr const char* kNextOutOfRange = "descriptor next index is out of range";
constexpr const char* kChainLoop = "descriptor chain is longer than the queue size (a loop?)";
constexpr const char* kChainTooLong = "descriptor chain is longer than 4 GiB in total";
constexpr const char* kBufferOutside = "descriptor buffer is outside guest memory";
constexpr const char* kIndirectNotNegotiated = "indirect descriptor without VIRTIO_F_INDIRECT_DESC";
constexpr const char* kIndirectWithNext = "indirect descriptor has NEXT set";
constexpr const char* kIndirectNested = "indirect descriptor inside an indirect table";
constexpr const char* kIndirectBadLength = "indirect table length is not a non-zero multiple of 16";
constexpr const char* kIndirectOutside = "indirect descriptor table is outside guest memory";
constexpr const char* kWritableInTx = "device-writable descriptor in a TX (device-readable) chain";
constexpr const char* kReadableInRx = "device-readable descriptor in an RX (device-writable) chain";

detail::ChainWalk violation(const char* reason) noexcept {
    detail::ChainWalk w;
    w.violation = reason;
    return w;
}

// Whether every byte of guest-physical [gpa, gpa + len) is mapped. Only used
// to tell "outside guest memory" from "too many pieces" once gpa_to_pieces
// has failed, so it may be slow.
[[gnu::cold]] bool range_mapped(const protocol::MemoryTable& mem, uint64_t gpa, uint32_t len) noexcept {
    uint64_t end = 0;
    if (__builtin_add_overflow(gpa, uint64_t{len}, &end)) {
        return false;
    }
    uint64_t cur = gpa;
    for (const protocol::HostRegion& r : mem.regions()) {  // sorted by gpa, disjoint
        if (r.gpa > cur) {
            return false;  // a gap before the next region
        }
        if (cur - r.gpa < r.size) {
            cur = r.gpa + r.size;
            if (cur >= end) {
                return true;
            }
        }
    }
    return false;
}

// Copies descriptor `gpa` of an indirect table. The table is anywhere in guest
// memory with no alignment requirement (rust-vmm accepts unaligned tables
// too), so one descriptor may straddle regions.
bool read_table_desc(const protocol::MemoryTable& mem, uint64_t gpa, VringDesc& out) noexcept {
    Piece parts[sizeof(VringDesc)];
    const size_t n = mem.gpa_to_pieces(gpa, sizeof(VringDesc), parts, std::size(parts));
    if (n == 0) {
        return false;
    }
    uint8_t bytes[sizeof(VringDesc)];
    size_t off = 0;
    for (size_t i = 0; i < n; ++i) {
        std::memcpy(bytes + off, parts[i].host, parts[i].len);
        off += parts[i].len;
    }
    detail::compiler_barrier();  // the copy is final; see guest_access.hpp
    std::memcpy(&out, bytes, sizeof(out));
    return true;
}

FetchStatus fetch_chain(const SplitRing& ring, QueueState& state, Chain& chain, bool device_writable) noexcept {
    const detail::Head head = detail::peek_head(ring, state);
    if (head.status != detail::HeadStatus::kHead) {
        return head.status == detail::HeadStatus::kEmpty ? FetchStatus::kEmpty : FetchStatus::kBroken;
    }
    const detail::ChainWalk w =
        detail::walk_chain(ring, head.index, device_writable, chain.pieces.data(), kMaxChainPieces);
    if (w.violation != nullptr || w.out_of_pieces) {
        // With the whole piece array available, "out of pieces" is the
        // guest's doing too.
        mark_broken(state, w.violation != nullptr ? w.violation : detail::kTooManyPiecesReason);
        return FetchStatus::kBroken;
    }
    chain.head = head.index;
    chain.count = w.count;
    chain.len = w.len;
    ++state.last_avail_idx;
    ++state.chains;
    return FetchStatus::kChain;
}

} // namespace

namespace detail {

Head peek_head(const SplitRing& ring, QueueState& state) noexcept {
    if (state.broken) {
        return {HeadStatus::kBroken, 0};
    }
    if (state.last_avail_idx == state.avail_idx_shadow) {
        // Acquire: pairs with the driver's write barrier between filling
        // descriptors / avail ring entries and publishing avail.idx (Linux:
        // virtio_wmb() before the avail->idx store in virtqueue_add_split).
        // Every ring entry and descriptor read below comes after this load.
        const uint16_t idx = load_acquire(ring.avail_idx);
        const uint16_t pending = static_cast<uint16_t>(idx - state.last_avail_idx);
        // More than `size` outstanding entries is impossible for an honest
        // driver; believing it would replay stale entries (rust-vmm:
        // "prevents DoS").
        if (pending > ring.size) {
            mark_broken(state, kAvailIdxJump);
            return {HeadStatus::kBroken, 0};
        }
        state.avail_idx_shadow = idx;
        if (pending == 0) {
            return {HeadStatus::kEmpty, 0};
        }
    }
    // Relaxed: ordered by the acquire load of avail.idx that covered this entry.
    const uint16_t head = load_relaxed(&ring.avail_ring[state.last_avail_idx & ring.mask]);
    if (head >= ring.size) {
        mark_broken(state, kHeadOutOfRange);
        return {HeadStatus::kBroken, 0};
    }
    return {HeadStatus::kHead, head};
}

ChainWalk walk_chain(const SplitRing& ring, uint16_t head, bool device_writable, Piece* pieces,
                     size_t max_pieces) noexcept {
    const protocol::MemoryTable& mem = *ring.mem;
    ChainWalk w;
    uint64_t total = 0;     // summed in 64 bits: unchecked 32-bit sums were a DPDK CVE
    uint32_t visited = 0;   // non-indirect descriptors seen
    uint32_t idx = head;    // index into the current table
    bool in_table = false;  // following an indirect table
    uint64_t table_gpa = 0;
    uint32_t table_entries = 0;

    for (;;) {
        // Copy the descriptor once; only the copy is checked and used.
        VringDesc d;
        if (!in_table) {
            // idx < ring.size: the head was checked by peek_head(), every
            // next index below.
            copy_from_guest(&d, reinterpret_cast<const uint8_t*>(&ring.desc[idx]), sizeof(d));
        } else if (!read_table_desc(mem, table_gpa + uint64_t{sizeof(VringDesc)} * idx, d)) {
            return violation(kIndirectOutside);
        }

        if ((d.flags & kDescFIndirect) != 0) {
            // VIRTIO 1.2 §2.7.5.3.1: only if negotiated, one table per
            // descriptor (no nesting), never together with NEXT. The WRITE
            // flag of this descriptor is ignored (§2.7.5.3.2). It may end a
            // direct chain (§2.7.5.3.2: "zero or more normal chained
            // descriptors followed by a single descriptor with INDIRECT").
            if (!ring.indirect) {
                return violation(kIndirectNotNegotiated);
            }
            if (in_table) {
                return violation(kIndirectNested);
            }
            if ((d.flags & kDescFNext) != 0) {
                return violation(kIndirectWithNext);
            }
            if (d.len == 0 || d.len % sizeof(VringDesc) != 0) {
                return violation(kIndirectBadLength);
            }
            uint64_t table_end = 0;
            if (__builtin_add_overflow(d.addr, uint64_t{d.len}, &table_end)) {
                return violation(kIndirectOutside);
            }
            in_table = true;
            table_gpa = d.addr;
            table_entries = d.len / sizeof(VringDesc);
            idx = 0;
            continue;
        }

        // "A driver MUST NOT create a descriptor chain longer than the Queue
        // Size of the device" (§2.7.5.3.1); this also ends any loop, in the
        // ring or in an indirect table.
        if (++visited > ring.size) {
            return violation(kChainLoop);
        }
        const bool writable = (d.flags & kDescFWrite) != 0;
        if (writable != device_writable) {
            return violation(device_writable ? kReadableInRx : kWritableInTx);
        }
        if (d.len != 0) {  // a zero-length descriptor carries nothing: skip it
            total += d.len;
            if (total > kMaxChainBytes) {
                return violation(kChainTooLong);
            }
            const size_t room = max_pieces - w.count;
            const size_t n = mem.gpa_to_pieces(d.addr, d.len, pieces + w.count, room);
            if (n == 0) {
                if (!range_mapped(mem, d.addr, d.len)) {
                    return violation(kBufferOutside);
                }
                ChainWalk full;
                full.out_of_pieces = true;
                return full;
            }
            w.count = static_cast<uint16_t>(w.count + n);  // <= max_pieces <= kMaxChainPieces
        }
        if ((d.flags & kDescFNext) == 0) {
            break;
        }
        idx = d.next;
        if (idx >= (in_table ? table_entries : ring.size)) {
            return violation(kNextOutOfRange);
        }
    }
    w.len = static_cast<uint32_t>(total);  // <= kMaxChainBytes
    return w;
}

} // namespace detail

FetchStatus fetch_tx_chain(const SplitRing& ring, QueueState& state, Chain& chain) noexcept {
    return fetch_chain(ring, state, chain, /*device_writable=*/false);
}

FetchStatus fetch_rx_chain(const SplitRing& ring, QueueState& state, Chain& chain) noexcept {
    return fetch_chain(ring, state, chain, /*device_writable=*/true);
}

void push_used(const SplitRing& ring, QueueState& state, uint16_t id, uint32_t len) noexcept {
    if (state.broken) {
        return;
    }
    VringUsedElem* elem = &ring.used_ring[state.used_idx & ring.mask];
    // Relaxed: published by the release store of used.idx in flush_used().
    detail::store_relaxed(&elem->id, id);
    detail::store_relaxed(&elem->len, len);
    ++state.used_idx;
}

void flush_used(const SplitRing& ring, QueueState& state) noexcept {
    if (state.broken || state.used_idx == state.used_idx_published) {
        return;
    }
    // Release: the used elements, and for RX the bytes written into the
    // buffers, are visible before the new used.idx. Pairs with the driver's
    // read barrier after it reads used.idx and before it reads the elements
    // and buffers (Linux: virtio_rmb() in virtqueue_get_buf_ctx_split).
    detail::store_release(ring.used_idx, state.used_idx);
    const uint16_t added = static_cast<uint16_t>(state.used_idx - state.used_idx_published);
    state.unsignalled = std::min<uint32_t>(state.unsignalled + added, 0x10000);
    state.used_idx_published = state.used_idx;
}

bool needs_call(const SplitRing& ring, QueueState& state) noexcept {
    if (state.broken || state.unsignalled == 0) {
        return false;
    }
    // Full fence between our used.idx store (flush_used) and reading
    // used_event / avail.flags. Pairs with the driver's full barrier between
    // writing used_event (or clearing NO_INTERRUPT) and re-reading used.idx
    // (Linux: virtio_mb() in virtqueue_poll after
    // virtqueue_enable_cb_prepare): either the driver sees our new used.idx,
    // or we see its new used_event. Without it both could read stale values
    // and the driver would sleep on a used ring that has entries.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    const uint16_t old_idx = state.used_idx_signalled;
    const uint16_t new_idx = state.used_idx_published;
    const bool wrapped = state.unsignalled >= 0x10000;
    state.used_idx_signalled = new_idx;
    state.unsignalled = 0;
    if (ring.event_idx) {
        // §2.7.7.2: with EVENT_IDX the device ignores avail.flags.
        return wrapped || vring_need_event(detail::load_relaxed(ring.used_event), new_idx, old_idx);
    }
    return (detail::load_relaxed(ring.avail_flags) & kAvailFNoInterrupt) == 0;
}

void enable_notifications(const SplitRing& ring, const QueueState& state, bool enable) noexcept {
    if (state.broken) {
        return;
    }
    if (ring.event_idx) {
        // §2.7.10: the driver kicks when avail.idx passes avail_event. Leaving
        // it behind suppresses kicks (the flag is ignored with EVENT_IDX).
        if (enable) {
            detail::store_relaxed(ring.avail_event, state.last_avail_idx);
        }
    } else {
        detail::store_relaxed(ring.used_flags, enable ? le16{0} : kUsedFNoNotify);
    }
    if (enable) {
        // Full fence between enabling and the caller's has_pending() re-read
        // of avail.idx. Pairs with the driver's full barrier between
        // publishing avail.idx and reading used.flags / avail_event to decide
        // whether to kick (Linux: virtio_mb() in virtqueue_kick_prepare_split):
        // either it sees notifications enabled and kicks, or we see its
        // avail.idx. This is the re-check that loses no kick.
        std::atomic_thread_fence(std::memory_order_seq_cst);
    }
}

bool has_pending(const SplitRing& ring, const QueueState& state) noexcept {
    if (state.broken) {
        return false;
    }
    // Acquire, like peek_head(): a true answer leads to reading the entries.
    return detail::load_acquire(ring.avail_idx) != state.last_avail_idx;
}

void mark_broken(QueueState& state, const char* reason) noexcept {
    if (!state.broken) {
        state.broken = true;
        state.broken_reason = reason;
    }
}

} // namespace vhostd::virtio
