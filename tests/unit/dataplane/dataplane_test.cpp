// Dataplane with vhost-user ports only (no DPDK EAL): VhostUserPort::apply
// publishes a guest's rings, real PMD threads forward between guests whose
// memory is a memfd and whose drivers run on test threads, and apply cycles
// (the two-phase republish) lose nothing.
//
// While PMD threads run, the test's drivers publish avail.idx with release
// order and read used.idx with acquire order, as a guest driver does
// (virtio_wmb / virtio_rmb); the fake driver's plain accessors are used only
// for what no other thread reads at that time.

#include "dataplane/dataplane.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "config/config.hpp"
#include "dataplane/vhost_user_port.hpp"
#include "protocol/device.hpp"
#include "protocol/wire.hpp"
#include "tests/fakes/fake_split_driver.hpp"
#include "tests/fakes/guest_memory.hpp"
#include "virtio/split_ring.hpp"

namespace vhostd::dataplane {
namespace {

using namespace std::chrono_literals;
using protocol::bit;
namespace vf = protocol::vf;

constexpr uint64_t kV1 = bit(vf::kVersion1);
constexpr uint64_t kMiB = 1024 * 1024;
constexpr uint32_t kHdr = 12;  // VERSION_1 header

// Waits until `cond` holds, for at most `limit`.
bool wait_until(const std::function<bool()>& cond, std::chrono::milliseconds limit = 20s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!cond()) {
        if (std::chrono::steady_clock::now() > deadline) {
            return false;
        }
        std::this_thread::sleep_for(50us);
    }
    return true;
}

// ---- The guest side ----

std::atomic_ref<uint16_t> ring_u16(const fakes::GuestMemory& mem, uint64_t gpa) {
    return std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(mem.driver_ptr(gpa, 2)));
}

// avail.ring[idx] = head, then avail.idx + 1 with release order (the driver's
// write barrier before publishing avail.idx).
void publish(const fakes::GuestMemory& mem, const fakes::FakeSplitDriver& drv, uint16_t head) {
    auto idx = ring_u16(mem, drv.avail_gpa() + 2);
    const uint16_t i = idx.load(std::memory_order_relaxed);  // only the driver writes it
    drv.set_avail_ring_entry(static_cast<uint16_t>(i & (drv.size() - 1)), head);
    idx.store(static_cast<uint16_t>(i + 1), std::memory_order_release);
}
uint16_t used_idx(const fakes::GuestMemory& mem, const fakes::FakeSplitDriver& drv) {
    return ring_u16(mem, drv.used_gpa() + 2).load(std::memory_order_acquire);
}
uint16_t avail_idx(const fakes::GuestMemory& mem, const fakes::FakeSplitDriver& drv) {
    return ring_u16(mem, drv.avail_gpa() + 2).load(std::memory_order_relaxed);
}

// A guest with one queue pair in 32 MiB of memfd memory: vring 0 (RX) and
// vring 1 (TX).
struct Vm {
    explicit Vm(uint16_t rx_size = 256, uint16_t tx_size = 256, uint64_t features = kV1)
        : features(features), mem(32 * kMiB), table(mem.table()),
          rx(mem, rx_size, mem.gpa_base(), mem.gpa_base() + 16 * kMiB),
          tx(mem, tx_size, mem.gpa_base() + 1 * kMiB, mem.gpa_base() + 2 * kMiB) {}

    static protocol::LiveRing live(const fakes::FakeSplitDriver& drv, uint32_t index, uint16_t base,
                                   uint64_t generation) {
        protocol::LiveRing r;
        r.index = index;
        r.size = drv.size();
        r.desc_uva = drv.desc_uva();
        r.avail_uva = drv.avail_uva();
        r.used_uva = drv.used_uva();
        r.base = base;
        r.generation = generation;
        return r;
    }
    // What the session hands the port once both rings are started.
    [[nodiscard]] protocol::DeviceView view(uint64_t generation = 1, uint16_t rx_base = 0,
                                            uint16_t tx_base = 0) const {
        protocol::DeviceView v;
        v.features = features;
        v.memory = table;
        v.rings = {live(rx, 0, rx_base, generation), live(tx, 1, tx_base, generation)};
        return v;
    }
    // After GET_VRING_BASE on both rings (or a disconnect).
    [[nodiscard]] protocol::DeviceView stopped() const {
        protocol::DeviceView v;
        v.features = features;
        v.memory = table;
        return v;
    }

    uint64_t features;
    fakes::GuestMemory mem;
    std::shared_ptr<const protocol::MemoryTable> table;
    fakes::FakeSplitDriver rx;
    fakes::FakeSplitDriver tx;
};

// The guest's transmit side, run by one driver thread: single-descriptor
// chains, one buffer per descriptor, descriptors reused once completed.
class TxStream {
public:
    explicit TxStream(Vm& vm, uint32_t buf_len = 2048) : vm_(vm) {
        for (uint16_t i = 0; i < vm.tx.size(); ++i) {
            bufs_.push_back(vm.tx.alloc(buf_len));
            free_.push_back(static_cast<uint16_t>(vm.tx.size() - 1 - i));
        }
    }
    // Sends header + frame if a descriptor is free.
    bool try_send(std::span<const uint8_t> frame) {
        reap();
        if (free_.empty()) {
            return false;
        }
        const uint16_t id = free_.back();
        free_.pop_back();
        std::vector<uint8_t> bytes(kHdr, 0);
        bytes.insert(bytes.end(), frame.begin(), frame.end());
        vm_.tx.write_bytes(bufs_[id], bytes);
        vm_.tx.write_desc(id, bufs_[id], static_cast<uint32_t>(bytes.size()), 0, 0);
        publish(vm_.mem, vm_.tx, id);
        ++sent_;
        return true;
    }
    // Takes back what the device completed.
    void reap() {
        const uint16_t end = used_idx(vm_.mem, vm_.tx);
        while (seen_ != end) {
            const auto e = vm_.tx.used_elem(seen_++);
            EXPECT_EQ(e.len, 0u);
            free_.push_back(static_cast<uint16_t>(e.id));
            ++completed_;
        }
    }
    [[nodiscard]] uint64_t sent() const { return sent_; }
    [[nodiscard]] uint64_t completed() const { return completed_; }

private:
    Vm& vm_;
    std::vector<uint64_t> bufs_;
    std::vector<uint16_t> free_;
    uint16_t seen_ = 0;
    uint64_t sent_ = 0;
    uint64_t completed_ = 0;
};

// The guest's receive side: every RX descriptor posted with its own buffer,
// and re-posted as soon as the frame in it has been read.
class RxSink {
public:
    explicit RxSink(Vm& vm, uint32_t buf_len = 2048) : vm_(vm) {
        for (uint16_t i = 0; i < vm.rx.size(); ++i) {
            bufs_.push_back(vm.rx.alloc(buf_len));
            vm.rx.write_desc(i, bufs_[i], buf_len, virtio::kDescFWrite, 0);
        }
        for (uint16_t i = 0; i < vm.rx.size(); ++i) {
            publish(vm.mem, vm.rx, i);
        }
    }
    // Calls `f` with each frame (header stripped) delivered since the last
    // call; returns how many.
    size_t poll(const std::function<void(std::span<const uint8_t>)>& f) {
        const uint16_t end = used_idx(vm_.mem, vm_.rx);
        size_t n = 0;
        while (seen_ != end) {
            const auto e = vm_.rx.used_elem(seen_++);
            const auto bytes = vm_.rx.read_bytes(bufs_[e.id], e.len);
            EXPECT_GE(bytes.size(), kHdr);
            if (bytes.size() >= kHdr) {
                f(std::span<const uint8_t>(bytes).subspan(kHdr));
            }
            publish(vm_.mem, vm_.rx, static_cast<uint16_t>(e.id));
            ++n;
        }
        received_ += n;
        return n;
    }
    [[nodiscard]] uint64_t received() const { return received_; }

private:
    Vm& vm_;
    std::vector<uint64_t> bufs_;
    uint16_t seen_ = 0;
    uint64_t received_ = 0;
};

Mac mac_of(uint8_t n) { return Mac{0x02, 0x00, 0x00, 0x00, 0x00, n}; }
const Mac kBroadcast{0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

// Frame `seq` of stream `stream`: Ethernet header, seq, stream, a pattern.
std::vector<uint8_t> seq_frame(const Mac& dst, const Mac& src, uint8_t stream, uint64_t seq, size_t len = 64) {
    std::vector<uint8_t> f(len);
    std::copy(dst.begin(), dst.end(), f.begin());
    std::copy(src.begin(), src.end(), f.begin() + 6);
    f[12] = 0x88;
    f[13] = 0xb5;
    std::memcpy(&f[14], &seq, sizeof(seq));
    f[22] = stream;
    for (size_t i = 23; i < len; ++i) {
        f[i] = static_cast<uint8_t>(seq * 31 + i);
    }
    return f;
}
uint64_t seq_of(std::span<const uint8_t> f) {
    uint64_t s = ~uint64_t{0};
    if (f.size() >= 23) {
        std::memcpy(&s, &f[14], sizeof(s));
    }
    return s;
}

// ---- The data plane ----

config::PortConfig vhost_port(const std::string& name) {
    config::PortConfig p;
    p.name = name;
    p.type = config::PortType::VhostUser;
    p.path = "/nonexistent/vhostd-test-" + name + ".sock";  // never opened here
    p.queues = 1;
    return p;
}

std::unique_ptr<Dataplane> make_dataplane(config::SwitchMode mode, const std::vector<std::string>& ports,
                                          std::vector<std::pair<std::string, std::string>> xconnect = {},
                                          std::vector<unsigned> cores = {0},
                                          config::IdleMode idle = config::IdleMode::Poll) {
    config::Config cfg;
    cfg.source = "dataplane_test";
    cfg.pmd_cores = std::move(cores);
    // The test drivers never kick: with Adaptive idle a sleeping PMD finds
    // their frames only when its sleep times out (max_sleep_us).
    cfg.idle.mode = idle;
    cfg.switch_mode = mode;
    cfg.xconnect = std::move(xconnect);
    for (const auto& name : ports) {
        cfg.ports.push_back(vhost_port(name));
    }
    auto dp = Dataplane::create(cfg);
    if (!dp) {
        ADD_FAILURE() << dp.error().message;
        return nullptr;
    }
    return std::move(dp).value();
}

TEST(Dataplane, CreatesVhostUserPortsWithoutDpdk) {
    auto dp = make_dataplane(config::SwitchMode::L2, {"a", "b", "c"});
    ASSERT_NE(dp, nullptr);
    EXPECT_EQ(dp->port_count(), 3u);
    ASSERT_NE(dp->vhost_port("b"), nullptr);
    EXPECT_EQ(dp->vhost_port("b")->id(), 1);
    EXPECT_EQ(dp->vhost_port("b")->vrings(), 2u);
    EXPECT_EQ(dp->vhost_port("b")->live_rings(), 0u);
    EXPECT_EQ(dp->vhost_port("nope"), nullptr);
    ASSERT_TRUE(dp->start());
    dp->stop();
    dp->stop();  // idempotent
}

TEST(Dataplane, StartRefusesACoreThatDoesNotExist) {
    auto dp = make_dataplane(config::SwitchMode::L2, {"a"}, {}, {1023});
    ASSERT_NE(dp, nullptr);
    const auto s = dp->start();
    ASSERT_FALSE(s);
    EXPECT_NE(s.error().message.find("1023"), std::string::npos) << s.error().message;
}

// Busy-polling PMDs, and PMDs that sleep when idle (offline for QSBR; the
// test drivers never kick, so a sleeping PMD finds work on its timeout or
// when a publish wakes it).
class DataplaneIdle : public ::testing::TestWithParam<config::IdleMode> {};

INSTANTIATE_TEST_SUITE_P(Idle, DataplaneIdle,
                         ::testing::Values(config::IdleMode::Poll, config::IdleMode::Adaptive),
                         [](const auto& info) { return std::string(config::to_string(info.param)); });

TEST_P(DataplaneIdle, ApplyStartForwardStopReportsLastAvail) {
    auto dp = make_dataplane(config::SwitchMode::Xconnect, {"a", "b"}, {{"a", "b"}}, {0}, GetParam());
    ASSERT_NE(dp, nullptr);
    VhostUserPort* pa = dp->vhost_port("a");
    VhostUserPort* pb = dp->vhost_port("b");
    Vm va;
    Vm vb;
    RxSink a_rx(va);
    RxSink b_rx(vb);
    TxStream a_tx(va);
    TxStream b_tx(vb);

    EXPECT_EQ(pa->last_avail(1), std::nullopt) << "never ran";
    pa->apply(va.view());
    pb->apply(vb.view());
    EXPECT_EQ(pa->live_rings(), 2u);
    EXPECT_EQ(va.tx.used_flags(), virtio::kUsedFNoNotify) << "busy-polling PMDs ask for no kicks";
    ASSERT_TRUE(dp->start());

    std::vector<std::vector<uint8_t>> at_b;
    std::vector<std::vector<uint8_t>> at_a;
    for (uint64_t i = 0; i < 5; ++i) {
        ASSERT_TRUE(a_tx.try_send(seq_frame(mac_of(2), mac_of(1), 1, i)));
    }
    for (uint64_t i = 0; i < 3; ++i) {
        ASSERT_TRUE(b_tx.try_send(seq_frame(mac_of(1), mac_of(2), 2, i)));
    }
    ASSERT_TRUE(wait_until([&] {
        b_rx.poll([&](auto f) { at_b.emplace_back(f.begin(), f.end()); });
        a_rx.poll([&](auto f) { at_a.emplace_back(f.begin(), f.end()); });
        a_tx.reap();
        b_tx.reap();
        return at_b.size() >= 5 && at_a.size() >= 3 && a_tx.completed() == 5 && b_tx.completed() == 3;
    })) << "at b " << at_b.size() << ", at a " << at_a.size();
    ASSERT_EQ(at_b.size(), 5u);
    ASSERT_EQ(at_a.size(), 3u);
    for (uint64_t i = 0; i < 5; ++i) {
        EXPECT_EQ(at_b[i], seq_frame(mac_of(2), mac_of(1), 1, i));
    }
    for (uint64_t i = 0; i < 3; ++i) {
        EXPECT_EQ(at_a[i], seq_frame(mac_of(1), mac_of(2), 2, i));
    }
    EXPECT_EQ(pa->slot(1).stats.rx_packets.get(), 5u);
    EXPECT_EQ(pb->slot(0).stats.tx_packets.get(), 5u);

    // The front-end stops a's rings (GET_VRING_BASE): the data path's
    // position comes back, and a's TX ring is no longer read.
    pa->apply(va.stopped());
    EXPECT_EQ(pa->live_rings(), 0u);
    ASSERT_EQ(pa->last_avail(1), std::optional<uint16_t>(5)) << "TX: 5 chains consumed";
    ASSERT_EQ(pa->last_avail(0), std::optional<uint16_t>(3)) << "RX: 3 buffers consumed";
    EXPECT_EQ(avail_idx(va.mem, va.tx), 5u);

    ASSERT_TRUE(a_tx.try_send(seq_frame(mac_of(2), mac_of(1), 1, 5)));
    std::this_thread::sleep_for(20ms);
    EXPECT_EQ(used_idx(va.mem, va.tx), 5u) << "a stopped ring was read";
    EXPECT_EQ(pa->last_avail(1), std::optional<uint16_t>(5));

    // Restarted from where it stopped (SET_VRING_BASE): the waiting frame goes.
    pa->apply(va.view(/*generation=*/2, /*rx_base=*/*pa->last_avail(0), /*tx_base=*/*pa->last_avail(1)));
    ASSERT_TRUE(wait_until([&] {
        b_rx.poll([&](auto f) { at_b.emplace_back(f.begin(), f.end()); });
        return at_b.size() >= 6;
    }));
    EXPECT_EQ(at_b.back(), seq_frame(mac_of(2), mac_of(1), 1, 5));
    dp->stop();
    EXPECT_EQ(pa->slot(1).state.last_avail_idx, 6u);
}

TEST(Dataplane, BrokenPortIsIsolatedAndRecoversWhenItsRingsRestart) {
    auto dp = make_dataplane(config::SwitchMode::Xconnect, {"a", "b", "c", "d"}, {{"a", "b"}, {"c", "d"}});
    ASSERT_NE(dp, nullptr);
    VhostUserPort* pa = dp->vhost_port("a");
    Vm va;
    Vm vb;
    Vm vc;
    Vm vd;
    RxSink b_rx(vb);
    RxSink d_rx(vd);
    TxStream a_tx(va);
    TxStream c_tx(vc);
    pa->apply(va.view());
    dp->vhost_port("b")->apply(vb.view());
    dp->vhost_port("c")->apply(vc.view());
    dp->vhost_port("d")->apply(vd.view());
    ASSERT_TRUE(dp->start());

    ring_u16(va.mem, va.tx.avail_gpa() + 2).store(60000, std::memory_order_release);
    ASSERT_TRUE(wait_until([&] { return pa->health().broken.load(); }));
    ASSERT_NE(pa->health().reason.load(), nullptr);
    dp->report_health();
    EXPECT_TRUE(pa->health().reported.load());

    // c -> d is unaffected.
    ASSERT_TRUE(c_tx.try_send(seq_frame(mac_of(4), mac_of(3), 3, 0)));
    ASSERT_TRUE(wait_until([&] { return d_rx.poll([](auto) {}) > 0 || d_rx.received() > 0; }));

    // The front-end resets a's rings and starts them again.
    pa->apply(va.stopped());
    ring_u16(va.mem, va.tx.avail_gpa() + 2).store(0, std::memory_order_release);
    pa->apply(va.view(/*generation=*/2));
    EXPECT_FALSE(pa->health().broken.load());
    EXPECT_EQ(pa->health().reason.load(), nullptr);
    EXPECT_FALSE(pa->health().reported.load());
    ASSERT_TRUE(a_tx.try_send(seq_frame(mac_of(2), mac_of(1), 1, 0)));
    std::vector<uint8_t> got;
    ASSERT_TRUE(wait_until([&] {
        b_rx.poll([&](auto f) { got.assign(f.begin(), f.end()); });
        return !got.empty();
    }));
    EXPECT_EQ(got, seq_frame(mac_of(2), mac_of(1), 1, 0));
    dp->stop();
}

// vhost-user.rst "Ring states": a disabled ring keeps running; its TX is
// drained and discarded, its RX gets nothing. Enabling it again resumes.
TEST(Dataplane, DisabledRingsDrainTxAndReceiveNothing) {
    auto dp = make_dataplane(config::SwitchMode::Xconnect, {"a", "b"}, {{"a", "b"}});
    ASSERT_NE(dp, nullptr);
    VhostUserPort* pa = dp->vhost_port("a");
    VhostUserPort* pb = dp->vhost_port("b");
    Vm va;
    Vm vb;
    TxStream a_tx(va);
    TxStream b_tx(vb);
    RxSink a_rx(va);
    RxSink b_rx(vb);
    auto disabled = va.view();
    for (auto& r : disabled.rings) {
        r.enabled = false;
    }
    pa->apply(disabled);
    pb->apply(vb.view());
    ASSERT_TRUE(dp->start());

    ASSERT_TRUE(a_tx.try_send(seq_frame(mac_of(2), mac_of(1), 1, 0)));
    ASSERT_TRUE(wait_until([&] {
        a_tx.reap();
        return a_tx.completed() == 1;
    })) << "a disabled TX ring is still drained";
    EXPECT_EQ(pa->slot(1).stats.drop_no_route.get(), 1u);
    ASSERT_TRUE(b_tx.try_send(seq_frame(mac_of(1), mac_of(2), 2, 0)));
    ASSERT_TRUE(wait_until([&] {
        b_tx.reap();
        return b_tx.completed() == 1;
    }));
    std::this_thread::sleep_for(10ms);
    EXPECT_EQ(a_rx.poll([](auto) {}), 0u) << "a disabled RX ring receives nothing";
    EXPECT_EQ(b_rx.poll([](auto) {}), 0u);

    pa->apply(va.view());  // enabled, same generation: no restart
    ASSERT_TRUE(a_tx.try_send(seq_frame(mac_of(2), mac_of(1), 1, 1)));
    ASSERT_TRUE(b_tx.try_send(seq_frame(mac_of(1), mac_of(2), 2, 1)));
    std::vector<uint8_t> at_a;
    std::vector<uint8_t> at_b;
    ASSERT_TRUE(wait_until([&] {
        a_rx.poll([&](auto f) { at_a.assign(f.begin(), f.end()); });
        b_rx.poll([&](auto f) { at_b.assign(f.begin(), f.end()); });
        return !at_a.empty() && !at_b.empty();
    }));
    EXPECT_EQ(at_a, seq_frame(mac_of(1), mac_of(2), 2, 1));
    EXPECT_EQ(at_b, seq_frame(mac_of(2), mac_of(1), 1, 1));
    dp->stop();
}

// A stream a -> b runs through a PMD thread while the control thread
// re-applies a's view 1000 times (every other time with a new memory table,
// as after SET_MEM_TABLE): each apply takes a's rings out of the snapshot
// and puts them back. Every frame sent is accounted for: delivered to b or
// still available in a's TX ring, in order, none twice.
TEST_P(DataplaneIdle, ApplyCyclesOnTheSendingPortLoseNoFrame) {
    auto dp = make_dataplane(config::SwitchMode::Xconnect, {"a", "b"}, {{"a", "b"}}, {0}, GetParam());
    ASSERT_NE(dp, nullptr);
    VhostUserPort* pa = dp->vhost_port("a");
    VhostUserPort* pb = dp->vhost_port("b");
    Vm va(256, 256);
    Vm vb(1024, 256);
    TxStream a_tx(va, 256);
    RxSink b_rx(vb, 256);
    pa->apply(va.view());
    pb->apply(vb.view());
    ASSERT_TRUE(dp->start());

    std::atomic<bool> sending{true};
    std::atomic<bool> quit{false};
    std::atomic<uint64_t> out_of_order{0};
    std::atomic<uint64_t> a_tx_sent{0};
    uint64_t next_expected = 0;
    auto on_frame = [&](std::span<const uint8_t> f) {
        const uint64_t s = seq_of(f);
        if (s != next_expected ||
            !std::equal(f.begin(), f.end(), seq_frame(mac_of(2), mac_of(1), 1, s).begin())) {
            out_of_order.fetch_add(1);
        }
        next_expected = s + 1;
    };
    std::thread driver([&] {
        while (!quit.load()) {
            b_rx.poll(on_frame);
            // b's RX ring (1024) is refilled before every send, and a's TX
            // ring (256) bounds what the PMD can deliver until the next
            // refill: b never runs out of buffers.
            if (sending.load() && a_tx.try_send(seq_frame(mac_of(2), mac_of(1), 1, a_tx.sent()))) {
                a_tx_sent.store(a_tx.sent());
                continue;
            }
            a_tx.reap();
            std::this_thread::yield();
        }
    });

    // The stream flows before the first cycle.
    ASSERT_TRUE(wait_until([&] { return a_tx_sent.load() >= 1000; }));
    for (int i = 0; i < 1000; ++i) {
        auto view = va.view();
        if (i % 2 == 1) {
            view.memory = va.mem.table();  // a new mapping; the old one goes after the grace period
        }
        pa->apply(view);
    }
    sending.store(false);
    quit.store(true);
    driver.join();
    const uint64_t sent = a_tx.sent();
    EXPECT_GT(sent, 0u);

    // Stop a's rings: from here nothing of a's moves.
    pa->apply(va.stopped());
    const auto last = pa->last_avail(1);
    ASSERT_TRUE(last.has_value());
    const uint16_t pending = static_cast<uint16_t>(avail_idx(va.mem, va.tx) - *last);
    const uint64_t delivered = pb->slot(0).stats.tx_packets.get();
    EXPECT_EQ(delivered + pending, sent) << "delivered " << delivered << " + still available " << pending;
    EXPECT_EQ(pa->slot(1).stats.rx_packets.get(), delivered);
    const auto& bs = pb->slot(0).stats;
    EXPECT_EQ(bs.drop_no_buffer.get() + bs.drop_too_big.get() + bs.drop_broken.get(), 0u);
    EXPECT_EQ(pa->slot(1).stats.drop_no_route.get(), 0u);

    // Restart a's rings where they stopped: the rest arrives, in order.
    pa->apply(va.view(2, *pa->last_avail(0), *last));
    EXPECT_TRUE(wait_until(
        [&] {
            b_rx.poll(on_frame);
            return b_rx.received() >= sent;
        },
        60s))
        << "received " << b_rx.received() << " of " << sent;
    dp->stop();
    EXPECT_EQ(b_rx.received(), sent);
    EXPECT_EQ(out_of_order.load(), 0u);
}

// The same stream while the *receiving* port is re-applied: frames that
// reach b while its rings are out of the snapshot cannot be delivered, but
// each must at least be counted (stats.hpp: drop_no_route, "xconnect peer
// down"): sent = delivered + counted drops + still available.
TEST(Dataplane, ApplyCyclesOnTheReceivingPortCountEveryFrame) {
    auto dp = make_dataplane(config::SwitchMode::Xconnect, {"a", "b"}, {{"a", "b"}});
    ASSERT_NE(dp, nullptr);
    VhostUserPort* pa = dp->vhost_port("a");
    VhostUserPort* pb = dp->vhost_port("b");
    Vm va(256, 256);
    Vm vb(1024, 256);
    TxStream a_tx(va, 256);
    RxSink b_rx(vb, 256);
    pa->apply(va.view());
    pb->apply(vb.view());
    ASSERT_TRUE(dp->start());

    std::atomic<bool> quit{false};
    std::atomic<uint64_t> a_tx_sent{0};
    uint64_t last_seq = 0;
    uint64_t disorder = 0;
    std::thread driver([&] {
        while (!quit.load()) {
            b_rx.poll([&](std::span<const uint8_t> f) {
                const uint64_t s = seq_of(f);
                if (b_rx.received() > 0 && s <= last_seq) {
                    ++disorder;
                }
                last_seq = s;
            });
            if (a_tx.try_send(seq_frame(mac_of(2), mac_of(1), 1, a_tx.sent()))) {
                a_tx_sent.store(a_tx.sent());
                continue;
            }
            a_tx.reap();
            std::this_thread::yield();
        }
    });
    ASSERT_TRUE(wait_until([&] { return a_tx_sent.load() >= 1000; }));
    for (int i = 0; i < 300; ++i) {
        pb->apply(vb.view());
        // Let frames flow between cycles, so some meet b's rings out of the
        // snapshot and some find them back.
        const uint64_t before = a_tx_sent.load();
        wait_until([&] { return a_tx_sent.load() >= before + 50; }, 1s);
    }
    quit.store(true);
    driver.join();
    pa->apply(va.stopped());
    const uint16_t pending = static_cast<uint16_t>(avail_idx(va.mem, va.tx) - *pa->last_avail(1));
    const auto& as = pa->slot(1).stats;
    const auto& bs = pb->slot(0).stats;
    const uint64_t delivered = bs.tx_packets.get();
    const uint64_t dropped = as.drop_no_route.get() + as.errors.get() + bs.drop_no_buffer.get() +
                             bs.drop_too_big.get() + bs.drop_broken.get();
    EXPECT_EQ(as.rx_packets.get() + pending, a_tx.sent());
    EXPECT_EQ(delivered + dropped + pending, a_tx.sent())
        << "delivered " << delivered << ", counted drops " << dropped << ", still available " << pending
        << ": " << (a_tx.sent() - delivered - dropped - pending) << " frame(s) vanished uncounted";
    EXPECT_EQ(disorder, 0u);
    dp->stop();
}

// Two PMDs deliver into one guest's RX ring at once (the delivery lock), and
// learn MACs into the shared L2 table at once.
TEST(Dataplane, TwoPmdsDeliverIntoOneRxRing) {
    if (std::thread::hardware_concurrency() < 2) {
        GTEST_SKIP() << "needs 2 CPUs";
    }
    auto dp = make_dataplane(config::SwitchMode::L2, {"a", "b", "c"}, {}, {0, 1});
    ASSERT_NE(dp, nullptr);
    Vm va;
    Vm vb;
    Vm vc(1024, 256);
    RxSink a_rx(va);
    RxSink b_rx(vb);
    RxSink c_rx(vc, 256);
    TxStream a_tx(va, 256);
    TxStream b_tx(vb, 256);
    TxStream c_tx(vc, 256);
    // Sources are dealt round-robin: a's TX on PMD 0, b's on PMD 1, c's on PMD 0.
    dp->vhost_port("a")->apply(va.view());
    dp->vhost_port("b")->apply(vb.view());
    dp->vhost_port("c")->apply(vc.view());
    ASSERT_TRUE(dp->start());

    // c announces itself, so that frames to it are unicast.
    ASSERT_TRUE(c_tx.try_send(seq_frame(kBroadcast, mac_of(3), 3, 0)));
    ASSERT_TRUE(wait_until([&] {
        a_rx.poll([](auto) {});
        b_rx.poll([](auto) {});
        return a_rx.received() == 1 && b_rx.received() == 1;
    }));

    constexpr uint64_t kFrames = 200000;
    std::atomic<uint64_t> got[2] = {0, 0};
    std::atomic<bool> quit{false};
    auto sender = [&](TxStream& tx, RxSink& rx, uint8_t stream, const Mac& src) {
        while (!quit.load() && tx.sent() < kFrames) {
            rx.poll([](auto) {});
            if (tx.sent() - got[stream].load() < 400 && tx.try_send(seq_frame(mac_of(3), src, stream, tx.sent()))) {
                continue;
            }
            tx.reap();
            std::this_thread::yield();
        }
    };
    std::thread ta(sender, std::ref(a_tx), std::ref(a_rx), uint8_t{0}, mac_of(1));
    std::thread tb(sender, std::ref(b_tx), std::ref(b_rx), uint8_t{1}, mac_of(2));
    uint64_t next[2] = {0, 0};
    uint64_t bad = 0;
    const bool all = wait_until([&] {
        c_rx.poll([&](std::span<const uint8_t> f) {
            const uint8_t stream = f.size() > 22 ? f[22] : 0xff;
            const uint64_t s = seq_of(f);
            if (stream > 1 || s != next[stream] ||
                !std::equal(f.begin(), f.end(), seq_frame(mac_of(3), mac_of(stream + 1), stream, s).begin())) {
                ++bad;
                return;
            }
            ++next[stream];
            got[stream].store(next[stream]);
        });
        return next[0] + next[1] + bad >= 2 * kFrames;
    });
    quit.store(true);
    ta.join();
    tb.join();
    EXPECT_TRUE(all) << "c received " << next[0] << " + " << next[1] << " of " << 2 * kFrames;
    EXPECT_EQ(bad, 0u);
    EXPECT_EQ(next[0], kFrames);
    EXPECT_EQ(next[1], kFrames);
    const auto& cs = dp->vhost_port("c")->slot(0).stats;
    EXPECT_EQ(cs.tx_packets.get(), 2 * kFrames);
    EXPECT_EQ(cs.drop_no_buffer.get() + cs.drop_broken.get(), 0u);
    EXPECT_EQ(a_rx.received(), 1u) << "unicast to c is not flooded";
    EXPECT_EQ(b_rx.received(), 1u);
    dp->stop();
}

// ---- Ports added and removed at runtime ----

TEST(DataplanePorts, IdsAreStableAndAFreedIdIsReused) {
    auto dp = make_dataplane(config::SwitchMode::L2, {"a", "b"});
    ASSERT_NE(dp, nullptr);
    auto c = dp->add_port(vhost_port("c"));
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_EQ(*c, 2);
    EXPECT_EQ(dp->port_count(), 3u);
    ASSERT_TRUE(dp->remove_port("b"));
    EXPECT_EQ(dp->port_count(), 2u);
    EXPECT_EQ(dp->port_id("b"), std::nullopt);
    EXPECT_EQ(dp->vhost_port("b"), nullptr);
    EXPECT_EQ(dp->port_id("a"), std::optional<PortId>(0));
    EXPECT_EQ(dp->port_id("c"), std::optional<PortId>(2)) << "other ports keep their ids";
    EXPECT_EQ(dp->vhost_port("c")->id(), 2);
    auto d = dp->add_port(vhost_port("d"));
    ASSERT_TRUE(d);
    EXPECT_EQ(*d, 1) << "the lowest free id, once nothing refers to it";
    ASSERT_TRUE(dp->remove_port("c"));
    ASSERT_TRUE(dp->remove_port("d"));
    auto e = dp->add_port(vhost_port("e"));
    ASSERT_TRUE(e);
    EXPECT_EQ(*e, 1);
    // The running configuration follows.
    std::vector<std::string> names;
    for (const auto& p : dp->config().ports) {
        names.push_back(p.name);
    }
    EXPECT_EQ(names, (std::vector<std::string>{"a", "e"}));
}

TEST(DataplanePorts, AddRefusesDuplicatesAndRemoveUnknownPorts) {
    auto dp = make_dataplane(config::SwitchMode::L2, {"a"});
    ASSERT_NE(dp, nullptr);
    auto same_name = dp->add_port(vhost_port("a"));
    ASSERT_FALSE(same_name);
    EXPECT_EQ(same_name.error().message, "port a: a port with this name already exists");
    auto same_path = vhost_port("b");
    same_path.path = vhost_port("a").path;
    auto r = dp->add_port(same_path);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().message,
              "port b: socket path /nonexistent/vhostd-test-a.sock is already used by port a");
    config::PortConfig dpdk;
    dpdk.name = "up0";
    dpdk.type = config::PortType::Dpdk;
    dpdk.devargs = "net_null0";
    auto no_eal = dp->add_port(dpdk);
    ASSERT_FALSE(no_eal);
    EXPECT_NE(no_eal.error().message.find("port up0: a DPDK port needs DPDK's EAL"), std::string::npos)
        << no_eal.error().message;
    EXPECT_EQ(dp->port_count(), 1u) << "nothing left behind";
    const auto gone = dp->remove_port("zz");
    ASSERT_FALSE(gone);
    EXPECT_EQ(gone.error().message, "port zz: no such port");
}

// Which PMD polls each port's TX ring, from the published snapshot.
std::map<PortId, size_t> pmd_of_sources(const Snapshot& snap) {
    std::map<PortId, size_t> out;
    for (size_t pmd = 0; pmd < snap.sources.size(); ++pmd) {
        for (const auto& src : snap.sources[pmd]) {
            out[src.port] = pmd;
        }
    }
    return out;
}

// Two PMDs: a source keeps its PMD while ports come and go around it (a
// moved source would be polled by two PMDs during a grace period); new
// sources go to the less loaded PMD.
TEST(DataplanePorts, SourcesKeepTheirPmdWhenOtherPortsComeAndGo) {
    auto dp = make_dataplane(config::SwitchMode::L2, {"a", "b", "c"}, {}, {0, 1});
    ASSERT_NE(dp, nullptr);
    auto pmds = [&] { return pmd_of_sources(dp->current_snapshot()); };
    Vm va;
    Vm vb;
    Vm vc;
    Vm vd;
    dp->vhost_port("a")->apply(va.view());
    dp->vhost_port("b")->apply(vb.view());
    dp->vhost_port("c")->apply(vc.view());
    EXPECT_EQ(pmds(), (std::map<PortId, size_t>{{0, 0}, {1, 1}, {2, 0}})) << "dealt round-robin";
    ASSERT_TRUE(dp->remove_port("a"));
    EXPECT_EQ(pmds(), (std::map<PortId, size_t>{{1, 1}, {2, 0}})) << "b and c stay where they were";
    ASSERT_TRUE(dp->add_port(vhost_port("d")));
    dp->vhost_port("d")->apply(vd.view());
    ASSERT_EQ(dp->port_id("d"), std::optional<PortId>(0));
    EXPECT_EQ(pmds(), (std::map<PortId, size_t>{{0, 0}, {1, 1}, {2, 0}}));
    ASSERT_TRUE(dp->remove_port("b"));
    EXPECT_EQ(pmds(), (std::map<PortId, size_t>{{0, 0}, {2, 0}}));
    ASSERT_TRUE(dp->add_port(vhost_port("e")));
    dp->vhost_port("e")->apply(vb.view());
    EXPECT_EQ(pmds(), (std::map<PortId, size_t>{{0, 0}, {1, 1}, {2, 0}})) << "the idle PMD gets it";
}

// The L2 table forgets a removed port: when its id is given to a new port,
// a frame to a MAC the old port had is flooded (unknown), not sent to the
// newcomer.
TEST(DataplanePorts, RemovedPortsMacsAreForgotten) {
    auto dp = make_dataplane(config::SwitchMode::L2, {"a", "b", "c"});
    ASSERT_NE(dp, nullptr);
    Vm va;
    Vm vb;
    Vm vc;
    Vm vd;
    RxSink a_rx(va);
    RxSink b_rx(vb);
    RxSink d_rx(vd);
    TxStream a_tx(va);
    TxStream c_tx(vc);
    dp->vhost_port("a")->apply(va.view());
    dp->vhost_port("b")->apply(vb.view());
    dp->vhost_port("c")->apply(vc.view());
    ASSERT_TRUE(dp->start());
    // c announces MAC 3 (flooded to a and b).
    ASSERT_TRUE(c_tx.try_send(seq_frame(kBroadcast, mac_of(3), 3, 0)));
    ASSERT_TRUE(wait_until([&] {
        a_rx.poll([](auto) {});
        b_rx.poll([](auto) {});
        return a_rx.received() == 1 && b_rx.received() == 1;
    }));
    ASSERT_TRUE(dp->remove_port("c"));
    auto d = dp->add_port(vhost_port("d"));
    ASSERT_TRUE(d);
    ASSERT_EQ(*d, 2) << "d takes c's id";
    dp->vhost_port("d")->apply(vd.view());
    ASSERT_TRUE(a_tx.try_send(seq_frame(mac_of(3), mac_of(1), 1, 0)));
    ASSERT_TRUE(wait_until([&] {
        b_rx.poll([](auto) {});
        d_rx.poll([](auto) {});
        return b_rx.received() == 2 && d_rx.received() == 1;
    })) << "b " << b_rx.received() << ", d " << d_rx.received() << ": MAC 3 must be unknown";
    dp->stop();
}

// xconnect: removing a port leaves its peer's frames counted as no_route;
// a port added under the same name is paired again; set_xconnect re-pairs.
TEST(DataplanePorts, XconnectPairsFollowPortsAndSetXconnect) {
    auto dp = make_dataplane(config::SwitchMode::Xconnect, {"a", "b", "c"}, {{"a", "b"}});
    ASSERT_NE(dp, nullptr);
    Vm va;
    Vm vb;
    Vm vb2;
    Vm vc;
    TxStream a_tx(va);
    RxSink b2_rx(vb2);
    RxSink c_rx(vc);
    dp->vhost_port("a")->apply(va.view());
    dp->vhost_port("b")->apply(vb.view());
    dp->vhost_port("c")->apply(vc.view());
    ASSERT_TRUE(dp->start());
    ASSERT_TRUE(dp->remove_port("b"));
    ASSERT_TRUE(a_tx.try_send(seq_frame(mac_of(2), mac_of(1), 1, 0)));
    ASSERT_TRUE(wait_until([&] { return dp->vhost_port("a")->slot(1).stats.drop_no_route.get() == 1; }));
    ASSERT_TRUE(dp->add_port(vhost_port("b")));
    dp->vhost_port("b")->apply(vb2.view());
    ASSERT_TRUE(a_tx.try_send(seq_frame(mac_of(2), mac_of(1), 1, 1)));
    ASSERT_TRUE(wait_until([&] { return b2_rx.poll([](auto) {}) == 1; })) << "a and the new b are paired";
    dp->set_xconnect({{"a", "c"}});
    ASSERT_TRUE(a_tx.try_send(seq_frame(mac_of(3), mac_of(1), 1, 2)));
    ASSERT_TRUE(wait_until([&] { return c_rx.poll([](auto) {}) == 1; }));
    EXPECT_EQ(b2_rx.received(), 1u);
    EXPECT_EQ(dp->config().xconnect, (std::vector<std::pair<std::string, std::string>>{{"a", "c"}}));
    dp->stop();
}

// A stream a -> b (L2 unicast, b's MAC learned) runs through real PMD
// threads while the control thread adds a third port, connects a guest to
// it (its TX ring becomes a source, it joins the flooding set), and removes
// it again, 300 times. Not one frame of the stream may be lost, dropped,
// duplicated or reordered.
TEST_P(DataplaneIdle, AddRemoveCyclesLoseNoFrameOnOtherPorts) {
    auto dp = make_dataplane(config::SwitchMode::L2, {"a", "b"}, {}, {0}, GetParam());
    ASSERT_NE(dp, nullptr);
    VhostUserPort* pa = dp->vhost_port("a");
    VhostUserPort* pb = dp->vhost_port("b");
    Vm va(256, 256);
    Vm vb(1024, 256);
    Vm vc;
    TxStream a_tx(va, 256);
    TxStream b_tx(vb, 256);
    RxSink b_rx(vb, 256);
    RxSink a_rx(va, 256);
    pa->apply(va.view());
    pb->apply(vb.view());
    ASSERT_TRUE(dp->start());
    // b announces its MAC, so a's frames to it are unicast.
    ASSERT_TRUE(b_tx.try_send(seq_frame(kBroadcast, mac_of(2), 2, 0)));
    ASSERT_TRUE(wait_until([&] { return a_rx.poll([](auto) {}) == 1; }));

    std::atomic<bool> quit{false};
    std::atomic<uint64_t> a_tx_sent{0};
    std::atomic<uint64_t> bad{0};
    uint64_t next_expected = 0;
    std::thread driver([&] {
        while (!quit.load()) {
            b_rx.poll([&](std::span<const uint8_t> f) {
                const uint64_t s = seq_of(f);
                if (s != next_expected ||
                    !std::equal(f.begin(), f.end(), seq_frame(mac_of(2), mac_of(1), 1, s).begin())) {
                    bad.fetch_add(1);
                }
                next_expected = s + 1;
            });
            if (a_tx.try_send(seq_frame(mac_of(2), mac_of(1), 1, a_tx.sent()))) {
                a_tx_sent.store(a_tx.sent());
                continue;
            }
            a_tx.reap();
            std::this_thread::yield();
        }
    });
    ASSERT_TRUE(wait_until([&] { return a_tx_sent.load() >= 1000; }));
    for (int i = 0; i < 300; ++i) {
        auto c = dp->add_port(vhost_port("c"));
        ASSERT_TRUE(c) << c.error().message;
        ASSERT_EQ(*c, 2);
        dp->vhost_port("c")->apply(vc.view(static_cast<uint64_t>(i) + 1));
        if (i % 2 == 0) {
            dp->vhost_port("c")->apply(vc.stopped());
        }
        ASSERT_TRUE(dp->remove_port("c"));
    }
    const uint64_t cycles_done_at = a_tx_sent.load();
    quit.store(true);
    driver.join();
    EXPECT_GT(cycles_done_at, 1000u);
    // Let everything sent arrive.
    EXPECT_TRUE(wait_until(
        [&] {
            b_rx.poll([&](std::span<const uint8_t> f) {
                if (seq_of(f) != next_expected) {
                    bad.fetch_add(1);
                }
                next_expected = seq_of(f) + 1;
            });
            return b_rx.received() >= a_tx.sent();
        },
        60s))
        << "received " << b_rx.received() << " of " << a_tx.sent();
    dp->stop();
    EXPECT_EQ(b_rx.received(), a_tx.sent());
    EXPECT_EQ(bad.load(), 0u);
    const auto& as = pa->slot(1).stats;
    const auto& bs = pb->slot(0).stats;
    EXPECT_EQ(as.rx_packets.get(), a_tx.sent());
    EXPECT_EQ(bs.tx_packets.get(), a_tx.sent());
    EXPECT_EQ(as.drop_no_route.get() + as.errors.get() + bs.drop_no_buffer.get() + bs.drop_too_big.get() +
                  bs.drop_broken.get(),
              0u);
}

TEST(DataplanePorts, StalledPmdsSeesRunningAndStoppedPmds) {
    auto dp = make_dataplane(config::SwitchMode::L2, {"a"}, {}, {0});
    ASSERT_NE(dp, nullptr);
    ASSERT_TRUE(dp->start());
    EXPECT_TRUE(dp->stalled_pmds().empty()) << "the first look only records";
    std::this_thread::sleep_for(50ms);
    ASSERT_TRUE(wait_until([&] { return dp->stalled_pmds().empty(); }, 5s)) << "a polling PMD moves";
    dp->stop();
    std::this_thread::sleep_for(10ms);
    EXPECT_EQ(dp->stalled_pmds(), std::vector<size_t>{0}) << "a stopped PMD is stalled";
}

TEST(DataplanePorts, SleepingPmdsAreNotStalled) {
    config::Config cfg;
    cfg.source = "dataplane_test";
    cfg.pmd_cores = {0};
    cfg.idle.mode = config::IdleMode::Adaptive;
    cfg.idle.poll_us = 10;
    cfg.idle.max_sleep_us = config::kMaxIdleUs;  // 10 s: the heartbeat stands still meanwhile
    cfg.ports.push_back(vhost_port("a"));
    auto created = Dataplane::create(cfg);
    ASSERT_TRUE(created) << created.error().message;
    auto dp = std::move(created).value();
    ASSERT_TRUE(dp->start());
    ASSERT_TRUE(wait_until([&] { return dp->pmd_control(0).word.load() == kSleeping; }));
    (void)dp->stalled_pmds();
    const uint64_t beat = dp->pmd_control(0).heartbeat.load();
    std::this_thread::sleep_for(20ms);
    EXPECT_EQ(dp->pmd_control(0).heartbeat.load(), beat) << "still asleep";
    EXPECT_TRUE(dp->stalled_pmds().empty()) << "asleep on its futex: legitimately idle";
    dp->stop();
}

} // namespace
} // namespace vhostd::dataplane
