#pragma once
// vhost-traffic's command line: the options, their parsing, and the parsers
// of the values in them (MAC and IPv4 addresses, virtio-user devargs).

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "frame.hpp"

namespace vhost_traffic {

constexpr int kExitPass = 0;
constexpr int kExitFail = 1;
constexpr int kExitSetup = 2;
constexpr uint32_t kMaxFrame = 9728;      // virtio's VIRTIO_MAX_RX_PKTLEN
constexpr uint16_t kJumboDataRoom = 10240; // mbuf data room for frames > 2000 bytes
constexpr uint16_t kMaxBurst = 64;

enum class Mode { kReflect, kPair, kIcmp };

const char* mode_name(Mode m);

struct Options {
    std::string eal = "--no-huge -m 1024 --no-pci";
    std::vector<std::string> ports;
    Mode mode = Mode::kReflect;
    uint64_t count = 1000;
    uint32_t size = 64;
    uint32_t window = 0; // 0: automatic
    double timeout = 30.0;
    bool json = false;
    uint32_t burst = 32;
    uint32_t data_room = 0; // 0: automatic
    uint32_t mtu = 0;       // 0: automatic
    double stall = 5.0;
    double prime_timeout = 10.0;
    double linger = 0.1;
    std::string src_ip = "192.0.2.2";
    std::string dst_ip = "192.0.2.1";
    std::string dst_mac;
};

// Parses argv into `opt`. Returns an exit status when the program should end
// now (--help: kExitPass; a usage error, already printed: kExitSetup).
std::optional<int> parse_command_line(int argc, char** argv, Options& opt);

std::string mac_str(const Mac& m);
std::optional<Mac> parse_mac(const std::string& s);
// IPv4 address in host byte order.
std::optional<uint32_t> parse_ip(const std::string& s);
// The value of key `key` in a comma-separated devargs list, if present.
std::optional<std::string> devarg(const std::string& args, const std::string& key);

} // namespace vhost_traffic
