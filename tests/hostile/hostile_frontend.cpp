// hostile_frontend: a vhost-user front-end that attacks a running vhostd over
// its real socket. tests/hostile/*.py start vhostd and run one case per
// process; this program does the talking, the scripts check the daemon's log,
// counters and /proc. docs/security.md says which bug class each case covers.
//
//   hostile_frontend --socket PATH --list              protocol cases: NAME<TAB>log fragment
//   hostile_frontend --socket PATH --list-guest        guest cases: NAME<TAB>outcome<TAB>fragment
//   hostile_frontend --socket PATH --case NAME         one case (exit 0: as expected)
//   hostile_frontend --socket PATH --case good         full handshake, a frame reflected
//   hostile_frontend --socket PATH --pid PID --case churn-{vring-num,mem-table,connect} --count N
//
// Protocol cases end with the daemon closing the connection (it must, and
// must not crash); guest cases print "INJECTED" once the hostile ring is in
// place and hold the connection until a line arrives on stdin.
//
// It reuses the test fakes: FakeFrontend (remote mode), GuestMemory (memfd
// guest RAM, handed to the daemon by SET_MEM_TABLE) and FakeSplitDriver.

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "protocol/socket.hpp"
#include "protocol/wire.hpp"
#include "tests/fakes/fake_frontend.hpp"
#include "tests/fakes/fake_split_driver.hpp"
#include "tests/fakes/guest_memory.hpp"
#include "virtio/split_ring.hpp"

namespace {

using namespace vhostd;
using protocol::Request;
using fakes::bytes_of;
using fakes::FakeFrontend;

constexpr uint32_t kRingSize = 256;
constexpr uint32_t kRings = 2;              // one queue pair: the daemon's port has 2 rings
constexpr uint64_t kMemSize = 4u << 20;     // guest RAM of every connection
constexpr uint32_t kHdrLen = 12;            // virtio-net header with VERSION_1

struct Failure : std::runtime_error {
    using std::runtime_error::runtime_error;
};

[[noreturn]] void fail(const std::string& why) { throw Failure(why); }

void must(const Status& s) {
    if (!s) {
        fail(s.error().message);
    }
}

std::string g_socket;

// ------------------------------------------------------------------ helpers

// A fresh connection to the daemon's socket. The daemon serves one
// front-end per port and lets go of the previous connection asynchronously:
// the scripts wait for its fd count before the next case, and good_session()
// retries a connection the daemon refused.
FakeFrontend connect_frontend() {
    auto r = protocol::connect_unix(g_socket);
    if (auto* e = std::get_if<protocol::ConnectError>(&r)) {
        fail("connect: " + e->message);
    }
    UniqueFd fd = std::move(std::get<UniqueFd>(r));
    // Blocking from here on: FakeFrontend polls before every read.
    const int flags = ::fcntl(fd.get(), F_GETFL);
    ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK);
    return FakeFrontend(std::move(fd));
}

fakes::HandshakeOptions options(uint32_t rings) {
    fakes::HandshakeOptions o;
    o.rings = rings;
    o.ring_size = kRingSize;
    o.need_reply = true;  // every SET_* acknowledged: a refusal shows where it happens
    return o;
}

// Handshake up to SET_MEM_TABLE (no ring set up): the prefix of most cases.
void prefix(FakeFrontend& fe, const fakes::GuestMemory& mem) {
    auto r = fe.handshake_remote(mem, options(0));
    if (!r) {
        fail("handshake prefix: " + r.error().message);
    }
}

void expect_closed(FakeFrontend& fe, const std::string& what) {
    if (!fe.wait_closed_by_peer()) {
        fail(what + ": the daemon kept the connection open");
    }
}

// A pipe whose write end is sent to the daemon: when every copy of it is
// closed the read end sees EOF, which proves the daemon closed it.
struct Probe {
    UniqueFd read;
    UniqueFd write;
    Probe() {
        int p[2];
        if (::pipe2(p, O_CLOEXEC) != 0) {
            fail("pipe2");
        }
        read.reset(p[0]);
        write.reset(p[1]);
    }
};

void expect_probes_closed(std::vector<Probe>& probes) {
    for (size_t i = 0; i < probes.size(); ++i) {
        probes[i].write.reset();  // our copy
        pollfd p{probes[i].read.get(), POLLIN, 0};
        if (::poll(&p, 1, fakes::kRemoteTimeoutMs) != 1 || (p.revents & POLLHUP) == 0) {
            fail("fd " + std::to_string(i) + " sent to the daemon is still open there");
        }
    }
}

std::vector<uint8_t> raw_header(uint32_t request, uint32_t flags, uint32_t size) {
    return bytes_of(protocol::MsgHeader{request, flags, size});
}

std::vector<uint8_t> frame_bytes(size_t len, uint8_t seed) {
    std::vector<uint8_t> f(len);
    for (size_t i = 0; i < len; ++i) {
        f[i] = static_cast<uint8_t>(seed + i * 7);
    }
    // dst 02:..:01, src 02:..:02, ethertype 0x88B5
    const uint8_t eth[14] = {2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x88, 0xB5};
    std::memcpy(f.data(), eth, sizeof eth);
    return f;
}

// ---------------------------------------------------------- a good session

// Guest RAM with the two rings where FakeFrontend::ring_addr puts them, and
// the fake guest driver of each.
struct Guest {
    fakes::GuestMemory mem{kMemSize};
    fakes::FakeSplitDriver rx;  // ring 0: the guest receives (device writes)
    fakes::FakeSplitDriver tx;  // ring 1: the guest transmits (device reads)

    Guest()
        : rx(mem, kRingSize, mem.gpa_base(), mem.gpa_base() + kRings * fakes::ring_stride(kRingSize)),
          tx(mem, kRingSize, mem.gpa_base() + fakes::ring_stride(kRingSize),
             mem.gpa_base() + kMemSize / 2) {
        for (uint32_t i = 0; i < kRings; ++i) {
            const auto a = fakes::ring_addr(mem, i, kRingSize);
            const auto& d = i == 0 ? rx : tx;
            if (a.desc_user_addr != d.desc_uva() || a.avail_user_addr != d.avail_uva() ||
                a.used_user_addr != d.used_uva()) {
                fail("the fake driver's ring layout differs from FakeFrontend::ring_addr");
            }
        }
    }
};

void kick(const FakeFrontend& fe, uint32_t ring) {
    const uint64_t one = 1;
    if (::write(fe.kick_fd(ring), &one, sizeof one) != sizeof one) {
        fail("writing the kick eventfd");
    }
}

template <typename Pred>
bool wait_until(Pred pred, std::chrono::milliseconds limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!pred()) {
        if (std::chrono::steady_clock::now() > end) {
            return false;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
}

// Sends `frame` on ring 1 cut into descriptors of the lengths in `split`
// (after the header) and checks it comes back on ring 0 (xconnect reflect).
void reflect_one(FakeFrontend& fe, Guest& g, const std::vector<uint32_t>& split, uint8_t seed) {
    const auto frame = frame_bytes(60, seed);
    std::vector<uint8_t> bytes(kHdrLen, 0);
    bytes.insert(bytes.end(), frame.begin(), frame.end());
    const uint16_t used_before = g.rx.used_idx();
    const uint16_t rx_head = g.rx.post_rx({2048});
    g.tx.send(bytes, split);
    kick(fe, 1);
    if (!wait_until([&] { return g.rx.used_idx() != used_before; }, std::chrono::seconds(20))) {
        fail("the frame did not come back on ring 0 within 20 s");
    }
    const auto used = g.rx.take_used();
    if (used.size() != 1 || used[0].id != rx_head || used[0].len != kHdrLen + frame.size()) {
        fail("unexpected used element on ring 0");
    }
    const auto got = g.rx.read_chain(rx_head, used[0].len);
    if (!std::equal(frame.begin(), frame.end(), got.begin() + kHdrLen)) {
        fail("the reflected frame differs from the one sent");
    }
    if (!wait_until([&] { return !g.tx.take_used().empty(); }, std::chrono::seconds(20))) {
        fail("the TX chain was not returned on ring 1");
    }
}

void good_session() {
    Guest g;
    // A refused connection (the previous one not yet dropped) is retried.
    for (int attempt = 0;; ++attempt) {
        FakeFrontend fe = connect_frontend();
        auto r = fe.handshake_remote(g.mem, options(kRings));
        if (!r) {
            if (attempt < 100 && r.error().message.find("closed the connection") != std::string::npos) {
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
                continue;
            }
            fail("good session: " + r.error().message);
        }
        reflect_one(fe, g, {}, 1);
        reflect_one(fe, g, {}, 2);
        return;
    }
}

// ------------------------------------------------------- protocol cases

struct ProtocolCase {
    std::string name;
    std::string fragment;  // what the daemon's log must say
    std::function<void(FakeFrontend&, const fakes::GuestMemory&)> run;
};

std::vector<ProtocolCase> protocol_cases() {
    std::vector<ProtocolCase> cases;
    auto raw = [](std::string name, std::string fragment, std::vector<uint8_t> bytes) {
        return ProtocolCase{std::move(name), std::move(fragment),
                            [bytes](FakeFrontend& fe, const fakes::GuestMemory&) {
                                if (auto s = fe.send_bytes(bytes); !s) {
                                    fail(s.error().message);
                                }
                                expect_closed(fe, "raw bytes");
                            }};
    };
    const auto gf = static_cast<uint32_t>(Request::GetFeatures);
    const auto svn = static_cast<uint32_t>(Request::SetVringNum);

    // -- framing and header
    cases.push_back({"size-larger-than-sent", "front-end closed the connection",
                     [=](FakeFrontend& fe, const fakes::GuestMemory&) {
                         auto bytes = raw_header(svn, protocol::kFlagVersion1, 8);
                         bytes.insert(bytes.end(), {1, 2, 3});  // 3 of 8 bytes
                         if (auto s = fe.send_bytes(bytes); !s) {
                             fail(s.error().message);
                         }
                         // The daemon must wait for the rest, not act on 3 bytes.
                         if (fe.wait_closed_by_peer(500)) {
                             fail("the daemon closed a connection whose message is incomplete");
                         }
                         ::shutdown(fe.fd(), SHUT_WR);
                         expect_closed(fe, "after our half-close");
                     }});
    cases.push_back(raw("size-ffffffff", "header size 4294967295 exceeds",
                        raw_header(gf, protocol::kFlagVersion1, 0xFFFFFFFF)));
    {
        auto bytes = raw_header(svn, protocol::kFlagVersion1, 4);
        bytes.insert(bytes.end(), {0, 0, 0, 0});
        cases.push_back(raw("body-too-short", "SET_VRING_NUM: size 4 where the request needs 8", bytes));
    }
    for (uint32_t code : {0u, 44u, 1000u, 0xFFFFFFFFu}) {
        cases.push_back(raw("unknown-request-" + std::to_string(code),
                            "unknown request code " + std::to_string(code),
                            raw_header(code, protocol::kFlagVersion1, 0)));
    }
    cases.push_back(raw("unsupported-request-iotlb", "request not supported",
                        raw_header(static_cast<uint32_t>(Request::IotlbMsg), protocol::kFlagVersion1, 0)));
    // GET/SET_INFLIGHT_FD (not offered) with a payload and two fds attached,
    // as in CVE-2022-0669: refused, and both fds closed.
    for (const auto& [code, label] : {std::pair{Request::GetInflightFd, "GET_INFLIGHT_FD"},
                                      std::pair{Request::SetInflightFd, "SET_INFLIGHT_FD"}}) {
        const uint32_t c = static_cast<uint32_t>(code);
        cases.push_back({std::string("inflight-fd-") + (code == Request::GetInflightFd ? "get" : "set"),
                         std::string(label) + ": request not supported",
                         [c](FakeFrontend& fe, const fakes::GuestMemory&) {
                             std::vector<Probe> probes(2);
                             const int raw_fds[2] = {probes[0].write.get(), probes[1].write.get()};
                             auto bytes = raw_header(c, protocol::kFlagVersion1, 24);
                             bytes.resize(bytes.size() + 24, 0);
                             must(fe.send_bytes(bytes, raw_fds));
                             expect_closed(fe, "INFLIGHT_FD");
                             expect_probes_closed(probes);
                         }});
    }
    cases.push_back(raw("reply-bit-on-request", "reply bit set on a request",
                        raw_header(gf, protocol::kFlagVersion1 | protocol::kFlagReply, 0)));
    cases.push_back(raw("version-2", "version 2", raw_header(gf, 2, 0)));

    // -- ring index on every vring message; ring sizes
    const std::vector<std::pair<Request, const char*>> state_msgs = {
        {Request::SetVringNum, "SET_VRING_NUM"},   {Request::SetVringBase, "SET_VRING_BASE"},
        {Request::GetVringBase, "GET_VRING_BASE"}, {Request::SetVringEnable, "SET_VRING_ENABLE"},
        {Request::SetVringAddr, "SET_VRING_ADDR"}, {Request::SetVringKick, "SET_VRING_KICK"},
        {Request::SetVringCall, "SET_VRING_CALL"}, {Request::SetVringErr, "SET_VRING_ERR"},
    };
    auto hex = [](uint32_t v) {
        char b[16];
        std::snprintf(b, sizeof b, "0x%x", v);
        return std::string(b);
    };
    for (const auto& msg : state_msgs) {
        const Request req = msg.first;
        const std::string label = msg.second;
        // The fd messages carry the index in bits 0-7 of a u64; bit 8 is
        // "no fd" and every other bit is reserved.
        const bool fd_msg =
            req == Request::SetVringKick || req == Request::SetVringCall || req == Request::SetVringErr;
        for (uint32_t index : {kRings, 0x10000u, 0x10000000u}) {
            const std::string fragment =
                fd_msg && index > 0xff
                    ? label + ": payload " + hex(index) + " has reserved bits set"
                    : label + ": ring index " + std::to_string(index) + " out of range";
            cases.push_back({"ring-index-" + label + "-" + hex(index), fragment,
                             [req, index, fd_msg](FakeFrontend& fe, const fakes::GuestMemory& mem) {
                                 prefix(fe, mem);
                                 const uint32_t f = protocol::kFlagVersion1 | protocol::kFlagNeedReply;
                                 std::vector<Probe> probes(1);  // the fd of KICK/CALL/ERR
                                 const int raw_fd = probes[0].write.get();
                                 if (fd_msg) {
                                     must(fe.send(req, bytes_of(uint64_t{index}), std::span(&raw_fd, 1), f));
                                 } else if (req == Request::SetVringAddr) {
                                     auto a = fakes::ring_addr(mem, 0, kRingSize);
                                     a.index = index;
                                     must(fe.send(req, bytes_of(a), {}, f));
                                 } else {
                                     must(fe.send(req, bytes_of(protocol::VringState{index, 1}), {}, f));
                                 }
                                 expect_closed(fe, "bad ring index");
                                 if (fd_msg) {
                                     expect_probes_closed(probes);
                                 }
                             }});
        }
    }
    for (uint32_t num : {0u, 3u, 65536u}) {
        cases.push_back({"ring-size-" + std::to_string(num),
                         "SET_VRING_NUM: ring 0: num " + std::to_string(num) + " is not a power of two",
                         [num](FakeFrontend& fe, const fakes::GuestMemory& mem) {
                             prefix(fe, mem);
                             must(fe.send(Request::SetVringNum, bytes_of(protocol::VringState{0, num}), {},
                                          protocol::kFlagVersion1 | protocol::kFlagNeedReply));
                             expect_closed(fe, "bad ring size");
                         }});
    }

    // -- SET_MEM_TABLE
    auto mem_table = [](std::string name, std::string fragment,
                        std::function<std::vector<protocol::MemRegionWire>(const fakes::GuestMemory&)> regions,
                        std::optional<uint32_t> num, size_t fd_count) {
        return ProtocolCase{
            std::move(name), std::move(fragment),
            [=](FakeFrontend& fe, const fakes::GuestMemory& mem) {
                prefix(fe, mem);
                // Each fd is a pipe's write end, so that its closing can be seen.
                std::vector<Probe> probes(fd_count);
                std::vector<int> raw;
                for (auto& p : probes) {
                    raw.push_back(p.write.get());
                }
                const auto rs = regions(mem);
                const auto payload = fakes::mem_table_payload(rs, num);
                const auto bytes = protocol::encode_request(
                    Request::SetMemTable, protocol::kFlagVersion1 | protocol::kFlagNeedReply, payload);
                if (auto s = fe.send_bytes_raw(bytes, raw); !s) {
                    fail(s.error().message);
                }
                expect_closed(fe, "bad SET_MEM_TABLE");
                expect_probes_closed(probes);
            }};
    };
    auto one = [](const fakes::GuestMemory& m) { return std::vector<protocol::MemRegionWire>{m.region()}; };
    cases.push_back(mem_table("mem-table-0-regions", "num_regions 0",
                              [](const fakes::GuestMemory&) { return std::vector<protocol::MemRegionWire>{}; },
                              std::nullopt, 0));
    cases.push_back(mem_table("mem-table-9-regions", "num_regions 9",
                              [](const fakes::GuestMemory& m) {
                                  std::vector<protocol::MemRegionWire> rs;
                                  for (uint64_t i = 0; i < 9; ++i) {
                                      rs.push_back(m.slice(i * 0x1000, 0x1000));
                                  }
                                  return rs;
                              },
                              std::nullopt, 8));
    cases.push_back(mem_table("mem-table-mmap-offset-overflow",
                              "mmap_offset 0xfffffffffffff7ff + memory_size 0x400000 overflows",
                              [](const fakes::GuestMemory& m) {
                                  auto r = m.region();
                                  r.mmap_offset = ~uint64_t{0} - 0x800;
                                  return std::vector<protocol::MemRegionWire>{r};
                              },
                              std::nullopt, 1));
    cases.push_back(mem_table("mem-table-gpa-overflow",
                              "guest_phys_addr 0xfffffffffffff7ff + memory_size 0x400000 overflows",
                              [](const fakes::GuestMemory& m) {
                                  auto r = m.region();
                                  r.guest_phys_addr = ~uint64_t{0} - 0x800;
                                  return std::vector<protocol::MemRegionWire>{r};
                              },
                              std::nullopt, 1));
    cases.push_back(mem_table("mem-table-uva-overflow",
                              "userspace_addr 0xfffffffffffff7ff + memory_size 0x400000 overflows",
                              [](const fakes::GuestMemory& m) {
                                  auto r = m.region();
                                  r.userspace_addr = ~uint64_t{0} - 0x800;
                                  return std::vector<protocol::MemRegionWire>{r};
                              },
                              std::nullopt, 1));
    cases.push_back(mem_table("mem-table-fd-missing", "1 fds attached where the request takes 2",
                              [](const fakes::GuestMemory& m) {
                                  return std::vector<protocol::MemRegionWire>{m.slice(0, 0x1000),
                                                                              m.slice(0x1000, 0x1000)};
                              },
                              std::nullopt, 1));
    cases.push_back(mem_table("mem-table-extra-fds", "3 fds attached where the request takes 1", one,
                              std::nullopt, 3));
    cases.push_back(mem_table("mem-table-fds-beyond-limit", "ancillary data truncated", one, std::nullopt,
                              protocol::kMaxFdsPerMessage + 4));
    cases.push_back({"fd-on-request-without-fds", "GET_FEATURES: 1 fds attached where the request takes 0",
                     [](FakeFrontend& fe, const fakes::GuestMemory&) {
                         std::vector<Probe> probes(1);
                         const int raw = probes[0].write.get();
                         must(fe.send(Request::GetFeatures, {}, std::span(&raw, 1)));
                         expect_closed(fe, "fd on GET_FEATURES");
                         expect_probes_closed(probes);
                     }});

    // -- SET_VRING_ADDR, SET_LOG_BASE
    auto vring_addr = [](std::string name, std::string fragment,
                         std::function<void(protocol::VringAddr&, const fakes::GuestMemory&)> edit) {
        return ProtocolCase{std::move(name), std::move(fragment),
                            [edit](FakeFrontend& fe, const fakes::GuestMemory& mem) {
                                prefix(fe, mem);
                                const uint32_t f = protocol::kFlagVersion1 | protocol::kFlagNeedReply;
                                auto ex = fe.exchange_remote(Request::SetVringNum,
                                                             bytes_of(protocol::VringState{0, kRingSize}), {}, f,
                                                             true);
                                if (!ex.ok() || !ex.reply || ex.reply->u64() != uint64_t{0}) {
                                    fail("SET_VRING_NUM before the case was not acknowledged");
                                }
                                auto a = fakes::ring_addr(mem, 0, kRingSize);
                                edit(a, mem);
                                must(fe.send(Request::SetVringAddr, bytes_of(a), {}, f));
                                expect_closed(fe, "bad SET_VRING_ADDR");
                            }};
    };
    cases.push_back(vring_addr("vring-addr-outside-memory", "is not inside one memory region",
                               [](protocol::VringAddr& a, const fakes::GuestMemory& m) {
                                   a.desc_user_addr = m.uva_base() + m.size();
                               }));
    cases.push_back(vring_addr("vring-addr-straddles-end", "is not inside one memory region",
                               [](protocol::VringAddr& a, const fakes::GuestMemory& m) {
                                   a.used_user_addr = m.uva_base() + m.size() - 64;
                               }));
    cases.push_back(vring_addr("vring-addr-wraps", "is not inside one memory region",
                               [](protocol::VringAddr& a, const fakes::GuestMemory&) {
                                   a.avail_user_addr = ~uint64_t{0} - 1;
                               }));
    cases.push_back(vring_addr("vring-addr-desc-misaligned", "is not 16-byte aligned",
                               [](protocol::VringAddr& a, const fakes::GuestMemory&) { a.desc_user_addr += 8; }));
    cases.push_back(vring_addr("vring-addr-used-misaligned", "is not 4-byte aligned",
                               [](protocol::VringAddr& a, const fakes::GuestMemory&) { a.used_user_addr += 2; }));
    auto log_base = [](std::string name, std::string fragment, uint64_t size, uint64_t offset) {
        return ProtocolCase{std::move(name), std::move(fragment),
                            [=](FakeFrontend& fe, const fakes::GuestMemory& mem) {
                                prefix(fe, mem);
                                const UniqueFd log = fakes::GuestMemory(0x2000, 0, 0, "vhostd-log").dup_fd();
                                const int raw = log.get();
                                must(fe.send(Request::SetLogBase, bytes_of(protocol::LogWire{size, offset}),
                                             std::span(&raw, 1),
                                             protocol::kFlagVersion1 | protocol::kFlagNeedReply));
                                expect_closed(fe, "bad SET_LOG_BASE");
                            }};
    };
    cases.push_back(log_base("log-base-offset-overflow", "SET_LOG_BASE: mmap_offset", 0x1000, ~uint64_t{0} - 0x10));
    cases.push_back(log_base("log-base-size-overflow", "SET_LOG_BASE: mmap_offset", ~uint64_t{0}, 0x1000));
    cases.push_back(log_base("log-base-beyond-file", "exceeds the file", 0x1000, 0x2000));
    return cases;
}

// ------------------------------------------------------------ guest cases

struct GuestCase {
    std::string name;
    std::string outcome;   // broken | dropped | works
    std::string fragment;  // broken: the reason in the daemon's log
    std::function<void(FakeFrontend&, Guest&)> inject;
};

std::vector<GuestCase> guest_cases() {
    using virtio::kDescFIndirect;
    using virtio::kDescFNext;
    std::vector<GuestCase> c;
    c.push_back({"addr-outside-memory", "broken", "outside guest memory", [](FakeFrontend&, Guest& g) {
                     g.tx.write_desc(0, 0x10, 64, 0, 0);
                     g.tx.publish(0);
                 }});
    c.push_back({"len-ffffffff", "broken", "outside guest memory", [](FakeFrontend&, Guest& g) {
                     g.tx.write_desc(0, g.tx.alloc(64), 0xFFFFFFFF, 0, 0);
                     g.tx.publish(0);
                 }});
    c.push_back({"total-len-overflows-32-bits", "broken", "longer than 4 GiB", [](FakeFrontend&, Guest& g) {
                     // Both buffers inside memory; only their sum overflows.
                     const uint64_t buf = g.tx.alloc(64);
                     g.tx.write_desc(0, buf, 0x10, kDescFNext, 1);
                     g.tx.write_desc(1, g.mem.gpa_base(), 0xFFFFFFFF, 0, 0);
                     g.tx.publish(0);
                 }});
    c.push_back({"chain-loops", "broken", "longer than the queue size", [](FakeFrontend&, Guest& g) {
                     const uint64_t buf = g.tx.alloc(64);
                     g.tx.write_desc(0, buf, 64, kDescFNext, 1);
                     g.tx.write_desc(1, buf, 64, kDescFNext, 0);
                     g.tx.publish(0);
                 }});
    c.push_back({"head-ge-size", "broken", "chain head", [](FakeFrontend&, Guest& g) { g.tx.publish(kRingSize); }});
    c.push_back({"avail-idx-jumps-60000", "broken", "avail.idx moved",
                 [](FakeFrontend&, Guest& g) { g.tx.set_avail_idx(60000); }});
    c.push_back({"indirect-not-multiple-of-16", "broken", "multiple of 16", [](FakeFrontend&, Guest& g) {
                     g.tx.write_desc(0, g.tx.alloc(64), 24, kDescFIndirect, 0);
                     g.tx.publish(0);
                 }});
    c.push_back({"nested-indirect", "broken", "inside an indirect table", [](FakeFrontend&, Guest& g) {
                     const uint64_t inner = g.tx.alloc(16);
                     g.tx.write_table_desc(inner, 0, g.tx.alloc(64), 64, 0, 0);
                     const uint64_t outer = g.tx.alloc(16);
                     g.tx.write_table_desc(outer, 0, inner, 16, kDescFIndirect, 0);
                     g.tx.write_desc(0, outer, 16, kDescFIndirect, 0);
                     g.tx.publish(0);
                 }});
    c.push_back({"chain-shorter-than-header", "dropped", "", [](FakeFrontend&, Guest& g) {
                     const std::vector<uint8_t> eight(8, 0);
                     g.tx.send(eight);
                 }});
    c.push_back({"header-split-over-3-descriptors", "works", "", [](FakeFrontend& fe, Guest& g) {
                     reflect_one(fe, g, {4, 4, 4}, 3);      // header in three, frame in a fourth
                     reflect_one(fe, g, {4, 8}, 4);         // header in two, frame in a third
                     reflect_one(fe, g, {2, 4, 10}, 5);     // the last piece holds header and frame
                 }});
    return c;
}

void run_guest_case(const GuestCase& gc) {
    Guest g;
    FakeFrontend fe = connect_frontend();
    if (auto r = fe.handshake_remote(g.mem, options(kRings)); !r) {
        fail("handshake: " + r.error().message);
    }
    gc.inject(fe, g);
    kick(fe, 1);
    if (gc.outcome == "dropped") {
        // Dropped, not broken: the chain comes back (used len 0).
        if (!wait_until([&] { return g.tx.used_idx() == 1; }, std::chrono::seconds(20))) {
            fail("the short chain was not returned in the used ring");
        }
        if (g.tx.used_elem(0).len != 0) {
            fail("a TX chain was returned with a length");
        }
    }
    std::cout << "INJECTED " << gc.name << std::endl;
    // Hold the connection (the port stays broken and its rings live) until
    // the script has checked the daemon's log and counters.
    std::string line;
    std::getline(std::cin, line);
    if (gc.outcome == "broken" && g.tx.used_idx() != 0) {
        fail("the daemon completed a chain of a broken ring");
    }
}

// ----------------------------------------------------------------- churn

size_t count_fds(int pid) {
    size_t n = 0;
    for ([[maybe_unused]] const auto& e :
         std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) {
        ++n;
    }
    return n;
}

long status_kb(int pid, const std::string& key) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(f, line)) {
        if (line.rfind(key + ":", 0) == 0) {
            return std::strtol(line.c_str() + key.size() + 1, nullptr, 10);
        }
    }
    fail("no " + key + " in /proc/" + std::to_string(pid) + "/status");
}

size_t count_maps(int pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/maps");
    std::string line;
    size_t n = 0;
    while (std::getline(f, line)) {
        ++n;
    }
    return n;
}

struct Sample {
    size_t fds;
    size_t maps;
    long rss_anon_kb;
    long rss_kb;
};

Sample sample(int pid) {
    return Sample{count_fds(pid), count_maps(pid), status_kb(pid, "RssAnon"), status_kb(pid, "VmRSS")};
}

// Waits until the daemon is back to `fds` open fds (its side of our last
// connection closed and everything of that connection released).
void wait_fds(int pid, size_t fds, const std::string& when) {
    if (!wait_until([&] { return count_fds(pid) == fds; }, std::chrono::seconds(20))) {
        fail(when + ": the daemon has " + std::to_string(count_fds(pid)) + " fds, expected " +
             std::to_string(fds));
    }
}

void churn(const std::string& kind, int pid, long count) {
    if (pid <= 0) {
        fail("churn needs --pid");
    }
    const long warmup = std::max(100L, count / 20);
    const size_t idle_fds = count_fds(pid);
    const uint32_t f = protocol::kFlagVersion1 | protocol::kFlagNeedReply;
    std::function<void(long)> run;
    fakes::GuestMemory mem(kMemSize);
    Sample open_sample{};
    if (kind == "churn-vring-num" || kind == "churn-mem-table") {
        const bool vring = kind == "churn-vring-num";
        run = [&, vring](long n) {
            FakeFrontend fe = connect_frontend();
            prefix(fe, mem);
            for (long i = 0; i < n; ++i) {
                fakes::FakeFrontend::Exchange ex;
                if (vring) {
                    const uint32_t num = (i & 1) != 0 ? 128 : 256;
                    ex = fe.exchange_remote(Request::SetVringNum, bytes_of(protocol::VringState{0, num}), {}, f,
                                            true);
                } else {
                    const auto region = mem.region();
                    const UniqueFd fd = mem.dup_fd();
                    const int raw = fd.get();
                    ex = fe.exchange_remote(Request::SetMemTable, fakes::mem_table_payload(std::span(&region, 1)),
                                            std::span(&raw, 1), f, true);
                }
                if (!ex.ok() || !ex.reply || ex.reply->u64() != uint64_t{0}) {
                    fail(kind + ": iteration " + std::to_string(i) + " failed: " + ex.error_text());
                }
            }
            // Still connected: what one connection holds after n repetitions.
            open_sample = sample(pid);
            fe.close();
            wait_fds(pid, idle_fds, kind);
        };
    } else if (kind == "churn-connect") {
        run = [&](long n) {
            for (long i = 0; i < n; ++i) {
                FakeFrontend fe = connect_frontend();
                if (auto r = fe.handshake_remote(mem, options(kRings)); !r) {
                    fail("connection " + std::to_string(i) + ": " + r.error().message);
                }
                fe.close();
                // Until the daemon let go of it: the next connection would be
                // refused as a second front-end.
                wait_fds(pid, idle_fds, "connection " + std::to_string(i));
            }
        };
    } else {
        fail("unknown case " + kind);
    }
    run(warmup);
    const Sample before = sample(pid);
    const Sample open_before = open_sample;
    const auto t0 = std::chrono::steady_clock::now();
    run(count);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const Sample after = sample(pid);
    // fds are exact in any build; the script judges mappings and RSS (which
    // an ASan build grows by design).
    if (open_before.fds != open_sample.fds) {
        fail(kind + ": while connected after " + std::to_string(warmup) + " and " + std::to_string(count) +
             " repetitions vhostd held " + std::to_string(open_before.fds) + " and " +
             std::to_string(open_sample.fds) + " fds");
    }
    std::cout << "CHURN " << kind << " count " << count << " seconds " << secs << " fds " << before.fds << " "
              << after.fds << " maps " << before.maps << " " << after.maps << " rss_anon_kb "
              << before.rss_anon_kb << " " << after.rss_anon_kb << " rss_kb " << before.rss_kb << " "
              << after.rss_kb << " connected_fds " << open_before.fds << " " << open_sample.fds
              << " connected_maps " << open_before.maps << " " << open_sample.maps << std::endl;
}

int usage() {
    std::cerr << "usage: hostile_frontend --socket PATH (--list | --list-guest | --case NAME "
                 "[--pid PID] [--count N])\n";
    return 2;
}

} // namespace

int main(int argc, char** argv) {
    std::string case_name;
    bool list = false;
    bool list_guest = false;
    int pid = 0;
    long count = 10000;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::exit(usage());
            }
            return argv[++i];
        };
        if (a == "--socket") {
            g_socket = value();
        } else if (a == "--case") {
            case_name = value();
        } else if (a == "--pid") {
            pid = std::stoi(value());
        } else if (a == "--count") {
            count = std::stol(value());
        } else if (a == "--list") {
            list = true;
        } else if (a == "--list-guest") {
            list_guest = true;
        } else {
            return usage();
        }
    }
    try {
        if (list) {
            for (const auto& c : protocol_cases()) {
                std::cout << c.name << '\t' << c.fragment << '\n';
            }
            return 0;
        }
        if (list_guest) {
            for (const auto& c : guest_cases()) {
                std::cout << c.name << '\t' << c.outcome << '\t' << c.fragment << '\n';
            }
            return 0;
        }
        if (g_socket.empty() || case_name.empty()) {
            return usage();
        }
        if (case_name == "good") {
            good_session();
        } else if (case_name.rfind("churn-", 0) == 0) {
            churn(case_name, pid, count);
        } else if (case_name.rfind("guest-", 0) == 0) {
            const std::string name = case_name.substr(6);
            bool found = false;
            for (const auto& c : guest_cases()) {
                if (c.name == name) {
                    run_guest_case(c);
                    found = true;
                }
            }
            if (!found) {
                fail("unknown guest case " + name);
            }
        } else {
            bool found = false;
            for (const auto& c : protocol_cases()) {
                if (c.name == case_name) {
                    fakes::GuestMemory mem(kMemSize);
                    FakeFrontend fe = connect_frontend();
                    c.run(fe, mem);
                    found = true;
                }
            }
            if (!found) {
                fail("unknown case " + case_name);
            }
        }
    } catch (const std::exception& e) {
        std::cout << "FAIL " << case_name << ": " << e.what() << std::endl;
        return 1;
    }
    std::cout << "OK " << case_name << std::endl;
    return 0;
}
