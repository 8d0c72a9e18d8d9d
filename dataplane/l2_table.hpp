#pragma once
// MAC learning table for `switch.mode: l2`. Written and read by the PMD
// threads on the per-packet path (no locks, no allocation), flushed and
// listed by the control thread.
//
// Open addressing over a fixed array; every entry is one 64-bit atomic word
// holding MAC (48 bits) and port id + 1 (16 bits), so a reader never sees a
// MAC paired with another entry's port. A second word holds the time the MAC
// was last seen; entries older than the aging time are treated as absent and
// their slot may be reused. Concurrent learners race benignly: the last
// writer wins, which is what a learning switch means anyway.

#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <vector>

namespace vhostd::dataplane {

using PortId = uint16_t;
using Mac = std::array<uint8_t, 6>;

// The one PortId the table cannot hold: it stores port + 1 in 16 bits (0
// means "no entry"), so 0xffff would wrap to 0 and lose its port. learn()
// ignores it and flush_port() has nothing to do for it.
inline constexpr PortId kUnlearnablePort = 0xffff;

inline bool is_multicast(const uint8_t* mac) noexcept { return (mac[0] & 1) != 0; }
inline bool is_multicast(uint64_t packed_mac) noexcept { return (packed_mac & 1) != 0; }  // see L2Table::pack_mac

class L2Table {
public:
    // `capacity` is rounded up to a power of two.
    L2Table(size_t capacity, uint32_t aging_s);

    // Source MAC seen on `port` at `now_s` (seconds, monotonic). Multicast
    // sources and kUnlearnablePort are ignored. True if the table was written
    // (a new or moved MAC, or a new last-seen second), i.e. if a lookup
    // may now answer differently.
    bool learn(const uint8_t* mac, PortId port, uint32_t now_s) noexcept { return learn(pack_mac(mac), port, now_s); }
    // Port that owns `mac`, if known and not aged out.
    [[nodiscard]] std::optional<PortId> lookup(const uint8_t* mac, uint32_t now_s) const noexcept {
        return lookup(pack_mac(mac), now_s);
    }

    // The same with the MAC as a packed key: its 6 bytes in memory order in
    // bits 0..47 (byte 0, with the group bit, lowest), bits 48..63 zero.
    bool learn(uint64_t mac, PortId port, uint32_t now_s) noexcept;
    [[nodiscard]] std::optional<PortId> lookup(uint64_t mac, uint32_t now_s) const noexcept;
    static uint64_t pack_mac(const uint8_t* mac) noexcept {
        uint64_t v = 0;
        std::memcpy(&v, mac, 6);
        return v;
    }
    // Both addresses of an Ethernet header's first 12 bytes (destination,
    // then source) as keys. Reads them as 8 + 4 bytes, the widths a 12-byte
    // copy is stored with, so a fresh copy is reloaded without a straddling
    // store forward.
    struct EthKeys {
        uint64_t dst;
        uint64_t src;
    };
    static EthKeys pack_eth_addrs(const uint8_t* addrs) noexcept {
        uint64_t first8 = 0;
        uint32_t last4 = 0;
        std::memcpy(&first8, addrs, sizeof(first8));
        std::memcpy(&last4, addrs + 8, sizeof(last4));
        return {first8 & ((uint64_t{1} << 48) - 1), (first8 >> 48) | uint64_t{last4} << 16};
    }

    // Control thread: forget every MAC on `port` (port removed or reset).
    void flush_port(PortId port) noexcept;
    void flush() noexcept;

    struct Entry {
        Mac mac;
        PortId port;
        uint32_t age_s;
    };
    [[nodiscard]] std::vector<Entry> entries(uint32_t now_s) const;
    [[nodiscard]] uint32_t aging_s() const noexcept { return aging_s_; }

    // Monotonic seconds, cheap enough for once per burst (vDSO, no syscall).
    static uint32_t now_s() noexcept;

private:
    static constexpr unsigned kProbe = 16;
    struct alignas(16) Slot {
        std::atomic<uint64_t> key{0};   // mac | (port + 1) << 48; 0 = never used
        std::atomic<uint32_t> seen{0};  // now_s when last learned
    };
    [[nodiscard]] size_t home(uint64_t mac) const noexcept;
    [[nodiscard]] bool expired(uint32_t seen, uint32_t now_s) const noexcept {
        // PMDs read the clock at different times: an entry another PMD
        // learned a second "in our future" is fresh, not 2^32 s old.
        const auto age = static_cast<int32_t>(now_s - seen);
        return age > static_cast<int32_t>(aging_s_);
    }

    size_t mask_;
    uint32_t aging_s_;
    unsigned shift_;  // 64 - log2(slots)
    std::unique_ptr<Slot[]> slots_;
};

} // namespace vhostd::dataplane
