// The PMD's sleep protocol (dataplane/idle.hpp, Pmd::try_sleep), driven
// deterministically: the race the protocol exists for — a guest publishing a
// buffer and kicking between the PMD's "sleeping" and its FUTEX_WAIT — is
// staged from the test hook that runs exactly there.

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "dataplane/idle.hpp"
#include "dataplane/pmd.hpp"
#include "dataplane/qsbr.hpp"
#include "dataplane/snapshot.hpp"
#include "tests/fakes/fake_split_driver.hpp"
#include "tests/fakes/guest_memory.hpp"
#include "virtio/split_queue.hpp"

namespace vhostd::dataplane {
namespace {

using namespace std::chrono_literals;
using protocol::bit;
namespace vf = protocol::vf;

struct SleepRig {
    explicit SleepRig(uint64_t features, uint32_t max_sleep_us)
        : mem(1 << 20), table(mem.table()), drv(mem, 256), qsbr(1) {
        auto ring = drv.ring(*table, features);
        slot.state = virtio::QueueState::start(ring, 0);
        virtio::enable_notifications(ring, slot.state, false); // busy-polling state
        rings.memory = table;
        rings.tx.push_back(VhostRings::Ring{ring, &slot, -1, -1, 1, 1});
        PortEntry port;
        port.kind = PortKind::VhostUser;
        port.id = 0;
        port.vhost = &rings;
        port.health = &health;
        snap.ports.push_back(port);
        snap.sources.push_back({Source{0, &rings.tx[0], 0}});
        snap.idle = {config::IdleMode::Adaptive, 200, max_sleep_us};
        snap.mode = config::SwitchMode::Xconnect;
        pointer.store(&snap);
        pmd = std::make_unique<Pmd>(0, qsbr, pointer, stop, control);
        qsbr.online(qsbr.reader(0));
    }

    // What the guest sees in used.flags: does it have to kick?
    [[nodiscard]] bool guest_must_kick() const {
        const auto& r = rings.tx[0].ring;
        if (r.event_idx) {
            // With EVENT_IDX the guest kicks when avail.idx passes avail_event.
            return *r.avail_event == slot.state.last_avail_idx;
        }
        return (*r.used_flags & virtio::kUsedFNoNotify) == 0;
    }

    void guest_sends_frame() {
        std::vector<uint8_t> frame(12 + 60, 0xab);
        drv.send(frame);
    }

    fakes::GuestMemory mem;
    std::shared_ptr<const protocol::MemoryTable> table;
    fakes::FakeSplitDriver drv;
    RingSlot slot;
    PortHealth health;
    VhostRings rings;
    Snapshot snap;
    Qsbr qsbr;
    std::atomic<const Snapshot*> pointer{nullptr};
    std::atomic<bool> stop{false};
    PmdControl control;
    std::unique_ptr<Pmd> pmd;
};

class Idle : public ::testing::TestWithParam<bool> {
protected:
    [[nodiscard]] uint64_t features() const {
        return bit(vf::kVersion1) | (GetParam() ? bit(vf::kRingEventIdx) : 0);
    }
};

TEST_P(Idle, BacksOutWhenWorkIsAlreadyThere) {
    SleepRig rig(features(), 10'000'000);
    rig.guest_sends_frame();
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_FALSE(rig.pmd->try_sleep(rig.snap));
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
    EXPECT_EQ(rig.control.backouts.get(), 1u);
    EXPECT_EQ(rig.control.sleeps.get(), 0u);
    EXPECT_EQ(rig.control.word.load(), kAwake);
    if (!GetParam()) {
        // With EVENT_IDX "disabled" leaves avail_event behind: at most one
        // more kick per wrap (virtio/split_queue.hpp), so only flags apply.
        EXPECT_FALSE(rig.guest_must_kick()) << "busy again: kicks suppressed";
    }
}

struct HookArgs {
    SleepRig* rig;
    bool saw_notifications_on = false;
    bool saw_sleeping = false;
};

// Runs between "publish sleeping" (and the re-check) and FUTEX_WAIT: the
// guest makes a buffer available, sees that it must kick, and kicks; the
// control thread turns the kick into wake_pmd().
void guest_kicks_in_the_window(void* p) {
    auto* a = static_cast<HookArgs*>(p);
    a->saw_sleeping = a->rig->control.word.load() == kSleeping;
    a->rig->guest_sends_frame();
    a->saw_notifications_on = a->rig->guest_must_kick();
    if (a->saw_notifications_on) {
        wake_pmd(a->rig->control);
    }
}

TEST_P(Idle, KickBetweenSleepingAndWaitIsNotLost) {
    // A lost wake-up would sleep the full 10 s.
    SleepRig rig(features(), 10'000'000);
    HookArgs args{&rig};
    const auto t0 = std::chrono::steady_clock::now();
    const bool timed_out = rig.pmd->try_sleep(rig.snap, guest_kicks_in_the_window, &args);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
    EXPECT_FALSE(timed_out);
    EXPECT_TRUE(args.saw_sleeping);
    EXPECT_TRUE(args.saw_notifications_on) << "the guest must be asked to kick while we sleep";
    EXPECT_EQ(rig.control.sleeps.get(), 1u);
    EXPECT_EQ(rig.control.kick_wakeups.get(), 1u);
    EXPECT_EQ(rig.control.timeouts.get(), 0u);
    EXPECT_EQ(rig.control.word.load(), kAwake);
    if (!GetParam()) {
        EXPECT_FALSE(rig.guest_must_kick());
    }
    // And the frame is there to be polled.
    EXPECT_TRUE(virtio::has_pending(rig.rings.tx[0].ring, rig.slot.state));
}

TEST_P(Idle, WakeFromAnotherThreadEndsTheSleep) {
    SleepRig rig(features(), 10'000'000);
    std::thread waker([&] {
        // Wait until the PMD published "sleeping", then kick like the
        // control thread would.
        while (rig.control.word.load() != kSleeping) {
            std::this_thread::yield();
        }
        std::this_thread::sleep_for(20ms);
        rig.guest_sends_frame();
        EXPECT_TRUE(rig.guest_must_kick());
        wake_pmd(rig.control);
    });
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_FALSE(rig.pmd->try_sleep(rig.snap));
    waker.join();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
    EXPECT_EQ(rig.control.kick_wakeups.get(), 1u);
}

TEST_P(Idle, TimeoutBoundsTheSleep) {
    SleepRig rig(features(), 20'000); // 20 ms
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_TRUE(rig.pmd->try_sleep(rig.snap));
    const auto took = std::chrono::steady_clock::now() - t0;
    EXPECT_GE(took, 15ms);
    EXPECT_LT(took, 5s);
    EXPECT_EQ(rig.control.timeouts.get(), 1u);
    EXPECT_EQ(rig.control.word.load(), kAwake);
}

TEST_P(Idle, WakerIgnoresABusyPmd) {
    SleepRig rig(features(), 20'000);
    EXPECT_FALSE(wake_pmd(rig.control));
    EXPECT_EQ(rig.control.kick_wakeups.get(), 0u);
}

TEST_P(Idle, SleepingPmdIsOfflineForQsbr) {
    // While asleep the PMD must not hold up snapshot reclamation.
    SleepRig rig(features(), 10'000'000);
    struct Args {
        SleepRig* rig;
        bool synced = false;
    } args{&rig};
    auto hook = [](void* p) {
        auto* a = static_cast<Args*>(p);
        a->synced = a->rig->qsbr.synchronize(1'000'000);
        wake_pmd(a->rig->control);
    };
    (void)rig.pmd->try_sleep(rig.snap, hook, &args);
    EXPECT_TRUE(args.synced);
}

INSTANTIATE_TEST_SUITE_P(Notification, Idle, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "EventIdx" : "Flags"; });

} // namespace
} // namespace vhostd::dataplane
