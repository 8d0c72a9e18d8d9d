#pragma once
// Helpers the config tests share (test_config*.cpp). The tests: config::load_string / load_file: every rule of the schema in
// docs/configuration.md, accepted at its edges and rejected just past them,
// with the FILE:LINE:COLUMN: FIELD: prefix of each error checked; and the
// files shipped in config/ must load.

#include "config/config.hpp"

#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#ifndef VHOSTD_SOURCE_DIR
#error "VHOSTD_SOURCE_DIR must name the source tree (set in tests/unit/config/meson.build)"
#endif

namespace vhostd::config::config_testing {

namespace fs = std::filesystem;

constexpr const char* kSource = "t.yaml";

// One valid vhost-user port, for tests about other sections. Put it last so
// the lines of the section under test are easy to count.
constexpr const char* kPorts = "ports:\n  - { name: vm1, type: vhost-user, path: /run/vhostd/vm1.sock }\n";

inline Result<Config> load(std::string_view text) {
    return load_string(text, kSource);
}

inline std::vector<std::string> lines_of(const std::string& message) {
    std::vector<std::string> lines;
    std::istringstream in(message);
    std::string line;
    while (std::getline(in, line)) {
        lines.push_back(line);
    }
    return lines;
}

// `text` is rejected, and one line of the error starts with `prefix`
// ("t.yaml:LINE:COL: FIELD: ") and contains `what`.
inline ::testing::AssertionResult rejected(std::string_view text, std::string_view prefix,
                                    std::string_view what = "") {
    auto result = load(text);
    if (result.ok()) {
        return ::testing::AssertionFailure() << "accepted:\n" << text;
    }
    for (const std::string& line : lines_of(result.error().message)) {
        if (line.rfind(prefix, 0) == 0 && line.find(what) != std::string::npos) {
            return ::testing::AssertionSuccess();
        }
    }
    return ::testing::AssertionFailure() << "no error line starting with '" << prefix << "' and containing '"
                                         << what << "'; got:\n"
                                         << result.error().message;
}

inline ::testing::AssertionResult accepted(std::string_view text) {
    auto result = load(text);
    if (!result.ok()) {
        return ::testing::AssertionFailure() << result.error().message << "\nfor:\n" << text;
    }
    return ::testing::AssertionSuccess();
}

inline std::string with_ports(std::string_view section) {
    return std::string(section) + kPorts;
}

}  // namespace vhostd::config::config_testing
