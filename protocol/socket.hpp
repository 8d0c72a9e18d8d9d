#pragma once
// vhost-user transport: AF_UNIX stream sockets and the framing of messages
// that arrive through recvmsg with SCM_RIGHTS. The control thread's io_uring
// loop (daemon/) does the actual recvmsg calls into the buffers a
// MessageReader hands out; everything here is synchronous and small.

#include <sys/socket.h>
#include <sys/types.h>

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "protocol/codec.hpp"
#include "protocol/result.hpp"
#include "protocol/unique_fd.hpp"
#include "protocol/wire.hpp"

namespace vhostd::protocol {

struct ListenOptions {
    uint32_t mode = 0660;          // the socket file has these bits when it appears
    std::optional<gid_t> group;    // and this group
    int backlog = 16;
};

// Creates a listening socket at `path`. Refuses (with an error naming the
// path) when a live listener holds it or when it exists and is not a socket;
// replaces a stale socket file nobody listens on. The parent directory is
// created (0755) when missing. The socket appears at `path` already
// listening, with its mode and group (bound in a private directory and
// renamed into place): no other user can connect during start-up.
Result<UniqueFd> listen_unix(const std::string& path, const ListenOptions& options);

// One non-blocking connection attempt. The error says why (ENOENT: the
// front-end has not created its socket yet; ECONNREFUSED: nobody listens).
struct ConnectError {
    int err = 0;
    std::string message;
};
std::variant<UniqueFd, ConnectError> connect_unix(const std::string& path);

// Sends one message (no fds). The socket is non-blocking: a peer that does
// not read its replies fails the send instead of stalling the control thread.
Status send_all(int fd, std::span<const uint8_t> bytes);

// Sends one message with fds attached (the test front-end and tools use this).
Status send_with_fds(int fd, std::span<const uint8_t> bytes, std::span<const int> fds);

// Space for the control message of one recvmsg: up to kMaxFdsPerMessage fds.
// More than that arrive truncated (MSG_CTRUNC), and the message fails.
inline constexpr size_t kCmsgSpace = CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage);

// Takes ownership of every SCM_RIGHTS fd in `msg`'s control data.
std::vector<UniqueFd> take_fds(const msghdr& msg);

// Frames a byte stream into vhost-user messages. Usage per recvmsg round:
//   auto buf = reader.buffer();          // where to receive, how much at most
//   ... recvmsg(fd, into buf) -> n bytes, fds, flags ...
//   auto r = reader.consume(n, fds, msg_flags & MSG_CTRUNC);
// consume() returns nullopt while a message is incomplete, the decoded
// message when complete, or an error (the connection must then be closed).
class MessageReader {
public:
    std::span<uint8_t> buffer() noexcept;
    std::optional<Result<Message>> consume(size_t n, std::vector<UniqueFd> fds, bool truncated);
    // Bytes of the current message read so far (0 between messages).
    [[nodiscard]] size_t pending() const noexcept { return have_; }

private:
    std::array<uint8_t, sizeof(MsgHeader) + kMaxPayload> buf_{};
    size_t have_ = 0;
    std::optional<MsgHeader> header_;
    std::vector<UniqueFd> fds_;
    bool truncated_ = false;
};

} // namespace vhostd::protocol
