// vhostctl: the command-line client of vhostd's control socket
// (docs/control.md). One request, one response; human-readable tables by
// default, the daemon's raw JSON response with --json. Exit status 0 on
// success, 1 when the daemon is unreachable or answers with an error, 2 on a
// usage error.

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "tools/vhostctl/table.hpp"

using nlohmann::json;

namespace {

constexpr const char* kDefaultSocket = "/run/vhostd/control.sock";
// A reply of every queue of many ports is well under this.
constexpr size_t kMaxReply = 64u * 1024 * 1024;

struct Failure {
    std::string message;
};

class Connection {
public:
    Connection(const std::string& path, int timeout_ms) : timeout_ms_(timeout_ms) {
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
            throw Failure{"socket path '" + path + "' is empty or too long"};
        }
        std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
        fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd_ < 0) {
            throw Failure{std::string("socket: ") + std::strerror(errno)};
        }
        if (::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
            const int err = errno;
            std::string hint = (err == ENOENT || err == ECONNREFUSED) ? " (is vhostd running?)"
                               : err == EACCES ? " (vhostctl needs root or the socket's group)"
                                               : "";
            throw Failure{"cannot connect to vhostd at " + path + ": " + std::strerror(err) + hint};
        }
    }
    ~Connection() {
        if (fd_ >= 0) {
            ::close(fd_);
        }
    }
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    std::string request(const std::string& line) {
        std::string out = line + "\n";
        size_t done = 0;
        while (done < out.size()) {
            wait(POLLOUT);
            const ssize_t n = ::send(fd_, out.data() + done, out.size() - done, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                throw Failure{std::string("sending the request: ") + std::strerror(errno)};
            }
            done += static_cast<size_t>(n);
        }
        std::string in;
        char buf[65536];
        for (;;) {
            const size_t eol = in.find('\n');
            if (eol != std::string::npos) {
                return in.substr(0, eol);
            }
            if (in.size() > kMaxReply) {
                throw Failure{"reply from vhostd is too long"};
            }
            wait(POLLIN);
            const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                throw Failure{std::string("reading the reply: ") + std::strerror(errno)};
            }
            if (n == 0) {
                throw Failure{"vhostd closed the connection without a reply"};
            }
            in.append(buf, static_cast<size_t>(n));
        }
    }

private:
    void wait(short events) {
        pollfd p{fd_, events, 0};
        for (;;) {
            const int rc = ::poll(&p, 1, timeout_ms_);
            if (rc > 0) {
                return;
            }
            if (rc == 0) {
                throw Failure{"vhostd did not answer within " + std::to_string(timeout_ms_ / 1000) +
                              " s"};
            }
            if (errno != EINTR) {
                throw Failure{std::string("poll: ") + std::strerror(errno)};
            }
        }
    }

    int fd_ = -1;
    int timeout_ms_;
};

std::string num(const json& j) {
    if (j.is_number_unsigned()) {
        return std::to_string(j.get<uint64_t>());
    }
    if (j.is_number_integer()) {
        return std::to_string(j.get<int64_t>());
    }
    if (j.is_null()) {
        return "-";
    }
    return j.dump();
}

std::string str(const json& j) { return j.is_string() ? j.get<std::string>() : num(j); }

std::string join(const json& list, const char* sep) {
    std::string out;
    for (const auto& item : list) {
        out += out.empty() ? "" : sep;
        out += str(item);
    }
    return out.empty() ? "-" : out;
}

// "VIRTIO_NET_F_MRG_RXBUF" -> "MRG_RXBUF": the prefixes only repeat the family.
std::string short_feature(std::string name) {
    for (const char* prefix : {"VHOST_USER_PROTOCOL_F_", "VHOST_USER_F_", "VHOST_F_",
                               "VIRTIO_NET_F_", "VIRTIO_RING_F_", "VIRTIO_F_"}) {
        if (name.rfind(prefix, 0) == 0) {
            return name.substr(std::strlen(prefix));
        }
    }
    return name;
}

std::string features(const json& f) {
    std::string out;
    for (const auto& n : f.value("names", json::array())) {
        out += out.empty() ? "" : " ";
        out += short_feature(n.get<std::string>());
    }
    return out.empty() ? "-" : out;
}

void print_ports(const json& r) {
    vhostctl::Table t({"NAME", "TYPE", "STATE", "SOCKET", "MODE", "PERMS", "QUEUES", "RINGS", "MTU",
                       "MAC"});
    for (const auto& p : r.at("ports")) {
        const bool vhost = p.at("type") == "vhost-user";
        std::string state = str(p.at("state"));
        if (p.value("broken", false)) {
            state += "(broken)";
        }
        t.add({str(p.at("name")), str(p.at("type")), state,
               vhost ? str(p.at("path")) : str(p.at("devargs")),
               vhost ? str(p.at("socket_mode")) : "-",
               vhost ? str(p.at("socket_perms")) : "-", num(p.at("queue_pairs")),
               vhost ? num(p.at("live_rings")) : "-", num(p.at("mtu")), join(p.at("macs"), ",")});
    }
    std::fputs(t.render().c_str(), stdout);
    for (const auto& p : r.at("ports")) {
        if (p.at("type") != "vhost-user") {
            continue;
        }
        std::printf("\n%s features (%s): %s\n", str(p.at("name")).c_str(),
                    str(p.at("features").at("bits")).c_str(), features(p.at("features")).c_str());
        std::printf("%s protocol features (%s): %s\n", str(p.at("name")).c_str(),
                    str(p.at("protocol_features").at("bits")).c_str(),
                    features(p.at("protocol_features")).c_str());
        if (p.value("broken", false)) {
            std::printf("%s broken: %s\n", str(p.at("name")).c_str(),
                        str(p.at("broken_reason")).c_str());
        }
    }
}

void print_pmd(const json& r) {
    vhostctl::Table t({"PMD", "CORE", "STATE", "BUSY%", "BUSY_POLLS", "IDLE_POLLS", "SLEEPS",
                       "WAKEUPS", "TIMEOUTS", "STREAMED", "SOURCES"});
    for (const auto& p : r.at("pmds")) {
        std::string sources;
        for (const auto& s : p.at("sources")) {
            sources += sources.empty() ? "" : ",";
            sources += str(s.at("port")) + "/" + str(s.at("queue"));
        }
        char busy[32];
        std::snprintf(busy, sizeof(busy), "%.1f%%", 100.0 * p.at("busy_share").get<double>());
        t.add({num(p.at("pmd")), num(p.at("core")), str(p.at("state")), busy,
               num(p.at("busy_polls")), num(p.at("idle_polls")), num(p.at("sleeps")),
               num(p.at("wakeups")), num(p.at("timeouts")), num(p.at("streamed_frames")),
               sources.empty() ? "-" : sources});
    }
    std::fputs(t.render().c_str(), stdout);
}

void print_stats(const json& r) {
    vhostctl::Table t({"PORT", "QUEUE", "RX_PACKETS", "RX_BYTES", "TX_PACKETS", "TX_BYTES",
                       "DROP_NO_BUFFER", "DROP_TOO_BIG", "DROP_BROKEN", "DROP_NO_ROUTE", "ERRORS"});
    auto row = [&](const std::string& port, const std::string& queue, const json& c) {
        const json& d = c.at("drops");
        t.add({port, queue, num(c.at("rx_packets")), num(c.at("rx_bytes")), num(c.at("tx_packets")),
               num(c.at("tx_bytes")), num(d.at("no_buffer")), num(d.at("too_big")),
               num(d.at("broken")), num(d.at("no_route")), num(c.at("errors"))});
    };
    for (const auto& p : r.at("ports")) {
        for (const auto& q : p.at("queues")) {
            row(str(p.at("name")), str(q.at("queue")), q);
        }
        row(str(p.at("name")), "total", p.at("total"));
    }
    std::fputs(t.render().c_str(), stdout);
}

void print_fdb(const json& r) {
    vhostctl::Table t({"MAC", "PORT", "AGE_S"});
    for (const auto& e : r.at("entries")) {
        t.add({str(e.at("mac")), str(e.at("port")), num(e.at("age_s"))});
    }
    std::fputs(t.render().c_str(), stdout);
}

} // namespace

int main(int argc, char** argv) {
    CLI::App app{"vhostctl: query and control a running vhostd through its control socket"};
    app.require_subcommand(1, 1);
    // Global options may come after the command too: `vhostctl show ports --json`.
    // Subcommands made below inherit this.
    app.fallthrough();
    std::string socket = kDefaultSocket;
    bool raw_json = false;
    int timeout_s = 10;
    app.add_option("-s,--socket", socket, "vhostd's control socket")->capture_default_str();
    app.add_flag("--json", raw_json, "print the daemon's JSON response instead of a table");
    app.add_option("-t,--timeout", timeout_s, "seconds to wait for vhostd's answer")
        ->check(CLI::Range(1, 3600))
        ->capture_default_str();

    json request;
    std::function<void(const json&)> print = [](const json&) {};

    auto* show = app.add_subcommand("show", "show ports, pmd, stats [PORT] or fdb");
    show->require_subcommand(1, 1);
    show->add_subcommand("ports", "ports: type, socket, connection, negotiated features, queues")
        ->callback([&] {
            request = {{"cmd", "show ports"}};
            print = print_ports;
        });
    show->add_subcommand("pmd", "PMD threads: core, queues polled, busy share, sleeping/polling")
        ->callback([&] {
            request = {{"cmd", "show pmd"}};
            print = print_pmd;
        });
    std::string stats_port;
    auto* show_stats = show->add_subcommand("stats", "per port and queue counters, drops by reason");
    show_stats->add_option("PORT", stats_port, "only this port");
    show_stats->callback([&] {
        request = {{"cmd", "show stats"}};
        if (!stats_port.empty()) {
            request["port"] = stats_port;
        }
        print = print_stats;
    });
    show->add_subcommand("fdb", "the L2 table: MAC, port, age")->callback([&] {
        request = {{"cmd", "show fdb"}};
        print = print_fdb;
    });

    auto* port = app.add_subcommand("port", "add or delete a port at runtime");
    port->require_subcommand(1, 1);
    auto* add = port->add_subcommand("add", "add a port (the keys of a ports: entry in vhostd.yaml)");
    std::string name, type, path, mode, devargs;
    std::optional<uint32_t> queues, mtu;
    add->add_option("NAME", name, "port name")->required();
    add->add_option("--type", type, "vhost-user (default), or dpdk (default with --devargs)");
    add->add_option("--path", path, "vhost-user socket path");
    add->add_option("--mode", mode, "server (default) or client");
    add->add_option("--queues", queues, "queue pairs");
    add->add_option("--mtu", mtu, "MTU offered to the front-end");
    add->add_option("--devargs", devargs, "DPDK device arguments");
    add->callback([&] {
        // The daemon, like the YAML file, wants a type: default to what the
        // other options say.
        json p{{"name", name}, {"type", !type.empty()      ? type
                                        : devargs.empty() ? "vhost-user"
                                                          : "dpdk"}};
        if (!path.empty()) {
            p["path"] = path;
        }
        if (!mode.empty()) {
            p["mode"] = mode;
        }
        if (queues) {
            p["queues"] = *queues;
        }
        if (mtu) {
            p["mtu"] = *mtu;
        }
        if (!devargs.empty()) {
            p["devargs"] = devargs;
        }
        request = {{"cmd", "port add"}, {"port", p}};
        print = [&](const json&) { std::printf("port %s added\n", name.c_str()); };
    });
    std::string del_name;
    auto* del = port->add_subcommand("del", "remove a port");
    del->add_option("NAME", del_name, "port name")->required();
    del->callback([&] {
        request = {{"cmd", "port del"}, {"name", del_name}};
        print = [&](const json&) { std::printf("port %s removed\n", del_name.c_str()); };
    });

    auto* logc = app.add_subcommand("log", "change the daemon's log level");
    logc->require_subcommand(1, 1);
    std::string level;
    auto* log_level = logc->add_subcommand("level", "trace, debug, info, warn, error, critical, off");
    log_level->add_option("LEVEL", level, "the new level")->required();
    log_level->callback([&] {
        request = {{"cmd", "log level"}, {"level", level}};
        print = [&](const json&) { std::printf("log level set to %s\n", level.c_str()); };
    });

    auto* stats = app.add_subcommand("stats", "statistics");
    stats->require_subcommand(1, 1);
    stats->add_subcommand("clear", "reset every port, queue and PMD counter to 0")->callback([&] {
        request = {{"cmd", "stats clear"}};
        print = [](const json&) { std::printf("statistics cleared\n"); };
    });

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int rc = app.exit(e);
        return rc == 0 ? 0 : 2;
    }

    try {
        Connection conn(socket, timeout_s * 1000);
        const std::string line = conn.request(request.dump());
        json resp = json::parse(line, nullptr, false);
        if (resp.is_discarded() || !resp.is_object() || !resp.contains("ok")) {
            throw Failure{"vhostd sent a reply that is not a response object: " + line.substr(0, 200)};
        }
        const bool ok = resp.at("ok").is_boolean() && resp.at("ok").get<bool>();
        if (raw_json) {
            std::printf("%s\n", line.c_str());
        }
        if (!ok) {
            std::fprintf(stderr, "vhostctl: vhostd: %s\n", str(resp.value("error", json("error"))).c_str());
            return 1;
        }
        if (!raw_json) {
            print(resp.value("result", json::object()));
        }
    } catch (const Failure& f) {
        std::fprintf(stderr, "vhostctl: %s\n", f.message.c_str());
        return 1;
    } catch (const json::exception& e) {
        std::fprintf(stderr, "vhostctl: unexpected reply from vhostd: %s\n", e.what());
        return 1;
    }
    return 0;
}
