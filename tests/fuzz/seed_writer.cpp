// fuzz_seed_writer DIR: writes the seed corpora of the fuzz targets into
// DIR/codec, DIR/memory_table, DIR/split_ring and DIR/l2_table, in the layouts
// of tests/fuzz/formats.hpp. The seeds are realistic, valid inputs built with
// the code and the fakes the unit tests use (protocol/codec encoders,
// GuestMemory, FakeSplitDriver), so the fuzzers start from messages, region
// lists and rings that get past the first checks. Each seed is checked to be
// what it claims (a message decodes, a region list builds a table, a ring
// yields its chains) before it is written; the program exits 1 otherwise.
//
// Built in every configuration and run by the unit suite (test `fuzz_seeds`);
// with -Dfuzz=true the build also runs it into <builddir>/tests/fuzz/seeds.

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "dataplane/l2_table.hpp"
#include "protocol/codec.hpp"
#include "protocol/memory_table.hpp"
#include "protocol/wire.hpp"
#include "tests/fakes/fake_split_driver.hpp"
#include "tests/fakes/guest_memory.hpp"
#include "tests/fuzz/formats.hpp"
#include "tests/fuzz/fuzz_input.hpp"
#include "virtio/split_queue.hpp"

namespace vhostd::fuzz {
namespace {

namespace fs = std::filesystem;
using protocol::MemRegionWire;
using protocol::Request;

void require(bool ok, const std::string& what) {
    if (!ok) {
        throw std::runtime_error(what);
    }
}

class SeedDir {
public:
    SeedDir(const fs::path& root, const char* target) : dir_(root / target) {
        fs::remove_all(dir_);
        fs::create_directories(dir_);
    }
    void write(const std::string& name, const std::vector<uint8_t>& bytes) {
        std::ofstream out(dir_ / name, std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
        require(out.good(), "cannot write " + (dir_ / name).string());
        ++count_;
    }
    [[nodiscard]] size_t count() const noexcept { return count_; }

private:
    fs::path dir_;
    size_t count_ = 0;
};

UniqueFd memfd(uint64_t size) {
    UniqueFd fd(::memfd_create("vhostd-seed", MFD_CLOEXEC));
    require(fd.valid() && ::ftruncate(fd.get(), static_cast<off_t>(size)) == 0, "memfd");
    return fd;
}

template <typename T>
std::vector<uint8_t> bytes_of(const T& v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    return {p, p + sizeof(T)};
}

// ---- codec ----

// A region of the i-th 64 KiB memfd.
MemRegionWire codec_region(uint64_t i) {
    return MemRegionWire{0x100000 * (i + 1), kCodecMemfdSize, 0x7f0000000000 + 0x100000 * (i + 1), 0};
}

std::vector<uint8_t> mem_table(uint32_t n) {
    FuzzOutput out;
    out.put(protocol::MemTableHeaderWire{n, 0});
    for (uint32_t i = 0; i < n; ++i) {
        out.put(codec_region(i));
    }
    return out.bytes();
}

void codec_seed(SeedDir& dir, const std::string& name, Request r, std::span<const uint8_t> payload, uint8_t nfds,
                bool valid = true, uint32_t flags = protocol::kFlagVersion1) {
    const auto msg = protocol::encode_request(r, flags, payload);
    if (valid) {
        std::vector<UniqueFd> fds;
        for (uint8_t i = 0; i < nfds; ++i) {
            fds.push_back(memfd(kCodecMemfdSize));
        }
        auto decoded = protocol::decode(msg, std::move(fds), false);
        require(decoded.ok(), "codec seed " + name + " does not decode: " +
                                  (decoded.ok() ? std::string() : decoded.error().message));
    }
    FuzzOutput out;
    out.put(nfds).put_bytes(msg);
    dir.write(name, out.bytes());
}

template <typename T>
void codec_seed_of(SeedDir& dir, const std::string& name, Request r, const T& payload, uint8_t nfds = 0) {
    const auto b = bytes_of(payload);
    codec_seed(dir, name, r, b, nfds);
}

size_t write_codec(const fs::path& root) {
    SeedDir dir(root, "codec");
    const std::span<const uint8_t> none;
    for (Request r : {Request::GetFeatures, Request::SetOwner, Request::ResetOwner, Request::GetProtocolFeatures,
                      Request::GetQueueNum, Request::GetMaxMemSlots, Request::GetStatus, Request::ResetDevice}) {
        codec_seed(dir, std::string("empty-") + protocol::request_name(r), r, none, 0);
    }
    codec_seed(dir, "get-features-need-reply", Request::GetFeatures, none, 0, true,
               protocol::kFlagVersion1 | protocol::kFlagNeedReply);
    codec_seed_of(dir, "set-features", Request::SetFeatures, uint64_t{0x1'7020'8000});
    codec_seed_of(dir, "set-protocol-features", Request::SetProtocolFeatures, uint64_t{0x1'800b});
    codec_seed_of(dir, "set-status", Request::SetStatus, uint64_t{0x0f});
    codec_seed_of(dir, "net-set-mtu", Request::NetSetMtu, uint64_t{1500});
    codec_seed_of(dir, "send-rarp", Request::SendRarp, uint64_t{0x5634'1200'5452});
    codec_seed_of(dir, "set-vring-num", Request::SetVringNum, protocol::VringState{0, 256});
    codec_seed_of(dir, "set-vring-base", Request::SetVringBase, protocol::VringState{1, 0});
    codec_seed_of(dir, "get-vring-base", Request::GetVringBase, protocol::VringState{1, 0});
    codec_seed_of(dir, "set-vring-enable", Request::SetVringEnable, protocol::VringState{0, 1});
    codec_seed_of(dir, "set-vring-addr", Request::SetVringAddr,
                  protocol::VringAddr{0, 0, 0x7f0000100000, 0x7f0000102000, 0x7f0000101000, 0});
    codec_seed_of(dir, "set-vring-kick", Request::SetVringKick, uint64_t{0}, 1);
    codec_seed_of(dir, "set-vring-call", Request::SetVringCall, uint64_t{1}, 1);
    codec_seed_of(dir, "set-vring-err", Request::SetVringErr, uint64_t{0}, 1);
    codec_seed_of(dir, "set-vring-kick-polling", Request::SetVringKick, uint64_t{protocol::kVringNoFdFlag}, 0);
    for (uint32_t n : {1u, 2u, 8u}) {
        codec_seed(dir, "set-mem-table-" + std::to_string(n), Request::SetMemTable, mem_table(n),
                   static_cast<uint8_t>(n));
    }
    codec_seed_of(dir, "add-mem-reg", Request::AddMemReg, protocol::SingleMemRegionWire{0, codec_region(0)}, 1);
    codec_seed_of(dir, "rem-mem-reg", Request::RemMemReg, protocol::SingleMemRegionWire{0, codec_region(0)}, 0);
    codec_seed_of(dir, "set-log-base", Request::SetLogBase, protocol::LogWire{0x1000, 0}, 1);
    codec_seed(dir, "set-log-fd", Request::SetLogFd, none, 1);
    // A few that must fail, each at another check.
    codec_seed(dir, "bad-reply-bit", Request::GetFeatures, none, 0, false,
               protocol::kFlagVersion1 | protocol::kFlagReply);
    codec_seed(dir, "bad-zero-regions", Request::SetMemTable, mem_table(0), 0, false);
    codec_seed(dir, "bad-fd-count", Request::SetMemTable, mem_table(2), 3, false);
    codec_seed(dir, "bad-unsupported", Request::GetConfig, none, 0, false);
    return dir.count();
}

// ---- memory table ----

struct RegionSpec {
    uint8_t pages;  // file_size(pages)
    MemRegionWire wire;
};

std::vector<uint8_t> table_input(const std::vector<RegionSpec>& regions, const FuzzOutput& ops) {
    std::vector<MemRegionWire> wires;
    std::vector<UniqueFd> fds;
    FuzzOutput out;
    out.put(static_cast<uint8_t>(regions.size()));
    for (const RegionSpec& r : regions) {
        out.put(r.pages).put(r.wire);
        wires.push_back(r.wire);
        fds.push_back(memfd(file_size(r.pages)));
    }
    auto table = protocol::MemoryTable::create(wires, std::move(fds));
    require(table.ok(), "memory table seed does not build: " + (table.ok() ? std::string() : table.error().message));
    out.put_bytes(ops.bytes());
    return out.bytes();
}

FuzzOutput& translate_op(FuzzOutput& ops, MemOp op, uint8_t sel, int32_t offset, uint32_t len) {
    ops.put(static_cast<uint8_t>(op)).put(sel).put(static_cast<uint64_t>(static_cast<uint32_t>(offset))).put(len);
    if (op == kMemPieces) {
        ops.put(uint8_t{4});
    }
    return ops;
}

size_t write_memory_table(const fs::path& root) {
    SeedDir dir(root, "memory_table");
    constexpr uint64_t kGpa = 0x100000;
    constexpr uint64_t kUva = 0x7f0000000000;
    {
        FuzzOutput ops;
        translate_op(ops, kMemGpa, 0, 0, 64);
        translate_op(ops, kMemUva, 0, 0x1000, 0x1000);
        translate_op(ops, kMemGpa, 0, 0xfff0, 0x20);  // runs off the end
        translate_op(ops, kMemPieces, 0, 0x100, 0x200);
        dir.write("one-region", table_input({{15, {kGpa, 0x10000, kUva, 0}}}, ops));
    }
    {
        // Two regions adjacent in guest memory, apart in ours: split pieces.
        FuzzOutput ops;
        translate_op(ops, kMemPieces, 0, 0x1ff0, 0x20);
        translate_op(ops, kMemGpa, 1, 0, 0x10);
        translate_op(ops, kMemUva, 1, -8, 0x10);
        dir.write("two-adjacent", table_input({{1, {kGpa, 0x2000, kUva, 0}}, {3, {kGpa + 0x2000, 0x2000, kUva + 0x2000, 0x2000}}}, ops));
    }
    {
        // mmap_offset not page-aligned, as a slice of a larger file.
        FuzzOutput ops;
        translate_op(ops, kMemGpa, 0, 0, 0x100);
        translate_op(ops, kMemUva, 0, 0x7f0, 0x10);
        dir.write("unaligned-offset", table_input({{3, {kGpa, 0x3000, kUva, 0x123}}}, ops));
    }
    {
        // Eight regions, then ADD_MEM_REG and REM_MEM_REG.
        std::vector<RegionSpec> regions;
        for (uint64_t i = 0; i < 8; ++i) {
            regions.push_back({0, {kGpa + i * 0x10000, 0x1000, kUva + i * 0x10000, 0}});
        }
        FuzzOutput ops;
        ops.put(static_cast<uint8_t>(kMemAdd)).put(uint8_t{1}).put(MemRegionWire{kGpa + 0x80000, 0x2000, kUva + 0x80000, 0});
        translate_op(ops, kMemGpa, 8, 0x1800, 0x100);
        ops.put(static_cast<uint8_t>(kMemRemove)).put(uint8_t{3}).put(uint8_t{1});
        translate_op(ops, kMemPieces, 3, 0, 0x10);
        ops.put(static_cast<uint8_t>(kMemRemove)).put(uint8_t{0}).put(uint8_t{0}).put(MemRegionWire{kGpa, 0x1000, kUva, 0});
        translate_op(ops, kMemUva, 0x80, static_cast<int32_t>(kUva + 0x10000), 8);
        dir.write("eight-add-remove", table_input(regions, ops));
    }
    {
        // Start empty (no region), then ADD_MEM_REG only, as a front-end
        // with CONFIGURE_MEM_SLOTS does.
        FuzzOutput out;
        out.put(uint8_t{0});
        for (uint64_t i = 0; i < 3; ++i) {
            out.put(static_cast<uint8_t>(kMemAdd)).put(uint8_t{0}).put(MemRegionWire{kGpa + i * 0x1000, 0x1000, kUva + i * 0x1000, 0});
        }
        translate_op(out, kMemPieces, 0, 0x800, 0x1000);
        dir.write("add-only", out.bytes());
    }
    return dir.count();
}

// ---- split ring ----

struct RingSeed {
    uint8_t config;
    uint8_t layout = 0;
    std::vector<RingOp> ops;
};

// Builds a ring with `fill` (driver side, FakeSplitDriver), checks that the
// device sees `chains` chains in it, and writes the seed.
template <typename Fill>
void ring_seed(SeedDir& dir, const std::string& name, const RingSeed& s, int chains, bool rx, Fill fill) {
    const uint32_t size = 1u << (s.config & 0x0f);
    fakes::GuestMemory mem(kRingImageSize, kRingGpa, kRingUva);
    const RingLayout l = ring_layout(size);
    fakes::FakeSplitDriver drv(mem, static_cast<uint16_t>(size), 0, (l.end + 63) & ~uint64_t{63});
    require(drv.desc_gpa() == l.desc && drv.avail_gpa() == l.avail && drv.used_gpa() == l.used,
            "ring_layout() disagrees with FakeSplitDriver");
    fill(drv);
    const uint64_t end = drv.alloc(1, 1) - kRingGpa;  // everything written lies below

    uint64_t features = protocol::bit(protocol::vf::kVersion1);
    features |= (s.config & kRingIndirect) != 0 ? protocol::bit(protocol::vf::kRingIndirectDesc) : 0;
    features |= (s.config & kRingEventIdx) != 0 ? protocol::bit(protocol::vf::kRingEventIdx) : 0;
    features |= (s.config & kRingMrg) != 0 ? protocol::bit(protocol::vf::kNetMrgRxbuf) : 0;
    auto table = (s.layout & kRingTwoRegions) != 0 ? mem.split_table({ring_cut(s.layout)}) : mem.table();
    auto ring = drv.ring(*table, features);
    auto st = virtio::QueueState::start(ring, 0);
    auto chain = std::make_unique<virtio::Chain>();
    for (int i = 0; i < chains; ++i) {
        const auto got = rx ? virtio::fetch_rx_chain(ring, st, *chain) : virtio::fetch_tx_chain(ring, st, *chain);
        require(got == virtio::FetchStatus::kChain, "ring seed " + name + ": chain " + std::to_string(i) +
                                                        " not fetched" +
                                                        (st.broken ? std::string(": ") + st.broken_reason : ""));
    }

    FuzzOutput out;
    out.put(static_cast<uint8_t>(s.config | kRingV1)).put(s.layout).put(uint16_t{0});
    out.put(static_cast<uint8_t>(s.ops.size()));
    for (const RingOp& op : s.ops) {
        out.put(op);
    }
    out.put_bytes(std::span<const uint8_t>(mem.driver_ptr(kRingGpa, end), end));
    dir.write(name, out.bytes());
}

std::vector<uint8_t> frame(size_t n) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; ++i) {
        v[i] = static_cast<uint8_t>(i * 13 + 5);
    }
    return v;
}

size_t write_split_ring(const fs::path& root) {
    SeedDir dir(root, "split_ring");
    const RingOp tx{kOpFetchTx, 0, 0};
    const RingOp flush{kOpFlush, 0, 0};
    ring_seed(dir, "tx-two-chains", {4, 0, {tx, tx, flush, tx, {kOpNotify, 1, 0}}}, 2, false, [](auto& d) {
        d.send(frame(12 + 60), {12});
        d.send(frame(12 + 200));
    });
    ring_seed(dir, "tx-header-split-three", {4, 0, {tx, flush}}, 1, false,
              [](auto& d) { d.send(frame(12 + 100), {4, 4, 4}); });
    ring_seed(dir, "tx-indirect", {static_cast<uint8_t>(4 | kRingIndirect), 0, {tx, tx, flush}}, 2, false,
              [](auto& d) {
                  d.send(frame(12 + 300), {12, 100}, true);
                  d.send(frame(12 + 64), {}, true);
              });
    ring_seed(dir, "tx-event-idx-256", {static_cast<uint8_t>(8 | kRingEventIdx), 0, {tx, tx, tx, flush, {kOpNotify, 1, 0}, tx}},
              3, false, [](auto& d) {
                  for (int i = 0; i < 3; ++i) {
                      d.send(frame(12 + 64 + i));
                  }
              });
    // The cut at 4 KiB (layout 7) splits a buffer between the two regions.
    ring_seed(dir, "tx-across-regions", {4, 7, {tx, flush}}, 1, false, [](auto& d) {
        (void)d.alloc(4096 + 256, 1);  // the data area now covers the cut
        const uint64_t gpa = kRingGpa + 4096 - 40;
        d.write_bytes(gpa, frame(12 + 100));
        d.add_chain({{gpa, 112, false}});
    });
    ring_seed(dir, "rx-mergeable", {static_cast<uint8_t>(3 | kRingMrg), 0, {{kOpDeliver, 3000, 0}, flush, {kOpDeliver, 60, 0}, flush}},
              0, true, [](auto& d) {
                  for (int i = 0; i < 4; ++i) {
                      d.post_rx({1536});
                  }
              });
    ring_seed(dir, "rx-plain", {4, 0, {{kOpDeliver, 1000, 0}, {kOpFetchRx, 100, 0}, flush}}, 2, true, [](auto& d) {
        d.post_rx({1514 + 12});
        d.post_rx({12, 1514});
    });
    // Two frames deferred in an RxBatch around one written at once (its RX
    // chain has two descriptors), then the commit at the flush.
    ring_seed(dir, "rx-batched",
              {static_cast<uint8_t>(4 | kRingMrg), 0,
               {{kOpDeliver, 60, 1}, {kOpDeliver, 700, 1}, {kOpDeliver, 60, 1}, flush}},
              3, true, [](auto& d) {
                  d.post_rx({1536});
                  d.post_rx({12, 1514});
                  d.post_rx({1536});
              });
    // The same with the first line of each frame streamed: RX buffers whose
    // frame starts on a cache line.
    ring_seed(dir, "rx-streamed",
              {static_cast<uint8_t>(4 | kRingMrg), 0,
               {{kOpDeliver, 60, 3}, {kOpDeliver, 700, 3}, {kOpDeliver, 1500, 3}, flush}},
              3, true, [](auto& d) {
                  for (int i = 0; i < 3; ++i) {
                      d.add_chain({{d.alloc(1536 + 64, 64) + 64 - 12, 1536, true}});
                  }
              });
    ring_seed(dir, "rx-indirect", {static_cast<uint8_t>(4 | kRingIndirect), 0, {{kOpDeliver, 500, 0}, flush}}, 1, true,
              [](auto& d) { d.post_rx({12, 256, 256}, true); });
    return dir.count();
}

// ---- L2 table ----

struct L2Step {
    L2Op op;
    uint8_t mac;
    uint8_t port;
    uint8_t arg;
};

void l2_seed(SeedDir& dir, const std::string& name, uint8_t capacity, uint8_t aging, uint8_t pool,
             const std::vector<L2Step>& steps) {
    FuzzOutput out;
    out.put(capacity).put(aging).put(uint32_t{1000}).put(pool);
    for (const L2Step& s : steps) {
        out.put(static_cast<uint8_t>(s.op)).put(s.mac).put(s.port).put(s.arg);
    }
    dir.write(name, out.bytes());
}

size_t write_l2_table(const fs::path& root) {
    SeedDir dir(root, "l2_table");
    // Learn two MACs, switch between them, let one age, move one.
    l2_seed(dir, "learn-lookup-age", 63, 5, 8,
            {{kL2Learn, 1, 0, 0}, {kL2Learn, 2, 1, 0}, {kL2Lookup, 1, 0, 0}, {kL2Lookup, 2, 0, 0},
             {kL2Advance, 0, 0, 3}, {kL2Learn, 1, 0, 0}, {kL2Advance, 0, 0, 3}, {kL2Lookup, 2, 0, 0},
             {kL2Lookup, 1, 0, 1}, {kL2Learn, 1, 2, 0}, {kL2Entries, 0, 0, 0}});
    // Multicast source (pool entry 6) is never learned; the zero MAC is.
    l2_seed(dir, "multicast-and-zero", 15, 7, 8,
            {{kL2Learn, 6, 1, 0}, {kL2Lookup, 6, 0, 0}, {kL2Learn, 0, 3, 0}, {kL2Lookup, 0, 0, 0},
             {kL2Entries, 0, 0, 0}});
    // Flush a port, then everything.
    l2_seed(dir, "flush", 31, 7, 16,
            {{kL2Learn, 1, 1, 0}, {kL2Learn, 2, 2, 0}, {kL2Learn, 3, 1, 0}, {kL2FlushPort, 0, 1, 0},
             {kL2Lookup, 1, 0, 0}, {kL2Lookup, 2, 0, 0}, {kL2Entries, 0, 0, 0}, {kL2Flush, 0, 0, 0},
             {kL2Lookup, 2, 0, 0}});
    // More MACs than a probe window in a small table.
    std::vector<L2Step> many;
    for (uint8_t i = 1; i < 40; ++i) {
        many.push_back({kL2Learn, i, static_cast<uint8_t>(i % 4), 0});
    }
    for (uint8_t i = 1; i < 40; ++i) {
        many.push_back({kL2Lookup, i, 0, 0});
    }
    many.push_back({kL2Entries, 0, 0, 0});
    l2_seed(dir, "full-table", 15, 7, 63, many);
    return dir.count();
}

} // namespace
} // namespace vhostd::fuzz

int main(int argc, char** argv) {
    using namespace vhostd::fuzz;
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    try {
        const fs::path root(argv[1]);
        const size_t codec = write_codec(root);
        const size_t table = write_memory_table(root);
        const size_t ring = write_split_ring(root);
        const size_t l2 = write_l2_table(root);
        std::printf("fuzz seeds in %s: codec %zu, memory_table %zu, split_ring %zu, l2_table %zu\n", argv[1], codec,
                    table, ring, l2);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fuzz_seed_writer: %s\n", e.what());
        return 1;
    }
    return 0;
}
