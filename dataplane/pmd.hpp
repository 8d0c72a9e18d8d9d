#pragma once
// One PMD thread's poll loop and the per-burst switching work: fetch a burst
// of chains from a guest's TX ring (or mbufs from a DPDK rx queue), decide
// each frame's destinations (cross-connect peer, or L2 lookup / flood), copy
// it once straight into each destination (guest RX buffers, or an mbuf for a
// DPDK port), then complete the source chains and notify guests that asked.
//
// Busy path rules: no locks (but the per-ring delivery spinlock when several
// PMDs share a destination), no allocation, no syscall other than the call
// eventfd write a guest asked for — at most once per burst per queue.

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>

#include "dataplane/idle.hpp"
#include "dataplane/qsbr.hpp"
#include "dataplane/snapshot.hpp"
#include "dataplane/store_tuner.hpp"
#include "virtio/net_hdr.hpp"
#include "virtio/rx_batch.hpp"
#include "virtio/split_queue.hpp"

struct rte_mbuf;

namespace vhostd::dataplane {

inline constexpr uint32_t kMaxBurst = 256;

class Pmd {
public:
    Pmd(size_t index, Qsbr& qsbr, std::atomic<const Snapshot*>& snapshot, std::atomic<bool>& stop,
        PmdControl& control);

    // The loop; returns when `stop` is set.
    void run() noexcept;

    // One pass over this PMD's sources in `snap`; true if any work was done.
    // Public for tests that drive a PMD synchronously.
    bool poll_once(const Snapshot& snap) noexcept;

    // Adaptive idle: enable notifications on this PMD's rings, publish
    // kSleeping, re-check, and FUTEX_WAIT unless work raced in (idle.hpp).
    // Called between quiescent points; returns with the PMD online again,
    // true if the sleep ended by timeout rather than a wake-up.
    // `before_wait` is a test hook run right before the wait.
    bool try_sleep(const Snapshot& snap, void (*before_wait)(void*) = nullptr,
                   void* hook_arg = nullptr) noexcept;

private:
    struct Touched {
        const VhostRings::Ring* ring;
    };

    bool poll_vhost(const Snapshot& snap, const PortEntry& src, const VhostRings::Ring& vr) noexcept;
    bool poll_dpdk(const Snapshot& snap, const PortEntry& src, uint16_t queue) noexcept;
    // `source_stable`: the frame's bytes stay valid until the end of the
    // burst (a guest's TX chain, returned after finish_burst's commit), so
    // its copies into guest RX rings may be deferred (virtio::RxBatch).
    void forward(const Snapshot& snap, const PortEntry& src, QueueStats& src_stats,
                 const virtio::FrameView& frame, const uint8_t* eth, bool source_stable) noexcept;
    void deliver(const Snapshot& snap, const PortEntry& dst, const virtio::FrameView& frame,
                 bool source_stable) noexcept;
    void deliver_vhost(const Snapshot& snap, const PortEntry& dst, const virtio::FrameView& frame,
                       bool source_stable) noexcept;
    void deliver_dpdk(const Snapshot& snap, const PortEntry& dst, const virtio::FrameView& frame) noexcept;
    void finish_burst(const Snapshot& snap) noexcept;
    void break_port(const PortEntry& port, const char* reason) noexcept;
    void set_notifications(const Snapshot& snap, bool enable) noexcept;
    // After a busy pass that took `busy_cycles`: sets how rx_batch_ writes
    // (dataplane.rx_stores; `auto`: store_tuner_ chooses), and counts it.
    void tune_stores(uint64_t busy_cycles, config::RxStores mode) noexcept;
    // Progress for the watchdog: one relaxed store, single writer.
    void beat() noexcept {
        control_.heartbeat.store(control_.heartbeat.load(std::memory_order_relaxed) + 1,
                                 std::memory_order_relaxed);
    }

    size_t index_;
    Qsbr& qsbr_;
    Qsbr::Reader& reader_;
    std::atomic<const Snapshot*>& snapshot_;
    std::atomic<bool>& stop_;
    PmdControl& control_;
    uint32_t now_s_ = 0;
    // L2 work saved within one poll pass: consecutive frames of a flow carry
    // the same addresses. The source (MAC | port << 48) learned last, and the
    // last destination looked up with its answer; reset every pass, and the
    // destination whenever learning changed the table. kNoMac: none (a MAC
    // key has bits 48..63 clear).
    static constexpr uint64_t kNoMac = ~uint64_t{0};
    uint64_t learned_src_ = kNoMac;
    uint64_t looked_up_dst_ = kNoMac;
    std::optional<PortId> looked_up_port_;

    // Scratch, sized once; nothing is allocated per packet.
    std::unique_ptr<virtio::Chain[]> chains_;
    // Copies into guest RX rings deferred to the end of the burst; empty
    // outside poll_vhost().
    virtio::RxBatch rx_batch_;
    // How rx_batch_ writes each frame's first line, chosen by measuring.
    StoreTuner store_tuner_;
    uint64_t streamed_seen_ = 0;  // rx_batch_.frames_streamed() at the last tune_stores()
    std::array<const VhostRings::Ring*, 64> touched_{};
    size_t touched_count_ = 0;
    // Frames for DPDK ports, sent once per burst: per port, up to kMaxBurst.
    struct DpdkPending {
        const PortEntry* port = nullptr;
        uint16_t count = 0;
        std::array<rte_mbuf*, kMaxBurst> mbufs{};
    };
    std::array<DpdkPending, 8> dpdk_pending_{};
    size_t dpdk_pending_count_ = 0;
};

} // namespace vhostd::dataplane
