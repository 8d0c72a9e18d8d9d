#pragma once
// Per-port, per-queue counters. Each counter block has one writer at a time
// (the PMD that polls the queue, or the PMD holding the destination queue's
// lock), so increments are plain relaxed load+store, no locked instructions;
// the control thread reads them relaxed for SIGUSR1, the control socket and
// metrics. Names are from the port's point of view: rx = frames the port
// (guest TX ring, DPDK rx queue) gave us, tx = frames we gave the port.

#include <atomic>
#include <cstdint>

namespace vhostd::dataplane {

struct Counter {
    std::atomic<uint64_t> v{0};
    void add(uint64_t n) noexcept { v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
    [[nodiscard]] uint64_t get() const noexcept { return v.load(std::memory_order_relaxed); }
    void clear() noexcept { v.store(0, std::memory_order_relaxed); }
};

struct alignas(64) QueueStats {
    Counter rx_packets;
    Counter rx_bytes;
    Counter tx_packets;
    Counter tx_bytes;
    Counter drop_no_buffer;  // destination had no free RX buffer
    Counter drop_too_big;    // frame larger than the destination buffer / MTU
    Counter drop_broken;     // ring violated the spec; port broken until reset
    Counter drop_no_route;   // no destination (xconnect peer down, or nothing to flood to)
    Counter errors;          // e.g. mbuf pool empty, DPDK tx refused

    void clear() noexcept {
        for (Counter* c : {&rx_packets, &rx_bytes, &tx_packets, &tx_bytes, &drop_no_buffer,
                           &drop_too_big, &drop_broken, &drop_no_route, &errors}) {
            c->clear();
        }
    }
};

} // namespace vhostd::dataplane
