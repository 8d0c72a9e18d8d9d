#pragma once
// The rig the protocol::Session tests share (session_*_test.cpp), driven the
// way QEMU drives a back-end: a
// fake front-end writes real messages (memfd guest memory, eventfds) into one
// end of a socketpair; a BackendPump reads them from the other end through
// MessageReader and hands them to the session; a RecordingDevice records every
// DeviceView the session publishes. Single-threaded: send, step, read reply.
//
// The rules come from QEMU docs/interop/vhost-user.rst ("Ring states",
// "Starting and stopping rings", REPLY_ACK, the message descriptions) and
// VIRTIO 1.2 §2.7 (split ring sizes and alignment).

#include "protocol/session.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "protocol/features.hpp"
#include "protocol/wire.hpp"
#include "tests/fakes/fake_frontend.hpp"
#include "tests/fakes/guest_memory.hpp"
#include "tests/fakes/recording_device.hpp"
#include "tests/unit/protocol/test_support.hpp"

namespace vhostd::protocol::session_testing {

using fakes::BackendPump;
using fakes::bytes_of;
using fakes::FakeFrontend;
using fakes::GuestMemory;
using fakes::HandshakeOptions;
using fakes::HandshakeResult;
using fakes::mem_table_payload;
using fakes::RecordingDevice;
using fakes::ring_addr;
using fakes::single_region_payload;
using testing_support::fd_closed;
using testing_support::fd_open;
using testing_support::is_ok;
using testing_support::resources;
using testing_support::text_has;
using Exchange = FakeFrontend::Exchange;

constexpr uint64_t kMemSize = 1 << 20;
constexpr uint32_t kRingSize = 256;

// Everything one connection needs. Declaration order matters: the device and
// the memory outlive the pump (the session applies a last view when it dies).
struct Rig {
    explicit Rig(SessionLimits limits = {}, uint64_t mem_size = kMemSize) : memory(mem_size) {
        connect(limits);
    }

    void connect(SessionLimits limits = {}) {
        fe.reset();
        pump.reset();
        auto pair = fakes::make_socketpair();
        pump = std::make_unique<BackendPump>(std::move(pair.backend), limits, device);
        fe = std::make_unique<FakeFrontend>(std::move(pair.frontend));
    }

    Result<HandshakeResult> handshake(const HandshakeOptions& options = {}) {
        return fe->handshake(*pump, memory, options);
    }

    Exchange u64(Request r, uint64_t value, uint32_t flags = kFlagVersion1) {
        return fe->exchange_value(*pump, r, value, {}, flags);
    }
    Exchange state(Request r, uint32_t index, uint32_t num, uint32_t flags = kFlagVersion1) {
        return fe->exchange_value(*pump, r, VringState{index, num}, {}, flags);
    }
    Exchange none(Request r, uint32_t flags = kFlagVersion1) {
        return fe->exchange(*pump, r, {}, {}, flags);
    }
    Exchange addr(const VringAddr& a, uint32_t flags = kFlagVersion1) {
        return fe->exchange_value(*pump, Request::SetVringAddr, a, {}, flags);
    }
    // SET_VRING_KICK / CALL / ERR: `payload` as sent; `fd` < 0 sends none.
    Exchange vring_fd(Request r, uint64_t payload, int fd, uint32_t flags = kFlagVersion1) {
        if (fd < 0) {
            return fe->exchange_value(*pump, r, payload, {}, flags);
        }
        return fe->exchange_value(*pump, r, payload, std::span<const int>(&fd, 1), flags);
    }
    Exchange mem_table(std::span<const MemRegionWire> regions, std::span<const int> fds,
                       uint32_t flags = kFlagVersion1) {
        return fe->exchange(*pump, Request::SetMemTable, mem_table_payload(regions), fds, flags);
    }
    Exchange region_msg(Request r, const MemRegionWire& region, std::span<const int> fds) {
        return fe->exchange(*pump, r, single_region_payload(region), fds);
    }

    // SET_VRING_NUM, SET_VRING_BASE, SET_VRING_ADDR for ring `i` in `memory`.
    ::testing::AssertionResult configure_ring(uint32_t i, uint32_t size = kRingSize, uint32_t base = 0) {
        if (auto ex = state(Request::SetVringNum, i, size); !ex.ok()) {
            return ::testing::AssertionFailure() << ex.error_text();
        }
        if (auto ex = state(Request::SetVringBase, i, base); !ex.ok()) {
            return ::testing::AssertionFailure() << ex.error_text();
        }
        if (auto ex = addr(ring_addr(memory, i, size)); !ex.ok()) {
            return ::testing::AssertionFailure() << ex.error_text();
        }
        return ::testing::AssertionSuccess();
    }

    Session& session() { return pump->session(); }

    RecordingDevice device;
    GuestMemory memory;
    std::unique_ptr<BackendPump> pump;
    std::unique_ptr<FakeFrontend> fe;
};

inline ::testing::AssertionResult fails_with(const Exchange& ex, const std::vector<std::string>& fragments) {
    if (ex.ok()) {
        return ::testing::AssertionFailure() << "succeeded where an error was expected";
    }
    return text_has(ex.error_text(), fragments);
}

inline ::testing::AssertionResult succeeds(const Exchange& ex) {
    if (!ex.ok()) {
        return ::testing::AssertionFailure() << ex.error_text();
    }
    return ::testing::AssertionSuccess();
}

inline uint64_t eventfd_read_value(int fd) {
    uint64_t v = 0;
    return ::read(fd, &v, sizeof v) == sizeof v ? v : 0;
}

inline void eventfd_write_value(int fd, uint64_t v) { ASSERT_EQ(::write(fd, &v, sizeof v), ssize_t{sizeof v}); }

inline std::string fmt_hex(uint64_t v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
    return buf;
}

inline uint64_t pf_without(unsigned bit_to_drop) { return kOfferedProtocolFeatures & ~bit(bit_to_drop); }

// Checks, after everything declared after it is destroyed, that the process
// holds exactly the fds and mappings it held before: every SessionTest, on
// success and on every error path it provokes, is also a leak test.
class ResourceGuard {
public:
    ResourceGuard() : before_(resources()) {}
    ~ResourceGuard() {
        const auto after = resources();
        if (after.fds != before_.fds || after.maps != before_.maps || after.memfd_maps != before_.memfd_maps) {
            ADD_FAILURE() << "leak: fds " << before_.fds << " -> " << after.fds << ", mappings " << before_.maps
                          << " -> " << after.maps << ", memfd mappings " << before_.memfd_maps << " -> "
                          << after.memfd_maps;
        }
    }
    ResourceGuard(const ResourceGuard&) = delete;
    ResourceGuard& operator=(const ResourceGuard&) = delete;

private:
    testing_support::Resources before_;
};

class SessionTest : public ::testing::Test {
protected:
    ResourceGuard guard;  // first: checked after `rig` is gone
    Rig rig;
};

// SET_LOG_BASE with a log of `size` bytes at `offset` in `fd`.
inline Exchange set_log_base(Rig& rig, uint64_t size, uint64_t offset, int fd) {
    return rig.fe->exchange(*rig.pump, Request::SetLogBase, bytes_of(LogWire{size, offset}),
                            std::span<const int>(&fd, 1));
}

} // namespace vhostd::protocol::session_testing
