// The PMD's sleep protocol (dataplane/idle.hpp, Pmd::try_sleep), driven
// deterministically: the race the protocol exists for — a guest publishing a
// buffer and kicking between the PMD's "sleeping" and its wait — is staged
// from the test hook that runs exactly there. Kicks are real eventfd writes,
// registered with the PMD by the real KickRegistry.

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include <sys/eventfd.h>
#include <unistd.h>

#include "dataplane/idle.hpp"
#include "dataplane/kick_registry.hpp"
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
    // `kickable`: the ring has a kick eventfd (registered with the PMD);
    // otherwise it is polled without kicks and only the timeout ends a sleep.
    SleepRig(uint64_t features, uint32_t max_sleep_us, bool kickable = true)
        : mem(1 << 20), table(mem.table()), drv(mem, 256), qsbr(1) {
        EXPECT_TRUE(control.open());
        auto ring = drv.ring(*table, features);
        slot.state = virtio::QueueState::start(ring, 0);
        virtio::enable_notifications(ring, slot.state, false); // busy-polling state
        rings.memory = table;
        if (kickable) {
            kick.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
        }
        rings.tx.push_back(VhostRings::Ring{ring, &slot, -1, kick.get(), 1, 1});
        PortEntry port;
        port.kind = PortKind::VhostUser;
        port.id = 0;
        port.vhost = &rings;
        port.health = &health;
        snap.ports.push_back(port);
        snap.sources.push_back({Source{0, &rings.tx[0], 0}});
        snap.idle = {config::IdleMode::Adaptive, 200, max_sleep_us};
        snap.mode = config::SwitchMode::Xconnect;
        registry.update(snap);
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

    // What a guest driver does after publishing a buffer: kick if asked to.
    bool guest_kicks_if_asked() {
        if (!guest_must_kick()) {
            return false;
        }
        const uint64_t one = 1;
        EXPECT_EQ(::write(kick.get(), &one, sizeof(one)), 8);
        return true;
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
    UniqueFd kick;
    PmdControl control;
    KickRegistry registry{&control, 1};
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

// Runs between "publish sleeping" (and the re-check) and the wait: the guest
// makes a buffer available, sees that it must kick, and kicks.
void guest_kicks_in_the_window(void* p) {
    auto* a = static_cast<HookArgs*>(p);
    a->saw_sleeping = a->rig->control.word.load() == kSleeping;
    a->rig->guest_sends_frame();
    a->saw_notifications_on = a->rig->guest_kicks_if_asked();
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

TEST_P(Idle, KickFromAnotherThreadEndsTheSleep) {
    // Kickable: the PMD sleeps with no timeout, only the kick can end it.
    SleepRig rig(features(), 20'000);
    std::thread guest([&] {
        // Wait until the PMD published "sleeping", then send and kick.
        while (rig.control.word.load() != kSleeping) {
            std::this_thread::yield();
        }
        std::this_thread::sleep_for(100ms);
        rig.guest_sends_frame();
        EXPECT_TRUE(rig.guest_kicks_if_asked());
    });
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_FALSE(rig.pmd->try_sleep(rig.snap));
    guest.join();
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 90ms) << "no timeout while kickable";
    EXPECT_EQ(rig.control.kick_wakeups.get(), 1u);
    EXPECT_EQ(rig.control.timeouts.get(), 0u);
}

TEST_P(Idle, ControlWakeEndsTheSleep) {
    SleepRig rig(features(), 10'000'000);
    std::thread control([&] {
        while (rig.control.word.load() != kSleeping) {
            std::this_thread::yield();
        }
        std::this_thread::sleep_for(20ms);
        EXPECT_TRUE(wake_pmd(rig.control));
    });
    EXPECT_FALSE(rig.pmd->try_sleep(rig.snap));
    control.join();
    EXPECT_EQ(rig.control.control_wakeups.get(), 1u);
    EXPECT_EQ(rig.control.kick_wakeups.get(), 0u);
}

TEST_P(Idle, KicksWhileBusyDoNotEndTheNextSleep) {
    // Kicks queued while the PMD was awake are drained before it sleeps.
    SleepRig rig(features(), 20'000);
    const uint64_t one = 1;
    ASSERT_EQ(::write(rig.kick.get(), &one, sizeof(one)), 8);
    std::thread control([&] {
        while (rig.control.word.load() != kSleeping) {
            std::this_thread::yield();
        }
        std::this_thread::sleep_for(50ms);
        wake_pmd(rig.control);
    });
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_FALSE(rig.pmd->try_sleep(rig.snap));
    control.join();
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 40ms);
    EXPECT_EQ(rig.control.kick_wakeups.get(), 0u);
}

TEST_P(Idle, TimeoutBoundsTheSleepOfAPmdThatCannotBeKicked) {
    SleepRig rig(features(), 20'000, /*kickable=*/false); // 20 ms
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

TEST(KickRegistry, RegistersEachRingWithItsPmdAndForgetsRemovedOnes) {
    PmdControl pmds[2];
    ASSERT_TRUE(pmds[0].open());
    ASSERT_TRUE(pmds[1].open());
    UniqueFd k0(::eventfd(0, EFD_CLOEXEC)), k1(::eventfd(0, EFD_CLOEXEC));
    RingSlot s0, s1;
    VhostRings rings;
    rings.tx.push_back(VhostRings::Ring{{}, &s0, -1, k0.get(), 1, 7});
    rings.tx.push_back(VhostRings::Ring{{}, &s1, -1, k1.get(), 3, 7});
    Snapshot snap;
    snap.sources = {{Source{0, &rings.tx[0], 0}}, {Source{0, &rings.tx[1], 0}, Source{1, nullptr, 0}}};
    {
        KickRegistry reg(pmds, 2);
        reg.update(snap);
        EXPECT_EQ(reg.registered(), 2u);
        EXPECT_EQ(snap.kickable, (std::vector<uint8_t>{1, 0})) << "pmd1 also polls a DPDK queue";
        // A kick on ring 1 reaches pmd1's epoll, not pmd0's.
        pmds[1].word.store(kSleeping);
        const uint64_t one = 1;
        ASSERT_EQ(::write(k1.get(), &one, sizeof(one)), 8);
        EXPECT_EQ(wait_for_wake(pmds[1], 1'000'000), WakeCause::Kick);
        EXPECT_EQ(wait_for_wake(pmds[0], 10'000), WakeCause::Timeout);
        // Ring 1 goes away (and its fd with it); a new generation of ring 0
        // replaces the old registration.
        rings.tx[0].generation = 8;
        snap.sources = {{Source{0, &rings.tx[0], 0}}, {}};
        reg.update(snap);
        EXPECT_EQ(reg.registered(), 1u);
        EXPECT_EQ(snap.kickable, (std::vector<uint8_t>{1, 1})) << "no sources: nothing to time out for";
        ASSERT_EQ(::write(k1.get(), &one, sizeof(one)), 8);
        EXPECT_EQ(wait_for_wake(pmds[1], 10'000), WakeCause::Timeout) << "removed ring no longer wakes";
        ASSERT_EQ(::write(k0.get(), &one, sizeof(one)), 8);
        EXPECT_EQ(wait_for_wake(pmds[0], 1'000'000), WakeCause::Kick);
    }
    // The registry closed its dups: only the test's fds remain.
    const uint64_t one = 1;
    ASSERT_EQ(::write(k0.get(), &one, sizeof(one)), 8);
    EXPECT_EQ(wait_for_wake(pmds[0], 10'000), WakeCause::Timeout);
}

INSTANTIATE_TEST_SUITE_P(Notification, Idle, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "EventIdx" : "Flags"; });

} // namespace
} // namespace vhostd::dataplane
