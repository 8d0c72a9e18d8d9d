#include "dataplane/pmd.hpp"

#include <immintrin.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include <rte_mbuf.h>

#include "dataplane/dpdk_port.hpp"
#include "dataplane/mbuf_copy.hpp"
#include "virtio/net_rx.hpp"

namespace vhostd::dataplane {

namespace {

constexpr uint32_t kEthAddrsLen = 12; // destination + source MAC
constexpr uint32_t kEthHeaderLen = 14;
constexpr size_t kMaxMbufSegs = 32;

// A delivery spinlock, taken only when several PMDs may deliver into the same
// ring (Snapshot::shared_delivery). Acquire pairs with the release in unlock,
// so the next holder sees this holder's ring writes and state updates.
class RingLock {
public:
    RingLock(std::atomic<bool>& flag, bool shared) noexcept : flag_(shared ? &flag : nullptr) {
        if (flag_ != nullptr) {
            while (flag_->exchange(true, std::memory_order_acquire)) {
                while (flag_->load(std::memory_order_relaxed)) {
                    _mm_pause();
                }
            }
        }
    }
    ~RingLock() {
        if (flag_ != nullptr) {
            flag_->store(false, std::memory_order_release);
        }
    }
    RingLock(const RingLock&) = delete;
    RingLock& operator=(const RingLock&) = delete;

private:
    std::atomic<bool>* flag_;
};

void signal_guest(int call_fd) noexcept {
    if (call_fd >= 0) {
        const uint64_t one = 1;
        // The one syscall of the busy path, and only when the guest asked.
        [[maybe_unused]] ssize_t n = ::write(call_fd, &one, sizeof(one));
    }
}

// Whether a port can take a frame at all: a vhost-user port needs a connected
// guest with an enabled RX ring, a DPDK port is always there.
bool reachable(const PortEntry& port) noexcept {
    if (port.kind == PortKind::VhostUser) {
        return port.vhost != nullptr && !port.vhost->rx.empty();
    }
    return port.dpdk != nullptr;
}

// The first 12 bytes of the Ethernet header, wherever the pieces split them.
bool read_eth_addrs(const virtio::FrameView& frame, uint8_t* out) noexcept {
    const virtio::Piece& first = frame.pieces[0];
    if (first.len - frame.offset >= kEthAddrsLen) {
        std::memcpy(out, first.host + frame.offset, kEthAddrsLen);
        return true;
    }
    return virtio::copy_frame(frame, out, kEthAddrsLen) == kEthAddrsLen;
}

} // namespace

Pmd::Pmd(size_t index, Qsbr& qsbr, std::atomic<const Snapshot*>& snapshot, std::atomic<bool>& stop,
         PmdControl& control)
    : index_(index), qsbr_(qsbr), reader_(qsbr.reader(index)), snapshot_(snapshot), stop_(stop),
      control_(control), chains_(std::make_unique<virtio::Chain[]>(1)) {}

namespace {
uint64_t now_ns() noexcept {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}
} // namespace

void Pmd::run() noexcept {
    qsbr_.online(reader_);
    uint64_t idle_since = 0; // 0: the last iteration found work
    uint32_t idle_iterations = 0;
    bool drowsy = false; // the last sleep timed out
    // Busy/idle share (`vhostctl show pmd`): one TSC read per iteration (no
    // syscall); the time since the previous read is charged to what the
    // previous iteration was, so a sleep counts as idle.
    uint64_t last_tsc = __rdtsc();
    bool last_busy = false;
    while (!stop_.load(std::memory_order_relaxed)) {
        const uint64_t tsc = __rdtsc();
        const uint64_t took = tsc - last_tsc;
        (last_busy ? control_.busy_cycles : control_.idle_cycles).add(took);
        last_tsc = tsc;
        // Acquire pairs with the release store in Dataplane::publish(): the
        // snapshot's contents are visible before its pointer is.
        const Snapshot* snap = snapshot_.load(std::memory_order_acquire);
        if (last_busy && snap != nullptr) {
            tune_stores(took, snap->rx_stores);
        }
        bool busy = false;
        if (snap != nullptr) {
            busy = poll_once(*snap);
        }
        last_busy = busy;
        if (busy) {
            control_.busy_polls.add(1);
            drowsy = false;
            idle_since = 0;
            idle_iterations = 0;
        } else {
            control_.idle_polls.add(1);
            // Hysteresis: sleep only after poll_us without any work; one
            // frame restarts the clock, a busy queue never lets it run out.
            // The clock is read every 64 empty polls, not every one.
            // After a sleep that ended by timeout with still nothing to do,
            // sleep again at once: an idle port costs one poll per timeout.
            if (snap != nullptr && snap->idle.mode == config::IdleMode::Adaptive &&
                (drowsy || (++idle_iterations & 63) == 0)) {
                const uint64_t now = now_ns();
                if (idle_since == 0 && !drowsy) {
                    idle_since = now;
                } else if (drowsy || now - idle_since >= uint64_t{snap->idle.poll_us} * 1000) {
                    drowsy = try_sleep(*snap);
                    idle_since = 0;
                    idle_iterations = 0;
                    qsbr_.quiescent(reader_);
                    beat();
                    continue;
                }
            }
        }
        // Quiescent point: nothing from `snap` is held past this line.
        qsbr_.quiescent(reader_);
        beat();
        if (!busy) {
            _mm_pause();
        }
    }
    qsbr_.offline(reader_);
}

void Pmd::tune_stores(uint64_t busy_cycles, config::RxStores mode) noexcept {
    const uint64_t streamed = rx_batch_.frames_streamed();
    if (streamed != streamed_seen_) {
        control_.streamed_frames.add(streamed - streamed_seen_);
        streamed_seen_ = streamed;
    }
    switch (mode) {
    case config::RxStores::Ordinary:
        rx_batch_.set_streaming(false);
        break;
    case config::RxStores::Streaming:
        rx_batch_.set_streaming(true);
        break;
    case config::RxStores::Auto: {
        const uint64_t switches = store_tuner_.switches();
        rx_batch_.set_streaming(store_tuner_.update(busy_cycles, rx_batch_.frames_committed()));
        if (store_tuner_.switches() != switches) {
            control_.store_switches.add(1);
        }
        break;
    }
    }
}

void Pmd::set_notifications(const Snapshot& snap, bool enable) noexcept {
    if (index_ >= snap.sources.size()) {
        return;
    }
    for (const Source& src : snap.sources[index_]) {
        if (src.vring != nullptr && !snap.ports[src.port].health->broken.load(std::memory_order_relaxed)) {
            virtio::enable_notifications(src.vring->ring, src.vring->slot->state, enable);
        }
    }
}

bool Pmd::try_sleep(const Snapshot& snap, void (*before_wait)(void*), void* hook_arg) noexcept {
    bool timed_out = false;
    // 0. Forget kicks that arrived while we were busy (edge-triggered events
    //    stay queued); any kick from here on is a fresh event.
    drain_wake_events(control_);
    // 1. Ask every guest to kick us (ends in a full fence).
    set_notifications(snap, true);
    // 2. Publish "sleeping". seq_cst orders it before the re-check's loads.
    control_.word.store(kSleeping, std::memory_order_seq_cst);
    // 3. Re-check: a buffer made available before the guest could see
    //    notifications on would otherwise never be kicked.
    bool pending = false;
    if (index_ < snap.sources.size()) {
        for (const Source& src : snap.sources[index_]) {
            if (src.vring != nullptr && virtio::has_pending(src.vring->ring, src.vring->slot->state)) {
                pending = true;
                break;
            }
        }
    }
    if (pending) {
        control_.word.store(kAwake, std::memory_order_relaxed);
        control_.backouts.add(1);
    } else {
        // 4. Offline for QSBR: the control thread may now swap and free
        //    snapshots without waiting for us. `snap` is not touched again.
        //    A PMD whose every source can kick sleeps until kicked; the
        //    timeout bounds latency for sources that cannot (DPDK ports).
        control_.sleeps.add(1);
        const bool kickable = index_ < snap.kickable.size() && snap.kickable[index_] != 0;
        const uint32_t timeout_us = kickable ? 0 : std::max<uint32_t>(snap.idle.max_sleep_us, 1);
        qsbr_.offline(reader_);
        if (before_wait != nullptr) {
            before_wait(hook_arg);
        }
        // 5. Sleep until a kick, a wake-up or the timeout. A kick or wake-up
        //    that came after step 2 is already queued and ends it at once.
        const WakeCause cause = wait_for_wake(control_, timeout_us);
        control_.word.store(kAwake, std::memory_order_relaxed);
        switch (cause) {
        case WakeCause::Kick:
            control_.kick_wakeups.add(1);
            break;
        case WakeCause::Control:
            control_.control_wakeups.add(1);
            break;
        case WakeCause::Timeout:
            control_.timeouts.add(1);
            timed_out = true;
            break;
        }
        qsbr_.online(reader_);
    }
    // Busy again: suppress guest kicks on whatever snapshot is current now.
    if (const Snapshot* now = snapshot_.load(std::memory_order_acquire); now != nullptr) {
        set_notifications(*now, false);
    }
    return timed_out;
}

bool Pmd::poll_once(const Snapshot& snap) noexcept {
    bool busy = false;
    if (index_ >= snap.sources.size()) {
        return false;
    }
    // The L2 clock is read lazily, once per pass that switches a frame, so an
    // empty poll costs no clock read (L2Table::now_s never returns 0).
    now_s_ = 0;
    learned_src_ = kNoMac;
    looked_up_dst_ = kNoMac;
    for (const Source& src : snap.sources[index_]) {
        const PortEntry& port = snap.ports[src.port];
        if (src.vring != nullptr) {
            busy |= poll_vhost(snap, port, *src.vring);
        } else {
            busy |= poll_dpdk(snap, port, src.dpdk_queue);
        }
    }
    return busy;
}

void Pmd::break_port(const PortEntry& port, const char* reason) noexcept {
    if (port.health == nullptr) {
        return;
    }
    const char* expected = nullptr;
    port.health->reason.compare_exchange_strong(expected, reason, std::memory_order_relaxed);
    // The control thread logs it once (Dataplane::report_health); no logging
    // from here.
    port.health->broken.store(true, std::memory_order_release);
}

bool Pmd::poll_vhost(const Snapshot& snap, const PortEntry& src, const VhostRings::Ring& vr) noexcept {
    if (src.health->broken.load(std::memory_order_relaxed)) {
        return false;
    }
    RingSlot& slot = *vr.slot;
    virtio::QueueState& st = slot.state;
    // One chain at a time, switched as soon as it is fetched: a batch of 32
    // 4 KiB Chain objects would stride the L1 cache at 4 KiB and alias.
    // Completion (used.idx) and notification still happen once per burst.
    virtio::Chain& chain = chains_[0];
    // TX chains are returned after the burst's RX writes (RxBatch), which
    // read from them.
    uint16_t tx_heads[kMaxBurst];
    uint32_t n = 0;
    while (n < snap.burst) {
        const auto status = virtio::fetch_tx_chain(vr.ring, st, chain);
        if (status != virtio::FetchStatus::kChain) {
            if (status == virtio::FetchStatus::kBroken) {
                slot.stats.drop_broken.add(1);
                break_port(src, st.broken_reason);
            }
            break;
        }
        tx_heads[n++] = chain.head;
        const auto frame = virtio::skip_net_header(chain.view(), chain.len, vr.ring.hdr_len);
        uint8_t eth[kEthAddrsLen];
        if (vr.discard) {
            // A disabled TX ring is drained and its frames discarded.
            slot.stats.drop_no_route.add(1);
        } else if (!frame || frame->len < kEthHeaderLen || !read_eth_addrs(*frame, eth)) {
            // Shorter than the virtio-net header plus an Ethernet header:
            // nothing to switch. The chain is still returned to the guest.
            slot.stats.errors.add(1);
        } else {
            slot.stats.rx_packets.add(1);
            slot.stats.rx_bytes.add(frame->len);
            forward(snap, src, slot.stats, *frame, eth, /*source_stable=*/true);
        }
    }
    if (n == 0) {
        return false;
    }
    rx_batch_.commit();
    for (uint32_t i = 0; i < n; ++i) {
        // TX chains are read-only: the device writes nothing (used len 0).
        virtio::push_used(vr.ring, st, tx_heads[i], 0);
    }
    virtio::flush_used(vr.ring, st);
    if (virtio::needs_call(vr.ring, st)) {
        signal_guest(vr.call_fd);
    }
    finish_burst(snap);
    return true;
}

bool Pmd::poll_dpdk(const Snapshot& snap, const PortEntry& src, uint16_t queue) noexcept {
    if (src.dpdk == nullptr) {
        return false;
    }
    rte_mbuf* mbufs[kMaxBurst];
    const uint16_t n = src.dpdk->rx(queue, mbufs, static_cast<uint16_t>(snap.burst));
    if (n == 0) {
        return false;
    }
    QueueStats& stats = src.dpdk_slots[queue].stats;
    for (uint16_t i = 0; i < n; ++i) {
        rte_mbuf* m = mbufs[i];
        virtio::Piece pieces[kMaxMbufSegs];
        size_t count = 0;
        for (rte_mbuf* seg = m; seg != nullptr && count < kMaxMbufSegs; seg = seg->next) {
            pieces[count++] = {rte_pktmbuf_mtod(seg, uint8_t*), seg->data_len};
        }
        if (m->nb_segs > kMaxMbufSegs || m->pkt_len < kEthHeaderLen ||
            m->data_len < kEthAddrsLen) {
            stats.errors.add(1);
            rte_pktmbuf_free(m);
            continue;
        }
        virtio::FrameView frame{std::span<const virtio::Piece>(pieces, count), 0, m->pkt_len};
        stats.rx_packets.add(1);
        stats.rx_bytes.add(m->pkt_len);
        // The mbuf is freed right after: its copies cannot wait.
        forward(snap, src, stats, frame, rte_pktmbuf_mtod(m, const uint8_t*), /*source_stable=*/false);
        rte_pktmbuf_free(m);
    }
    finish_burst(snap);
    return true;
}

void Pmd::forward(const Snapshot& snap, const PortEntry& src, QueueStats& src_stats,
                  const virtio::FrameView& frame, const uint8_t* eth, bool source_stable) noexcept {
    if (snap.mode == config::SwitchMode::Xconnect) {
        if (!src.peer) {
            src_stats.drop_no_route.add(1);
            return;
        }
        if (!reachable(snap.ports[*src.peer])) {
            src_stats.drop_no_route.add(1); // the peer's guest is not connected (or RX disabled)
            return;
        }
        deliver(snap, snap.ports[*src.peer], frame, source_stable);
        return;
    }
    // L2: learn the source, then unicast to a known port or flood.
    const auto [dst_mac, src_mac] = L2Table::pack_eth_addrs(eth);
    if (now_s_ == 0) {
        now_s_ = L2Table::now_s();
    }
    if (const uint64_t learned = src_mac | uint64_t{src.id} << 48; learned != learned_src_) {
        if (snap.l2->learn(src_mac, src.id, now_s_)) {
            looked_up_dst_ = kNoMac;  // a lookup may answer differently now
        }
        learned_src_ = learned;
    }
    if (!is_multicast(dst_mac)) {
        if (dst_mac != looked_up_dst_) {
            looked_up_port_ = snap.l2->lookup(dst_mac, now_s_);
            looked_up_dst_ = dst_mac;
        }
        if (const auto port = looked_up_port_) {
            if (*port == src.id || *port >= snap.ports.size() || !reachable(snap.ports[*port])) {
                // Never hair-pin a frame back out of the port it came from;
                // a port whose guest is gone cannot take it either.
                src_stats.drop_no_route.add(1);
                return;
            }
            deliver(snap, snap.ports[*port], frame, source_stable);
            return;
        }
    }
    bool any = false;
    for (const PortEntry& dst : snap.ports) {
        if (dst.id != src.id && reachable(dst)) {
            deliver(snap, dst, frame, source_stable);
            any = true;
        }
    }
    if (!any) {
        src_stats.drop_no_route.add(1);
    }
}

void Pmd::deliver(const Snapshot& snap, const PortEntry& dst, const virtio::FrameView& frame,
                  bool source_stable) noexcept {
    if (dst.kind == PortKind::VhostUser) {
        deliver_vhost(snap, dst, frame, source_stable);
    } else {
        deliver_dpdk(snap, dst, frame);
    }
}

void Pmd::deliver_vhost(const Snapshot& snap, const PortEntry& dst, const virtio::FrameView& frame,
                        bool source_stable) noexcept {
    if (dst.vhost == nullptr || dst.vhost->rx.empty()) {
        return; // not connected: nobody to receive (flooding skips it silently)
    }
    const VhostRings::Ring& vr = dst.vhost->rx[index_ % dst.vhost->rx.size()];
    RingSlot& slot = *vr.slot;
    if (dst.health->broken.load(std::memory_order_relaxed)) {
        RingLock lock(slot.lock, snap.shared_delivery);
        slot.stats.drop_broken.add(1);
        return;
    }
    if (dst.vhost->mtu && frame.len > *dst.vhost->mtu + kEthHeaderLen + 4) {
        RingLock lock(slot.lock, snap.shared_delivery);
        slot.stats.drop_too_big.add(1); // larger than the MTU the guest set (+ VLAN tag)
        return;
    }
    virtio::DeliverStatus status;
    {
        // The lock also covers the destination's counters: with several PMDs
        // they have several writers, and Counter::add is not atomic.
        RingLock lock(slot.lock, snap.shared_delivery);
        // The single copy: from the source buffer straight into the guest's,
        // deferred to the end of the burst when the source allows it and no
        // other PMD writes this ring (RxBatch keeps one writer's order).
        status = source_stable && !snap.shared_delivery ? rx_batch_.deliver(vr.ring, slot.state, frame)
                                                        : virtio::deliver_frame(vr.ring, slot.state, frame);
        switch (status) {
        case virtio::DeliverStatus::kDelivered:
            slot.stats.tx_packets.add(1);
            slot.stats.tx_bytes.add(frame.len);
            break;
        case virtio::DeliverStatus::kNoBuffer:
            slot.stats.drop_no_buffer.add(1);
            break;
        case virtio::DeliverStatus::kTooBig:
            slot.stats.drop_too_big.add(1);
            break;
        case virtio::DeliverStatus::kBroken:
            slot.stats.drop_broken.add(1);
            break;
        }
    }
    if (status == virtio::DeliverStatus::kBroken) {
        break_port(dst, slot.state.broken_reason);
        return;
    }
    if (status != virtio::DeliverStatus::kDelivered) {
        return;
    }
    for (size_t i = 0; i < touched_count_; ++i) {
        if (touched_[i] == &vr) {
            return;
        }
    }
    if (touched_count_ == touched_.size()) {
        finish_burst(snap); // rare: many destinations in one burst
    }
    touched_[touched_count_++] = &vr;
}

void Pmd::deliver_dpdk(const Snapshot& snap, const PortEntry& dst,
                       const virtio::FrameView& frame) noexcept {
    if (dst.dpdk == nullptr) {
        return;
    }
    const uint16_t queue = static_cast<uint16_t>(index_ % dst.dpdk_queues);
    QueueStats& stats = dst.dpdk_slots[queue].stats;
    rte_mbuf* m = mbuf_from_pieces(dst.dpdk->pool(), frame.pieces.data(), frame.pieces.size(),
                                   frame.offset, frame.len);
    if (m == nullptr) {
        RingLock lock(dst.dpdk_slots[queue].lock, snap.shared_delivery);
        stats.errors.add(1); // mbuf pool empty
        return;
    }
    if (m->nb_segs > 1 && !dst.dpdk->tx_multi_seg()) {
        rte_pktmbuf_free(m);
        RingLock lock(dst.dpdk_slots[queue].lock, snap.shared_delivery);
        stats.drop_too_big.add(1);
        return;
    }
    DpdkPending* pending = nullptr;
    for (size_t i = 0; i < dpdk_pending_count_; ++i) {
        if (dpdk_pending_[i].port == &dst) {
            pending = &dpdk_pending_[i];
            break;
        }
    }
    if (pending == nullptr) {
        if (dpdk_pending_count_ == dpdk_pending_.size()) {
            finish_burst(snap);
        }
        pending = &dpdk_pending_[dpdk_pending_count_++];
        pending->port = &dst;
        pending->count = 0;
    }
    if (pending->count == pending->mbufs.size()) {
        finish_burst(snap);
        return deliver_dpdk(snap, dst, frame);
    }
    pending->mbufs[pending->count++] = m;
}

void Pmd::finish_burst(const Snapshot& snap) noexcept {
    // Deferred copies first: used.idx must not publish unwritten buffers.
    rx_batch_.commit();
    // Guest RX rings we wrote into: publish used.idx once, then notify.
    for (size_t i = 0; i < touched_count_; ++i) {
        const VhostRings::Ring& vr = *touched_[i];
        bool call = false;
        {
            RingLock lock(vr.slot->lock, snap.shared_delivery);
            virtio::flush_used(vr.ring, vr.slot->state);
            call = virtio::needs_call(vr.ring, vr.slot->state);
        }
        if (call) {
            signal_guest(vr.call_fd);
        }
    }
    touched_count_ = 0;
    // DPDK ports: one tx burst per port.
    for (size_t i = 0; i < dpdk_pending_count_; ++i) {
        DpdkPending& p = dpdk_pending_[i];
        const PortEntry& dst = *p.port;
        const uint16_t queue = static_cast<uint16_t>(index_ % dst.dpdk_queues);
        RingSlot& slot = dst.dpdk_slots[queue];
        uint64_t bytes = 0;
        for (uint16_t k = 0; k < p.count; ++k) {
            bytes += p.mbufs[k]->pkt_len; // read while the mbufs are still ours
        }
        uint16_t sent = 0;
        {
            RingLock lock(slot.lock, snap.shared_delivery);
            while (sent < p.count) {
                const uint16_t n = dst.dpdk->tx(queue, p.mbufs.data() + sent,
                                                static_cast<uint16_t>(p.count - sent));
                if (n == 0) {
                    break;
                }
                sent = static_cast<uint16_t>(sent + n);
            }
            for (uint16_t k = sent; k < p.count; ++k) {
                bytes -= p.mbufs[k]->pkt_len;
                rte_pktmbuf_free(p.mbufs[k]);
            }
            slot.stats.tx_packets.add(sent);
            slot.stats.tx_bytes.add(bytes);
            if (sent < p.count) {
                slot.stats.drop_no_buffer.add(p.count - sent);
            }
        }
        p.count = 0;
    }
    dpdk_pending_count_ = 0;
}

} // namespace vhostd::dataplane
