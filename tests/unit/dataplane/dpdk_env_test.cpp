// The gtest Environment that brings EAL up once for the whole executable, and
// the DpdkEnv tests.

#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/dpdk_env.hpp"
#include "tests/unit/dataplane/dpdk_test_env.hpp"

namespace vhostd::dataplane::test {

namespace {

std::unique_ptr<DpdkEnv> g_env;
std::vector<std::string> g_args;

class DpdkTestEnvironment : public ::testing::Environment {
public:
    void SetUp() override {
        const std::string prefix = "vhd-ut-" + std::to_string(::getpid());
        g_args = {"--no-huge", "-m", "256", "--no-pci", "--file-prefix", prefix,
                  "--log-level=lib.eal:error"};
        auto env = DpdkEnv::init(g_args);
        ASSERT_TRUE(env.ok()) << env.error().message;
        g_env = std::move(env).value();
    }
    void TearDown() override {
        g_env.reset();
        // rte_eal_cleanup leaves the runtime directory of this file prefix.
        std::error_code ec;
        std::filesystem::remove_all("/var/run/dpdk/vhd-ut-" + std::to_string(::getpid()), ec);
    }
};

[[maybe_unused]] ::testing::Environment* const g_registered =
    ::testing::AddGlobalTestEnvironment(new DpdkTestEnvironment);

} // namespace

DpdkEnv& dpdk_env() {
    if (!g_env) {
        ADD_FAILURE() << "the DPDK test environment is not up";
        std::abort();
    }
    return *g_env;
}

const std::vector<std::string>& dpdk_eal_args() { return g_args; }

namespace {

TEST(DpdkEnv, SecondInitIsRefused) {
    (void)dpdk_env();
    auto again = DpdkEnv::init(dpdk_eal_args());
    ASSERT_FALSE(again.ok());
    EXPECT_NE(again.error().message.find("already initialised"), std::string::npos)
        << again.error().message;
}

TEST(DpdkEnv, OnePoolPerSocketCreatedOnce) {
    DpdkEnv& env = dpdk_env();
    const int socket = static_cast<int>(rte_socket_id());
    rte_mempool* mp = env.mempool(socket);
    ASSERT_NE(mp, nullptr);
    EXPECT_EQ(env.mempool(socket), mp);
    EXPECT_EQ(std::string(mp->name), "vhostd_mp_" + std::to_string(socket));
    EXPECT_EQ(mp->size, env.pool_config().mbufs);
    EXPECT_EQ(rte_pktmbuf_data_room_size(mp), RTE_MBUF_DEFAULT_BUF_SIZE);
    EXPECT_EQ(rte_mempool_lookup(mp->name), mp);
}

TEST(DpdkEnv, UnknownSocketFallsBackToAnySocketPool) {
    DpdkEnv& env = dpdk_env();
    rte_mempool* any = env.mempool(SOCKET_ID_ANY);
    ASSERT_NE(any, nullptr);
    EXPECT_EQ(std::string(any->name), "vhostd_mp_any");
    // A socket id EAL has never seen (no such NUMA node on this machine).
    EXPECT_EQ(env.mempool(RTE_MAX_NUMA_NODES - 1), any);
    EXPECT_EQ(env.mempool(100000), any);
    EXPECT_EQ(env.mempool(SOCKET_ID_ANY), any);
}

TEST(DpdkEnv, RegisteredThreadGetsAnLcoreAndUsesThePool) {
    DpdkEnv& env = dpdk_env();
    rte_mempool* mp = env.mempool(static_cast<int>(rte_socket_id()));
    ASSERT_NE(mp, nullptr);
    const unsigned before = rte_mempool_avail_count(mp);

    unsigned lcore_before = 0;
    unsigned lcore_registered = 0;
    unsigned lcore_after = 0;
    std::string failure;
    bool allocated = false;
    std::thread pmd([&] {
        lcore_before = rte_lcore_id();
        Status st = env.register_thread();
        if (!st.ok()) {
            failure = st.error().message;
            return;
        }
        lcore_registered = rte_lcore_id();
        rte_mbuf* burst[64] = {};
        allocated = rte_pktmbuf_alloc_bulk(mp, burst, 64) == 0;
        if (allocated) {
            rte_pktmbuf_free_bulk(burst, 64);
        }
        env.unregister_thread();
        lcore_after = rte_lcore_id();
    });
    pmd.join();
    ASSERT_TRUE(failure.empty()) << failure;
    EXPECT_EQ(lcore_before, LCORE_ID_ANY);
    EXPECT_NE(lcore_registered, LCORE_ID_ANY);
    EXPECT_NE(lcore_registered, rte_get_main_lcore());
    EXPECT_EQ(lcore_after, LCORE_ID_ANY);
    EXPECT_TRUE(allocated);
    // Whatever sits in the registered lcore's cache still counts as available.
    EXPECT_EQ(rte_mempool_avail_count(mp), before);
}

} // namespace
} // namespace vhostd::dataplane::test
