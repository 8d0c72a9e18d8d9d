#include "dataplane/vhost_user_port.hpp"

#include <spdlog/spdlog.h>

#include "dataplane/dataplane.hpp"
#include "virtio/split_queue.hpp"

namespace vhostd::dataplane {

VhostUserPort::VhostUserPort(Dataplane& dataplane, PortId id, std::string name,
                             uint32_t queue_pairs)
    : dataplane_(dataplane), id_(id), name_(std::move(name)), queue_pairs_(queue_pairs),
      generation_(2ull * queue_pairs, 0) {
    for (uint32_t i = 0; i < 2 * queue_pairs; ++i) {
        slots_.push_back(std::make_unique<RingSlot>());
    }
}

size_t VhostUserPort::live_rings() const noexcept {
    return rings_ ? rings_->rx.size() + rings_->tx.size() : 0;
}

void VhostUserPort::apply(const protocol::DeviceView& view) {
    // Phase 1: take this port's rings out of the data path, so that no PMD
    // touches the ring state while it is read back or re-initialised.
    // Frames stay in the guest's rings meanwhile; nothing is lost.
    const auto old = rings_;
    if (old) {
        rings_.reset();
        dataplane_.publish();
    }
    // Rings that stop, or restart, record where the data path got to
    // (GET_VRING_BASE returns it).
    if (old) {
        for (const auto* list : {&old->rx, &old->tx}) {
            for (const auto& r : *list) {
                stopped_at_[r.index] = slots_[r.index]->state.last_avail_idx;
            }
        }
    }

    // Phase 2: build the new views.
    auto next = std::make_shared<VhostRings>();
    next->memory = view.memory;
    next->mtu = view.mtu;
    bool restarted = false;
    for (const auto& live : view.rings) {
        if (live.index >= slots_.size()) {
            continue; // the session bounds indices; defensive
        }
        auto ring = virtio::SplitRing::create(*view.memory, live.desc_uva, live.avail_uva,
                                              live.used_uva, live.size, view.features);
        if (!ring) {
            spdlog::error("port {}: ring {} not started: {}", name_, live.index,
                          ring.error().message);
            continue;
        }
        RingSlot& slot = *slots_[live.index];
        if (generation_[live.index] != live.generation) {
            // A (re)started ring: fresh indices from SET_VRING_BASE and the
            // ring's own used.idx; a broken ring gets its second chance here.
            slot.state = virtio::QueueState::start(*ring, live.base);
            generation_[live.index] = live.generation;
            stopped_at_.erase(live.index);
            restarted = true;
        }
        // The PMDs busy-poll: ask the guest not to kick us (issue 5 adds sleeping).
        virtio::enable_notifications(*ring, slot.state, false);
        VhostRings::Ring entry{*ring, &slot, live.call_fd, live.kick_fd, live.index,
                               live.generation, !live.enabled};
        if (live.index % 2 == 0) {
            // A disabled RX ring gets no new frames (vhost-user.rst "Ring states").
            if (live.enabled) {
                next->rx.push_back(entry);
            }
        } else {
            next->tx.push_back(entry);
        }
    }
    if (restarted && health_.broken.load(std::memory_order_relaxed)) {
        spdlog::info("port {}: rings restarted by the front-end; port no longer broken", name_);
        health_.broken.store(false, std::memory_order_relaxed);
        health_.reason.store(nullptr, std::memory_order_relaxed);
        health_.reported.store(false, std::memory_order_relaxed);
    }
    const size_t before = old ? old->rx.size() + old->tx.size() : 0;
    const size_t after = next->rx.size() + next->tx.size();
    if (after != before) {
        spdlog::info("port {}: {} ring(s) live", name_, after);
    }
    if (after == 0) {
        dataplane_.forget_port(id_);
    }
    rings_ = after == 0 ? nullptr : std::move(next);
    if (rings_) {
        dataplane_.publish();
    }
}

std::optional<uint16_t> VhostUserPort::last_avail(uint32_t index) {
    auto it = stopped_at_.find(index);
    if (it == stopped_at_.end()) {
        return std::nullopt;
    }
    return it->second;
}

void VhostUserPort::announce(const std::array<uint8_t, 6>& mac) {
    spdlog::info("port {}: SEND_RARP: {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x} is now here",
                 name_, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
    dataplane_.learn(mac, id_);
}

} // namespace vhostd::dataplane
