#include "protocol/session.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstring>
#include <utility>

#include <fmt/format.h>

#include "protocol/features.hpp"

namespace vhostd::protocol {
namespace {

Error msg_error(Request r, std::string what) {
    return make_error(fmt::format("{}: {}", request_name(r), what));
}

// VIRTIO 1.2 §2.7: split ring area sizes and alignments (the avail and used
// rings include the 2-byte event-idx trailer, which we read/write with EVENT_IDX).
constexpr uint64_t desc_bytes(uint32_t n) { return 16ull * n; }
constexpr uint64_t avail_bytes(uint32_t n) { return 6ull + 2ull * n; }
constexpr uint64_t used_bytes(uint32_t n) { return 6ull + 8ull * n; }

// Ring generations are unique in the whole process, not per session: a
// device outlives its connections (a front-end reconnecting sends the same
// messages again), and a repeated number would look like "same ring, keep
// going" instead of a restart.
uint64_t next_generation() noexcept {
    static std::atomic<uint64_t> counter{1};
    return counter.fetch_add(1, std::memory_order_relaxed);
}

} // namespace

Session::Session(SessionLimits limits, VhostDevice& device)
    : limits_(limits), device_(device), memory_(MemoryTable::empty()),
      rings_(2ull * std::max<uint32_t>(limits.queue_pairs, 1)) {}

Session::~Session() { reset(); }

uint64_t Session::offered_features() const noexcept {
    uint64_t f = kOfferedFeatures;
    if (limits_.queue_pairs > 1) {
        f |= bit(vf::kNetMq);
    }
    return f;
}

void Session::stop_all_rings() {
    bool any = false;
    std::vector<bool> was(rings_.size());
    for (uint32_t i = 0; i < rings_.size(); ++i) {
        was[i] = ring_live(rings_[i]);
        any = any || was[i];
        rings_[i].started = false;
    }
    if (!any) {
        return;
    }
    publish();
    for (uint32_t i = 0; i < rings_.size(); ++i) {
        if (was[i]) {
            if (auto last = device_.last_avail(i)) {
                rings_[i].base = *last;
            }
        }
    }
}

void Session::reset_device() {
    // Stop the data path first (apply() waits for it), then drop what it used.
    stop_all_rings();
    for (auto& ring : rings_) {
        ring = Ring{};
    }
    features_ = 0;
    status_ = 0;
    mtu_.reset();
    log_mapping_.reset();
    log_fd_.reset();
    memory_ = MemoryTable::empty();
    publish();
}

void Session::reset() {
    reset_device();
    protocol_features_ = 0;
    owner_ = false;
}

bool Session::ring_live(const Ring& ring) const noexcept {
    // A started ring runs whether or not it is enabled (vhost-user.rst "Ring
    // states": a disabled ring must not receive new RX packets, but its TX
    // packets are processed and discarded). It needs its size, addresses and
    // memory to run at all.
    return ring.started && ring.size != 0 && ring.addr.has_value() && memory_->size() != 0;
}

bool Session::ring_enabled(const Ring& ring) const noexcept {
    // Without VHOST_USER_F_PROTOCOL_FEATURES a ring is enabled as soon as it
    // starts; with it, SET_VRING_ENABLE decides.
    return ring.enabled || (features_ & bit(vf::kProtocolFeatures)) == 0;
}

void Session::publish() {
    DeviceView view;
    view.features = features_;
    view.memory = memory_;
    view.mtu = mtu_;
    for (uint32_t i = 0; i < rings_.size(); ++i) {
        const Ring& ring = rings_[i];
        if (!ring_live(ring)) {
            continue;
        }
        LiveRing live;
        live.index = i;
        live.size = ring.size;
        live.desc_uva = ring.addr->desc_user_addr;
        live.avail_uva = ring.addr->avail_user_addr;
        live.used_uva = ring.addr->used_user_addr;
        live.base = ring.base;
        live.kick_fd = ring.kick.get();
        live.call_fd = ring.call.get();
        live.generation = ring.generation;
        live.enabled = ring_enabled(ring);
        view.rings.push_back(live);
    }
    live_count_ = view.rings.size();
    device_.apply(view);
}

Status Session::ring_index(Request r, uint32_t index) const {
    if (index >= rings_.size()) {
        return msg_error(r, fmt::format("ring index {} out of range (this port has {} rings)",
                                        index, rings_.size()));
    }
    return Ok{};
}

Status Session::require_protocol_feature(Request r, unsigned pf_bit) const {
    if ((protocol_features_ & bit(pf_bit)) == 0) {
        return msg_error(r, fmt::format("protocol feature bit {} was not negotiated", pf_bit));
    }
    return Ok{};
}

Status Session::check_ring_layout(uint32_t index, const Ring& ring, const MemoryTable& mem) const {
    if (!ring.addr || ring.size == 0 || mem.size() == 0) {
        return Ok{}; // checked again when the missing piece arrives
    }
    const VringAddr& a = *ring.addr;
    struct Area {
        const char* field;
        uint64_t uva;
        uint64_t len;
    };
    const Area areas[] = {
        {"desc_user_addr", a.desc_user_addr, desc_bytes(ring.size)},
        {"avail_user_addr", a.avail_user_addr, avail_bytes(ring.size)},
        {"used_user_addr", a.used_user_addr, used_bytes(ring.size)},
    };
    for (const Area& area : areas) {
        if (mem.uva_to_host(area.uva, area.len) == nullptr) {
            return make_error(fmt::format(
                "ring {}: {} 0x{:x} + {} bytes (size {}) is not inside one memory region", index,
                area.field, area.uva, area.len, ring.size));
        }
    }
    return Ok{};
}

Session::Outcome Session::handle(Message msg) {
    Outcome out;
    const Request request = msg.request;
    const bool wants_ack = msg.need_reply() && (protocol_features_ & bit(pf::kReplyAck)) != 0;
    Status status = dispatch(msg, out.reply);
    // REPLY_ACK (vhost-user.rst "REPLY_ACK"): only for requests that have no
    // reply of their own; 0 is success, anything else a failure.
    if (wants_ack && out.reply.empty()) {
        out.reply = encode_reply_u64(request, status ? 0 : 1);
    }
    if (!status) {
        out.error = std::move(status).error();
    }
    return out;
}

Status Session::dispatch(Message& msg, std::vector<uint8_t>& reply) {
    const Request r = msg.request;
    switch (r) {
    case Request::GetFeatures:
        reply = encode_reply_u64(r, offered_features());
        return Ok{};
    case Request::SetFeatures:
        return on_set_features(std::get<uint64_t>(msg.body));
    case Request::GetProtocolFeatures:
        reply = encode_reply_u64(r, kOfferedProtocolFeatures);
        return Ok{};
    case Request::SetProtocolFeatures:
        return on_set_protocol_features(std::get<uint64_t>(msg.body));
    case Request::SetOwner:
        owner_ = true;
        return Ok{};
    case Request::ResetOwner:
        // Deprecated; vhost-user.rst: ignore it or disable all rings. Rings
        // stop (keeping their position); what the connection negotiated stays.
        stop_all_rings();
        return Ok{};
    case Request::ResetDevice:
        // Back to the initial device state, ready to be set up again; the
        // connection (owner, protocol features) is kept.
        reset_device();
        return Ok{};
    case Request::SetMemTable:
        return on_set_mem_table(std::get<MemTable>(msg.body));
    case Request::AddMemReg:
        return on_add_mem_reg(std::get<SingleRegion>(msg.body));
    case Request::RemMemReg:
        return on_rem_mem_reg(std::get<SingleRegion>(msg.body));
    case Request::GetMaxMemSlots:
        if (auto s = require_protocol_feature(r, pf::kConfigureMemSlots); !s) {
            return s;
        }
        reply = encode_reply_u64(r, kMaxMemSlots);
        return Ok{};
    case Request::SetLogBase: {
        auto status = on_set_log_base(std::get<LogBase>(msg.body));
        if (status) {
            // vhost-user.rst: the front-end waits for a reply without payload.
            reply = encode_reply_empty(r);
        }
        return status;
    }
    case Request::SetLogFd:
        log_fd_ = std::move(std::get<FdOnly>(msg.body).fd);
        return Ok{};
    case Request::SetVringNum:
        return on_set_vring_num(std::get<VringState>(msg.body));
    case Request::SetVringAddr:
        return on_set_vring_addr(std::get<VringAddr>(msg.body));
    case Request::SetVringBase:
        return on_set_vring_base(std::get<VringState>(msg.body));
    case Request::GetVringBase: {
        auto state = on_get_vring_base(std::get<VringState>(msg.body));
        if (!state) {
            return std::move(state).error();
        }
        reply = encode_reply_state(r, *state);
        return Ok{};
    }
    case Request::SetVringKick:
    case Request::SetVringCall:
    case Request::SetVringErr:
        return on_set_vring_fd(r, std::get<VringFd>(msg.body));
    case Request::GetQueueNum:
        if (auto s = require_protocol_feature(r, pf::kMq); !s) {
            return s;
        }
        reply = encode_reply_u64(r, limits_.queue_pairs);
        return Ok{};
    case Request::SetVringEnable:
        return on_set_vring_enable(std::get<VringState>(msg.body));
    case Request::SendRarp:
        return on_send_rarp(std::get<uint64_t>(msg.body));
    case Request::NetSetMtu:
        return on_net_set_mtu(std::get<uint64_t>(msg.body));
    case Request::SetStatus:
        return on_set_status(std::get<uint64_t>(msg.body));
    case Request::GetStatus:
        if (auto s = require_protocol_feature(r, pf::kStatus); !s) {
            return s;
        }
        reply = encode_reply_u64(r, status_);
        return Ok{};
    default:
        return msg_error(r, "request not supported");
    }
}

Status Session::on_set_features(uint64_t value) {
    const uint64_t offered = offered_features();
    if ((value & ~offered) != 0) {
        return msg_error(Request::SetFeatures,
                         fmt::format("features 0x{:x} include bits never offered (0x{:x})", value,
                                     value & ~offered));
    }
    if (live_count_ != 0 && value != features_) {
        // Only LOG_ALL may change on running rings, and it is not offered.
        return msg_error(Request::SetFeatures,
                         fmt::format("features 0x{:x} change while {} rings run (were 0x{:x})",
                                     value, live_count_, features_));
    }
    features_ = value;
    publish(); // enable state depends on PROTOCOL_FEATURES
    return Ok{};
}

Status Session::on_set_protocol_features(uint64_t value) {
    if ((value & ~kOfferedProtocolFeatures) != 0) {
        return msg_error(Request::SetProtocolFeatures,
                         fmt::format("protocol features 0x{:x} include bits never offered (0x{:x})",
                                     value, value & ~kOfferedProtocolFeatures));
    }
    protocol_features_ = value;
    return Ok{};
}

Status Session::replace_memory(Request r, std::shared_ptr<const MemoryTable> table) {
    for (uint32_t i = 0; i < rings_.size(); ++i) {
        const Ring& ring = rings_[i];
        if (!ring.started || !ring.addr || ring.size == 0) {
            continue;
        }
        if (table->size() == 0) {
            return msg_error(r, fmt::format("would leave ring {} running without guest memory", i));
        }
        if (auto s = check_ring_layout(i, ring, *table); !s) {
            return msg_error(r, s.error().message);
        }
    }
    // Keep the old table alive until the data path has let go of it:
    // publish() returns only after the device's quiescent point.
    auto old = std::exchange(memory_, std::move(table));
    publish();
    old.reset();
    return Ok{};
}

Status Session::on_set_mem_table(MemTable& table) {
    auto created = MemoryTable::create(table.regions, std::move(table.fds));
    if (!created) {
        return msg_error(Request::SetMemTable, created.error().message);
    }
    return replace_memory(Request::SetMemTable, std::move(created).value());
}

Status Session::on_add_mem_reg(SingleRegion& region) {
    if (auto s = require_protocol_feature(Request::AddMemReg, pf::kConfigureMemSlots); !s) {
        return s;
    }
    auto created = memory_->with_added(region.region, std::move(region.fd));
    if (!created) {
        return msg_error(Request::AddMemReg, created.error().message);
    }
    return replace_memory(Request::AddMemReg, std::move(created).value());
}

Status Session::on_rem_mem_reg(SingleRegion& region) {
    region.fd.reset(); // "the back-end MUST close it without using it"
    if (auto s = require_protocol_feature(Request::RemMemReg, pf::kConfigureMemSlots); !s) {
        return s;
    }
    auto created = memory_->with_removed(region.region);
    if (!created) {
        return msg_error(Request::RemMemReg, created.error().message);
    }
    return replace_memory(Request::RemMemReg, std::move(created).value());
}

Status Session::on_set_log_base(LogBase& log) {
    const uint64_t size = log.log.mmap_size;
    const uint64_t offset = log.log.mmap_offset;
    uint64_t end = 0;
    if (size == 0) {
        return msg_error(Request::SetLogBase, "mmap_size 0");
    }
    if (__builtin_add_overflow(offset, size, &end)) {
        return msg_error(Request::SetLogBase,
                         fmt::format("mmap_offset 0x{:x} + mmap_size 0x{:x} overflows", offset, size));
    }
    struct stat st {};
    if (::fstat(log.fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
        return msg_error(Request::SetLogBase, "log fd is not a regular file or memfd");
    }
    if (static_cast<uint64_t>(st.st_size) < end) {
        return msg_error(Request::SetLogBase,
                         fmt::format("mmap_offset 0x{:x} + mmap_size 0x{:x} exceeds the file ({} bytes)",
                                     offset, size, st.st_size));
    }
    auto mapping = Mapping::map(log.fd.get(), offset, size, static_cast<uint64_t>(::getpagesize()));
    if (!mapping) {
        return msg_error(Request::SetLogBase, mapping.error().message);
    }
    log_mapping_ = std::make_shared<const Mapping>(std::move(mapping).value());
    log.fd.reset();
    return Ok{};
}

Status Session::on_set_vring_num(VringState state) {
    const Request r = Request::SetVringNum;
    if (auto s = ring_index(r, state.index); !s) {
        return s;
    }
    // VIRTIO 1.2 §2.7: Queue Size is a power of 2, at most 32768.
    if (state.num == 0 || state.num > kMaxQueueSize || !std::has_single_bit(state.num)) {
        return msg_error(r, fmt::format("ring {}: num {} is not a power of two in 1..{}",
                                        state.index, state.num, kMaxQueueSize));
    }
    Ring& ring = rings_[state.index];
    if (ring.started) {
        return msg_error(r, fmt::format("ring {}: size change while the ring runs", state.index));
    }
    Ring candidate;
    candidate.size = state.num;
    candidate.addr = ring.addr;
    if (auto s = check_ring_layout(state.index, candidate, *memory_); !s) {
        return msg_error(r, s.error().message);
    }
    ring.size = state.num;
    return Ok{};
}

Status Session::on_set_vring_addr(const VringAddr& addr) {
    const Request r = Request::SetVringAddr;
    if (auto s = ring_index(r, addr.index); !s) {
        return s;
    }
    if ((addr.flags & ~kVringFlagLog) != 0) {
        return msg_error(r, fmt::format("ring {}: flags 0x{:x} has unknown bits", addr.index,
                                        addr.flags));
    }
    // VIRTIO 1.2 §2.7 "Virtqueue Alignment": descriptor table 16, avail 2, used 4.
    if (addr.desc_user_addr % 16 != 0) {
        return msg_error(r, fmt::format("ring {}: desc_user_addr 0x{:x} is not 16-byte aligned",
                                        addr.index, addr.desc_user_addr));
    }
    if (addr.avail_user_addr % 2 != 0) {
        return msg_error(r, fmt::format("ring {}: avail_user_addr 0x{:x} is not 2-byte aligned",
                                        addr.index, addr.avail_user_addr));
    }
    if (addr.used_user_addr % 4 != 0) {
        return msg_error(r, fmt::format("ring {}: used_user_addr 0x{:x} is not 4-byte aligned",
                                        addr.index, addr.used_user_addr));
    }
    Ring& ring = rings_[addr.index];
    Ring candidate;
    candidate.size = ring.size;
    candidate.addr = addr;
    if (auto s = check_ring_layout(addr.index, candidate, *memory_); !s) {
        return msg_error(r, s.error().message);
    }
    const bool was_started = ring.started;
    stop_ring(addr.index); // captures where a running ring got to
    ring.addr = addr;
    if (was_started) {
        ring.started = true;
        ring.generation = next_generation();
        publish();
    }
    return Ok{};
}

Status Session::on_set_vring_base(VringState state) {
    const Request r = Request::SetVringBase;
    if (auto s = ring_index(r, state.index); !s) {
        return s;
    }
    // Split rings (packed is not offered): num is the next avail index, 16 bits.
    if (state.num > 0xffff) {
        return msg_error(r, fmt::format("ring {}: base {} does not fit a 16-bit ring index",
                                        state.index, state.num));
    }
    Ring& ring = rings_[state.index];
    if (ring.started) {
        return msg_error(r, fmt::format("ring {}: base change while the ring runs", state.index));
    }
    ring.base = static_cast<uint16_t>(state.num);
    return Ok{};
}

Result<VringState> Session::on_get_vring_base(VringState state) {
    const Request r = Request::GetVringBase;
    if (auto s = ring_index(r, state.index); !s) {
        return std::move(s).error();
    }
    // vhost-user.rst "Starting and stopping rings": GET_VRING_BASE stops the
    // ring and returns where the back-end got to.
    stop_ring(state.index);
    return VringState{state.index, rings_[state.index].base};
}

void Session::stop_ring(uint32_t index) {
    Ring& ring = rings_[index];
    const bool was_live = ring_live(ring);
    ring.started = false;
    if (was_live) {
        publish();
        if (auto last = device_.last_avail(index)) {
            ring.base = *last;
        }
    }
}

Status Session::on_set_vring_fd(Request r, VringFd& vfd) {
    if (auto s = ring_index(r, vfd.index); !s) {
        return s;
    }
    Ring& ring = rings_[vfd.index];
    if (r == Request::SetVringErr) {
        ring.err = std::move(vfd.fd);
        return Ok{};
    }
    if (r == Request::SetVringCall) {
        // The old call fd stays open until the data path has switched over.
        UniqueFd old = std::exchange(ring.call, std::move(vfd.fd));
        if (ring_live(ring)) {
            publish();
        }
        return Ok{};
    }
    // SET_VRING_KICK starts the ring ("Starting and stopping rings"). A new
    // kick on a running ring restarts it from where the data path got to.
    stop_ring(vfd.index);
    UniqueFd old = std::exchange(ring.kick, std::move(vfd.fd));
    ring.kick_polled = vfd.polling;
    if (auto s = check_ring_layout(vfd.index, ring, *memory_); !s) {
        return msg_error(r, s.error().message);
    }
    ring.started = true;
    ring.generation = next_generation();
    publish();
    return Ok{};
}

Status Session::on_set_vring_enable(VringState state) {
    const Request r = Request::SetVringEnable;
    if (auto s = ring_index(r, state.index); !s) {
        return s;
    }
    // Without VHOST_USER_F_PROTOCOL_FEATURES rings are enabled implicitly and
    // this request changes nothing that matters; some front-ends send it anyway.
    if (state.num > 1) {
        return msg_error(r, fmt::format("ring {}: num {} (must be 0 or 1)", state.index, state.num));
    }
    Ring& ring = rings_[state.index];
    const bool enable = state.num == 1;
    if (ring.enabled == enable) {
        return Ok{};
    }
    // The ring keeps running (a disabled TX ring is drained and discarded),
    // so its position carries over; only what the data path does changes.
    ring.enabled = enable;
    if (ring_live(ring)) {
        publish();
    }
    return Ok{};
}

Status Session::on_send_rarp(uint64_t value) {
    if (auto s = require_protocol_feature(Request::SendRarp, pf::kRarp); !s) {
        return s;
    }
    std::array<uint8_t, 6> mac{};
    std::memcpy(mac.data(), &value, mac.size());
    device_.announce(mac);
    return Ok{};
}

Status Session::on_net_set_mtu(uint64_t value) {
    const Request r = Request::NetSetMtu;
    if (auto s = require_protocol_feature(r, pf::kMtu); !s) {
        return s;
    }
    // VIRTIO 1.2 §5.1.4.1: mtu is at least 68.
    const uint64_t limit = limits_.max_mtu.value_or(65535);
    if (value < 68 || value > limit) {
        return msg_error(r, fmt::format("mtu {} outside 68..{}", value, limit));
    }
    mtu_ = static_cast<uint32_t>(value);
    publish();
    return Ok{};
}

Status Session::on_set_status(uint64_t value) {
    const Request r = Request::SetStatus;
    if (auto s = require_protocol_feature(r, pf::kStatus); !s) {
        return s;
    }
    if (value > 0xff) {
        return msg_error(r, fmt::format("status 0x{:x} does not fit the 8-bit device status", value));
    }
    status_ = static_cast<uint8_t>(value);
    return Ok{};
}

} // namespace vhostd::protocol
