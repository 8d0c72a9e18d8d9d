#pragma once
// Idle PMDs sleep on a futex (DESIGN.md "Idle cores"). One word per PMD:
//
//   PMD (Pmd::try_sleep)                      control thread (wake)
//   enable guest notifications (full fence)   kick eventfd read completes
//   word = kSleeping            (seq_cst)     if word.exchange(kAwake) == kSleeping:
//   re-check every ring; work? -> back out        FUTEX_WAKE(word)
//   FUTEX_WAIT(word, kSleeping, timeout)
//   word = kAwake
//
// No wake-up is lost: a guest that made a buffer available after the PMD's
// re-check saw notifications enabled (the fence in enable_notifications pairs
// with the driver's barrier between publishing avail.idx and reading the
// flags) and kicked; the kick makes the control thread flip the word, so the
// FUTEX_WAIT either returns at once (word no longer kSleeping) or is woken.
// The waker writes only when the word says kSleeping, so a busy PMD costs the
// control thread nothing but an atomic exchange per kick.

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

#include "dataplane/stats.hpp"

namespace vhostd::dataplane {

inline constexpr uint32_t kAwake = 0;
inline constexpr uint32_t kSleeping = 1;

struct alignas(64) PmdControl {
    std::atomic<uint32_t> word{kAwake};
    // Moved by the PMD once per poll-loop iteration (and sleep); the
    // watchdog's health check (Dataplane::stalled_pmds) reads it.
    std::atomic<uint64_t> heartbeat{0};
    Counter sleeps;         // times the PMD went to sleep
    Counter kick_wakeups;   // woken by a guest kick (or reconfiguration)
    Counter timeouts;       // woke because max_sleep_us passed
    Counter backouts;       // work raced in between "sleeping" and the wait
    Counter busy_polls;     // loop iterations that found work
    Counter idle_polls;     // loop iterations that found none
    // TSC cycles spent in loop iterations that found work / found none (a
    // sleep counts as idle). Written by the PMD thread only.
    Counter busy_cycles;
    Counter idle_cycles;
};

// FUTEX_WAIT while *word == expected, for at most timeout_us. Returns at once
// if the word already differs.
inline void futex_wait(std::atomic<uint32_t>& word, uint32_t expected, uint32_t timeout_us) noexcept {
    timespec ts{static_cast<time_t>(timeout_us / 1'000'000),
                static_cast<long>(timeout_us % 1'000'000) * 1000};
    static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t));
    ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAIT_PRIVATE, expected, &ts,
              nullptr, 0);
}

// Control thread: wake the PMD if (and only if) it published kSleeping.
// Returns whether it was asleep.
inline bool wake_pmd(PmdControl& pmd) noexcept {
    if (pmd.word.exchange(kAwake, std::memory_order_seq_cst) == kSleeping) {
        ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(&pmd.word), FUTEX_WAKE_PRIVATE, 1, nullptr,
                  nullptr, 0);
        pmd.kick_wakeups.add(1);
        return true;
    }
    return false;
}

} // namespace vhostd::dataplane
