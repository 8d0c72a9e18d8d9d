#pragma once
// Idle PMDs sleep in epoll_pwait2 on their own rings' kick eventfds
// (DESIGN.md "Idle cores"). One control block per PMD:
//
//   PMD (Pmd::try_sleep)                      guest                control thread
//   drain stale epoll events                  avail.idx = n        if word.exchange(kAwake)
//   enable guest notifications (full fence)   fence                       == kSleeping:
//   word = kSleeping             (seq_cst)    flags/avail_event?       write(wake eventfd)
//   re-check every ring; work? -> back out    kick: write(kick fd)
//   epoll_pwait2(epoll, timeout)
//   word = kAwake
//
// No wake-up is lost: a guest that made a buffer available after the PMD's
// re-check saw notifications enabled (the fence in enable_notifications pairs
// with the driver's barrier between publishing avail.idx and reading the
// flags) and kicked. Every kick eventfd is registered edge-triggered in its
// PMD's epoll (KickRegistry), so a write queues an event whether or not the
// PMD is already waiting: the wait returns at once or is woken. A kick wakes
// the PMD directly, one hop, without passing through the control thread.
// Reconfiguration and stop use the word and the wake eventfd; the waker
// writes only when the word says kSleeping, so waking a busy PMD costs an
// atomic exchange and no syscall.
//
// Edge-triggered, the eventfds are never read: their counters only grow
// (2^64 kicks away from overflowing) and an event is queued per write.

#include <atomic>
#include <cstdint>

#include "dataplane/stats.hpp"
#include "protocol/result.hpp"
#include "protocol/unique_fd.hpp"

namespace vhostd::dataplane {

inline constexpr uint32_t kAwake = 0;
inline constexpr uint32_t kSleeping = 1;

// epoll data tags.
inline constexpr uint64_t kWakeTag = 0;
inline constexpr uint64_t kKickTag = 1;

struct alignas(64) PmdControl {
    std::atomic<uint32_t> word{kAwake};
    UniqueFd epoll;         // the PMD waits here: wake eventfd + its rings' kick eventfds
    UniqueFd wake_fd;       // eventfd written by wake_pmd()
    // Moved by the PMD once per poll-loop iteration (and sleep); the
    // watchdog's health check (Dataplane::stalled_pmds) reads it.
    std::atomic<uint64_t> heartbeat{0};
    Counter sleeps;         // times the PMD went to sleep
    Counter kick_wakeups;   // woken by a guest kick
    Counter control_wakeups;// woken by the control thread (reconfiguration, stop)
    Counter timeouts;       // woke because the sleep's timeout passed
    Counter backouts;       // work raced in between "sleeping" and the wait
    Counter busy_polls;     // loop iterations that found work
    Counter idle_polls;     // loop iterations that found none
    // TSC cycles spent in loop iterations that found work / found none (a
    // sleep counts as idle). Written by the PMD thread only.
    Counter busy_cycles;
    Counter idle_cycles;
    // RX writes (StoreTuner): frames whose first line was written with
    // streaming stores, and how often the tuner changed the kind of store
    // for good (not counting its probes).
    Counter streamed_frames;
    Counter store_switches;

    // Creates the epoll set and the wake eventfd (in it). Before any sleep.
    [[nodiscard]] Status open();
};

// PMD: throws away events queued while it was awake (edge-triggered kicks
// that arrived during a busy period), so the next wait does not end at once.
void drain_wake_events(PmdControl& pmd) noexcept;

enum class WakeCause : uint8_t { Timeout, Kick, Control };

// PMD: waits for a kick, a wake-up or `timeout_us` (0: no timeout).
WakeCause wait_for_wake(PmdControl& pmd, uint32_t timeout_us) noexcept;

// Control thread: wake the PMD if (and only if) it published kSleeping.
// Returns whether it was asleep.
bool wake_pmd(PmdControl& pmd) noexcept;

} // namespace vhostd::dataplane
