// wake-floor: what waking a sleeping thread costs on this host, without vhostd.
//
// The reference for vhostd's idle wake-ups (`tools/bench idle`). A waiter
// thread, pinned to --waiter-cpu, sleeps in epoll_pwait2 on an eventfd
// registered edge-triggered: the same wait an idle vhostd PMD does on its
// guests' kick eventfds (dataplane/idle.cpp). A sender, pinned to
// --sender-cpu, stays silent for --gap-us, takes a timestamp, writes the
// eventfd and spins until the waiter has stored the time at which it ran
// again. The difference is one wake-up: the kernel's and the hypervisor's
// share of any sleeping poller's latency, before it has done any work.
//
// vhost-ping's round trip through an adaptive vhostd minus its round trip
// through a busy-polling one is vhostd's wake-up cost; this tool measures the
// part of it no back-end can avoid on this machine (on a VM, a halted vCPU
// has to be woken by the hypervisor).
//
// Output: a summary line; with --json one line {"result": {...}}; with
// --samples FILE one line per wake-up, "INDEX NANOSECONDS" (the format of
// vhost-ping's samples, so the same parser reads both).

#include <pthread.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "vhost-ping/rtt_stats.hpp"

namespace {

struct Options {
    unsigned waiter_cpu = 1;
    unsigned sender_cpu = 0;
    uint64_t gap_us = 1000;
    uint64_t count = 1000;
    uint64_t timeout_ms = 1000;
    bool json = false;
    std::string samples;
};

uint64_t now_ns() noexcept {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

void say(const char* fmt, const std::string& arg) {
    std::fprintf(stderr, "wake-floor: error: ");
    std::fprintf(stderr, fmt, arg.c_str());
    std::fprintf(stderr, "\n");
}

// Pins the calling thread; false (errno kept) if the CPU is not available.
bool pin(unsigned cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    const int rc = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
    errno = rc;
    return rc == 0;
}

// epoll_pwait2 with no timeout, or epoll_wait where the kernel (before 5.11)
// or valgrind does not have it: the fallback vhostd's PMDs use too.
int wait_forever(int epfd, epoll_event* ev) {
    const int n = ::epoll_pwait2(epfd, ev, 1, nullptr, nullptr);
    if (n < 0 && errno == ENOSYS) {
        return ::epoll_wait(epfd, ev, 1, -1);
    }
    return n;
}

class Floor {
public:
    explicit Floor(const Options& o) : opt_(o) {}
    ~Floor() {
        for (const int fd : {efd_, epfd_}) {
            if (fd >= 0) {
                ::close(fd);
            }
        }
    }
    Floor(const Floor&) = delete;
    Floor& operator=(const Floor&) = delete;

    int run();

private:
    void waiter();
    bool kick();
    int report() const;

    const Options& opt_;
    int efd_ = -1;
    int epfd_ = -1;
    std::atomic<bool> stop_{false};
    std::atomic<bool> ready_{false};
    std::atomic<int> waiter_error_{0};
    std::atomic<uint64_t> woke_at_{0};  // the waiter's clock after each wake-up
    std::vector<uint64_t> samples_ns_;   // write -> waiter running, per wake-up
    uint64_t lost_ = 0;                  // wake-ups not seen within --timeout-ms
};

void Floor::waiter() {
    if (!pin(opt_.waiter_cpu)) {
        waiter_error_.store(errno);
        ready_.store(true);
        return;
    }
    ready_.store(true, std::memory_order_release);
    while (!stop_.load(std::memory_order_acquire)) {
        epoll_event ev{};
        const int n = wait_forever(epfd_, &ev);
        if (n < 0 && errno != EINTR) {
            waiter_error_.store(errno);
            return;
        }
        if (n > 0) {
            // Release: the sender's acquire load sees a complete timestamp.
            woke_at_.store(now_ns(), std::memory_order_release);
        }
    }
}

// One wake-up: the write, then spin until the waiter reports (or time out).
bool Floor::kick() {
    woke_at_.store(0, std::memory_order_relaxed);
    const uint64_t one = 1;
    const uint64_t t0 = now_ns();
    if (::write(efd_, &one, sizeof(one)) != static_cast<ssize_t>(sizeof(one))) {
        return false;
    }
    const uint64_t deadline = t0 + opt_.timeout_ms * 1'000'000u;
    for (;;) {
        const uint64_t woke = woke_at_.load(std::memory_order_acquire);
        if (woke != 0) {
            samples_ns_.push_back(woke > t0 ? woke - t0 : 0);
            return true;
        }
        if (now_ns() > deadline) {
            ++lost_;
            return true;
        }
    }
}

int Floor::run() {
    efd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (efd_ < 0 || epfd_ < 0) {
        say("eventfd/epoll: %s", std::strerror(errno));
        return 1;
    }
    // Edge-triggered and never read, like vhostd's registration of kick fds
    // (dataplane/kick_registry.cpp): every write is one event.
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLET;
    if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, efd_, &ev) != 0) {
        say("epoll_ctl: %s", std::strerror(errno));
        return 1;
    }
    if (!pin(opt_.sender_cpu)) {
        say("cannot run on --sender-cpu: %s", std::strerror(errno));
        return 2;
    }
    std::thread t([this] { waiter(); });
    while (!ready_.load(std::memory_order_acquire)) {
        std::this_thread::yield();
    }
    int rc = 0;
    if (const int err = waiter_error_.load(); err != 0) {
        say("cannot run on --waiter-cpu: %s", std::strerror(err));
        rc = 2;
    }
    samples_ns_.reserve(opt_.count);
    const timespec gap{static_cast<time_t>(opt_.gap_us / 1'000'000),
                       static_cast<long>(opt_.gap_us % 1'000'000 * 1000)};
    for (uint64_t i = 0; rc == 0 && i < opt_.count; ++i) {
        // The waiter is asleep again well before the gap ends: it only stores
        // a timestamp after each wake-up.
        ::clock_nanosleep(CLOCK_MONOTONIC, 0, &gap, nullptr);
        if (!kick()) {
            say("write to the eventfd: %s", std::strerror(errno));
            rc = 1;
        }
        if (const int err = waiter_error_.load(); err != 0) {
            say("the waiter's epoll_pwait2 failed: %s", std::strerror(err));
            rc = 1;
        }
    }
    stop_.store(true, std::memory_order_release);
    const uint64_t one = 1;
    [[maybe_unused]] const ssize_t w = ::write(efd_, &one, sizeof(one));
    t.join();
    if (rc != 0) {
        return rc;
    }
    return report();
}

int Floor::report() const {
    if (!opt_.samples.empty()) {
        FILE* f = std::fopen(opt_.samples.c_str(), "w");
        if (f == nullptr) {
            say("cannot write %s", opt_.samples + ": " + std::strerror(errno));
            return 1;
        }
        for (size_t i = 0; i < samples_ns_.size(); ++i) {
            std::fprintf(f, "%zu %" PRIu64 "\n", i, samples_ns_[i]);
        }
        if (std::fclose(f) != 0) {
            say("cannot write %s", opt_.samples);
            return 1;
        }
    }
    const vhost_ping::RttSummary s = vhost_ping::summarize(samples_ns_);
    std::printf("%" PRIu64 " wake-ups of a thread on CPU %u (epoll_pwait2 on an eventfd) by CPU %u "
                "after %" PRIu64 " us idle gaps: p50 %.1f p90 %.1f p99 %.1f max %.1f us, %" PRIu64
                " not seen within %" PRIu64 " ms\n",
                opt_.count, opt_.waiter_cpu, opt_.sender_cpu, opt_.gap_us, s.p50_us, s.p90_us, s.p99_us,
                s.max_us, lost_, opt_.timeout_ms);
    if (opt_.json) {
        std::printf("{\"result\": {\"waiter_cpu\": %u, \"sender_cpu\": %u, \"gap_us\": %" PRIu64
                    ", \"count\": %" PRIu64 ", \"lost\": %" PRIu64
                    ", \"p50_us\": %.3f, \"p90_us\": %.3f, \"p99_us\": %.3f, \"max_us\": %.3f}}\n",
                    opt_.waiter_cpu, opt_.sender_cpu, opt_.gap_us, opt_.count, lost_, s.p50_us, s.p90_us,
                    s.p99_us, s.max_us);
    }
    std::fflush(stdout);
    return lost_ == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    Options opt;
    CLI::App app{"wake-floor: how long waking a thread asleep in epoll_pwait2 takes on this host "
                 "(the floor under any sleeping poller's wake-up latency)"};
    app.add_option("--waiter-cpu", opt.waiter_cpu, "CPU of the sleeping thread (vhostd's PMD core)")
        ->capture_default_str();
    app.add_option("--sender-cpu", opt.sender_cpu, "CPU of the thread that wakes it (the guest's)")
        ->capture_default_str();
    app.add_option("--gap-us", opt.gap_us, "idle time before each wake-up, microseconds")
        ->check(CLI::Range(uint64_t{1}, uint64_t{3'600'000'000}))
        ->capture_default_str();
    app.add_option("--count,-c", opt.count, "wake-ups to measure")
        ->check(CLI::Range(uint64_t{1}, uint64_t{10'000'000}))
        ->capture_default_str();
    app.add_option("--timeout-ms", opt.timeout_ms, "a wake-up not seen within this counts as lost")
        ->check(CLI::Range(uint64_t{1}, uint64_t{60'000}))
        ->capture_default_str();
    app.add_flag("--json", opt.json, "also print the result as one line of JSON");
    app.add_option("--samples", opt.samples, "write every wake-up's latency (ns) to this file");
    CLI11_PARSE(app, argc, argv);
    if (opt.waiter_cpu == opt.sender_cpu) {
        say("--waiter-cpu and --sender-cpu must differ (%s)", std::to_string(opt.waiter_cpu));
        return 2;
    }
    Floor floor(opt);
    return floor.run();
}
