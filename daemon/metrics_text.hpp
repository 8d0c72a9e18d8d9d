#pragma once
// The introspection model (introspection.hpp) in the Prometheus text
// exposition format 0.0.4: `# HELP` and `# TYPE` per metric family, then one
// sample per label set. Counters end in `_total`.

#include <string>

#include "daemon/introspection.hpp"

namespace vhostd::daemon {

[[nodiscard]] std::string render_metrics(const Model& model);

// A label value with `\`, `"` and newlines escaped as the format requires.
[[nodiscard]] std::string escape_label_value(const std::string& value);

} // namespace vhostd::daemon
