// config: the rules of each section (dpdk, dataplane, switch, xconnect, ports,
// control/socket/log, one port on its own, metrics), each accepted at its
// edges and rejected just past them with its FILE:LINE:COLUMN: FIELD: prefix.
// Helpers (load, rejected, accepted, with_ports) are in config_test_support.hpp.

#include "tests/unit/config/config_test_support.hpp"

namespace vhostd::config {
namespace {

using namespace config_testing;

// ---------------------------------------------------------------------------
// dpdk

TEST(ConfigDpdk, EalArgs) {
    auto r = load(with_ports("dpdk: { eal_args: [] }\n"));
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_TRUE(r->eal_args.empty());
    r = load(with_ports("dpdk: {}\n"));
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->eal_args.size(), 4u);  // the default
    r = load(with_ports("dpdk:\n  eal_args:\n    - -l\n    - 0-3\n"));
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->eal_args, (std::vector<std::string>{"-l", "0-3"}));

    EXPECT_TRUE(rejected(with_ports("dpdk: { eal_args: \"--no-huge\" }\n"), "t.yaml:1:19: dpdk.eal_args: ",
                         "expected a list, got a scalar"));
    EXPECT_TRUE(rejected(with_ports("dpdk: { eal_args: [a, {b: c}] }\n"), "t.yaml:1:23: dpdk.eal_args[1]: ",
                         "expected a string, got a mapping"));
    EXPECT_TRUE(rejected(with_ports("dpdk: { eal_args: [a, ~] }\n"), "t.yaml:1:23: dpdk.eal_args[1]: ",
                         "expected a string, got null"));
    EXPECT_TRUE(rejected(with_ports("dpdk: { eal: [] }\n"), "t.yaml:1:9: dpdk.eal: ", "unknown key"));
}

// ---------------------------------------------------------------------------
// dataplane

TEST(ConfigDataplane, Burst) {
    EXPECT_TRUE(accepted(with_ports("dataplane: { burst: 1 }\n")));
    EXPECT_TRUE(accepted(with_ports("dataplane: { burst: 256 }\n")));
    EXPECT_TRUE(rejected(with_ports("dataplane: { burst: 0 }\n"), "t.yaml:1:21: dataplane.burst: ",
                         "out of range, must be 1..256 (0)"));
    EXPECT_TRUE(rejected(with_ports("dataplane: { burst: 257 }\n"), "t.yaml:1:21: dataplane.burst: ", "(257)"));
}

TEST(ConfigDataplane, RxStores) {
    EXPECT_EQ(load(with_ports("")).value().rx_stores, RxStores::Auto);
    for (const auto& [word, want] : {std::pair{"auto", RxStores::Auto}, std::pair{"ordinary", RxStores::Ordinary},
                                     std::pair{"streaming", RxStores::Streaming}}) {
        auto r = load(with_ports(std::string("dataplane: { rx_stores: ") + word + " }\n"));
        ASSERT_TRUE(r.ok()) << r.error().message;
        EXPECT_EQ(r->rx_stores, want) << word;
        EXPECT_STREQ(to_string(r->rx_stores), word);
    }
    EXPECT_TRUE(rejected(with_ports("dataplane: { rx_stores: nt }\n"), "t.yaml:1:25: dataplane.rx_stores: ",
                         "must be one of auto, ordinary, streaming (nt)"));
}

TEST(ConfigDataplane, PmdCores) {
    auto r = load(with_ports("dataplane: { pmd_cores: [0, 1023, 5] }\n"));
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->pmd_cores, (std::vector<unsigned>{0, 1023, 5}));

    EXPECT_TRUE(rejected(with_ports("dataplane: { pmd_cores: [] }\n"), "t.yaml:1:25: dataplane.pmd_cores: ",
                         "at least one core"));
    EXPECT_TRUE(rejected(with_ports("dataplane: { pmd_cores: [1, 2, 1] }\n"), "t.yaml:1:32: dataplane.pmd_cores[2]: ",
                         "duplicate core, already listed as dataplane.pmd_cores[0] (1)"));
    EXPECT_TRUE(rejected(with_ports("dataplane: { pmd_cores: [1024] }\n"), "t.yaml:1:26: dataplane.pmd_cores[0]: ",
                         "must be 0..1023 (1024)"));
    EXPECT_TRUE(rejected(with_ports("dataplane: { pmd_cores: [1, -2] }\n"), "t.yaml:1:29: dataplane.pmd_cores[1]: ",
                         "negative"));
    EXPECT_TRUE(rejected(with_ports("dataplane: { pmd_cores: 1 }\n"), "t.yaml:1:25: dataplane.pmd_cores: ",
                         "expected a list"));
}

TEST(ConfigDataplane, IdleMode) {
    auto r = load(with_ports("dataplane: { idle: { mode: poll } }\n"));
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->idle.mode, IdleMode::Poll);
    r = load(with_ports("dataplane: { idle: { mode: adaptive } }\n"));
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->idle.mode, IdleMode::Adaptive);

    EXPECT_TRUE(rejected(with_ports("dataplane: { idle: { mode: sleepy } }\n"), "t.yaml:1:28: dataplane.idle.mode: ",
                         "must be one of poll, adaptive (sleepy)"));
    EXPECT_TRUE(rejected(with_ports("dataplane: { idle: { mode: Poll } }\n"), "t.yaml:1:28: dataplane.idle.mode: ",
                         "(Poll)"));
    EXPECT_TRUE(rejected(with_ports("dataplane: { idle: poll }\n"), "t.yaml:1:20: dataplane.idle: ",
                         "expected a mapping, got a scalar"));
}

TEST(ConfigDataplane, IdleTimes) {
    EXPECT_TRUE(accepted(with_ports("dataplane: { idle: { poll_us: 0, max_sleep_us: 1 } }\n")));
    EXPECT_TRUE(accepted(with_ports("dataplane: { idle: { poll_us: 10000000, max_sleep_us: 10000000 } }\n")));
    EXPECT_TRUE(rejected(with_ports("dataplane: { idle: { poll_us: 10000001 } }\n"),
                         "t.yaml:1:31: dataplane.idle.poll_us: ", "must be 0..10000000 (10000001)"));
    EXPECT_TRUE(rejected(with_ports("dataplane: { idle: { max_sleep_us: 0 } }\n"),
                         "t.yaml:1:36: dataplane.idle.max_sleep_us: ", "must be 1..10000000 (0)"));
    EXPECT_TRUE(rejected(with_ports("dataplane: { idle: { max_sleep_us: 10000001 } }\n"),
                         "t.yaml:1:36: dataplane.idle.max_sleep_us: ", "(10000001)"));
}

TEST(ConfigDataplane, UnknownKeys) {
    EXPECT_TRUE(rejected(with_ports("dataplane: { bursts: 32 }\n"), "t.yaml:1:14: dataplane.bursts: ",
                         "did you mean 'burst'?"));
    EXPECT_TRUE(rejected(with_ports("dataplane: { idle: { poll: 5 } }\n"), "t.yaml:1:22: dataplane.idle.poll: ",
                         "did you mean 'poll_us'?"));
}

// ---------------------------------------------------------------------------
// switch

TEST(ConfigSwitch, ModeAndAging) {
    EXPECT_TRUE(accepted(with_ports("switch: { mode: l2, mac_aging_s: 1 }\n")));
    EXPECT_TRUE(accepted(with_ports("switch: { mac_aging_s: 86400 }\n")));
    EXPECT_TRUE(rejected(with_ports("switch: { mac_aging_s: 0 }\n"), "t.yaml:1:24: switch.mac_aging_s: ",
                         "must be 1..86400 (0)"));
    EXPECT_TRUE(rejected(with_ports("switch: { mac_aging_s: 86401 }\n"), "t.yaml:1:24: switch.mac_aging_s: ",
                         "(86401)"));
    EXPECT_TRUE(rejected(with_ports("switch: { mode: l3 }\n"), "t.yaml:1:17: switch.mode: ",
                         "must be one of l2, xconnect (l3)"));
    EXPECT_TRUE(rejected(with_ports("switch: { mod: l2 }\n"), "t.yaml:1:11: switch.mod: ", "did you mean 'mode'?"));
}

// ---------------------------------------------------------------------------
// xconnect

constexpr const char* kTwoPorts = R"(ports:
  - { name: a, type: vhost-user, path: /run/a.sock }
  - { name: b, type: vhost-user, path: /run/b.sock }
  - { name: c, type: dpdk, devargs: net_null0 }
)";

std::string xconnect(std::string_view pairs) {
    return std::string("switch: { mode: xconnect }\nxconnect: ") + std::string(pairs) + "\n" + kTwoPorts;
}

TEST(ConfigXconnect, Accepts) {
    auto r = load(xconnect("[[a, c]]"));
    ASSERT_TRUE(r.ok()) << r.error().message;
    ASSERT_EQ(r->xconnect.size(), 1u);
    EXPECT_EQ(r->xconnect[0], (std::pair<std::string, std::string>{"a", "c"}));
    r = load(xconnect("[[a, a], [b, c]]"));  // reflect, and a second pair
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->xconnect.size(), 2u);
    EXPECT_TRUE(accepted(xconnect("\n  - [a, b]\n  - [c, c]")));
}

TEST(ConfigXconnect, RequiredInXconnectMode) {
    EXPECT_TRUE(rejected(std::string("switch: { mode: xconnect }\n") + kTwoPorts, "t.yaml:1:17: switch.mode: ",
                         "needs a top-level 'xconnect' list"));
    EXPECT_TRUE(rejected(xconnect("[]"), "t.yaml:2:11: xconnect: ", "at least one pair"));
}

TEST(ConfigXconnect, ForbiddenInL2Mode) {
    EXPECT_TRUE(rejected(std::string("xconnect: [[a, b]]\n") + kTwoPorts, "t.yaml:1:1: xconnect: ",
                         "only allowed when switch.mode is xconnect"));
    EXPECT_TRUE(rejected(std::string("switch: { mode: l2 }\nxconnect: [[a, b]]\n") + kTwoPorts,
                         "t.yaml:2:1: xconnect: ", "only allowed when switch.mode is xconnect"));
}

TEST(ConfigXconnect, BadSwitchModeDoesNotCascade) {
    auto r = load(std::string("switch: { mode: xconect }\nxconnect: [[a, b]]\n") + kTwoPorts);
    ASSERT_FALSE(r.ok());
    auto lines = lines_of(r.error().message);
    ASSERT_EQ(lines.size(), 1u) << r.error().message;
    EXPECT_EQ(lines[0].rfind("t.yaml:1:17: switch.mode: must be one of l2, xconnect (xconect)", 0), 0u) << lines[0];
}

TEST(ConfigXconnect, Shape) {
    EXPECT_TRUE(rejected(xconnect("{a: b}"), "t.yaml:2:11: xconnect: ", "expected a list, got a mapping"));
    EXPECT_TRUE(rejected(xconnect("[a, b]"), "t.yaml:2:12: xconnect[0]: ", "expected a pair [port, port], got a scalar"));
    EXPECT_TRUE(rejected(xconnect("[[a]]"), "t.yaml:2:12: xconnect[0]: ", "exactly 2 ports, got 1"));
    EXPECT_TRUE(rejected(xconnect("[[a, b], [a, b, c]]"), "t.yaml:2:20: xconnect[1]: ", "exactly 2 ports, got 3"));
    EXPECT_TRUE(rejected(xconnect("[[a, [b]]]"), "t.yaml:2:16: xconnect[0][1]: ", "expected a string, got a list"));
}

TEST(ConfigXconnect, NamesMustBeDefinedAndUsedOnce) {
    EXPECT_TRUE(rejected(xconnect("[[a, z]]"), "t.yaml:2:16: xconnect[0][1]: ", "no port has this name (z)"));
    EXPECT_TRUE(rejected(xconnect("[[a, b], [c, a]]"), "t.yaml:2:24: xconnect[1][1]: ",
                         "port is already paired in xconnect[0] (a)"));
    EXPECT_TRUE(rejected(xconnect("[[a, b], [b, b]]"), "t.yaml:2:21: xconnect[1][0]: ", "already paired"));
    EXPECT_TRUE(rejected(xconnect("[[a, a], [a, b]]"), "t.yaml:2:21: xconnect[1][0]: ", "already paired"));
}

// ---------------------------------------------------------------------------
// ports

TEST(ConfigPorts, ListShape) {
    EXPECT_TRUE(rejected("ports: []\n", "t.yaml:1:8: ports: ", "at least one port"));
    EXPECT_TRUE(rejected("ports:\n", "t.yaml:1:1: ports: ", "expected a list, got null"));
    EXPECT_TRUE(rejected("ports: { name: a }\n", "t.yaml:1:8: ports: ", "expected a list, got a mapping"));
    EXPECT_TRUE(rejected("ports: [vm1]\n", "t.yaml:1:9: ports[0]: ", "expected a mapping, got a scalar"));
}

std::string port(std::string_view body) {
    return "ports:\n  - { " + std::string(body) + " }\n";
}

// Column of `needle` in the single port line written by port(), 1-based.
int col(std::string_view body, std::string_view needle) {
    return static_cast<int>(body.find(needle)) + 7;  // "  - { " is 6 characters
}

::testing::AssertionResult port_rejected(std::string_view body, std::string_view needle, std::string_view field,
                                         std::string_view what) {
    std::string prefix = "t.yaml:2:" + std::to_string(col(body, needle)) + ": ports[0]." + std::string(field) + ": ";
    return rejected(port(body), prefix, what);
}

// A missing key is reported at the start of the port's mapping (the '{').
::testing::AssertionResult port_missing(std::string_view body, std::string_view field, std::string_view what = "") {
    return rejected(port(body), "t.yaml:2:5: ports[0]." + std::string(field) + ": ",
                    "missing required key" + std::string(what.empty() ? "" : " ") + std::string(what));
}

TEST(ConfigPorts, Name) {
    EXPECT_TRUE(accepted(port("name: A-z_0.9, type: dpdk, devargs: x")));
    EXPECT_TRUE(accepted(port("name: " + std::string(32, 'n') + ", type: dpdk, devargs: x")));
    EXPECT_TRUE(accepted(port("name: 42, type: dpdk, devargs: x")));

    std::string long_name = "name: " + std::string(33, 'n') + ", type: dpdk, devargs: x";
    EXPECT_TRUE(port_rejected(long_name, "nnn", "name", "longer than 32 characters"));
    EXPECT_TRUE(port_rejected("name: \"\", type: dpdk, devargs: x", "\"\"", "name", "must not be empty"));
    EXPECT_TRUE(port_rejected("name: a/b, type: dpdk, devargs: x", "a/b", "name",
                              "may contain only A-Z a-z 0-9 _ . - (a/b)"));
    EXPECT_TRUE(port_rejected("name: \"a b\", type: dpdk, devargs: x", "\"a b\"", "name", "may contain only"));
    EXPECT_TRUE(port_rejected("name: [a], type: dpdk, devargs: x", "[a]", "name", "expected a string, got a list"));
    EXPECT_TRUE(port_missing("type: dpdk, devargs: x", "name"));
}

TEST(ConfigPorts, NamesAreUnique) {
    const char* text = R"(ports:
  - { name: a, type: dpdk, devargs: x }
  - { name: a, type: dpdk, devargs: y }
)";
    EXPECT_TRUE(rejected(text, "t.yaml:3:13: ports[1].name: ", "duplicate port name, first defined at line 2 (a)"));
}

TEST(ConfigPorts, Type) {
    EXPECT_TRUE(port_rejected("name: a, type: virtio, path: /a", "virtio", "type", "must be one of vhost-user, dpdk (virtio)"));
    EXPECT_TRUE(port_missing("name: a, path: /a", "type"));
}

TEST(ConfigPorts, VhostUserPath) {
    std::string max_path = "/" + std::string(106, 'p');  // 107 bytes + NUL fills sun_path
    auto r = load(port("name: a, type: vhost-user, path: " + max_path));
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->ports[0].path, max_path);

    std::string too_long = "name: a, type: vhost-user, path: /" + std::string(107, 'p');
    EXPECT_TRUE(port_rejected(too_long, "/ppp", "path", "is 108 bytes, an AF_UNIX socket path holds at most 107"));
    EXPECT_TRUE(port_rejected("name: a, type: vhost-user, path: run/a.sock", "run/", "path",
                              "must be an absolute path (run/a.sock)"));
    EXPECT_TRUE(port_rejected("name: a, type: vhost-user, path: \"\"", "\"\"", "path", "must be an absolute path"));
    EXPECT_TRUE(port_rejected("name: a, type: vhost-user, path: /run/vhostd/", "/run", "path", "not a directory"));
    EXPECT_TRUE(port_rejected("name: a, type: vhost-user, path: \"/a\\0b\"", "\"/a", "path", "NUL byte"));
    EXPECT_TRUE(port_missing("name: a, type: vhost-user", "path", "for a vhost-user port"));
}

TEST(ConfigPorts, VhostUserPathsAreUnique) {
    const char* text = R"(ports:
  - { name: a, type: vhost-user, path: /run/x.sock }
  - { name: b, type: vhost-user, path: /run/x.sock, mode: client }
)";
    EXPECT_TRUE(rejected(text, "t.yaml:3:40: ports[1].path: ", "already used by port 'a' (/run/x.sock)"));
}

TEST(ConfigPorts, VhostUserMode) {
    auto r = load(port("name: a, type: vhost-user, path: /a, mode: client"));
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->ports[0].mode, SocketMode::Client);
    r = load(port("name: a, type: vhost-user, path: /a, mode: server"));
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->ports[0].mode, SocketMode::Server);
    EXPECT_TRUE(port_rejected("name: a, type: vhost-user, path: /a, mode: listen", "listen", "mode",
                              "must be one of server, client (listen)"));
}

TEST(ConfigPorts, VhostUserQueues) {
    EXPECT_TRUE(accepted(port("name: a, type: vhost-user, path: /a, queues: 1")));
    auto r = load(port("name: a, type: vhost-user, path: /a, queues: 16"));
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->ports[0].queues, 16u);
    EXPECT_TRUE(port_rejected("name: a, type: vhost-user, path: /a, queues: 0", "0", "queues", "must be 1..16 (0)"));
    EXPECT_TRUE(port_rejected("name: a, type: vhost-user, path: /a, queues: 17", "17", "queues", "must be 1..16 (17)"));
    EXPECT_TRUE(port_rejected("name: a, type: vhost-user, path: /a, queues: -1", "-1", "queues", "negative"));
    EXPECT_TRUE(port_rejected("name: a, type: vhost-user, path: /a, queues: two", "two", "queues", "(two)"));
}

TEST(ConfigPorts, VhostUserMtu) {
    auto r = load(port("name: a, type: vhost-user, path: /a, mtu: 68"));
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->ports[0].mtu, 68u);
    EXPECT_TRUE(accepted(port("name: a, type: vhost-user, path: /a, mtu: 65535")));
    EXPECT_TRUE(port_rejected("name: a, type: vhost-user, path: /a, mtu: 67", "67", "mtu", "must be 68..65535 (67)"));
    EXPECT_TRUE(port_rejected("name: a, type: vhost-user, path: /a, mtu: 65536", "65536", "mtu", "(65536)"));
}

TEST(ConfigPorts, VhostUserForbidsDevargs) {
    EXPECT_TRUE(port_rejected("name: a, type: vhost-user, path: /a, devargs: x", "devargs", "devargs",
                              "not allowed on a vhost-user port"));
}

TEST(ConfigPorts, Dpdk) {
    EXPECT_TRUE(port_missing("name: a, type: dpdk", "devargs", "for a dpdk port"));
    EXPECT_TRUE(port_rejected("name: a, type: dpdk, devargs: \"\"", "\"\"", "devargs", "must not be empty"));
    EXPECT_TRUE(port_rejected("name: a, type: dpdk, devargs: [x]", "[x]", "devargs", "expected a string"));
    for (const char* key : {"path: /a", "mode: server", "queues: 1", "mtu: 1500"}) {
        SCOPED_TRACE(key);
        std::string body = std::string("name: a, type: dpdk, devargs: x, ") + key;
        std::string field(key, std::string_view(key).find(':'));
        EXPECT_TRUE(port_rejected(body, field + ":", field, "not allowed on a dpdk port"));
    }
}

TEST(ConfigPorts, UnknownKey) {
    EXPECT_TRUE(port_rejected("name: a, type: vhost-user, path: /a, queue: 2", "queue", "queue",
                              "did you mean 'queues'?"));
    EXPECT_TRUE(port_rejected("name: a, type: vhost-user, path: /a, kind: x", "kind", "kind", "unknown key"));
}

TEST(ConfigPorts, PortsWithErrorsDoNotCascadeIntoXconnect) {
    const char* text = R"(switch: { mode: xconnect }
xconnect: [[a, a]]
ports:
  - { name: a, type: vhost-user, path: relative }
)";
    auto r = load(text);
    ASSERT_FALSE(r.ok());
    auto lines = lines_of(r.error().message);
    ASSERT_EQ(lines.size(), 1u) << r.error().message;
    EXPECT_EQ(lines[0].rfind("t.yaml:4:40: ports[0].path: ", 0), 0u) << lines[0];
}

// ---------------------------------------------------------------------------
// control, socket, log

TEST(ConfigControl, Socket) {
    auto r = load(with_ports("control: { socket: /tmp/c.sock }\n"));
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->control_socket, "/tmp/c.sock");
    EXPECT_TRUE(rejected(with_ports("control: { socket: c.sock }\n"), "t.yaml:1:20: control.socket: ",
                         "must be an absolute path (c.sock)"));
    EXPECT_TRUE(rejected(with_ports("control: { socket: /" + std::string(107, 'c') + " }\n"),
                         "t.yaml:1:20: control.socket: ", "is 108 bytes"));
    EXPECT_TRUE(rejected(with_ports("control: { sock: /a }\n"), "t.yaml:1:12: control.sock: ",
                         "did you mean 'socket'?"));
}

// ---------------------------------------------------------------------------
// one port on its own (vhostctl port add)

TEST(ConfigPortAlone, AcceptsJsonAndYaml) {
    auto r = load_port(R"({"name":"vm3","type":"vhost-user","path":"/run/vhostd/vm3.sock","queues":2,"mtu":9000})",
                       "port add");
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->name, "vm3");
    EXPECT_EQ(r->path, "/run/vhostd/vm3.sock");
    EXPECT_EQ(r->queues, 2u);
    EXPECT_EQ(r->mtu, 9000u);
    EXPECT_EQ(r->mode, SocketMode::Server);
    r = load_port("{ name: up1, type: dpdk, devargs: \"net_null0\" }", "port add");
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->type, PortType::Dpdk);
    EXPECT_EQ(r->devargs, "net_null0");
}

TEST(ConfigPortAlone, SameRulesAsInAFile) {
    auto r = load_port(R"({"name":"vm/3","type":"vhost-user","path":"rel.sock","queues":99})", "port add");
    ASSERT_FALSE(r.ok());
    const auto lines = lines_of(r.error().message);
    ASSERT_EQ(lines.size(), 3u) << r.error().message;
    EXPECT_EQ(lines[0], "port add:1:9: port.name: may contain only A-Z a-z 0-9 _ . - (vm/3)");
    EXPECT_EQ(lines[1].rfind("port add:1:43: port.path: must be an absolute path", 0), 0u) << lines[1];
    EXPECT_EQ(lines[2].rfind("port add:1:63: port.queues: out of range, must be 1..16", 0), 0u) << lines[2];
    auto bad = [](std::string_view text, std::string_view want) {
        auto res = load_port(text, "port add");
        return !res.ok() && res.error().message.find(want) != std::string::npos;
    };
    EXPECT_TRUE(bad(R"({"name":"a","type":"vhost-user","path":"/a.sock","queues":"2"})",
                    "port.queues: expected an integer, got a quoted string"));
    EXPECT_TRUE(bad(R"({"name":"a","type":"dpdk","devargs":"x","mtu":1500})",
                    "port.mtu: not allowed on a dpdk port"));
    EXPECT_TRUE(bad(R"({"name":"a","type":"vhost-user"})", "port.path: missing required key"));
    EXPECT_TRUE(bad(R"({"name":"a","type":"tap"})", "port.type: must be one of"));
    EXPECT_TRUE(bad(R"({"name":"a","type":"vhost-user","path":"/a","colour":1})", "port.colour: unknown key"));
    EXPECT_TRUE(bad("[1]", "port: expected a mapping"));
    EXPECT_TRUE(bad("{", "syntax error"));
}

// ---------------------------------------------------------------------------
// metrics

TEST(ConfigMetrics, AbsentMeansOff) {
    auto r = load(kPorts);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_FALSE(r->metrics.has_value());
}

TEST(ConfigMetrics, ListenIPv4AndIPv6) {
    auto r = load(with_ports("metrics: { listen: \"127.0.0.1:9464\" }\n"));
    ASSERT_TRUE(r.ok()) << r.error().message;
    ASSERT_TRUE(r->metrics.has_value());
    EXPECT_EQ(r->metrics->host, "127.0.0.1");
    EXPECT_EQ(r->metrics->port, 9464);
    EXPECT_FALSE(r->metrics->ipv6);
    r = load(with_ports("metrics:\n  listen: \"[::1]:65535\"\n"));
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->metrics->host, "::1");
    EXPECT_EQ(r->metrics->port, 65535);
    EXPECT_TRUE(r->metrics->ipv6);
    EXPECT_TRUE(accepted(with_ports("metrics: { listen: 0.0.0.0:1 }\n")));
}

TEST(ConfigMetrics, ListenRejected) {
    const std::string at = "t.yaml:1:20: metrics.listen: ";
    EXPECT_TRUE(rejected(with_ports("metrics: { listen: localhost:9464 }\n"), at,
                         "not an IPv4 address (IPv6 goes in brackets)"));
    EXPECT_TRUE(rejected(with_ports("metrics: { listen: \"::1:9464\" }\n"), at, "not an IPv4 address"));
    EXPECT_TRUE(rejected(with_ports("metrics: { listen: \"[1.2.3.4]:9464\" }\n"), at, "not an IPv6 address"));
    EXPECT_TRUE(rejected(with_ports("metrics: { listen: 127.0.0.1 }\n"), at, "expected HOST:PORT"));
    EXPECT_TRUE(rejected(with_ports("metrics: { listen: \"127.0.0.1:\" }\n"), at, "expected HOST:PORT"));
    EXPECT_TRUE(rejected(with_ports("metrics: { listen: 127.0.0.1:0 }\n"), at, "port must be 1..65535"));
    EXPECT_TRUE(rejected(with_ports("metrics: { listen: 127.0.0.1:65536 }\n"), at, "port must be 1..65535"));
    EXPECT_TRUE(rejected(with_ports("metrics: { listen: 127.0.0.1:09464 }\n"), at, "port must be 1..65535"));
    EXPECT_TRUE(rejected(with_ports("metrics: { listen: 127.0.0.1:94x }\n"), at, "port must be 1..65535"));
    EXPECT_TRUE(rejected(with_ports("metrics: { listen: [a] }\n"), at, "expected a string, got a list"));
    EXPECT_TRUE(rejected(with_ports("metrics: { listn: x }\n"), "t.yaml:1:12: metrics.listn: ",
                         "did you mean 'listen'?"));
}

TEST(ConfigControl, MustNotShareAPathWithAPort) {
    EXPECT_TRUE(rejected(with_ports("control: { socket: /run/vhostd/vm1.sock }\n"), "t.yaml:1:20: control.socket: ",
                         "same path as port 'vm1'"));
    EXPECT_TRUE(rejected("ports: [{ name: a, type: vhost-user, path: /run/vhostd/control.sock }]\n",
                         "t.yaml:1:44: ports[0].path: ", "same path as the default control.socket"));
}

TEST(ConfigSocket, Mode) {
    auto r = load(with_ports("socket: { mode: \"0600\" }\n"));
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->socket.mode, 0600u);
    r = load(with_ports("socket: { mode: 0777 }\n"));  // unquoted still reads as octal
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->socket.mode, 0777u);
    r = load(with_ports("socket: { mode: \"0\" }\n"));
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->socket.mode, 0u);

    EXPECT_TRUE(rejected(with_ports("socket: { mode: \"660\" }\n"), "t.yaml:1:17: socket.mode: ",
                         "octal mode with a leading 0, like \"0660\" (660)"));
    EXPECT_TRUE(rejected(with_ports("socket: { mode: \"0680\" }\n"), "t.yaml:1:17: socket.mode: ", "(0680)"));
    EXPECT_TRUE(rejected(with_ports("socket: { mode: \"01000\" }\n"), "t.yaml:1:17: socket.mode: ",
                         "out of range, must be 0..0777 (01000)"));
    EXPECT_TRUE(rejected(with_ports("socket: { mode: rw }\n"), "t.yaml:1:17: socket.mode: ", "(rw)"));
    EXPECT_TRUE(rejected(with_ports("socket: { mode: [1] }\n"), "t.yaml:1:17: socket.mode: ", "expected a string"));
}

TEST(ConfigSocket, Group) {
    auto r = load(with_ports("socket: { group: kvm }\n"));
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->socket.group, "kvm");
    EXPECT_TRUE(rejected(with_ports("socket: { group: \"\" }\n"), "t.yaml:1:18: socket.group: ", "must not be empty"));
    EXPECT_TRUE(rejected(with_ports("socket: { group: \"a b\" }\n"), "t.yaml:1:18: socket.group: ",
                         "not a valid group name (a b)"));
    EXPECT_TRUE(rejected(with_ports("socket: { group: [kvm] }\n"), "t.yaml:1:18: socket.group: ", "expected a string"));
}

TEST(ConfigSocket, AllowedUids) {
    auto r = load(with_ports("socket: { allowed_uids: [0, 107, 4294967294] }\n"));
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->socket.allowed_uids, (std::vector<uint32_t>{0, 107, 4294967294u}));
    EXPECT_TRUE(rejected(with_ports("socket: { allowed_uids: [0, -1] }\n"), "t.yaml:1:29: socket.allowed_uids[1]: ",
                         "negative"));
    EXPECT_TRUE(rejected(with_ports("socket: { allowed_uids: [4294967295] }\n"), "t.yaml:1:26: socket.allowed_uids[0]: ",
                         "out of range"));
    EXPECT_TRUE(rejected(with_ports("socket: { allowed_uids: [qemu] }\n"), "t.yaml:1:26: socket.allowed_uids[0]: ",
                         "(qemu)"));
    EXPECT_TRUE(rejected(with_ports("socket: { allowed_uids: 0 }\n"), "t.yaml:1:25: socket.allowed_uids: ",
                         "expected a list"));
    EXPECT_TRUE(rejected(with_ports("socket: { uids: [0] }\n"), "t.yaml:1:11: socket.uids: ", "unknown key"));
}

TEST(ConfigLog, Level) {
    for (const char* level : {"trace", "debug", "info", "warn", "error", "critical", "off"}) {
        SCOPED_TRACE(level);
        auto r = load(with_ports(std::string("log: { level: ") + level + " }\n"));
        ASSERT_TRUE(r.ok()) << r.error().message;
        EXPECT_EQ(r->log_level, level);
    }
    EXPECT_TRUE(rejected(with_ports("log: { level: warning }\n"), "t.yaml:1:15: log.level: ",
                         "must be one of trace, debug, info, warn, error, critical, off (warning)"));
    EXPECT_TRUE(rejected(with_ports("log: { level: INFO }\n"), "t.yaml:1:15: log.level: ", "(INFO)"));
    EXPECT_TRUE(rejected(with_ports("log: { lvl: info }\n"), "t.yaml:1:8: log.lvl: ", "unknown key"));
}

}  // namespace
}  // namespace vhostd::config
