// config::diff: what a reload changes between two loaded files.

#include "config/config_diff.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace vhostd::config {
namespace {

Config load(const std::string& yaml) {
    auto cfg = load_string(yaml, "test.yaml");
    EXPECT_TRUE(cfg) << (cfg ? "" : cfg.error().message);
    return cfg ? std::move(cfg).value() : Config{};
}

std::vector<std::string> names(const std::vector<PortConfig>& ports) {
    std::vector<std::string> out;
    for (const auto& p : ports) {
        out.push_back(p.name);
    }
    return out;
}

const char* kBase = R"(
dataplane: { pmd_cores: [1] }
switch: { mode: xconnect }
xconnect: [ [a, b] ]
ports:
  - { name: a, type: vhost-user, path: /run/a.sock }
  - { name: b, type: vhost-user, path: /run/b.sock }
  - { name: c, type: vhost-user, path: /run/c.sock, queues: 2 }
  - { name: d, type: dpdk, devargs: "net_null0" }
)";

TEST(ConfigDiff, SameFileNoDifference) {
    const Config a = load(kBase);
    Config b = load(std::string("\n\n") + kBase);  // other lines, same ports
    EXPECT_TRUE(diff(a, b).empty());
}

TEST(ConfigDiff, PortsRemovedAddedAndChanged) {
    const Config running = load(kBase);
    const Config next = load(R"(
dataplane: { pmd_cores: [1] }
switch: { mode: xconnect }
xconnect: [ [a, e] ]
ports:
  - { name: e, type: vhost-user, path: /run/e.sock }
  - { name: a, type: vhost-user, path: /run/a.sock }
  - { name: c, type: vhost-user, path: /run/c.sock, queues: 4 }
  - { name: d, type: dpdk, devargs: "net_null1" }
)");
    const ConfigDiff d = diff(running, next);
    EXPECT_EQ(d.removed, (std::vector<std::string>{"b", "c", "d"}));
    EXPECT_EQ(d.changed, (std::vector<std::string>{"c", "d"}));
    EXPECT_EQ(names(d.added), (std::vector<std::string>{"e", "c", "d"})) << "file order";
    EXPECT_EQ(d.added[1].queues, 4u);
    EXPECT_TRUE(d.xconnect_changed);
    EXPECT_FALSE(d.log_level_changed);
    EXPECT_TRUE(d.restart_only.empty());
    EXPECT_FALSE(d.empty());
}

TEST(ConfigDiff, EverySettingOfAPortCounts) {
    const Config running = load(kBase);
    const std::string port_c = "path: /run/c.sock, queues: 2";
    for (const char* changed : {"path: /run/c.sock, queues: 2, mode: client",
                                "path: /run/c.sock, queues: 2, mtu: 9000",
                                "path: /run/c.sock, queues: 1", "path: /run/c2.sock, queues: 2"}) {
        std::string yaml = kBase;
        yaml.replace(yaml.find(port_c), port_c.size(), changed);
        const ConfigDiff d = diff(running, load(yaml));
        EXPECT_EQ(d.changed, std::vector<std::string>{"c"}) << changed;
        EXPECT_EQ(d.removed, std::vector<std::string>{"c"}) << changed;
        EXPECT_EQ(names(d.added), std::vector<std::string>{"c"}) << changed;
    }
}

TEST(ConfigDiff, RestartOnlyKeysNamedWithOldAndNewValues) {
    const Config running = load(kBase);
    const Config next = load(R"(
dpdk: { eal_args: ["--no-huge"] }
dataplane: { pmd_cores: [0, 1], burst: 64, idle: { mode: poll }, rx_stores: ordinary }
switch: { mode: xconnect, mac_aging_s: 60 }
xconnect: [ [a, b] ]
ports:
  - { name: a, type: vhost-user, path: /run/a.sock }
  - { name: b, type: vhost-user, path: /run/b.sock }
  - { name: c, type: vhost-user, path: /run/c.sock, queues: 2 }
  - { name: d, type: dpdk, devargs: "net_null0" }
control: { socket: /run/other.sock }
socket: { mode: "0600", group: kvm, allowed_uids: [0] }
log: { level: debug }
)");
    const ConfigDiff d = diff(running, next);
    EXPECT_TRUE(d.removed.empty());
    EXPECT_TRUE(d.added.empty());
    EXPECT_FALSE(d.xconnect_changed);
    EXPECT_TRUE(d.log_level_changed);
    EXPECT_EQ(d.restart_only,
              (std::vector<std::string>{
                  R"(dpdk.eal_args: ["--no-huge", "-m", "1024", "--no-pci"] -> ["--no-huge"])",
                  "dataplane.pmd_cores: [1] -> [0, 1]",
                  "dataplane.burst: 32 -> 64",
                  "dataplane.idle: {mode: adaptive, poll_us: 200, max_sleep_us: 1000} -> {mode: poll, "
                  "poll_us: 200, max_sleep_us: 1000}",
                  "dataplane.rx_stores: auto -> ordinary",
                  "switch.mac_aging_s: 300 -> 60",
                  "control.socket: /run/vhostd/control.sock -> /run/other.sock",
                  "socket.mode: 0660 -> 0600",
                  "socket.group: (none) -> kvm",
                  "socket.allowed_uids: [] -> [0]",
              }));
}

TEST(ConfigDiff, SwitchModeNeedsARestart) {
    const Config running = load(kBase);
    const Config next = load(R"(
ports:
  - { name: a, type: vhost-user, path: /run/a.sock }
)");
    const ConfigDiff d = diff(running, next);
    ASSERT_FALSE(d.restart_only.empty());
    EXPECT_EQ(d.restart_only[0], "switch.mode: xconnect -> l2");
    EXPECT_EQ(d.removed, (std::vector<std::string>{"b", "c", "d"}));
    EXPECT_TRUE(d.xconnect_changed);
}

}  // namespace
}  // namespace vhostd::config
