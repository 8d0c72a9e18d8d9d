#pragma once
// A vhost-user front-end for tests (the part QEMU plays), and the back-end
// side that drives a protocol::Session, over the two ends of one real
// socketpair(AF_UNIX, SOCK_STREAM). Both live in the test's thread:
//
//   auto [fe_end, be_end] = vhostd::fakes::make_socketpair();
//   vhostd::fakes::RecordingDevice device;
//   vhostd::fakes::BackendPump pump(std::move(be_end), {}, device);
//   vhostd::fakes::FakeFrontend frontend(std::move(fe_end));
//   vhostd::fakes::GuestMemory memory(1 << 20);
//
//   frontend.send(protocol::Request::GetFeatures);   // 1. the front-end writes
//   auto step = pump.step();                         // 2. the back-end reads one
//                                                    //    message, handles it, replies
//   auto reply = frontend.read_reply();              // 3. the front-end reads
//
//   // or all of it at once, in the order QEMU uses:
//   auto done = frontend.handshake(pump, memory);
//
// BackendPump does what the daemon's connection does (daemon/vhost_endpoint):
// recvmsg with MSG_CMSG_CLOEXEC into MessageReader::buffer() with a control
// buffer of protocol::kCmsgSpace, take_fds(), consume(), Session::handle(),
// send the reply. An error from consume() or handle() means "close the
// connection"; the test decides when to disconnect() (destroy the session).
//
// The device passed to BackendPump must outlive it: destroying the session
// applies a last, empty view.
//
// The same FakeFrontend also speaks to a back-end in another process (the
// real daemon, over a connected AF_UNIX socket): exchange_remote() and
// handshake_remote() send and read the reply when one is due, instead of
// stepping a pump. Use HandshakeOptions::need_reply there, so that every
// SET_* is acknowledged and a refusal shows at the step that caused it.
//
// Helpers return vhostd::Status / Result with a message naming the step that
// failed; nothing here uses GoogleTest. Link protocol_dep.

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "protocol/codec.hpp"
#include "protocol/device.hpp"
#include "protocol/result.hpp"
#include "protocol/session.hpp"
#include "protocol/socket.hpp"
#include "protocol/unique_fd.hpp"
#include "protocol/wire.hpp"
#include "tests/fakes/guest_memory.hpp"

namespace vhostd::fakes {

inline constexpr int kDefaultTimeoutMs = 2000;
// A back-end in another process, on a loaded machine: generous.
inline constexpr int kRemoteTimeoutMs = 20000;

// The two connected ends of a fresh blocking socketpair (CLOEXEC).
struct SocketPair {
    UniqueFd frontend;
    UniqueFd backend;
};

inline SocketPair make_socketpair() {
    int sv[2] = {-1, -1};
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        throw std::system_error(errno, std::system_category(), "socketpair");
    }
    return SocketPair{UniqueFd(sv[0]), UniqueFd(sv[1])};
}

// An eventfd as QEMU makes for kick and call (non-blocking, CLOEXEC).
inline UniqueFd make_eventfd() {
    UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!fd) {
        throw std::system_error(errno, std::system_category(), "eventfd");
    }
    return fd;
}

// The bytes of a trivially copyable payload struct.
template <typename T>
std::vector<uint8_t> bytes_of(const T& value) {
    static_assert(std::is_trivially_copyable_v<T>);
    std::vector<uint8_t> out(sizeof(T));
    std::memcpy(out.data(), &value, sizeof(T));
    return out;
}

// SET_MEM_TABLE payload: num_regions, padding, regions (num_regions is
// taken from `regions` unless given, for malformed cases).
inline std::vector<uint8_t> mem_table_payload(std::span<const protocol::MemRegionWire> regions,
                                              std::optional<uint32_t> num_regions = std::nullopt) {
    protocol::MemTableHeaderWire head{num_regions.value_or(static_cast<uint32_t>(regions.size())), 0};
    std::vector<uint8_t> out = bytes_of(head);
    for (const auto& r : regions) {
        const auto b = bytes_of(r);
        out.insert(out.end(), b.begin(), b.end());
    }
    return out;
}

// ADD_MEM_REG / REM_MEM_REG payload.
inline std::vector<uint8_t> single_region_payload(const protocol::MemRegionWire& region) {
    return bytes_of(protocol::SingleMemRegionWire{0, region});
}

// Where ring `index` of `size` entries lives in `memory` (split layout,
// VIRTIO 1.2 §2.7): each ring gets its own stretch, the descriptor table
// 16-byte aligned, avail after it, used 64-byte aligned after avail. The
// addresses are front-end virtual addresses, as SET_VRING_ADDR carries them.
// Throws std::out_of_range when the ring does not fit in `memory`.
inline uint64_t ring_stride(uint32_t size) {
    const uint64_t bytes = 16ull * size + (6ull + 2ull * size) + 64 + (6ull + 8ull * size);
    return (bytes + 0xfff) & ~uint64_t{0xfff};
}

inline protocol::VringAddr ring_addr(const GuestMemory& memory, uint32_t index, uint32_t size) {
    const uint64_t offset = uint64_t{index} * ring_stride(size);
    const uint64_t desc = memory.gpa_base() + offset;
    const uint64_t avail = desc + 16ull * size;
    const uint64_t used = (avail + 6ull + 2ull * size + 63) & ~uint64_t{63};
    // Checks that the whole stretch lies inside the memory (throws if not).
    (void)memory.driver_ptr(desc, ring_stride(size));
    protocol::VringAddr addr{};
    addr.index = index;
    addr.flags = 0;
    addr.desc_user_addr = memory.uva_of(desc);
    addr.avail_user_addr = memory.uva_of(avail);
    addr.used_user_addr = memory.uva_of(used);
    addr.log_guest_addr = 0;
    return addr;
}

// A reply as the front-end reads it.
struct Reply {
    protocol::MsgHeader header{};
    std::vector<uint8_t> payload;

    [[nodiscard]] protocol::Request request() const noexcept {
        return static_cast<protocol::Request>(header.request);
    }
    [[nodiscard]] std::optional<uint64_t> u64() const {
        if (payload.size() != sizeof(uint64_t)) {
            return std::nullopt;
        }
        uint64_t v = 0;
        std::memcpy(&v, payload.data(), sizeof v);
        return v;
    }
    [[nodiscard]] std::optional<protocol::VringState> state() const {
        if (payload.size() != sizeof(protocol::VringState)) {
            return std::nullopt;
        }
        protocol::VringState s{};
        std::memcpy(&s, payload.data(), sizeof s);
        return s;
    }
};

// ---------------------------------------------------------------------------
// The back-end side: one Session fed from one socket end.
class BackendPump {
public:
    struct Step {
        std::optional<protocol::Request> request;  // set once a message was decoded
        std::vector<uint8_t> reply;                // the bytes sent back (may be empty)
        std::optional<std::string> error;          // set: the daemon would close the connection
        bool decode_error = false;                 // the error came from the codec / framing

        [[nodiscard]] bool ok() const noexcept { return !error.has_value(); }
        [[nodiscard]] std::string error_text() const { return error.value_or(""); }
    };

    BackendPump(UniqueFd socket, protocol::SessionLimits limits, protocol::VhostDevice& device)
        : socket_(std::move(socket)) {
        session_.emplace(limits, device);
    }
    BackendPump(const BackendPump&) = delete;
    BackendPump& operator=(const BackendPump&) = delete;
    ~BackendPump() { disconnect(); }

    // Reads exactly one message (however many recvmsg calls it takes), hands
    // it to the session and sends the reply. Fails with an error instead of
    // blocking forever when nothing arrives within `timeout_ms`.
    Step step(int timeout_ms = kDefaultTimeoutMs) {
        Step out;
        if (!session_ || !socket_) {
            out.error = "pump: disconnected";
            return out;
        }
        for (;;) {
            pollfd p{socket_.get(), POLLIN, 0};
            const int ready = ::poll(&p, 1, timeout_ms);
            if (ready < 0 && errno == EINTR) {
                continue;
            }
            if (ready <= 0) {
                out.error = ready == 0 ? "pump: timed out waiting for a message"
                                       : std::string("pump: poll: ") + std::strerror(errno);
                return out;
            }
            const std::span<uint8_t> buf = reader_.buffer();
            iovec iov{buf.data(), buf.size()};
            alignas(cmsghdr) uint8_t control[protocol::kCmsgSpace] = {};
            msghdr msg{};
            msg.msg_iov = &iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control;
            msg.msg_controllen = sizeof control;
            const ssize_t n = ::recvmsg(socket_.get(), &msg, MSG_CMSG_CLOEXEC);
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                out.error = std::string("pump: recvmsg: ") + std::strerror(errno);
                return out;
            }
            // Every fd that arrived is owned from here on.
            std::vector<UniqueFd> fds = protocol::take_fds(msg);
            if (n == 0) {
                out.error = "pump: front-end closed the connection";
                return out;
            }
            auto decoded = reader_.consume(static_cast<size_t>(n), std::move(fds),
                                           (msg.msg_flags & MSG_CTRUNC) != 0);
            if (!decoded) {
                continue;  // message incomplete
            }
            if (!decoded->ok()) {
                out.error = decoded->error().message;
                out.decode_error = true;
                return out;
            }
            protocol::Message message = std::move(*decoded).value();
            out.request = message.request;
            auto outcome = session_->handle(std::move(message));
            if (!outcome.reply.empty()) {
                if (auto sent = protocol::send_all(socket_.get(), outcome.reply); !sent) {
                    out.error = "pump: sending the reply: " + sent.error().message;
                    return out;
                }
            }
            out.reply = std::move(outcome.reply);
            if (outcome.error) {
                out.error = outcome.error->message;
            }
            return out;
        }
    }

    [[nodiscard]] protocol::Session& session() { return *session_; }
    [[nodiscard]] bool connected() const noexcept { return session_.has_value(); }
    [[nodiscard]] int fd() const noexcept { return socket_.get(); }
    [[nodiscard]] const protocol::MessageReader& reader() const noexcept { return reader_; }

    // What the daemon does on an error or EOF: destroy the session (stops
    // every ring, closes every fd, drops the memory) and close the socket.
    void disconnect() {
        session_.reset();
        socket_.reset();
    }

private:
    UniqueFd socket_;
    protocol::MessageReader reader_;
    std::optional<protocol::Session> session_;
};

// ---------------------------------------------------------------------------
// The front-end side.

struct HandshakeOptions {
    uint32_t rings = 2;                  // rings to set up: 0 .. rings-1
    uint32_t ring_size = 256;
    uint16_t base = 0;                   // SET_VRING_BASE value for every ring
    bool protocol_features = true;       // negotiate VHOST_USER_F_PROTOCOL_FEATURES
    // SET_PROTOCOL_FEATURES value; default: everything GET_PROTOCOL_FEATURES offered.
    std::optional<uint64_t> protocol_feature_bits;
    // SET_FEATURES value; default: everything GET_FEATURES offered (without
    // PROTOCOL_FEATURES when protocol_features is false).
    std::optional<uint64_t> features;
    bool need_reply = false;             // REPLY_ACK on every SET_* after SET_PROTOCOL_FEATURES
    bool enable = true;                  // SET_VRING_ENABLE 1 per ring (with PROTOCOL_FEATURES)
};

struct HandshakeResult {
    uint64_t offered_features = 0;
    uint64_t offered_protocol_features = 0;
    uint64_t features = 0;               // what SET_FEATURES carried
    uint64_t protocol_features = 0;      // what SET_PROTOCOL_FEATURES carried (0 if not sent)
};

class FakeFrontend {
public:
    struct Exchange {
        BackendPump::Step step;
        std::optional<Reply> reply;      // read when the back-end sent one
        std::string reply_error;         // reading it failed

        [[nodiscard]] bool ok() const noexcept { return step.ok(); }
        [[nodiscard]] std::string error_text() const { return step.error_text(); }
    };

    explicit FakeFrontend(UniqueFd socket) : socket_(std::move(socket)) {}

    [[nodiscard]] int fd() const noexcept { return socket_.get(); }
    void close() { socket_.reset(); }

    // ---- Sending ----

    // Header {request, flags, payload.size()} + payload, fds on the first byte.
    Status send(protocol::Request request, std::span<const uint8_t> payload = {},
                std::span<const int> fds = {}, uint32_t flags = protocol::kFlagVersion1) {
        const auto bytes = protocol::encode_request(request, flags, payload);
        return send_bytes(bytes, fds);
    }

    // Any header fields (size need not match the body; request need not exist).
    Status send_raw(protocol::MsgHeader header, std::span<const uint8_t> body,
                    std::span<const int> fds = {}) {
        std::vector<uint8_t> bytes = bytes_of(header);
        bytes.insert(bytes.end(), body.begin(), body.end());
        return send_bytes(bytes, fds);
    }

    // Bytes as given, through protocol::send_with_fds (at most kMaxFdsPerMessage fds).
    Status send_bytes(std::span<const uint8_t> bytes, std::span<const int> fds = {}) {
        return protocol::send_with_fds(socket_.get(), bytes, fds);
    }

    // One raw sendmsg with any number of fds: more than kMaxFdsPerMessage do
    // not fit the back-end's control buffer and arrive with MSG_CTRUNC.
    Status send_bytes_raw(std::span<const uint8_t> bytes, std::span<const int> fds) {
        iovec iov{const_cast<uint8_t*>(bytes.data()), bytes.size()};
        // operator new storage is aligned well enough for cmsghdr.
        std::vector<uint8_t> control(CMSG_SPACE(sizeof(int) * fds.size()), 0);
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        if (!fds.empty()) {
            msg.msg_control = control.data();
            msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
            cmsghdr* c = CMSG_FIRSTHDR(&msg);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
            std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
        }
        const ssize_t n = ::sendmsg(socket_.get(), &msg, MSG_NOSIGNAL);
        if (n < 0) {
            return make_error(std::string("sendmsg: ") + std::strerror(errno));
        }
        if (static_cast<size_t>(n) != bytes.size()) {
            return make_error("sendmsg: short write");
        }
        return Ok{};
    }

    // ---- Receiving ----

    // Whether reply bytes are waiting (within `timeout_ms`).
    [[nodiscard]] bool reply_pending(int timeout_ms = 0) const {
        pollfd p{socket_.get(), POLLIN, 0};
        return ::poll(&p, 1, timeout_ms) > 0;
    }

    // Reads one reply: header, then the payload its size announces.
    Result<Reply> read_reply(int timeout_ms = kDefaultTimeoutMs) {
        Reply reply;
        if (auto s = read_exact(reinterpret_cast<uint8_t*>(&reply.header), sizeof reply.header,
                                timeout_ms);
            !s) {
            return make_error("reading the reply header: " + s.error().message);
        }
        if (reply.header.size > protocol::kMaxPayload) {
            return make_error("reply size " + std::to_string(reply.header.size) + " is too large");
        }
        reply.payload.resize(reply.header.size);
        if (reply.header.size != 0) {
            if (auto s = read_exact(reply.payload.data(), reply.payload.size(), timeout_ms); !s) {
                return make_error("reading the reply payload: " + s.error().message);
            }
        }
        return reply;
    }

    // ---- Send, let the pump handle it, read the reply it sent ----

    Exchange exchange(BackendPump& pump, protocol::Request request,
                      std::span<const uint8_t> payload = {}, std::span<const int> fds = {},
                      uint32_t flags = protocol::kFlagVersion1) {
        Exchange ex;
        if (auto s = send(request, payload, fds, flags); !s) {
            ex.step.error = "front-end: " + s.error().message;
            return ex;
        }
        return finish(pump, std::move(ex));
    }

    template <typename T>
    Exchange exchange_value(BackendPump& pump, protocol::Request request, const T& payload,
                            std::span<const int> fds = {},
                            uint32_t flags = protocol::kFlagVersion1) {
        const auto bytes = bytes_of(payload);
        return exchange(pump, request, bytes, fds, flags);
    }

    // After a send by other means (send_raw, send_bytes_raw...): step the
    // pump and read what it sent back.
    Exchange finish(BackendPump& pump, Exchange ex = {}) {
        ex.step = pump.step();
        if (!ex.step.reply.empty()) {
            auto r = read_reply();
            if (r) {
                ex.reply = std::move(r).value();
            } else {
                ex.reply_error = r.error().message;
            }
        }
        return ex;
    }

    // Against a back-end in another process: send, then read the reply only
    // when one is due (`reply_expected`: a GET_*, or NEED_REPLY with
    // REPLY_ACK negotiated). Fails when the back-end closed the connection
    // or sent nothing within `timeout_ms`.
    Exchange exchange_remote(protocol::Request request, std::span<const uint8_t> payload,
                             std::span<const int> fds, uint32_t flags, bool reply_expected,
                             int timeout_ms = kRemoteTimeoutMs) {
        Exchange ex;
        ex.step.request = request;
        if (auto s = send(request, payload, fds, flags); !s) {
            ex.step.error = "front-end: " + s.error().message;
            return ex;
        }
        if (reply_expected) {
            auto r = read_reply(timeout_ms);
            if (!r) {
                ex.step.error = r.error().message;
                ex.reply_error = r.error().message;
                return ex;
            }
            ex.reply = std::move(r).value();
        }
        return ex;
    }

    // Waits until the back-end closes the connection (EOF), discarding any
    // replies before it. False when it is still open after `timeout_ms`.
    bool wait_closed_by_peer(int timeout_ms = kRemoteTimeoutMs) {
        for (;;) {
            pollfd p{socket_.get(), POLLIN, 0};
            const int ready = ::poll(&p, 1, timeout_ms);
            if (ready < 0 && errno == EINTR) {
                continue;
            }
            if (ready <= 0) {
                return false;
            }
            uint8_t buf[256];
            const ssize_t n = ::recv(socket_.get(), buf, sizeof buf, 0);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                return true;  // EOF, or ECONNRESET: closed either way
            }
        }
    }

    // ---- The QEMU sequence ----

    // One request of the handshake: (request, payload, fds, flags, whether
    // a reply is due) -> what happened.
    using Exchanger = std::function<Exchange(protocol::Request, std::span<const uint8_t>,
                                             std::span<const int>, uint32_t, bool)>;

    // GET_FEATURES, SET_OWNER, GET_PROTOCOL_FEATURES, SET_PROTOCOL_FEATURES,
    // SET_FEATURES, SET_MEM_TABLE (one region: all of `memory`), then per ring
    // SET_VRING_NUM, SET_VRING_BASE, SET_VRING_ADDR, SET_VRING_KICK,
    // SET_VRING_CALL (fresh eventfds, kept here) and SET_VRING_ENABLE 1.
    // Every step must succeed; the first that does not is named in the error.
    Result<HandshakeResult> handshake(BackendPump& pump, const GuestMemory& memory,
                                      const HandshakeOptions& options = {}) {
        return handshake_with(
            [&](protocol::Request r, std::span<const uint8_t> payload, std::span<const int> fds,
                uint32_t flags, bool) { return exchange(pump, r, payload, fds, flags); },
            memory, options);
    }

    // The same sequence against a back-end in another process.
    Result<HandshakeResult> handshake_remote(const GuestMemory& memory,
                                             const HandshakeOptions& options = {},
                                             int timeout_ms = kRemoteTimeoutMs) {
        return handshake_with(
            [&](protocol::Request r, std::span<const uint8_t> payload, std::span<const int> fds,
                uint32_t flags, bool reply_expected) {
                return exchange_remote(r, payload, fds, flags, reply_expected, timeout_ms);
            },
            memory, options);
    }

    Result<HandshakeResult> handshake_with(const Exchanger& step, const GuestMemory& memory,
                                           const HandshakeOptions& options) {
        using protocol::Request;
        HandshakeResult result;
        uint32_t ack_flags = protocol::kFlagVersion1;

        auto fail = [](const char* what, const std::string& why) {
            return make_error(std::string("handshake: ") + what + ": " + why);
        };
        // A SET_* step: no reply of its own; with REPLY_ACK an ack of 0.
        auto set = [&](const char* what, Request r, std::span<const uint8_t> payload,
                       std::span<const int> fds) -> Status {
            const bool want_ack = (ack_flags & protocol::kFlagNeedReply) != 0;
            auto ex = step(r, payload, fds, ack_flags, want_ack);
            if (!ex.ok()) {
                return fail(what, ex.error_text());
            }
            if (want_ack != ex.reply.has_value()) {
                return fail(what, want_ack ? "no REPLY_ACK reply" : "unexpected reply");
            }
            if (want_ack && ex.reply->u64() != uint64_t{0}) {
                return fail(what, "REPLY_ACK reply is not u64 0");
            }
            return Ok{};
        };
        auto get_u64 = [&](const char* what, Request r) -> Result<uint64_t> {
            auto ex = step(r, {}, {}, protocol::kFlagVersion1, true);
            if (!ex.ok()) {
                return fail(what, ex.error_text());
            }
            if (!ex.reply || ex.reply->request() != r || !ex.reply->u64()) {
                return fail(what, "no u64 reply " + ex.reply_error);
            }
            return *ex.reply->u64();
        };

        auto offered = get_u64("GET_FEATURES", Request::GetFeatures);
        if (!offered) {
            return std::move(offered).error();
        }
        result.offered_features = *offered;
        if (auto s = set("SET_OWNER", Request::SetOwner, {}, {}); !s) {
            return std::move(s).error();
        }
        const bool negotiate_pf =
            options.protocol_features && (*offered & protocol::bit(protocol::vf::kProtocolFeatures)) != 0;
        if (negotiate_pf) {
            auto pf = get_u64("GET_PROTOCOL_FEATURES", Request::GetProtocolFeatures);
            if (!pf) {
                return std::move(pf).error();
            }
            result.offered_protocol_features = *pf;
            result.protocol_features = options.protocol_feature_bits.value_or(*pf);
            if (auto s = set("SET_PROTOCOL_FEATURES", Request::SetProtocolFeatures,
                             bytes_of(result.protocol_features), {});
                !s) {
                return std::move(s).error();
            }
            if (options.need_reply &&
                (result.protocol_features & protocol::bit(protocol::pf::kReplyAck)) != 0) {
                ack_flags |= protocol::kFlagNeedReply;
            }
        }
        result.features = options.features.value_or(
            negotiate_pf ? *offered : (*offered & ~protocol::bit(protocol::vf::kProtocolFeatures)));
        if (auto s = set("SET_FEATURES", Request::SetFeatures, bytes_of(result.features), {}); !s) {
            return std::move(s).error();
        }
        {
            const protocol::MemRegionWire region = memory.region();
            UniqueFd fd = memory.dup_fd();
            const int raw = fd.get();
            if (auto s = set("SET_MEM_TABLE", Request::SetMemTable,
                             mem_table_payload(std::span(&region, 1)), std::span(&raw, 1));
                !s) {
                return std::move(s).error();
            }
        }
        for (uint32_t i = 0; i < options.rings; ++i) {
            const std::string ring = " (ring " + std::to_string(i) + ")";
            protocol::VringAddr addr{};
            try {
                addr = ring_addr(memory, i, options.ring_size);
            } catch (const std::exception& e) {
                return fail("ring layout", e.what());
            }
            if (auto s = set(("SET_VRING_NUM" + ring).c_str(), Request::SetVringNum,
                             bytes_of(protocol::VringState{i, options.ring_size}), {});
                !s) {
                return std::move(s).error();
            }
            if (auto s = set(("SET_VRING_BASE" + ring).c_str(), Request::SetVringBase,
                             bytes_of(protocol::VringState{i, options.base}), {});
                !s) {
                return std::move(s).error();
            }
            if (auto s = set(("SET_VRING_ADDR" + ring).c_str(), Request::SetVringAddr, bytes_of(addr), {});
                !s) {
                return std::move(s).error();
            }
            ensure_ring_fds(i);
            kick_[i] = make_eventfd();
            call_[i] = make_eventfd();
            const int kick = kick_[i].get();
            const int call = call_[i].get();
            if (auto s = set(("SET_VRING_KICK" + ring).c_str(), Request::SetVringKick,
                             bytes_of(uint64_t{i}), std::span(&kick, 1));
                !s) {
                return std::move(s).error();
            }
            if (auto s = set(("SET_VRING_CALL" + ring).c_str(), Request::SetVringCall,
                             bytes_of(uint64_t{i}), std::span(&call, 1));
                !s) {
                return std::move(s).error();
            }
            if (negotiate_pf && options.enable) {
                if (auto s = set(("SET_VRING_ENABLE" + ring).c_str(), Request::SetVringEnable,
                                 bytes_of(protocol::VringState{i, 1}), {});
                    !s) {
                    return std::move(s).error();
                }
            }
        }
        return result;
    }

    // The front-end's ends of the eventfds the handshake sent (-1 if none).
    [[nodiscard]] int kick_fd(uint32_t ring) const {
        return ring < kick_.size() ? kick_[ring].get() : -1;
    }
    [[nodiscard]] int call_fd(uint32_t ring) const {
        return ring < call_.size() ? call_[ring].get() : -1;
    }
    // Replace the kept call eventfd of `ring` (e.g. before sending a new one).
    int new_call_fd(uint32_t ring) {
        ensure_ring_fds(ring);
        call_[ring] = make_eventfd();
        return call_[ring].get();
    }

private:
    void ensure_ring_fds(uint32_t ring) {
        if (kick_.size() <= ring) {
            kick_.resize(ring + 1);
            call_.resize(ring + 1);
        }
    }

    Status read_exact(uint8_t* out, size_t len, int timeout_ms) {
        size_t got = 0;
        while (got < len) {
            pollfd p{socket_.get(), POLLIN, 0};
            const int ready = ::poll(&p, 1, timeout_ms);
            if (ready < 0 && errno == EINTR) {
                continue;
            }
            if (ready == 0) {
                return make_error("timed out");
            }
            if (ready < 0) {
                return make_error(std::string("poll: ") + std::strerror(errno));
            }
            const ssize_t n = ::recv(socket_.get(), out + got, len - got, 0);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n < 0) {
                return make_error(std::string("recv: ") + std::strerror(errno));
            }
            if (n == 0) {
                return make_error("back-end closed the connection");
            }
            got += static_cast<size_t>(n);
        }
        return Ok{};
    }

    UniqueFd socket_;
    std::vector<UniqueFd> kick_;
    std::vector<UniqueFd> call_;
};

} // namespace vhostd::fakes
