#pragma once
// The control thread's single io_uring event loop (DESIGN.md "Threads"): every
// listening socket, front-end connection, signalfd and timer completes here.
// Operations are one-shot: each submission carries a callback that runs once
// with the completion's result; re-arming is the callback's job.

#include <liburing.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <unordered_set>

#include "protocol/result.hpp"

namespace vhostd::daemon {

class EventLoop {
public:
    using Callback = std::function<void(int result)>;

    static Result<std::unique_ptr<EventLoop>> create(unsigned entries = 256);
    EventLoop(const EventLoop&) = delete;
    EventLoop& operator=(const EventLoop&) = delete;
    // Cancels everything still in flight; pending callbacks are dropped
    // without running (releasing whatever they captured).
    ~EventLoop();

    // An operation in flight, for cancel(). Valid until its callback runs.
    using Token = uint64_t;

    void accept(int fd, Callback cb);
    void recvmsg(int fd, msghdr* msg, Callback cb);
    Token read(int fd, void* buf, size_t len, Callback cb);
    // send(2) on a socket (MSG_NOSIGNAL); the result may be a short count.
    void send(int fd, const void* buf, size_t len, Callback cb);
    // Asks the kernel to cancel an operation; its callback still runs (with
    // -ECANCELED, or its real result if it completed first).
    void cancel(Token token);
    void poll(int fd, short events, Callback cb);
    void after(std::chrono::nanoseconds delay, Callback cb);

    // Runs until stop() is called from a callback.
    Status run();
    void stop() noexcept { stopping_ = true; }
    [[nodiscard]] size_t in_flight() const noexcept { return pending_.size(); }

private:
    struct Pending {
        Callback cb;
        __kernel_timespec ts{};
    };
    EventLoop() = default;
    io_uring_sqe* sqe();
    Pending* track(Callback cb);

    io_uring ring_{};
    bool ring_ready_ = false;
    bool stopping_ = false;
    std::unordered_set<Pending*> pending_;
};

} // namespace vhostd::daemon
