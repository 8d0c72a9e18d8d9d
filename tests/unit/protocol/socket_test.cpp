// Unit tests for protocol/socket: listen_unix (mode, group, live-listener and
// stale-socket detection, refusal of other file types and long paths),
// connect_unix, fd passing, and MessageReader framing of a byte stream that
// arrives in arbitrary pieces with fds on any of them.

#include "protocol/socket.hpp"

#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "protocol/codec.hpp"
#include "protocol/wire.hpp"
#include "tests/fakes/fake_frontend.hpp"
#include "tests/fakes/recording_device.hpp"
#include "tests/unit/protocol/test_support.hpp"

namespace vhostd::protocol {
namespace {

using fakes::bytes_of;
using fakes::mem_table_payload;
using testing_support::count_fds;
using testing_support::fd_closed;
using testing_support::fd_open;
using testing_support::FdSet;
using testing_support::is_error;
using testing_support::is_ok;

// A fresh directory under /tmp, removed with everything in it.
class TempDir {
public:
    TempDir() {
        char tmpl[] = "/tmp/vhostd-sock-XXXXXX";
        const char* dir = ::mkdtemp(tmpl);
        EXPECT_NE(dir, nullptr);
        path_ = dir != nullptr ? dir : "/tmp";
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    [[nodiscard]] const std::string& path() const noexcept { return path_; }
    [[nodiscard]] std::string file(const std::string& name) const { return path_ + "/" + name; }

private:
    std::string path_;
};

struct stat stat_of(const std::string& path) {
    struct stat st {};
    EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path << ": " << std::strerror(errno);
    return st;
}

bool can_connect(const std::string& path) {
    return std::holds_alternative<UniqueFd>(connect_unix(path));
}

// A socket bound to `path` and then closed without unlink: what a crashed
// daemon leaves behind.
void leave_stale_socket(const std::string& path, bool listened) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    ASSERT_TRUE(fd.valid());
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    ASSERT_LT(path.size(), sizeof addr.sun_path);
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    ASSERT_EQ(::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0)
        << std::strerror(errno);
    if (listened) {
        ASSERT_EQ(::listen(fd.get(), 1), 0);
    }
}

class UmaskGuard {
public:
    explicit UmaskGuard(mode_t mask) : old_(::umask(mask)) {}
    ~UmaskGuard() { ::umask(old_); }
    UmaskGuard(const UmaskGuard&) = delete;
    UmaskGuard& operator=(const UmaskGuard&) = delete;

private:
    mode_t old_;
};

// ---------------------------------------------------------------------------
// listen_unix

TEST(ListenUnix, CreatesTheSocketWithTheRequestedMode) {
    TempDir dir;
    UmaskGuard umask(022);  // would turn 0666 into 0644 if chmod were missing
    for (uint32_t mode : {0600u, 0660u, 0666u, 0700u}) {
        const std::string path = dir.file("mode-" + std::to_string(mode) + ".sock");
        ListenOptions options;
        options.mode = mode;
        auto fd = listen_unix(path, options);
        ASSERT_TRUE(is_ok(fd));
        const struct stat st = stat_of(path);
        EXPECT_TRUE(S_ISSOCK(st.st_mode));
        EXPECT_EQ(st.st_mode & 07777, mode) << std::oct << "want " << mode << " got " << (st.st_mode & 07777);
        EXPECT_TRUE(can_connect(path));
        // Non-blocking and close-on-exec, as the io_uring loop expects.
        EXPECT_NE(::fcntl(fd->get(), F_GETFL) & O_NONBLOCK, 0);
        EXPECT_NE(::fcntl(fd->get(), F_GETFD) & FD_CLOEXEC, 0);
    }
}

TEST(ListenUnix, AppliesTheGroup) {
    TempDir dir;
    const std::string path = dir.file("group.sock");
    ListenOptions options;
    options.group = ::getgid();
    auto fd = listen_unix(path, options);
    ASSERT_TRUE(is_ok(fd));
    EXPECT_EQ(stat_of(path).st_gid, ::getgid());
}

// The socket must never be reachable at its path with the umask's
// permissions (a chmod after bind leaves such a window): it has to appear
// there by a rename, complete, never be created there. inotify sees every
// step in the parent directory.
TEST(ListenUnix, TheSocketAppearsAtItsPathOnlyWithItsFinalModeAndGroup) {
    TempDir dir;
    UmaskGuard umask(0);  // bind alone would create it 0777
    UniqueFd watch(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
    ASSERT_TRUE(watch.valid());
    ASSERT_GE(::inotify_add_watch(watch.get(), dir.path().c_str(),
                                  IN_CREATE | IN_ATTRIB | IN_MOVED_TO | IN_DELETE),
              0);
    const std::string path = dir.file("vm.sock");
    ListenOptions options;
    options.mode = 0600;
    options.group = ::getgid();
    auto fd = listen_unix(path, options);
    ASSERT_TRUE(is_ok(fd));

    bool moved_in = false;
    alignas(inotify_event) char buf[8192];
    const ssize_t n = ::read(watch.get(), buf, sizeof buf);
    ASSERT_GT(n, 0);
    for (ssize_t off = 0; off < n;) {
        const auto* ev = reinterpret_cast<const inotify_event*>(buf + off);
        const std::string name = ev->len > 0 ? ev->name : "";
        if (name == "vm.sock") {
            EXPECT_EQ(ev->mask & (IN_CREATE | IN_ATTRIB), 0u)
                << "the socket was created or changed at its final path (mask 0x" << std::hex
                << ev->mask << ")";
            moved_in = moved_in || (ev->mask & IN_MOVED_TO) != 0;
        }
        off += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
    }
    EXPECT_TRUE(moved_in) << "no IN_MOVED_TO for the socket";
    const struct stat st = stat_of(path);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, 0600u);
    EXPECT_EQ(st.st_gid, ::getgid());
    EXPECT_TRUE(can_connect(path));
    // The private directory it was bound in is gone.
    std::vector<std::string> entries;
    for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
        entries.push_back(e.path().filename().string());
    }
    EXPECT_EQ(entries, std::vector<std::string>{"vm.sock"});
}

TEST(ListenUnix, RefusesWhenALiveListenerHoldsThePath) {
    TempDir dir;
    const std::string path = dir.file("live.sock");
    auto first = listen_unix(path, {});
    ASSERT_TRUE(is_ok(first));
    auto second = listen_unix(path, {});
    EXPECT_TRUE(is_error(second, {path, "listening"}));
    // The live listener keeps its socket file.
    EXPECT_TRUE(S_ISSOCK(stat_of(path).st_mode));
    EXPECT_TRUE(can_connect(path));
}

TEST(ListenUnix, ReplacesAStaleSocket) {
    for (bool listened : {false, true}) {
        TempDir dir;
        const std::string path = dir.file("stale.sock");
        leave_stale_socket(path, listened);
        ASSERT_TRUE(S_ISSOCK(stat_of(path).st_mode)) << "the stale file is there";
        auto probe = connect_unix(path);
        ASSERT_TRUE(std::holds_alternative<ConnectError>(probe));
        EXPECT_EQ(std::get<ConnectError>(probe).err, ECONNREFUSED);

        auto fd = listen_unix(path, {});
        ASSERT_TRUE(is_ok(fd)) << (listened ? "listened" : "bound only");
        EXPECT_TRUE(can_connect(path));
    }
}

TEST(ListenUnix, RefusesAPathThatIsARegularFile) {
    TempDir dir;
    const std::string path = dir.file("not-a-socket");
    {
        std::ofstream out(path);
        out << "keep me";
    }
    auto fd = listen_unix(path, {});
    EXPECT_TRUE(is_error(fd, {path, "not a socket"}));
    // Left alone.
    std::ifstream in(path);
    std::string content;
    std::getline(in, content);
    EXPECT_EQ(content, "keep me");
    EXPECT_TRUE(S_ISREG(stat_of(path).st_mode));
}

TEST(ListenUnix, RefusesADirectoryOrSymlinkAtThePath) {
    TempDir dir;
    const std::string sub = dir.file("a-directory");
    ASSERT_EQ(::mkdir(sub.c_str(), 0755), 0);
    EXPECT_TRUE(is_error(listen_unix(sub, {}), {sub, "not a socket"}));

    // A symlink to a live socket is not followed.
    const std::string target = dir.file("target.sock");
    auto live = listen_unix(target, {});
    ASSERT_TRUE(is_ok(live));
    const std::string link = dir.file("link.sock");
    ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
    EXPECT_TRUE(is_error(listen_unix(link, {}), {link}));
}

TEST(ListenUnix, PathLengthLimit) {
    TempDir dir;
    const size_t limit = sizeof(sockaddr_un{}.sun_path);  // 108, with the NUL
    ASSERT_EQ(limit, 108u);
    const std::string prefix = dir.path() + "/";
    const std::string at_limit = prefix + std::string(limit - prefix.size(), 's');         // 108 bytes
    const std::string just_fits = prefix + std::string(limit - 1 - prefix.size(), 's');   // 107 bytes
    ASSERT_EQ(at_limit.size(), 108u);
    ASSERT_EQ(just_fits.size(), 107u);

    EXPECT_TRUE(is_error(listen_unix(at_limit, {}), {"longer than 107"}));
    EXPECT_TRUE(is_error(listen_unix(prefix + std::string(300, 'x'), {}), {"longer"}));
    EXPECT_TRUE(is_error(listen_unix("", {}), {"empty"}));
    EXPECT_FALSE(std::filesystem::exists(at_limit));

    auto ok = listen_unix(just_fits, {});
    ASSERT_TRUE(is_ok(ok));
    EXPECT_TRUE(can_connect(just_fits));

    auto c = connect_unix(at_limit);
    ASSERT_TRUE(std::holds_alternative<ConnectError>(c));
    EXPECT_EQ(std::get<ConnectError>(c).err, EINVAL);
}

TEST(ListenUnix, CreatesTheParentDirectory) {
    TempDir dir;
    const std::string path = dir.file("run/vhostd/port0.sock");
    auto fd = listen_unix(path, {});
    ASSERT_TRUE(is_ok(fd));
    EXPECT_TRUE(std::filesystem::is_directory(dir.file("run/vhostd")));
    EXPECT_TRUE(can_connect(path));
}

TEST(ListenUnix, NoFdLeakOnRefusal) {
    TempDir dir;
    const std::string path = dir.file("live.sock");
    auto first = listen_unix(path, {});
    ASSERT_TRUE(is_ok(first));
    const std::string file = dir.file("file");
    std::ofstream(file) << "x";
    const size_t before = count_fds();
    for (int i = 0; i < 10; ++i) {
        (void)listen_unix(path, {});
        (void)listen_unix(file, {});
    }
    // The refused probes connected to the live listener; accept and drop
    // them so that only our own fds are compared.
    for (;;) {
        UniqueFd conn(::accept4(first->get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (!conn) {
            break;
        }
    }
    EXPECT_EQ(count_fds(), before);
}

TEST(ConnectUnix, ReportsWhy) {
    TempDir dir;
    auto missing = connect_unix(dir.file("missing.sock"));
    ASSERT_TRUE(std::holds_alternative<ConnectError>(missing));
    EXPECT_EQ(std::get<ConnectError>(missing).err, ENOENT);
    EXPECT_NE(std::get<ConnectError>(missing).message.find("missing.sock"), std::string::npos);

    const std::string stale = dir.file("stale.sock");
    leave_stale_socket(stale, true);
    auto refused = connect_unix(stale);
    ASSERT_TRUE(std::holds_alternative<ConnectError>(refused));
    EXPECT_EQ(std::get<ConnectError>(refused).err, ECONNREFUSED);
}

// ---------------------------------------------------------------------------
// Fd passing

TEST(FdPassing, SendWithFdsAndTakeFds) {
    auto pair = fakes::make_socketpair();
    FdSet sent = FdSet::eventfds(3);
    const std::vector<uint8_t> bytes = {1, 2, 3, 4};
    ASSERT_TRUE(is_ok(send_with_fds(pair.frontend.get(), bytes, sent.raw)));

    uint8_t buf[16];
    iovec iov{buf, sizeof buf};
    alignas(cmsghdr) uint8_t control[kCmsgSpace] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ASSERT_EQ(::recvmsg(pair.backend.get(), &msg, MSG_CMSG_CLOEXEC), 4);
    EXPECT_EQ(msg.msg_flags & MSG_CTRUNC, 0);
    std::vector<UniqueFd> got = take_fds(msg);
    ASSERT_EQ(got.size(), 3u);
    for (size_t i = 0; i < 3; ++i) {
        ASSERT_TRUE(fd_open(got[i].get()));
        EXPECT_NE(::fcntl(got[i].get(), F_GETFD) & FD_CLOEXEC, 0);
        // Same eventfd: a write on one side is read on the other.
        const uint64_t v = 10 + i;
        ASSERT_EQ(::write(sent.raw[i], &v, sizeof v), ssize_t{sizeof v});
        uint64_t r = 0;
        ASSERT_EQ(::read(got[i].get(), &r, sizeof r), ssize_t{sizeof r});
        EXPECT_EQ(r, v);
    }
}

TEST(FdPassing, MoreFdsThanOneMessageMayCarry) {
    auto pair = fakes::make_socketpair();
    FdSet fds = FdSet::eventfds(kMaxFdsPerMessage + 1);
    const std::vector<uint8_t> bytes = {1};
    EXPECT_TRUE(is_error(send_with_fds(pair.frontend.get(), bytes, fds.raw), {"fds"}));

    // Sent anyway (raw sendmsg), they arrive truncated: kCmsgSpace holds 8.
    fakes::FakeFrontend fe(std::move(pair.frontend));
    ASSERT_TRUE(is_ok(fe.send_bytes_raw(bytes, fds.raw)));
    uint8_t buf[4];
    iovec iov{buf, sizeof buf};
    alignas(cmsghdr) uint8_t control[kCmsgSpace] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ASSERT_EQ(::recvmsg(pair.backend.get(), &msg, MSG_CMSG_CLOEXEC), 1);
    EXPECT_NE(msg.msg_flags & MSG_CTRUNC, 0);
    EXPECT_LE(take_fds(msg).size(), kMaxFdsPerMessage);
}

// ---------------------------------------------------------------------------
// MessageReader

// Feeds `bytes` to `reader` in pieces of `piece` bytes (never more than
// buffer() asks for); the fds go with the piece that starts at `fds_at`.
// Returns the first result the reader produces.
std::optional<Result<Message>> feed(MessageReader& reader, const std::vector<uint8_t>& bytes, size_t piece,
                                    std::vector<UniqueFd> fds = {}, size_t fds_at = 0,
                                    size_t* consumed = nullptr) {
    size_t at = 0;
    while (at < bytes.size()) {
        std::span<uint8_t> buf = reader.buffer();
        EXPECT_FALSE(buf.empty());
        const size_t n = std::min({piece, buf.size(), bytes.size() - at});
        std::memcpy(buf.data(), bytes.data() + at, n);
        std::vector<UniqueFd> these;
        if (at <= fds_at && fds_at < at + n) {
            these = std::move(fds);
        }
        at += n;
        auto r = reader.consume(n, std::move(these), false);
        if (r) {
            if (consumed != nullptr) {
                *consumed = at;
            }
            return r;
        }
    }
    if (consumed != nullptr) {
        *consumed = at;
    }
    return std::nullopt;
}

std::vector<uint8_t> two_region_mem_table() {
    const MemRegionWire regions[2] = {
        {0x100000, 0x1000, 0x7f0000100000, 0},
        {0x200000, 0x2000, 0x7f0000200000, 0x1000},
    };
    return encode_request(Request::SetMemTable, kFlagVersion1, std::span<const uint8_t>(mem_table_payload(regions)));
}

TEST(MessageReader, AssemblesAMessageDeliveredOneByteAtATime) {
    MessageReader reader;
    const auto bytes = two_region_mem_table();
    FdSet fds = FdSet::eventfds(2);

    // Byte by byte; the fds arrive with the very first byte.
    size_t at = 0;
    std::optional<Result<Message>> result;
    std::vector<UniqueFd> pending = fds.take();
    while (at < bytes.size()) {
        std::span<uint8_t> buf = reader.buffer();
        ASSERT_FALSE(buf.empty());
        // Never asks for bytes beyond the current message.
        EXPECT_LE(buf.size(), bytes.size() - at);
        buf[0] = bytes[at];
        ++at;
        result = reader.consume(1, at == 1 ? std::move(pending) : std::vector<UniqueFd>{}, false);
        if (at < bytes.size()) {
            ASSERT_FALSE(result.has_value()) << "complete after " << at << " of " << bytes.size();
            EXPECT_EQ(reader.pending(), at);
        }
    }
    ASSERT_TRUE(result.has_value());
    ASSERT_TRUE(is_ok(*result));
    EXPECT_EQ(reader.pending(), 0u);
    const Message& m = result->value();
    EXPECT_EQ(m.request, Request::SetMemTable);
    const auto& table = std::get<MemTable>(m.body);
    ASSERT_EQ(table.regions.size(), 2u);
    EXPECT_EQ(table.regions[1].memory_size, 0x2000u);
    EXPECT_EQ(table.regions[1].mmap_offset, 0x1000u);
    ASSERT_EQ(table.fds.size(), 2u);
    EXPECT_EQ(table.fds[0].get(), fds.raw[0]);
    EXPECT_EQ(table.fds[1].get(), fds.raw[1]);
}

TEST(MessageReader, HeaderThenBodyWithFdsOnTheFirstPiece) {
    MessageReader reader;
    const auto bytes = two_region_mem_table();
    EXPECT_EQ(reader.buffer().size(), sizeof(MsgHeader)) << "first the header only";
    FdSet fds = FdSet::eventfds(2);

    std::span<uint8_t> head = reader.buffer();
    std::memcpy(head.data(), bytes.data(), sizeof(MsgHeader));
    auto r = reader.consume(sizeof(MsgHeader), fds.take(), false);
    EXPECT_FALSE(r.has_value());
    // Then exactly the body the header announced.
    std::span<uint8_t> body = reader.buffer();
    ASSERT_EQ(body.size(), bytes.size() - sizeof(MsgHeader));
    std::memcpy(body.data(), bytes.data() + sizeof(MsgHeader), body.size());
    r = reader.consume(body.size(), {}, false);
    ASSERT_TRUE(r.has_value());
    ASSERT_TRUE(is_ok(*r));
    const auto& table = std::get<MemTable>(r->value().body);
    ASSERT_EQ(table.fds.size(), 2u);
    EXPECT_EQ(table.fds[0].get(), fds.raw[0]);
    EXPECT_EQ(table.fds[1].get(), fds.raw[1]);
    EXPECT_EQ(reader.buffer().size(), sizeof(MsgHeader)) << "ready for the next message";
}

TEST(MessageReader, FdsOnALaterPieceBelongToTheSameMessage) {
    MessageReader reader;
    const auto bytes = two_region_mem_table();
    FdSet fds = FdSet::eventfds(2);
    auto r = feed(reader, bytes, 7, fds.take(), /*fds_at=*/20);
    ASSERT_TRUE(r.has_value());
    ASSERT_TRUE(is_ok(*r));
    EXPECT_EQ(std::get<MemTable>(r->value().body).fds.size(), 2u);
}

TEST(MessageReader, BackToBackMessages) {
    MessageReader reader;
    auto bytes = encode_request(Request::SetOwner, kFlagVersion1, std::span<const uint8_t>{});
    const auto second = encode_request(Request::SetVringNum, kFlagVersion1, VringState{1, 512});
    bytes.insert(bytes.end(), second.begin(), second.end());
    size_t used = 0;
    auto first = feed(reader, bytes, 5, {}, 0, &used);
    ASSERT_TRUE(first && is_ok(*first));
    EXPECT_EQ(first->value().request, Request::SetOwner);
    EXPECT_EQ(used, sizeof(MsgHeader));
    const std::vector<uint8_t> rest(bytes.begin() + static_cast<ptrdiff_t>(used), bytes.end());
    auto next = feed(reader, rest, 3);
    ASSERT_TRUE(next && is_ok(*next));
    EXPECT_EQ(std::get<VringState>(next->value().body).num, 512u);
}

TEST(MessageReader, TooManyFdsAcrossPiecesFailTheMessageAndAreClosed) {
    MessageReader reader;
    const auto bytes = two_region_mem_table();
    FdSet a = FdSet::eventfds(6);
    FdSet b = FdSet::eventfds(6);
    std::span<uint8_t> head = reader.buffer();
    std::memcpy(head.data(), bytes.data(), sizeof(MsgHeader));
    EXPECT_FALSE(reader.consume(sizeof(MsgHeader), a.take(), false).has_value());
    std::span<uint8_t> body = reader.buffer();
    std::memcpy(body.data(), bytes.data() + sizeof(MsgHeader), body.size());
    auto r = reader.consume(body.size(), b.take(), false);
    ASSERT_TRUE(r.has_value());
    EXPECT_TRUE(is_error(*r, {"SET_MEM_TABLE"}));
    for (int fd : a.raw) {
        EXPECT_TRUE(fd_closed(fd));
    }
    for (int fd : b.raw) {
        EXPECT_TRUE(fd_closed(fd));
    }
}

TEST(MessageReader, TruncatedPieceFailsTheMessage) {
    MessageReader reader;
    const auto bytes = encode_request(Request::SetVringCall, kFlagVersion1, uint64_t{0});
    FdSet fds = FdSet::eventfds(1);
    std::span<uint8_t> head = reader.buffer();
    std::memcpy(head.data(), bytes.data(), sizeof(MsgHeader));
    EXPECT_FALSE(reader.consume(sizeof(MsgHeader), fds.take(), /*truncated=*/true).has_value());
    std::span<uint8_t> body = reader.buffer();
    std::memcpy(body.data(), bytes.data() + sizeof(MsgHeader), body.size());
    auto r = reader.consume(body.size(), {}, false);
    ASSERT_TRUE(r.has_value());
    EXPECT_TRUE(is_error(*r, {"SET_VRING_CALL", "truncated"}));
    EXPECT_TRUE(fd_closed(fds.raw[0]));
}

TEST(MessageReader, BadHeaderFailsBeforeTheBodyAndResets) {
    MessageReader reader;
    FdSet fds = FdSet::eventfds(1);
    const auto bad = bytes_of(MsgHeader{static_cast<uint32_t>(Request::SetMemTable), kFlagVersion1, kMaxPayload + 1});
    auto r = feed(reader, bad, 4, fds.take());
    ASSERT_TRUE(r.has_value());
    EXPECT_TRUE(is_error(*r, {"SET_MEM_TABLE", "limit"}));
    EXPECT_TRUE(fd_closed(fds.raw[0]));
    EXPECT_EQ(reader.pending(), 0u);
    // The reader starts over with the next header.
    EXPECT_EQ(reader.buffer().size(), sizeof(MsgHeader));
    auto good = feed(reader, encode_request(Request::GetFeatures, kFlagVersion1, std::span<const uint8_t>{}), 12);
    ASSERT_TRUE(good && is_ok(*good));
    EXPECT_EQ(good->value().request, Request::GetFeatures);
}

TEST(MessageReader, LargestPayloadFits) {
    MessageReader reader;
    std::vector<uint8_t> bytes =
        bytes_of(MsgHeader{static_cast<uint32_t>(Request::SetMemTable), kFlagVersion1, kMaxPayload});
    bytes.resize(sizeof(MsgHeader) + kMaxPayload, 0);
    std::span<uint8_t> head = reader.buffer();
    std::memcpy(head.data(), bytes.data(), sizeof(MsgHeader));
    EXPECT_FALSE(reader.consume(sizeof(MsgHeader), {}, false).has_value());
    EXPECT_EQ(reader.buffer().size(), kMaxPayload);
    auto r = feed(reader, std::vector<uint8_t>(bytes.begin() + sizeof(MsgHeader), bytes.end()), 1000);
    ASSERT_TRUE(r.has_value());
    EXPECT_TRUE(is_error(*r, {"SET_MEM_TABLE"})) << "framed, then refused by the body rule";
}

// The same over a real socket: the front-end writes a message one byte per
// send (fds on the first), the back-end reads with recvmsg into the buffer
// MessageReader hands out, one byte at a time.
TEST(MessageReader, OneBytePiecesOverARealSocket) {
    auto pair = fakes::make_socketpair();
    UniqueFd call = testing_support::eventfd_or_die();
    const auto bytes = encode_request(Request::SetVringCall, kFlagVersion1, uint64_t{1});
    const int raw = call.get();
    ASSERT_TRUE(is_ok(send_with_fds(pair.frontend.get(), std::span(bytes).first(1), std::span(&raw, 1))));
    for (size_t i = 1; i < bytes.size(); ++i) {
        ASSERT_TRUE(is_ok(send_all(pair.frontend.get(), std::span(bytes).subspan(i, 1))));
    }

    MessageReader reader;
    std::optional<Result<Message>> result;
    size_t reads = 0;
    while (!result) {
        std::span<uint8_t> buf = reader.buffer();
        iovec iov{buf.data(), 1};
        alignas(cmsghdr) uint8_t control[kCmsgSpace] = {};
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        const ssize_t n = ::recvmsg(pair.backend.get(), &msg, MSG_CMSG_CLOEXEC);
        ASSERT_EQ(n, 1);
        ++reads;
        result = reader.consume(1, take_fds(msg), (msg.msg_flags & MSG_CTRUNC) != 0);
    }
    EXPECT_EQ(reads, bytes.size());
    ASSERT_TRUE(is_ok(*result));
    const auto& v = std::get<VringFd>(result->value().body);
    EXPECT_EQ(v.index, 1u);
    ASSERT_TRUE(v.fd.valid());
    const uint64_t one = 1;
    ASSERT_EQ(::write(v.fd.get(), &one, sizeof one), ssize_t{sizeof one});
    uint64_t got = 0;
    ASSERT_EQ(::read(call.get(), &got, sizeof got), ssize_t{sizeof got});
    EXPECT_EQ(got, 1u);
}

// And through the BackendPump the session tests use: a message trickling in
// byte by byte is one step.
TEST(MessageReader, PumpAssemblesTricklingBytes) {
    auto pair = fakes::make_socketpair();
    fakes::RecordingDevice device;
    fakes::BackendPump pump(std::move(pair.backend), {}, device);
    fakes::FakeFrontend fe(std::move(pair.frontend));
    const auto bytes = encode_request(Request::GetFeatures, kFlagVersion1, std::span<const uint8_t>{});
    for (size_t i = 0; i < bytes.size(); ++i) {
        ASSERT_TRUE(is_ok(fe.send_bytes(std::span(bytes).subspan(i, 1))));
    }
    auto step = pump.step();
    ASSERT_TRUE(step.ok()) << step.error_text();
    ASSERT_EQ(step.request, Request::GetFeatures);
    auto reply = fe.read_reply();
    ASSERT_TRUE(is_ok(reply));
    EXPECT_EQ(reply->header.request, static_cast<uint32_t>(Request::GetFeatures));
    EXPECT_EQ(reply->header.flags, kFlagVersion1 | kFlagReply);
}

} // namespace
} // namespace vhostd::protocol
