#pragma once
// DpdkPort: one configured DPDK ethdev port (a physical NIC or a DPDK virtual
// device) that the PMD threads poll and transmit on.
//
// The control thread opens it (probe, configure, queue setup, start) and
// destroys it (stop, close, remove the device). In between, PMD threads call
// rx() / tx() on the queues assigned to them: each queue is used by exactly
// one PMD thread at a time (ethdev queues are not thread-safe), and a port is
// destroyed only after every PMD has left it (QSBR, DESIGN.md "Threads").
//
// The DpdkEnv it was opened from must outlive it.
//
//   auto port = DpdkPort::open(env, "uplink", "net_tap0,iface=vt0", 2);
//   rte_mbuf* burst[32];
//   uint16_t got = (*port)->rx(0, burst, 32);
//   uint16_t sent = (*port)->tx(0, burst, got);
//   rte_pktmbuf_free_bulk(burst + sent, got - sent);   // and count the drops

#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_mbuf.h>
#include <rte_memory.h>
#include <rte_mempool.h>

#include <cstdint>
#include <memory>
#include <string>

#include "dataplane/dpdk_env.hpp"
#include "protocol/result.hpp"

namespace vhostd::dataplane {

class DpdkPort {
public:
    static constexpr uint16_t kDescriptors = 1024;

    // Probes the device described by `devargs` (rte_dev_probe syntax: a vdev
    // such as "net_tap0,iface=vt0", "net_ring0", "net_null0",
    // "net_af_packet0,iface=eth0", or a PCI address such as "0000:03:00.0"),
    // and brings up its first ethdev port with `queues` rx and tx queues
    // (clamped to what the device supports; 0 is an error), 1024 descriptors
    // per queue (adjusted to the device's limits), mbufs from env's pool for
    // the port's NUMA socket, promiscuous mode on. `name` is the port's name in
    // vhostd's configuration; errors and logs carry it and the devargs.
    // A device that is already probed (by another DpdkPort or by --vdev /
    // -a on the EAL command line) is refused.
    static Result<std::unique_ptr<DpdkPort>> open(DpdkEnv& env, std::string name,
                                                  std::string devargs, uint16_t queues);

    // Stops and closes the port and removes the device (rte_dev_remove), so the
    // same devargs can be opened again. Mbufs still queued in the device are
    // the driver's to free.
    ~DpdkPort();

    DpdkPort(const DpdkPort&) = delete;
    DpdkPort& operator=(const DpdkPort&) = delete;

    // --- Per-packet path (PMD threads): no locks, no allocation, no throw. ---

    // Receives up to n frames from rx queue q into out; returns how many.
    uint16_t rx(uint16_t q, rte_mbuf** out, uint16_t n) noexcept {
        return rte_eth_rx_burst(port_id_, q, out, n);
    }
    // Queues up to n frames on tx queue q; returns how many the device took.
    // The device owns (and frees) pkts[0, sent); the caller still owns
    // pkts[sent, n): it frees them and counts them as dropped.
    uint16_t tx(uint16_t q, rte_mbuf** pkts, uint16_t n) noexcept {
        return rte_eth_tx_burst(port_id_, q, pkts, n);
    }

    // --- Control path. ---

    [[nodiscard]] bool link_up() const noexcept;
    [[nodiscard]] Result<rte_eth_stats> stats() const;

    [[nodiscard]] const std::string& name() const noexcept { return name_; }
    [[nodiscard]] const std::string& devargs() const noexcept { return devargs_; }
    [[nodiscard]] uint16_t port_id() const noexcept { return port_id_; }
    // The port's NUMA socket, or SOCKET_ID_ANY when the device does not say.
    [[nodiscard]] int socket() const noexcept { return socket_; }
    [[nodiscard]] rte_mempool* pool() const noexcept { return pool_; }
    [[nodiscard]] const rte_ether_addr& mac() const noexcept { return mac_; }
    [[nodiscard]] uint16_t mtu() const noexcept { return mtu_; }
    [[nodiscard]] uint16_t rx_queues() const noexcept { return rx_queues_; }
    [[nodiscard]] uint16_t tx_queues() const noexcept { return tx_queues_; }
    [[nodiscard]] uint16_t rx_descriptors() const noexcept { return rx_desc_; }
    [[nodiscard]] uint16_t tx_descriptors() const noexcept { return tx_desc_; }
    // Whether tx() accepts multi-segment (chained) mbufs. Without it, a caller
    // must not hand the device a chain (e.g. a jumbo frame from
    // mbuf_from_pieces); it drops the frame instead.
    [[nodiscard]] bool tx_multi_seg() const noexcept { return tx_multi_seg_; }

private:
    DpdkPort(std::string name, std::string devargs)
        : name_(std::move(name)), devargs_(std::move(devargs)) {}

    Status bring_up(DpdkEnv& env, uint16_t queues);
    [[nodiscard]] Error error(const std::string& what) const;
    [[nodiscard]] Error error(const std::string& what, int errnum) const;

    std::string name_;
    std::string devargs_;
    // What the destructor must undo: the probe (device_ when the port's info
    // named it, else bus_ / device_name_), the port, the start.
    bool probed_ = false;
    std::string bus_;
    std::string device_name_;
    rte_device* device_ = nullptr;
    uint16_t port_id_ = RTE_MAX_ETHPORTS;
    bool started_ = false;
    int socket_ = SOCKET_ID_ANY;
    rte_mempool* pool_ = nullptr;
    rte_ether_addr mac_{};
    uint16_t mtu_ = RTE_ETHER_MTU;
    uint16_t rx_queues_ = 0;
    uint16_t tx_queues_ = 0;
    uint16_t rx_desc_ = kDescriptors;
    uint16_t tx_desc_ = kDescriptors;
    bool tx_multi_seg_ = false;
};

// "02:00:00:00:00:01"
[[nodiscard]] std::string format_mac(const rte_ether_addr& mac);

} // namespace vhostd::dataplane
