// vhost-ping: "ping" for a vhost-user switch.
//
// A DPDK virtio-user front-end (one net_virtio_user port, DPDK's own virtio
// driver, speaking vhost-user to the back-end) that sends timestamped frames
// and measures how long each takes to come back. The back-end must send every
// frame back to the port it came from: vhostd with `xconnect: [[p, p]]`, or
// testpmd's net_vhost with io forwarding.
//
// Sending schedules (one of):
//   --interval-us U / --rate PPS   a frame every U us (1e6/PPS), whether or not
//                                  the previous one is back (several may be in
//                                  flight)
//   --gap-us MIN[-MAX]             one frame at a time: after it is back (or
//                                  lost), the port stays silent for a gap drawn
//                                  uniformly from [MIN, MAX] us, then the next
//                                  one goes. The back-end sees idle gaps: this
//                                  measures how fast a sleeping poller wakes.
//
// The send timestamp is taken just before rte_eth_tx_burst (which includes
// the guest kick, an eventfd write, when the back-end asked for kicks) and the
// receive timestamp just after rte_eth_rx_burst returns the frame; the tool
// busy-polls its RX queue while a frame is in flight. Timestamps come from the
// TSC (rte_rdtsc, DPDK's calibrated frequency; cross-checked against
// CLOCK_MONOTONIC over the run) or from clock_gettime(CLOCK_MONOTONIC).
//
// The tool watches itself: while frames are in flight, any stretch longer
// than 20 us between two points of its polling loop (it was descheduled, or
// a syscall blocked) is recorded, and each round trip reports how much of it
// overlapped such stalls ("self" time): that part of the delay was the tool,
// not the back-end. Percentiles are over the plain round trips.
//
// A frame not back within --timeout-ms is lost (if it comes back later it is
// also counted as late). Exit status: 0 when every one of --count frames was
// sent and came back in time (and, with --max-rtt-us, none took longer);
// 1 otherwise (loss, corruption, duplicates, too slow, interrupted); 2 on a
// usage or set-up error.

#include <signal.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <deque>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "../common/eal.hpp"
#include "../common/signals.hpp"
#include "rtt_stats.hpp"

namespace vhost_ping {
namespace {

constexpr int kExitPass = 0;
constexpr int kExitFail = 1;
constexpr int kExitSetup = 2;

constexpr uint16_t kEtherType = 0x88B6;     // IEEE local experimental 2
constexpr uint32_t kMagic = 0x56485047;     // "VHPG": a counted frame
constexpr uint32_t kMagicPrime = 0x56485050; // "VHPP": a priming frame
constexpr uint32_t kEthHdrLen = 14;
constexpr uint32_t kHdrLen = 28;             // magic, nonce, seq, stamp, len
constexpr uint32_t kMinFrame = 60;
constexpr uint32_t kMaxFrame = 1514;
constexpr uint16_t kBurst = 32;
constexpr double kSelfStallUs = 20; // a longer pause of our own loop is a stall

std::atomic<bool> g_interrupted{false};

void on_signal(int) { g_interrupted.store(true); }

void on_alarm(int) {
    static const char msg[] = "vhost-ping: FAIL: hard timeout (blocked in set-up or tear-down)\n";
    [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, msg, sizeof(msg) - 1);
    ::_exit(kExitFail);
}

void say(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void say(const char* fmt, ...) {
    std::fputs("vhost-ping: ", stdout);
    va_list ap;
    va_start(ap, fmt);
    std::vfprintf(stdout, fmt, ap);
    va_end(ap);
    std::fputc('\n', stdout);
    std::fflush(stdout);
}

uint64_t mono_ns() noexcept {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// The time base: TSC ticks (rte_rdtsc, DPDK's calibrated frequency) or
// CLOCK_MONOTONIC nanoseconds.
struct TimeBase {
    bool tsc = true;
    uint64_t hz = 1'000'000'000;
    uint64_t now() const noexcept { return tsc ? rte_rdtsc() : mono_ns(); }
    uint64_t to_ns(uint64_t ticks) const noexcept {
        return static_cast<uint64_t>(static_cast<unsigned __int128>(ticks) * 1'000'000'000u / hz);
    }
    uint64_t from_us(double us) const noexcept {
        return static_cast<uint64_t>(us * static_cast<double>(hz) / 1e6);
    }
};

struct Options {
    std::string eal = "--no-huge -m 1024 --no-pci";
    std::string port;
    uint64_t count = 100;
    double rate = 0;         // frames per second (--rate)
    double interval_us = 0;  // --interval-us
    std::string gap;         // --gap-us MIN[-MAX]
    double timeout_ms = 1000;
    double max_rtt_us = 0;   // 0: no limit
    uint32_t size = 64;
    std::string clock = "tsc";
    bool json = false;
    bool verbose = false;
    bool spin = false;
    std::string samples;
    double prime_timeout_s = 10;
    double linger_ms = 10;
    uint64_t seed = 0;
};

enum class State : uint8_t { kUnsent, kInFlight, kBack, kLost };

struct Header {
    uint32_t magic;
    uint32_t nonce;
    uint64_t seq;
    uint64_t stamp;
    uint32_t len;
};
static_assert(sizeof(uint32_t) * 3 + sizeof(uint64_t) * 2 == kHdrLen);

// `s` as the inside of a JSON string.
std::string json_escape(const std::string& s) {
    std::string out;
    for (const char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (static_cast<unsigned char>(c) < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(c));
            out += buf;
        } else {
            out += c;
        }
    }
    return out;
}

uint8_t pattern_byte(uint64_t seq, size_t i) noexcept {
    return static_cast<uint8_t>((seq * 131u + i * 7u + 0x5a) & 0xff);
}

class Ping {
public:
    explicit Ping(Options o) : opt_(std::move(o)) {}
    int run();

private:
    int setup();
    bool wait_link(uint64_t deadline_ns);
    bool prime(uint64_t deadline_ns);
    void build(uint8_t* out, uint32_t magic, uint64_t seq, uint64_t stamp) const;
    bool send(uint32_t magic, uint64_t seq, uint64_t* stamp_out);
    void poll_rx();
    void handle(const rte_mbuf* m, uint64_t now);
    void expire(uint64_t now);
    void resolved(uint64_t now);
    void idle_until(uint64_t target);
    void mark(uint64_t now);
    uint64_t self_stall(uint64_t from, uint64_t to) const;
    void report(double seconds);
    void teardown();

    Options opt_;
    TimeBase tb_;
    uint16_t port_id_ = 0;
    bool started_ = false;
    bool eal_up_ = false;
    std::string generated_prefix_;
    rte_mempool* pool_ = nullptr;
    uint8_t mac_[6]{};
    uint32_t nonce_ = 0;
    std::string where_; // the socket path, for messages

    // Schedule.
    bool gap_mode_ = false;
    uint64_t gap_min_us_ = 0, gap_max_us_ = 0;
    uint64_t period_ticks_ = 0;
    std::mt19937_64 rng_;
    uint64_t next_send_ = 0; // tick of the next send
    uint64_t timeout_ticks_ = 0;

    // Per sequence number.
    std::vector<State> state_;
    std::vector<uint64_t> sent_at_;
    std::vector<uint64_t> rtt_ns_;     // 0 until back
    std::vector<uint64_t> self_ns_;    // of rtt_ns_, time our own loop was stalled
    uint64_t outstanding_ = 0;         // frames in flight, neither back nor lost
    uint64_t last_mark_ = 0;
    uint64_t stall_ticks_ = 0;
    std::deque<std::pair<uint64_t, uint64_t>> stalls_; // [from, to) while frames were in flight
    uint64_t stalled_frames_ = 0;
    uint64_t self_max_ns_ = 0;
    std::deque<uint64_t> in_flight_;   // send order == deadline order
    std::vector<uint64_t> samples_;    // RTTs of frames back in time, ns

    uint64_t sent_ = 0, received_ = 0, lost_ = 0, late_ = 0, dup_ = 0, corrupt_ = 0;
    uint64_t foreign_ = 0, over_max_ = 0, tx_busy_ = 0, prime_tx_ = 0, prime_rx_ = 0;
    bool primed_ = false;
    std::string first_corrupt_;
};

void Ping::build(uint8_t* out, uint32_t magic, uint64_t seq, uint64_t stamp) const {
    std::memcpy(out, mac_, 6);
    std::memcpy(out + 6, mac_, 6);
    out[12] = static_cast<uint8_t>(kEtherType >> 8);
    out[13] = static_cast<uint8_t>(kEtherType & 0xff);
    const Header h{magic, nonce_, seq, stamp, opt_.size};
    uint8_t* p = out + kEthHdrLen;
    std::memcpy(p, &h.magic, 4);
    std::memcpy(p + 4, &h.nonce, 4);
    std::memcpy(p + 8, &h.seq, 8);
    std::memcpy(p + 16, &h.stamp, 8);
    std::memcpy(p + 24, &h.len, 4);
    for (size_t i = kEthHdrLen + kHdrLen; i < opt_.size; ++i) {
        out[i] = pattern_byte(seq, i);
    }
}

int Ping::setup() {
    // Quiet EAL start-up, but the virtio driver's choice of RX/TX path is
    // worth a line.
    auto [args, prefix] = vhostd::tools::tool_eal_args(
        "vhost-ping", vhostd::tools::split_ws(opt_.eal),
        {"--log-level", "lib.eal:warning", "--log-level", "pmd.net.virtio.*:info"});
    generated_prefix_ = prefix;
    args.insert(args.end(), {"--vdev", "net_virtio_user0," + opt_.port});
    say("EAL: %s", vhostd::tools::join_args(args).c_str());
    if (const std::string err = vhostd::tools::init_eal(args); !err.empty()) {
        say("error: EAL initialisation failed: %s", err.c_str());
        return kExitSetup;
    }
    eal_up_ = true;
    if (rte_eth_dev_get_port_by_name("net_virtio_user0", &port_id_) != 0) {
        say("error: the virtio-user device did not probe (is the back-end listening on %s? see "
            "the driver's messages above)",
            where_.c_str());
        return kExitSetup;
    }
    if (tb_.tsc) {
        tb_.hz = rte_get_tsc_hz();
        if (tb_.hz == 0) {
            say("error: DPDK reports a TSC frequency of 0; use --clock monotonic");
            return kExitSetup;
        }
    }
    pool_ = rte_pktmbuf_pool_create("vhost_ping", 8191, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                    static_cast<int>(rte_socket_id()));
    if (pool_ == nullptr) {
        say("error: cannot create the mbuf pool: %s", rte_strerror(rte_errno));
        return kExitSetup;
    }
    rte_eth_dev_info info{};
    int ret = rte_eth_dev_info_get(port_id_, &info);
    rte_eth_conf conf{};
    if (ret == 0) {
        ret = rte_eth_dev_configure(port_id_, 1, 1, &conf);
    }
    uint16_t nb_rxd = 32768;
    uint16_t nb_txd = 32768;
    if (ret == 0) {
        ret = rte_eth_dev_adjust_nb_rx_tx_desc(port_id_, &nb_rxd, &nb_txd);
    }
    if (ret == 0) {
        ret = rte_eth_rx_queue_setup(port_id_, 0, nb_rxd, rte_socket_id(), &info.default_rxconf, pool_);
    }
    if (ret == 0) {
        ret = rte_eth_tx_queue_setup(port_id_, 0, nb_txd, rte_socket_id(), &info.default_txconf);
    }
    if (ret == 0) {
        ret = rte_eth_dev_start(port_id_);
    }
    if (ret != 0) {
        say("error: port set-up failed: %s", rte_strerror(-ret));
        return kExitSetup;
    }
    started_ = true;
    rte_ether_addr addr{};
    rte_eth_macaddr_get(port_id_, &addr);
    std::memcpy(mac_, addr.addr_bytes, 6);
    say("port %s: mac %02x:%02x:%02x:%02x:%02x:%02x; clock %s at %.6f GHz", where_.c_str(), mac_[0],
        mac_[1], mac_[2], mac_[3], mac_[4], mac_[5], tb_.tsc ? "tsc" : "monotonic",
        static_cast<double>(tb_.hz) / 1e9);
    return kExitPass;
}

bool Ping::wait_link(uint64_t deadline_ns) {
    while (true) {
        rte_eth_link link{};
        rte_eth_link_get_nowait(port_id_, &link);
        if (link.link_status == RTE_ETH_LINK_UP) {
            return true;
        }
        if (mono_ns() >= deadline_ns || g_interrupted.load()) {
            say("error: link still down");
            return false;
        }
        ::usleep(10000);
    }
}

bool Ping::send(uint32_t magic, uint64_t seq, uint64_t* stamp_out) {
    rte_mbuf* m = rte_pktmbuf_alloc(pool_);
    if (m == nullptr) {
        return false;
    }
    uint8_t* data = rte_pktmbuf_mtod(m, uint8_t*);
    m->data_len = static_cast<uint16_t>(opt_.size);
    m->pkt_len = opt_.size;
    // The frame is built first, with the stamp patched in last, so the time
    // between the stamp and the send is a few stores.
    build(data, magic, seq, 0);
    const uint64_t stamp = tb_.now();
    std::memcpy(data + kEthHdrLen + 16, &stamp, 8);
    if (rte_eth_tx_burst(port_id_, 0, &m, 1) != 1) {
        rte_pktmbuf_free(m);
        return false;
    }
    *stamp_out = stamp;
    return true;
}

void Ping::poll_rx() {
    rte_mbuf* mbufs[kBurst];
    const uint16_t n = rte_eth_rx_burst(port_id_, 0, mbufs, kBurst);
    if (n == 0) {
        return;
    }
    const uint64_t now = tb_.now();
    mark(now);
    for (uint16_t i = 0; i < n; ++i) {
        handle(mbufs[i], now);
        rte_pktmbuf_free(mbufs[i]);
    }
}

void Ping::handle(const rte_mbuf* m, uint64_t now) {
    uint8_t buf[kMaxFrame];
    if (m->pkt_len < kEthHdrLen + kHdrLen || m->pkt_len > kMaxFrame) {
        ++foreign_;
        return;
    }
    const auto* data = static_cast<const uint8_t*>(rte_pktmbuf_read(m, 0, m->pkt_len, buf));
    if (data == nullptr || data[12] != (kEtherType >> 8) || data[13] != (kEtherType & 0xff)) {
        ++foreign_;
        return;
    }
    Header h{};
    const uint8_t* p = data + kEthHdrLen;
    std::memcpy(&h.magic, p, 4);
    std::memcpy(&h.nonce, p + 4, 4);
    std::memcpy(&h.seq, p + 8, 8);
    std::memcpy(&h.stamp, p + 16, 8);
    std::memcpy(&h.len, p + 24, 4);
    if ((h.magic != kMagic && h.magic != kMagicPrime) || h.nonce != nonce_) {
        ++foreign_; // another tool's frame, or an earlier run's
        return;
    }
    if (h.magic == kMagicPrime) {
        ++prime_rx_;
        primed_ = true;
        return;
    }
    auto corrupt = [&](const std::string& why) {
        ++corrupt_;
        if (first_corrupt_.empty()) {
            first_corrupt_ = why + " (seq " + std::to_string(h.seq) + ", " +
                             std::to_string(m->pkt_len) + " bytes)";
        }
    };
    if (h.seq >= opt_.count || state_[h.seq] == State::kUnsent) {
        return corrupt("sequence number never sent");
    }
    if (m->pkt_len != opt_.size || h.len != opt_.size) {
        return corrupt("length changed");
    }
    if (h.stamp != sent_at_[h.seq]) {
        return corrupt("timestamp changed");
    }
    if (std::memcmp(data, mac_, 6) != 0 || std::memcmp(data + 6, mac_, 6) != 0) {
        return corrupt("Ethernet addresses changed");
    }
    for (size_t i = kEthHdrLen + kHdrLen; i < opt_.size; ++i) {
        if (data[i] != pattern_byte(h.seq, i)) {
            return corrupt("payload changed");
        }
    }
    const uint64_t ns = tb_.to_ns(now - sent_at_[h.seq]);
    switch (state_[h.seq]) {
    case State::kBack:
        ++dup_;
        return;
    case State::kLost:
        if (rtt_ns_[h.seq] == 0) {
            ++late_;
            rtt_ns_[h.seq] = ns;
            if (opt_.verbose) {
                say("seq=%" PRIu64 " late: back after %.3f us (lost at %.0f ms)", h.seq, ns / 1e3,
                    opt_.timeout_ms);
            }
        } else {
            ++dup_;
        }
        return;
    case State::kInFlight:
        break;
    case State::kUnsent:
        return;
    }
    state_[h.seq] = State::kBack;
    rtt_ns_[h.seq] = ns;
    self_ns_[h.seq] = tb_.to_ns(self_stall(sent_at_[h.seq], now));
    if (self_ns_[h.seq] > 0) {
        ++stalled_frames_;
        self_max_ns_ = std::max(self_max_ns_, self_ns_[h.seq]);
    }
    samples_.push_back(ns);
    ++received_;
    if (--outstanding_ == 0) {
        stalls_.clear();
    }
    if (opt_.max_rtt_us > 0 && static_cast<double>(ns) > opt_.max_rtt_us * 1000.0) {
        ++over_max_;
    }
    if (opt_.verbose) {
        say("%u bytes: seq=%" PRIu64 " rtt=%.3f us%s", opt_.size, h.seq, ns / 1e3,
            self_ns_[h.seq] ? (" (of which vhost-ping stalled " +
                               std::to_string(self_ns_[h.seq] / 1000) + " us)").c_str()
                            : "");
    }
    if (gap_mode_) {
        resolved(now);
    }
}

// In gap mode, the frame in flight is back or lost: the next one goes after a gap.
void Ping::resolved(uint64_t now) {
    uint64_t gap = gap_min_us_;
    if (gap_max_us_ > gap_min_us_) {
        gap = std::uniform_int_distribution<uint64_t>(gap_min_us_, gap_max_us_)(rng_);
    }
    next_send_ = now + tb_.from_us(static_cast<double>(gap));
}

void Ping::expire(uint64_t now) {
    while (!in_flight_.empty()) {
        const uint64_t seq = in_flight_.front();
        if (state_[seq] != State::kInFlight) {
            in_flight_.pop_front();
            continue;
        }
        if (now - sent_at_[seq] < timeout_ticks_) {
            return;
        }
        in_flight_.pop_front();
        state_[seq] = State::kLost;
        ++lost_;
        if (--outstanding_ == 0) {
            stalls_.clear();
        }
        if (opt_.verbose) {
            say("seq=%" PRIu64 " lost: no reply within %.0f ms", seq, opt_.timeout_ms);
        }
        if (gap_mode_) {
            resolved(now);
        }
    }
}

// A point of the polling loop: a pause since the last one longer than
// kSelfStallUs, while frames are in flight, is a stall of our own.
void Ping::mark(uint64_t now) {
    if (outstanding_ > 0 && now - last_mark_ > stall_ticks_) {
        stalls_.emplace_back(last_mark_, now);
    }
    last_mark_ = now;
}

// How much of [from, to) overlapped our own stalls.
uint64_t Ping::self_stall(uint64_t from, uint64_t to) const {
    uint64_t sum = 0;
    for (auto it = stalls_.rbegin(); it != stalls_.rend() && it->second > from; ++it) {
        const uint64_t a = std::max(it->first, from);
        const uint64_t b = std::min(it->second, to);
        if (b > a) {
            sum += b - a;
        }
    }
    return sum;
}

// Nothing in flight until `target`: sleep most of the way (the back-end sees
// an idle port either way), then spin for a precise send time.
void Ping::idle_until(uint64_t target) {
    if (opt_.spin) {
        return;
    }
    const uint64_t now = tb_.now();
    const uint64_t margin = tb_.from_us(150);
    if (target > now + 2 * margin) {
        const uint64_t ns = tb_.to_ns(target - now - margin);
        timespec ts{static_cast<time_t>(ns / 1'000'000'000ull),
                    static_cast<long>(ns % 1'000'000'000ull)};
        ::clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, nullptr);
    }
}

bool Ping::prime(uint64_t deadline_ns) {
    // Priming frames until one is back: the path works, both rings are live.
    uint64_t attempt = 0;
    while (!primed_) {
        if (mono_ns() >= deadline_ns || g_interrupted.load()) {
            say("error: no priming frame came back (%" PRIu64 " sent): is the back-end reflecting "
                "frames to this port (vhostd: xconnect [p, p])?",
                attempt);
            return false;
        }
        uint64_t stamp = 0;
        if (send(kMagicPrime, attempt++, &stamp)) {
            ++prime_tx_;
        }
        const uint64_t until = mono_ns() + 100'000'000;
        while (!primed_ && mono_ns() < until) {
            poll_rx();
        }
    }
    return true;
}

void Ping::report(double seconds) {
    const RttSummary s = summarize(samples_);
    const uint64_t unsent = opt_.count - sent_;
    const bool pass = !g_interrupted.load() && unsent == 0 && received_ == opt_.count &&
                      lost_ == 0 && corrupt_ == 0 && dup_ == 0 && over_max_ == 0;
    const double loss_pct = sent_ ? 100.0 * static_cast<double>(lost_) / static_cast<double>(sent_) : 0.0;
    std::printf("--- %s vhost-ping statistics ---\n", where_.c_str());
    std::printf("%" PRIu64 " sent, %" PRIu64 " received, %" PRIu64 " lost (%.3f%%), %" PRIu64
                " late, %" PRIu64 " duplicate, %" PRIu64 " corrupt",
                sent_, received_, lost_, loss_pct, late_, dup_, corrupt_);
    if (opt_.max_rtt_us > 0) {
        std::printf(", %" PRIu64 " over %.0f us", over_max_, opt_.max_rtt_us);
    }
    if (unsent) {
        std::printf(", %" PRIu64 " not sent", unsent);
    }
    std::printf("; time %.3f s\n", seconds);
    if (s.n) {
        std::printf("rtt min/p50/p99/p99.9/max = %.3f/%.3f/%.3f/%.3f/%.3f us, mean %.3f us, p90 %.3f us\n",
                    s.min_us, s.p50_us, s.p99_us, s.p999_us, s.max_us, s.mean_us, s.p90_us);
        std::printf("rtt histogram (us): %s\n", histogram(samples_).c_str());
    }
    if (stalled_frames_) {
        std::printf("%" PRIu64 " round trip(s) include time vhost-ping itself was not polling "
                    "(descheduled), up to %.3f us\n",
                    stalled_frames_, static_cast<double>(self_max_ns_) / 1e3);
    }
    if (!first_corrupt_.empty()) {
        std::printf("first corrupt frame: %s\n", first_corrupt_.c_str());
    }
    if (foreign_) {
        std::printf("%" PRIu64 " foreign frame(s) ignored\n", foreign_);
    }
    std::printf("vhost-ping: %s%s\n", pass ? "PASS" : "FAIL", g_interrupted.load() ? " (interrupted)" : "");
    if (opt_.json) {
        std::printf("{\"result\": \"%s\", \"port\": \"%s\", \"size\": %u, \"count\": %" PRIu64
                    ", \"sent\": %" PRIu64 ", \"received\": %" PRIu64 ", \"lost\": %" PRIu64
                    ", \"late\": %" PRIu64 ", \"duplicate\": %" PRIu64 ", \"corrupt\": %" PRIu64
                    ", \"over_max_rtt\": %" PRIu64 ", \"tx_busy\": %" PRIu64
                    ", \"prime_sent\": %" PRIu64 ", \"prime_received\": %" PRIu64
                    ", \"self_stalled\": %" PRIu64 ", \"self_stall_max_us\": %.3f"
                    ", \"timeout_ms\": %.3f, \"max_rtt_us\": %.3f, \"seconds\": %.6f, \"clock\": \"%s\", "
                    "\"clock_hz\": %" PRIu64 ", \"interrupted\": %s, \"rtt_us\": {\"n\": %zu, "
                    "\"min\": %.3f, \"p50\": %.3f, \"p90\": %.3f, \"p99\": %.3f, \"p999\": %.3f, "
                    "\"max\": %.3f, \"mean\": %.3f}}\n",
                    pass ? "pass" : "fail", json_escape(where_).c_str(), opt_.size, opt_.count, sent_, received_,
                    lost_, late_, dup_, corrupt_, over_max_, tx_busy_, prime_tx_, prime_rx_,
                    stalled_frames_, static_cast<double>(self_max_ns_) / 1e3,
                    opt_.timeout_ms, opt_.max_rtt_us, seconds, tb_.tsc ? "tsc" : "monotonic",
                    tb_.hz, g_interrupted.load() ? "true" : "false", s.n, s.min_us, s.p50_us,
                    s.p90_us, s.p99_us, s.p999_us, s.max_us, s.mean_us);
    }
    std::fflush(stdout);
    if (!opt_.samples.empty()) {
        FILE* f = std::fopen(opt_.samples.c_str(), "w");
        if (f == nullptr) {
            say("error: cannot write %s: %s", opt_.samples.c_str(), std::strerror(errno));
            return;
        }
        // One line per frame sent: "seq rtt_ns self_ns" (self: the part of
        // the round trip vhost-ping itself was stalled), "seq lost" or
        // "seq lost late_rtt_ns".
        for (uint64_t seq = 0; seq < sent_; ++seq) {
            if (state_[seq] == State::kBack) {
                std::fprintf(f, "%" PRIu64 " %" PRIu64 " %" PRIu64 "\n", seq, rtt_ns_[seq],
                             self_ns_[seq]);
            } else if (rtt_ns_[seq] != 0) {
                std::fprintf(f, "%" PRIu64 " lost %" PRIu64 "\n", seq, rtt_ns_[seq]);
            } else {
                std::fprintf(f, "%" PRIu64 " lost\n", seq);
            }
        }
        std::fclose(f);
    }
}

void Ping::teardown() {
    // Stop and close: the back-end sees the rings stop and the connection
    // close, not a crash.
    const std::string err = vhostd::tools::close_virtio_user(port_id_, started_, "net_virtio_user0", eal_up_);
    if (!err.empty()) {
        say("error: port stop: %s", err.c_str());
    }
    vhostd::tools::release_dpdk(pool_, eal_up_, generated_prefix_);
}

int Ping::run() {
    // Schedule.
    const int modes = (opt_.rate > 0) + (opt_.interval_us > 0) + !opt_.gap.empty();
    if (modes > 1) {
        say("error: give only one of --rate, --interval-us, --gap-us");
        return kExitSetup;
    }
    if (!opt_.gap.empty()) {
        gap_mode_ = true;
        unsigned long long lo = 0, hi = 0;
        const auto dash = opt_.gap.find('-');
        const bool digits = !opt_.gap.empty() && opt_.gap.front() != '-' && opt_.gap.back() != '-' &&
                            opt_.gap.find_first_not_of("0123456789-") == std::string::npos &&
                            opt_.gap.find('-', dash == std::string::npos ? 0 : dash + 1) ==
                                std::string::npos;
        if (digits && dash == std::string::npos) {
            lo = hi = std::strtoull(opt_.gap.c_str(), nullptr, 10);
        } else if (digits) {
            lo = std::strtoull(opt_.gap.substr(0, dash).c_str(), nullptr, 10);
            hi = std::strtoull(opt_.gap.substr(dash + 1).c_str(), nullptr, 10);
        } else {
            say("error: --gap-us takes MIN-MAX or one value, in microseconds: %s", opt_.gap.c_str());
            return kExitSetup;
        }
        if (lo > hi || hi > 3'600'000'000ull) {
            say("error: --gap-us %s: need MIN <= MAX <= 3600 s", opt_.gap.c_str());
            return kExitSetup;
        }
        gap_min_us_ = lo;
        gap_max_us_ = hi;
    } else if (opt_.rate <= 0 && opt_.interval_us <= 0) {
        opt_.interval_us = 1000;
    }
    if (opt_.size < kMinFrame || opt_.size > kMaxFrame) {
        say("error: --size must be %u..%u", kMinFrame, kMaxFrame);
        return kExitSetup;
    }
    if (opt_.clock != "tsc" && opt_.clock != "monotonic") {
        say("error: --clock tsc or monotonic");
        return kExitSetup;
    }
    tb_.tsc = opt_.clock == "tsc";
    where_ = opt_.port;
    if (const auto pos = opt_.port.find("path="); pos != std::string::npos) {
        where_ = opt_.port.substr(pos + 5, opt_.port.find(',', pos) - pos - 5);
    }
    if (opt_.seed == 0) {
        opt_.seed = mono_ns() ^ (static_cast<uint64_t>(::getpid()) << 32);
    }
    rng_.seed(opt_.seed);
    nonce_ = static_cast<uint32_t>(rng_() | 1);
    state_.assign(opt_.count, State::kUnsent);
    sent_at_.assign(opt_.count, 0);
    rtt_ns_.assign(opt_.count, 0);
    self_ns_.assign(opt_.count, 0);
    samples_.reserve(opt_.count);

    ::alarm(static_cast<unsigned>(opt_.prime_timeout_s) + 30);
    const uint64_t t_setup = mono_ns();
    int rc = setup();
    if (rc != kExitPass) {
        teardown();
        return rc;
    }
    const uint64_t prime_deadline = t_setup + static_cast<uint64_t>(opt_.prime_timeout_s * 1e9);
    if (!wait_link(prime_deadline) || !prime(prime_deadline)) {
        teardown();
        return g_interrupted.load() ? kExitFail : kExitSetup;
    }
    ::alarm(0);
    timeout_ticks_ = tb_.from_us(opt_.timeout_ms * 1000.0);
    stall_ticks_ = tb_.from_us(kSelfStallUs);
    if (gap_mode_) {
        say("%" PRIu64 " frames of %u bytes, one at a time, idle gaps %" PRIu64 "-%" PRIu64
            " us (seed %" PRIu64 "), timeout %.0f ms",
            opt_.count, opt_.size, gap_min_us_, gap_max_us_, opt_.seed, opt_.timeout_ms);
    } else {
        const double us = opt_.rate > 0 ? 1e6 / opt_.rate : opt_.interval_us;
        period_ticks_ = std::max<uint64_t>(1, tb_.from_us(us));
        say("%" PRIu64 " frames of %u bytes, one every %.3f us (%.0f/s), timeout %.0f ms", opt_.count,
            opt_.size, us, 1e6 / us, opt_.timeout_ms);
    }

    const uint64_t t0 = tb_.now();
    const uint64_t t0_ns = mono_ns();
    if (gap_mode_) {
        resolved(t0); // a gap before the first frame as well
    } else {
        next_send_ = t0;
    }
    uint64_t done_at = 0;
    const uint64_t linger = tb_.from_us(opt_.linger_ms * 1000.0);
    while (!g_interrupted.load()) {
        uint64_t now = tb_.now();
        mark(now);
        const bool all_sent = sent_ == opt_.count;
        if (all_sent && in_flight_.empty()) {
            if (done_at == 0) {
                done_at = now;
            }
            if (now - done_at >= linger) {
                break;
            }
        }
        if (!all_sent && now >= next_send_ && (!gap_mode_ || in_flight_.empty())) {
            const uint64_t seq = sent_;
            uint64_t stamp = 0;
            if (send(kMagic, seq, &stamp)) {
                sent_at_[seq] = stamp;
                state_[seq] = State::kInFlight;
                in_flight_.push_back(seq);
                ++sent_;
                if (outstanding_++ == 0) {
                    last_mark_ = stamp; // stalls count from the send on
                }
                mark(tb_.now());
                if (gap_mode_) {
                    next_send_ = UINT64_MAX; // set when this one is back or lost
                } else {
                    next_send_ += period_ticks_;
                }
            } else {
                ++tx_busy_;
            }
        }
        poll_rx();
        now = tb_.now();
        expire(now);
        if (in_flight_.empty() && sent_ < opt_.count && next_send_ != UINT64_MAX) {
            idle_until(next_send_);
        }
    }
    const uint64_t t1 = tb_.now();
    const uint64_t t1_ns = mono_ns();
    if (tb_.tsc && t1_ns - t0_ns > 100'000'000) {
        // DPDK calibrated the TSC at start-up; check it against the kernel's clock.
        const double drift = static_cast<double>(tb_.to_ns(t1 - t0)) / static_cast<double>(t1_ns - t0_ns) - 1;
        if (std::fabs(drift) > 0.005) {
            say("warning: TSC-based time differs from CLOCK_MONOTONIC by %+.2f%% over the run; "
                "consider --clock monotonic",
                100 * drift);
        }
    }
    ::alarm(20);
    report(static_cast<double>(t1_ns - t0_ns) / 1e9);
    const bool pass = !g_interrupted.load() && sent_ == opt_.count && received_ == opt_.count &&
                      lost_ == 0 && corrupt_ == 0 && dup_ == 0 && over_max_ == 0;
    teardown();
    ::alarm(0);
    return pass ? kExitPass : kExitFail;
}

} // namespace
} // namespace vhost_ping

int main(int argc, char** argv) {
    using namespace vhost_ping;
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    Options opt;
    CLI::App app{"vhost-ping: round-trip times through a vhost-user back-end that reflects frames "
                 "(vhostd: xconnect [p, p]), from a DPDK virtio-user port"};
    app.add_option("--eal", opt.eal,
                   "EAL arguments, split at spaces; '-l 0' and a unique --file-prefix are added "
                   "unless given")
        ->capture_default_str();
    app.add_option("--port", opt.port,
                   "virtio-user device arguments, e.g. 'path=/tmp/p0.sock,queue_size=1024'")
        ->required();
    app.add_option("--count,-c", opt.count, "frames to send")
        ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 32))
        ->capture_default_str();
    auto* rate = app.add_option("--rate", opt.rate, "frames per second, on a fixed schedule")
                     ->check(CLI::Range(0.001, 1e8));
    auto* interval = app.add_option("--interval-us,-i", opt.interval_us,
                                    "microseconds between sends, on a fixed schedule (default 1000)")
                         ->check(CLI::Range(0.01, 3.6e9));
    auto* gap = app.add_option("--gap-us", opt.gap,
                               "one frame at a time, then an idle gap of MIN-MAX us (uniformly "
                               "random) or exactly U us before the next one");
    rate->excludes(interval)->excludes(gap);
    interval->excludes(gap);
    app.add_option("--timeout-ms,-W", opt.timeout_ms, "a frame not back within this is lost")
        ->check(CLI::Range(0.001, 3.6e6))
        ->capture_default_str();
    app.add_option("--max-rtt-us", opt.max_rtt_us,
                   "fail (exit 1) if any frame took longer than this to come back")
        ->check(CLI::Range(0.001, 3.6e9));
    app.add_option("--size,-s", opt.size, "frame length in bytes, without FCS (60..1514)")
        ->capture_default_str();
    app.add_option("--clock", opt.clock,
                   "tsc: rte_rdtsc with DPDK's calibrated frequency; monotonic: clock_gettime")
        ->check(CLI::IsMember({"tsc", "monotonic"}))
        ->capture_default_str();
    app.add_flag("--json", opt.json, "also print the result as one line of JSON");
    app.add_flag("--verbose,-v", opt.verbose, "one line per frame");
    app.add_flag("--spin", opt.spin,
                 "busy-wait through idle gaps instead of sleeping most of each gap");
    app.add_option("--samples", opt.samples,
                   "write every frame's round trip to this file: 'seq rtt_ns self_ns' or 'seq lost'");
    app.add_option("--prime-timeout", opt.prime_timeout_s,
                   "seconds for the link to come up and a first (uncounted) frame to come back")
        ->check(CLI::Range(0.1, 3600.0))
        ->capture_default_str();
    app.add_option("--linger-ms", opt.linger_ms,
                   "milliseconds to keep polling for duplicates after the last frame")
        ->check(CLI::Range(0.0, 60000.0))
        ->capture_default_str();
    app.add_option("--seed", opt.seed, "seed of the random gaps (default: from the clock)");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? kExitPass : kExitSetup;
    }
    ::prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0); // precise wake-ups from idle gaps

    vhostd::tools::install_signal_handlers(on_signal, on_alarm);

    Ping p(std::move(opt));
    return p.run();
}
