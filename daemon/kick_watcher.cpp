#include "daemon/kick_watcher.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

namespace vhostd::daemon {

KickWatcher::KickWatcher(EventLoop& loop, dataplane::Dataplane& dataplane)
    : loop_(loop), dataplane_(dataplane) {}

KickWatcher::~KickWatcher() {
    for (auto& [key, w] : watches_) {
        w->removed = true;
    }
}

void KickWatcher::update(const dataplane::Snapshot& snap) {
    std::map<Key, std::pair<int, size_t>> want;
    if (snap.idle.mode == config::IdleMode::Adaptive) {
        for (size_t pmd = 0; pmd < snap.sources.size(); ++pmd) {
            for (const auto& src : snap.sources[pmd]) {
                if (src.vring != nullptr && src.vring->kick_fd >= 0) {
                    want[{src.vring->slot, src.vring->generation}] = {src.vring->kick_fd, pmd};
                }
            }
        }
    }
    for (auto it = watches_.begin(); it != watches_.end();) {
        auto found = want.find(it->first);
        if (found == want.end()) {
            it->second->removed = true;
            loop_.cancel(it->second->token);
            it = watches_.erase(it);
        } else {
            it->second->pmd = found->second.second; // sources may move between PMDs
            want.erase(found);
            ++it;
        }
    }
    for (const auto& [key, target] : want) {
        auto w = std::make_shared<Watch>();
        w->fd.reset(::fcntl(target.first, F_DUPFD_CLOEXEC, 0));
        if (!w->fd) {
            spdlog::error("kick fd {}: dup: {}; the PMD polling it wakes only on its timeout",
                          target.first, std::strerror(errno));
            continue;
        }
        w->pmd = target.second;
        watches_[key] = w;
        arm(w);
    }
}

void KickWatcher::arm(const std::shared_ptr<Watch>& w) {
    // The callback holds the watch (fd and buffer) until the read completes.
    w->token = loop_.read(w->fd.get(), &w->value, sizeof(w->value), [this, w](int result) {
        if (w->removed) {
            return; // cancelled or replaced: the dup closes with the last reference
        }
        if (result == static_cast<int>(sizeof(w->value))) {
            ++kicks_;
            dataplane_.wake(w->pmd);
        } else if (result < 0 && result != -EINTR && result != -EAGAIN) {
            spdlog::warn("kick eventfd read: {}; no longer watched", std::strerror(-result));
            return;
        }
        arm(w);
    });
}

} // namespace vhostd::daemon
