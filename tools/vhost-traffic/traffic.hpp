#pragma once
// One vhost-traffic run: sets up EAL and the virtio-user ports, sends the
// frames with at most --window in flight, checks every frame that comes back,
// reports and tears down.

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "frame.hpp"
#include "options.hpp"

namespace vhost_traffic {

using Clock = std::chrono::steady_clock;

// From a signal handler: end the run as interrupted (async-signal-safe).
void note_interrupt(int sig) noexcept;

struct Port {
    uint16_t index = 0; // 0 or 1, as given on the command line
    uint16_t id = 0;    // ethdev port id
    std::string vdev;
    Mac mac{};
    uint16_t mtu = 0;
    // TX: this port sends the sequence numbers index + stride * k.
    uint64_t next_seq = 0;
    std::vector<rte_mbuf*> pending; // built, not yet accepted by tx_burst
    uint64_t tx_data = 0;
    uint64_t rx_data = 0; // intact data frames received on this port
    bool started = false;
};

struct Counters {
    uint64_t sent = 0;
    uint64_t received = 0; // intact data frames, first copy of each
    uint64_t corrupt = 0;
    uint64_t dup = 0;
    uint64_t reordered = 0;
    uint64_t misrouted = 0;
    uint64_t foreign = 0;
    uint64_t prime_tx = 0; // priming frames sent (not part of the count)
    uint64_t prime_rx = 0;
};

class Traffic {
public:
    explicit Traffic(Options opt) : opt_(std::move(opt)) {}

    int run();

private:
    int setup_eal();
    int setup_port(Port& p);
    bool wait_links(Clock::time_point deadline);
    bool prime(Clock::time_point deadline);
    bool resolve_arp(Clock::time_point deadline);
    void transmit(Port& p);
    void poll_rx(Port& p);
    void handle(Port& p, rte_mbuf* m);
    void handle_data(Port& p, const Checked& c, std::span<const uint8_t> frame);
    bool send_raw(Port& p, const uint8_t* data, uint32_t len);
    rte_mbuf* make_mbuf(const uint8_t* data, uint32_t len);
    uint64_t in_flight_sent() const {
        const uint64_t back = ctr_.received + ctr_.corrupt + ctr_.misrouted;
        return ctr_.sent > back ? ctr_.sent - back : 0;
    }
    uint64_t pending_total() const {
        uint64_t n = 0;
        for (const auto& p : ports_) {
            n += p.pending.size();
        }
        return n;
    }
    uint64_t frames_for(const Port& p) const; // how many sequence numbers port p sends
    void report(bool pass, bool timed_out, double seconds);
    void teardown();

    Options opt_;
    std::vector<Port> ports_;
    rte_mempool* pool_ = nullptr;
    uint16_t data_room_ = 0;
    bool multi_seg_ = false;
    bool eal_up_ = false;
    std::string generated_prefix_;
    uint32_t stride_ = 1;
    uint32_t src_ip_ = 0;
    uint32_t dst_ip_ = 0;
    Mac peer_mac_{}; // icmp: the MAC behind --dst-ip
    bool peer_known_ = false;
    std::vector<bool> seen_;          // per sequence number: received intact
    std::vector<int64_t> last_seq_;   // per (tx port, rx port) stream, for reordering
    std::vector<bool> primed_;        // per tx port
    Counters ctr_;
    std::vector<uint8_t> scratch_;    // linearised multi-segment frames
    std::vector<uint8_t> build_buf_;
    Clock::time_point t_first_tx_{};
    Clock::time_point t_last_rx_{};
    Clock::time_point t_last_progress_{};
    bool have_first_tx_ = false;
    bool stalled_ = false; // ended by the --stall rule
    std::string first_corrupt_;
};

} // namespace vhost_traffic
