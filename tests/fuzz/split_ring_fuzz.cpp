// Fuzz target: the split-ring walker and queue operations (virtio/split_ring,
// virtio/split_queue, virtio/net_rx, virtio/net_hdr). A guest memory image
// (memfd-backed, one or two regions) with a ring in it, the ring state, and a
// program of device operations interleaved with guest stores. Input layout:
// tests/fuzz/formats.hpp.
//
// Checks, beyond the sanitizers:
//  - every chain taken off the ring: head below the ring size, at most
//    kMaxChainPieces pieces, their lengths add up to the chain length, and
//    every piece lies inside guest memory (one region's mapping); both ends
//    of every piece are read, as the data path would;
//  - every fetch agrees with a reference model written from the spec
//    (tests/fuzz/ring_model.hpp): empty, a violation, or the same chain
//    (head, length, and each piece);
//  - fetches advance last_avail_idx by exactly one chain; deliver_frame
//    and RxBatch::deliver consume nothing unless they delivered; a broken
//    queue has a reason;
//  - once the queue is broken, the device never writes guest memory again;
//  - skip_net_header / copy_frame agree with the chain length.

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "protocol/memory_table.hpp"
#include "protocol/wire.hpp"
#include "tests/fakes/guest_memory.hpp"
#include "tests/fuzz/fd_watch.hpp"
#include "tests/fuzz/formats.hpp"
#include "tests/fuzz/fuzz_input.hpp"
#include "tests/fuzz/ring_model.hpp"
#include "virtio/net_hdr.hpp"
#include "virtio/net_rx.hpp"
#include "virtio/rx_batch.hpp"
#include "virtio/split_queue.hpp"
#include "virtio/split_ring.hpp"

namespace vhostd::fuzz {
namespace {

using protocol::MemoryTable;
using namespace vhostd::virtio;

struct Guest {
    fakes::GuestMemory mem{kRingImageSize, kRingGpa, kRingUva, "vhostd-fuzz-ring"};
    std::shared_ptr<const MemoryTable> whole;
    std::array<std::shared_ptr<const MemoryTable>, 64> split;  // by (layout >> 1) % 63 + 1
};

Guest& guest() {
    static Guest* g = new Guest();  // lives for the whole run
    return *g;
}

const MemoryTable& table_for(uint8_t layout) {
    Guest& g = guest();
    if ((layout & kRingTwoRegions) == 0) {
        if (!g.whole) {
            g.whole = g.mem.table();
        }
        return *g.whole;
    }
    auto& t = g.split[(layout >> 1) % 63 + 1];
    if (!t) {
        t = g.mem.split_table({ring_cut(layout)});
    }
    return *t;
}

bool inside_guest(const MemoryTable& t, const uint8_t* p, uint64_t len) {
    for (const protocol::HostRegion& r : t.regions()) {
        if (p >= r.host && len <= r.size && static_cast<uint64_t>(p - r.host) <= r.size - len) {
            return true;
        }
    }
    return false;
}

void check_chain(const SplitRing& ring, const Chain& chain) {
    check(chain.head < ring.size, "chain head not below the ring size");
    check(chain.count <= kMaxChainPieces, "too many pieces");
    uint64_t total = 0;
    for (const Piece& p : chain.view()) {
        check(p.len != 0, "empty piece");
        check(inside_guest(*ring.mem, p.host, p.len), "piece outside guest memory");
        const volatile uint8_t* first = p.host;
        const volatile uint8_t* last = p.host + p.len - 1;
        (void)*first;
        (void)*last;
        total += p.len;
    }
    check(total == chain.len, "pieces do not add up to the chain length");
}

// The pieces the model's buffers must become: each buffer split where the
// regions meet. Empty when more than kMaxChainPieces would be needed.
std::vector<Piece> expected_pieces(const MemoryTable& t, const ModelFetch& m) {
    std::vector<Piece> out;
    for (const ModelSeg& s : m.segs) {
        uint64_t gpa = s.gpa;
        uint64_t left = s.len;
        while (left != 0) {
            const protocol::HostRegion* r = nullptr;
            for (const protocol::HostRegion& c : t.regions()) {
                if (gpa >= c.gpa && gpa - c.gpa < c.size) {
                    r = &c;
                }
            }
            check(r != nullptr, "model buffer outside every region");
            const uint64_t take = std::min(left, r->gpa + r->size - gpa);
            out.push_back({r->host + (gpa - r->gpa), static_cast<uint32_t>(take)});
            gpa += take;
            left -= take;
        }
    }
    return out;
}

FetchStatus fetch(const SplitRing& ring, QueueState& st, Chain& chain, bool rx) {
    const uint16_t before = st.last_avail_idx;
    const bool was_broken = st.broken;
    const RingLayout l = ring_layout(ring.size);
    const ModelFetch want = RingModel(guest().mem.driver_ptr(kRingGpa, kRingImageSize), kRingGpa, kRingImageSize,
                                      l.desc, l.avail, ring.size, ring.indirect)
                                .fetch(st.last_avail_idx, st.avail_idx_shadow, rx);
    const FetchStatus s = rx ? fetch_rx_chain(ring, st, chain) : fetch_tx_chain(ring, st, chain);
    switch (s) {
    case FetchStatus::kChain:
        check(!st.broken, "a chain from a broken queue");
        check(st.last_avail_idx == static_cast<uint16_t>(before + 1), "fetch did not advance by one");
        check_chain(ring, chain);
        break;
    case FetchStatus::kEmpty:
        check(!st.broken && st.last_avail_idx == before, "empty fetch moved the index");
        break;
    case FetchStatus::kBroken:
        check(st.broken && st.broken_reason != nullptr, "broken without a reason");
        break;
    }
    if (was_broken) {
        check(s == FetchStatus::kBroken, "a broken queue fetched");
        return s;
    }
    switch (want.result) {
    case ModelResult::kEmpty:
        check(s == FetchStatus::kEmpty, "the model finds the ring empty, the device does not");
        break;
    case ModelResult::kViolation:
        check(s == FetchStatus::kBroken, "the model finds a violation, the device does not");
        break;
    case ModelResult::kChain: {
        const std::vector<Piece> pieces = expected_pieces(*ring.mem, want);
        if (pieces.size() > kMaxChainPieces) {
            check(s == FetchStatus::kBroken, "a chain of too many pieces was accepted");
            break;
        }
        check(s == FetchStatus::kChain, "the model finds a valid chain, the device does not");
        check(chain.head == want.head && chain.len == want.total && chain.count == pieces.size(),
              "the chain differs from the model's (head, length or pieces)");
        for (size_t i = 0; i < pieces.size(); ++i) {
            check(chain.pieces[i].host == pieces[i].host && chain.pieces[i].len == pieces[i].len,
                  "a piece differs from the model's");
        }
        break;
    }
    }
    return s;
}

void tx(const SplitRing& ring, QueueState& st, Chain& chain) {
    if (fetch(ring, st, chain, false) != FetchStatus::kChain) {
        return;
    }
    static uint8_t frame[64 * 1024];
    if (auto view = skip_net_header(chain.view(), chain.len, ring.hdr_len)) {
        check(view->len == chain.len - ring.hdr_len, "frame length is not chain length minus header");
        const uint32_t n = copy_frame(*view, frame, sizeof(frame));
        check(n == std::min<uint32_t>(view->len, sizeof(frame)), "copy_frame copied a wrong amount");
    } else {
        check(chain.len < ring.hdr_len, "skip_net_header refused a chain that holds a header");
    }
    push_used(ring, st, chain.head, 0);
}

void rx(const SplitRing& ring, QueueState& st, Chain& chain, uint16_t written) {
    if (fetch(ring, st, chain, true) == FetchStatus::kChain) {
        push_used(ring, st, chain.head, std::min<uint32_t>(written, chain.len));
    }
}

// Through deliver_frame, or deferred through `batch` (committed at the next
// flush or restart, or at the end) when `batch` is given.
void deliver(const SplitRing& ring, QueueState& st, uint16_t len, RxBatch* batch) {
    static const std::vector<uint8_t> source = [] {
        std::vector<uint8_t> v(64 * 1024);
        for (size_t i = 0; i < v.size(); ++i) {
            v[i] = static_cast<uint8_t>(i * 7 + 1);
        }
        return v;
    }();
    const uint16_t before = st.last_avail_idx;
    const uint64_t frames = st.rx_frames;
    const Piece piece{const_cast<uint8_t*>(source.data()), len};
    const FrameView frame{std::span<const Piece>(&piece, len == 0 ? 0 : 1), 0, len};
    switch (batch != nullptr ? batch->deliver(ring, st, frame) : deliver_frame(ring, st, frame)) {
    case DeliverStatus::kDelivered:
        check(st.rx_frames == frames + 1, "delivered frame not counted");
        break;
    case DeliverStatus::kNoBuffer:
    case DeliverStatus::kTooBig:
        check(st.last_avail_idx == before, "a frame not delivered consumed buffers");
        break;
    case DeliverStatus::kBroken:
        check(st.broken && st.broken_reason != nullptr, "broken without a reason");
        break;
    }
}

} // namespace
} // namespace vhostd::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace vhostd;
    using namespace vhostd::fuzz;
    using namespace vhostd::virtio;
    FuzzInput in(data, size);
    const auto config = in.take<uint8_t>();
    const auto layout = in.take<uint8_t>();
    const auto last_avail = in.take<uint16_t>();
    const auto nops = in.take<uint8_t>();
    std::vector<RingOp> ops;
    for (unsigned i = 0; i < nops; ++i) {
        ops.push_back(in.take<RingOp>());
    }
    const auto image = in.rest();

    Guest& g = guest();
    uint8_t* mem = g.mem.driver_ptr(kRingGpa, kRingImageSize);
    std::memset(mem, 0, kRingImageSize);
    std::memcpy(mem, image.data(), std::min<size_t>(image.size(), kRingImageSize));

    const uint32_t ring_size = 1u << std::min<unsigned>(config & 0x0f, kRingMaxLog2);
    uint64_t features = 0;
    features |= (config & kRingIndirect) != 0 ? protocol::bit(protocol::vf::kRingIndirectDesc) : 0;
    features |= (config & kRingEventIdx) != 0 ? protocol::bit(protocol::vf::kRingEventIdx) : 0;
    features |= (config & kRingMrg) != 0 ? protocol::bit(protocol::vf::kNetMrgRxbuf) : 0;
    features |= (config & kRingV1) != 0 ? protocol::bit(protocol::vf::kVersion1) : 0;

    const MemoryTable& table = table_for(layout);
    const RingLayout l = ring_layout(ring_size);
    auto ring_or = SplitRing::create(table, l.desc - kRingGpa + kRingUva, l.avail - kRingGpa + kRingUva,
                                     l.used - kRingGpa + kRingUva, ring_size, features);
    if (!ring_or) {
        return 0;  // a ring straddling the two regions
    }
    const SplitRing ring = *ring_or;
    QueueState st = QueueState::start(ring, last_avail);
    auto chain = std::make_unique<Chain>();
    auto batch = std::make_unique<RxBatch>();
    std::vector<uint8_t> frozen;  // guest memory when the queue broke

    for (const RingOp& op : ops) {
        if (st.broken && frozen.empty()) {
            frozen.assign(mem, mem + kRingImageSize);
        }
        switch (op.op % kRingOps) {
        case kOpFetchTx:
            tx(ring, st, *chain);
            break;
        case kOpFetchRx:
            rx(ring, st, *chain, op.a);
            break;
        case kOpDeliver:
            // b bit 0: deferred through the batch; bit 1: its first-line
            // streaming stores on (they fence before anything is published).
            batch->set_streaming((op.b & 2) != 0);
            deliver(ring, st, op.a, (op.b & 1) != 0 ? batch.get() : nullptr);
            break;
        case kOpFlush:
            batch->commit();
            flush_used(ring, st);
            (void)needs_call(ring, st);
            break;
        case kOpNotify:
            enable_notifications(ring, st, (op.a & 1) != 0);
            (void)has_pending(ring, st);
            break;
        case kOpGuestWrite: {
            const uint64_t off = (2ull * op.a) % kRingImageSize;
            std::memcpy(mem + off, &op.b, sizeof(op.b));
            if (!frozen.empty()) {
                std::memcpy(frozen.data() + off, &op.b, sizeof(op.b));
            }
            break;
        }
        case kOpRestart:
            batch->commit();  // the PMD commits before a ring can restart (QSBR)
            st = QueueState::start(ring, op.a);
            frozen.clear();
            break;
        default:
            break;
        }
    }
    if (st.broken && frozen.empty()) {
        frozen.assign(mem, mem + kRingImageSize);  // broke in the last op: commit() must not write
    }
    batch->commit();
    if (st.broken && !frozen.empty()) {
        check(std::memcmp(frozen.data(), mem, kRingImageSize) == 0, "the device wrote guest memory after it broke");
    }
    return 0;
}
