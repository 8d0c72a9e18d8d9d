#include "dataplane/dataplane.hpp"

#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include <rte_eal.h>

#include <spdlog/spdlog.h>

#include <rte_mbuf.h>

#include "dataplane/dpdk_env.hpp"
#include "dataplane/dpdk_port.hpp"
#include "dataplane/pmd.hpp"

namespace vhostd::dataplane {

namespace {
// PortId is 16 bits and the L2 table stores id + 1.
constexpr size_t kMaxPorts = 0xfffe;
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
    config::Config running = cfg;
    running.ports.clear();  // add_port puts each back once it is open
    std::unique_ptr<Dataplane> dp(new Dataplane(std::move(running)));
    for (size_t i = 0; i < dp->pmd_count_; ++i) {
        if (auto s = dp->controls_[i].open(); !s) {
            return s.error();
        }
    }
    dp->kicks_ = std::make_unique<KickRegistry>(dp->controls_.get(), dp->pmd_count_);
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
    for (const auto& port : cfg.ports) {
        auto added = dp->add_port(port);
        if (!added) {
            return make_error(fmt::format("{}:{}: {}", cfg.source, port.line, added.error().message));
        }
    }
    if (cfg.ports.empty()) {
        dp->publish();
    }
    return dp;
}

Dataplane::PortRecord* Dataplane::find(const std::string& name) const noexcept {
    for (const auto& rec : ports_) {
        if (rec && rec->name == name) {
            return rec.get();
        }
    }
    return nullptr;
}

size_t Dataplane::port_count() const noexcept {
    return static_cast<size_t>(
        std::count_if(ports_.begin(), ports_.end(), [](const auto& rec) { return rec != nullptr; }));
}

std::optional<PortId> Dataplane::port_id(const std::string& name) const noexcept {
    for (size_t i = 0; i < ports_.size(); ++i) {
        if (ports_[i] && ports_[i]->name == name) {
            return static_cast<PortId>(i);
        }
    }
    return std::nullopt;
}

Result<std::unique_ptr<Dataplane::PortRecord>> Dataplane::open_port(const config::PortConfig& port,
                                                                    PortId id) {
    auto rec = std::make_unique<PortRecord>();
    rec->name = port.name;
    if (port.type == config::PortType::VhostUser) {
        rec->kind = PortKind::VhostUser;
        rec->vhost = std::make_unique<VhostUserPort>(*this, id, port.name, port.queues);
        return rec;
    }
    if (!dpdk_env_) {
        return make_error(fmt::format(
            "port {}: a DPDK port needs DPDK's EAL, which vhostd starts only when the "
            "configuration it starts with has a port of type dpdk; restart vhostd to add one",
            port.name));
    }
    rec->kind = PortKind::Dpdk;
    const auto queues = static_cast<uint16_t>(cfg_.pmd_cores.size());
    auto opened = DpdkPort::open(*dpdk_env_, port.name, port.devargs, queues);
    if (!opened) {
        return make_error(fmt::format("port {}: {}", port.name, opened.error().message));
    }
    rec->dpdk = std::move(opened).value();
    rec->dpdk_queues = std::max(rec->dpdk->rx_queues(), rec->dpdk->tx_queues());
    rec->dpdk_slots = std::make_unique<RingSlot[]>(rec->dpdk_queues);
    spdlog::info("port {}: DPDK device {} up, {} queue(s)", port.name, port.devargs,
                 rec->dpdk->rx_queues());
    return rec;
}

Result<PortId> Dataplane::add_port(const config::PortConfig& port) {
    if (find(port.name) != nullptr) {
        return make_error(fmt::format("port {}: a port with this name already exists", port.name));
    }
    for (const auto& other : cfg_.ports) {
        if (port.type == config::PortType::VhostUser && other.type == config::PortType::VhostUser &&
            other.path == port.path) {
            return make_error(fmt::format("port {}: socket path {} is already used by port {}",
                                          port.name, port.path, other.name));
        }
        if (port.type == config::PortType::Dpdk && other.type == config::PortType::Dpdk &&
            other.devargs == port.devargs) {
            return make_error(fmt::format("port {}: DPDK device {} is already used by port {}",
                                          port.name, port.devargs, other.name));
        }
    }
    // The lowest free id: remove_port frees an id only once no snapshot and
    // no L2 entry refers to it any more.
    size_t slot = 0;
    while (slot < ports_.size() && ports_[slot] != nullptr) {
        ++slot;
    }
    if (slot >= kMaxPorts) {
        return make_error(fmt::format("port {}: too many ports (at most {})", port.name, kMaxPorts));
    }
    const auto id = static_cast<PortId>(slot);
    auto rec = open_port(port, id);
    if (!rec) {
        return std::move(rec).error();
    }
    if (slot == ports_.size()) {
        ports_.push_back(std::move(rec).value());
    } else {
        ports_[slot] = std::move(rec).value();
    }
    cfg_.ports.push_back(port);
    publish();
    spdlog::debug("port {}: added as port id {}", port.name, id);
    return id;
}

Status Dataplane::remove_port(const std::string& name) {
    const auto id = port_id(name);
    if (!id) {
        return make_error(fmt::format("port {}: no such port", name));
    }
    // 1. Out of the port table, then out of the snapshot: publish() returns
    //    only when every PMD has passed a quiescent point, so from then on
    //    no PMD holds a pointer into the port (rings, slots, health, device).
    std::unique_ptr<PortRecord> rec = std::move(ports_[*id]);
    while (!ports_.empty() && ports_.back() == nullptr) {
        ports_.pop_back();
    }
    std::erase_if(cfg_.ports, [&](const config::PortConfig& p) { return p.name == name; });
    publish();
    // 2. No PMD can learn the id any more (the port is no source): forget
    //    its MACs, so that the id is clean when a new port takes it.
    l2_.flush_port(*id);
    // 3. Close it (a DPDK device is stopped, closed and removed).
    rec.reset();
    spdlog::debug("port {}: removed (port id {} is free)", name, *id);
    return Ok{};
}

void Dataplane::set_xconnect(std::vector<std::pair<std::string, std::string>> pairs) {
    cfg_.xconnect = std::move(pairs);
    publish();
}

VhostUserPort* Dataplane::vhost_port(const std::string& name) noexcept {
    PortRecord* rec = find(name);
    return rec != nullptr ? rec->vhost.get() : nullptr;
}

void Dataplane::publish() {
    auto snap = std::make_unique<Snapshot>();
    snap->mode = cfg_.switch_mode;
    snap->l2 = &l2_;
    snap->burst = std::min<uint32_t>(cfg_.burst, kMaxBurst);
    snap->shared_delivery = cfg_.pmd_cores.size() > 1;
    snap->idle = cfg_.idle;
    snap->rx_stores = cfg_.rx_stores;
    snap->sources.resize(pmd_count_);
    snap->ports.resize(ports_.size());

    // Every receive source that exists now, in port order.
    std::vector<std::pair<SourceKey, Source>> sources;
    for (size_t i = 0; i < ports_.size(); ++i) {
        PortEntry& e = snap->ports[i];
        e.id = static_cast<PortId>(i);
        if (!ports_[i]) {
            continue; // a free id: nothing there, never reachable
        }
        PortRecord& rec = *ports_[i];
        e.kind = rec.kind;
        if (rec.kind == PortKind::VhostUser) {
            e.health = &rec.vhost->health();
            if (auto rings = rec.vhost->rings()) {
                e.vhost = rings.get();
                snap->hold.push_back(rings);
                for (const auto& r : e.vhost->tx) {
                    sources.push_back({{e.id, r.index}, Source{e.id, &r, 0}});
                }
            }
        } else {
            e.health = &rec.dpdk_health;
            e.dpdk = rec.dpdk.get();
            e.dpdk_slots = rec.dpdk_slots.get();
            e.dpdk_queues = std::min(rec.dpdk->rx_queues(), rec.dpdk->tx_queues());
            for (uint16_t q = 0; q < rec.dpdk->rx_queues(); ++q) {
                sources.push_back({{e.id, kDpdkQueue + q}, Source{e.id, nullptr, q}});
            }
        }
    }
    // A source keeps its PMD for as long as it exists: moving it while the
    // old snapshot is still visible would let two PMDs poll one ring. A new
    // source goes to the PMD with the fewest sources (ties: the lowest
    // index, so that in a fresh data plane sources are dealt round-robin).
    // A source that disappears loses its PMD; if it comes back it is new,
    // and this publish's grace period has passed by then.
    std::map<SourceKey, size_t> assigned;
    std::vector<size_t> load(pmd_count_, 0);
    for (const auto& [key, src] : sources) {
        if (auto it = source_pmd_.find(key); it != source_pmd_.end() && it->second < pmd_count_) {
            assigned[key] = it->second;
            ++load[it->second];
        }
    }
    for (const auto& [key, src] : sources) {
        if (pmd_count_ == 0) {
            break;
        }
        if (!assigned.contains(key)) {
            const size_t pmd = static_cast<size_t>(
                std::min_element(load.begin(), load.end()) - load.begin());
            assigned[key] = pmd;
            ++load[pmd];
        }
        snap->sources[assigned[key]].push_back(src);
    }
    source_pmd_ = std::move(assigned);

    if (cfg_.switch_mode == config::SwitchMode::Xconnect) {
        for (const auto& [a, b] : cfg_.xconnect) {
            auto ia = port_id(a);
            auto ib = port_id(b);
            if (ia && ib) {
                snap->ports[*ia].peer = *ib;
                snap->ports[*ib].peer = *ia;
            }
        }
    }
    // Kick fds are registered before any PMD can see the rings they belong to.
    kicks_->update(*snap);
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
}

size_t Dataplane::kicks_registered() const noexcept { return kicks_->registered(); }

std::vector<Dataplane::PortView> Dataplane::port_views() const {
    std::vector<PortView> out;
    out.reserve(ports_.size());
    for (size_t i = 0; i < ports_.size(); ++i) {
        if (!ports_[i]) {
            continue;  // a free id
        }
        const PortRecord& rec = *ports_[i];
        out.push_back(PortView{static_cast<PortId>(i), &rec.name, rec.kind, rec.vhost.get(),
                               rec.dpdk.get(), rec.dpdk_slots.get(), rec.dpdk_queues,
                               rec.vhost ? &std::as_const(*rec.vhost).health() : &rec.dpdk_health});
    }
    return out;
}

std::vector<size_t> Dataplane::stalled_pmds() {
    std::vector<size_t> stalled;
    const bool first = last_heartbeat_.size() != pmd_count_;
    last_heartbeat_.resize(pmd_count_, 0);
    for (size_t i = 0; i < pmd_count_; ++i) {
        const uint64_t beat = controls_[i].heartbeat.load(std::memory_order_relaxed);
        // A PMD asleep (until kicked, or for idle.max_sleep_us) is fine;
        // one that runs must have gone round its loop since the last look.
        const bool asleep = controls_[i].word.load(std::memory_order_relaxed) == kSleeping;
        if (!first && beat == last_heartbeat_[i] && !asleep) {
            stalled.push_back(i);
        }
        last_heartbeat_[i] = beat;
    }
    if (pmds_.size() != pmd_count_ && !first) {
        // Not started, or stopped: nothing polls.
        stalled.clear();
        for (size_t i = 0; i < pmd_count_; ++i) {
            stalled.push_back(i);
        }
    }
    return stalled;
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
        if (!rec) {
            continue;
        }
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
        // TSC cycles spent in iterations that found work and in the others
        // (sleeps included): busy cycles per frame is the PMD's cost per
        // frame whatever the load, which tools/bench compares.
        const uint64_t busy_cycles = c.busy_cycles.get();
        const uint64_t idle_cycles = c.idle_cycles.get();
        const double busy_time = busy_cycles + idle_cycles == 0
                                     ? 0.0
                                     : 100.0 * static_cast<double>(busy_cycles) /
                                           static_cast<double>(busy_cycles + idle_cycles);
        spdlog::info("stats pmd{} cpu {}: polls busy {} empty {} (empty share {:.1f}%), sleeps {}, "
                     "woken {} (by control {}), timeouts {}, back-outs {}, cycles busy {} idle {} "
                     "(busy share {:.1f}%), rx first lines streamed in {} frames (store switches {})",
                     i, cfg_.pmd_cores[i], busy, idle, empty, c.sleeps.get(), c.kick_wakeups.get(),
                     c.control_wakeups.get(), c.timeouts.get(), c.backouts.get(), busy_cycles, idle_cycles,
                     busy_time, c.streamed_frames.get(), c.store_switches.get());
    }
    for (const auto& rec : ports_) {
        if (!rec) {
            continue;
        }
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
