#pragma once
// The one place that says which features vhostd offers to a front-end.
// Offer only what the data path really implements (issue: "keep the offered
// set in one place"); docs/protocol.md mirrors this file.

#include <cstdint>

#include "protocol/wire.hpp"

namespace vhostd::protocol {

// Virtio feature bits (GET_FEATURES). The split-ring data path implements
// chains, indirect descriptors, EVENT_IDX, the 12-byte header and mergeable
// RX buffers. VIRTIO_NET_F_MTU is offered so a front-end configured with a
// host MTU can pass it (NET_SET_MTU); GUEST_ANNOUNCE pairs with SEND_RARP.
// IN_ORDER (VIRTIO 1.2 §2.7.9): every queue is consumed and completed in the
// order its buffers were made available — one PMD polls a TX ring, and RX
// deliveries reserve chains strictly in avail order (under the ring's lock
// when PMDs share it) — so drivers may use their cheaper in-order paths.
inline constexpr uint64_t kOfferedFeatures =
    bit(vf::kVersion1) | bit(vf::kProtocolFeatures) | bit(vf::kNetMrgRxbuf) |
    bit(vf::kRingIndirectDesc) | bit(vf::kRingEventIdx) | bit(vf::kAnyLayout) |
    bit(vf::kNetMtu) | bit(vf::kNetGuestAnnounce) | bit(vf::kInOrder);

// vhost-user protocol feature bits (GET_PROTOCOL_FEATURES).
inline constexpr uint64_t kOfferedProtocolFeatures =
    bit(pf::kMq) | bit(pf::kReplyAck) | bit(pf::kMtu) | bit(pf::kRarp) |
    bit(pf::kConfigureMemSlots) | bit(pf::kStatus);

} // namespace vhostd::protocol
