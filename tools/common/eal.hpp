#pragma once
// EAL start-up and tear-down shared by vhostd's DPDK test tools
// (vhost-traffic, vhost-ping).

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_mempool.h>
#include <unistd.h>

#include <filesystem>
#include <initializer_list>
#include <sstream>
#include <string>
#include <vector>

namespace vhostd::tools {

// "--a b  c" -> {"--a", "b", "c"}: the tools' --eal option.
inline std::vector<std::string> split_ws(const std::string& s) {
    std::istringstream in(s);
    std::vector<std::string> out;
    for (std::string tok; in >> tok;) {
        out.push_back(tok);
    }
    return out;
}

// A tool's EAL command line: `program`, then one lcore on CPU 0 and a private
// file prefix "<program>-<pid>" unless `user` names its own, then `logging`
// (so a --log-level in `user` wins), then `user`. The caller appends its
// --vdev arguments. `generated_prefix` is the prefix chosen here, if any,
// for the tool to clean up at exit.
struct EalCommandLine {
    std::vector<std::string> args;
    std::string generated_prefix;
};

inline EalCommandLine tool_eal_args(const std::string& program, const std::vector<std::string>& user,
                                    std::initializer_list<const char*> logging) {
    bool has_lcores = false;
    bool has_prefix = false;
    for (const auto& a : user) {
        if (a.rfind("-l", 0) == 0 || a.rfind("--lcores", 0) == 0 || a.rfind("-c", 0) == 0) {
            has_lcores = true;
        }
        if (a.rfind("--file-prefix", 0) == 0 || a == "--in-memory") {
            has_prefix = true;
        }
    }
    EalCommandLine cl;
    cl.args.push_back(program);
    if (!has_lcores) {
        cl.args.insert(cl.args.end(), {"-l", "0"});
    }
    if (!has_prefix) {
        cl.generated_prefix = program + "-" + std::to_string(::getpid());
        cl.args.insert(cl.args.end(), {"--file-prefix", cl.generated_prefix});
    }
    cl.args.insert(cl.args.end(), logging.begin(), logging.end());
    cl.args.insert(cl.args.end(), user.begin(), user.end());
    return cl;
}

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

// rte_eal_cleanup, then removes EAL's runtime folder if its name is the
// prefix tool_eal_args generated (nothing else lives there).
inline void cleanup_eal(const std::string& generated_prefix) {
    const std::string runtime = rte_eal_get_runtime_dir();
    rte_eal_cleanup();
    if (!generated_prefix.empty() && std::filesystem::path(runtime).filename() == generated_prefix) {
        std::error_code ec;
        std::filesystem::remove_all(runtime, ec);
    }
}

// Stops port `id` if `started` (clearing it) and closes the virtio-user
// device `name` if EAL is up, so the back-end sees the rings stop
// (GET_VRING_BASE) and the connection close rather than a crash. Returns
// rte_strerror's text if the stop failed, else an empty string; the device is
// closed either way.
inline std::string close_virtio_user(uint16_t id, bool& started, const std::string& name, bool eal_up) {
    std::string err;
    if (started) {
        if (const int ret = rte_eth_dev_stop(id); ret != 0) {
            err = rte_strerror(-ret);
        }
        started = false;
    }
    uint16_t found = 0;
    if (eal_up && rte_eth_dev_get_port_by_name(name.c_str(), &found) == 0) {
        rte_eth_dev_close(found);
    }
    return err;
}

// After the ports are closed: frees the tool's mbuf pool, then cleanup_eal.
inline void release_dpdk(rte_mempool*& pool, bool& eal_up, const std::string& generated_prefix) {
    if (pool != nullptr) {
        rte_mempool_free(pool);
        pool = nullptr;
    }
    if (eal_up) {
        cleanup_eal(generated_prefix);
        eal_up = false;
    }
}

} // namespace vhostd::tools
