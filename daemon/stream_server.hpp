#pragma once
// A small request/response server for the control thread's io_uring loop,
// shared by the control socket (newline-delimited JSON) and the metrics
// endpoint (HTTP/1.0). It owns a listening socket, accepts clients, reads
// into a bounded buffer and hands it to a framer that cuts out complete
// requests and answers them. Nothing a client does can block the loop or
// grow without bound:
//   * a request longer than `max_request` gets the framer's overflow reply
//     and the connection is closed;
//   * at most `max_clients` connections; more are closed at once;
//   * a client that has not completed a request (or has not read its reply)
//     within `idle_timeout` since its last one is disconnected.
// One reply is written at a time; reading resumes after it is sent. A
// connection to be closed after its reply is shut for writing, then read to
// EOF (or the idle timeout) before it is closed.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/event_loop.hpp"
#include "protocol/unique_fd.hpp"

namespace vhostd::daemon {

class StreamServer {
public:
    struct Reply {
        size_t consumed = 0;  // bytes of the buffer the request took
        std::string bytes;    // what to send back
        bool close = false;   // close after sending
    };
    // Looks at what a client sent so far (never empty): a complete request
    // and its reply, or nullopt when more bytes are needed.
    using Framer = std::function<std::optional<Reply>(std::string_view buffered)>;
    // The reply to a client whose request exceeds max_request.
    using Overflow = std::function<std::string(size_t max_request)>;

    struct Limits {
        size_t max_request = 64 * 1024;
        size_t max_clients = 64;
        std::chrono::milliseconds idle_timeout{10'000};
    };

    StreamServer(EventLoop& loop, std::string name, UniqueFd listen_fd, Limits limits,
                 Framer framer, Overflow overflow);
    ~StreamServer();
    StreamServer(const StreamServer&) = delete;
    StreamServer& operator=(const StreamServer&) = delete;

    void start();
    // Stops accepting and disconnects every client.
    void shutdown();
    [[nodiscard]] size_t clients() const noexcept { return clients_.size(); }

private:
    struct Client;

    void arm_accept();
    void arm_read(const std::shared_ptr<Client>& c);
    void on_read(const std::shared_ptr<Client>& c, int result);
    void process(const std::shared_ptr<Client>& c);
    void send_pending(const std::shared_ptr<Client>& c);
    void drop(const std::shared_ptr<Client>& c);
    void arm_sweep();

    EventLoop& loop_;
    std::string name_;
    UniqueFd listen_fd_;
    Limits limits_;
    Framer framer_;
    Overflow overflow_;
    std::map<uint64_t, std::shared_ptr<Client>> clients_;
    uint64_t next_id_ = 0;
    bool stopped_ = false;
    // Callbacks hold this, not the server: they do nothing once it is gone.
    std::shared_ptr<StreamServer*> alive_;
};

} // namespace vhostd::daemon
