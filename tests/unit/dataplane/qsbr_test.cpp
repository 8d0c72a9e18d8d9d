// Qsbr: the grace period between publishing a snapshot and freeing the old
// one (dataplane/qsbr.hpp). Reader threads are driven step by step with
// flags; every wait is bounded so a bug fails the test instead of hanging it.

#include "dataplane/qsbr.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

namespace vhostd::dataplane {
namespace {

using namespace std::chrono_literals;

// Waits until `cond` holds, for at most `limit`.
bool wait_for(const std::function<bool()>& cond, std::chrono::milliseconds limit = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!cond()) {
        if (std::chrono::steady_clock::now() > deadline) {
            return false;
        }
        std::this_thread::sleep_for(100us);
    }
    return true;
}

TEST(Qsbr, NoReadersReturnsAtOnce) {
    Qsbr q(0);
    EXPECT_EQ(q.readers(), 0u);
    EXPECT_TRUE(q.synchronize());
    EXPECT_TRUE(q.synchronize(0));
}

TEST(Qsbr, ReadersStartOffline) {
    Qsbr q(4);
    EXPECT_EQ(q.readers(), 4u);
    for (size_t i = 0; i < 4; ++i) {
        EXPECT_EQ(q.reader(i).seen.load(), Qsbr::kOffline);
    }
    EXPECT_TRUE(q.synchronize(0)) << "offline readers need no spin at all";
    EXPECT_TRUE(q.synchronize());
}

TEST(Qsbr, OfflineAgainAfterOnlineDoesNotBlock) {
    Qsbr q(2);
    q.online(q.reader(0));
    q.online(q.reader(1));
    q.offline(q.reader(0));
    q.offline(q.reader(1));
    EXPECT_TRUE(q.synchronize(0));
}

TEST(Qsbr, BoundedWaitFailsWhileAReaderIsOnlineAndNotQuiescent) {
    Qsbr q(2);
    q.online(q.reader(1));  // reader 0 stays offline
    EXPECT_FALSE(q.synchronize(1000));
    EXPECT_FALSE(q.synchronize(1000)) << "still not quiescent";
    q.offline(q.reader(1));
    EXPECT_TRUE(q.synchronize(0));
}

// Each synchronize() starts a new grace period: a quiescent point passed
// before it began proves nothing about what the reader loaded since.
TEST(Qsbr, QuiescentBeforeSynchronizeBeganDoesNotCount) {
    Qsbr q(1);
    q.online(q.reader(0));
    q.quiescent(q.reader(0));
    EXPECT_FALSE(q.synchronize(1000));
    q.quiescent(q.reader(0));  // after the failed call began, before the next
    EXPECT_FALSE(q.synchronize(1000));
    q.offline(q.reader(0));
    EXPECT_TRUE(q.synchronize(0));
}

// A reader thread that is online and holds "a pointer" blocks synchronize()
// until it passes a quiescent point, and only then.
TEST(Qsbr, SynchronizeWaitsForAnOnlineReaderToBeQuiescent) {
    // Reader 0 is the PMD under test. Reader 1 is a probe the test uses to
    // see that synchronize() has begun (it bumps the epoch, which a
    // quiescent() on the probe then records).
    Qsbr q(2);
    Qsbr::Reader& pmd = q.reader(0);
    Qsbr::Reader& probe = q.reader(1);

    std::atomic<bool> online{false};
    std::atomic<bool> go_quiescent{false};
    std::atomic<bool> go_exit{false};
    std::thread reader([&] {
        q.online(pmd);
        online.store(true);
        while (!go_quiescent.load()) {
            std::this_thread::yield();  // "reading the snapshot"
        }
        q.quiescent(pmd);
        while (!go_exit.load()) {
            std::this_thread::yield();
        }
        q.offline(pmd);
    });
    ASSERT_TRUE(wait_for([&] { return online.load(); }));

    q.quiescent(probe);
    const uint64_t epoch_before = probe.seen.load();
    std::atomic<bool> returned{false};
    std::atomic<bool> result{false};
    std::thread control([&] {
        result.store(q.synchronize());
        returned.store(true);
    });
    // Wait until synchronize() has started its grace period.
    ASSERT_TRUE(wait_for([&] {
        q.quiescent(probe);
        return probe.seen.load() != epoch_before;
    }));
    // It must not return while the reader is online and not quiescent.
    std::this_thread::sleep_for(50ms);
    EXPECT_FALSE(returned.load()) << "synchronize() returned while a reader could still hold the old snapshot";

    go_quiescent.store(true);
    EXPECT_TRUE(wait_for([&] { return returned.load(); })) << "synchronize() missed the quiescent point";
    EXPECT_TRUE(result.load());

    go_exit.store(true);
    go_quiescent.store(true);
    reader.join();
    if (!returned.load()) {
        q.offline(probe);
    }
    control.join();
}

TEST(Qsbr, ReaderGoingOfflineReleasesSynchronize) {
    Qsbr q(1);
    Qsbr::Reader& r = q.reader(0);
    q.online(r);
    std::atomic<bool> returned{false};
    std::thread control([&] {
        EXPECT_TRUE(q.synchronize());
        returned.store(true);
    });
    std::this_thread::sleep_for(20ms);
    EXPECT_FALSE(returned.load());
    q.offline(r);  // e.g. the PMD goes to sleep
    EXPECT_TRUE(wait_for([&] { return returned.load(); }));
    control.join();
}

// The use it exists for: a reader keeps dereferencing the published object
// while the writer swaps it and frees the old one after synchronize(). A
// reader that saw a freed object would see the poison value.
TEST(Qsbr, NoReaderSeesAReclaimedObject) {
    struct Obj {
        std::atomic<uint64_t> magic{0x5eed};
        uint64_t serial = 0;
    };
    constexpr uint64_t kAlive = 0x5eed;
    constexpr uint64_t kDead = 0xdead;
    constexpr int kSwaps = 2000;

    Qsbr q(2);
    std::atomic<Obj*> current{new Obj};
    std::atomic<bool> stop{false};
    std::atomic<int> started{0};
    std::atomic<uint64_t> bad{0};
    std::atomic<uint64_t> reads{0};
    auto reader = [&](size_t index) {
        Qsbr::Reader& r = q.reader(index);
        q.online(r);
        started.fetch_add(1);
        uint64_t n = 0;
        while (!stop.load(std::memory_order_relaxed)) {
            Obj* o = current.load(std::memory_order_acquire);
            for (int i = 0; i < 8; ++i) {
                if (o->magic.load(std::memory_order_relaxed) != kAlive) {
                    bad.fetch_add(1);
                }
            }
            ++n;
            reads.fetch_add(1, std::memory_order_relaxed);
            q.quiescent(r);
            if (n % 1024 == 0) {
                // Sleeping readers go offline and come back.
                q.offline(r);
                std::this_thread::yield();
                q.online(r);
            }
        }
        q.offline(r);
    };
    std::thread r0(reader, 0);
    std::thread r1(reader, 1);
    ASSERT_TRUE(wait_for([&] { return started.load() == 2; }));
    // Deleted objects are poisoned and kept (not returned to the allocator),
    // so a late reader reads poison instead of undefined memory.
    std::vector<std::unique_ptr<Obj>> graveyard;
    graveyard.reserve(kSwaps);
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    for (int i = 0; i < kSwaps; ++i) {
        auto* next = new Obj;
        next->serial = static_cast<uint64_t>(i) + 1;
        Obj* old = current.exchange(next, std::memory_order_acq_rel);
        const uint64_t reads_before = reads.load();
        EXPECT_TRUE(q.synchronize());
        old->magic.store(kDead, std::memory_order_relaxed);
        graveyard.emplace_back(old);
        // Let the readers read between swaps, so the swaps overlap reads.
        while (reads.load() < reads_before + 16 && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::yield();
        }
    }
    // On a loaded machine the readers may not have run yet: the check below
    // needs them to have read at least once.
    EXPECT_TRUE(wait_for([&] { return reads.load() > 0; }));
    stop.store(true);
    r0.join();
    r1.join();
    delete current.load();
    EXPECT_EQ(bad.load(), 0u);
    EXPECT_GT(reads.load(), static_cast<uint64_t>(kSwaps));
}

} // namespace
} // namespace vhostd::dataplane
