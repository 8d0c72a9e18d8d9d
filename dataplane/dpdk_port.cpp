// rte_devargs_reset (used to free what rte_devargs_parse allocated) is still an
// experimental DPDK symbol in 22.11.
#ifndef ALLOW_EXPERIMENTAL_API
#define ALLOW_EXPERIMENTAL_API
#endif

#include "dataplane/dpdk_port.hpp"

#include <rte_bus.h>
#include <rte_dev.h>
#include <rte_devargs.h>
#include <rte_errno.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

namespace vhostd::dataplane {

namespace {

// Bus and device name of a devargs string, as EAL itself splits it
// ("net_tap0,iface=vt0" -> vdev / net_tap0, "0000:03:00.0" -> pci / 0000:03:00.0).
struct DeviceId {
    std::string bus;
    std::string name;
};

Result<DeviceId> parse_devargs(const std::string& devargs) {
    rte_devargs da{};
    const int ret = rte_devargs_parse(&da, devargs.c_str());
    if (ret < 0) {
        // EAL's errno here says little (EFAULT for an unknown vdev driver).
        rte_devargs_reset(&da);
        return make_error("no bus or driver recognises this device (unknown driver name or "
                          "malformed address)");
    }
    DeviceId id;
    id.bus = da.bus != nullptr ? rte_bus_name(da.bus) : "";
    id.name = da.name;
    rte_devargs_reset(&da);
    if (id.bus.empty() || id.name.empty()) {
        return make_error("no bus or driver recognises this device");
    }
    return id;
}

// The ethdev port of a device: by name first (vdevs and most PCI drivers name
// the port after the device), else the first port EAL matches to the devargs
// (e.g. net_ring with nodeaction=<name>:..., whose port is called <name>).
// RTE_MAX_ETHPORTS when there is none.
uint16_t find_port(const DeviceId& id, const std::string& devargs) {
    uint16_t pid = RTE_MAX_ETHPORTS;
    if (rte_eth_dev_get_port_by_name(id.name.c_str(), &pid) == 0) {
        return pid;
    }
    pid = RTE_MAX_ETHPORTS;
    rte_dev_iterator it{};
    uint16_t candidate = 0;
    RTE_ETH_FOREACH_MATCHING_DEV(candidate, devargs.c_str(), &it) {
        pid = candidate;
        rte_eth_iterator_cleanup(&it);
        break;
    }
    return pid;
}

} // namespace

std::string format_mac(const rte_ether_addr& mac) {
    const uint8_t* b = mac.addr_bytes;
    return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4],
                       b[5]);
}

Error DpdkPort::error(const std::string& what) const {
    return make_error(fmt::format("dpdk port '{}' (devargs '{}'): {}", name_, devargs_, what));
}

Error DpdkPort::error(const std::string& what, int errnum) const {
    return error(fmt::format("{}: {}", what, rte_strerror(errnum < 0 ? -errnum : errnum)));
}

Result<std::unique_ptr<DpdkPort>> DpdkPort::open(DpdkEnv& env, std::string name,
                                                 std::string devargs, uint16_t queues) {
    // Owned from the start, so every failure below is undone by the
    // destructor (stop / close / remove, as far as we got).
    std::unique_ptr<DpdkPort> port(new DpdkPort(std::move(name), std::move(devargs)));
    Status up = port->bring_up(env, queues);
    if (!up) {
        return std::move(up).error();
    }
    spdlog::info("dpdk port '{}' ({}): port {} up, mac {}, mtu {}, {} rx / {} tx queues of {} / {} "
                 "descriptors, socket {}, link {}",
                 port->name_, port->devargs_, port->port_id_, format_mac(port->mac_), port->mtu_,
                 port->rx_queues_, port->tx_queues_, port->rx_desc_, port->tx_desc_, port->socket_,
                 port->link_up() ? "up" : "down");
    return port;
}

Status DpdkPort::bring_up(DpdkEnv& env, uint16_t queues) {
    if (queues == 0) {
        return error("needs at least one queue");
    }
    auto id = parse_devargs(devargs_);
    if (!id) {
        return error(id.error().message);
    }

    // rte_dev_probe of a device that is already probed "succeeds" (and
    // replaces its devargs), so ownership is checked first: a device with an
    // ethdev port belongs to another DpdkPort or to the EAL command line.
    if (find_port(*id, devargs_) != RTE_MAX_ETHPORTS) {
        return error(fmt::format("device {} is already in use (probed by another port or by the "
                                 "EAL arguments)",
                                 id->name));
    }
    int ret = rte_dev_probe(devargs_.c_str());
    if (ret < 0) {
        return error("probe failed (the driver rejected the device or its arguments)", ret);
    }
    bus_ = id->bus;
    device_name_ = id->name;
    probed_ = true;

    const uint16_t pid = find_port(*id, devargs_);
    if (pid == RTE_MAX_ETHPORTS) {
        // Probed, but not an ethdev; the destructor removes the device again.
        return error(fmt::format("device {} was probed but has no ethdev port", id->name));
    }
    port_id_ = pid;

    rte_eth_dev_info info{};
    ret = rte_eth_dev_info_get(port_id_, &info);
    if (ret != 0) {
        return error("cannot read device info", ret);
    }
    device_ = info.device;

    rx_queues_ = std::min(queues, info.max_rx_queues);
    tx_queues_ = std::min(queues, info.max_tx_queues);
    if (rx_queues_ == 0 || tx_queues_ == 0) {
        return error(fmt::format("device has {} rx / {} tx queues", info.max_rx_queues,
                                 info.max_tx_queues));
    }
    if (rx_queues_ != queues || tx_queues_ != queues) {
        spdlog::warn("dpdk port '{}' ({}): {} queues requested, device supports {} rx / {} tx",
                     name_, devargs_, queues, info.max_rx_queues, info.max_tx_queues);
    }

    rte_eth_conf conf{};
    // Chained mbufs (jumbo frames built by mbuf_from_pieces) need the device
    // to gather segments on transmit.
    if ((info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MULTI_SEGS) != 0) {
        conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MULTI_SEGS;
        tx_multi_seg_ = true;
    }
    ret = rte_eth_dev_configure(port_id_, rx_queues_, tx_queues_, &conf);
    if (ret != 0) {
        return error(fmt::format("configuring {} rx / {} tx queues failed", rx_queues_, tx_queues_),
                     ret);
    }

    rx_desc_ = kDescriptors;
    tx_desc_ = kDescriptors;
    ret = rte_eth_dev_adjust_nb_rx_tx_desc(port_id_, &rx_desc_, &tx_desc_);
    if (ret != 0) {
        return error("adjusting descriptor counts failed", ret);
    }

    socket_ = rte_eth_dev_socket_id(port_id_);
    if (socket_ < 0) {
        socket_ = SOCKET_ID_ANY;
    }
    pool_ = env.mempool(socket_);
    if (pool_ == nullptr) {
        return error(fmt::format("no mbuf pool for socket {}", socket_));
    }
    const unsigned queue_socket = socket_ == SOCKET_ID_ANY ? static_cast<unsigned>(rte_socket_id())
                                                           : static_cast<unsigned>(socket_);

    for (uint16_t q = 0; q < rx_queues_; ++q) {
        ret = rte_eth_rx_queue_setup(port_id_, q, rx_desc_, queue_socket, nullptr, pool_);
        if (ret != 0) {
            return error(fmt::format("setting up rx queue {}", q), ret);
        }
    }
    for (uint16_t q = 0; q < tx_queues_; ++q) {
        ret = rte_eth_tx_queue_setup(port_id_, q, tx_desc_, queue_socket, nullptr);
        if (ret != 0) {
            return error(fmt::format("setting up tx queue {}", q), ret);
        }
    }

    ret = rte_eth_promiscuous_enable(port_id_);
    if (ret == -ENOTSUP) {
        spdlog::warn("dpdk port '{}' ({}): device has no promiscuous mode", name_, devargs_);
    } else if (ret != 0) {
        return error("enabling promiscuous mode failed", ret);
    }

    ret = rte_eth_dev_start(port_id_);
    if (ret != 0) {
        return error("start failed", ret);
    }
    started_ = true;

    ret = rte_eth_macaddr_get(port_id_, &mac_);
    if (ret != 0) {
        return error("cannot read MAC address", ret);
    }
    ret = rte_eth_dev_get_mtu(port_id_, &mtu_);
    if (ret != 0) {
        return error("cannot read MTU", ret);
    }
    return Ok{};
}

DpdkPort::~DpdkPort() {
    if (!probed_) {
        return;
    }
    if (started_) {
        const int ret = rte_eth_dev_stop(port_id_);
        if (ret != 0) {
            spdlog::warn("dpdk port '{}' ({}): stop: {}", name_, devargs_, rte_strerror(-ret));
        }
    }
    if (port_id_ != RTE_MAX_ETHPORTS) {
        // Also when bring-up failed half-way: close releases the port.
        const int ret = rte_eth_dev_close(port_id_);
        if (ret != 0) {
            spdlog::warn("dpdk port '{}' ({}): close: {}", name_, devargs_, rte_strerror(-ret));
        }
    }
    // The rte_device outlives the closed port until it is removed; removing
    // it lets the same devargs be probed again.
    const int ret = device_ != nullptr
                        ? rte_dev_remove(device_)
                        : rte_eal_hotplug_remove(bus_.c_str(), device_name_.c_str());
    if (ret != 0) {
        spdlog::warn("dpdk port '{}' ({}): removing device {}: {}", name_, devargs_, device_name_,
                     rte_strerror(-ret));
    }
    spdlog::info("dpdk port '{}' ({}): closed", name_, devargs_);
}

bool DpdkPort::link_up() const noexcept {
    rte_eth_link link{};
    if (rte_eth_link_get_nowait(port_id_, &link) != 0) {
        return false;
    }
    return link.link_status == RTE_ETH_LINK_UP;
}

Result<rte_eth_stats> DpdkPort::stats() const {
    rte_eth_stats st{};
    const int ret = rte_eth_stats_get(port_id_, &st);
    if (ret != 0) {
        return error("reading statistics failed", ret);
    }
    return st;
}

} // namespace vhostd::dataplane
