#pragma once
// EAL start-up shared by vhostd's DPDK test tools (vhost-traffic, vhost-ping).

#include <rte_eal.h>
#include <rte_errno.h>

#include <string>
#include <vector>

namespace vhostd::tools {

// "a b c": the command line, for the tool's log.
inline std::string join_args(const std::vector<std::string>& args) {
    std::string joined;
    for (const auto& a : args) {
        joined += (joined.empty() ? "" : " ") + a;
    }
    return joined;
}

// rte_eal_init over `args` (args[0] is the program name). EAL may keep
// pointers into argv, so the strings live until the process ends. Returns an
// empty string on success, else rte_strerror's text.
inline std::string init_eal(const std::vector<std::string>& args) {
    static std::vector<std::string> storage;
    static std::vector<char*> argv;
    storage = args;
    argv.clear();
    for (auto& s : storage) {
        argv.push_back(s.data());
    }
    argv.push_back(nullptr);
    if (rte_eal_init(static_cast<int>(storage.size()), argv.data()) < 0) {
        return rte_strerror(rte_errno);
    }
    return {};
}

} // namespace vhostd::tools
