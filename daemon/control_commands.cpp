#include "daemon/control_commands.hpp"

#include <fmt/format.h>

namespace vhostd::daemon {

using json = nlohmann::ordered_json;

namespace {

constexpr const char* kCommands =
    "show ports, show pmd, show stats, show fdb, log level, stats clear, port add, port del";

json ok(json result) { return json{{"ok", true}, {"result", std::move(result)}}; }

json fail(const std::string& error) { return json{{"ok", false}, {"error", error}}; }

json features_json(const FeatureInfo& f) {
    return json{{"bits", fmt::format("{:#x}", f.bits)}, {"names", f.names}};
}

json counters_json(const QueueCounters& c) {
    json out = json::object();
    json drops = json::object();
    for (const auto& f : QueueCounters::fields()) {
        if (f.reason != nullptr) {
            drops[f.reason] = c.*f.member;
        } else {
            out[f.name] = c.*f.member;
        }
    }
    out["drops"] = std::move(drops);
    return out;
}

json port_stats_json(const PortInfo& p) {
    QueueCounters total;
    json queues = json::array();
    for (const auto& q : p.queues) {
        json entry = counters_json(q.counters);
        entry["queue"] = q.name;
        queues.push_back(std::move(entry));
        for (const auto& f : QueueCounters::fields()) {
            total.*f.member += q.counters.*f.member;
        }
    }
    return json{{"name", p.name}, {"queues", std::move(queues)}, {"total", counters_json(total)}};
}

// Fields of a request, with errors that name the field.
Result<std::string> string_field(const json& req, const char* field) {
    auto it = req.find(field);
    if (it == req.end()) {
        return make_error(fmt::format("missing field \"{}\"", field));
    }
    if (!it->is_string()) {
        return make_error(fmt::format("field \"{}\" must be a string", field));
    }
    return it->get<std::string>();
}

json dispatch(const json& req, const ControlActions& actions) {
    if (!req.is_object()) {
        return fail("request must be a JSON object such as {\"cmd\":\"show ports\"}");
    }
    auto cmd = string_field(req, "cmd");
    if (!cmd) {
        return fail(cmd.error().message);
    }
    const std::string& c = *cmd;
    if (c == "show ports") {
        return ok(ports_json(actions.introspect()));
    }
    if (c == "show pmd") {
        return ok(pmd_json(actions.introspect()));
    }
    if (c == "show fdb") {
        return ok(fdb_json(actions.introspect()));
    }
    if (c == "show stats") {
        std::string port;
        if (req.contains("port")) {
            auto p = string_field(req, "port");
            if (!p) {
                return fail(p.error().message);
            }
            port = *p;
        }
        auto stats = stats_json(actions.introspect(), port);
        if (!stats) {
            return fail(fmt::format("no port named '{}'", port));
        }
        return ok(std::move(*stats));
    }
    if (c == "stats clear") {
        actions.clear_stats();
        return ok(json::object());
    }
    if (c == "log level") {
        auto level = string_field(req, "level");
        if (!level) {
            return fail(level.error().message);
        }
        if (auto s = actions.set_log_level(*level); !s) {
            return fail(s.error().message);
        }
        return ok(json{{"level", *level}});
    }
    if (c == "port add") {
        if (!actions.add_port) {
            return fail("port add is not available in this build");
        }
        auto it = req.find("port");
        if (it == req.end() || !it->is_object()) {
            return fail("field \"port\" must be an object with the keys of a ports: entry");
        }
        if (auto s = actions.add_port(*it); !s) {
            return fail(s.error().message);
        }
        return ok(json{{"name", it->value("name", "")}});
    }
    if (c == "port del") {
        if (!actions.remove_port) {
            return fail("port del is not available in this build");
        }
        auto name = string_field(req, "name");
        if (!name) {
            return fail(name.error().message);
        }
        if (auto s = actions.remove_port(*name); !s) {
            return fail(s.error().message);
        }
        return ok(json{{"name", *name}});
    }
    return fail(fmt::format("unknown command '{}'; commands: {}", c, kCommands));
}

} // namespace

json ports_json(const Model& model) {
    json ports = json::array();
    for (const auto& p : model.ports) {
        json j{{"name", p.name},
               {"type", p.type},
               {"state", p.state},
               {"broken", p.broken},
               {"queue_pairs", p.queue_pairs},
               {"macs", p.macs}};
        if (p.broken) {
            j["broken_reason"] = p.broken_reason;
        }
        j["mtu"] = p.mtu ? json(*p.mtu) : json(nullptr);
        if (p.type == "vhost-user") {
            j["path"] = p.path;
            j["socket_mode"] = p.socket_mode;
            j["socket_perms"] = p.socket_perms ? json(fmt::format("{:04o}", *p.socket_perms))
                                               : json(nullptr);
            j["features"] = features_json(p.features);
            j["protocol_features"] = features_json(p.protocol_features);
            j["live_rings"] = p.live_rings;
            j["connections"] = p.connections;
        } else {
            j["devargs"] = p.devargs;
        }
        ports.push_back(std::move(j));
    }
    return json{{"switch_mode", model.switch_mode}, {"ports", std::move(ports)}};
}

json pmd_json(const Model& model) {
    json pmds = json::array();
    for (const auto& p : model.pmds) {
        json sources = json::array();
        for (const auto& s : p.sources) {
            sources.push_back(json{{"port", s.port}, {"queue", s.queue}});
        }
        pmds.push_back(json{{"pmd", p.index},
                            {"core", p.core},
                            {"state", p.sleeping ? "sleeping" : "polling"},
                            {"sources", std::move(sources)},
                            {"busy_share", p.busy_share()},
                            {"busy_cycles", p.busy_cycles},
                            {"idle_cycles", p.idle_cycles},
                            {"busy_polls", p.busy_polls},
                            {"idle_polls", p.idle_polls},
                            {"sleeps", p.sleeps},
                            {"wakeups", p.wakeups},
                            {"timeouts", p.timeouts},
                            {"backouts", p.backouts},
                            {"streamed_frames", p.streamed_frames},
                            {"store_switches", p.store_switches}});
    }
    return json{{"pmds", std::move(pmds)}};
}

std::optional<json> stats_json(const Model& model, const std::string& port) {
    json ports = json::array();
    for (const auto& p : model.ports) {
        if (port.empty() || p.name == port) {
            ports.push_back(port_stats_json(p));
        }
    }
    if (!port.empty() && ports.empty()) {
        return std::nullopt;
    }
    return json{{"ports", std::move(ports)}};
}

json fdb_json(const Model& model) {
    json entries = json::array();
    for (const auto& e : model.fdb) {
        entries.push_back(json{{"mac", e.mac}, {"port", e.port}, {"age_s", e.age_s}});
    }
    return json{{"entries", std::move(entries)}};
}

std::string handle_control_request(std::string_view request, const ControlActions& actions) {
    json req = json::parse(request.begin(), request.end(), nullptr, /*allow_exceptions=*/false);
    json resp;
    if (req.is_discarded()) {
        resp = fail("malformed request: not valid JSON (expected one object per line, such as "
                    "{\"cmd\":\"show ports\"})");
    } else {
        resp = dispatch(req, actions);
    }
    // Replace invalid UTF-8 (a port name can come from anywhere) instead of throwing.
    return resp.dump(-1, ' ', false, json::error_handler_t::replace);
}

} // namespace vhostd::daemon
