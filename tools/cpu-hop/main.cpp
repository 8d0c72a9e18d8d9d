// cpu-hop: what moving one cache line between two CPUs costs on this host.
//
// A switch between guests lives on such moves: every descriptor, ring index
// and frame line a guest's CPU writes has to travel to the PMD's CPU, and
// back. On a VM the hypervisor places the two vCPUs, and may move them
// whenever they are idle; on this kind of host a line's round trip costs
// about four times more when they land on distant cores (another L3 slice)
// than on near ones, and the packet rate of every back-end follows.
// `tools/bench` runs this tool around each run to say which placement the
// run had (docs/performance.md).
//
// Two threads, pinned to --cpus A,B, pass a counter back and forth in one
// cache line: A writes an odd value and spins until B has answered with the
// next even one. The median round trip of --rounds rounds of --count passes
// is printed in TSC cycles (the unit of vhostd's busy cycles per frame) and
// nanoseconds. Both CPUs must be free: a busy CPU makes the round trip a
// scheduler time slice, and the run fails after --timeout-ms.
//
// Output: a summary line; with --json one line {"result": {...}}.

#include <pthread.h>
#include <sched.h>
#include <x86intrin.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

namespace {

struct Options {
    std::vector<unsigned> cpus{1, 0};
    uint64_t count = 20000;
    unsigned rounds = 5;
    uint64_t timeout_ms = 2000;
    bool json = false;
};

uint64_t now_ns() noexcept {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

// Pins the calling thread; the error number, 0 on success.
int pin(unsigned cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

struct alignas(64) Line {
    std::atomic<uint64_t> value{0};
};

struct Round {
    uint64_t cycles;
    uint64_t ns;
};

class Hop {
public:
    explicit Hop(const Options& o) : opt_(o) {}
    int run();

private:
    void answer();

    const Options& opt_;
    Line line_;
    alignas(64) std::atomic<bool> stop_{false};
    std::atomic<int> answer_error_{-1};  // -1 until the answering thread is pinned
};

// The B side: turns every odd value into the next even one.
void Hop::answer() {
    const int err = pin(opt_.cpus[1]);
    answer_error_.store(err, std::memory_order_release);
    if (err != 0) {
        return;
    }
    uint64_t seen = 0;
    while (!stop_.load(std::memory_order_relaxed)) {
        // Acquire/release pair with the A side's: each answer is a new store
        // that has to take the line back from the other CPU.
        const uint64_t v = line_.value.load(std::memory_order_acquire);
        if (v != seen && (v & 1u) != 0) {
            seen = v + 1;
            line_.value.store(seen, std::memory_order_release);
        }
    }
}

int Hop::run() {
    if (const int err = pin(opt_.cpus[0]); err != 0) {
        std::fprintf(stderr, "cpu-hop: error: cannot run on CPU %u: %s\n", opt_.cpus[0], std::strerror(err));
        return 2;
    }
    std::thread t([this] { answer(); });
    int err = -1;
    while ((err = answer_error_.load(std::memory_order_acquire)) < 0) {
        std::this_thread::yield();
    }
    int rc = 0;
    if (err != 0) {
        std::fprintf(stderr, "cpu-hop: error: cannot run on CPU %u: %s\n", opt_.cpus[1], std::strerror(err));
        rc = 2;
    }
    std::vector<Round> rounds;
    uint64_t v = 0;
    const uint64_t deadline = now_ns() + opt_.timeout_ms * 1'000'000u;
    for (unsigned r = 0; rc == 0 && r < opt_.rounds; ++r) {
        const uint64_t t0 = now_ns();
        const uint64_t c0 = __rdtsc();
        for (uint64_t i = 0; i < opt_.count && rc == 0; ++i) {
            line_.value.store(++v, std::memory_order_release);
            ++v;
            // The clock is read every 4096 spins, never in a round trip that
            // is answered at once: it would be timed too.
            for (uint32_t spins = 1; line_.value.load(std::memory_order_acquire) != v; ++spins) {
                if ((spins & 0xFFFu) == 0 && now_ns() > deadline) {
                    std::fprintf(stderr,
                                 "cpu-hop: error: no answer from CPU %u within %llu ms; is another "
                                 "thread busy on CPU %u or %u?\n",
                                 opt_.cpus[1], static_cast<unsigned long long>(opt_.timeout_ms), opt_.cpus[0],
                                 opt_.cpus[1]);
                    rc = 1;
                    break;
                }
            }
        }
        if (rc == 0) {
            rounds.push_back(Round{(__rdtsc() - c0) / opt_.count, (now_ns() - t0) / opt_.count});
        }
    }
    stop_.store(true, std::memory_order_relaxed);
    t.join();
    if (rc != 0) {
        return rc;
    }
    std::vector<Round> sorted = rounds;
    std::sort(sorted.begin(), sorted.end(), [](const Round& a, const Round& b) { return a.cycles < b.cycles; });
    const Round median = sorted[sorted.size() / 2];
    if (opt_.json) {
        std::string list;
        for (const Round& r : rounds) {
            list += (list.empty() ? "" : ", ") + std::to_string(r.cycles);
        }
        std::printf("{\"result\": {\"cpus\": [%u, %u], \"count\": %llu, \"round_trip_cycles\": %llu, "
                    "\"round_trip_ns\": %llu, \"rounds_cycles\": [%s]}}\n",
                    opt_.cpus[0], opt_.cpus[1], static_cast<unsigned long long>(opt_.count),
                    static_cast<unsigned long long>(median.cycles), static_cast<unsigned long long>(median.ns),
                    list.c_str());
    } else {
        std::printf("cpu-hop: CPU %u <-> CPU %u: one cache line's round trip %llu TSC cycles (%llu ns), "
                    "median of %zu rounds of %llu\n",
                    opt_.cpus[0], opt_.cpus[1], static_cast<unsigned long long>(median.cycles),
                    static_cast<unsigned long long>(median.ns), rounds.size(),
                    static_cast<unsigned long long>(opt_.count));
    }
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    Options opt;
    CLI::App app{"cpu-hop: the round trip of one cache line between two CPUs"};
    app.add_option("--cpus", opt.cpus, "the two CPUs, A,B (A measures)")->expected(2)->delimiter(',');
    app.add_option("--count", opt.count, "round trips per round")->check(CLI::Range(uint64_t{1}, uint64_t{100'000'000}));
    app.add_option("--rounds", opt.rounds, "rounds; the median is printed")->check(CLI::Range(1u, 1000u));
    app.add_option("--timeout-ms", opt.timeout_ms, "give up after this long")->check(CLI::Range(uint64_t{1}, uint64_t{600'000}));
    app.add_flag("--json", opt.json, "one JSON line");
    CLI11_PARSE(app, argc, argv);
    if (opt.cpus[0] == opt.cpus[1]) {
        std::fprintf(stderr, "cpu-hop: error: --cpus needs two different CPUs, got %u twice\n", opt.cpus[0]);
        return 2;
    }
    Hop hop(opt);
    return hop.run();
}
