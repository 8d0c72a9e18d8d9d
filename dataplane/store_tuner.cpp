#include "dataplane/store_tuner.hpp"

namespace vhostd::dataplane {

void StoreTuner::begin(Phase phase, uint64_t frames_total) noexcept {
    phase_ = phase;
    phase_start_ = frames_total;
    cycles_ = 0;
}

bool StoreTuner::update(uint64_t busy_cycles, uint64_t frames_total) noexcept {
    if (frames_total < phase_start_) {  // the count was reset: start over
        begin(Phase::kSettle, frames_total);
        return streaming_;
    }
    cycles_ += busy_cycles;
    const uint64_t frames = frames_total - phase_start_;
    switch (phase_) {
    case Phase::kSettle:
        if (frames >= kSettleFrames) {
            begin(Phase::kMeasure, frames_total);
        }
        break;
    case Phase::kMeasure:
        if (frames >= kWindowFrames) {
            measured_cycles_ = cycles_;
            measured_frames_ = frames;
            streaming_ = !streaming_;
            ++probes_;
            begin(Phase::kProbe, frames_total);
        }
        break;
    case Phase::kProbe:
        if (frames >= kWindowFrames) {
            // Cheaper per frame by more than the margin? Once per window:
            // floating point costs nothing here.
            const double probe = static_cast<double>(cycles_) / static_cast<double>(frames);
            const double kept = static_cast<double>(measured_cycles_) / static_cast<double>(measured_frames_);
            if (probe < kept * (1.0 - 1.0 / kMarginDiv)) {
                ++switches_;
            } else {
                streaming_ = !streaming_;
            }
            begin(Phase::kSettle, frames_total);
        }
        break;
    }
    return streaming_;
}

} // namespace vhostd::dataplane
