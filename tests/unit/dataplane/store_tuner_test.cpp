// StoreTuner: keeps the kind of RX store that costs fewer busy cycles per
// frame, measured in alternating windows.

#include "dataplane/store_tuner.hpp"

#include <gtest/gtest.h>

namespace vhostd::dataplane {
namespace {

// Drives a tuner with passes of 32 frames whose cost depends on the mode it
// asks for, as a PMD's loop does.
class Traffic {
public:
    explicit Traffic(StoreTuner& t) : tuner_(t) {}
    // Runs `frames` more frames at `cached` / `streamed` cycles per frame.
    void run(uint64_t frames, uint64_t cached, uint64_t streamed) {
        for (uint64_t done = 0; done < frames; done += kPass) {
            total_ += kPass;
            const uint64_t per_frame = tuner_.streaming() ? streamed : cached;
            tuner_.update(per_frame * kPass, total_);
        }
    }
    uint64_t total() const { return total_; }

private:
    static constexpr uint64_t kPass = 32;
    StoreTuner& tuner_;
    uint64_t total_ = 0;
};

constexpr uint64_t kRound = StoreTuner::kSettleFrames + 2 * StoreTuner::kWindowFrames + 64;

// Three rounds at these costs: the tuner probes streaming each round and
// never keeps it.
void expect_stays_ordinary(uint64_t cached, uint64_t streamed) {
    StoreTuner t;
    EXPECT_FALSE(t.streaming());
    Traffic traffic(t);
    traffic.run(3 * kRound, cached, streamed);
    EXPECT_FALSE(t.streaming());
    EXPECT_GE(t.probes(), 2u);
    EXPECT_EQ(t.switches(), 0u);
}

TEST(StoreTuner, StartsWithOrdinaryStoresAndKeepsThemWhileCheaper) {
    expect_stays_ordinary(182, 206);  // CPUs near: streaming costs more
}

TEST(StoreTuner, SwitchesWhenTheOtherKindIsCheaperAndBackWhenItIsNot) {
    StoreTuner t;
    Traffic traffic(t);
    traffic.run(kRound, 390, 271);  // CPUs far: streaming costs less
    EXPECT_TRUE(t.streaming());
    EXPECT_EQ(t.switches(), 1u);
    traffic.run(kRound, 390, 271);  // probing ordinary stores again: still worse
    EXPECT_TRUE(t.streaming());
    EXPECT_EQ(t.switches(), 1u);
    traffic.run(kRound, 182, 206);  // the CPUs moved back together
    EXPECT_FALSE(t.streaming());
    EXPECT_EQ(t.switches(), 2u);
}

TEST(StoreTuner, ProbesOnlyAfterSettling) {
    StoreTuner t;
    Traffic traffic(t);
    traffic.run(StoreTuner::kSettleFrames + StoreTuner::kWindowFrames - 64, 390, 271);
    EXPECT_FALSE(t.streaming());  // still measuring ordinary stores
    EXPECT_EQ(t.probes(), 0u);
    traffic.run(128, 390, 271);
    EXPECT_TRUE(t.streaming());  // the probe window
    EXPECT_EQ(t.probes(), 1u);
}

TEST(StoreTuner, ADifferenceWithinTheMarginChangesNothing) {
    expect_stays_ordinary(200, 196);  // 2% cheaper: under the 1/32 margin
}

TEST(StoreTuner, AFrameCountThatGoesBackStartsOver) {
    StoreTuner t;
    Traffic traffic(t);
    traffic.run(StoreTuner::kSettleFrames + 64, 390, 271);  // into the measuring window
    t.update(1000, 10);  // a new RxBatch: its count starts again
    Traffic fresh(t);
    fresh.run(StoreTuner::kSettleFrames - 64, 390, 271);
    EXPECT_EQ(t.probes(), 0u);  // settling again from the new count
}

} // namespace
} // namespace vhostd::dataplane
