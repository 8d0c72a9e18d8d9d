#include "traffic.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <optional>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>

#include "../common/eal.hpp"
#include "log.hpp"

namespace vhost_traffic {

namespace {
std::atomic<bool> g_interrupted{false};
std::atomic<int> g_interrupt_signal{0};
} // namespace

void note_interrupt(int sig) noexcept {
    g_interrupt_signal.store(sig);
    g_interrupted.store(true);
}

int Traffic::setup_eal() {
    // The virtio driver logs which RX/TX burst functions it picked at INFO.
    auto [args, prefix] = vhostd::tools::tool_eal_args(
        "vhost-traffic", vhostd::tools::split_ws(opt_.eal),
        {"--log-level", "pmd.net.virtio.*:info"});
    generated_prefix_ = prefix;
    for (size_t i = 0; i < opt_.ports.size(); ++i) {
        std::string a = opt_.ports[i];
        if (!devarg(a, "mac")) {
            char mac[48];
            std::snprintf(mac, sizeof(mac), ",mac=02:00:00:00:00:%02x", static_cast<unsigned>(i & 0xff));
            a += mac;
        }
        Port p;
        p.index = static_cast<uint16_t>(i);
        p.vdev = "net_virtio_user" + std::to_string(i) + "," + a;
        args.insert(args.end(), {"--vdev", p.vdev});
        ports_.push_back(std::move(p));
    }

    infof("EAL: %s", vhostd::tools::join_args(args).c_str());
    if (const std::string err = vhostd::tools::init_eal(args); !err.empty()) {
        errorf("EAL initialisation failed: %s", err.c_str());
        return kExitSetup;
    }
    eal_up_ = true;

    for (auto& p : ports_) {
        const std::string name = "net_virtio_user" + std::to_string(p.index);
        if (rte_eth_dev_get_port_by_name(name.c_str(), &p.id) != 0) {
            errorf("no ethdev port %s: the virtio-user device did not probe (is the back-end "
                   "listening on the socket? see the driver's messages above)",
                   name.c_str());
            return kExitSetup;
        }
    }

    // Mbufs: each port keeps its RX ring full (up to 1024 descriptors with
    // queue_size=1024) and TX mbufs until the ring is cleaned, plus the
    // window of frames in flight, each of up to `segs` segments.
    const uint32_t room = data_room_ - RTE_PKTMBUF_HEADROOM;
    const uint32_t segs = (opt_.size + room - 1) / room;
    const uint32_t want = static_cast<uint32_t>(ports_.size()) * 4096 +
                        std::max(opt_.window, 256u) * segs * 2 + 2048;
    uint32_t n = 1;
    while (n - 1 < want) {
        n <<= 1;
    }
    pool_ = rte_pktmbuf_pool_create("vhost_traffic", n - 1, 256, 0, data_room_,
                                    static_cast<int>(rte_socket_id()));
    if (pool_ == nullptr) {
        errorf("cannot create an mbuf pool of %u mbufs with data room %u: %s (more EAL memory, -m?)",
               n - 1, data_room_, rte_strerror(rte_errno));
        return kExitSetup;
    }
    return kExitPass;
}

int Traffic::setup_port(Port& p) {
    rte_eth_dev_info info{};
    int ret = rte_eth_dev_info_get(p.id, &info);
    if (ret != 0) {
        errorf("port %u: cannot read device info: %s", p.index, rte_strerror(-ret));
        return kExitSetup;
    }
    rte_eth_conf conf{};
    const uint32_t room = data_room_ - RTE_PKTMBUF_HEADROOM;
    if (opt_.size > info.max_rx_pktlen) {
        errorf("port %u: --size %u is above the port's max_rx_pktlen %u", p.index, opt_.size,
               info.max_rx_pktlen);
        return kExitSetup;
    }

    // MTU: the frame must pass the port's receive length check. virtio counts
    // 14 (Ethernet) + 4 (VLAN) + its 12-byte header on top of the MTU.
    uint32_t mtu = opt_.mtu;
    if (mtu == 0 && opt_.size > RTE_ETHER_MAX_LEN) {
        mtu = std::max<uint32_t>(9000, opt_.size - RTE_ETHER_HDR_LEN);
        if (mtu > info.max_mtu && opt_.size - RTE_ETHER_HDR_LEN <= info.max_mtu) {
            mtu = info.max_mtu;
        }
    }
    if (mtu != 0) {
        if (mtu > info.max_mtu || mtu < info.min_mtu) {
            errorf("port %u: MTU %u is outside the port's range %u..%u", p.index, mtu, info.min_mtu,
                   info.max_mtu);
            return kExitSetup;
        }
        conf.rxmode.mtu = mtu;
    }
    const uint32_t rx_frame = (mtu != 0 ? mtu : RTE_ETHER_MTU) + RTE_ETHER_HDR_LEN + 4 + 12;
    bool scatter = false;
    if (rx_frame > room || opt_.size > room) {
        // A frame larger than one receive buffer: virtio can only spread it
        // over several buffers with mergeable RX buffers (mrg_rxbuf=1).
        if ((info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_SCATTER) == 0) {
            errorf("port %u: frames of up to %u bytes do not fit in one %u-byte receive buffer and "
                   "the port cannot scatter (virtio-user needs mrg_rxbuf=1 for that, or use a "
                   "larger --data-room)",
                   p.index, std::max(rx_frame, opt_.size), room);
            return kExitSetup;
        }
        conf.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_SCATTER;
        scatter = true;
    }
    if (multi_seg_) {
        if ((info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MULTI_SEGS) == 0) {
            errorf("port %u: cannot send multi-segment frames", p.index);
            return kExitSetup;
        }
        conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MULTI_SEGS;
    }
    ret = rte_eth_dev_configure(p.id, 1, 1, &conf);
    if (ret != 0) {
        errorf("port %u: configure failed: %s", p.index, rte_strerror(-ret));
        return kExitSetup;
    }
    // As many descriptors as the ring has (virtio clamps to queue_size).
    uint16_t nb_rxd = 32768;
    uint16_t nb_txd = 32768;
    ret = rte_eth_dev_adjust_nb_rx_tx_desc(p.id, &nb_rxd, &nb_txd);
    if (ret != 0) {
        errorf("port %u: adjusting descriptors failed: %s", p.index, rte_strerror(-ret));
        return kExitSetup;
    }
    rte_eth_rxconf rxconf = info.default_rxconf;
    rxconf.offloads = conf.rxmode.offloads;
    ret = rte_eth_rx_queue_setup(p.id, 0, nb_rxd, rte_socket_id(), &rxconf, pool_);
    if (ret != 0) {
        errorf("port %u: RX queue setup failed: %s", p.index, rte_strerror(-ret));
        return kExitSetup;
    }
    rte_eth_txconf txconf = info.default_txconf;
    txconf.offloads = conf.txmode.offloads;
    ret = rte_eth_tx_queue_setup(p.id, 0, nb_txd, rte_socket_id(), &txconf);
    if (ret != 0) {
        errorf("port %u: TX queue setup failed: %s", p.index, rte_strerror(-ret));
        return kExitSetup;
    }
    ret = rte_eth_dev_start(p.id);
    if (ret != 0) {
        errorf("port %u: start failed: %s", p.index, rte_strerror(-ret));
        return kExitSetup;
    }
    p.started = true;
    rte_ether_addr addr{};
    rte_eth_macaddr_get(p.id, &addr);
    std::copy(std::begin(addr.addr_bytes), std::end(addr.addr_bytes), p.mac.begin());
    rte_eth_dev_get_mtu(p.id, &p.mtu);
    infof("port %u: %s: mac %s, mtu %u, rx buffer %u bytes%s%s", p.index, p.vdev.c_str(),
          mac_str(p.mac).c_str(), p.mtu, room, scatter ? ", rx scatter" : "",
          multi_seg_ ? ", multi-segment tx" : "");
    return kExitPass;
}

bool Traffic::wait_links(Clock::time_point deadline) {
    for (auto& p : ports_) {
        while (true) {
            rte_eth_link link{};
            rte_eth_link_get_nowait(p.id, &link);
            if (link.link_status == RTE_ETH_LINK_UP) {
                break;
            }
            if (Clock::now() >= deadline || g_interrupted.load()) {
                errorf("port %u: link still down", p.index);
                return false;
            }
            ::usleep(10000);
        }
    }
    return true;
}

rte_mbuf* Traffic::make_mbuf(const uint8_t* data, uint32_t len) {
    rte_mbuf* head = rte_pktmbuf_alloc(pool_);
    if (head == nullptr) {
        return nullptr;
    }
    uint32_t off = 0;
    rte_mbuf* seg = head;
    while (true) {
        const uint32_t n = std::min<uint32_t>(len - off, rte_pktmbuf_tailroom(seg));
        std::memcpy(rte_pktmbuf_mtod(seg, uint8_t*), data + off, n);
        seg->data_len = static_cast<uint16_t>(n);
        seg->pkt_len = n;
        if (seg != head && rte_pktmbuf_chain(head, seg) != 0) {
            rte_pktmbuf_free(seg);
            rte_pktmbuf_free(head);
            return nullptr;
        }
        off += n;
        if (off >= len) {
            break;
        }
        seg = rte_pktmbuf_alloc(pool_);
        if (seg == nullptr) {
            rte_pktmbuf_free(head);
            return nullptr;
        }
    }
    return head;
}

bool Traffic::send_raw(Port& p, const uint8_t* data, uint32_t len) {
    rte_mbuf* m = make_mbuf(data, len);
    if (m == nullptr) {
        return false;
    }
    if (rte_eth_tx_burst(p.id, 0, &m, 1) != 1) {
        rte_pktmbuf_free(m);
        return false;
    }
    return true;
}

uint64_t Traffic::frames_for(const Port& p) const {
    if (p.index >= stride_ || p.index >= opt_.count) {
        return 0;
    }
    return (opt_.count - p.index + stride_ - 1) / stride_;
}

void Traffic::transmit(Port& p) {
    if (p.pending.empty()) {
        const uint64_t total = frames_for(p);
        const uint64_t built = p.tx_data;
        const uint64_t in_flight = in_flight_sent() + pending_total();
        if (built >= total || in_flight >= opt_.window) {
            return;
        }
        const uint64_t n = std::min<uint64_t>({opt_.burst, opt_.window - in_flight, total - built});
        const Port& peer = ports_[opt_.mode == Mode::kPair ? 1 - p.index : p.index];
        for (uint64_t i = 0; i < n; ++i) {
            const uint64_t seq = p.next_seq;
            if (opt_.mode == Mode::kIcmp) {
                build_echo_request(build_buf_.data(), opt_.size, peer_mac_, p.mac, src_ip_, dst_ip_,
                                   seq);
            } else {
                build_data_frame(build_buf_.data(), opt_.size, peer.mac, p.mac, p.index, seq);
            }
            rte_mbuf* m = make_mbuf(build_buf_.data(), opt_.size);
            if (m == nullptr) {
                break; // pool empty for now: try again on the next round
            }
            p.pending.push_back(m);
            p.next_seq += stride_;
            ++p.tx_data;
        }
    }
    if (p.pending.empty()) {
        return;
    }
    const uint16_t sent = rte_eth_tx_burst(p.id, 0, p.pending.data(),
                                           static_cast<uint16_t>(p.pending.size()));
    if (sent > 0) {
        if (!have_first_tx_) {
            have_first_tx_ = true;
            t_first_tx_ = Clock::now();
            t_last_progress_ = t_first_tx_;
        }
        ctr_.sent += sent;
        p.pending.erase(p.pending.begin(), p.pending.begin() + sent);
    }
}

void Traffic::poll_rx(Port& p) {
    rte_mbuf* mbufs[kMaxBurst];
    const uint16_t n = rte_eth_rx_burst(p.id, 0, mbufs, kMaxBurst);
    for (uint16_t i = 0; i < n; ++i) {
        handle(p, mbufs[i]);
        rte_pktmbuf_free(mbufs[i]);
    }
}

void Traffic::handle(Port& p, rte_mbuf* m) {
    std::span<const uint8_t> frame;
    if (m->nb_segs == 1) {
        frame = {rte_pktmbuf_mtod(m, const uint8_t*), m->data_len};
    } else {
        if (m->pkt_len > scratch_.size()) {
            ++ctr_.corrupt;
            if (first_corrupt_.empty()) {
                first_corrupt_ = "frame of " + std::to_string(m->pkt_len) + " bytes is too long";
            }
            return;
        }
        const void* d = rte_pktmbuf_read(m, 0, m->pkt_len, scratch_.data());
        if (d == nullptr) {
            ++ctr_.corrupt;
            return;
        }
        frame = {static_cast<const uint8_t*>(d), m->pkt_len};
    }

    if (opt_.mode == Mode::kIcmp) {
        ArpInfo arp;
        if (parse_arp(frame, arp)) {
            if (arp.op == 2 && arp.spa == dst_ip_) {
                if (!peer_known_) {
                    peer_mac_ = arp.sha;
                    peer_known_ = true;
                }
                ++ctr_.prime_rx;
                return;
            }
            if (arp.op == 1 && arp.tpa == src_ip_) {
                uint8_t reply[kArpFrameLen];
                build_arp(reply, 2, arp.sha, p.mac, src_ip_, arp.sha, arp.spa);
                send_raw(p, reply, kArpFrameLen);
            }
            ++ctr_.foreign;
            return;
        }
        const Checked c = check_echo_reply(frame, opt_.size, opt_.count, src_ip_, dst_ip_);
        handle_data(p, c, frame);
        return;
    }
    const Checked c = check_data_frame(frame, opt_.size, opt_.count);
    handle_data(p, c, frame);
}

void Traffic::handle_data(Port& p, const Checked& c, std::span<const uint8_t> frame) {
    switch (c.verdict) {
    case Verdict::kForeign:
        ++ctr_.foreign;
        return;
    case Verdict::kCorrupt:
        ++ctr_.corrupt;
        t_last_progress_ = Clock::now();
        if (first_corrupt_.empty()) {
            first_corrupt_ = std::string(c.why) + " (port " + std::to_string(p.index) + ", " +
                             std::to_string(frame.size()) + " bytes, seq field " +
                             std::to_string(c.hdr.seq) + ")";
        }
        return;
    case Verdict::kPrime:
    case Verdict::kOk:
        break;
    }
    // Where it must have come from and arrived.
    const Mac* dst = nullptr;
    const Mac* src = nullptr;
    uint16_t expect_rx = 0;
    uint16_t tx_port = c.hdr.tx_port;
    if (opt_.mode == Mode::kIcmp) {
        tx_port = 0;
        dst = &ports_[0].mac;
        src = &peer_mac_;
        expect_rx = 0;
    } else if (tx_port >= ports_.size() || (opt_.mode == Mode::kReflect && tx_port != 0)) {
        ++ctr_.corrupt;
        if (first_corrupt_.empty()) {
            first_corrupt_ = "unknown sender port " + std::to_string(tx_port);
        }
        return;
    } else {
        const uint16_t rx_port = opt_.mode == Mode::kPair ? static_cast<uint16_t>(1 - tx_port) : tx_port;
        expect_rx = rx_port;
        src = &ports_[tx_port].mac;
        dst = (c.verdict == Verdict::kPrime && opt_.mode == Mode::kPair) ? nullptr
                                                                          : &ports_[rx_port].mac;
    }
    if (c.verdict == Verdict::kPrime) {
        ++ctr_.prime_rx;
        if (p.index == expect_rx) {
            primed_[tx_port] = true;
        }
        return;
    }
    const bool eth_ok = (dst == nullptr || std::equal(dst->begin(), dst->end(), frame.data())) &&
                        std::equal(src->begin(), src->end(), frame.data() + 6);
    if (!eth_ok) {
        ++ctr_.corrupt;
        if (first_corrupt_.empty()) {
            first_corrupt_ = "Ethernet addresses changed (seq " + std::to_string(c.hdr.seq) + ")";
        }
        t_last_progress_ = Clock::now();
        return;
    }
    const uint64_t seq = c.hdr.seq;
    if (opt_.mode != Mode::kIcmp && seq % stride_ != tx_port) {
        ++ctr_.corrupt;
        if (first_corrupt_.empty()) {
            first_corrupt_ = "sequence number " + std::to_string(seq) + " was never sent by port " +
                             std::to_string(tx_port);
        }
        return;
    }
    if (p.index != expect_rx) {
        ++ctr_.misrouted;
        t_last_progress_ = Clock::now();
        return;
    }
    if (seen_[seq]) {
        ++ctr_.dup;
        return;
    }
    seen_[seq] = true;
    ++ctr_.received;
    ++p.rx_data;
    int64_t& last = last_seq_[static_cast<size_t>(tx_port) * 2 + p.index];
    if (static_cast<int64_t>(seq) < last) {
        ++ctr_.reordered;
    } else {
        last = static_cast<int64_t>(seq);
    }
    t_last_rx_ = Clock::now();
    t_last_progress_ = t_last_rx_;
}

bool Traffic::prime(Clock::time_point deadline) {
    // One priming frame per sending port, repeated until it arrives where it
    // should: proves both directions of every ring are live (and, in pair
    // mode, lets vhostd's L2 table learn each port's MAC) before counting.
    const Mac bcast{0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    for (auto& p : ports_) {
        if (p.index >= stride_) {
            continue;
        }
        const Mac& dst = opt_.mode == Mode::kPair ? bcast : p.mac;
        uint64_t attempt = 0;
        while (!primed_[p.index]) {
            if (Clock::now() >= deadline || g_interrupted.load()) {
                errorf("port %u: priming frame never arrived (%" PRIu64 " sent)", p.index, attempt);
                return false;
            }
            build_data_frame(build_buf_.data(), opt_.size, dst, p.mac, p.index, attempt++, true);
            if (send_raw(p, build_buf_.data(), opt_.size)) {
                ++ctr_.prime_tx;
            }
            const auto until = Clock::now() + std::chrono::milliseconds(100);
            while (!primed_[p.index] && Clock::now() < until) {
                for (auto& q : ports_) {
                    poll_rx(q);
                }
            }
        }
    }
    return true;
}

bool Traffic::resolve_arp(Clock::time_point deadline) {
    Port& p = ports_[0];
    const Mac bcast{0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    const Mac zero{};
    uint64_t attempt = 0;
    while (!peer_known_) {
        if (Clock::now() >= deadline || g_interrupted.load()) {
            errorf("no ARP reply for %s (%" PRIu64 " requests sent)", opt_.dst_ip.c_str(), attempt);
            return false;
        }
        uint8_t req[kArpFrameLen];
        build_arp(req, 1, bcast, p.mac, src_ip_, zero, dst_ip_);
        if (send_raw(p, req, kArpFrameLen)) {
            ++ctr_.prime_tx;
        }
        ++attempt;
        const auto until = Clock::now() + std::chrono::milliseconds(200);
        while (!peer_known_ && Clock::now() < until) {
            poll_rx(p);
        }
    }
    infof("%s is at %s", opt_.dst_ip.c_str(), mac_str(peer_mac_).c_str());
    return true;
}

void Traffic::report(bool pass, bool timed_out, double seconds) {
    const uint64_t lost = opt_.count - ctr_.received;
    const double pps = seconds > 0 ? static_cast<double>(ctr_.received) / seconds : 0.0;
    const double mbps = pps * opt_.size * 8 / 1e6;
    for (const auto& p : ports_) {
        rte_eth_stats st{};
        if (p.started && rte_eth_stats_get(p.id, &st) == 0) {
            infof("port %u: test frames sent %" PRIu64 " received %" PRIu64
                  "; ethdev stats: ipackets %" PRIu64 " opackets %" PRIu64 " imissed %" PRIu64
                  " ierrors %" PRIu64 " oerrors %" PRIu64 " rx_nombuf %" PRIu64,
                  p.index, p.tx_data - p.pending.size(), p.rx_data, st.ipackets, st.opackets,
                  st.imissed, st.ierrors, st.oerrors, st.rx_nombuf);
        }
    }
    if (!first_corrupt_.empty()) {
        infof("first corrupt frame: %s", first_corrupt_.c_str());
    }
    std::printf("vhost-traffic: %s mode=%s ports=%zu size=%u count=%" PRIu64 " sent=%" PRIu64
                " received=%" PRIu64 " lost=%" PRIu64 " corrupt=%" PRIu64 " dup=%" PRIu64
                " reordered=%" PRIu64 " misrouted=%" PRIu64 " foreign=%" PRIu64
                " seconds=%.3f pps=%.0f mbps=%.1f%s%s%s\n",
                pass ? "PASS" : "FAIL", mode_name(opt_.mode), ports_.size(), opt_.size, opt_.count,
                ctr_.sent, ctr_.received, lost, ctr_.corrupt, ctr_.dup, ctr_.reordered,
                ctr_.misrouted, ctr_.foreign, seconds, pps, mbps, timed_out ? " timeout" : "",
                stalled_ ? " stalled" : "", g_interrupted.load() ? " interrupted" : "");
    if (opt_.json) {
        std::printf("{\"result\": \"%s\", \"mode\": \"%s\", \"ports\": %zu, \"size\": %u, "
                    "\"count\": %" PRIu64 ", \"sent\": %" PRIu64 ", \"received\": %" PRIu64
                    ", \"lost\": %" PRIu64 ", \"corrupt\": %" PRIu64 ", \"dup\": %" PRIu64
                    ", \"reordered\": %" PRIu64 ", \"misrouted\": %" PRIu64
                    ", \"foreign\": %" PRIu64 ", \"prime_sent\": %" PRIu64
                    ", \"prime_received\": %" PRIu64 ", \"timeout\": %s, \"stalled\": %s, "
                    "\"seconds\": %.6f, "
                    "\"pps\": %.1f, \"mbps\": %.3f}\n",
                    pass ? "pass" : "fail", mode_name(opt_.mode), ports_.size(), opt_.size,
                    opt_.count, ctr_.sent, ctr_.received, lost, ctr_.corrupt, ctr_.dup,
                    ctr_.reordered, ctr_.misrouted, ctr_.foreign, ctr_.prime_tx, ctr_.prime_rx,
                    timed_out ? "true" : "false", stalled_ ? "true" : "false",
                    seconds, pps, mbps);
    }
    std::fflush(stdout);
}

void Traffic::teardown() {
    for (auto& p : ports_) {
        for (rte_mbuf* m : p.pending) {
            rte_pktmbuf_free(m);
        }
        p.pending.clear();
    }
    // Stop and close every port, so the back-end sees the rings stop
    // (GET_VRING_BASE) and the connection close, rather than a crash.
    for (auto& p : ports_) {
        const std::string err = vhostd::tools::close_virtio_user(
            p.id, p.started, "net_virtio_user" + std::to_string(p.index), eal_up_);
        if (!err.empty()) {
            errorf("port %u: stop: %s", p.index, err.c_str());
        }
    }
    vhostd::tools::release_dpdk(pool_, eal_up_, generated_prefix_);
}

int Traffic::run() {
    const auto t_start = Clock::now();
    const auto deadline =
        t_start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(opt_.timeout));
    const size_t nports_needed = opt_.mode == Mode::kPair ? 2 : 1;
    if (opt_.ports.size() != nports_needed) {
        errorf("mode %s needs exactly %zu --port, got %zu", mode_name(opt_.mode), nports_needed,
               opt_.ports.size());
        return kExitSetup;
    }
    const uint32_t min_size = opt_.mode == Mode::kIcmp ? kMinIcmpFrame : kMinDataFrame;
    if (opt_.size < min_size || opt_.size > kMaxFrame) {
        errorf("--size %u: must be %u..%u for mode %s", opt_.size, min_size, kMaxFrame,
               mode_name(opt_.mode));
        return kExitSetup;
    }
    if (opt_.mode == Mode::kIcmp) {
        auto s = parse_ip(opt_.src_ip);
        auto d = parse_ip(opt_.dst_ip);
        if (!s || !d) {
            errorf("--src-ip/--dst-ip must be IPv4 addresses");
            return kExitSetup;
        }
        src_ip_ = *s;
        dst_ip_ = *d;
        if (opt_.size - kEthHdrLen > 0xffff) {
            errorf("--size too large for IPv4");
            return kExitSetup;
        }
        if (!opt_.dst_mac.empty()) {
            auto m = parse_mac(opt_.dst_mac);
            if (!m) {
                errorf("--dst-mac %s is not a MAC address", opt_.dst_mac.c_str());
                return kExitSetup;
            }
            peer_mac_ = *m;
            peer_known_ = true;
        }
    }
    stride_ = opt_.mode == Mode::kPair ? 2 : 1;
    data_room_ = static_cast<uint16_t>(
        opt_.data_room != 0 ? opt_.data_room
                            : (opt_.size > 2000 ? kJumboDataRoom : RTE_MBUF_DEFAULT_BUF_SIZE));
    multi_seg_ = opt_.size > static_cast<uint32_t>(data_room_ - RTE_PKTMBUF_HEADROOM);
    seen_.assign(opt_.count, false);
    last_seq_.assign(4, -1);
    primed_.assign(2, false);
    scratch_.resize(16384);
    build_buf_.resize(kMaxFrame);

    ::alarm(static_cast<unsigned>(opt_.timeout) + 15);

    int rc = setup_eal();
    if (rc == kExitPass) {
        for (auto& p : ports_) {
            rc = setup_port(p);
            if (rc != kExitPass) {
                break;
            }
        }
    }
    if (rc != kExitPass) {
        teardown();
        return rc;
    }
    for (auto& p : ports_) {
        p.next_seq = p.index;
    }
    if (opt_.window == 0) {
        // A frame takes one RX buffer, or several when it is scattered over
        // mergeable buffers. Keep what is in flight to half of the smallest RX
        // ring, so the back-end never finds the ring empty while frames are
        // still due (that would be a legitimate no_buffer drop).
        const uint32_t room = data_room_ - RTE_PKTMBUF_HEADROOM;
        const uint32_t bufs = (opt_.size + 12 + room - 1) / room;
        uint32_t ring = 32768;
        for (const auto& a : opt_.ports) {
            uint32_t q = 256; // virtio-user's default queue_size
            if (auto v = devarg(a, "queue_size")) {
                q = static_cast<uint32_t>(std::strtoul(v->c_str(), nullptr, 0));
            }
            ring = std::min(ring, q);
        }
        opt_.window = std::clamp<uint32_t>(ring / 2 / bufs, 1, 256);
        infof("window %u frames (RX ring %u, %u buffer(s) per frame)", opt_.window, ring, bufs);
    }

    bool ready = wait_links(deadline);
    if (ready) {
        // A path that does not carry the first frame within a few seconds is
        // broken: fail fast instead of waiting for --timeout.
        const auto prime_deadline = std::min(
            deadline, Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                         std::chrono::duration<double>(opt_.prime_timeout)));
        ready = opt_.mode == Mode::kIcmp ? (peer_known_ || resolve_arp(prime_deadline))
                                         : prime(prime_deadline);
    }
    bool timed_out = false;
    if (ready) {
        const auto stall = std::chrono::duration_cast<Clock::duration>(
            std::chrono::duration<double>(opt_.stall));
        const auto linger = std::chrono::duration_cast<Clock::duration>(
            std::chrono::duration<double>(opt_.linger));
        std::optional<Clock::time_point> done_at;
        while (true) {
            const auto now = Clock::now();
            if (g_interrupted.load()) {
                break;
            }
            if (now >= deadline) {
                timed_out = ctr_.received < opt_.count;
                break;
            }
            if (ctr_.received == opt_.count) {
                // Everything is back: look a little longer for duplicates.
                if (!done_at) {
                    done_at = now;
                }
                if (now - *done_at >= linger) {
                    break;
                }
            } else if (have_first_tx_ && now - t_last_progress_ >= stall) {
                // Nothing came back for a while although frames are due: they
                // are lost, and with them the window's room. Stop here with
                // the counts rather than send beyond the window.
                stalled_ = true;
                break;
            }
            for (auto& p : ports_) {
                transmit(p);
            }
            for (auto& p : ports_) {
                poll_rx(p);
            }
        }
    }
    const double seconds =
        ctr_.received > 0
            ? std::chrono::duration<double>(t_last_rx_ - t_first_tx_).count()
            : std::chrono::duration<double>(Clock::now() - t_start).count();
    const bool pass = ready && !g_interrupted.load() && ctr_.received == opt_.count &&
                      ctr_.corrupt == 0 && ctr_.dup == 0 && ctr_.misrouted == 0;
    if (stalled_) {
        infof("stalled: nothing came back for %.1f s with %" PRIu64 " frame(s) in flight",
              opt_.stall, in_flight_sent());
    }
    report(pass, timed_out, seconds);
    teardown();
    ::alarm(0);
    if (g_interrupted.load()) {
        infof("interrupted by signal %d", g_interrupt_signal.load());
    }
    return pass ? kExitPass : kExitFail;
}

} // namespace vhost_traffic
