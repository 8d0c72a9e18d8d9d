#pragma once
// What a configuration reload (SIGHUP) changes: the difference between the
// running configuration and a newly loaded file, split into what vhostd
// applies at once and what needs a restart (docs/configuration.md
// "Reloading").

#include <string>
#include <utility>
#include <vector>

#include "config/config.hpp"

namespace vhostd::config {

struct ConfigDiff {
    // Ports to close: running ports that the new file no longer has, and
    // ports whose settings changed (a changed port is removed, then added).
    std::vector<std::string> removed;
    // Ports to open, in file order: new ones and changed ones.
    std::vector<PortConfig> added;
    // Names of the changed ports (each is in `removed` and in `added`).
    std::vector<std::string> changed;
    // The xconnect pairs differ (applied after the ports).
    bool xconnect_changed = false;
    // log.level differs.
    bool log_level_changed = false;
    // Keys that differ but take effect only at a restart, one entry each:
    // "dataplane.pmd_cores: [1] -> [0, 1]".
    std::vector<std::string> restart_only;

    [[nodiscard]] bool empty() const noexcept {
        return removed.empty() && added.empty() && !xconnect_changed && !log_level_changed &&
               restart_only.empty();
    }
};

// Two ports are the same port when every setting but the line matches.
[[nodiscard]] bool same_port(const PortConfig& a, const PortConfig& b);

[[nodiscard]] ConfigDiff diff(const Config& running, const Config& next);

}  // namespace vhostd::config
