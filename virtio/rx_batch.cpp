#include "virtio/rx_batch.hpp"

#include <cpuid.h>
#include <emmintrin.h>

#include <algorithm>
#include <cstring>

namespace vhostd::virtio {

namespace {

// PREFETCHW fetches a line ready to be written (no second trip to take it
// from the other CPU's cache). AMD has it on every 64-bit CPU, Intel since
// Broadwell; CPUID 0x80000001 ECX bit 8 says so. Elsewhere, a read prefetch.
bool cpu_has_prefetchw() noexcept {
    unsigned eax = 0;
    unsigned ebx = 0;
    unsigned ecx = 0;
    unsigned edx = 0;
    return __get_cpuid(0x80000001, &eax, &ebx, &ecx, &edx) != 0 && (ecx & (1u << 8)) != 0;
}
const bool kHavePrefetchW = cpu_has_prefetchw();

// The first lines of the next pending frame, its source for reading and its
// RX buffer for writing, fetched while the current one is copied; the CPU's
// stream prefetchers take over from there for longer frames.
constexpr uint32_t kPrefetchBytes = 2048;

void prefetch_frame(const uint8_t* src, uint8_t* dst, uint32_t len, uint32_t hdr_len, bool streaming) noexcept {
    len = std::min(len, kPrefetchBytes);
    for (uint32_t off = 0; off < len; off += detail::kCacheLine) {
        __builtin_prefetch(src + off, /*rw=*/0);
    }
    uint8_t* const frame_dst = dst + hdr_len;
    uint32_t first = 0;
    if (detail::line_aligned(frame_dst)) {
        __builtin_prefetch(dst, /*rw=*/0);  // a line of its own, maybe left unwritten (write_net_header)
        if (streaming) {
            first = detail::kCacheLine;  // written without being fetched
        }
    }
    for (uint32_t off = first; off < len; off += detail::kCacheLine) {
        if (kHavePrefetchW) {
            asm volatile("prefetchw %0" : : "m"(*(frame_dst + off)));
        } else {
            __builtin_prefetch(frame_dst + off, /*rw=*/1);
        }
    }
}

// Copies one 64-byte line with streaming stores: the line is written to
// memory as a whole, without being read into this CPU's cache first.
void stream_line(uint8_t* dst, const uint8_t* src) noexcept {
    const auto* s = reinterpret_cast<const __m128i*>(src);
    auto* d = reinterpret_cast<__m128i*>(dst);
    const __m128i a = _mm_loadu_si128(s);
    const __m128i b = _mm_loadu_si128(s + 1);
    const __m128i c = _mm_loadu_si128(s + 2);
    const __m128i e = _mm_loadu_si128(s + 3);
    _mm_stream_si128(d, a);
    _mm_stream_si128(d + 1, b);
    _mm_stream_si128(d + 2, c);
    _mm_stream_si128(d + 3, e);
}

} // namespace

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
    pending_[count_++] =
        Pending{r.pieces[0].host, frame.pieces[0].host + frame.offset, &ring, &state, frame.len, r.chains[0].head};
    return status;
}

void RxBatch::commit() noexcept {
    // The guest-memory stores first, as one run (see the header), then the
    // used elements, which publish nothing until flush_used().
    uint64_t streamed = 0;
    for (size_t i = 0; i < count_; ++i) {
        const Pending& p = pending_[i];
        if (i + 1 < count_) {
            const Pending& next = pending_[i + 1];
            prefetch_frame(next.src, next.dst, next.len, next.ring->hdr_len, streaming_);
        }
        if (p.state->broken) {
            continue;  // a later frame broke the ring: write nothing more into it
        }
        const uint32_t hdr_len = p.ring->hdr_len;
        detail::write_net_header(p.dst, hdr_len, 1);
        uint8_t* const frame_dst = p.dst + hdr_len;
        if (streaming_ && p.len >= detail::kCacheLine && detail::line_aligned(frame_dst)) {
            stream_line(frame_dst, p.src);
            std::memcpy(frame_dst + detail::kCacheLine, p.src + detail::kCacheLine, p.len - detail::kCacheLine);
            ++streamed;
        } else {
            std::memcpy(frame_dst, p.src, p.len);
        }
    }
    if (streamed != 0) {
        // Streaming stores are not ordered with later stores: fence them
        // before the used elements, and so before the release store of
        // used.idx (flush_used) that hands the buffers to the guest.
        _mm_sfence();
    }
    committed_ += count_;
    streamed_ += streamed;
    for (size_t i = 0; i < count_; ++i) {
        const Pending& p = pending_[i];
        push_used(*p.ring, *p.state, p.head, p.ring->hdr_len + p.len);  // no-op on a broken ring
    }
    count_ = 0;
}

} // namespace vhostd::virtio
