#pragma once
// Copies between guest buffers and mbufs, for frames with a DPDK port on one
// side (DESIGN.md "Data flow of one packet", step 4).
//
// A guest buffer is the list of pieces its descriptor chain translates to
// (MemoryTable::gpa_to_pieces, one or more pieces per descriptor). Pieces can
// have any length, including 0; a run of bytes is contiguous only within one
// piece and within one mbuf segment, so both directions memcpy run by run.
//
// Per-packet path: no allocation other than mbufs, no throw, no write outside
// the destination pieces or the mbufs' data rooms. The guest may change its
// buffer while we copy; that can garble its own frame, nothing else.

#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <cstddef>
#include <cstdint>

#include "protocol/memory_table.hpp"

namespace vhostd::dataplane {

using Piece = protocol::MemoryTable::Piece;

// Builds an mbuf from `len` bytes of the guest buffer starting `skip` bytes in
// (skip is the virtio-net header, which does not go on the wire). Frames that
// do not fit one mbuf's tailroom (jumbo frames) become a chain of segments,
// each filled to its tailroom. Returns nullptr, with nothing allocated, when
// the pool runs dry or when the pieces hold fewer than skip + len bytes.
// len may be 0 (an empty mbuf); the caller decides which lengths are frames.
[[nodiscard]] rte_mbuf* mbuf_from_pieces(rte_mempool* pool, const Piece* pieces, size_t n,
                                         uint32_t skip, uint32_t len) noexcept;

// Copies the whole frame in mbuf chain `m` (pkt_len bytes) into the
// destination pieces starting `dst_skip` bytes in (room the caller keeps for
// the virtio-net header). Returns the number of frame bytes copied, or 0 with
// nothing written when the pieces hold fewer than dst_skip + pkt_len bytes.
// Bytes before dst_skip and after the frame are left as they were.
[[nodiscard]] uint32_t mbuf_to_pieces(const rte_mbuf* m, const Piece* dst, size_t n,
                                      uint32_t dst_skip) noexcept;

} // namespace vhostd::dataplane
