#pragma once
// Small helpers shared by the protocol unit tests: resource counting for leak
// checks, fd liveness, and assertions on vhostd::Result values.

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "protocol/result.hpp"
#include "protocol/unique_fd.hpp"

namespace vhostd::testing_support {

// Open fds of this process (the directory iterator's own fd is counted every
// time, so differences are exact).
inline size_t count_fds() {
    size_t n = 0;
    for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
        ++n;
    }
    return n;
}

// Lines of /proc/self/maps, or only those that contain `needle`.
inline size_t count_maps(const std::string& needle = "") {
    std::ifstream maps("/proc/self/maps");
    std::string line;
    size_t n = 0;
    while (std::getline(maps, line)) {
        if (needle.empty() || line.find(needle) != std::string::npos) {
            ++n;
        }
    }
    return n;
}

// Whether AddressSanitizer is built in: its allocator maps and unmaps
// anonymous memory of its own at any time.
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kAsan = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kAsan = true;
#else
inline constexpr bool kAsan = false;
#endif
#else
inline constexpr bool kAsan = false;
#endif

// Mappings of a file (the line names a path), as opposed to anonymous memory.
inline size_t count_file_maps() {
    std::ifstream maps("/proc/self/maps");
    std::string line;
    size_t n = 0;
    while (std::getline(maps, line)) {
        if (line.find(" /") != std::string::npos) {
            ++n;
        }
    }
    return n;
}

struct Resources {
    size_t fds = 0;
    size_t maps = 0;        // all mappings; only those of files under ASan (see kAsan)
    size_t memfd_maps = 0;  // mappings of any memfd
};

inline Resources resources() {
    return Resources{count_fds(), kAsan ? count_file_maps() : count_maps(), count_maps("/memfd:")};
}

// Whether `fd` names an open file in this process.
inline bool fd_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }
// Whether `fd` is closed (F_GETFD fails with EBADF).
inline bool fd_closed(int fd) { return ::fcntl(fd, F_GETFD) == -1 && errno == EBADF; }

inline UniqueFd eventfd_or_die() {
    UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    EXPECT_TRUE(fd.valid()) << "eventfd";
    return fd;
}

inline UniqueFd memfd_of(uint64_t size, const char* name = "vhostd-proto-test") {
    UniqueFd fd(::memfd_create(name, MFD_CLOEXEC));
    EXPECT_TRUE(fd.valid()) << "memfd_create";
    EXPECT_EQ(::ftruncate(fd.get(), static_cast<off_t>(size)), 0);
    return fd;
}

// n fresh eventfds: the owning vector and their raw numbers.
struct FdSet {
    std::vector<UniqueFd> owned;
    std::vector<int> raw;

    static FdSet eventfds(size_t n) {
        FdSet s;
        for (size_t i = 0; i < n; ++i) {
            s.owned.push_back(eventfd_or_die());
            s.raw.push_back(s.owned.back().get());
        }
        return s;
    }
    // Hands the fds over (e.g. to decode()); `raw` keeps the numbers.
    std::vector<UniqueFd> take() { return std::move(owned); }
};

template <typename T>
::testing::AssertionResult is_ok(const Result<T>& r) {
    if (r.ok()) {
        return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure() << "error: " << r.error().message;
}

// An error whose message contains every fragment.
template <typename T>
::testing::AssertionResult is_error(const Result<T>& r, const std::vector<std::string>& fragments) {
    if (r.ok()) {
        return ::testing::AssertionFailure() << "succeeded where an error was expected";
    }
    for (const auto& f : fragments) {
        if (r.error().message.find(f) == std::string::npos) {
            return ::testing::AssertionFailure()
                   << "error '" << r.error().message << "' does not mention '" << f << "'";
        }
    }
    return ::testing::AssertionSuccess();
}

inline ::testing::AssertionResult text_has(const std::string& text,
                                           const std::vector<std::string>& fragments) {
    for (const auto& f : fragments) {
        if (text.find(f) == std::string::npos) {
            return ::testing::AssertionFailure() << "'" << text << "' does not mention '" << f << "'";
        }
    }
    return ::testing::AssertionSuccess();
}

} // namespace vhostd::testing_support
