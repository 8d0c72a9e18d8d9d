#include "daemon/event_loop.hpp"

#include <poll.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace vhostd::daemon {

Result<std::unique_ptr<EventLoop>> EventLoop::create(unsigned entries) {
    std::unique_ptr<EventLoop> loop(new EventLoop());
    const int rc = io_uring_queue_init(entries, &loop->ring_, 0);
    if (rc < 0) {
        return make_error(fmt::format("io_uring_queue_init: {}", std::strerror(-rc)));
    }
    loop->ring_ready_ = true;
    return loop;
}

EventLoop::~EventLoop() {
    if (ring_ready_) {
        // queue_exit cancels and reaps whatever the kernel still holds.
        io_uring_queue_exit(&ring_);
    }
    for (Pending* p : pending_) {
        delete p;
    }
}

io_uring_sqe* EventLoop::sqe() {
    io_uring_sqe* s = io_uring_get_sqe(&ring_);
    if (s == nullptr) {
        // Submission queue full: flush it and try again.
        io_uring_submit(&ring_);
        s = io_uring_get_sqe(&ring_);
    }
    return s;
}

EventLoop::Pending* EventLoop::track(Callback cb) {
    auto* p = new Pending{std::move(cb), {}};
    pending_.insert(p);
    return p;
}

void EventLoop::accept(int fd, Callback cb) {
    Pending* p = track(std::move(cb));
    io_uring_sqe* s = sqe();
    io_uring_prep_accept(s, fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    io_uring_sqe_set_data(s, p);
}

void EventLoop::recvmsg(int fd, msghdr* msg, Callback cb) {
    Pending* p = track(std::move(cb));
    io_uring_sqe* s = sqe();
    io_uring_prep_recvmsg(s, fd, msg, MSG_CMSG_CLOEXEC);
    io_uring_sqe_set_data(s, p);
}

EventLoop::Token EventLoop::read(int fd, void* buf, size_t len, Callback cb) {
    Pending* p = track(std::move(cb));
    io_uring_sqe* s = sqe();
    io_uring_prep_read(s, fd, buf, static_cast<unsigned>(len), static_cast<uint64_t>(-1));
    io_uring_sqe_set_data(s, p);
    return reinterpret_cast<Token>(p);
}

void EventLoop::send(int fd, const void* buf, size_t len, Callback cb) {
    Pending* p = track(std::move(cb));
    io_uring_sqe* s = sqe();
    io_uring_prep_send(s, fd, buf, len, MSG_NOSIGNAL);
    io_uring_sqe_set_data(s, p);
}

void EventLoop::cancel(Token token) {
    if (pending_.count(reinterpret_cast<Pending*>(token)) == 0) {
        return; // already completed
    }
    io_uring_sqe* s = sqe();
    io_uring_prep_cancel64(s, token, 0);
    io_uring_sqe_set_data(s, nullptr); // the cancel's own completion is ignored
}

void EventLoop::poll(int fd, short events, Callback cb) {
    Pending* p = track(std::move(cb));
    io_uring_sqe* s = sqe();
    io_uring_prep_poll_add(s, fd, static_cast<unsigned>(events));
    io_uring_sqe_set_data(s, p);
}

void EventLoop::after(std::chrono::nanoseconds delay, Callback cb) {
    Pending* p = track(std::move(cb));
    p->ts.tv_sec = delay.count() / 1'000'000'000;
    p->ts.tv_nsec = delay.count() % 1'000'000'000;
    io_uring_sqe* s = sqe();
    io_uring_prep_timeout(s, &p->ts, 0, 0);
    io_uring_sqe_set_data(s, p);
}

Status EventLoop::run() {
    while (!stopping_) {
        io_uring_cqe* cqe = nullptr;
        const int rc = io_uring_submit_and_wait(&ring_, 1);
        if (rc < 0 && rc != -EINTR) {
            return make_error(fmt::format("io_uring_submit_and_wait: {}", std::strerror(-rc)));
        }
        unsigned head = 0;
        unsigned seen = 0;
        // Collect first, then run: callbacks may submit new operations.
        Pending* batch[64];
        int results[64];
        unsigned count = 0;
        io_uring_for_each_cqe(&ring_, head, cqe) {
            auto* p = static_cast<Pending*>(io_uring_cqe_get_data(cqe));
            if (p != nullptr) {
                batch[count] = p;
                results[count] = cqe->res;
                ++count;
            }
            if (++seen == 64) {
                break;
            }
        }
        io_uring_cq_advance(&ring_, seen);
        for (unsigned i = 0; i < count; ++i) {
            Pending* p = batch[i];
            pending_.erase(p);
            Callback cb = std::move(p->cb);
            delete p;
            cb(results[i]);
            if (stopping_) {
                // Remaining completions are dropped with their Pending in the
                // destructor; none of them may run after stop().
                for (unsigned j = i + 1; j < count; ++j) {
                    pending_.erase(batch[j]);
                    delete batch[j];
                }
                break;
            }
        }
    }
    return Ok{};
}

} // namespace vhostd::daemon
