#pragma once
// Registers every guest TX ring's kick eventfd in the epoll set of the PMD
// that polls the ring, so a sleeping PMD is woken by the guest's kick itself
// (idle.hpp). Control thread only: Dataplane::publish() calls update() with
// each new snapshot before PMDs can see it.
//
// Each kick fd is dup()ed: the session may close or replace its own fd at
// any time, and an epoll registration is keyed by (file, fd number), so the
// registry deletes a registration through its own dup before closing it.

#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "dataplane/idle.hpp"
#include "dataplane/snapshot.hpp"
#include "protocol/unique_fd.hpp"

namespace vhostd::dataplane {

class KickRegistry {
public:
    // `pmds` points at `count` control blocks, each open()ed.
    KickRegistry(PmdControl* pmds, size_t count) : pmds_(pmds), count_(count) {}
    ~KickRegistry();
    KickRegistry(const KickRegistry&) = delete;
    KickRegistry& operator=(const KickRegistry&) = delete;

    // Makes the registrations match `snap` and fills snap.kickable: a PMD
    // whose every source is a ring with a registered kick fd may sleep
    // without a timeout.
    void update(Snapshot& snap);

    [[nodiscard]] size_t registered() const noexcept { return entries_.size(); }

private:
    struct Entry {
        UniqueFd fd;
        size_t pmd = 0;
    };
    // A ring restart (new generation) is a new registration even if the slot
    // is the same.
    using Key = std::pair<const void*, uint64_t>;

    bool add(Entry& e, int source_fd, size_t pmd);
    void remove(Entry& e) noexcept;

    PmdControl* pmds_;
    size_t count_;
    std::map<Key, Entry> entries_;
};

} // namespace vhostd::dataplane
