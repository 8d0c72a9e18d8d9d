#include "virtio/split_ring.hpp"

#include <charconv>
#include <string>

#include "protocol/wire.hpp"
#include "virtio/guest_access.hpp"

namespace vhostd::virtio {

namespace {

std::string hex(uint64_t v) {
    char buf[2 + 16];
    buf[0] = '0';
    buf[1] = 'x';
    auto [end, ec] = std::to_chars(buf + 2, buf + sizeof(buf), v, 16);
    (void)ec;  // 16 hex digits always fit
    return std::string(buf, end);
}

// One ring area: aligned, and all `len` bytes inside one region (uva_to_host
// checks the region bound and the overflow of uva + len).
Result<uint8_t*> map_area(const protocol::MemoryTable& mem, const char* field, uint64_t uva, uint64_t len,
                          uint64_t align) {
    if ((uva & (align - 1)) != 0) {
        return make_error(std::string(field) + " " + hex(uva) + " is not " + std::to_string(align) +
                          "-byte aligned");
    }
    uint8_t* host = mem.uva_to_host(uva, len);
    if (host == nullptr) {
        return make_error(std::string(field) + " " + hex(uva) + " + " + std::to_string(len) +
                          " bytes is not inside one guest memory region");
    }
    return host;
}

} // namespace

Result<SplitRing> SplitRing::create(const protocol::MemoryTable& mem, uint64_t desc_uva, uint64_t avail_uva,
                                    uint64_t used_uva, uint32_t size, uint64_t features) {
    // VIRTIO 1.2 §2.7: "Queue Size ... is a power of 2", at most 32768.
    if (size == 0 || size > protocol::kMaxQueueSize || (size & (size - 1)) != 0) {
        return make_error("vring size " + std::to_string(size) + " is not a power of two in 1.." +
                          std::to_string(protocol::kMaxQueueSize));
    }
    auto desc = map_area(mem, "desc_user_addr", desc_uva, desc_table_bytes(size), kDescAlign);
    if (!desc) {
        return std::move(desc).error();
    }
    auto avail = map_area(mem, "avail_user_addr", avail_uva, avail_ring_bytes(size), kAvailAlign);
    if (!avail) {
        return std::move(avail).error();
    }
    auto used = map_area(mem, "used_user_addr", used_uva, used_ring_bytes(size), kUsedAlign);
    if (!used) {
        return std::move(used).error();
    }

    // The areas were checked to be aligned in the front-end's address space;
    // a region's host mapping keeps the offset within a page, so they are
    // aligned in ours too. Check anyway: the atomic accesses depend on it.
    const auto host_aligned = [](const uint8_t* p, uint64_t align) {
        return (reinterpret_cast<uintptr_t>(p) & (align - 1)) == 0;
    };
    if (!host_aligned(*desc, kDescAlign) || !host_aligned(*avail, kAvailAlign) || !host_aligned(*used, kUsedAlign)) {
        return make_error("vring areas are aligned as front-end addresses but not in our mapping "
                          "(region userspace_addr and mmap_offset disagree in their low bits)");
    }

    SplitRing ring;
    ring.desc = reinterpret_cast<VringDesc*>(*desc);
    ring.avail_flags = reinterpret_cast<le16*>(*avail);
    ring.avail_idx = reinterpret_cast<le16*>(*avail + 2);
    ring.avail_ring = reinterpret_cast<le16*>(*avail + 4);
    ring.used_event = ring.avail_ring + size;
    ring.used_flags = reinterpret_cast<le16*>(*used);
    ring.used_idx = reinterpret_cast<le16*>(*used + 2);
    ring.used_ring = reinterpret_cast<VringUsedElem*>(*used + 4);
    ring.avail_event = reinterpret_cast<le16*>(ring.used_ring + size);
    ring.mem = &mem;
    ring.size = static_cast<uint16_t>(size);
    ring.mask = static_cast<uint16_t>(size - 1);
    ring.event_idx = (features & protocol::bit(protocol::vf::kRingEventIdx)) != 0;
    ring.indirect = (features & protocol::bit(protocol::vf::kRingIndirectDesc)) != 0;
    ring.mrg_rxbuf = (features & protocol::bit(protocol::vf::kNetMrgRxbuf)) != 0;
    const bool version_1 = (features & protocol::bit(protocol::vf::kVersion1)) != 0;
    ring.hdr_len = (version_1 || ring.mrg_rxbuf) ? kNetHdrMrgLen : kNetHdrLen;
    return ring;
}

QueueState QueueState::start(const SplitRing& ring, uint16_t last_avail_idx) noexcept {
    QueueState st;
    st.last_avail_idx = last_avail_idx;
    st.avail_idx_shadow = last_avail_idx;
    const uint16_t used = detail::load_relaxed(ring.used_idx);
    st.used_idx = used;
    st.used_idx_published = used;
    st.used_idx_signalled = used;
    return st;
}

} // namespace vhostd::virtio
