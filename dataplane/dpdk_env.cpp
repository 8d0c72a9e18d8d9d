#include "dataplane/dpdk_env.hpp"

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_memory.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>

namespace vhostd::dataplane {

namespace {

// Set by the first successful init() and never cleared: DPDK cannot run
// rte_eal_init again in a process, not even after rte_eal_cleanup.
std::atomic<bool> g_eal_initialised{false};

constexpr size_t kAnySlot = RTE_MAX_NUMA_NODES;

bool socket_known(int socket) noexcept {
    const unsigned count = rte_socket_count();
    for (unsigned i = 0; i < count; ++i) {
        if (rte_socket_id_by_idx(i) == socket) {
            return true;
        }
    }
    return false;
}

} // namespace

Result<std::unique_ptr<DpdkEnv>> DpdkEnv::init(const std::vector<std::string>& eal_args,
                                               PoolConfig pools) {
    bool expected = false;
    if (!g_eal_initialised.compare_exchange_strong(expected, true)) {
        return make_error("DPDK EAL is already initialised in this process "
                          "(it can be initialised only once)");
    }
    if (pools.mbufs == 0 || pools.data_room <= RTE_PKTMBUF_HEADROOM) {
        g_eal_initialised.store(false);
        return make_error(fmt::format("DPDK pool config: {} mbufs of data room {} (need at least "
                                      "one mbuf and a data room above the {}-byte headroom)",
                                      pools.mbufs, pools.data_room, RTE_PKTMBUF_HEADROOM));
    }

    // rte_eal_init may permute argv (getopt) and keep pointers into it, so the
    // strings live as long as the process.
    static std::vector<std::string> storage;
    static std::vector<char*> argv;
    storage.clear();
    storage.reserve(eal_args.size() + 1);
    storage.emplace_back("vhostd");
    storage.insert(storage.end(), eal_args.begin(), eal_args.end());
    argv.clear();
    for (auto& s : storage) {
        argv.push_back(s.data());
    }
    argv.push_back(nullptr);

    std::string joined;
    for (const auto& a : eal_args) {
        joined += joined.empty() ? "" : " ";
        joined += a;
    }
    spdlog::info("dpdk: initialising EAL with '{}'", joined);

    const int ret = rte_eal_init(static_cast<int>(storage.size()), argv.data());
    if (ret < 0) {
        const int err = rte_errno;
        // EAL refuses a second rte_eal_init itself (EALREADY) once it got far
        // enough; otherwise another attempt may still succeed.
        if (err != EALREADY) {
            g_eal_initialised.store(false);
        }
        return make_error(fmt::format("DPDK EAL initialisation with '{}' failed: {}", joined,
                                      rte_strerror(err)));
    }
    spdlog::info("dpdk: EAL up, {} lcore(s), {} NUMA socket(s), main lcore {}",
                 rte_lcore_count(), rte_socket_count(), rte_get_main_lcore());
    return std::unique_ptr<DpdkEnv>(new DpdkEnv(pools));
}

DpdkEnv::~DpdkEnv() {
    for (rte_mempool* mp : owned_) {
        rte_mempool_free(mp);
    }
    owned_.clear();
    pools_.fill(nullptr);
    const int ret = rte_eal_cleanup();
    if (ret < 0) {
        spdlog::warn("dpdk: rte_eal_cleanup failed: {}", rte_strerror(-ret));
    }
}

Status DpdkEnv::register_thread() {
    if (rte_thread_register() < 0) {
        return make_error(fmt::format("dpdk: cannot register thread with EAL: {}",
                                      rte_strerror(rte_errno)));
    }
    return Ok{};
}

void DpdkEnv::unregister_thread() noexcept { rte_thread_unregister(); }

rte_mempool* DpdkEnv::create_pool(const std::string& name, int socket) noexcept {
    const uint32_t cache = std::min<uint32_t>(
        {pool_config_.cache, RTE_MEMPOOL_CACHE_MAX_SIZE, pool_config_.mbufs / 2});
    rte_mempool* mp = rte_pktmbuf_pool_create(name.c_str(), pool_config_.mbufs, cache, 0,
                                              pool_config_.data_room, socket);
    if (mp != nullptr) {
        owned_.push_back(mp);
    }
    return mp;
}

rte_mempool* DpdkEnv::mempool(int socket) {
    std::lock_guard lock(mutex_);
    size_t slot = kAnySlot;
    if (socket >= 0 && socket < RTE_MAX_NUMA_NODES && socket_known(socket)) {
        slot = static_cast<size_t>(socket);
    } else if (socket != SOCKET_ID_ANY) {
        spdlog::warn("dpdk: NUMA socket {} is unknown to EAL; using a pool on any socket", socket);
    }
    if (pools_[slot] != nullptr) {
        return pools_[slot];
    }

    if (slot != kAnySlot) {
        const std::string name = fmt::format("vhostd_mp_{}", socket);
        rte_mempool* mp = create_pool(name, socket);
        if (mp != nullptr) {
            spdlog::info("dpdk: created mbuf pool {} ({} mbufs, data room {}) on socket {}", name,
                         pool_config_.mbufs, pool_config_.data_room, socket);
            pools_[slot] = mp;
            return mp;
        }
        spdlog::warn("dpdk: cannot create mbuf pool {} on socket {} ({}); using a pool on any "
                     "socket",
                     name, socket, rte_strerror(rte_errno));
    }

    if (pools_[kAnySlot] == nullptr) {
        rte_mempool* mp = create_pool("vhostd_mp_any", SOCKET_ID_ANY);
        if (mp == nullptr) {
            spdlog::error("dpdk: cannot create mbuf pool vhostd_mp_any ({} mbufs, data room {}): {}",
                          pool_config_.mbufs, pool_config_.data_room, rte_strerror(rte_errno));
            return nullptr;
        }
        spdlog::info("dpdk: created mbuf pool vhostd_mp_any ({} mbufs, data room {})",
                     pool_config_.mbufs, pool_config_.data_room);
        pools_[kAnySlot] = mp;
    }
    pools_[slot] = pools_[kAnySlot];
    return pools_[slot];
}

} // namespace vhostd::dataplane
