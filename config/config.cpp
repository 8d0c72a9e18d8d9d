// Parsing and validation of vhostd.yaml (schema: docs/configuration.md).
//
// The loader walks the YAML tree once, section by section. Every check that
// fails records one line, `FILE:LINE:COLUMN: FIELD: what is wrong (value)`,
// and the walk goes on, so one run of `vhostd --check-config` reports every
// problem in the file, not just the first. Lines are sorted by position.
//
// yaml-cpp is lenient in ways a config file must not be, so the loader does
// not trust its conversions:
//  - duplicate keys are kept silently (operator[] finds the first): we detect
//    them;
//  - as<uint32_t>() says only "bad conversion", knows no field's range, and
//    reads "0660" in whatever base the stream picks: integers are parsed
//    here, decimal digits only;
//  - a mis-indented line can start a second document, which Load() drops:
//    we load all documents and refuse more than one.
// Only `Node::Type()`, `Tag()`, `Scalar()`, `Mark()` and iteration are used;
// none of them throws on a node of the type we checked.

#include "config/config.hpp"
#include "config/yaml_reader.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <limits>
#include <map>
#include <span>
#include <system_error>

#include "protocol/unique_fd.hpp"

namespace vhostd::config {
namespace {

using namespace yaml;

bool is_port_name_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
}


constexpr std::array<Choice<IdleMode>, 2> kIdleModes{{
    {"poll", IdleMode::Poll},
    {"adaptive", IdleMode::Adaptive},
}};
constexpr std::array<Choice<RxStores>, 3> kRxStores{{
    {"auto", RxStores::Auto},
    {"ordinary", RxStores::Ordinary},
    {"streaming", RxStores::Streaming},
}};
constexpr std::array<Choice<SwitchMode>, 2> kSwitchModes{{
    {"l2", SwitchMode::L2},
    {"xconnect", SwitchMode::Xconnect},
}};
constexpr std::array<Choice<PortType>, 2> kPortTypes{{
    {"vhost-user", PortType::VhostUser},
    {"dpdk", PortType::Dpdk},
}};
constexpr std::array<Choice<SocketMode>, 2> kSocketModes{{
    {"server", SocketMode::Server},
    {"client", SocketMode::Client},
}};
constexpr std::array<std::string_view, 7> kLogLevels{
    "trace", "debug", "info", "warn", "error", "critical", "off",
};


// The keys each mapping may hold.
constexpr std::array<std::string_view, 9> kTopKeys{
    "dpdk", "dataplane", "switch", "xconnect", "ports", "control", "socket", "log", "metrics",
};
constexpr std::array<std::string_view, 1> kMetricsKeys{"listen"};
constexpr std::array<std::string_view, 1> kDpdkKeys{"eal_args"};
constexpr std::array<std::string_view, 4> kDataplaneKeys{"pmd_cores", "burst", "idle", "rx_stores"};
constexpr std::array<std::string_view, 3> kIdleKeys{"mode", "poll_us", "max_sleep_us"};
constexpr std::array<std::string_view, 2> kSwitchKeys{"mode", "mac_aging_s"};
constexpr std::array<std::string_view, 7> kPortKeys{
    "name", "type", "path", "mode", "queues", "mtu", "devargs",
};
constexpr std::array<std::string_view, 4> kVhostUserOnlyKeys{"path", "mode", "queues", "mtu"};
constexpr std::array<std::string_view, 1> kControlKeys{"socket"};
constexpr std::array<std::string_view, 3> kSocketKeys{"mode", "group", "allowed_uids"};
constexpr std::array<std::string_view, 1> kLogKeys{"level"};

// The schema: walks vhostd.yaml section by section with the typed readers.
class Loader : public Reader {
public:
    explicit Loader(std::string source) : Reader(std::move(source)) { config_.source = source_; }

    Result<Config> load(std::string_view text);
    Result<PortConfig> load_port(std::string_view text);

private:
    std::optional<std::string> read_socket_path(const Value& value, const std::string& field);

    // --- sections ----------------------------------------------------------
    void parse_root(const Node& root);
    void parse_dpdk(const Value& value);
    void parse_dataplane(const Value& value);
    void parse_idle(const Value& value, const std::string& path);
    void parse_switch(const Value& value);
    void parse_ports(const Value& value);
    void parse_port(const Value& value, const std::string& path);
    void parse_xconnect(const std::optional<Entry>& entry);
    void parse_control(const Value& value);
    void parse_socket(const Value& value);
    void parse_log(const Value& value);
    void parse_metrics(const Value& value);

    Config config_;

    // Cross-section state.
    std::optional<Value> switch_mode_node_;  // set when switch.mode is in the file
    bool switch_mode_valid_ = true;
    std::map<std::string, int, std::less<>> port_lines_;         // every port name seen -> line
    std::map<std::string, std::string, std::less<>> path_owner_; // socket path -> port name
    std::optional<Value> control_socket_node_;
    std::vector<std::pair<Value, std::string>> port_path_nodes_;  // (path node, its field)
};

std::optional<std::string> Loader::read_socket_path(const Value& value, const std::string& field) {
    auto path = read_string(value, field);
    if (!path) {
        return std::nullopt;
    }
    if (path->empty() || path->front() != '/') {
        fail_value(value, field, "must be an absolute path");
        return std::nullopt;
    }
    if (path->find('\0') != std::string::npos) {
        fail_value(value, field, "must not contain a NUL byte");
        return std::nullopt;
    }
    if (path->back() == '/') {
        fail_value(value, field, "must name a socket file, not a directory");
        return std::nullopt;
    }
    if (path->size() > kMaxSocketPathLen) {
        fail_value(value, field,
                   "is " + std::to_string(path->size()) + " bytes, an AF_UNIX socket path holds at most " +
                       std::to_string(kMaxSocketPathLen));
        return std::nullopt;
    }
    return path;
}

// --- sections --------------------------------------------------------------

void Loader::parse_root(const Node& root) {
    auto top = read_map(root, "", kTopKeys);
    if (!top) {
        return;
    }
    if (auto e = top->get("dpdk")) {
        parse_dpdk(e->value);
    }
    if (auto e = top->get("dataplane")) {
        parse_dataplane(e->value);
    }
    if (auto e = top->get("switch")) {
        parse_switch(e->value);
    }
    if (auto e = top->get("ports")) {
        parse_ports(e->value);
    } else {
        fail(root, "ports", "missing required key: list at least one port");
    }
    // After ports: the pairs name ports.
    parse_xconnect(top->get("xconnect"));
    if (auto e = top->get("control")) {
        parse_control(e->value);
    }
    if (auto e = top->get("socket")) {
        parse_socket(e->value);
    }
    if (auto e = top->get("log")) {
        parse_log(e->value);
    }
    if (auto e = top->get("metrics")) {
        parse_metrics(e->value);
    }

    // The control socket and a server port must not fight over one path.
    auto owner = path_owner_.find(config_.control_socket);
    if (owner != path_owner_.end()) {
        if (control_socket_node_) {
            fail_value(*control_socket_node_, "control.socket",
                       "same path as port '" + owner->second + "'");
        } else {
            for (const auto& [path, field] : port_path_nodes_) {
                if (path.node.Scalar() == config_.control_socket) {
                    fail_value(path, field, "same path as the default control.socket");
                }
            }
        }
    }
}

void Loader::parse_dpdk(const Value& value) {
    auto map = read_map(value, "dpdk", kDpdkKeys);
    if (!map) {
        return;
    }
    if (auto e = map->get("eal_args")) {
        const std::string field = "dpdk.eal_args";
        if (!expect_list(e->value, field)) {
            return;
        }
        std::vector<std::string> args;
        std::size_t i = 0;
        for (const Node& item : e->value.node) {
            if (auto arg = read_string(item, element(field, i))) {
                args.push_back(*arg);
            }
            ++i;
        }
        config_.eal_args = std::move(args);
    }
}

void Loader::parse_dataplane(const Value& value) {
    auto map = read_map(value, "dataplane", kDataplaneKeys);
    if (!map) {
        return;
    }
    if (auto e = map->get("pmd_cores")) {
        const std::string field = "dataplane.pmd_cores";
        if (expect_list(e->value, field)) {
            if (e->value.node.size() == 0) {
                fail(e->value, field, "must list at least one core");
            }
            std::vector<unsigned> cores;
            std::map<uint64_t, std::size_t> seen;  // core -> index
            std::size_t i = 0;
            for (const Node& item : e->value.node) {
                if (auto core = read_uint(item, element(field, i), 0, kMaxCore)) {
                    auto [it, fresh] = seen.emplace(*core, i);
                    if (!fresh) {
                        fail_value(item, element(field, i),
                                   "duplicate core, already listed as " + element(field, it->second));
                    } else {
                        cores.push_back(static_cast<unsigned>(*core));
                    }
                }
                ++i;
            }
            if (!cores.empty()) {
                config_.pmd_cores = std::move(cores);
            }
        }
    }
    if (auto e = map->get("burst")) {
        if (auto v = read_uint(e->value, "dataplane.burst", 1, kMaxBurst)) {
            config_.burst = static_cast<uint32_t>(*v);
        }
    }
    if (auto e = map->get("idle")) {
        parse_idle(e->value, "dataplane.idle");
    }
    if (auto e = map->get("rx_stores")) {
        if (auto v = read_choice(e->value, "dataplane.rx_stores", kRxStores)) {
            config_.rx_stores = *v;
        }
    }
}

void Loader::parse_idle(const Value& value, const std::string& path) {
    auto map = read_map(value, path, kIdleKeys);
    if (!map) {
        return;
    }
    if (auto e = map->get("mode")) {
        if (auto v = read_choice(e->value, child(path, "mode"), kIdleModes)) {
            config_.idle.mode = *v;
        }
    }
    if (auto e = map->get("poll_us")) {
        if (auto v = read_uint(e->value, child(path, "poll_us"), 0, kMaxIdleUs)) {
            config_.idle.poll_us = static_cast<uint32_t>(*v);
        }
    }
    if (auto e = map->get("max_sleep_us")) {
        if (auto v = read_uint(e->value, child(path, "max_sleep_us"), 1, kMaxIdleUs)) {
            config_.idle.max_sleep_us = static_cast<uint32_t>(*v);
        }
    }
}

void Loader::parse_switch(const Value& value) {
    auto map = read_map(value, "switch", kSwitchKeys);
    if (!map) {
        return;
    }
    if (auto e = map->get("mode")) {
        // emplace, never assign: Node::operator= writes through to the node
        // it already refers to.
        switch_mode_node_.emplace(e->value);
        if (auto v = read_choice(e->value, "switch.mode", kSwitchModes)) {
            config_.switch_mode = *v;
        } else {
            switch_mode_valid_ = false;
        }
    }
    if (auto e = map->get("mac_aging_s")) {
        if (auto v = read_uint(e->value, "switch.mac_aging_s", 1, kMaxMacAgingS)) {
            config_.mac_aging_s = static_cast<uint32_t>(*v);
        }
    }
}

void Loader::parse_ports(const Value& value) {
    const Node& node = value.node;
    if (!expect_list(value, "ports")) {
        return;
    }
    if (node.size() == 0) {
        fail(value, "ports", "must list at least one port");
        return;
    }
    std::size_t i = 0;
    for (const Node& item : node) {
        parse_port(item, element("ports", i));
        ++i;
    }
}

void Loader::parse_port(const Value& value, const std::string& path) {
    const Node& node = value.node;
    auto map = read_map(value, path, kPortKeys);
    if (!map) {
        return;
    }
    PortConfig port;
    port.line = line_of(node);

    if (auto e = map->get("name")) {
        const std::string field = child(path, "name");
        if (auto name = read_string(e->value, field)) {
            if (name->empty()) {
                fail(e->value, field, "must not be empty");
            } else if (name->size() > kMaxPortNameLen) {
                fail_value(e->value, field,
                           "longer than " + std::to_string(kMaxPortNameLen) + " characters");
            } else if (!std::all_of(name->begin(), name->end(), is_port_name_char)) {
                fail_value(e->value, field, "may contain only A-Z a-z 0-9 _ . -");
            }
            if (!name->empty()) {
                auto [it, fresh] = port_lines_.emplace(*name, port.line);
                if (!fresh) {
                    fail_value(e->value, field,
                               "duplicate port name, first defined at line " +
                                   std::to_string(it->second));
                }
            }
            port.name = *name;
        }
    } else {
        fail(value, child(path, "name"), "missing required key");
    }

    std::optional<PortType> type;
    if (auto e = map->get("type")) {
        type = read_choice(e->value, child(path, "type"), kPortTypes);
    } else {
        fail(value, child(path, "type"), "missing required key (vhost-user or dpdk)");
    }
    if (!type) {
        // Which other keys are allowed depends on the type; without one,
        // checking them would only produce noise.
        return;
    }
    port.type = *type;

    if (port.type == PortType::VhostUser) {
        if (auto e = map->get("devargs")) {
            fail(e->key, child(path, "devargs"), "not allowed on a vhost-user port (only on type dpdk)");
        }
        if (auto e = map->get("path")) {
            const std::string field = child(path, "path");
            if (auto p = read_socket_path(e->value, field)) {
                auto [it, fresh] = path_owner_.emplace(*p, port.name);
                if (!fresh) {
                    fail_value(e->value, field, "already used by port '" + it->second + "'");
                }
                port_path_nodes_.emplace_back(e->value, field);
                port.path = *p;
            }
        } else {
            fail(value, child(path, "path"), "missing required key for a vhost-user port");
        }
        if (auto e = map->get("mode")) {
            if (auto v = read_choice(e->value, child(path, "mode"), kSocketModes)) {
                port.mode = *v;
            }
        }
        if (auto e = map->get("queues")) {
            if (auto v = read_uint(e->value, child(path, "queues"), 1, kMaxQueues)) {
                port.queues = static_cast<uint32_t>(*v);
            }
        }
        if (auto e = map->get("mtu")) {
            if (auto v = read_uint(e->value, child(path, "mtu"), kMinMtu, kMaxMtu)) {
                port.mtu = static_cast<uint32_t>(*v);
            }
        }
    } else {
        for (std::string_view key : kVhostUserOnlyKeys) {
            if (auto e = map->get(key)) {
                fail(e->key, child(path, key), "not allowed on a dpdk port (only on type vhost-user)");
            }
        }
        if (auto e = map->get("devargs")) {
            const std::string field = child(path, "devargs");
            if (auto v = read_string(e->value, field)) {
                if (v->empty()) {
                    fail(e->value, field, "must not be empty");
                }
                port.devargs = *v;
            }
        } else {
            fail(value, child(path, "devargs"), "missing required key for a dpdk port");
        }
    }
    // A port with errors is kept too: the load fails anyway, and nothing
    // reads the Config of a failed load.
    config_.ports.push_back(std::move(port));
}

void Loader::parse_xconnect(const std::optional<Entry>& entry) {
    const bool wanted = config_.switch_mode == SwitchMode::Xconnect;
    if (!entry) {
        if (wanted && switch_mode_valid_ && switch_mode_node_) {
            fail_value(*switch_mode_node_, "switch.mode",
                       "needs a top-level 'xconnect' list of port pairs");
        }
        return;
    }
    if (!wanted && switch_mode_valid_) {
        fail(entry->key, "xconnect", "only allowed when switch.mode is xconnect (switch.mode is l2)");
        return;
    }
    const Value& list = entry->value;
    if (!expect_list(list, "xconnect")) {
        return;
    }
    if (list.node.size() == 0) {
        fail(list, "xconnect", "must list at least one pair of ports");
        return;
    }
    std::map<std::string, std::string, std::less<>> paired;  // port -> field of its pair
    std::size_t i = 0;
    for (const Node& pair : list.node) {
        const std::string field = element("xconnect", i);
        ++i;
        if (!pair.IsSequence()) {
            fail(pair, field, std::string("expected a pair [port, port], got ") + describe(pair));
            continue;
        }
        if (pair.size() != 2) {
            fail(pair, field,
                 "a pair must name exactly 2 ports, got " + std::to_string(pair.size()));
            continue;
        }
        std::array<std::optional<std::string>, 2> names;
        for (std::size_t j = 0; j < 2; ++j) {
            const Node& item = pair[j];
            const std::string item_field = element(field, j);
            auto name = read_string(item, item_field);
            if (!name) {
                continue;
            }
            if (port_lines_.find(*name) == port_lines_.end()) {
                fail_value(item, item_field, "no port has this name");
                continue;
            }
            // [p, p] is one port reflecting to itself: count it once.
            if (j == 1 && pair[0].IsScalar() && pair[0].Scalar() == *name) {
                names[1] = names[0];
                continue;
            }
            auto [it, fresh] = paired.emplace(*name, field);
            if (!fresh) {
                fail_value(item, item_field, "port is already paired in " + it->second);
                continue;
            }
            names[j] = name;
        }
        if (names[0] && names[1]) {
            config_.xconnect.emplace_back(*names[0], *names[1]);
        }
    }
}

void Loader::parse_control(const Value& value) {
    auto map = read_map(value, "control", kControlKeys);
    if (!map) {
        return;
    }
    if (auto e = map->get("socket")) {
        if (auto p = read_socket_path(e->value, "control.socket")) {
            config_.control_socket = *p;
            control_socket_node_.emplace(e->value);
        }
    }
}

void Loader::parse_socket(const Value& value) {
    auto map = read_map(value, "socket", kSocketKeys);
    if (!map) {
        return;
    }
    if (auto e = map->get("mode")) {
        const std::string field = "socket.mode";
        if (auto text = read_string(e->value, field)) {
            bool octal = text->size() >= 1 && text->size() <= 5 && text->front() == '0' &&
                         std::all_of(text->begin(), text->end(), [](char c) { return c >= '0' && c <= '7'; });
            uint32_t mode = 0;
            if (octal) {
                for (char c : *text) {
                    mode = mode * 8 + static_cast<uint32_t>(c - '0');
                }
            }
            if (!octal) {
                fail_value(e->value, field, "expected an octal mode with a leading 0, like \"0660\"");
            } else if (mode > 0777) {
                fail_value(e->value, field, "out of range, must be 0..0777");
            } else {
                config_.socket.mode = mode;
            }
        }
    }
    if (auto e = map->get("group")) {
        const std::string field = "socket.group";
        if (auto group = read_string(e->value, field)) {
            bool clean = std::none_of(group->begin(), group->end(), [](char c) {
                auto u = static_cast<unsigned char>(c);
                return u <= 0x20 || u == 0x7f || c == ':';
            });
            if (group->empty()) {
                fail(e->value, field, "must not be empty (leave the key out for no group)");
            } else if (!clean) {
                fail_value(e->value, field, "is not a valid group name");
            } else {
                config_.socket.group = *group;
            }
        }
    }
    if (auto e = map->get("allowed_uids")) {
        const std::string field = "socket.allowed_uids";
        if (expect_list(e->value, field)) {
            std::vector<uint32_t> uids;
            std::size_t i = 0;
            for (const Node& item : e->value.node) {
                // (uid_t)-1 means "no user" to chown and friends.
                if (auto uid = read_uint(item, element(field, i), 0,
                                         std::numeric_limits<uint32_t>::max() - 1)) {
                    uids.push_back(static_cast<uint32_t>(*uid));
                }
                ++i;
            }
            config_.socket.allowed_uids = std::move(uids);
        }
    }
}

void Loader::parse_log(const Value& value) {
    auto map = read_map(value, "log", kLogKeys);
    if (!map) {
        return;
    }
    if (auto e = map->get("level")) {
        const std::string field = "log.level";
        if (auto level = read_string(e->value, field)) {
            if (std::find(kLogLevels.begin(), kLogLevels.end(), *level) == kLogLevels.end()) {
                fail_value(e->value, field, "must be one of " + join(kLogLevels));
            } else {
                config_.log_level = *level;
            }
        }
    }
}

// "HOST:PORT" with HOST an IPv4 literal or a bracketed IPv6 literal. No name
// lookup: the answer must not depend on the host (see config.hpp).
void Loader::parse_metrics(const Value& value) {
    auto map = read_map(value, "metrics", kMetricsKeys);
    if (!map) {
        return;
    }
    auto e = map->get("listen");
    if (!e) {
        return;
    }
    const std::string field = "metrics.listen";
    auto text = read_string(e->value, field);
    if (!text) {
        return;
    }
    const std::string form = "expected HOST:PORT with an IP address, like 127.0.0.1:9464 or [::1]:9464";
    const size_t colon = text->rfind(':');
    if (colon == std::string::npos || colon + 1 == text->size()) {
        fail_value(e->value, field, form);
        return;
    }
    MetricsListen listen;
    std::string host = text->substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
        listen.ipv6 = true;
    }
    unsigned char addr[sizeof(in6_addr)];
    if (::inet_pton(listen.ipv6 ? AF_INET6 : AF_INET, host.c_str(), addr) != 1) {
        fail_value(e->value, field,
                   std::string(listen.ipv6 ? "not an IPv6 address" : "not an IPv4 address (IPv6 goes in brackets)") +
                       "; " + form);
        return;
    }
    const std::string port = text->substr(colon + 1);
    uint32_t number = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), number);
    if (ec != std::errc() || end != port.data() + port.size() || number == 0 || number > 65535 ||
        port[0] == '0') {
        fail_value(e->value, field, "port must be 1..65535");
        return;
    }
    listen.host = host;
    listen.port = static_cast<uint16_t>(number);
    config_.metrics = listen;
}

Result<Config> Loader::load(std::string_view text) {
    std::vector<Node> documents;
    try {
        documents = YAML::LoadAll(std::string(text));
    } catch (const YAML::Exception& e) {
        fail(e.mark, "syntax error", shown(e.msg));
    }
    if (problems_.empty()) {
        if (documents.empty() || documents[0].IsNull()) {
            YAML::Mark start;  // line 0, column 0
            fail(start, "ports", "missing required key: the file holds no settings");
        } else if (documents.size() > 1) {
            fail(documents[1], "(top level)",
                 "a second YAML document starts here; the file must hold exactly one "
                 "(often a line indented less than its siblings)");
        } else {
            try {
                parse_root(documents[0]);
            } catch (const YAML::Exception& e) {
                // Not expected: only non-throwing accessors are used above.
                fail(e.mark, "(top level)", "unexpected YAML error: " + shown(e.msg));
            }
        }
    }
    if (problems_.empty()) {
        return std::move(config_);
    }
    return collected_errors();
}

Result<PortConfig> Loader::load_port(std::string_view text) {
    Node document;
    try {
        document = YAML::Load(std::string(text));
        parse_port(document, "port");
    } catch (const YAML::Exception& e) {
        fail(e.mark, "syntax error", shown(e.msg));
    }
    if (problems_.empty() && config_.ports.size() == 1) {
        return std::move(config_.ports.front());
    }
    return collected_errors();
}


std::string errno_text(int err) {
    return std::generic_category().message(err);
}

}  // namespace

const PortConfig* Config::find_port(std::string_view name) const {
    for (const PortConfig& port : ports) {
        if (port.name == name) {
            return &port;
        }
    }
    return nullptr;
}

Result<Config> load_string(std::string_view yaml_text, const std::string& source_name) {
    return Loader(source_name).load(yaml_text);
}

Result<PortConfig> load_port(std::string_view text, const std::string& source_name) {
    return Loader(source_name).load_port(text);
}

Result<Config> load_file(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
    if (!fd) {
        return Error{path + ": cannot open config file: " + errno_text(errno)};
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) {
        return Error{path + ": cannot stat config file: " + errno_text(errno)};
    }
    if (S_ISDIR(st.st_mode)) {
        return Error{path + ": cannot read config file: " + errno_text(EISDIR)};
    }
    // Read to EOF rather than trusting st_size, so pipes and /dev/stdin work;
    // stop one byte past the limit to tell "too large" apart.
    std::string text;
    std::array<char, 16384> buffer;
    for (;;) {
        ssize_t n = ::read(fd.get(), buffer.data(), buffer.size());
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return Error{path + ": cannot read config file: " + errno_text(errno)};
        }
        if (n == 0) {
            break;
        }
        text.append(buffer.data(), static_cast<std::size_t>(n));
        if (text.size() > kMaxFileSize) {
            return Error{path + ": config file is larger than " + std::to_string(kMaxFileSize) +
                         " bytes"};
        }
    }
    return Loader(path).load(text);
}

const char* to_string(IdleMode mode) {
    return word_of(kIdleModes, mode);
}

const char* to_string(RxStores stores) {
    return word_of(kRxStores, stores);
}

const char* to_string(SwitchMode mode) {
    return word_of(kSwitchModes, mode);
}

const char* to_string(PortType type) {
    return word_of(kPortTypes, type);
}

const char* to_string(SocketMode mode) {
    return word_of(kSocketModes, mode);
}

}  // namespace vhostd::config
