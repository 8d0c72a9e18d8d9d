#pragma once
// RecordingDevice: a protocol::VhostDevice for tests. It runs nothing; it
// records what a Session asks of its device, so a test can check the exact
// sequence of views the data path would have run.
//
//   vhostd::fakes::RecordingDevice device;
//   protocol::Session session({}, device);
//   ...
//   ASSERT_TRUE(device.has_views());
//   const protocol::LiveRing* rx = device.live_ring(0);   // in the latest view
//   device.set_last_avail(1, 42);    // what GET_VRING_BASE will see for ring 1
//
// Every DeviceView is copied as it arrives. A copy holds its MemoryTable
// (shared_ptr), so the guest memory of every recorded view stays mapped while
// the device lives: call clear() or destroy the device before measuring
// mappings. The kick/call fd numbers in a recorded view are borrowed from the
// session, as they are for a real device: they are closed (and their numbers
// may be reused) once a later view no longer carries them.

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <vector>

#include "protocol/device.hpp"

namespace vhostd::fakes {

class RecordingDevice final : public protocol::VhostDevice {
public:
    // One last_avail() call: the ring asked about, and how many views had been
    // applied when it was asked (so views()[applied_before - 1] is the view
    // the session had published just before asking).
    struct LastAvailQuery {
        uint32_t index;
        size_t applied_before;
    };

    void apply(const protocol::DeviceView& view) override { views_.push_back(view); }

    std::optional<uint16_t> last_avail(uint32_t index) override {
        queries_.push_back(LastAvailQuery{index, views_.size()});
        const auto it = last_avail_.find(index);
        if (it == last_avail_.end()) {
            return std::nullopt;
        }
        return it->second;
    }

    void announce(const std::array<uint8_t, 6>& mac) override { announced_.push_back(mac); }

    // What last_avail(index) returns from now on (nullopt: "never ran").
    void set_last_avail(uint32_t index, std::optional<uint16_t> value) {
        if (value) {
            last_avail_[index] = *value;
        } else {
            last_avail_.erase(index);
        }
    }

    [[nodiscard]] const std::vector<protocol::DeviceView>& views() const noexcept { return views_; }
    [[nodiscard]] size_t apply_count() const noexcept { return views_.size(); }
    [[nodiscard]] bool has_views() const noexcept { return !views_.empty(); }

    // The latest view (throws when none was applied yet).
    [[nodiscard]] const protocol::DeviceView& last_view() const {
        if (views_.empty()) {
            throw std::logic_error("RecordingDevice: no view applied yet");
        }
        return views_.back();
    }

    // Ring `index` in `view`, or nullptr when the view does not run it.
    [[nodiscard]] static const protocol::LiveRing* find_ring(const protocol::DeviceView& view,
                                                             uint32_t index) noexcept {
        for (const auto& ring : view.rings) {
            if (ring.index == index) {
                return &ring;
            }
        }
        return nullptr;
    }

    // Ring `index` in the latest view, or nullptr (also when no view yet).
    [[nodiscard]] const protocol::LiveRing* live_ring(uint32_t index) const noexcept {
        return views_.empty() ? nullptr : find_ring(views_.back(), index);
    }

    [[nodiscard]] size_t live_count() const noexcept {
        return views_.empty() ? 0 : views_.back().rings.size();
    }

    [[nodiscard]] const std::vector<LastAvailQuery>& last_avail_queries() const noexcept {
        return queries_;
    }
    [[nodiscard]] const std::vector<std::array<uint8_t, 6>>& announced() const noexcept {
        return announced_;
    }

    // Forget the recorded views (releasing the memory tables they hold),
    // queries and announcements; the configured last_avail values stay.
    void clear() {
        views_.clear();
        queries_.clear();
        announced_.clear();
    }

private:
    std::vector<protocol::DeviceView> views_;
    std::vector<LastAvailQuery> queries_;
    std::vector<std::array<uint8_t, 6>> announced_;
    std::map<uint32_t, uint16_t> last_avail_;
};

} // namespace vhostd::fakes
