// config::load_string / load_file: defaults, the full schema, the shipped files,
// document-level errors, integers.
// Helpers (load, rejected, accepted, with_ports) are in config_test_support.hpp.

#include "tests/unit/config/config_test_support.hpp"

namespace vhostd::config {
namespace {

using namespace config_testing;

// ---------------------------------------------------------------------------
// Accepting: defaults, the full schema, helpers.

TEST(ConfigLoad, MinimalFileGetsEveryDefault) {
    auto r = load(kPorts);
    ASSERT_TRUE(r.ok()) << r.error().message;
    const Config& c = *r;
    EXPECT_EQ(c.source, kSource);
    EXPECT_EQ(c.eal_args, (std::vector<std::string>{"--no-huge", "-m", "1024", "--no-pci"}));
    EXPECT_EQ(c.pmd_cores, (std::vector<unsigned>{1}));
    EXPECT_EQ(c.burst, 32u);
    EXPECT_EQ(c.idle.mode, IdleMode::Adaptive);
    EXPECT_EQ(c.idle.poll_us, 200u);
    EXPECT_EQ(c.idle.max_sleep_us, 1000u);
    EXPECT_EQ(c.switch_mode, SwitchMode::L2);
    EXPECT_EQ(c.mac_aging_s, 300u);
    EXPECT_TRUE(c.xconnect.empty());
    EXPECT_EQ(c.control_socket, "/run/vhostd/control.sock");
    EXPECT_EQ(c.socket.mode, 0660u);
    EXPECT_FALSE(c.socket.group.has_value());
    EXPECT_TRUE(c.socket.allowed_uids.empty());
    EXPECT_EQ(c.log_level, "info");
    ASSERT_EQ(c.ports.size(), 1u);
    const PortConfig& p = c.ports[0];
    EXPECT_EQ(p.name, "vm1");
    EXPECT_EQ(p.type, PortType::VhostUser);
    EXPECT_EQ(p.path, "/run/vhostd/vm1.sock");
    EXPECT_EQ(p.mode, SocketMode::Server);
    EXPECT_EQ(p.queues, 1u);
    EXPECT_FALSE(p.mtu.has_value());
    EXPECT_TRUE(p.devargs.empty());
    EXPECT_EQ(p.line, 2);
}

TEST(ConfigLoad, FullSchemaIsParsed) {
    const char* text = R"(dpdk:      { eal_args: ["--no-huge", "-m", "2048", "--no-pci", "-l", "0-3"] }
dataplane: { pmd_cores: [2, 3], burst: 64, idle: { mode: poll, poll_us: 0, max_sleep_us: 50 } }
switch:    { mode: xconnect, mac_aging_s: 60 }
xconnect:  [ [vm1, vm2], [up0, up0] ]
ports:
  - { name: vm1, type: vhost-user, path: /run/vhostd/vm1.sock, mode: server, queues: 4, mtu: 9000 }
  - { name: vm2, type: vhost-user, path: /run/vhostd/vm2.sock, mode: client, queues: 1 }
  - { name: up0, type: dpdk, devargs: "net_tap0,iface=vtap0" }
control:   { socket: /tmp/ctl.sock }
socket:    { mode: "0600", group: kvm, allowed_uids: [0, 107] }
log:       { level: debug }
)";
    auto r = load(text);
    ASSERT_TRUE(r.ok()) << r.error().message;
    const Config& c = *r;
    EXPECT_EQ(c.eal_args, (std::vector<std::string>{"--no-huge", "-m", "2048", "--no-pci", "-l", "0-3"}));
    EXPECT_EQ(c.pmd_cores, (std::vector<unsigned>{2, 3}));
    EXPECT_EQ(c.burst, 64u);
    EXPECT_EQ(c.idle.mode, IdleMode::Poll);
    EXPECT_EQ(c.idle.poll_us, 0u);
    EXPECT_EQ(c.idle.max_sleep_us, 50u);
    EXPECT_EQ(c.switch_mode, SwitchMode::Xconnect);
    EXPECT_EQ(c.mac_aging_s, 60u);
    using Pair = std::pair<std::string, std::string>;
    EXPECT_EQ(c.xconnect, (std::vector<Pair>{{"vm1", "vm2"}, {"up0", "up0"}}));
    ASSERT_EQ(c.ports.size(), 3u);
    EXPECT_EQ(c.ports[0].queues, 4u);
    EXPECT_EQ(c.ports[0].mtu, 9000u);
    EXPECT_EQ(c.ports[0].line, 6);
    EXPECT_EQ(c.ports[1].mode, SocketMode::Client);
    EXPECT_FALSE(c.ports[1].mtu.has_value());
    EXPECT_EQ(c.ports[1].line, 7);
    EXPECT_EQ(c.ports[2].type, PortType::Dpdk);
    EXPECT_EQ(c.ports[2].devargs, "net_tap0,iface=vtap0");
    EXPECT_TRUE(c.ports[2].path.empty());
    EXPECT_EQ(c.ports[2].line, 8);
    EXPECT_EQ(c.control_socket, "/tmp/ctl.sock");
    EXPECT_EQ(c.socket.mode, 0600u);
    EXPECT_EQ(c.socket.group, "kvm");
    EXPECT_EQ(c.socket.allowed_uids, (std::vector<uint32_t>{0, 107}));
    EXPECT_EQ(c.log_level, "debug");
}

TEST(ConfigLoad, BlockStyleAndPortLines) {
    const char* text = R"(# comment
ports:
  - name: a
    type: vhost-user
    path: /run/a.sock

  - name: b
    type: dpdk
    devargs: net_null0
)";
    auto r = load(text);
    ASSERT_TRUE(r.ok()) << r.error().message;
    ASSERT_EQ(r->ports.size(), 2u);
    EXPECT_EQ(r->ports[0].line, 3);
    EXPECT_EQ(r->ports[1].line, 7);
}

TEST(ConfigLoad, FindPort) {
    auto r = load("ports:\n  - { name: a, type: vhost-user, path: /a }\n  - { name: b, type: dpdk, devargs: x }\n");
    ASSERT_TRUE(r.ok()) << r.error().message;
    const PortConfig* b = r->find_port("b");
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(b->type, PortType::Dpdk);
    EXPECT_EQ(r->find_port("a")->path, "/a");
    EXPECT_EQ(r->find_port("c"), nullptr);
    EXPECT_EQ(r->find_port(""), nullptr);
}

TEST(ConfigLoad, ToString) {
    EXPECT_STREQ(to_string(IdleMode::Poll), "poll");
    EXPECT_STREQ(to_string(IdleMode::Adaptive), "adaptive");
    EXPECT_STREQ(to_string(SwitchMode::L2), "l2");
    EXPECT_STREQ(to_string(SwitchMode::Xconnect), "xconnect");
    EXPECT_STREQ(to_string(PortType::VhostUser), "vhost-user");
    EXPECT_STREQ(to_string(PortType::Dpdk), "dpdk");
    EXPECT_STREQ(to_string(SocketMode::Server), "server");
    EXPECT_STREQ(to_string(SocketMode::Client), "client");
}

TEST(ConfigLoad, ExplicitDocumentMarkersAndIntTag) {
    EXPECT_TRUE(accepted(std::string("---\n") + "dataplane: { burst: !!int 16 }\n" + kPorts + "...\n"));
}

// ---------------------------------------------------------------------------
// Files: load_file, and the files shipped in config/.

std::vector<fs::path> shipped_files() {
    std::vector<fs::path> files;
    const fs::path root = fs::path(VHOSTD_SOURCE_DIR) / "config";
    for (const fs::path& dir : {root, root / "examples"}) {
        for (const auto& entry : fs::directory_iterator(dir)) {
            if (entry.is_regular_file() && entry.path().extension() == ".yaml") {
                files.push_back(entry.path());
            }
        }
    }
    std::sort(files.begin(), files.end());
    return files;
}

TEST(ConfigFiles, EveryShippedFileLoads) {
    auto files = shipped_files();
    EXPECT_GE(files.size(), 3u);
    for (const fs::path& file : files) {
        auto r = load_file(file.string());
        EXPECT_TRUE(r.ok()) << r.error().message;
        if (r.ok()) {
            EXPECT_EQ(r->source, file.string());
        }
    }
}

TEST(ConfigFiles, DefaultFileIsTheWorkingDefault) {
    auto r = load_file(std::string(VHOSTD_SOURCE_DIR) + "/config/vhostd.yaml");
    ASSERT_TRUE(r.ok()) << r.error().message;
    const Config& c = *r;
    EXPECT_EQ(c.switch_mode, SwitchMode::L2);
    EXPECT_TRUE(c.xconnect.empty());
    ASSERT_EQ(c.ports.size(), 2u);
    EXPECT_EQ(c.ports[0].name, "vm1");
    EXPECT_EQ(c.ports[1].name, "vm2");
    for (const PortConfig& p : c.ports) {
        EXPECT_EQ(p.type, PortType::VhostUser);
        EXPECT_EQ(p.mode, SocketMode::Server);
        EXPECT_EQ(p.path.rfind("/run/vhostd/", 0), 0u) << p.path;
    }
    EXPECT_EQ(c.control_socket, "/run/vhostd/control.sock");
    EXPECT_EQ(c.idle.mode, IdleMode::Adaptive);
    EXPECT_EQ(c.pmd_cores, (std::vector<unsigned>{1}));
    EXPECT_EQ(c.socket.mode, 0660u);
    EXPECT_FALSE(c.socket.group.has_value());  // kvm may not exist on the host
    EXPECT_EQ(c.log_level, "info");
}

TEST(ConfigFiles, ReflectExamplePairsVm0WithItself) {
    auto r = load_file(std::string(VHOSTD_SOURCE_DIR) + "/config/examples/xconnect-reflect.yaml");
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->switch_mode, SwitchMode::Xconnect);
    ASSERT_EQ(r->ports.size(), 1u);
    EXPECT_EQ(r->ports[0].name, "vm0");
    EXPECT_EQ(r->ports[0].mode, SocketMode::Server);
    ASSERT_EQ(r->xconnect.size(), 1u);
    EXPECT_EQ(r->xconnect[0], (std::pair<std::string, std::string>{"vm0", "vm0"}));
}

TEST(ConfigFiles, SomeExampleHasADpdkPort) {
    bool found = false;
    for (const fs::path& file : shipped_files()) {
        auto r = load_file(file.string());
        if (r.ok()) {
            for (const PortConfig& p : r->ports) {
                found = found || p.type == PortType::Dpdk;
            }
        }
    }
    EXPECT_TRUE(found);
}

class TempFile {
public:
    explicit TempFile(std::string_view contents) {
        path_ = fs::temp_directory_path() /
                ("vhostd-config-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++) + ".yaml");
        std::ofstream(path_) << contents;
    }
    ~TempFile() {
        std::error_code ec;
        fs::remove(path_, ec);
    }
    TempFile(const TempFile&) = delete;
    TempFile& operator=(const TempFile&) = delete;
    [[nodiscard]] std::string path() const { return path_.string(); }

private:
    static inline int counter_ = 0;
    fs::path path_;
};

TEST(ConfigFiles, MissingFileNamesPathAndReason) {
    const std::string path = "/nonexistent/vhostd-test/vhostd.yaml";
    auto r = load_file(path);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find(path), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("No such file or directory"), std::string::npos) << r.error().message;
}

TEST(ConfigFiles, DirectoryIsRefused) {
    auto r = load_file(fs::temp_directory_path().string());
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("Is a directory"), std::string::npos) << r.error().message;
}

TEST(ConfigFiles, ErrorsInAFileNameTheFile) {
    TempFile file(std::string("dataplane: { burst: 0 }\n") + kPorts);
    auto r = load_file(file.path());
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message.rfind(file.path() + ":1:21: dataplane.burst: ", 0), 0u) << r.error().message;
}

TEST(ConfigFiles, GoodTempFileLoads) {
    TempFile file(kPorts);
    auto r = load_file(file.path());
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->source, file.path());
}

TEST(ConfigFiles, OversizedFileIsRefused) {
    std::string text = kPorts;
    text += "# " + std::string(kMaxFileSize, 'x') + "\n";
    TempFile file(text);
    auto r = load_file(file.path());
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("larger than"), std::string::npos) << r.error().message;
}

// ---------------------------------------------------------------------------
// Document-level errors.

TEST(ConfigDocument, SyntaxErrorHasParserPosition) {
    EXPECT_TRUE(rejected("ports: [1\nlog: x\n", "t.yaml:2:", "syntax error: "));
    EXPECT_TRUE(rejected("a: b: c\n", "t.yaml:1:5: syntax error: ", "illegal map value"));
}

TEST(ConfigDocument, EmptyFileNeedsPorts) {
    EXPECT_TRUE(rejected("", "t.yaml:1:1: ports: ", "missing required key"));
    EXPECT_TRUE(rejected("# nothing\n", "t.yaml:1:1: ports: ", "missing required key"));
    EXPECT_TRUE(rejected("---\n", "t.yaml:1:1: ports: ", "missing required key"));
}

TEST(ConfigDocument, MissingPorts) {
    EXPECT_TRUE(rejected("log: { level: info }\n", "t.yaml:1:1: ports: ", "missing required key"));
}

TEST(ConfigDocument, RootMustBeAMapping) {
    EXPECT_TRUE(rejected("- a\n- b\n", "t.yaml:1:1: (top level): ", "expected a mapping, got a list"));
    EXPECT_TRUE(rejected("hello\n", "t.yaml:1:1: (top level): ", "expected a mapping, got a scalar"));
}

TEST(ConfigDocument, SecondDocumentIsRefused) {
    EXPECT_TRUE(rejected(std::string(kPorts) + "---\nlog: { level: info }\n", "t.yaml:4:1: (top level): ",
                         "second YAML document"));
    // yaml-cpp reads a dedented line as a new document; that must not be dropped.
    EXPECT_TRUE(rejected("  ports: []\n log: x\n", "t.yaml:2:2: (top level): ", "second YAML document"));
}

TEST(ConfigDocument, UnknownTopLevelKeyWithSuggestion) {
    EXPECT_TRUE(rejected(with_ports("dataplan: {}\n"), "t.yaml:1:1: dataplan: ",
                         "unknown key, did you mean 'dataplane'?"));
    EXPECT_TRUE(rejected(with_ports("frobnicate: 1\n"), "t.yaml:1:1: frobnicate: ", "unknown key (allowed here:"));
}

TEST(ConfigDocument, DuplicateKey) {
    EXPECT_TRUE(rejected(std::string(kPorts) + "log: { level: info }\nlog: { level: debug }\n", "t.yaml:4:1: log: ",
                         "duplicate key, first given at line 3"));
    EXPECT_TRUE(rejected(with_ports("dataplane: { burst: 8, burst: 9 }\n"), "t.yaml:1:24: dataplane.burst: ",
                         "duplicate key"));
}

TEST(ConfigDocument, NonScalarKey) {
    EXPECT_TRUE(rejected(with_ports("? [a, b]\n: 1\n"), "t.yaml:1:3: (top level): ", "keys must be plain words"));
}

TEST(ConfigDocument, EverySectionMustBeAMapping) {
    for (const char* section : {"dpdk", "dataplane", "switch", "control", "socket", "log", "metrics"}) {
        SCOPED_TRACE(section);
        std::string key = section;
        EXPECT_TRUE(rejected(with_ports(key + ": [1]\n"), "t.yaml:1:" + std::to_string(key.size() + 3) + ": " + key + ": ",
                             "expected a mapping, got a list"));
        EXPECT_TRUE(rejected(with_ports(key + ":\n"), "t.yaml:1:1: " + key + ": ", "expected a mapping, got null"));
        EXPECT_TRUE(rejected(with_ports(key + ": x\n"), "t.yaml:1:", key + ": expected a mapping, got a scalar"));
    }
}

TEST(ConfigDocument, EmptyValueIsReportedAtItsKey) {
    // yaml-cpp places an empty value at the next token (here line 3); the
    // error must point at the key instead.
    EXPECT_TRUE(rejected(with_ports("dataplane:\n  burst:\n  pmd_cores: [1]\n"), "t.yaml:2:3: dataplane.burst: ",
                         "expected an integer 1..256, got null"));
    EXPECT_TRUE(rejected(with_ports("log:\n  level:\n"), "t.yaml:2:3: log.level: ", "expected a string, got null"));
}

TEST(ConfigDocument, ErrorsAreAllReportedSortedOneLineEach) {
    const char* text = R"(log: { level: loud }
dataplane: { burst: 0 }
ports:
  - { name: "bad name", type: vhost-user, path: rel }
)";
    auto r = load(text);
    ASSERT_FALSE(r.ok());
    auto lines = lines_of(r.error().message);
    ASSERT_EQ(lines.size(), 4u) << r.error().message;
    EXPECT_EQ(lines[0].rfind("t.yaml:1:15: log.level: ", 0), 0u) << lines[0];
    EXPECT_EQ(lines[1].rfind("t.yaml:2:21: dataplane.burst: ", 0), 0u) << lines[1];
    EXPECT_EQ(lines[2].rfind("t.yaml:4:13: ports[0].name: ", 0), 0u) << lines[2];
    EXPECT_EQ(lines[3].rfind("t.yaml:4:49: ports[0].path: ", 0), 0u) << lines[3];
}

TEST(ConfigDocument, ValuesWithNewlinesStayOnOneLine) {
    auto r = load("log:\n  level: |\n    info\n    debug\n" + std::string(kPorts));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(lines_of(r.error().message).size(), 1u) << r.error().message;
    EXPECT_NE(r.error().message.find("(info\\x0adebug\\x0a)"), std::string::npos) << r.error().message;
}

TEST(ConfigDocument, ErrorCountIsBounded) {
    std::string text = "ports:\n";
    for (int i = 0; i < 50; ++i) {
        text += "  - { name: p" + std::to_string(i) + ", type: vhost-user, path: relative }\n";
    }
    auto r = load(text);
    ASSERT_FALSE(r.ok());
    auto lines = lines_of(r.error().message);
    EXPECT_LE(lines.size(), 21u);
    EXPECT_NE(lines.back().find("more error(s) not shown"), std::string::npos) << lines.back();
}

// ---------------------------------------------------------------------------
// Integers (shared by every integer field; burst stands in for them).

TEST(ConfigIntegers, RejectsNegativeNonNumericAndOutOfRange) {
    EXPECT_TRUE(rejected(with_ports("dataplane: { burst: -1 }\n"), "t.yaml:1:21: dataplane.burst: ",
                         "must not be negative, must be 1..256 (-1)"));
    EXPECT_TRUE(rejected(with_ports("dataplane: { burst: lots }\n"), "t.yaml:1:21: dataplane.burst: ",
                         "expected a decimal integer 1..256 (lots)"));
    EXPECT_TRUE(rejected(with_ports("dataplane: { burst: 1.5 }\n"), "t.yaml:1:21: dataplane.burst: ", "(1.5)"));
    EXPECT_TRUE(rejected(with_ports("dataplane: { burst: 0x20 }\n"), "t.yaml:1:21: dataplane.burst: ", "(0x20)"));
    EXPECT_TRUE(rejected(with_ports("dataplane: { burst: true }\n"), "t.yaml:1:21: dataplane.burst: ", "(true)"));
    EXPECT_TRUE(rejected(with_ports("dataplane: { burst: 99999999999999999999999 }\n"),
                         "t.yaml:1:21: dataplane.burst: ", "out of range, must be 1..256"));
    EXPECT_TRUE(rejected(with_ports("dataplane: { burst: 032 }\n"), "t.yaml:1:21: dataplane.burst: ",
                         "leading zero"));
    EXPECT_TRUE(rejected(with_ports("dataplane: { burst: \"32\" }\n"), "t.yaml:1:21: dataplane.burst: ",
                         "got a quoted string (32)"));
    EXPECT_TRUE(rejected(with_ports("dataplane: { burst: !!str 32 }\n"), "t.yaml:1:21: dataplane.burst: ",
                         "tagged"));
    EXPECT_TRUE(rejected(with_ports("dataplane: { burst: [32] }\n"), "t.yaml:1:21: dataplane.burst: ",
                         "got a list"));
    EXPECT_TRUE(rejected(with_ports("dataplane: { burst: }\n"), "t.yaml:1:14: dataplane.burst: ", "expected an integer"));
}

}  // namespace
}  // namespace vhostd::config
