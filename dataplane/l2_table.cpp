#include "dataplane/l2_table.hpp"

#include <time.h>

#include <bit>
#include <cstring>

namespace vhostd::dataplane {

namespace {
constexpr uint64_t kMacMask = (uint64_t{1} << 48) - 1;
}

L2Table::L2Table(size_t capacity, uint32_t aging_s)
    : mask_(std::bit_ceil(std::max<size_t>(capacity, kProbe)) - 1), aging_s_(aging_s),
      shift_(64 - std::countr_zero(mask_ + 1)), slots_(std::make_unique<Slot[]>(mask_ + 1)) {}

uint32_t L2Table::now_s() noexcept {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    // +1 so that 0 never means "seen at time 0".
    return static_cast<uint32_t>(ts.tv_sec) + 1;
}

size_t L2Table::home(uint64_t mac) const noexcept {
    // Fibonacci hashing: the top bits of the product depend on every bit of
    // the MAC, including its last byte (bits 40..47 here), which is what
    // varies between guests of one host (52:54:00:12:34:xx).
    return static_cast<size_t>((mac * 0x9E3779B97F4A7C15ull) >> shift_);
}

bool L2Table::learn(uint64_t m, PortId port, uint32_t now) noexcept {
    if (is_multicast(m)) {
        return false; // a group address is never a source
    }
    if (port == kUnlearnablePort) {
        return false; // port + 1 would not fit in the key's 16 bits (found by fuzz_l2_table)
    }
    m &= kMacMask;
    const uint64_t want = m | (static_cast<uint64_t>(port) + 1) << 48;
    const size_t h = home(m);
    Slot* reuse = nullptr;
    for (unsigned i = 0; i < kProbe; ++i) {
        Slot& s = slots_[(h + i) & mask_];
        const uint64_t key = s.key.load(std::memory_order_relaxed);
        if (key != 0 && (key & kMacMask) == m) {
            // Known MAC: touch only what changed, so a steady flow does not
            // bounce the cache line between PMDs.
            bool wrote = false;
            if (key != want) {
                s.key.store(want, std::memory_order_relaxed);
                wrote = true;
            }
            if (s.seen.load(std::memory_order_relaxed) != now) {
                s.seen.store(now, std::memory_order_relaxed);
                wrote = true;
            }
            return wrote;
        }
        if (reuse == nullptr &&
            (key == 0 || expired(s.seen.load(std::memory_order_relaxed), now))) {
            reuse = &s;
        }
    }
    if (reuse != nullptr) {
        uint64_t old = reuse->key.load(std::memory_order_relaxed);
        // CAS: two PMDs learning different MACs must not both take the slot.
        if (reuse->key.compare_exchange_strong(old, want, std::memory_order_relaxed)) {
            reuse->seen.store(now, std::memory_order_relaxed);
            return true;
        }
    }
    // Table full around this bucket (or another PMD took the slot): the MAC
    // stays unknown and is flooded.
    return false;
}

std::optional<PortId> L2Table::lookup(uint64_t m, uint32_t now) const noexcept {
    m &= kMacMask;
    const size_t h = home(m);
    for (unsigned i = 0; i < kProbe; ++i) {
        const Slot& s = slots_[(h + i) & mask_];
        const uint64_t key = s.key.load(std::memory_order_relaxed);
        if (key == 0) {
            continue;
        }
        if ((key & kMacMask) == m) {
            if (expired(s.seen.load(std::memory_order_relaxed), now)) {
                return std::nullopt;
            }
            return static_cast<PortId>((key >> 48) - 1);
        }
    }
    return std::nullopt;
}

void L2Table::flush_port(PortId port) noexcept {
    for (size_t i = 0; i <= mask_; ++i) {
        const uint64_t key = slots_[i].key.load(std::memory_order_relaxed);
        if (key != 0 && (key >> 48) == static_cast<uint64_t>(port) + 1) {
            uint64_t expected = key;
            slots_[i].key.compare_exchange_strong(expected, 0, std::memory_order_relaxed);
        }
    }
}

void L2Table::flush() noexcept {
    for (size_t i = 0; i <= mask_; ++i) {
        slots_[i].key.store(0, std::memory_order_relaxed);
    }
}

std::vector<L2Table::Entry> L2Table::entries(uint32_t now) const {
    std::vector<Entry> out;
    for (size_t i = 0; i <= mask_; ++i) {
        const uint64_t key = slots_[i].key.load(std::memory_order_relaxed);
        const uint32_t seen = slots_[i].seen.load(std::memory_order_relaxed);
        if (key == 0 || expired(seen, now)) {
            continue;
        }
        Entry e{};
        std::memcpy(e.mac.data(), &key, 6);
        e.port = static_cast<PortId>((key >> 48) - 1);
        const auto age = static_cast<int32_t>(now - seen);
        e.age_s = age > 0 ? static_cast<uint32_t>(age) : 0;
        out.push_back(e);
    }
    return out;
}

} // namespace vhostd::dataplane
