#pragma once
// The rules one port must satisfy on its own, for ports that arrive at
// runtime rather than through a file (vhostctl port add): the same limits
// the file loader applies (docs/configuration.md "ports"). Rules between
// ports (unique name, socket path, device) are the data plane's to check
// against the ports that run.

#include "config/config.hpp"
#include "protocol/result.hpp"

namespace vhostd::config {

// Ok, or one error naming the port, the field and the value, e.g.
//   port vm/1: name: may contain only A-Z a-z 0-9 _ . - (vm/1)
[[nodiscard]] Status check_port(const PortConfig& port);

}  // namespace vhostd::config
