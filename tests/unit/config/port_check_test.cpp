// config::check_port: the rules of one port added at runtime, with errors
// that name the port, the field and the value.

#include "config/port_check.hpp"

#include <gtest/gtest.h>

#include <string>

namespace vhostd::config {
namespace {

PortConfig vhost(const std::string& name, const std::string& path) {
    PortConfig p;
    p.name = name;
    p.path = path;
    return p;
}

std::string error_of(const PortConfig& p) {
    const auto s = check_port(p);
    return s ? std::string("ok") : s.error().message;
}

TEST(CheckPort, AcceptsValidPorts) {
    EXPECT_EQ(error_of(vhost("vm-1.a_b", "/run/vhostd/vm1.sock")), "ok");
    PortConfig d;
    d.name = "up0";
    d.type = PortType::Dpdk;
    d.devargs = "net_tap0,iface=vt0";
    EXPECT_EQ(error_of(d), "ok");
    auto q = vhost("q", "/tmp/q.sock");
    q.queues = kMaxQueues;
    q.mtu = 9000;
    EXPECT_EQ(error_of(q), "ok");
}

TEST(CheckPort, NamesTheFieldAndValue) {
    EXPECT_EQ(error_of(vhost("", "/tmp/x.sock")), "port (unnamed): name: must not be empty");
    EXPECT_EQ(error_of(vhost("vm/1", "/tmp/x.sock")),
              "port vm/1: name: may contain only A-Z a-z 0-9 _ . - (vm/1)");
    EXPECT_EQ(error_of(vhost(std::string(33, 'n'), "/tmp/x.sock")),
              "port " + std::string(33, 'n') + ": name: longer than 32 characters (" +
                  std::string(33, 'n') + ")");
    EXPECT_EQ(error_of(vhost("a", "x.sock")), "port a: path: must be an absolute path (x.sock)");
    EXPECT_EQ(error_of(vhost("a", "/tmp/")), "port a: path: must name a socket file, not a directory (/tmp/)");
    EXPECT_EQ(error_of(vhost("a", "/" + std::string(107, 'p'))),
              "port a: path: is 108 bytes, an AF_UNIX socket path holds at most 107 (/" +
                  std::string(107, 'p') + ")");
    auto q = vhost("a", "/tmp/a.sock");
    q.queues = 0;
    EXPECT_EQ(error_of(q), "port a: queues: must be 1..16 (0)");
    q.queues = 1;
    q.mtu = 67;
    EXPECT_EQ(error_of(q), "port a: mtu: must be 68..65535 (67)");
    auto v = vhost("a", "/tmp/a.sock");
    v.devargs = "net_null0";
    EXPECT_EQ(error_of(v), "port a: devargs: not allowed on a vhost-user port (only on type dpdk) (net_null0)");
    PortConfig d;
    d.name = "up0";
    d.type = PortType::Dpdk;
    EXPECT_EQ(error_of(d), "port up0: devargs: must not be empty for a dpdk port");
    d.devargs = "net_null0";
    d.path = "/tmp/x.sock";
    EXPECT_EQ(error_of(d), "port up0: path: not allowed on a dpdk port (only on type vhost-user) (/tmp/x.sock)");
}

}  // namespace
}  // namespace vhostd::config
