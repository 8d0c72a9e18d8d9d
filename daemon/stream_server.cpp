#include "daemon/stream_server.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

namespace vhostd::daemon {

using Clock = std::chrono::steady_clock;

struct StreamServer::Client {
    Client(uint64_t id, UniqueFd fd) : id(id), fd(std::move(fd)), last_progress(Clock::now()) {}

    uint64_t id;
    UniqueFd fd;
    std::string in;                    // received, not yet answered
    std::array<char, 4096> chunk{};    // one read's worth
    std::string out;                   // reply being sent
    size_t sent = 0;
    bool close_after = false;
    bool draining = false;             // reply sent, write side shut: reading to EOF
    bool dead = false;
    Clock::time_point last_progress;   // accepted, or last reply sent
};

StreamServer::StreamServer(EventLoop& loop, std::string name, UniqueFd listen_fd, Limits limits,
                           Framer framer, Overflow overflow)
    : loop_(loop), name_(std::move(name)), listen_fd_(std::move(listen_fd)), limits_(limits),
      framer_(std::move(framer)), overflow_(std::move(overflow)),
      alive_(std::make_shared<StreamServer*>(this)) {}

StreamServer::~StreamServer() { shutdown(); }

void StreamServer::start() {
    arm_accept();
    arm_sweep();
}

void StreamServer::shutdown() {
    if (stopped_) {
        return;
    }
    stopped_ = true;
    // Wakes the pending accept (it fails), so the socket is really gone.
    if (listen_fd_) {
        ::shutdown(listen_fd_.get(), SHUT_RDWR);
    }
    while (!clients_.empty()) {
        drop(clients_.begin()->second);
    }
    listen_fd_.reset();
    alive_.reset();
}

void StreamServer::arm_accept() {
    std::weak_ptr<StreamServer*> weak = alive_;
    loop_.accept(listen_fd_.get(), [weak](int result) {
        auto alive = weak.lock();
        if (!alive || (*alive)->stopped_) {
            if (result >= 0) {
                ::close(result);
            }
            return;
        }
        StreamServer& self = **alive;
        if (result < 0) {
            if (result == -EMFILE || result == -ENFILE) {
                // Out of fds: try again a little later rather than spin.
                spdlog::warn("{}: accept: {}", self.name_, std::strerror(-result));
                self.loop_.after(std::chrono::milliseconds(100), [weak](int) {
                    auto again = weak.lock();
                    if (again && !(*again)->stopped_) {
                        (*again)->arm_accept();
                    }
                });
            } else if (result == -EINTR || result == -ECONNABORTED || result == -EAGAIN) {
                self.arm_accept();
            } else if (result != -ECANCELED) {
                spdlog::error("{}: accept: {}; no longer accepting", self.name_,
                              std::strerror(-result));
            }
            return;
        }
        UniqueFd fd(result);
        if (self.clients_.size() >= self.limits_.max_clients) {
            spdlog::debug("{}: {} clients connected already; refusing another", self.name_,
                          self.clients_.size());
        } else {
            auto c = std::make_shared<Client>(++self.next_id_, std::move(fd));
            self.clients_.emplace(c->id, c);
            self.arm_read(c);
        }
        self.arm_accept();
    });
}

void StreamServer::arm_read(const std::shared_ptr<Client>& c) {
    // Never hold more than max_request + 1 bytes: one more than allowed is
    // enough to know the request is too long.
    const size_t room = limits_.max_request + 1 - std::min(c->in.size(), limits_.max_request);
    const size_t want = std::min(c->chunk.size(), room);
    std::weak_ptr<StreamServer*> weak = alive_;
    loop_.read(c->fd.get(), c->chunk.data(), want, [weak, c](int result) {
        auto alive = weak.lock();
        if (!alive || c->dead) {
            return;
        }
        (*alive)->on_read(c, result);
    });
}

void StreamServer::on_read(const std::shared_ptr<Client>& c, int result) {
    if (result <= 0) {
        // 0: the client closed its end; < 0: reset, or shut down by drop().
        drop(c);
        return;
    }
    if (c->draining) {
        arm_read(c);  // discard: the answer is out, we only wait for EOF
        return;
    }
    c->in.append(c->chunk.data(), static_cast<size_t>(result));
    process(c);
}

void StreamServer::process(const std::shared_ptr<Client>& c) {
    while (!c->in.empty() && !c->close_after) {
        auto reply = framer_(c->in);
        if (!reply) {
            break;
        }
        c->in.erase(0, reply->consumed);
        c->out += reply->bytes;
        c->close_after = reply->close;
    }
    if (!c->close_after && c->in.size() > limits_.max_request) {
        spdlog::debug("{}: client {} sent a request over {} bytes; closing", name_, c->id,
                      limits_.max_request);
        c->out += overflow_(limits_.max_request);
        c->close_after = true;
    }
    if (!c->out.empty()) {
        send_pending(c);
    } else if (c->close_after) {
        drop(c);
    } else {
        arm_read(c);
    }
}

void StreamServer::send_pending(const std::shared_ptr<Client>& c) {
    std::weak_ptr<StreamServer*> weak = alive_;
    loop_.send(c->fd.get(), c->out.data() + c->sent, c->out.size() - c->sent,
               [weak, c](int result) {
                   auto alive = weak.lock();
                   if (!alive || c->dead) {
                       return;
                   }
                   StreamServer& self = **alive;
                   if (result == -EAGAIN || result == -EINTR) {
                       // The socket buffer is full: wait until it drains.
                       std::weak_ptr<StreamServer*> again = self.alive_;
                       self.loop_.poll(c->fd.get(), POLLOUT, [again, c](int) {
                           auto a = again.lock();
                           if (a && !c->dead) {
                               (*a)->send_pending(c);
                           }
                       });
                       return;
                   }
                   if (result <= 0) {
                       self.drop(c);
                       return;
                   }
                   c->sent += static_cast<size_t>(result);
                   if (c->sent < c->out.size()) {
                       self.send_pending(c);
                       return;
                   }
                   c->out.clear();
                   c->sent = 0;
                   c->last_progress = Clock::now();
                   if (c->close_after) {
                       // Lingering close: closing with unread bytes from the
                       // client (an oversized request) would reset a TCP
                       // connection and could destroy the answer in flight.
                       // Shut our side and read to EOF (bounded by the idle
                       // timeout) instead.
                       ::shutdown(c->fd.get(), SHUT_WR);
                       c->draining = true;
                       c->in.clear();
                       self.arm_read(c);
                   } else {
                       // Requests that arrived with the last one are answered
                       // before reading more.
                       self.process(c);
                   }
               });
}

void StreamServer::drop(const std::shared_ptr<Client>& c) {
    if (c->dead) {
        return;
    }
    c->dead = true;
    // Pending operations complete at once; their callbacks see `dead` and
    // release the last references, which closes the fd.
    ::shutdown(c->fd.get(), SHUT_RDWR);
    clients_.erase(c->id);
}

void StreamServer::arm_sweep() {
    const auto period = std::max(std::chrono::milliseconds(100), limits_.idle_timeout / 4);
    std::weak_ptr<StreamServer*> weak = alive_;
    loop_.after(period, [weak](int) {
        auto alive = weak.lock();
        if (!alive || (*alive)->stopped_) {
            return;
        }
        StreamServer& self = **alive;
        const auto now = Clock::now();
        std::vector<std::shared_ptr<Client>> idle;
        for (const auto& [id, c] : self.clients_) {
            if (now - c->last_progress > self.limits_.idle_timeout) {
                idle.push_back(c);
            }
        }
        for (const auto& c : idle) {
            spdlog::debug("{}: client {} idle for over {} ms; closing", self.name_, c->id,
                          self.limits_.idle_timeout.count());
            self.drop(c);
        }
        self.arm_sweep();
    });
}

} // namespace vhostd::daemon
