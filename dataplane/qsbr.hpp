#pragma once
// Quiescent-state-based reclamation between the control thread and the PMD
// threads (DESIGN.md "Hand-off control -> PMD").
//
// The control thread publishes a new snapshot, then calls synchronize(): it
// returns once every PMD has passed a quiescent point (the end of a poll-loop
// iteration, where it holds no pointer into any snapshot) or is offline
// (asleep). After that nothing can still read the old snapshot, so its rings
// may be torn down and its memory unmapped.

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

namespace vhostd::dataplane {

class Qsbr {
public:
    static constexpr uint64_t kOffline = ~uint64_t{0};

    // One per PMD thread; cache-line sized so PMDs do not share lines.
    struct alignas(64) Reader {
        std::atomic<uint64_t> seen{kOffline};
    };

    explicit Qsbr(size_t readers);

    Reader& reader(size_t i) noexcept { return readers_[i]; }
    [[nodiscard]] size_t readers() const noexcept { return count_; }

    // PMD side. quiescent() at the end of each loop iteration; offline()
    // before sleeping; online() after waking, before reading the snapshot.
    void quiescent(Reader& r) noexcept {
        // Release: every read of the old snapshot by this PMD happens before
        // the control thread (acquire in synchronize) sees this value.
        r.seen.store(epoch_.load(std::memory_order_acquire), std::memory_order_release);
    }
    void offline(Reader& r) noexcept { r.seen.store(kOffline, std::memory_order_release); }
    void online(Reader& r) noexcept {
        r.seen.store(epoch_.load(std::memory_order_acquire), std::memory_order_seq_cst);
    }

    // Control side: waits until every reader has been quiescent or offline
    // since this call began. Returns false if `spin_limit` polls passed first
    // (a PMD stuck: the caller logs and keeps the old snapshot alive).
    bool synchronize(uint64_t spin_limit = ~uint64_t{0}) noexcept;

private:
    std::atomic<uint64_t> epoch_{1};
    size_t count_;
    std::unique_ptr<Reader[]> readers_;
};

} // namespace vhostd::dataplane
