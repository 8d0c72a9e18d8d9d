#include "dataplane/idle.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>

#include <fmt/format.h>

namespace vhostd::dataplane {

namespace {

// epoll_pwait2 (Linux 5.11) takes a timespec; where it is missing (an older
// kernel, or valgrind 3.19, which does not know the syscall) epoll_wait with
// the timeout rounded up to whole milliseconds does the same job, coarser.
std::atomic<bool> g_no_pwait2{false};

int epoll_wait_ts(int epfd, epoll_event* events, int max, const timespec* ts) noexcept {
    if (!g_no_pwait2.load(std::memory_order_relaxed)) {
        const int n = ::epoll_pwait2(epfd, events, max, ts, nullptr);
        if (n >= 0 || errno != ENOSYS) {
            return n;
        }
        g_no_pwait2.store(true, std::memory_order_relaxed);
    }
    int ms = -1;
    if (ts != nullptr) {
        const uint64_t ns = static_cast<uint64_t>(ts->tv_sec) * 1'000'000'000ull +
                            static_cast<uint64_t>(ts->tv_nsec);
        ms = static_cast<int>(std::min<uint64_t>((ns + 999'999) / 1'000'000, INT32_MAX));
    }
    return ::epoll_wait(epfd, events, max, ms);
}

} // namespace

Status PmdControl::open() {
    epoll.reset(::epoll_create1(EPOLL_CLOEXEC));
    if (!epoll) {
        return make_error(fmt::format("PMD epoll_create1: {}", std::strerror(errno)));
    }
    wake_fd.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!wake_fd) {
        return make_error(fmt::format("PMD wake eventfd: {}", std::strerror(errno)));
    }
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLET;
    ev.data.u64 = kWakeTag;
    if (::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, wake_fd.get(), &ev) != 0) {
        return make_error(fmt::format("PMD epoll_ctl(wake eventfd): {}", std::strerror(errno)));
    }
    return Ok{};
}

void drain_wake_events(PmdControl& pmd) noexcept {
    epoll_event events[16];
    const timespec zero{};
    while (epoll_wait_ts(pmd.epoll.get(), events, 16, &zero) == 16) {
    }
}

WakeCause wait_for_wake(PmdControl& pmd, uint32_t timeout_us) noexcept {
    epoll_event events[16];
    const timespec ts{static_cast<time_t>(timeout_us / 1'000'000),
                      static_cast<long>(timeout_us % 1'000'000) * 1000};
    int n;
    do {
        n = epoll_wait_ts(pmd.epoll.get(), events, 16, timeout_us == 0 ? nullptr : &ts);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {
        return WakeCause::Timeout;
    }
    for (int i = 0; i < n; ++i) {
        if (events[i].data.u64 == kKickTag) {
            return WakeCause::Kick;
        }
    }
    return WakeCause::Control;
}

bool wake_pmd(PmdControl& pmd) noexcept {
    if (pmd.word.exchange(kAwake, std::memory_order_seq_cst) == kSleeping) {
        const uint64_t one = 1;
        // EAGAIN (counter saturated) still leaves the eventfd readable: the
        // PMD is woken either way.
        [[maybe_unused]] const ssize_t rc = ::write(pmd.wake_fd.get(), &one, sizeof(one));
        return true;
    }
    return false;
}

} // namespace vhostd::dataplane
