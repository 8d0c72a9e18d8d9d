#pragma once
// A queue under test: guest memory, the driver's side (FakeSplitDriver) and
// the device's side (SplitRing + QueueState) over the same bytes.

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "protocol/memory_table.hpp"
#include "protocol/wire.hpp"
#include "tests/fakes/fake_split_driver.hpp"
#include "tests/fakes/guest_memory.hpp"
#include "virtio/split_queue.hpp"
#include "virtio/split_ring.hpp"

namespace vhostd::virtio::testing {

using protocol::bit;
namespace vf = protocol::vf;

inline constexpr uint64_t kV1 = bit(vf::kVersion1);
inline constexpr uint64_t kIndirect = bit(vf::kRingIndirectDesc);
inline constexpr uint64_t kEventIdx = bit(vf::kRingEventIdx);
inline constexpr uint64_t kMrg = bit(vf::kNetMrgRxbuf);

struct Rig {
    explicit Rig(uint64_t features = kV1, uint16_t size = 256, uint64_t mem_size = 1 << 20)
        : mem(mem_size), table(mem.table()), drv(mem, size), ring(drv.ring(*table, features)),
          st(QueueState::start(ring, 0)) {}

    // The host pointer the device should see for guest-physical `gpa`.
    [[nodiscard]] uint8_t* host(uint64_t gpa, uint64_t len = 1) const { return table->gpa_to_host(gpa, len); }

    fakes::GuestMemory mem;
    std::shared_ptr<const protocol::MemoryTable> table;
    fakes::FakeSplitDriver drv;
    SplitRing ring;
    QueueState st;
};

// `n` bytes of a recognisable pattern.
inline std::vector<uint8_t> pattern(size_t n, uint8_t seed = 1) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; ++i) {
        v[i] = static_cast<uint8_t>(seed + i * 7 + (i >> 8));
    }
    return v;
}

// A TX message: a virtio-net header of `hdr_len` bytes (first byte `flags`,
// the rest zero) followed by `frame`.
inline std::vector<uint8_t> with_header(const std::vector<uint8_t>& frame, uint32_t hdr_len = 12,
                                        uint8_t flags = 0) {
    std::vector<uint8_t> v(hdr_len, 0);
    if (hdr_len > 0) {
        v[0] = flags;
    }
    v.insert(v.end(), frame.begin(), frame.end());
    return v;
}

// The bytes the pieces hold, concatenated.
inline std::vector<uint8_t> gather(std::span<const Piece> pieces) {
    std::vector<uint8_t> out;
    for (const Piece& p : pieces) {
        out.insert(out.end(), p.host, p.host + p.len);
    }
    return out;
}

} // namespace vhostd::virtio::testing
