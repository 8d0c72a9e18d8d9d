#include "dataplane/mbuf_copy.hpp"

#include <algorithm>
#include <cstring>

namespace vhostd::dataplane {

namespace {

// Total bytes in the pieces, in 64 bits so no list of 32-bit lengths can wrap.
uint64_t pieces_bytes(const Piece* pieces, size_t n) noexcept {
    uint64_t total = 0;
    for (size_t i = 0; i < n; ++i) {
        total += pieces[i].len;
    }
    return total;
}

// A position in a list of pieces: piece index and offset inside it. Callers
// check beforehand that every byte they walk over lies inside the pieces.
struct Cursor {
    const Piece* pieces;
    size_t n;
    size_t index = 0;
    uint32_t offset = 0;

    // Moves past `bytes` bytes, and past any exhausted (or empty) piece, so
    // that afterwards the cursor sits on a byte if one is left.
    void advance(uint64_t bytes) noexcept {
        while (index < n) {
            const uint32_t left = pieces[index].len - offset;
            if (bytes < left) {
                offset += static_cast<uint32_t>(bytes);
                return;
            }
            bytes -= left;
            ++index;
            offset = 0;
            if (bytes == 0) {
                // Skip empty pieces so the next run starts on a real byte.
                while (index < n && pieces[index].len == 0) {
                    ++index;
                }
                return;
            }
        }
    }
    [[nodiscard]] uint8_t* ptr() const noexcept { return pieces[index].host + offset; }
    [[nodiscard]] uint32_t run() const noexcept { return pieces[index].len - offset; }
};

} // namespace

rte_mbuf* mbuf_from_pieces(rte_mempool* pool, const Piece* pieces, size_t n, uint32_t skip,
                           uint32_t len) noexcept {
    if (pieces_bytes(pieces, n) < uint64_t{skip} + len) {
        return nullptr;
    }
    rte_mbuf* head = rte_pktmbuf_alloc(pool);
    if (head == nullptr) {
        return nullptr;
    }
    Cursor src{pieces, n};
    src.advance(skip);

    rte_mbuf* seg = head;
    uint32_t left = len;
    for (;;) {
        // Fill this segment up to its tailroom.
        const uint32_t room = rte_pktmbuf_tailroom(seg);
        const uint32_t want = std::min(room, left);
        uint8_t* out = rte_pktmbuf_mtod(seg, uint8_t*);
        uint32_t done = 0;
        while (done < want) {
            const uint32_t chunk = std::min(src.run(), want - done);
            std::memcpy(out + done, src.ptr(), chunk);
            done += chunk;
            src.advance(chunk);
        }
        seg->data_len = static_cast<uint16_t>(want);
        head->pkt_len += want;
        left -= want;
        if (left == 0) {
            return head;
        }
        if (room == 0 || head->nb_segs == UINT16_MAX) {
            // A pool whose mbufs have no tailroom can never hold the frame.
            rte_pktmbuf_free(head);
            return nullptr;
        }
        rte_mbuf* next = rte_pktmbuf_alloc(pool);
        if (next == nullptr) {
            rte_pktmbuf_free(head); // frees every segment chained so far
            return nullptr;
        }
        seg->next = next;
        seg = next;
        ++head->nb_segs;
    }
}

uint32_t mbuf_to_pieces(const rte_mbuf* m, const Piece* dst, size_t n,
                        uint32_t dst_skip) noexcept {
    const uint32_t len = m->pkt_len;
    const uint64_t capacity = pieces_bytes(dst, n);
    if (capacity < uint64_t{dst_skip} + len) {
        return 0;
    }
    Cursor out{dst, n};
    out.advance(dst_skip);

    // Copy pkt_len bytes segment by segment. A chain whose data_len sum does
    // not match pkt_len is cut at whichever ends first; the capacity check
    // above bounds every write by pkt_len.
    uint32_t copied = 0;
    for (const rte_mbuf* seg = m; seg != nullptr && copied < len; seg = seg->next) {
        const uint8_t* in = rte_pktmbuf_mtod(seg, const uint8_t*);
        const uint32_t seg_len = std::min<uint32_t>(seg->data_len, len - copied);
        uint32_t done = 0;
        while (done < seg_len) {
            const uint32_t chunk = std::min(out.run(), seg_len - done);
            std::memcpy(out.ptr(), in + done, chunk);
            done += chunk;
            out.advance(chunk);
        }
        copied += seg_len;
    }
    return copied;
}

} // namespace vhostd::dataplane
