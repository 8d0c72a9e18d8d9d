#pragma once
// The vhost-user message codec: bytes and file descriptors in, a typed message
// or an error out. No sockets here, so it can be fuzzed and unit-tested alone.
//
// Decoding happens in two stages, as STYLE.md asks for untrusted bytes:
//  1. decode_header(): known request code, version bits, no reply bit on a
//     request, size within kMaxPayload. Only then is the body read.
//  2. decode_body(): the body size must equal what the request needs, and the
//     attached fds must be exactly the ones the request takes. Every fd that is
//     not handed over in the typed message is closed before returning.

#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "protocol/result.hpp"
#include "protocol/unique_fd.hpp"
#include "protocol/wire.hpp"

namespace vhostd::protocol {

// SET_VRING_KICK / SET_VRING_CALL / SET_VRING_ERR.
struct VringFd {
    uint32_t index = 0;
    UniqueFd fd;           // invalid when `polling` is set
    bool polling = false;  // bit 8 set: no fd, the ring is polled
};

// SET_MEM_TABLE: the regions and one fd per region, in the same order.
struct MemTable {
    std::vector<MemRegionWire> regions;
    std::vector<UniqueFd> fds;
};

// ADD_MEM_REG (fd valid) / REM_MEM_REG (fd always closed, never used).
struct SingleRegion {
    MemRegionWire region{};
    UniqueFd fd;
};

// SET_LOG_BASE.
struct LogBase {
    LogWire log{};
    UniqueFd fd;
};

// SET_LOG_FD.
struct FdOnly {
    UniqueFd fd;
};

struct NoBody {};

using Body = std::variant<NoBody, uint64_t, VringState, VringAddr, VringFd, MemTable, SingleRegion,
                          LogBase, FdOnly>;

struct Message {
    Request request = Request::None;
    uint32_t flags = 0;
    Body body;

    [[nodiscard]] bool need_reply() const noexcept { return (flags & kFlagNeedReply) != 0; }
};

// Stage 1. `bytes` must hold exactly sizeof(MsgHeader) bytes.
Result<MsgHeader> decode_header(std::span<const uint8_t> bytes);

// Stage 2. `fds` are the descriptors that arrived with the message (taken
// over: those not used are closed). `fds_truncated` is MSG_CTRUNC from recvmsg.
Result<Message> decode_body(const MsgHeader& header, std::span<const uint8_t> body,
                            std::vector<UniqueFd> fds, bool fds_truncated);

// Convenience for fuzzing and tests: header + body in one buffer.
Result<Message> decode(std::span<const uint8_t> bytes, std::vector<UniqueFd> fds,
                       bool fds_truncated);

// Replies: header (version 1 | reply bit) + payload.
std::vector<uint8_t> encode_reply_u64(Request request, uint64_t value);
std::vector<uint8_t> encode_reply_state(Request request, VringState state);
std::vector<uint8_t> encode_reply_empty(Request request);

// Requests (used by the test front-end and by tools that speak vhost-user).
std::vector<uint8_t> encode_request(Request request, uint32_t flags,
                                    std::span<const uint8_t> payload);

// The bytes of a wire struct as the payload. Only for trivially copyable
// types: a container (std::vector<uint8_t>...) must take the span overload
// above, not have its own object bytes (pointer, size) encoded.
template <typename T>
    requires std::is_trivially_copyable_v<T>
std::vector<uint8_t> encode_request(Request request, uint32_t flags, const T& payload) {
    return encode_request(request, flags,
                          std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&payload),
                                                   sizeof(payload)));
}

} // namespace vhostd::protocol
