#pragma once
// The data plane: ports, PMD threads and the snapshot they poll.
//
// The control thread owns every port and is the only writer of the snapshot
// pointer. publish() builds a complete new Snapshot from the ports' current
// state, swaps it in, waits for every PMD to pass a quiescent point and then
// frees the old one (DESIGN.md "Hand-off control -> PMD").
//
// Ports come and go at runtime (add_port / remove_port, control thread). A
// PortId stays the port's for its whole life; a removed port's id is free
// again only once no snapshot refers to it and the L2 table has forgotten it.
// A receive source (guest TX ring, DPDK rx queue) keeps the PMD it was given
// for as long as it exists, so two PMDs never poll one ring, even while an
// old and a new snapshot are both visible.

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "config/config.hpp"
#include "dataplane/idle.hpp"
#include "dataplane/kick_registry.hpp"
#include "dataplane/l2_table.hpp"
#include "dataplane/qsbr.hpp"
#include "dataplane/snapshot.hpp"
#include "dataplane/vhost_user_port.hpp"
#include "protocol/result.hpp"

namespace vhostd::dataplane {

class DpdkEnv;
class DpdkPort;

class Dataplane {
public:
    // Creates the ports of `cfg` (initialising DPDK's EAL only when a DPDK
    // port is configured) but starts no thread yet.
    static Result<std::unique_ptr<Dataplane>> create(const config::Config& cfg);
    ~Dataplane();
    Dataplane(const Dataplane&) = delete;
    Dataplane& operator=(const Dataplane&) = delete;

    // Starts one PMD thread per configured core, pinned.
    Status start();
    // Stops and joins the PMD threads (idempotent).
    void stop();

    [[nodiscard]] VhostUserPort* vhost_port(const std::string& name) noexcept;
    // Ports that exist now.
    [[nodiscard]] size_t port_count() const noexcept;
    [[nodiscard]] std::optional<PortId> port_id(const std::string& name) const noexcept;

    // Runtime port changes (control thread). add_port checks that the name,
    // and the socket path or DPDK devargs, are not in use by another port,
    // opens the port and publishes it; frames on the other ports keep
    // flowing. The port's own rules were checked by the configuration
    // loader that produced it. A DPDK port needs the EAL, which is started only
    // when the configuration given to create() has a DPDK port.
    Result<PortId> add_port(const config::PortConfig& port);
    // Unpublishes the port, waits until no PMD can see it, makes the L2
    // table forget it, then closes it (a DPDK device is stopped, closed and
    // removed). A vhost-user port must have been detached from its session
    // first (the session calls into it): the daemon shuts its endpoint down.
    Status remove_port(const std::string& name);
    // Replaces the cross-connect pairs (switch.mode xconnect) and publishes.
    // Pairs naming a port that does not exist are kept and take effect when
    // such a port is added; until then the other port's frames are dropped
    // and counted (drop_no_route).
    void set_xconnect(std::vector<std::pair<std::string, std::string>> pairs);

    // PMD health for the systemd watchdog: PMDs that neither made progress
    // (their heartbeat moved) since the previous call nor are asleep. Empty
    // when every PMD is fine. The first call only records the heartbeats.
    [[nodiscard]] std::vector<size_t> stalled_pmds();

    // Control thread only.
    void publish();
    // Wake PMD `i` if it sleeps.
    bool wake(size_t i) noexcept { return i < pmd_count_ && wake_pmd(controls_[i]); }
    // Kick eventfds registered with sleeping PMDs' epoll sets.
    [[nodiscard]] size_t kicks_registered() const noexcept;
    [[nodiscard]] size_t pmd_count() const noexcept { return pmd_count_; }
    [[nodiscard]] const PmdControl& pmd_control(size_t i) const noexcept { return controls_[i]; }
    void forget_port(PortId id) noexcept;          // drop its MACs from the L2 table
    void learn(const Mac& mac, PortId id) noexcept; // SEND_RARP
    // Logs ports that broke since the last call (once each).
    void report_health();
    // One line per port and queue (SIGUSR1, exit).
    void log_stats() const;

    // The running configuration: what create() got, with `ports` and
    // `xconnect` kept current by add_port / remove_port / set_xconnect.
    [[nodiscard]] const config::Config& config() const noexcept { return cfg_; }

    // Read-only views for the control socket and metrics (control thread only).
    struct PortView {
        PortId id;
        const std::string* name;
        PortKind kind;
        const VhostUserPort* vhost;   // vhost-user ports
        const DpdkPort* dpdk;         // DPDK ports
        const RingSlot* dpdk_slots;   // DPDK ports: dpdk_queues of them
        uint16_t dpdk_queues;
        const PortHealth* health;
    };
    [[nodiscard]] std::vector<PortView> port_views() const;
    // The snapshot the PMDs currently poll (receive-source assignment).
    [[nodiscard]] const Snapshot* current_snapshot() const noexcept { return owned_.get(); }
    [[nodiscard]] std::vector<L2Table::Entry> fdb() const { return l2_.entries(L2Table::now_s()); }

private:
    struct PortRecord {
        std::string name;
        PortKind kind;
        std::unique_ptr<VhostUserPort> vhost;
        std::unique_ptr<DpdkPort> dpdk;
        std::unique_ptr<RingSlot[]> dpdk_slots;  // one per DPDK queue, contiguous
        uint16_t dpdk_queues = 0;
        PortHealth dpdk_health;
    };

    // A receive source: (port, vring index) or (port, kDpdkQueue + queue).
    using SourceKey = std::pair<PortId, uint32_t>;
    static constexpr uint32_t kDpdkQueue = 0x10000;

    explicit Dataplane(config::Config cfg);
    void pmd_main(size_t index, unsigned core);
    Result<std::unique_ptr<PortRecord>> open_port(const config::PortConfig& port, PortId id);
    [[nodiscard]] PortRecord* find(const std::string& name) const noexcept;

    config::Config cfg_;
    std::unique_ptr<DpdkEnv> dpdk_env_;
    std::string eal_runtime_dir_;  // removed at exit when vhostd chose the file prefix
    std::vector<std::unique_ptr<PortRecord>> ports_;  // index = PortId; nullptr: a free id
    std::map<SourceKey, size_t> source_pmd_;          // which PMD polls each live source
    std::vector<uint64_t> last_heartbeat_;            // stalled_pmds()
    L2Table l2_;
    Qsbr qsbr_;
    std::atomic<const Snapshot*> snapshot_{nullptr};
    std::unique_ptr<const Snapshot> owned_;
    std::atomic<bool> stop_{false};
    size_t pmd_count_;
    std::unique_ptr<PmdControl[]> controls_;
    std::unique_ptr<KickRegistry> kicks_;
    std::vector<std::thread> pmds_;
};

} // namespace vhostd::dataplane
