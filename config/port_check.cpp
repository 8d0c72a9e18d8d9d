#include "config/port_check.hpp"

#include <algorithm>
#include <string>

namespace vhostd::config {

namespace {

bool is_port_name_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
}

Error problem(const PortConfig& port, const char* field, const std::string& what,
              const std::string& value) {
    return make_error("port " + (port.name.empty() ? std::string("(unnamed)") : port.name) + ": " +
                      field + ": " + what + (value.empty() ? "" : " (" + value + ")"));
}

}  // namespace

Status check_port(const PortConfig& port) {
    if (port.name.empty()) {
        return problem(port, "name", "must not be empty", "");
    }
    if (port.name.size() > kMaxPortNameLen) {
        return problem(port, "name", "longer than " + std::to_string(kMaxPortNameLen) + " characters",
                       port.name);
    }
    if (!std::all_of(port.name.begin(), port.name.end(), is_port_name_char)) {
        return problem(port, "name", "may contain only A-Z a-z 0-9 _ . -", port.name);
    }
    if (port.type == PortType::Dpdk) {
        if (port.devargs.empty()) {
            return problem(port, "devargs", "must not be empty for a dpdk port", "");
        }
        if (!port.path.empty()) {
            return problem(port, "path", "not allowed on a dpdk port (only on type vhost-user)",
                           port.path);
        }
        return Ok{};
    }
    if (!port.devargs.empty()) {
        return problem(port, "devargs", "not allowed on a vhost-user port (only on type dpdk)",
                       port.devargs);
    }
    const std::string& path = port.path;
    if (path.empty() || path.front() != '/') {
        return problem(port, "path", "must be an absolute path", path);
    }
    if (path.find('\0') != std::string::npos) {
        return problem(port, "path", "must not contain a NUL byte", "");
    }
    if (path.back() == '/') {
        return problem(port, "path", "must name a socket file, not a directory", path);
    }
    if (path.size() > kMaxSocketPathLen) {
        return problem(port, "path",
                       "is " + std::to_string(path.size()) +
                           " bytes, an AF_UNIX socket path holds at most " +
                           std::to_string(kMaxSocketPathLen),
                       path);
    }
    if (port.queues < 1 || port.queues > kMaxQueues) {
        return problem(port, "queues", "must be 1.." + std::to_string(kMaxQueues),
                       std::to_string(port.queues));
    }
    if (port.mtu && (*port.mtu < kMinMtu || *port.mtu > kMaxMtu)) {
        return problem(port, "mtu",
                       "must be " + std::to_string(kMinMtu) + ".." + std::to_string(kMaxMtu),
                       std::to_string(*port.mtu));
    }
    return Ok{};
}

}  // namespace vhostd::config
