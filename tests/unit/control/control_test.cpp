// The control socket's commands and the metrics endpoint, rendered from a
// known model: same numbers in JSON and Prometheus text, errors that name
// what was wrong, and the text format's rules (HELP/TYPE, label escaping).

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "daemon/control_commands.hpp"
#include "daemon/metrics_server.hpp"
#include "daemon/metrics_text.hpp"
#include "protocol/wire.hpp"

namespace vhostd::daemon {
namespace {

using json = nlohmann::json;

Model sample_model() {
    Model m;
    m.switch_mode = "l2";
    PortInfo a;
    a.name = "a";
    a.type = "vhost-user";
    a.state = "connected";
    a.path = "/run/vhostd/a.sock";
    a.socket_mode = "server";
    a.socket_perms = 0660;
    a.queue_pairs = 1;
    a.live_rings = 2;
    a.features = decode_features(protocol::bit(protocol::vf::kVersion1) |
                                 protocol::bit(protocol::vf::kNetMrgRxbuf));
    a.macs = {"02:00:00:00:00:00"};
    QueueCounters rx;
    rx.rx_packets = 10;
    rx.rx_bytes = 640;
    rx.drop_no_route = 3;
    QueueCounters tx;
    tx.tx_packets = 7;
    tx.tx_bytes = 448;
    tx.drop_no_buffer = 2;
    a.queues = {QueueInfo{"vring0", tx}, QueueInfo{"vring1", rx}};
    m.ports.push_back(a);
    PortInfo b;
    b.name = "we\"ird\\name";
    b.type = "dpdk";
    b.state = "down";
    b.devargs = "net_tap0";
    b.queues = {QueueInfo{"queue0", {}}};
    m.ports.push_back(b);
    PmdInfo p;
    p.index = 0;
    p.core = 1;
    p.busy_cycles = 25;
    p.idle_cycles = 75;
    p.wakeups = 4;
    p.sources = {{"a", "vring1"}};
    m.pmds.push_back(p);
    m.fdb.push_back(FdbInfo{"02:00:00:00:00:00", "a", 5});
    return m;
}

struct Fixture {
    Model model = sample_model();
    int cleared = 0;
    std::string level;
    ControlActions actions() {
        ControlActions a;
        a.introspect = [this] { return model; };
        a.clear_stats = [this] { ++cleared; };
        a.set_log_level = [this](const std::string& l) -> Status {
            if (l == "bad") {
                return make_error("unknown log level 'bad'");
            }
            level = l;
            return Ok{};
        };
        return a;
    }
    json ask(const std::string& request) {
        return json::parse(handle_control_request(request, actions()));
    }
};

TEST(ControlCommands, ShowStatsPerQueueAndTotal) {
    Fixture f;
    json r = f.ask(R"({"cmd":"show stats","port":"a"})");
    ASSERT_TRUE(r["ok"].get<bool>()) << r;
    ASSERT_EQ(r["result"]["ports"].size(), 1u);
    const json& a = r["result"]["ports"][0];
    EXPECT_EQ(a["queues"][1]["queue"], "vring1");
    EXPECT_EQ(a["queues"][1]["rx_packets"], 10);
    EXPECT_EQ(a["queues"][1]["drops"]["no_route"], 3);
    EXPECT_EQ(a["total"]["rx_packets"], 10);
    EXPECT_EQ(a["total"]["tx_bytes"], 448);
    EXPECT_EQ(a["total"]["drops"]["no_buffer"], 2);
    EXPECT_EQ(a["total"]["drops"]["no_route"], 3);
    EXPECT_EQ(f.ask(R"({"cmd":"show stats"})")["result"]["ports"].size(), 2u);
    json missing = f.ask(R"({"cmd":"show stats","port":"zz"})");
    EXPECT_FALSE(missing["ok"].get<bool>());
    EXPECT_EQ(missing["error"], "no port named 'zz'");
}

TEST(ControlCommands, ShowPortsDecodesFeatures) {
    Fixture f;
    json r = f.ask(R"({"cmd":"show ports"})");
    ASSERT_TRUE(r["ok"].get<bool>()) << r;
    const json& a = r["result"]["ports"][0];
    EXPECT_EQ(a["socket_perms"], "0660");
    EXPECT_EQ(a["features"]["bits"], "0x100008000");
    EXPECT_EQ(a["features"]["names"], json({"VIRTIO_NET_F_MRG_RXBUF", "VIRTIO_F_VERSION_1"}));
    EXPECT_TRUE(a["mtu"].is_null());
    EXPECT_EQ(r["result"]["ports"][1]["devargs"], "net_tap0");
    EXPECT_FALSE(r["result"]["ports"][1].contains("features"));
}

TEST(ControlCommands, FeatureNamesForUnknownBits) {
    FeatureInfo f = decode_features(uint64_t{1} << 50);
    EXPECT_EQ(f.names, std::vector<std::string>{"bit 50"});
    FeatureInfo p = decode_protocol_features(protocol::bit(protocol::pf::kReplyAck));
    EXPECT_EQ(p.names, std::vector<std::string>{"VHOST_USER_PROTOCOL_F_REPLY_ACK"});
}

TEST(ControlCommands, PmdFdbClearAndLogLevel) {
    Fixture f;
    json pmd = f.ask(R"({"cmd":"show pmd"})")["result"]["pmds"][0];
    EXPECT_EQ(pmd["core"], 1);
    EXPECT_EQ(pmd["state"], "polling");
    EXPECT_DOUBLE_EQ(pmd["busy_share"].get<double>(), 0.25);
    EXPECT_EQ(pmd["sources"][0]["queue"], "vring1");
    EXPECT_EQ(f.ask(R"({"cmd":"show fdb"})")["result"]["entries"][0]["age_s"], 5);
    EXPECT_TRUE(f.ask(R"({"cmd":"stats clear"})")["ok"].get<bool>());
    EXPECT_EQ(f.cleared, 1);
    EXPECT_TRUE(f.ask(R"({"cmd":"log level","level":"debug"})")["ok"].get<bool>());
    EXPECT_EQ(f.level, "debug");
    EXPECT_EQ(f.ask(R"({"cmd":"log level","level":"bad"})")["error"], "unknown log level 'bad'");
}

TEST(ControlCommands, ErrorsNameTheProblem) {
    Fixture f;
    EXPECT_NE(f.ask("{nope").value("error", "").find("malformed request"), std::string::npos);
    EXPECT_NE(f.ask("[]").value("error", "").find("must be a JSON object"), std::string::npos);
    EXPECT_EQ(f.ask("{}")["error"], "missing field \"cmd\"");
    EXPECT_EQ(f.ask(R"({"cmd":1})")["error"], "field \"cmd\" must be a string");
    EXPECT_EQ(f.ask(R"({"cmd":"log level","level":2})")["error"], "field \"level\" must be a string");
    EXPECT_EQ(f.ask(R"({"cmd":"fly"})")["error"].get<std::string>().rfind("unknown command 'fly'", 0), 0u);
    EXPECT_EQ(f.ask(R"({"cmd":"port del","name":"a"})")["error"], "port del is not available in this build");
    // Invalid UTF-8 in an answer is replaced, not thrown.
    f.model.fdb[0].port = "\xff";
    EXPECT_TRUE(f.ask(R"({"cmd":"show fdb"})")["ok"].get<bool>());
}

TEST(MetricsText, FamiliesSamplesAndEscaping) {
    const std::string text = render_metrics(sample_model());
    EXPECT_NE(text.find("# HELP vhostd_port_rx_packets_total "), std::string::npos);
    EXPECT_NE(text.find("# TYPE vhostd_port_rx_packets_total counter\n"), std::string::npos);
    EXPECT_NE(text.find("vhostd_port_rx_packets_total{port=\"a\",queue=\"vring1\"} 10\n"), std::string::npos);
    EXPECT_NE(text.find("vhostd_port_drops_total{port=\"a\",queue=\"vring1\",reason=\"no_route\"} 3\n"),
              std::string::npos);
    EXPECT_NE(text.find("vhostd_port_drops_total{port=\"a\",queue=\"vring0\",reason=\"no_buffer\"} 2\n"),
              std::string::npos);
    EXPECT_NE(text.find("vhostd_port_up{port=\"a\",type=\"vhost-user\",state=\"connected\"} 1\n"),
              std::string::npos);
    EXPECT_NE(text.find("vhostd_port_rx_packets_total{port=\"we\\\"ird\\\\name\",queue=\"queue0\"} 0\n"),
              std::string::npos);
    EXPECT_NE(text.find("vhostd_pmd_wakeups_total{pmd=\"0\",core=\"1\"} 4\n"), std::string::npos);
    EXPECT_NE(text.find("vhostd_fdb_entries 1\n"), std::string::npos);
    // Every family's HELP comes right before its TYPE, and before its samples.
    size_t pos = 0;
    while ((pos = text.find("# HELP ", pos)) != std::string::npos) {
        const size_t eol = text.find('\n', pos);
        const std::string name = text.substr(pos + 7, text.find(' ', pos + 7) - pos - 7);
        EXPECT_EQ(text.compare(eol + 1, 7 + name.size() + 1, "# TYPE " + name + " "), 0) << name;
        pos = eol;
    }
    EXPECT_EQ(escape_label_value("a\nb"), "a\\nb");
}

TEST(MetricsHttp, StatusCodes) {
    auto model = [] { return sample_model(); };
    EXPECT_EQ(http_response("GET /metrics HTTP/1.0\r\n\r\n", model).rfind("HTTP/1.0 200 OK\r\n", 0), 0u);
    const std::string ok = http_response("GET /metrics?x HTTP/1.1\r\nHost: a\r\n\r\n", model);
    EXPECT_NE(ok.find("Content-Type: text/plain; version=0.0.4"), std::string::npos);
    const size_t body = ok.find("\r\n\r\n") + 4;
    EXPECT_NE(ok.find("Content-Length: " + std::to_string(ok.size() - body) + "\r\n"), std::string::npos);
    EXPECT_EQ(http_response("GET / HTTP/1.0\r\n\r\n", model).rfind("HTTP/1.0 404 ", 0), 0u);
    EXPECT_EQ(http_response("PUT /metrics HTTP/1.0\r\n\r\n", model).rfind("HTTP/1.0 405 ", 0), 0u);
    EXPECT_EQ(http_response("GET /metrics\r\n\r\n", model).rfind("HTTP/1.0 400 ", 0), 0u);
    EXPECT_EQ(http_response("\r\n\r\n", model).rfind("HTTP/1.0 400 ", 0), 0u);
}

} // namespace
} // namespace vhostd::daemon
