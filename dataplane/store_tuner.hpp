#pragma once
// Chooses, while traffic runs, how a PMD writes the first line of each frame
// into a guest's RX buffer (virtio::RxBatch::set_streaming): with ordinary
// stores, or streaming (non-temporal) ones.
//
// That line is the one the receiving guest reads (its driver looks at the
// Ethernet header), so the guest's CPU holds it when vhostd writes it next.
// An ordinary store must first take the line back from that CPU, and stores
// leave the store buffer in order, so the next stores wait too. A streaming
// store writes the whole line without taking it, and the waits of a burst
// overlap until the fence before used.idx; but the guest then reads the line
// from memory instead of from a cache. Which costs less depends on how far
// apart the two CPUs are, which the host may change at any time
// (docs/performance.md, "The host moves the two vCPUs"): measured with 64 B
// frames, streaming costs ~13% more when they share a cache and ~30% less
// when they do not.
//
// So the PMD measures both: it runs in one mode for kSettleFrames frames,
// then measures its busy cycles per frame over kWindowFrames frames in that
// mode and kWindowFrames in the other, and keeps the other only if it was
// cheaper by more than kMargin. The cost of asking is the probe window in
// the worse mode, about 3% of the frames.
//
// Data path: noexcept, no allocation; a few adds and compares per busy pass.

#include <cstdint>

namespace vhostd::dataplane {

class StoreTuner {
public:
    static constexpr uint64_t kSettleFrames = uint64_t{1} << 21;
    static constexpr uint64_t kWindowFrames = uint64_t{1} << 16;
    // The other mode must cost less than (1 - 1/kMarginDiv) of this one.
    static constexpr uint64_t kMarginDiv = 32;

    // After each busy poll pass: the busy cycles the pass took and the total
    // of frames written so far (RxBatch::frames_committed()). Returns whether
    // the next passes should stream.
    bool update(uint64_t busy_cycles, uint64_t frames_total) noexcept;

    [[nodiscard]] bool streaming() const noexcept { return streaming_; }
    // How often the mode changed, and how often the probe was tried.
    [[nodiscard]] uint64_t switches() const noexcept { return switches_; }
    [[nodiscard]] uint64_t probes() const noexcept { return probes_; }

private:
    enum class Phase : uint8_t { kSettle, kMeasure, kProbe };

    void begin(Phase phase, uint64_t frames_total) noexcept;

    Phase phase_ = Phase::kSettle;
    bool streaming_ = false;
    uint64_t phase_start_ = 0;   // frames_total when the phase began
    uint64_t cycles_ = 0;        // busy cycles in the phase
    uint64_t measured_cycles_ = 0;  // kMeasure's cycles and frames, to compare
    uint64_t measured_frames_ = 0;
    uint64_t switches_ = 0;
    uint64_t probes_ = 0;
};

} // namespace vhostd::dataplane
