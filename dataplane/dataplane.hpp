#pragma once
// The data plane: ports, PMD threads and the snapshot they poll.
//
// The control thread owns every port and is the only writer of the snapshot
// pointer. publish() builds a complete new Snapshot from the ports' current
// state, swaps it in, waits for every PMD to pass a quiescent point and then
// frees the old one (DESIGN.md "Hand-off control -> PMD").

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "config/config.hpp"
#include "dataplane/idle.hpp"
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
    [[nodiscard]] size_t port_count() const noexcept { return ports_.size(); }

    // Control thread only.
    void publish();
    // Called (control thread) after every publish with the new snapshot; the
    // daemon uses it to watch kick eventfds for sleeping PMDs.
    void set_publish_observer(std::function<void(const Snapshot&)> observer) {
        observer_ = std::move(observer);
    }
    // Wake PMD `i` if it sleeps (a guest kicked one of its rings).
    bool wake(size_t i) noexcept { return i < pmd_count_ && wake_pmd(controls_[i]); }
    [[nodiscard]] size_t pmd_count() const noexcept { return pmd_count_; }
    [[nodiscard]] const PmdControl& pmd_control(size_t i) const noexcept { return controls_[i]; }
    void forget_port(PortId id) noexcept;          // drop its MACs from the L2 table
    void learn(const Mac& mac, PortId id) noexcept; // SEND_RARP
    // Logs ports that broke since the last call (once each).
    void report_health();
    // One line per port and queue (SIGUSR1, exit).
    void log_stats() const;

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

    explicit Dataplane(config::Config cfg);
    void pmd_main(size_t index, unsigned core);

    config::Config cfg_;
    std::unique_ptr<DpdkEnv> dpdk_env_;
    std::string eal_runtime_dir_;  // removed at exit when vhostd chose the file prefix
    std::vector<std::unique_ptr<PortRecord>> ports_;  // index = PortId
    L2Table l2_;
    Qsbr qsbr_;
    std::atomic<const Snapshot*> snapshot_{nullptr};
    std::unique_ptr<const Snapshot> owned_;
    std::atomic<bool> stop_{false};
    size_t pmd_count_;
    std::unique_ptr<PmdControl[]> controls_;
    std::function<void(const Snapshot&)> observer_;
    std::vector<std::thread> pmds_;
};

} // namespace vhostd::dataplane
