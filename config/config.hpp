#pragma once
// vhostd.yaml: the schema as plain structs, and the loader that parses and
// validates a file into them.
//
// Loading either yields a Config in which every rule of the schema holds
// (docs/configuration.md), or an Error whose message has one line per problem
// found, each in the form
//
//     FILE:LINE:COLUMN: FIELD: what is wrong (value)
//
// LINE and COLUMN are 1-based and point at the offending key or value; FIELD is
// a path such as `ports[1].queues` or `dataplane.idle.mode`. Nothing here
// touches the system (no group or user lookups, no sockets): `vhostd
// --check-config` gives the same answer on any host.
//
// yaml-cpp is an implementation detail of config.cpp; this header does not
// expose it.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "protocol/result.hpp"

namespace vhostd::config {

// Longest AF_UNIX path that fits sun_path (108 bytes) with its NUL.
inline constexpr std::size_t kMaxSocketPathLen = 107;
inline constexpr std::size_t kMaxPortNameLen = 32;
inline constexpr uint32_t kMaxQueues = 16;
inline constexpr uint32_t kMaxBurst = 256;
inline constexpr unsigned kMaxCore = 1023;
inline constexpr uint32_t kMaxIdleUs = 10'000'000;
inline constexpr uint32_t kMaxMacAgingS = 86'400;
inline constexpr uint32_t kMinMtu = 68;
inline constexpr uint32_t kMaxMtu = 65'535;
// Files larger than this are refused before parsing; a real one is a few KiB.
inline constexpr std::size_t kMaxFileSize = 1024 * 1024;

// What a PMD thread does when it has found no work for `poll_us`.
enum class IdleMode {
    Poll,      // never sleep: lowest latency, one core at 100%
    Adaptive,  // re-enable notifications and wait for a kick (dataplane/idle.hpp)
};

// How a PMD writes the first cache line of each frame it copies into a
// guest's RX buffer (dataplane/store_tuner.hpp).
enum class RxStores {
    Auto,       // measure both kinds while traffic flows, keep the cheaper
    Ordinary,   // ordinary stores only
    Streaming,  // streaming (non-temporal) stores where the frame starts a line
};

enum class SwitchMode {
    L2,        // MAC learning switch
    Xconnect,  // fixed port pairs
};

enum class PortType { VhostUser, Dpdk };

// Which side of the vhost-user socket vhostd takes.
enum class SocketMode {
    Server,  // vhostd creates and listens on `path`; the front-end connects
    Client,  // vhostd connects to `path` and reconnects when it goes away
};

struct IdleConfig {
    IdleMode mode = IdleMode::Adaptive;
    uint32_t poll_us = 200;
    uint32_t max_sleep_us = 1000;
};

struct PortConfig {
    std::string name;
    PortType type = PortType::VhostUser;

    // vhost-user only.
    std::string path;
    SocketMode mode = SocketMode::Server;
    uint32_t queues = 1;          // queue pairs
    std::optional<uint32_t> mtu;  // offered with VIRTIO_NET_F_MTU when set

    // dpdk only: passed to rte_dev_probe / EAL as is.
    std::string devargs;

    int line = 0;  // 1-based line of the port in the file, for runtime errors
};

// Ownership and permissions applied to server-mode vhost-user sockets.
struct SocketPerms {
    uint32_t mode = 0660;
    std::optional<std::string> group;
    std::vector<uint32_t> allowed_uids;  // empty: no peer-uid check
};

// `metrics.listen`: where the Prometheus endpoint listens (TCP).
struct MetricsListen {
    std::string host;   // an IPv4 or IPv6 address literal (without brackets)
    uint16_t port = 0;  // 1..65535
    bool ipv6 = false;
};

struct Config {
    std::string source;  // file path, or the name given to load_string

    std::vector<std::string> eal_args{"--no-huge", "-m", "1024", "--no-pci"};

    std::vector<unsigned> pmd_cores{1};
    uint32_t burst = 32;
    IdleConfig idle;
    RxStores rx_stores = RxStores::Auto;

    SwitchMode switch_mode = SwitchMode::L2;
    uint32_t mac_aging_s = 300;
    // Port-name pairs, only in Xconnect mode; a pair may be (p, p): reflect.
    std::vector<std::pair<std::string, std::string>> xconnect;

    std::vector<PortConfig> ports;  // in file order, never empty

    std::string control_socket = "/run/vhostd/control.sock";
    std::optional<MetricsListen> metrics;  // absent: no metrics endpoint
    SocketPerms socket;
    std::string log_level = "info";

    // The port called `name`, or nullptr. The pointer is valid while `ports`
    // is not modified.
    [[nodiscard]] const PortConfig* find_port(std::string_view name) const;
};

// Reads and validates the file at `path`. Config::source is `path`.
[[nodiscard]] Result<Config> load_file(const std::string& path);

// Validates YAML text; `source_name` stands in for the file name in errors
// and in Config::source.
[[nodiscard]] Result<Config> load_string(std::string_view yaml_text, const std::string& source_name);

// One `ports:` entry on its own (vhostctl port add): `text` is a YAML
// mapping, or JSON (a subset of YAML), checked by the same code and rules as
// a port in a file. Errors read `SOURCE:LINE:COLUMN: port.FIELD: ...`. Rules
// between ports (unique name, path) are for the caller to check against the
// ports that run.
[[nodiscard]] Result<PortConfig> load_port(std::string_view text, const std::string& source_name);

// The spelling used in the YAML file ("adaptive", "xconnect", "vhost-user", ...).
[[nodiscard]] const char* to_string(IdleMode mode);
[[nodiscard]] const char* to_string(RxStores stores);
[[nodiscard]] const char* to_string(SwitchMode mode);
[[nodiscard]] const char* to_string(PortType type);
[[nodiscard]] const char* to_string(SocketMode mode);

}  // namespace vhostd::config
