#include "dataplane/qsbr.hpp"

#include <thread>

namespace vhostd::dataplane {

Qsbr::Qsbr(size_t readers) : count_(readers), readers_(std::make_unique<Reader[]>(readers)) {}

bool Qsbr::synchronize(uint64_t spin_limit) noexcept {
    // seq_cst: the snapshot pointer store that preceded this call is ordered
    // before the new epoch, so a PMD that reports this epoch has seen it.
    const uint64_t target = epoch_.fetch_add(1, std::memory_order_seq_cst) + 1;
    uint64_t spins = 0;
    for (size_t i = 0; i < count_; ++i) {
        for (;;) {
            const uint64_t seen = readers_[i].seen.load(std::memory_order_acquire);
            if (seen == kOffline || seen >= target) {
                break;
            }
            if (++spins > spin_limit) {
                return false;
            }
            if (spins % 64 == 0) {
                std::this_thread::yield();
            }
        }
    }
    return true;
}

} // namespace vhostd::dataplane
