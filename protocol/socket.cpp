#include "protocol/socket.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

namespace vhostd::protocol {
namespace {

Result<sockaddr_un> make_addr(const std::string& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
        return make_error(fmt::format("socket path '{}' is empty or longer than {} bytes", path,
                                      sizeof(addr.sun_path) - 1));
    }
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    return addr;
}

std::string errno_text(int err) { return std::strerror(err); }

constexpr const char* kTmpName = "s";

// A directory of mode 0700 named `<parent>/.vhostd-XXXXXX`, removed (with the
// socket left in it on failure) when it goes out of scope.
class PrivateDir {
public:
    explicit PrivateDir(std::filesystem::path parent) : parent_(std::move(parent)) {}
    PrivateDir(const PrivateDir&) = delete;
    PrivateDir& operator=(const PrivateDir&) = delete;
    ~PrivateDir() {
        if (fd_) {
            ::unlinkat(fd_.get(), kTmpName, 0);
            fd_.reset();
        }
        if (!path_.empty()) {
            ::rmdir(path_.c_str());
        }
    }

    Status create() {
        std::string tmpl = (parent_ / ".vhostd-XXXXXX").string();
        if (::mkdtemp(tmpl.data()) == nullptr) { // mkdtemp makes it 0700
            return make_error(fmt::format("cannot create a private directory in {}: {}",
                                          parent_.string(), errno_text(errno)));
        }
        path_ = tmpl;
        fd_.reset(::open(path_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (!fd_) {
            return make_error(fmt::format("cannot open {}: {}", path_, errno_text(errno)));
        }
        return Ok{};
    }
    [[nodiscard]] int fd() const noexcept { return fd_.get(); }

private:
    std::filesystem::path parent_;
    std::string path_;
    UniqueFd fd_;
};

} // namespace

Result<UniqueFd> listen_unix(const std::string& path, const ListenOptions& options) {
    auto addr = make_addr(path);
    if (!addr) {
        return std::move(addr).error();
    }
    const std::filesystem::path parent = std::filesystem::path(path).parent_path();
    if (!parent.empty()) {
        std::error_code ec;
        std::filesystem::create_directories(parent, ec);
        if (ec) {
            return make_error(fmt::format("socket {}: cannot create directory {}: {}", path,
                                          parent.string(), ec.message()));
        }
    }
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            return make_error(fmt::format("socket {}: path exists and is not a socket", path));
        }
        // A socket file: live listener or stale leftover of a crashed process?
        auto probe = connect_unix(path);
        if (std::holds_alternative<UniqueFd>(probe)) {
            return make_error(fmt::format(
                "socket {}: another process is listening on it (is vhostd already running?)", path));
        }
        const int err = std::get<ConnectError>(probe).err;
        if (err != ECONNREFUSED && err != ENOENT) {
            return make_error(fmt::format("socket {}: cannot tell whether it is in use: {}", path,
                                          errno_text(err)));
        }
        if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
            return make_error(fmt::format("socket {}: cannot remove stale socket: {}", path,
                                          errno_text(errno)));
        }
    }
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) {
        return make_error(fmt::format("socket {}: socket(): {}", path, errno_text(errno)));
    }
    // bind() creates the socket file with the process umask's permissions; a
    // chmod afterwards would leave a window in which another user may connect
    // (or the file has no group yet). umask() cannot close it: it is
    // process-wide, and other threads (DPDK's, the PMDs) may create files at
    // the same time. So the socket is bound inside a fresh directory of mode
    // 0700 beside `path` (same file system), given its mode and group there,
    // set listening, and only then renamed into place: it appears at `path`
    // complete. bind goes through /proc/self/fd/N/ so the temporary name
    // never exceeds sun_path, whatever the length of `path`.
    PrivateDir tmp(parent.empty() ? std::filesystem::path(".") : parent);
    if (auto s = tmp.create(); !s) {
        return make_error(fmt::format("socket {}: {}", path, s.error().message));
    }
    auto bind_addr = make_addr(fmt::format("/proc/self/fd/{}/{}", tmp.fd(), kTmpName));
    if (!bind_addr) {
        return std::move(bind_addr).error();
    }
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&*bind_addr), sizeof(sockaddr_un)) != 0) {
        return make_error(fmt::format("socket {}: bind: {}", path, errno_text(errno)));
    }
    if (::fchmodat(tmp.fd(), kTmpName, options.mode, 0) != 0) {
        return make_error(fmt::format("socket {}: chmod {:o}: {}", path, options.mode,
                                      errno_text(errno)));
    }
    if (options.group &&
        ::fchownat(tmp.fd(), kTmpName, static_cast<uid_t>(-1), *options.group, 0) != 0) {
        return make_error(fmt::format("socket {}: chown to group {}: {}", path, *options.group,
                                      errno_text(errno)));
    }
    if (::listen(fd.get(), options.backlog) != 0) {
        return make_error(fmt::format("socket {}: listen: {}", path, errno_text(errno)));
    }
    // RENAME_NOREPLACE: a process that took `path` since the stale check
    // keeps it, and this start-up fails instead.
    if (::renameat2(tmp.fd(), kTmpName, AT_FDCWD, path.c_str(), RENAME_NOREPLACE) != 0) {
        return make_error(fmt::format("socket {}: moving the socket into place: {}", path,
                                      errno_text(errno)));
    }
    return fd;
}

std::variant<UniqueFd, ConnectError> connect_unix(const std::string& path) {
    auto addr = make_addr(path);
    if (!addr) {
        return ConnectError{EINVAL, addr.error().message};
    }
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) {
        const int err = errno;
        return ConnectError{err, fmt::format("socket(): {}", errno_text(err))};
    }
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof(sockaddr_un)) != 0) {
        const int err = errno;
        return ConnectError{err, fmt::format("connect {}: {}", path, errno_text(err))};
    }
    return fd;
}

Status send_with_fds(int fd, std::span<const uint8_t> bytes, std::span<const int> fds) {
    if (fds.size() > kMaxFdsPerMessage) {
        return make_error(fmt::format("{} fds exceed the {} one message may carry", fds.size(),
                                      kMaxFdsPerMessage));
    }
    size_t sent = 0;
    bool first = true;
    while (sent < bytes.size()) {
        iovec iov{const_cast<uint8_t*>(bytes.data() + sent), bytes.size() - sent};
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        alignas(cmsghdr) uint8_t control[kCmsgSpace] = {};
        if (first && !fds.empty()) {
            msg.msg_control = control;
            msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
            cmsghdr* c = CMSG_FIRSTHDR(&msg);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
            std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
        }
        const ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return make_error(fmt::format("sendmsg: {}", errno_text(errno)));
        }
        sent += static_cast<size_t>(n);
        first = false;
    }
    return Ok{};
}

Status send_all(int fd, std::span<const uint8_t> bytes) { return send_with_fds(fd, bytes, {}); }

std::vector<UniqueFd> take_fds(const msghdr& msg) {
    std::vector<UniqueFd> fds;
    if (msg.msg_control == nullptr) {
        return fds;
    }
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr;
         c = CMSG_NXTHDR(const_cast<msghdr*>(&msg), c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
            continue;
        }
        const size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; ++i) {
            int raw = -1;
            std::memcpy(&raw, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            fds.emplace_back(raw);
        }
    }
    return fds;
}

std::span<uint8_t> MessageReader::buffer() noexcept {
    const size_t want = header_ ? sizeof(MsgHeader) + header_->size : sizeof(MsgHeader);
    return {buf_.data() + have_, want - have_};
}

std::optional<Result<Message>> MessageReader::consume(size_t n, std::vector<UniqueFd> fds,
                                                      bool truncated) {
    // fds belong to the message being read, whichever recvmsg carried them.
    for (auto& fd : fds) {
        if (fds_.size() >= kMaxFdsPerMessage) {
            truncated = true; // more than one message may carry: fail it
            break;
        }
        fds_.push_back(std::move(fd));
    }
    truncated_ = truncated_ || truncated;
    have_ += n;
    if (!header_) {
        if (have_ < sizeof(MsgHeader)) {
            return std::nullopt;
        }
        auto header = decode_header(std::span<const uint8_t>(buf_.data(), sizeof(MsgHeader)));
        if (!header) {
            have_ = 0;
            fds_.clear();
            truncated_ = false;
            return Result<Message>(std::move(header).error());
        }
        header_ = *header;
    }
    if (have_ < sizeof(MsgHeader) + header_->size) {
        return std::nullopt;
    }
    const MsgHeader header = *header_;
    auto result = decode_body(header,
                              std::span<const uint8_t>(buf_.data() + sizeof(MsgHeader), header.size),
                              std::move(fds_), truncated_);
    header_.reset();
    have_ = 0;
    fds_.clear();
    truncated_ = false;
    return result;
}

} // namespace vhostd::protocol
