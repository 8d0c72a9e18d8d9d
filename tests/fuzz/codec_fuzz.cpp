// Fuzz target: the vhost-user message codec (protocol/codec.hpp). Bytes and
// a number of real fds in; a typed message or an error out. Input layout:
// tests/fuzz/formats.hpp.
//
// Checks, beyond the sanitizers:
//  - a decoded message agrees with its header and carries exactly the fds
//    its request takes (one per region for SET_MEM_TABLE, none when a vring
//    fd message has the polling bit), each one of the fds passed in;
//  - a decoded SET_MEM_TABLE or ADD_MEM_REG goes on into MemoryTable, as the
//    session would do, and every region it maps is touched at both ends;
//  - afterwards every fd passed in is closed and the process holds no more
//    fds than before (FdWatch).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "protocol/codec.hpp"
#include "protocol/memory_table.hpp"
#include "protocol/wire.hpp"
#include "tests/fuzz/fd_watch.hpp"
#include "tests/fuzz/formats.hpp"
#include "tests/fuzz/fuzz_input.hpp"

namespace vhostd::fuzz {
namespace {

using protocol::MemoryTable;

void touch_table(const MemoryTable& table) {
    for (const protocol::HostRegion& r : table.regions()) {
        volatile uint8_t* first = table.gpa_to_host(r.gpa, 1);
        volatile uint8_t* last = table.gpa_to_host(r.gpa + r.size - 1, 1);
        check(first == r.host && last == r.host + r.size - 1, "region ends do not translate to its mapping");
        (void)*first;
        (void)*last;
    }
}

void check_message(const protocol::Message& msg, uint32_t header_request, uint32_t header_flags,
                   size_t fds_given, const FdWatch& watch) {
    check(static_cast<uint32_t>(msg.request) == header_request, "request differs from the header");
    check(msg.flags == header_flags, "flags differ from the header");
    std::visit(
        [&](const auto& body) {
            using T = std::decay_t<decltype(body)>;
            if constexpr (std::is_same_v<T, protocol::VringFd>) {
                check(body.polling != body.fd.valid(), "vring fd: fd present iff not polling");
                check(!body.fd.valid() || watch.gave(body.fd.get()), "vring fd: not an fd passed in");
                check(body.index <= protocol::kVringIndexMask, "vring fd: index above the mask");
            } else if constexpr (std::is_same_v<T, protocol::MemTable>) {
                check(!body.regions.empty() && body.regions.size() <= protocol::kMaxMemTableRegions,
                      "mem table: region count out of range");
                check(body.fds.size() == body.regions.size() && body.fds.size() == fds_given,
                      "mem table: not one fd per region");
                for (const UniqueFd& fd : body.fds) {
                    check(watch.gave(fd.get()), "mem table: not an fd passed in");
                }
            } else if constexpr (std::is_same_v<T, protocol::SingleRegion>) {
                if (msg.request == protocol::Request::AddMemReg) {
                    check(body.fd.valid() && watch.gave(body.fd.get()), "ADD_MEM_REG: no fd or a foreign one");
                } else {
                    check(!body.fd.valid(), "REM_MEM_REG: an fd was handed over");
                }
            } else if constexpr (std::is_same_v<T, protocol::LogBase> || std::is_same_v<T, protocol::FdOnly>) {
                check(body.fd.valid() && watch.gave(body.fd.get()), "log: no fd or a foreign one");
            } else {
                check(fds_given == 0, "a request without fds decoded with fds attached");
            }
        },
        msg.body);
}

// What the session does with a decoded memory message.
void apply(protocol::Message& msg) {
    if (auto* t = std::get_if<protocol::MemTable>(&msg.body)) {
        auto table = MemoryTable::create(t->regions, std::move(t->fds));
        if (table) {
            touch_table(**table);
        }
    } else if (auto* r = std::get_if<protocol::SingleRegion>(&msg.body)) {
        if (msg.request == protocol::Request::AddMemReg) {
            auto table = MemoryTable::empty()->with_added(r->region, std::move(r->fd));
            if (table) {
                touch_table(**table);
            }
        } else {
            auto table = MemoryTable::empty()->with_removed(r->region);
            check(!table, "REM_MEM_REG removed a region from the empty table");
        }
    }
}

} // namespace
} // namespace vhostd::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace vhostd;
    using namespace vhostd::fuzz;
    FuzzInput in(data, size);
    const auto spec = in.take<uint8_t>();
    const std::span<const uint8_t> bytes = in.rest();
    const size_t nfds = std::min<size_t>(spec & 0x0f, kCodecMaxFds);

    FdWatch watch;
    {
        std::vector<UniqueFd> fds;
        for (size_t i = 0; i < nfds; ++i) {
            fds.push_back((spec & kCodecDevNull) != 0 ? watch.devnull() : watch.memfd(kCodecMemfdSize));
        }
        auto msg = protocol::decode(bytes, std::move(fds), (spec & kCodecTruncated) != 0);
        if (msg) {
            check(bytes.size() >= sizeof(protocol::MsgHeader), "decoded a message shorter than a header");
            protocol::MsgHeader h{};
            std::memcpy(&h, bytes.data(), sizeof(h));
            check(h.size == bytes.size() - sizeof(h), "decoded a message whose size field disagrees");
            check((spec & kCodecTruncated) == 0, "decoded a message whose fds were truncated");
            check_message(*msg, h.request, h.flags, nfds, watch);
            apply(*msg);
        } else {
            check(!msg.error().message.empty(), "an error without a message");
        }
    }
    watch.check_all_closed();
    return 0;
}
