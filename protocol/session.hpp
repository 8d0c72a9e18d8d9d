#pragma once
// One vhost-user session: the back-end's side of the protocol for one
// connected front-end (QEMU docs/interop/vhost-user.rst). It takes decoded
// messages, keeps the device state (features, memory table, per-ring
// configuration and fds) and tells the device what to run through
// VhostDevice::apply(). No socket I/O happens here: the caller reads messages
// and writes the replies this returns.
//
// Any error closes the connection (after a NACK when REPLY_ACK asked for one):
// the caller logs the one-line reason, which names the message, field and value.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "protocol/codec.hpp"
#include "protocol/device.hpp"
#include "protocol/memory_table.hpp"
#include "protocol/unique_fd.hpp"

namespace vhostd::protocol {

struct SessionLimits {
    uint32_t queue_pairs = 1;         // GET_QUEUE_NUM; rings = 2 * queue_pairs
    std::optional<uint32_t> max_mtu;  // configured port MTU, if any
};

class Session {
public:
    Session(SessionLimits limits, VhostDevice& device);
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;
    // Stops every ring, closes every fd, drops the memory table.
    ~Session();

    struct Outcome {
        std::vector<uint8_t> reply;  // bytes to send back (may be empty)
        std::optional<Error> error;  // set: log it and close the connection
    };
    Outcome handle(Message msg);

    // Stop all rings and forget everything (disconnect).
    void reset();
    // Stop all rings, keeping their positions and everything negotiated (RESET_OWNER).
    void stop_all_rings();
    // Stop all rings and return the device to its initial state, keeping the
    // connection's owner and protocol features (RESET_DEVICE).
    void reset_device();

    // Introspection for logs, tests and the control socket.
    [[nodiscard]] uint64_t features() const noexcept { return features_; }
    [[nodiscard]] uint64_t protocol_features() const noexcept { return protocol_features_; }
    [[nodiscard]] const MemoryTable& memory() const noexcept { return *memory_; }
    [[nodiscard]] size_t live_rings() const noexcept { return live_count_; }
    [[nodiscard]] uint8_t status() const noexcept { return status_; }
    [[nodiscard]] std::optional<uint32_t> mtu() const noexcept { return mtu_; }
    [[nodiscard]] uint64_t offered_features() const noexcept;
    [[nodiscard]] bool has_log() const noexcept { return log_mapping_ != nullptr; }

private:
    struct Ring {
        uint32_t size = 0;  // 0 until SET_VRING_NUM
        std::optional<VringAddr> addr;
        uint16_t base = 0;
        UniqueFd kick;
        UniqueFd call;
        UniqueFd err;
        bool kick_polled = false;
        bool started = false;  // SET_VRING_KICK seen, until GET_VRING_BASE
        bool enabled = false;  // SET_VRING_ENABLE (or implicit, see enable rule)
        uint64_t generation = 0;
    };

    Status dispatch(Message& msg, std::vector<uint8_t>& reply);
    Status ring_index(Request r, uint32_t index) const;
    Status check_ring_layout(uint32_t index, const Ring& ring, const MemoryTable& mem) const;
    Status require_protocol_feature(Request r, unsigned pf_bit) const;
    [[nodiscard]] bool ring_live(const Ring& ring) const noexcept;
    [[nodiscard]] bool ring_enabled(const Ring& ring) const noexcept;
    void publish();
    void stop_ring(uint32_t index);

    Status on_set_features(uint64_t value);
    Status on_set_protocol_features(uint64_t value);
    Status on_set_mem_table(MemTable& table);
    Status on_add_mem_reg(SingleRegion& region);
    Status on_rem_mem_reg(SingleRegion& region);
    Status on_set_log_base(LogBase& log);
    Status on_set_vring_num(VringState state);
    Status on_set_vring_addr(const VringAddr& addr);
    Status on_set_vring_base(VringState state);
    Result<VringState> on_get_vring_base(VringState state);
    Status on_set_vring_fd(Request r, VringFd& vfd);
    Status on_set_vring_enable(VringState state);
    Status on_send_rarp(uint64_t value);
    Status on_net_set_mtu(uint64_t value);
    Status on_set_status(uint64_t value);
    Status replace_memory(Request r, std::shared_ptr<const MemoryTable> table);

    SessionLimits limits_;
    VhostDevice& device_;
    uint64_t features_ = 0;
    uint64_t protocol_features_ = 0;
    bool owner_ = false;
    uint8_t status_ = 0;
    std::optional<uint32_t> mtu_;
    std::shared_ptr<const MemoryTable> memory_;
    std::shared_ptr<const Mapping> log_mapping_;
    UniqueFd log_fd_;
    std::vector<Ring> rings_;
    size_t live_count_ = 0;
};

} // namespace vhostd::protocol
