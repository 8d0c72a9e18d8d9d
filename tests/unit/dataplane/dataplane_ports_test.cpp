// Dataplane: ports added and removed at runtime (stable ids, PMD assignment,
// L2 and xconnect follow-up, no frame lost on other ports), PMD health.
// The rig (memfd guests, TX streams and RX sinks, a data plane without DPDK)
// is in dataplane_rig.hpp.

#include "tests/unit/dataplane/dataplane_rig.hpp"

namespace vhostd::dataplane {
namespace {

using namespace dataplane_testing;

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
    auto pmds = [&] { return pmd_of_sources(*dp->current_snapshot()); };
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
// it again, `cycles` times. Not one frame of the stream may be lost,
// dropped, duplicated or reordered.
void add_remove_cycles(config::IdleMode idle, std::vector<unsigned> cores, int cycles) {
    auto dp = make_dataplane(config::SwitchMode::L2, {"a", "b"}, {}, std::move(cores), idle);
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
    for (int i = 0; i < cycles; ++i) {
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

TEST_P(DataplaneIdle, AddRemoveCyclesLoseNoFrameOnOtherPorts) { add_remove_cycles(GetParam(), {0}, 300); }

// The same with two PMDs: a's and b's TX rings on different PMDs, c's on
// whichever has fewer sources, deliveries under the shared-ring lock.
TEST(DataplanePorts, AddRemoveCyclesWithTwoPmdsLoseNoFrame) {
    if (std::thread::hardware_concurrency() < 2) {
        GTEST_SKIP() << "needs 2 CPUs";
    }
    add_remove_cycles(config::IdleMode::Poll, {0, 1}, 150);
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
    EXPECT_TRUE(dp->stalled_pmds().empty()) << "asleep: legitimately idle";
    dp->stop();
}

} // namespace
} // namespace vhostd::dataplane
