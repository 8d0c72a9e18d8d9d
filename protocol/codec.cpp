#include "protocol/codec.hpp"

#include <cstring>
#include <utility>

#include <fmt/format.h>

namespace vhostd::protocol {
namespace {

enum class BodyKind : uint8_t {
    Unsupported, // a request code the spec defines that vhostd does not handle
    None,        // size 0
    U64,
    State,
    Addr,
    VringFd,
    MemTable,
    Region,
    Log,
    FdOnly,
};

enum class Fds : uint8_t {
    None,     // no fd may be attached
    One,      // exactly one
    PerRegion // one per memory region
};

struct Rule {
    BodyKind kind;
    Fds fds;
};

// One row per request: the body it must carry and the fds it may take
// (vhost-user.rst, "Front-end message types"). Requests whose features vhostd
// never offers are Unsupported: a front-end that sends them broke the protocol.
constexpr Rule rule_for(Request r) {
    switch (r) {
    case Request::GetFeatures:
    case Request::GetProtocolFeatures:
    case Request::GetQueueNum:
    case Request::GetMaxMemSlots:
    case Request::GetStatus:
    case Request::SetOwner:
    case Request::ResetOwner:
    case Request::ResetDevice:
        return {BodyKind::None, Fds::None};
    case Request::SetFeatures:
    case Request::SetProtocolFeatures:
    case Request::SetStatus:
    case Request::NetSetMtu:
    case Request::SendRarp:
        return {BodyKind::U64, Fds::None};
    case Request::SetVringNum:
    case Request::SetVringBase:
    case Request::GetVringBase:
    case Request::SetVringEnable:
        return {BodyKind::State, Fds::None};
    case Request::SetVringAddr:
        return {BodyKind::Addr, Fds::None};
    case Request::SetVringKick:
    case Request::SetVringCall:
    case Request::SetVringErr:
        return {BodyKind::VringFd, Fds::One}; // or none with the polling bit
    case Request::SetMemTable:
        return {BodyKind::MemTable, Fds::PerRegion};
    case Request::AddMemReg:
        return {BodyKind::Region, Fds::One};
    case Request::RemMemReg:
        return {BodyKind::Region, Fds::None}; // one tolerated, see decode_body
    case Request::SetLogBase:
        return {BodyKind::Log, Fds::One};
    case Request::SetLogFd:
        return {BodyKind::FdOnly, Fds::One};
    default:
        return {BodyKind::Unsupported, Fds::None};
    }
}

template <typename T>
T load(std::span<const uint8_t> body, size_t offset = 0) {
    T value;
    std::memcpy(&value, body.data() + offset, sizeof(T));
    return value;
}

Error body_error(Request r, std::string what) {
    return make_error(fmt::format("{}: {}", request_name(r), what));
}

Error size_error(Request r, size_t got, size_t want) {
    return body_error(r, fmt::format("size {} where the request needs {}", got, want));
}

} // namespace

Result<MsgHeader> decode_header(std::span<const uint8_t> bytes) {
    if (bytes.size() != sizeof(MsgHeader)) {
        return make_error(fmt::format("header: {} bytes where {} are needed", bytes.size(),
                                      sizeof(MsgHeader)));
    }
    auto header = load<MsgHeader>(bytes);
    if (header.request == 0 || header.request >= static_cast<uint32_t>(Request::Max)) {
        return make_error(fmt::format("header: unknown request code {}", header.request));
    }
    auto request = static_cast<Request>(header.request);
    if ((header.flags & kFlagVersionMask) != kFlagVersion1) {
        return make_error(fmt::format("{}: header flags 0x{:x}: version {} (only 1 exists)",
                                      request_name(request), header.flags,
                                      header.flags & kFlagVersionMask));
    }
    if ((header.flags & ~kFlagKnownMask) != 0) {
        return make_error(fmt::format("{}: header flags 0x{:x}: reserved bits 0x{:x} set",
                                      request_name(request), header.flags,
                                      header.flags & ~kFlagKnownMask));
    }
    if ((header.flags & kFlagReply) != 0) {
        return make_error(fmt::format("{}: header flags 0x{:x}: reply bit set on a request",
                                      request_name(request), header.flags));
    }
    if (header.size > kMaxPayload) {
        return make_error(fmt::format("{}: header size {} exceeds the {}-byte limit",
                                      request_name(request), header.size, kMaxPayload));
    }
    return header;
}

Result<Message> decode_body(const MsgHeader& header, std::span<const uint8_t> body,
                            std::vector<UniqueFd> fds, bool fds_truncated) {
    // `fds` is owned here: whatever is not moved into the message is closed
    // when this function returns, on every path.
    auto request = static_cast<Request>(header.request);
    if (body.size() != header.size) {
        return body_error(request, fmt::format("body has {} bytes, header size says {}",
                                               body.size(), header.size));
    }
    if (fds_truncated) {
        return body_error(request, "ancillary data truncated (too many fds attached)");
    }
    const Rule rule = rule_for(request);
    if (rule.kind == BodyKind::Unsupported) {
        return body_error(request, "request not supported (its feature was never offered)");
    }

    Message msg;
    msg.request = request;
    msg.flags = header.flags;

    auto expect_fds = [&](size_t want) -> Status {
        if (fds.size() != want) {
            return body_error(request,
                              fmt::format("{} fds attached where the request takes {}",
                                          fds.size(), want));
        }
        return Ok{};
    };
    auto expect_size = [&](size_t want) -> Status {
        if (body.size() != want) {
            return size_error(request, body.size(), want);
        }
        return Ok{};
    };

    switch (rule.kind) {
    case BodyKind::None: {
        if (auto s = expect_size(0); !s) {
            return std::move(s).error();
        }
        if (auto s = expect_fds(0); !s) {
            return std::move(s).error();
        }
        msg.body = NoBody{};
        break;
    }
    case BodyKind::U64: {
        if (auto s = expect_size(sizeof(uint64_t)); !s) {
            return std::move(s).error();
        }
        if (auto s = expect_fds(0); !s) {
            return std::move(s).error();
        }
        msg.body = load<uint64_t>(body);
        break;
    }
    case BodyKind::State: {
        if (auto s = expect_size(sizeof(VringState)); !s) {
            return std::move(s).error();
        }
        if (auto s = expect_fds(0); !s) {
            return std::move(s).error();
        }
        msg.body = load<VringState>(body);
        break;
    }
    case BodyKind::Addr: {
        if (auto s = expect_size(sizeof(VringAddr)); !s) {
            return std::move(s).error();
        }
        if (auto s = expect_fds(0); !s) {
            return std::move(s).error();
        }
        msg.body = load<VringAddr>(body);
        break;
    }
    case BodyKind::VringFd: {
        if (auto s = expect_size(sizeof(uint64_t)); !s) {
            return std::move(s).error();
        }
        const auto value = load<uint64_t>(body);
        const uint64_t known = kVringIndexMask | kVringNoFdFlag;
        if ((value & ~known) != 0) {
            return body_error(request, fmt::format("payload 0x{:x} has reserved bits set", value));
        }
        VringFd vfd;
        vfd.index = static_cast<uint32_t>(value & kVringIndexMask);
        vfd.polling = (value & kVringNoFdFlag) != 0;
        if (auto s = expect_fds(vfd.polling ? 0 : 1); !s) {
            return std::move(s).error();
        }
        if (!vfd.polling) {
            vfd.fd = std::move(fds[0]);
        }
        msg.body = std::move(vfd);
        break;
    }
    case BodyKind::MemTable: {
        if (body.size() < sizeof(MemTableHeaderWire)) {
            return size_error(request, body.size(), sizeof(MemTableHeaderWire));
        }
        const auto head = load<MemTableHeaderWire>(body);
        if (head.num_regions == 0 || head.num_regions > kMaxMemTableRegions) {
            return body_error(request, fmt::format("num_regions {} (must be 1..{})",
                                                   head.num_regions, kMaxMemTableRegions));
        }
        const size_t want = sizeof(MemTableHeaderWire) + head.num_regions * sizeof(MemRegionWire);
        if (auto s = expect_size(want); !s) {
            return std::move(s).error();
        }
        if (auto s = expect_fds(head.num_regions); !s) {
            return std::move(s).error();
        }
        MemTable table;
        table.regions.reserve(head.num_regions);
        for (uint32_t i = 0; i < head.num_regions; ++i) {
            table.regions.push_back(
                load<MemRegionWire>(body, sizeof(MemTableHeaderWire) + i * sizeof(MemRegionWire)));
        }
        table.fds = std::move(fds);
        msg.body = std::move(table);
        break;
    }
    case BodyKind::Region: {
        if (auto s = expect_size(sizeof(SingleMemRegionWire)); !s) {
            return std::move(s).error();
        }
        SingleRegion region;
        region.region = load<SingleMemRegionWire>(body).region;
        if (request == Request::AddMemReg) {
            if (auto s = expect_fds(1); !s) {
                return std::move(s).error();
            }
            region.fd = std::move(fds[0]);
        } else if (fds.size() > 1) {
            // REM_MEM_REG: "No file descriptors SHOULD be passed"; for
            // compatibility one is tolerated and closed unused.
            return body_error(request, fmt::format("{} fds attached where at most 1 is tolerated",
                                                   fds.size()));
        }
        msg.body = std::move(region);
        break;
    }
    case BodyKind::Log: {
        if (auto s = expect_size(sizeof(LogWire)); !s) {
            return std::move(s).error();
        }
        if (auto s = expect_fds(1); !s) {
            return std::move(s).error();
        }
        LogBase log;
        log.log = load<LogWire>(body);
        log.fd = std::move(fds[0]);
        msg.body = std::move(log);
        break;
    }
    case BodyKind::FdOnly: {
        if (auto s = expect_size(0); !s) {
            return std::move(s).error();
        }
        if (auto s = expect_fds(1); !s) {
            return std::move(s).error();
        }
        msg.body = FdOnly{std::move(fds[0])};
        break;
    }
    case BodyKind::Unsupported:
        break; // handled above
    }
    return msg;
}

Result<Message> decode(std::span<const uint8_t> bytes, std::vector<UniqueFd> fds,
                       bool fds_truncated) {
    if (bytes.size() < sizeof(MsgHeader)) {
        return make_error(fmt::format("header: {} bytes where {} are needed", bytes.size(),
                                      sizeof(MsgHeader)));
    }
    auto header = decode_header(bytes.first(sizeof(MsgHeader)));
    if (!header) {
        return std::move(header).error();
    }
    return decode_body(*header, bytes.subspan(sizeof(MsgHeader)), std::move(fds), fds_truncated);
}

std::vector<uint8_t> encode_request(Request request, uint32_t flags,
                                    std::span<const uint8_t> payload) {
    MsgHeader header{static_cast<uint32_t>(request), flags, static_cast<uint32_t>(payload.size())};
    std::vector<uint8_t> out(sizeof(header) + payload.size());
    std::memcpy(out.data(), &header, sizeof(header));
    if (!payload.empty()) {
        std::memcpy(out.data() + sizeof(header), payload.data(), payload.size());
    }
    return out;
}

std::vector<uint8_t> encode_reply_u64(Request request, uint64_t value) {
    return encode_request(request, kFlagVersion1 | kFlagReply, value);
}

std::vector<uint8_t> encode_reply_state(Request request, VringState state) {
    return encode_request(request, kFlagVersion1 | kFlagReply, state);
}

std::vector<uint8_t> encode_reply_empty(Request request) {
    return encode_request(request, kFlagVersion1 | kFlagReply, std::span<const uint8_t>{});
}

} // namespace vhostd::protocol
