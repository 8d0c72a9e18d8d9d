#pragma once
// The boundary between a vhost-user session (control plane) and the device
// that runs its rings (the data plane's vhost-user port).
//
// The session owns every fd and the memory table. Whenever something that the
// data path can see changes, it describes the complete new state as a
// DeviceView and calls apply(). apply() returns only when the data path can no
// longer see anything that is not in the new view (snapshot swap plus a
// quiescent point), so right after it the session may close old fds and drop
// the old memory table. DESIGN.md, "Hand-off control -> PMD".

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "protocol/memory_table.hpp"

namespace vhostd::protocol {

// A ring that the data path should run: started (kick seen), with its size,
// addresses and memory all set and checked. A disabled ring still runs
// (vhost-user.rst "Ring states"): no new RX packets, TX drained and discarded.
struct LiveRing {
    uint32_t index = 0;     // vring index: even = RX (device writes), odd = TX
    uint32_t size = 0;      // power of two, 1..32768
    uint64_t desc_uva = 0;  // front-end virtual addresses (SET_VRING_ADDR)
    uint64_t avail_uva = 0;
    uint64_t used_uva = 0;
    uint16_t base = 0;      // SET_VRING_BASE: next avail index to process
    int kick_fd = -1;       // borrowed from the session; -1 when polled
    int call_fd = -1;       // borrowed; -1 when the front-end polls the used ring
    uint64_t generation = 0;// bumped on every (re)start, so a device can tell a restart
    bool enabled = true;    // false: RX gets nothing, TX is drained and discarded
};

struct DeviceView {
    uint64_t features = 0;                        // negotiated virtio features
    std::shared_ptr<const MemoryTable> memory;    // never null
    std::vector<LiveRing> rings;                  // sorted by index
    std::optional<uint32_t> mtu;                  // NET_SET_MTU
};

class VhostDevice {
public:
    virtual ~VhostDevice() = default;
    // Make `view` what the data path runs; see the file comment.
    virtual void apply(const DeviceView& view) = 0;
    // After apply() removed ring `index`: the next avail index the data path
    // had reached on it (what GET_VRING_BASE returns). nullopt if it never ran.
    virtual std::optional<uint16_t> last_avail(uint32_t index) = 0;
    // SEND_RARP: announce `mac` on the switch on behalf of a migrated guest.
    virtual void announce(const std::array<uint8_t, 6>& mac) = 0;
};

} // namespace vhostd::protocol
