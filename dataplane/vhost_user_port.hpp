#pragma once
// A vhost-user port as the data plane sees it: the device behind one
// protocol::Session (protocol/device.hpp). apply() turns the session's view
// (memory table, live rings, fds) into checked SplitRing views and publishes
// them to the PMD threads through the Dataplane's snapshot.

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "dataplane/snapshot.hpp"
#include "protocol/device.hpp"

namespace vhostd::dataplane {

class Dataplane;

class VhostUserPort : public protocol::VhostDevice {
public:
    VhostUserPort(Dataplane& dataplane, PortId id, std::string name, uint32_t queue_pairs);

    void apply(const protocol::DeviceView& view) override;
    std::optional<uint16_t> last_avail(uint32_t index) override;
    void announce(const std::array<uint8_t, 6>& mac) override;

    [[nodiscard]] const std::string& name() const noexcept { return name_; }
    [[nodiscard]] PortId id() const noexcept { return id_; }
    [[nodiscard]] uint32_t queue_pairs() const noexcept { return queue_pairs_; }
    // Control thread only: what the next snapshot should contain.
    [[nodiscard]] std::shared_ptr<const VhostRings> rings() const noexcept { return rings_; }
    [[nodiscard]] PortHealth& health() noexcept { return health_; }
    [[nodiscard]] const PortHealth& health() const noexcept { return health_; }
    [[nodiscard]] const RingSlot& slot(uint32_t vring) const noexcept { return *slots_[vring]; }
    [[nodiscard]] RingSlot& slot(uint32_t vring) noexcept { return *slots_[vring]; }
    [[nodiscard]] uint32_t vrings() const noexcept { return static_cast<uint32_t>(slots_.size()); }
    [[nodiscard]] size_t live_rings() const noexcept;

private:
    Dataplane& dataplane_;
    PortId id_;
    std::string name_;
    uint32_t queue_pairs_;
    std::vector<std::unique_ptr<RingSlot>> slots_;  // one per vring, stable addresses
    std::vector<uint64_t> generation_;              // of the ring that slot last ran
    std::map<uint32_t, uint16_t> stopped_at_;       // vring -> last avail when it stopped
    std::shared_ptr<const VhostRings> rings_;
    PortHealth health_;
};

} // namespace vhostd::dataplane
