#include "dataplane/kick_registry.hpp"

#include <fcntl.h>
#include <sys/epoll.h>

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

namespace vhostd::dataplane {

KickRegistry::~KickRegistry() {
    for (auto& [key, e] : entries_) {
        remove(e);
    }
}

bool KickRegistry::add(Entry& e, int source_fd, size_t pmd) {
    e.fd.reset(::fcntl(source_fd, F_DUPFD_CLOEXEC, 0));
    if (!e.fd) {
        spdlog::error("kick fd {}: dup: {}; pmd{} will wake on its timeout instead", source_fd,
                      std::strerror(errno), pmd);
        return false;
    }
    epoll_event ev{};
    // Edge-triggered: an event per guest write, the eventfd is never read.
    ev.events = EPOLLIN | EPOLLET;
    ev.data.u64 = kKickTag;
    if (::epoll_ctl(pmds_[pmd].epoll.get(), EPOLL_CTL_ADD, e.fd.get(), &ev) != 0) {
        spdlog::error("kick fd {}: epoll_ctl: {}; pmd{} will wake on its timeout instead",
                      source_fd, std::strerror(errno), pmd);
        e.fd.reset();
        return false;
    }
    e.pmd = pmd;
    return true;
}

void KickRegistry::remove(Entry& e) noexcept {
    if (e.fd) {
        ::epoll_ctl(pmds_[e.pmd].epoll.get(), EPOLL_CTL_DEL, e.fd.get(), nullptr);
        e.fd.reset();
    }
}

void KickRegistry::update(Snapshot& snap) {
    std::map<Key, std::pair<int, size_t>> want;
    snap.kickable.assign(snap.sources.size(), 1);
    for (size_t pmd = 0; pmd < snap.sources.size() && pmd < count_; ++pmd) {
        for (const auto& src : snap.sources[pmd]) {
            if (src.vring != nullptr && src.vring->kick_fd >= 0) {
                want[{src.vring->slot, src.vring->generation}] = {src.vring->kick_fd, pmd};
            } else {
                snap.kickable[pmd] = 0;  // a DPDK queue, or a ring polled without kicks
            }
        }
    }
    for (auto it = entries_.begin(); it != entries_.end();) {
        auto found = want.find(it->first);
        if (found == want.end() || found->second.second != it->second.pmd) {
            remove(it->second);  // gone, or moved to another PMD: re-added below
            it = entries_.erase(it);
        } else {
            ++it;
        }
    }
    for (const auto& [key, target] : want) {
        const auto [fd, pmd] = target;
        if (entries_.count(key) != 0) {
            continue;
        }
        Entry e;
        if (add(e, fd, pmd)) {
            entries_.emplace(key, std::move(e));
        } else {
            snap.kickable[pmd] = 0;
        }
    }
}

} // namespace vhostd::dataplane
