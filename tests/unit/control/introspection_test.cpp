// The introspection model over a real data plane (vhost-user ports need no
// DPDK): what it reads, the L2 table, and `stats clear` as a baseline that
// never writes the PMDs' counters.

#include <gtest/gtest.h>

#include "daemon/introspection.hpp"
#include "dataplane/dataplane.hpp"

namespace vhostd::daemon {
namespace {

std::unique_ptr<dataplane::Dataplane> make(const std::vector<std::string>& names) {
    config::Config cfg;
    cfg.source = "introspection_test";
    cfg.pmd_cores = {0};
    cfg.idle.mode = config::IdleMode::Poll;
    for (const auto& name : names) {
        config::PortConfig p;
        p.name = name;
        p.path = "/tmp/introspection-test-" + name + ".sock";
        p.queues = name == "b" ? 2 : 1;
        cfg.ports.push_back(p);
    }
    auto dp = dataplane::Dataplane::create(cfg);
    EXPECT_TRUE(dp.ok()) << dp.error().message;
    return std::move(dp).value();
}

const QueueInfo& queue(const Model& m, const std::string& port, const std::string& q) {
    for (const auto& p : m.ports) {
        for (const auto& info : p.queues) {
            if (p.name == port && info.name == q) {
                return info;
            }
        }
    }
    ADD_FAILURE() << "no queue " << port << "/" << q;
    static QueueInfo none;
    return none;
}

TEST(Introspection, PortsQueuesAndPmds) {
    auto dp = make({"a", "b"});
    Introspector in(*dp, [](const std::string&) { return nullptr; });
    Model m = in.collect();
    ASSERT_EQ(m.ports.size(), 2u);
    EXPECT_EQ(m.ports[0].name, "a");
    EXPECT_EQ(m.ports[0].type, "vhost-user");
    EXPECT_EQ(m.ports[1].queue_pairs, 2u);
    ASSERT_EQ(m.ports[1].queues.size(), 4u);
    EXPECT_EQ(m.ports[1].queues[3].name, "vring3");
    ASSERT_EQ(m.pmds.size(), 1u);
    EXPECT_EQ(m.pmds[0].core, 0u);
    EXPECT_TRUE(m.pmds[0].sources.empty());  // nothing connected
    EXPECT_EQ(m.switch_mode, "l2");
}

TEST(Introspection, FdbNamesPorts) {
    auto dp = make({"a", "b"});
    Introspector in(*dp, [](const std::string&) { return nullptr; });
    dp->learn({0x02, 0, 0, 0, 0, 0x0b}, 1);
    Model m = in.collect();
    ASSERT_EQ(m.fdb.size(), 1u);
    EXPECT_EQ(m.fdb[0].mac, "02:00:00:00:00:0b");
    EXPECT_EQ(m.fdb[0].port, "b");
    EXPECT_EQ(m.ports[1].macs, std::vector<std::string>{"02:00:00:00:00:0b"});
    EXPECT_TRUE(m.ports[0].macs.empty());
}

TEST(Introspection, ClearIsABaseline) {
    auto dp = make({"a", "b"});
    Introspector in(*dp, [](const std::string&) { return nullptr; });
    auto& stats = dp->vhost_port("b")->slot(3).stats;
    stats.rx_packets.add(5);
    stats.drop_no_route.add(2);
    EXPECT_EQ(queue(in.collect(), "b", "vring3").counters.rx_packets, 5u);
    in.clear_stats();
    EXPECT_EQ(stats.rx_packets.get(), 5u);  // the data path's counter is untouched
    EXPECT_EQ(queue(in.collect(), "b", "vring3").counters.rx_packets, 0u);
    EXPECT_EQ(queue(in.collect(), "b", "vring3").counters.drop_no_route, 0u);
    stats.rx_packets.add(3);
    EXPECT_EQ(queue(in.collect(), "b", "vring3").counters.rx_packets, 3u);
    // A port of that name that is new (its counters restarted) is not
    // measured against the old one's baseline.
    in.forget_port("b");
    EXPECT_EQ(queue(in.collect(), "b", "vring3").counters.rx_packets, 8u);
}

} // namespace
} // namespace vhostd::daemon
