#include "options.hpp"

#include <arpa/inet.h>

#include <cstdio>
#include <sstream>

#include <CLI/CLI.hpp>

namespace vhost_traffic {

const char* mode_name(Mode m) {
    switch (m) {
    case Mode::kReflect:
        return "reflect";
    case Mode::kPair:
        return "pair";
    case Mode::kIcmp:
        return "icmp";
    }
    return "?";
}

std::string mac_str(const Mac& m) {
    char buf[18];
    std::snprintf(buf, sizeof(buf), "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4],
                  m[5]);
    return buf;
}

std::optional<Mac> parse_mac(const std::string& s) {
    Mac m{};
    unsigned v[6];
    char extra;
    if (std::sscanf(s.c_str(), "%x:%x:%x:%x:%x:%x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
                    &extra) != 6) {
        return std::nullopt;
    }
    for (int i = 0; i < 6; ++i) {
        if (v[i] > 0xff) {
            return std::nullopt;
        }
        m[static_cast<size_t>(i)] = static_cast<uint8_t>(v[i]);
    }
    return m;
}

std::optional<uint32_t> parse_ip(const std::string& s) {
    in_addr a{};
    if (::inet_pton(AF_INET, s.c_str(), &a) != 1) {
        return std::nullopt;
    }
    return ntohl(a.s_addr);
}

std::optional<std::string> devarg(const std::string& args, const std::string& key) {
    std::istringstream in(args);
    for (std::string kv; std::getline(in, kv, ',');) {
        const auto eq = kv.find('=');
        if (eq != std::string::npos && kv.substr(0, eq) == key) {
            return kv.substr(eq + 1);
        }
    }
    return std::nullopt;
}

std::optional<int> parse_command_line(int argc, char** argv, Options& opt) {
    CLI::App app{"vhost-traffic: exact-count traffic through a vhost-user back-end, driven by "
                 "DPDK virtio-user ports"};
    app.add_option("--eal", opt.eal,
                   "EAL arguments, split at spaces (default: '--no-huge -m 1024 --no-pci'); "
                   "'-l 0' and a unique --file-prefix are added unless given")
        ->capture_default_str();
    app.add_option("--port", opt.ports,
                   "virtio-user device arguments, e.g. 'path=/tmp/p0.sock,queue_size=1024,"
                   "mrg_rxbuf=1'; repeat for port 1; mac=02:00:00:00:00:0<i> unless given")
        ->required();
    std::string mode = "reflect";
    app.add_option("--mode", mode,
                   "reflect: port 0 -> port 0; pair: port 0 <-> port 1 (L2); icmp: ping --dst-ip")
        ->check(CLI::IsMember({"reflect", "pair", "icmp"}))
        ->capture_default_str();
    app.add_option("--count", opt.count, "frames to send (in pair mode: in total, alternating)")
        ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 32))
        ->capture_default_str();
    app.add_option("--size", opt.size, "frame length in bytes, without FCS")->capture_default_str();
    app.add_option("--window", opt.window,
                   "frames in flight at most (default: 256, less if the RX ring (queue_size, "
                   "virtio-user's default 256) would not hold twice that many frames)")
        ->check(CLI::Range(1u, 1u << 20));
    app.add_option("--timeout", opt.timeout, "hard limit in seconds for the whole run")
        ->check(CLI::Range(0.1, 86400.0))
        ->capture_default_str();
    app.add_flag("--json", opt.json, "also print the result as one line of JSON");
    app.add_option("--burst", opt.burst, "frames per tx burst")
        ->check(CLI::Range(1u, static_cast<unsigned>(kMaxBurst)))
        ->capture_default_str();
    app.add_option("--data-room", opt.data_room,
                   "mbuf data room (default 2176, or 10240 for --size above 2000); smaller than "
                   "the frame means multi-segment frames")
        ->check(CLI::Range(512u, 65535u));
    app.add_option("--mtu", opt.mtu, "port MTU (default: 9000 for frames above 1518 bytes)");
    app.add_option("--stall", opt.stall,
                   "seconds without any frame coming back, while some are due, after which the run "
                   "ends (what is in flight counts as lost)")
        ->check(CLI::Range(0.01, 3600.0))
        ->capture_default_str();
    app.add_option("--prime-timeout", opt.prime_timeout,
                   "seconds to wait for the priming frames (icmp: the ARP reply) to get through")
        ->check(CLI::Range(0.1, 3600.0))
        ->capture_default_str();
    app.add_option("--linger", opt.linger, "seconds to keep polling for duplicates at the end")
        ->check(CLI::Range(0.0, 60.0))
        ->capture_default_str();
    app.add_option("--src-ip", opt.src_ip, "icmp: our IPv4 address")->capture_default_str();
    app.add_option("--dst-ip", opt.dst_ip, "icmp: the address to ping")->capture_default_str();
    app.add_option("--dst-mac", opt.dst_mac, "icmp: the peer's MAC (default: ask with ARP)");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        // --help prints and exits 0; a usage error exits 2, like a set-up error.
        return app.exit(e) == 0 ? kExitPass : kExitSetup;
    }
    opt.mode = mode == "pair" ? Mode::kPair : mode == "icmp" ? Mode::kIcmp : Mode::kReflect;

    return std::nullopt;
}

} // namespace vhost_traffic
