#include "dataplane/dataplane.hpp"

#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <filesystem>

#include <rte_eal.h>

#include <spdlog/spdlog.h>

#include <rte_mbuf.h>

#include "dataplane/dpdk_env.hpp"
#include "dataplane/dpdk_port.hpp"
#include "dataplane/pmd.hpp"

namespace vhostd::dataplane {

namespace {
// Enough for a switch with a few thousand MACs behind it; the table never grows.
constexpr size_t kL2Capacity = 16384;
// EAL arguments: the configured ones, plus what a daemon that runs its own
// PMD threads needs unless the operator said otherwise. Without an lcore
// list EAL would pin the control thread and start an idle worker thread on
// every CPU; our PMDs register themselves (rte_thread_register) instead.
// Without a file prefix two vhostd instances would share /var/run/dpdk/rte:
// each gets its own (--in-memory would be nicer but --no-huge forbids it),
// and the runtime folder is removed at exit.
std::vector<std::string> eal_arguments(const std::vector<std::string>& configured,
                                       bool& own_prefix) {
    auto has = [&](std::initializer_list<const char*> names) {
        for (const auto& arg : configured) {
            for (const char* name : names) {
                if (arg == name || arg.rfind(std::string(name) + "=", 0) == 0) {
                    return true;
                }
            }
        }
        return false;
    };
    std::vector<std::string> args = configured;
    if (!has({"-l", "-c", "--lcores"})) {
        const unsigned cpus = std::max(1u, std::thread::hardware_concurrency());
        args.push_back(fmt::format("--lcores=0@(0-{})", cpus - 1));
    }
    own_prefix = false;
    if (!has({"--file-prefix", "--in-memory"})) {
        args.push_back(fmt::format("--file-prefix=vhostd-{}", ::getpid()));
        own_prefix = true;
    }
    return args;
}

} // namespace

Dataplane::Dataplane(config::Config cfg)
    : cfg_(std::move(cfg)), l2_(kL2Capacity, cfg_.mac_aging_s), qsbr_(cfg_.pmd_cores.size()),
      pmd_count_(cfg_.pmd_cores.size()), controls_(std::make_unique<PmdControl[]>(pmd_count_)) {}

Dataplane::~Dataplane() {
    stop();
    // Ports before the EAL; the snapshot (which points at ports) first of all.
    snapshot_.store(nullptr, std::memory_order_release);
    owned_.reset();
    ports_.clear();
    dpdk_env_.reset();
    if (!eal_runtime_dir_.empty()) {
        std::error_code ec;
        std::filesystem::remove_all(eal_runtime_dir_, ec);
    }
}

Result<std::unique_ptr<Dataplane>> Dataplane::create(const config::Config& cfg) {
    std::unique_ptr<Dataplane> dp(new Dataplane(cfg));
    bool need_dpdk = false;
    for (const auto& port : cfg.ports) {
        need_dpdk |= port.type == config::PortType::Dpdk;
    }
    if (need_dpdk) {
        bool own_prefix = false;
        auto env = DpdkEnv::init(eal_arguments(cfg.eal_args, own_prefix));
        if (!env) {
            return make_error(fmt::format("{}: dpdk.eal_args: {}", cfg.source, env.error().message));
        }
        dp->dpdk_env_ = std::move(env).value();
        if (own_prefix) {
            dp->eal_runtime_dir_ = rte_eal_get_runtime_dir();
        }
    }
    if (cfg.ports.size() > 0xfffe) {
        return make_error("too many ports");
    }
    for (const auto& port : cfg.ports) {
        const auto id = static_cast<PortId>(dp->ports_.size());
        auto rec = std::make_unique<PortRecord>();
        rec->name = port.name;
        if (port.type == config::PortType::VhostUser) {
            rec->kind = PortKind::VhostUser;
            rec->vhost = std::make_unique<VhostUserPort>(*dp, id, port.name, port.queues);
        } else {
            rec->kind = PortKind::Dpdk;
            const auto queues = static_cast<uint16_t>(cfg.pmd_cores.size());
            auto opened = DpdkPort::open(*dp->dpdk_env_, port.name, port.devargs, queues);
            if (!opened) {
                return make_error(fmt::format("{}:{}: port {}: {}", cfg.source, port.line,
                                              port.name, opened.error().message));
            }
            rec->dpdk = std::move(opened).value();
            rec->dpdk_queues = std::max(rec->dpdk->rx_queues(), rec->dpdk->tx_queues());
            rec->dpdk_slots = std::make_unique<RingSlot[]>(rec->dpdk_queues);
            spdlog::info("port {}: DPDK device {} up, {} queue(s)", port.name, port.devargs,
                         rec->dpdk->rx_queues());
        }
        dp->ports_.push_back(std::move(rec));
    }
    dp->publish();
    return dp;
}

VhostUserPort* Dataplane::vhost_port(const std::string& name) noexcept {
    for (auto& rec : ports_) {
        if (rec->name == name && rec->vhost) {
            return rec->vhost.get();
        }
    }
    return nullptr;
}

void Dataplane::publish() {
    auto snap = std::make_unique<Snapshot>();
    snap->mode = cfg_.switch_mode;
    snap->l2 = &l2_;
    snap->burst = std::min<uint32_t>(cfg_.burst, kMaxBurst);
    snap->shared_delivery = cfg_.pmd_cores.size() > 1;
    snap->idle = cfg_.idle;
    snap->sources.resize(cfg_.pmd_cores.size());
    snap->ports.resize(ports_.size());

    // Receive sources are dealt round-robin over the PMDs, in port order.
    size_t next_pmd = 0;
    auto assign = [&](Source s) {
        snap->sources[next_pmd].push_back(s);
        next_pmd = (next_pmd + 1) % snap->sources.size();
    };
    for (size_t i = 0; i < ports_.size(); ++i) {
        PortRecord& rec = *ports_[i];
        PortEntry& e = snap->ports[i];
        e.id = static_cast<PortId>(i);
        e.kind = rec.kind;
        if (rec.kind == PortKind::VhostUser) {
            e.health = &rec.vhost->health();
            if (auto rings = rec.vhost->rings()) {
                e.vhost = rings.get();
                snap->hold.push_back(rings);
            }
        } else {
            e.health = &rec.dpdk_health;
            e.dpdk = rec.dpdk.get();
            e.dpdk_slots = rec.dpdk_slots.get();
            e.dpdk_queues = std::min(rec.dpdk->rx_queues(), rec.dpdk->tx_queues());
        }
    }
    for (size_t i = 0; i < ports_.size(); ++i) {
        PortRecord& rec = *ports_[i];
        PortEntry& e = snap->ports[i];
        if (e.vhost != nullptr) {
            for (const auto& r : e.vhost->tx) {
                assign(Source{e.id, &r, 0});
            }
        } else if (rec.kind == PortKind::Dpdk) {
            for (uint16_t q = 0; q < rec.dpdk->rx_queues(); ++q) {
                assign(Source{e.id, nullptr, q});
            }
        }
    }
    if (cfg_.switch_mode == config::SwitchMode::Xconnect) {
        auto id_of = [&](const std::string& name) -> std::optional<PortId> {
            for (size_t i = 0; i < ports_.size(); ++i) {
                if (ports_[i]->name == name) {
                    return static_cast<PortId>(i);
                }
            }
            return std::nullopt;
        };
        for (const auto& [a, b] : cfg_.xconnect) {
            auto ia = id_of(a);
            auto ib = id_of(b);
            if (ia && ib) {
                snap->ports[*ia].peer = *ib;
                snap->ports[*ib].peer = *ia;
            }
        }
    }
    // Release pairs with the PMD's acquire load: the snapshot is complete
    // before any PMD can see its address.
    snapshot_.store(snap.get(), std::memory_order_release);
    std::unique_ptr<const Snapshot> old = std::move(owned_);
    owned_ = std::move(snap);
    if (!qsbr_.synchronize()) {
        // Not reached with the unbounded wait; kept for a bounded variant.
        spdlog::critical("a PMD thread did not pass a quiescent point");
    }
    old.reset(); // no PMD can see it any more
    // Sleeping PMDs re-read the snapshot: new rings need their notification
    // state set and may already hold work.
    for (size_t i = 0; i < pmd_count_; ++i) {
        wake_pmd(controls_[i]);
    }
    if (observer_) {
        observer_(*owned_);
    }
}

std::vector<Dataplane::PortView> Dataplane::port_views() const {
    std::vector<PortView> out;
    out.reserve(ports_.size());
    for (size_t i = 0; i < ports_.size(); ++i) {
        const PortRecord& rec = *ports_[i];
        out.push_back(PortView{static_cast<PortId>(i), &rec.name, rec.kind, rec.vhost.get(),
                               rec.dpdk.get(), rec.dpdk_slots.get(), rec.dpdk_queues,
                               rec.vhost ? &std::as_const(*rec.vhost).health() : &rec.dpdk_health});
    }
    return out;
}

void Dataplane::forget_port(PortId id) noexcept { l2_.flush_port(id); }

void Dataplane::learn(const Mac& mac, PortId id) noexcept { l2_.learn(mac.data(), id, L2Table::now_s()); }

Status Dataplane::start() {
    for (size_t i = 0; i < cfg_.pmd_cores.size(); ++i) {
        const unsigned core = cfg_.pmd_cores[i];
        if (core >= static_cast<unsigned>(CPU_SETSIZE) ||
            core >= std::thread::hardware_concurrency()) {
            stop();
            return make_error(fmt::format("{}: dataplane.pmd_cores: core {} does not exist (this "
                                          "machine has {} CPUs)",
                                          cfg_.source, core, std::thread::hardware_concurrency()));
        }
        pmds_.emplace_back([this, i, core] { pmd_main(i, core); });
    }
    return Ok{};
}

void Dataplane::stop() {
    stop_.store(true, std::memory_order_relaxed);
    for (size_t i = 0; i < pmd_count_; ++i) {
        wake_pmd(controls_[i]);
    }
    for (auto& t : pmds_) {
        if (t.joinable()) {
            t.join();
        }
    }
    pmds_.clear();
}

void Dataplane::pmd_main(size_t index, unsigned core) {
    const std::string name = fmt::format("pmd{}", index);
    ::pthread_setname_np(::pthread_self(), name.c_str());
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(core, &set);
    if (const int rc = ::pthread_setaffinity_np(::pthread_self(), sizeof(set), &set); rc != 0) {
        spdlog::warn("{}: cannot pin to CPU {}: {}", name, core, std::strerror(rc));
    }
    bool registered = false;
    if (dpdk_env_) {
        if (auto s = dpdk_env_->register_thread(); !s) {
            spdlog::warn("{}: {}", name, s.error().message);
        } else {
            registered = true;
        }
    }
    spdlog::info("{}: polling on CPU {}", name, core);
    Pmd pmd(index, qsbr_, snapshot_, stop_, controls_[index]);
    pmd.run();
    if (registered) {
        dpdk_env_->unregister_thread();
    }
}

void Dataplane::report_health() {
    for (const auto& rec : ports_) {
        PortHealth& h = rec->vhost ? rec->vhost->health() : rec->dpdk_health;
        if (h.broken.load(std::memory_order_acquire) &&
            !h.reported.exchange(true, std::memory_order_relaxed)) {
            const char* reason = h.reason.load(std::memory_order_relaxed);
            spdlog::error("port {}: broken by its front-end/guest: {}; frames to and from it are "
                          "dropped until the front-end resets its rings",
                          rec->name, reason != nullptr ? reason : "ring violation");
        }
    }
}

void Dataplane::log_stats() const {
    auto line = [](const std::string& port, const std::string& queue, const QueueStats& s) {
        spdlog::info("stats {} {}: rx {} pkts {} bytes, tx {} pkts {} bytes, drops: no_buffer {} "
                     "too_big {} broken {} no_route {}, errors {}",
                     port, queue, s.rx_packets.get(), s.rx_bytes.get(), s.tx_packets.get(),
                     s.tx_bytes.get(), s.drop_no_buffer.get(), s.drop_too_big.get(),
                     s.drop_broken.get(), s.drop_no_route.get(), s.errors.get());
    };
    for (size_t i = 0; i < pmd_count_; ++i) {
        const PmdControl& c = controls_[i];
        const uint64_t busy = c.busy_polls.get();
        const uint64_t idle = c.idle_polls.get();
        const double empty = busy + idle == 0 ? 0.0 : 100.0 * static_cast<double>(idle) /
                                                          static_cast<double>(busy + idle);
        spdlog::info("stats pmd{} cpu {}: polls busy {} empty {} (empty share {:.1f}%), sleeps {}, "
                     "woken {}, timeouts {}, back-outs {}",
                     i, cfg_.pmd_cores[i], busy, idle, empty, c.sleeps.get(), c.kick_wakeups.get(),
                     c.timeouts.get(), c.backouts.get());
    }
    for (const auto& rec : ports_) {
        if (rec->vhost) {
            for (uint32_t v = 0; v < rec->vhost->vrings(); ++v) {
                line(rec->name, fmt::format("vring{}", v), rec->vhost->slot(v).stats);
            }
        } else {
            for (size_t q = 0; q < rec->dpdk_queues; ++q) {
                line(rec->name, fmt::format("queue{}", q), rec->dpdk_slots[q].stats);
            }
        }
    }
}

} // namespace vhostd::dataplane
