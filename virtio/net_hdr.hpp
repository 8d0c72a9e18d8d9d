#pragma once
// The virtio-net header that precedes every packet on a virtio-net queue
// (VIRTIO 1.2 §5.1.6), and helpers to step over it in a chain's pieces.
//
// On TX the header may be split over any number of descriptors: a device
// must not depend on how the driver lays a message out over descriptors
// (VIRTIO 1.2 §2.6.4, "Message Framing"). Nothing here assumes the header
// sits in the first piece.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "virtio/split_ring.hpp"

namespace vhostd::virtio {

// struct virtio_net_hdr without num_buffers: the legacy header when
// MRG_RXBUF is not negotiated (10 bytes).
struct VirtioNetHdr {
    uint8_t flags;     // kNetHdrF*
    uint8_t gso_type;  // kNetHdrGso*
    le16 hdr_len;
    le16 gso_size;
    le16 csum_start;
    le16 csum_offset;
};
static_assert(sizeof(VirtioNetHdr) == kNetHdrLen);
static_assert(offsetof(VirtioNetHdr, gso_type) == 1);
static_assert(offsetof(VirtioNetHdr, hdr_len) == 2);
static_assert(offsetof(VirtioNetHdr, gso_size) == 4);
static_assert(offsetof(VirtioNetHdr, csum_start) == 6);
static_assert(offsetof(VirtioNetHdr, csum_offset) == 8);

// struct virtio_net_hdr with num_buffers: the header with VERSION_1 (also
// called virtio_net_hdr_v1) or MRG_RXBUF (virtio_net_hdr_mrg_rxbuf); 12 bytes.
// vhostd negotiates no HASH_REPORT, so the 20-byte variant never occurs.
struct VirtioNetHdrMrg {
    VirtioNetHdr hdr;
    le16 num_buffers;  // RX: buffers (chains) the packet spans; TX: 0, ignored
};
static_assert(sizeof(VirtioNetHdrMrg) == kNetHdrMrgLen);
static_assert(offsetof(VirtioNetHdrMrg, num_buffers) == 10);

inline constexpr uint8_t kNetHdrFNeedsCsum = 1;
inline constexpr uint8_t kNetHdrFDataValid = 2;
inline constexpr uint8_t kNetHdrFRscInfo = 4;
inline constexpr uint8_t kNetHdrGsoNone = 0;
inline constexpr uint8_t kNetHdrGsoTcpv4 = 1;
inline constexpr uint8_t kNetHdrGsoUdp = 3;
inline constexpr uint8_t kNetHdrGsoTcpv6 = 4;
inline constexpr uint8_t kNetHdrGsoUdpL4 = 5;
inline constexpr uint8_t kNetHdrGsoEcn = 0x80;

// A frame as a run of bytes spread over host pieces: `len` bytes starting
// `offset` bytes into pieces[0]. Used for the payload of a TX chain after its
// header and as the source of deliver_frame(). The pieces point into guest
// memory (or a DPDK mbuf); the view does not own them.
struct FrameView {
    std::span<const Piece> pieces;
    uint32_t offset = 0;  // < pieces[0].len when len > 0
    uint32_t len = 0;
};

// The payload that follows a `hdr_len`-byte virtio-net header in `pieces`,
// which hold `total_len` bytes (a Chain's view() and len). nullopt when the
// chain is shorter than the header: the driver broke §5.1.6.2 ("the header
// and packet are added as one output descriptor"); the caller drops the
// chain (push_used(head, 0)) and counts it — DPDK does the same.
[[nodiscard]] std::optional<FrameView> skip_net_header(std::span<const Piece> pieces, uint32_t total_len,
                                                       uint32_t hdr_len) noexcept;

// Copies the first `hdr_len` (10 or 12) bytes of `pieces` into a header;
// num_buffers is 0 when hdr_len is 10. nullopt when the pieces hold fewer
// bytes or hdr_len is neither 10 nor 12. The copy is taken once: its fields
// are guest-controlled values to check before use, but they cannot change.
[[nodiscard]] std::optional<VirtioNetHdrMrg> read_net_header(std::span<const Piece> pieces,
                                                             uint32_t hdr_len) noexcept;

// Copies up to `dst_len` bytes of `frame` to `dst` (e.g. into a DPDK mbuf);
// returns the number of bytes copied, min(frame.len, dst_len).
[[nodiscard]] uint32_t copy_frame(const FrameView& frame, uint8_t* dst, uint32_t dst_len) noexcept;

} // namespace vhostd::virtio
