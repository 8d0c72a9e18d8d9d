// Dataplane: create, start, apply/forward/stop, broken and disabled rings, ring
// restarts under traffic, two PMDs into one ring.
// The rig (memfd guests, TX streams and RX sinks, a data plane without DPDK)
// is in dataplane_rig.hpp.

#include "tests/unit/dataplane/dataplane_rig.hpp"

namespace vhostd::dataplane {
namespace {

using namespace dataplane_testing;

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

} // namespace
} // namespace vhostd::dataplane
