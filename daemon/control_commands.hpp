#pragma once
// The control socket's commands (docs/control.md): one JSON request in, one
// JSON response out. Transport-free, so tests can call it directly; the
// socket side is control_server.cpp.
//
//   {"cmd":"show ports"}            -> {"ok":true,"result":{"ports":[...]}}
//   anything wrong                  -> {"ok":false,"error":"..."}

#include <functional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "daemon/introspection.hpp"
#include "protocol/result.hpp"

namespace vhostd::daemon {

// What the commands act on; the daemon fills these in. A missing
// add_port/remove_port makes those commands answer "not available".
struct ControlActions {
    std::function<Model()> introspect;
    std::function<void()> clear_stats;
    std::function<Status(const std::string& level)> set_log_level;
    std::function<Status(const nlohmann::ordered_json& port)> add_port;
    std::function<Status(const std::string& name)> remove_port;
};

// One request line (without its newline) -> one response (without newline).
[[nodiscard]] std::string handle_control_request(std::string_view request,
                                                 const ControlActions& actions);

// The JSON form of the model's parts, as `show ...` returns them.
[[nodiscard]] nlohmann::ordered_json ports_json(const Model& model);
[[nodiscard]] nlohmann::ordered_json pmd_json(const Model& model);
// Every port, or only `port` (which must exist: nullopt otherwise).
[[nodiscard]] std::optional<nlohmann::ordered_json> stats_json(const Model& model, const std::string& port);
[[nodiscard]] nlohmann::ordered_json fdb_json(const Model& model);

} // namespace vhostd::daemon
