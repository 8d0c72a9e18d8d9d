// vhostd: a vhost-user back-end daemon, a software virtio-net switch.
// main() parses the command line, loads the configuration and runs the
// Daemon (daemon.hpp), the control thread.

#include <cstdio>

#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "config/config.hpp"
#include "daemon/daemon.hpp"

#ifndef VHOSTD_VERSION
#define VHOSTD_VERSION "unknown"
#endif

namespace vhostd::daemon {
namespace {

struct Options {
    std::string config_path;
    std::string check_path;
    std::string log_level;
};

int check_config(const std::string& path) {
    auto cfg = config::load_file(path);
    if (!cfg) {
        std::fprintf(stderr, "%s\n", cfg.error().message.c_str());
        return 1;
    }
    std::printf("%s: ok (%zu ports, switch mode %s)\n", path.c_str(), cfg->ports.size(),
                config::to_string(cfg->switch_mode));
    return 0;
}

} // namespace
} // namespace vhostd::daemon

int main(int argc, char** argv) {
    using namespace vhostd;
    using namespace vhostd::daemon;

    CLI::App app{"vhostd: vhost-user back-end daemon, a software virtio-net switch"};
    Options opt;
    app.add_option("-c,--config", opt.config_path, "configuration file (YAML)");
    app.add_option("--check-config", opt.check_path, "validate a configuration file and exit 0/1");
    app.add_option("-l,--log-level", opt.log_level,
                   "log level: trace, debug, info, warn, error, critical, off (overrides the file)");
    app.set_version_flag("-V,--version", std::string("vhostd ") + VHOSTD_VERSION);
    CLI11_PARSE(app, argc, argv);

    if (!opt.check_path.empty()) {
        return check_config(opt.check_path);
    }
    if (opt.config_path.empty()) {
        std::fprintf(stderr, "vhostd: --config FILE is required (see --help)\n");
        return 1;
    }

    spdlog::set_default_logger(spdlog::stderr_color_mt("vhostd"));
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");

    auto cfg = config::load_file(opt.config_path);
    if (!cfg) {
        spdlog::critical("{}", cfg.error().message);
        return 1;
    }
    const std::string level = opt.log_level.empty() ? cfg->log_level : opt.log_level;
    if (auto s = set_log_level(level); !s) {
        spdlog::critical("{}", s.error().message);
        return 1;
    }

    Daemon daemon(std::move(cfg).value());
    if (!opt.log_level.empty()) {
        daemon.pin_log_level();  // a reload (SIGHUP) keeps the command line's level
    }
    if (auto s = daemon.start(); !s) {
        spdlog::critical("{}", s.error().message);
        return 1;
    }
    if (auto s = daemon.run(); !s) {
        spdlog::critical("{}", s.error().message);
        return 1;
    }
    daemon.shutdown();
    spdlog::info("vhostd stopped");
    return 0;
}
