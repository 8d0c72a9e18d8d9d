// vhostd: a vhost-user back-end daemon, a software virtio-net switch.
// The control thread runs here: configuration, the io_uring event loop with
// every vhost-user socket, signals, and an orderly shutdown.

#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "config/config.hpp"
#include "daemon/event_loop.hpp"
#include "daemon/kick_watcher.hpp"
#include "daemon/vhost_endpoint.hpp"
#include "dataplane/dataplane.hpp"

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

Status set_log_level(const std::string& level) {
    const auto parsed = spdlog::level::from_str(level);
    // from_str maps anything unknown to "off": only accept "off" when asked for.
    if (parsed == spdlog::level::off && level != "off") {
        return make_error(fmt::format("unknown log level '{}'", level));
    }
    spdlog::set_level(parsed);
    return Ok{};
}

class Daemon {
public:
    explicit Daemon(config::Config cfg) : cfg_(std::move(cfg)) {}

    Status start() {
        auto loop = EventLoop::create();
        if (!loop) {
            return std::move(loop).error();
        }
        loop_ = std::move(loop).value();
        if (auto s = setup_signals(); !s) {
            return s;
        }
        auto dp = dataplane::Dataplane::create(cfg_);
        if (!dp) {
            return std::move(dp).error();
        }
        dataplane_ = std::move(dp).value();
        kicks_ = std::make_unique<KickWatcher>(*loop_, *dataplane_);
        dataplane_->set_publish_observer(
            [this](const dataplane::Snapshot& snap) { kicks_->update(snap); });
        for (const auto& port : cfg_.ports) {
            if (port.type != config::PortType::VhostUser) {
                continue;
            }
            auto endpoint = std::make_shared<VhostEndpoint>(*loop_, port, cfg_.socket,
                                                            *dataplane_->vhost_port(port.name));
            if (auto s = endpoint->start(); !s) {
                return s;
            }
            endpoints_.push_back(std::move(endpoint));
        }
        if (auto s = dataplane_->start(); !s) {
            return s;
        }
        arm_health_timer();
        spdlog::info("vhostd {} running: {} port(s), switch mode {}, {} PMD(s)", VHOSTD_VERSION,
                     cfg_.ports.size(), config::to_string(cfg_.switch_mode),
                     cfg_.pmd_cores.size());
        return Ok{};
    }

    Status run() { return loop_->run(); }

    // Stop rings, close connections and sockets, unlink socket files; then
    // cancel whatever the event loop still has in flight.
    void shutdown() {
        for (auto& endpoint : endpoints_) {
            endpoint->shutdown();
        }
        endpoints_.clear();
        if (dataplane_) {
            dataplane_->set_publish_observer(nullptr);
        }
        kicks_.reset();
        loop_.reset(); // drops in-flight operations and the connections they held
        if (dataplane_) {
            dataplane_->stop();
            dataplane_->log_stats();
            dataplane_.reset();
        }
    }

    ~Daemon() { shutdown(); }

private:
    Status setup_signals() {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGHUP);
        sigaddset(&set, SIGUSR1);
        if (::sigprocmask(SIG_BLOCK, &set, nullptr) != 0) {
            return make_error(fmt::format("sigprocmask: {}", std::strerror(errno)));
        }
        ::signal(SIGPIPE, SIG_IGN);
        signal_fd_.reset(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
        if (!signal_fd_) {
            return make_error(fmt::format("signalfd: {}", std::strerror(errno)));
        }
        arm_signal();
        return Ok{};
    }

    void arm_signal() {
        loop_->read(signal_fd_.get(), &siginfo_, sizeof(siginfo_), [this](int result) {
            if (result != static_cast<int>(sizeof(siginfo_))) {
                arm_signal();
                return;
            }
            switch (siginfo_.ssi_signo) {
            case SIGTERM:
            case SIGINT:
                spdlog::info("signal {}: shutting down", strsignal(static_cast<int>(siginfo_.ssi_signo)));
                loop_->stop();
                return;
            case SIGHUP:
                spdlog::warn("SIGHUP: configuration reload is not implemented yet; ignored");
                break;
            case SIGUSR1:
                dataplane_->log_stats();
                break;
            default:
                break;
            }
            arm_signal();
        });
    }

    // Once a second: log ports that a guest broke since the last look.
    void arm_health_timer() {
        loop_->after(std::chrono::seconds(1), [this](int) {
            dataplane_->report_health();
            arm_health_timer();
        });
    }

    config::Config cfg_;
    std::unique_ptr<dataplane::Dataplane> dataplane_;
    std::unique_ptr<KickWatcher> kicks_;
    std::unique_ptr<EventLoop> loop_;
    std::vector<std::shared_ptr<VhostEndpoint>> endpoints_;
    UniqueFd signal_fd_;
    signalfd_siginfo siginfo_{};
};

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
