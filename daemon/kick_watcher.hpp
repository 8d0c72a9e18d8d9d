#pragma once
// Wakes sleeping PMDs when a guest kicks (DESIGN.md "Idle cores"): for every
// guest TX ring in the current snapshot, a read stays armed on the io_uring
// for its kick eventfd; a completion wakes the PMD that polls the ring.
//
// The watcher dup()s each kick fd, so the session may close or replace its
// own fd at any time; a watch that is no longer in the snapshot has its read
// cancelled and its dup closed when the cancellation completes.

#include <cstdint>
#include <map>
#include <memory>
#include <utility>

#include "daemon/event_loop.hpp"
#include "dataplane/dataplane.hpp"
#include "protocol/unique_fd.hpp"

namespace vhostd::daemon {

class KickWatcher {
public:
    KickWatcher(EventLoop& loop, dataplane::Dataplane& dataplane);
    ~KickWatcher();
    KickWatcher(const KickWatcher&) = delete;
    KickWatcher& operator=(const KickWatcher&) = delete;

    // Control thread, after each publish.
    void update(const dataplane::Snapshot& snap);
    [[nodiscard]] size_t watching() const noexcept { return watches_.size(); }
    [[nodiscard]] uint64_t kicks() const noexcept { return kicks_; }

private:
    struct Watch {
        UniqueFd fd;
        size_t pmd = 0;
        bool removed = false;
        EventLoop::Token token = 0;
        uint64_t value = 0;
    };
    // A ring restart (new generation) is a new watch even if the slot is the same.
    using Key = std::pair<const void*, uint64_t>;

    void arm(const std::shared_ptr<Watch>& w);

    EventLoop& loop_;
    dataplane::Dataplane& dataplane_;
    std::map<Key, std::shared_ptr<Watch>> watches_;
    uint64_t kicks_ = 0;
};

} // namespace vhostd::daemon
