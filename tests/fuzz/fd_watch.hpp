#pragma once
// Real file descriptors for the fuzz targets, and the check that none of them
// outlives an input: the codec and the memory table take ownership of every
// fd that arrives with a message and must close each one, on every path.
//
//   FdWatch watch;                      // notes the lowest free fd number
//   auto fd = watch.memfd(4096);        // a real memfd, remembered
//   ... hand fds to the code under test, destroy what it returned ...
//   watch.check_all_closed();           // aborts on a leaked fd
//
// A leak aborts (libFuzzer reports the input as a crash and saves it).

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "protocol/unique_fd.hpp"

namespace vhostd::fuzz {

[[noreturn]] inline void fail(const char* what) {
    std::fprintf(stderr, "fuzz check failed: %s\n", what);
    std::abort();
}

inline void check(bool ok, const char* what) {
    if (!ok) {
        fail(what);
    }
}

class FdWatch {
public:
    FdWatch() : baseline_(lowest_free()) {}

    // A memfd of `size` bytes (the kind of fd guest memory arrives as).
    UniqueFd memfd(uint64_t size) {
        UniqueFd fd(::memfd_create("vhostd-fuzz", MFD_CLOEXEC));
        check(fd.valid(), "memfd_create failed");
        check(::ftruncate(fd.get(), static_cast<off_t>(size)) == 0, "ftruncate failed");
        given_.push_back(fd.get());
        return fd;
    }

    // An fd that is not a regular file (as an eventfd or a socket would be).
    UniqueFd devnull() {
        UniqueFd fd(::open("/dev/null", O_RDWR | O_CLOEXEC));
        check(fd.valid(), "open /dev/null failed");
        given_.push_back(fd.get());
        return fd;
    }

    // Whether `fd` is one this watch handed out.
    [[nodiscard]] bool gave(int fd) const {
        for (int g : given_) {
            if (g == fd) {
                return true;
            }
        }
        return false;
    }

    // Every fd handed out is closed, and the process holds no fd it did not
    // hold before (the lowest free number is back where it was).
    void check_all_closed() const {
        for (int fd : given_) {
            if (::fcntl(fd, F_GETFD) != -1 || errno != EBADF) {
                std::fprintf(stderr, "fuzz check failed: fd %d is still open\n", fd);
                std::abort();
            }
        }
        check(lowest_free() == baseline_, "the process holds more fds than before the input");
    }

private:
    static int lowest_free() {
        const int fd = ::fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 0);
        check(fd >= 0, "dup failed");
        ::close(fd);
        return fd;
    }

    int baseline_;
    std::vector<int> given_;
};

} // namespace vhostd::fuzz
