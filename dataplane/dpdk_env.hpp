#pragma once
// DpdkEnv: the process-wide DPDK environment (EAL and the packet-buffer pools).
//
// The control thread creates exactly one, before it opens any DPDK port, and
// destroys it after the last DpdkPort is gone (rte_eal_cleanup frees the memory
// every port, queue and mbuf lives in). EAL can be initialised only once per
// process, even after rte_eal_cleanup, so init() refuses a second call.
//
// Note that rte_eal_init pins the calling thread to the main lcore's CPU set
// (EAL's -l / --lcores argument decides which). Pass e.g. `-l 0` or
// `--lcores 0@(0-1)` to choose; vhostd's PMD threads are not EAL lcores but
// std::threads that call register_thread().
//
//   auto env = DpdkEnv::init({"--no-huge", "-m", "1024", "--no-pci",
//                             "--file-prefix", "vhostd"});
//   if (!env) { spdlog::error("{}", env.error().message); }
//   rte_mempool* pool = (*env)->mempool(0);

#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "protocol/result.hpp"

namespace vhostd::dataplane {

// Size of each per-socket pktmbuf pool. The defaults fit a few ports with
// 1024-descriptor rings; a pool of 2^k - 1 elements is the most memory-efficient
// for the ring-backed mempool driver. The cache is capped at
// RTE_MEMPOOL_CACHE_MAX_SIZE and at mbufs / 2.
struct MbufPoolConfig {
    uint32_t mbufs = 8191;
    uint32_t cache = 256;
    uint16_t data_room = RTE_MBUF_DEFAULT_BUF_SIZE;
};

class DpdkEnv {
public:
    using PoolConfig = MbufPoolConfig;

    // Initialises EAL with argv = {"vhostd", eal_args...}. Fails with
    // rte_strerror(rte_errno) when rte_eal_init fails (bad arguments, no
    // memory, a file prefix already in use), and when EAL has already been
    // initialised by an earlier init() in this process.
    static Result<std::unique_ptr<DpdkEnv>> init(const std::vector<std::string>& eal_args,
                                                 PoolConfig pools = {});

    // Frees the pools and calls rte_eal_cleanup. Every DpdkPort and every mbuf
    // must be gone by then.
    ~DpdkEnv();

    DpdkEnv(const DpdkEnv&) = delete;
    DpdkEnv& operator=(const DpdkEnv&) = delete;

    // Called by each PMD std::thread before it touches a mempool or a port, so
    // it gets an lcore id and with it a per-lcore mempool cache (without one,
    // every mbuf alloc and free goes to the shared ring). Fails when no lcore
    // id is left (RTE_MAX_LCORE) or a secondary process is attached.
    [[nodiscard]] Status register_thread();
    // Called by the same thread before it exits. Mbufs left in its cache stay
    // there for the next thread that gets its lcore id.
    void unregister_thread() noexcept;

    // The pktmbuf pool for NUMA socket `socket`, created on first use
    // ("vhostd_mp_<socket>"). SOCKET_ID_ANY, a socket id EAL does not know, or
    // a socket without memory get one shared pool allocated wherever EAL finds
    // memory ("vhostd_mp_any"). nullptr (logged) only when no pool can be
    // created at all. Control thread; thread-safe.
    [[nodiscard]] rte_mempool* mempool(int socket);

    [[nodiscard]] const PoolConfig& pool_config() const noexcept { return pool_config_; }

private:
    explicit DpdkEnv(PoolConfig pools) : pool_config_(pools) {}

    rte_mempool* create_pool(const std::string& name, int socket) noexcept;

    PoolConfig pool_config_;
    std::mutex mutex_;
    // Index RTE_MAX_NUMA_NODES holds the SOCKET_ID_ANY pool. Several slots may
    // point at that one pool; each pool is freed once.
    std::array<rte_mempool*, RTE_MAX_NUMA_NODES + 1> pools_{};
    std::vector<rte_mempool*> owned_;
};

} // namespace vhostd::dataplane
