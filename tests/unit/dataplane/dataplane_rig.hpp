#pragma once
// The rig the Dataplane tests share (dataplane_*_test.cpp).
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

namespace vhostd::dataplane::dataplane_testing {

using namespace std::chrono_literals;
using protocol::bit;
namespace vf = protocol::vf;

constexpr uint64_t kV1 = bit(vf::kVersion1);
constexpr uint64_t kMiB = 1024 * 1024;
constexpr uint32_t kHdr = 12;  // VERSION_1 header

// Waits until `cond` holds, for at most `limit`.
inline bool wait_until(const std::function<bool()>& cond, std::chrono::milliseconds limit = 20s) {
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

inline std::atomic_ref<uint16_t> ring_u16(const fakes::GuestMemory& mem, uint64_t gpa) {
    return std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(mem.driver_ptr(gpa, 2)));
}

// avail.ring[idx] = head, then avail.idx + 1 with release order (the driver's
// write barrier before publishing avail.idx).
inline void publish(const fakes::GuestMemory& mem, const fakes::FakeSplitDriver& drv, uint16_t head) {
    auto idx = ring_u16(mem, drv.avail_gpa() + 2);
    const uint16_t i = idx.load(std::memory_order_relaxed);  // only the driver writes it
    drv.set_avail_ring_entry(static_cast<uint16_t>(i & (drv.size() - 1)), head);
    idx.store(static_cast<uint16_t>(i + 1), std::memory_order_release);
}
inline uint16_t used_idx(const fakes::GuestMemory& mem, const fakes::FakeSplitDriver& drv) {
    return ring_u16(mem, drv.used_gpa() + 2).load(std::memory_order_acquire);
}
inline uint16_t avail_idx(const fakes::GuestMemory& mem, const fakes::FakeSplitDriver& drv) {
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

inline Mac mac_of(uint8_t n) { return Mac{0x02, 0x00, 0x00, 0x00, 0x00, n}; }
inline const Mac kBroadcast{0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

// Frame `seq` of stream `stream`: Ethernet header, seq, stream, a pattern.
inline std::vector<uint8_t> seq_frame(const Mac& dst, const Mac& src, uint8_t stream, uint64_t seq, size_t len = 64) {
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
inline uint64_t seq_of(std::span<const uint8_t> f) {
    uint64_t s = ~uint64_t{0};
    if (f.size() >= 23) {
        std::memcpy(&s, &f[14], sizeof(s));
    }
    return s;
}

// ---- The data plane ----

inline config::PortConfig vhost_port(const std::string& name) {
    config::PortConfig p;
    p.name = name;
    p.type = config::PortType::VhostUser;
    p.path = "/nonexistent/vhostd-test-" + name + ".sock";  // never opened here
    p.queues = 1;
    return p;
}

inline std::unique_ptr<Dataplane> make_dataplane(config::SwitchMode mode, const std::vector<std::string>& ports,
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

class DataplaneIdle : public ::testing::TestWithParam<config::IdleMode> {};

} // namespace vhostd::dataplane::dataplane_testing
