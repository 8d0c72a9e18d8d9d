// Unit tests for protocol::MemoryTable: translation at every edge, every
// rejection of a hostile region description, ADD_MEM_REG / REM_MEM_REG with
// shared mappings, and no fd or mapping leaks.

#include "protocol/memory_table.hpp"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "tests/fakes/guest_memory.hpp"

namespace vhostd::protocol {
namespace {

using fakes::GuestMemory;
using Piece = MemoryTable::Piece;

constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
constexpr uint64_t kGpa = 0x100000;
constexpr uint64_t kUva = 0x7f0000000000;

UniqueFd make_memfd(uint64_t size, const char* name = "vhostd-test") {
    UniqueFd fd(::memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING));
    EXPECT_TRUE(fd.valid());
    EXPECT_EQ(::ftruncate(fd.get(), static_cast<off_t>(size)), 0);
    return fd;
}

std::vector<UniqueFd> memfds(size_t n, uint64_t size) {
    std::vector<UniqueFd> fds;
    for (size_t i = 0; i < n; ++i) {
        fds.push_back(make_memfd(size));
    }
    return fds;
}

std::vector<UniqueFd> one_fd(UniqueFd fd) {
    std::vector<UniqueFd> fds;
    fds.push_back(std::move(fd));
    return fds;
}

size_t count_fds() {
    size_t n = 0;
    for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
        ++n;
    }
    return n;
}

// Lines of /proc/self/maps, or only those that contain `needle`.
size_t count_maps(const std::string& needle = "") {
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

// Expects `result` to be an error whose message contains `fragment`.
template <typename T>
void expect_error(const Result<T>& result, const std::string& fragment) {
    ASSERT_FALSE(result.ok()) << "expected an error containing \"" << fragment << "\"";
    EXPECT_NE(result.error().message.find(fragment), std::string::npos)
        << "message: \"" << result.error().message << "\", expected to contain \"" << fragment << "\"";
}

Result<std::shared_ptr<const MemoryTable>> create_one(const MemRegionWire& region, UniqueFd fd) {
    return MemoryTable::create(std::span(&region, 1), one_fd(std::move(fd)));
}

// ---- translation ----

TEST(MemoryTableTranslate, RegionStartEndAndOnePastTheEnd) {
    GuestMemory mem(0x10000, kGpa, kUva);
    auto table = mem.table();
    ASSERT_EQ(table->size(), 1u);

    mem.put<uint32_t>(kGpa, 0x11223344);
    mem.put<uint32_t>(kGpa + 0xfffc, 0x55667788);

    uint8_t* start = table->gpa_to_host(kGpa, 4);
    ASSERT_NE(start, nullptr);
    uint32_t v = 0;
    std::memcpy(&v, start, 4);
    EXPECT_EQ(v, 0x11223344u);

    uint8_t* end = table->gpa_to_host(kGpa + 0xfffc, 4);
    ASSERT_NE(end, nullptr);
    std::memcpy(&v, end, 4);
    EXPECT_EQ(v, 0x55667788u);
    EXPECT_EQ(end, start + 0xfffc);

    // The last byte, the whole region, and nothing beyond.
    EXPECT_EQ(table->gpa_to_host(kGpa + 0xffff, 1), start + 0xffff);
    EXPECT_EQ(table->gpa_to_host(kGpa, 0x10000), start);
    EXPECT_EQ(table->gpa_to_host(kGpa, 0x10001), nullptr);
    EXPECT_EQ(table->gpa_to_host(kGpa + 0x10000, 1), nullptr);
    EXPECT_EQ(table->gpa_to_host(kGpa + 0xfffc, 5), nullptr);
    EXPECT_EQ(table->gpa_to_host(kGpa - 1, 1), nullptr);
    EXPECT_EQ(table->gpa_to_host(kGpa - 1, 2), nullptr);
    EXPECT_EQ(table->gpa_to_host(0, 1), nullptr);

    // Writes through the back-end pointer are what the driver reads.
    start[8] = 0xab;
    EXPECT_EQ(*mem.driver_ptr(kGpa + 8), 0xab);
}

TEST(MemoryTableTranslate, LengthZeroIsRejected) {
    GuestMemory mem(0x1000, kGpa, kUva);
    auto table = mem.table();
    EXPECT_EQ(table->gpa_to_host(kGpa, 0), nullptr);
    EXPECT_EQ(table->uva_to_host(kUva, 0), nullptr);
    std::array<Piece, 2> pieces{};
    EXPECT_EQ(table->gpa_to_pieces(kGpa, 0, pieces.data(), pieces.size()), 0u);
}

TEST(MemoryTableTranslate, UserAddresses) {
    GuestMemory mem(0x2000, kGpa, kUva);
    auto table = mem.table();
    uint8_t* host = table->gpa_to_host(kGpa, 1);
    ASSERT_NE(host, nullptr);
    EXPECT_EQ(table->uva_to_host(kUva, 1), host);
    EXPECT_EQ(table->uva_to_host(mem.uva_of(kGpa + 0x1fff), 1), host + 0x1fff);
    EXPECT_EQ(table->uva_to_host(kUva, 0x2000), host);
    EXPECT_EQ(table->uva_to_host(kUva, 0x2001), nullptr);
    EXPECT_EQ(table->uva_to_host(kUva + 0x2000, 1), nullptr);
    // Well past the end, where offset - size would wrap if it were not checked.
    EXPECT_EQ(table->uva_to_host(kUva + 0x3000, 1), nullptr);
    EXPECT_EQ(table->uva_to_host(kMax - 1, 1), nullptr);
    EXPECT_EQ(table->gpa_to_host(kGpa + 0x3000, 1), nullptr);
    EXPECT_EQ(table->gpa_to_host(kMax - 1, 1), nullptr);
    EXPECT_EQ(table->uva_to_host(kUva - 1, 1), nullptr);
    EXPECT_EQ(table->uva_to_host(kUva - 1, 2), nullptr);
    // A guest-physical address is not a user address.
    EXPECT_EQ(table->uva_to_host(kGpa, 1), nullptr);
}

TEST(MemoryTableTranslate, OverflowAtTopOfAddressSpace) {
    GuestMemory mem(0x1000, kGpa, kUva);
    auto table = mem.table();
    EXPECT_EQ(table->gpa_to_host(kMax, 1), nullptr);
    EXPECT_EQ(table->gpa_to_host(kMax, kMax), nullptr);
    EXPECT_EQ(table->gpa_to_host(kGpa, kMax), nullptr);
    EXPECT_EQ(table->gpa_to_host(kGpa + 1, kMax), nullptr);
    EXPECT_EQ(table->uva_to_host(kMax, 1), nullptr);
    EXPECT_EQ(table->uva_to_host(kUva, kMax), nullptr);
    std::array<Piece, 4> pieces{};
    EXPECT_EQ(table->gpa_to_pieces(kMax, 1, pieces.data(), pieces.size()), 0u);
    EXPECT_EQ(table->gpa_to_pieces(kMax - 2, 0xffffffff, pieces.data(), pieces.size()), 0u);
}

TEST(MemoryTableTranslate, RegionAtTopOfAddressSpace) {
    // The highest region that can be described: it ends one page below 2^64
    // in both address spaces.
    const uint64_t top = kMax - 0xfff;  // 2^64 - 0x1000
    const MemRegionWire region{top - 0x1000, 0x1000, top - 0x1000, 0};
    auto table = create_one(region, make_memfd(0x1000));
    ASSERT_TRUE(table.ok()) << table.error().message;
    uint8_t* host = (*table)->gpa_to_host(top - 0x1000, 0x1000);
    ASSERT_NE(host, nullptr);
    EXPECT_EQ((*table)->gpa_to_host(top - 1, 1), host + 0xfff);
    EXPECT_EQ((*table)->gpa_to_host(top - 1, 2), nullptr);
    EXPECT_EQ((*table)->gpa_to_host(top, 1), nullptr);
    EXPECT_EQ((*table)->gpa_to_host(kMax, 1), nullptr);
    EXPECT_EQ((*table)->uva_to_host(top - 1, 1), host + 0xfff);
    EXPECT_EQ((*table)->uva_to_host(top - 1, kMax), nullptr);
    std::array<Piece, 2> pieces{};
    EXPECT_EQ((*table)->gpa_to_pieces(top - 0x10, 0x10, pieces.data(), pieces.size()), 1u);
    EXPECT_EQ((*table)->gpa_to_pieces(top - 0x10, 0x11, pieces.data(), pieces.size()), 0u);
}

TEST(MemoryTableTranslate, UnalignedMmapOffset) {
    GuestMemory mem(0x3000, kGpa, kUva);
    for (uint64_t i = 0; i < 0x3000; ++i) {
        *mem.driver_ptr(kGpa + i) = static_cast<uint8_t>(i * 7);
    }
    // Bytes [0x1234, 0x2234) of the memfd as a region at gpa 0x40000.
    const MemRegionWire region{0x40000, 0x1000, 0x50000, 0x1234};
    auto table = create_one(region, mem.dup_fd());
    ASSERT_TRUE(table.ok()) << table.error().message;
    uint8_t* host = (*table)->gpa_to_host(0x40000, 0x1000);
    ASSERT_NE(host, nullptr);
    EXPECT_EQ(host[0], static_cast<uint8_t>(0x1234 * 7));
    EXPECT_EQ(host[0xfff], static_cast<uint8_t>(0x2233 * 7));
    EXPECT_EQ((*table)->regions()[0].host, host);
}

TEST(MemoryTableTranslate, UserAddressOrderDiffersFromGuestOrder) {
    GuestMemory low(0x1000, 0x0, 0x9000'0000, "vhostd-low");
    GuestMemory high(0x1000, 0x10000, 0x1000'0000, "vhostd-high");
    low.put<uint8_t>(0x0, 1);
    high.put<uint8_t>(0x10000, 2);
    const std::array<MemRegionWire, 2> regions{low.region(), high.region()};
    std::vector<UniqueFd> fds;
    fds.push_back(low.dup_fd());
    fds.push_back(high.dup_fd());
    auto table = MemoryTable::create(regions, std::move(fds));
    ASSERT_TRUE(table.ok()) << table.error().message;
    const auto& t = *table;
    ASSERT_EQ(t->size(), 2u);
    EXPECT_EQ(t->regions()[0].gpa, 0x0u);
    EXPECT_EQ(t->regions()[1].gpa, 0x10000u);
    ASSERT_NE(t->uva_to_host(0x9000'0000, 1), nullptr);
    ASSERT_NE(t->uva_to_host(0x1000'0000, 1), nullptr);
    EXPECT_EQ(*t->uva_to_host(0x9000'0000, 1), 1);
    EXPECT_EQ(*t->uva_to_host(0x1000'0000, 1), 2);
    EXPECT_EQ(t->uva_to_host(0x9000'0000, 1), t->gpa_to_host(0x0, 1));
    EXPECT_EQ(t->uva_to_host(0x1000'0fff, 1), t->gpa_to_host(0x10fff, 1));
    EXPECT_EQ(t->uva_to_host(0x1000'1000, 1), nullptr);  // gap between them
    EXPECT_EQ(t->uva_to_host(0x0fff'ffff, 1), nullptr);  // below both
    EXPECT_EQ(t->uva_to_host(0x9000'1000, 1), nullptr);  // above both
    EXPECT_EQ(t->gpa_to_host(0x1000, 1), nullptr);       // gap in guest space
}

// ---- pieces ----

TEST(MemoryTablePieces, BufferSpanningTwoAdjacentRegions) {
    GuestMemory mem(0x2000, kGpa, kUva);
    auto table = mem.split_table({0x1000});
    ASSERT_EQ(table->size(), 2u);
    for (uint64_t i = 0; i < 0x2000; ++i) {
        *mem.driver_ptr(kGpa + i) = static_cast<uint8_t>(i);
    }
    // One contiguous guest buffer; two separate mappings on our side.
    EXPECT_EQ(table->gpa_to_host(kGpa + 0xff0, 0x20), nullptr);

    std::array<Piece, 4> pieces{};
    ASSERT_EQ(table->gpa_to_pieces(kGpa + 0xff0, 0x20, pieces.data(), pieces.size()), 2u);
    EXPECT_EQ(pieces[0].host, table->gpa_to_host(kGpa + 0xff0, 1));
    EXPECT_EQ(pieces[0].len, 0x10u);
    EXPECT_EQ(pieces[1].host, table->gpa_to_host(kGpa + 0x1000, 1));
    EXPECT_EQ(pieces[1].len, 0x10u);
    std::vector<uint8_t> joined;
    for (size_t i = 0; i < 2; ++i) {
        joined.insert(joined.end(), pieces[i].host, pieces[i].host + pieces[i].len);
    }
    for (size_t i = 0; i < joined.size(); ++i) {
        EXPECT_EQ(joined[i], static_cast<uint8_t>(0xff0 + i));
    }

    // Exactly to the end of the first region: one piece.
    ASSERT_EQ(table->gpa_to_pieces(kGpa + 0xff0, 0x10, pieces.data(), pieces.size()), 1u);
    EXPECT_EQ(pieces[0].len, 0x10u);
    // Both regions whole.
    ASSERT_EQ(table->gpa_to_pieces(kGpa, 0x2000, pieces.data(), pieces.size()), 2u);
    EXPECT_EQ(pieces[0].len, 0x1000u);
    EXPECT_EQ(pieces[1].len, 0x1000u);
    // One byte more than is mapped.
    EXPECT_EQ(table->gpa_to_pieces(kGpa, 0x2001, pieces.data(), pieces.size()), 0u);
    // Not enough room for the pieces.
    EXPECT_EQ(table->gpa_to_pieces(kGpa + 0xff0, 0x20, pieces.data(), 1), 0u);
    EXPECT_EQ(table->gpa_to_pieces(kGpa, 1, pieces.data(), 0), 0u);
    EXPECT_EQ(table->gpa_to_pieces(kGpa, 1, nullptr, 4), 0u);
    // Starting before the first region.
    EXPECT_EQ(table->gpa_to_pieces(kGpa - 1, 2, pieces.data(), pieces.size()), 0u);
}

TEST(MemoryTablePieces, ManyRegions) {
    GuestMemory mem(0x8000, kGpa, kUva);
    auto table = mem.split_table({0x1000, 0x1001, 0x1002, 0x3000, 0x5000, 0x7000, 0x7ffe});
    ASSERT_EQ(table->size(), 8u);
    std::array<Piece, 8> pieces{};
    ASSERT_EQ(table->gpa_to_pieces(kGpa + 0xfff, 0x2002, pieces.data(), pieces.size()), 5u);
    const std::array<uint32_t, 5> lens{1, 1, 1, 0x1ffe, 1};
    uint64_t total = 0;
    for (size_t i = 0; i < lens.size(); ++i) {
        EXPECT_EQ(pieces[i].len, lens[i]) << "piece " << i;
        EXPECT_EQ(pieces[i].host, table->gpa_to_host(kGpa + 0xfff + total, 1)) << "piece " << i;
        total += pieces[i].len;
    }
    EXPECT_EQ(table->gpa_to_pieces(kGpa, 0x8000, pieces.data(), pieces.size()), 8u);
    EXPECT_EQ(table->gpa_to_pieces(kGpa, 0x8000, pieces.data(), 7), 0u);
}

TEST(MemoryTablePieces, GapBetweenRegions) {
    GuestMemory a(0x1000, 0x10000, 0x7000'0000, "vhostd-a");
    GuestMemory b(0x1000, 0x12000, 0x7000'1000, "vhostd-b");  // a hole at 0x11000
    const std::array<MemRegionWire, 2> regions{a.region(), b.region()};
    std::vector<UniqueFd> fds;
    fds.push_back(a.dup_fd());
    fds.push_back(b.dup_fd());
    auto table = MemoryTable::create(regions, std::move(fds));
    ASSERT_TRUE(table.ok()) << table.error().message;
    std::array<Piece, 4> pieces{};
    EXPECT_EQ((*table)->gpa_to_pieces(0x10ff0, 0x20, pieces.data(), pieces.size()), 0u);
    EXPECT_EQ((*table)->gpa_to_pieces(0x11000, 0x10, pieces.data(), pieces.size()), 0u);
    EXPECT_EQ((*table)->gpa_to_pieces(0x11ff0, 0x20, pieces.data(), pieces.size()), 0u);
    EXPECT_EQ((*table)->gpa_to_pieces(0x12000, 0x1000, pieces.data(), pieces.size()), 1u);
    EXPECT_EQ((*table)->gpa_to_host(0x11000, 1), nullptr);
    EXPECT_EQ((*table)->gpa_to_host(0x11fff, 1), nullptr);
    // Adjacent in user space but not in guest space: still not one buffer.
    EXPECT_EQ((*table)->uva_to_host(0x7000'0ff0, 0x20), nullptr);
}

// ---- create() rejections ----

TEST(MemoryTableCreate, NoRegions) {
    auto t = MemoryTable::create({}, {});
    expect_error(t, "no regions");
}

TEST(MemoryTableCreate, TooManyRegions) {
    std::vector<MemRegionWire> regions;
    for (uint64_t i = 0; i < kMaxMemTableRegions + 1; ++i) {
        regions.push_back({i * 0x1000, 0x1000, i * 0x1000, 0});
    }
    auto t = MemoryTable::create(regions, memfds(regions.size(), 0x1000));
    expect_error(t, "9 regions, at most 8");
}

TEST(MemoryTableCreate, FdCountMismatch) {
    const std::array<MemRegionWire, 2> regions{MemRegionWire{0, 0x1000, 0x10000, 0},
                                               MemRegionWire{0x1000, 0x1000, 0x11000, 0}};
    expect_error(MemoryTable::create(regions, memfds(1, 0x1000)), "2 regions but 1 fds");
    expect_error(MemoryTable::create(regions, memfds(3, 0x1000)), "2 regions but 3 fds");
    expect_error(MemoryTable::create(regions, {}), "2 regions but 0 fds");
}

TEST(MemoryTableCreate, ZeroSize) {
    expect_error(create_one({0, 0, 0x10000, 0}, make_memfd(0x1000)), "region 0: memory_size is 0");
}

TEST(MemoryTableCreate, FieldOverflows) {
    expect_error(create_one({kMax - 0xfff, 0x1000, 0x10000, 0}, make_memfd(0x1000)),
                 "region 0: guest_phys_addr 0xfffffffffffff000 + memory_size 0x1000 overflows");
    expect_error(create_one({0, 0x1000, kMax, 0}, make_memfd(0x1000)),
                 "region 0: userspace_addr 0xffffffffffffffff + memory_size 0x1000 overflows");
    expect_error(create_one({0, 0x1000, 0x10000, kMax - 0xffe}, make_memfd(0x1000)),
                 "region 0: mmap_offset 0xfffffffffffff001 + memory_size 0x1000 overflows");
    expect_error(create_one({0x1000, kMax, 0x1000, 0}, make_memfd(0x1000)), "overflows");
}

TEST(MemoryTableCreate, ErrorNamesTheRegionIndex) {
    const std::array<MemRegionWire, 3> regions{MemRegionWire{0, 0x1000, 0x10000, 0},
                                               MemRegionWire{0x1000, 0x1000, 0x11000, 0},
                                               MemRegionWire{0x2000, 0, 0x12000, 0}};
    expect_error(MemoryTable::create(regions, memfds(3, 0x1000)), "region 2: memory_size is 0");
}

TEST(MemoryTableCreate, GuestPhysicalOverlap) {
    const std::array<MemRegionWire, 3> regions{MemRegionWire{0x0, 0x1000, 0x10000, 0},
                                               MemRegionWire{0x2000, 0x2000, 0x20000, 0},
                                               MemRegionWire{0x3fff, 0x1000, 0x30000, 0}};
    expect_error(MemoryTable::create(regions, memfds(3, 0x2000)),
                 "region 2: guest_phys_addr range [0x3fff, 0x4fff) overlaps region 1 [0x2000, 0x4000)");
}

TEST(MemoryTableCreate, UserAddressOverlap) {
    const std::array<MemRegionWire, 2> regions{MemRegionWire{0x0, 0x2000, 0x10000, 0},
                                               MemRegionWire{0x4000, 0x1000, 0xf001, 0}};
    expect_error(MemoryTable::create(regions, memfds(2, 0x2000)),
                 "region 1: userspace_addr range [0xf001, 0x10001) overlaps region 0");
}

TEST(MemoryTableCreate, IdenticalRegions) {
    const std::array<MemRegionWire, 2> regions{MemRegionWire{0x0, 0x1000, 0x10000, 0},
                                               MemRegionWire{0x0, 0x1000, 0x10000, 0}};
    expect_error(MemoryTable::create(regions, memfds(2, 0x1000)), "region 1: guest_phys_addr range");
}

TEST(MemoryTableCreate, AdjacentRegionsDoNotOverlap) {
    const std::array<MemRegionWire, 2> regions{MemRegionWire{0x0, 0x1000, 0x10000, 0},
                                               MemRegionWire{0x1000, 0x1000, 0x11000, 0}};
    auto t = MemoryTable::create(regions, memfds(2, 0x1000));
    ASSERT_TRUE(t.ok()) << t.error().message;
    EXPECT_EQ((*t)->size(), 2u);
}

TEST(MemoryTableCreate, MemfdTooSmall) {
    expect_error(create_one({0, 0x2000, 0x10000, 0}, make_memfd(0x1000)),
                 "region 0: mmap_offset 0x0 + memory_size 0x2000 exceeds the size of the file, 0x1000");
    expect_error(create_one({0, 0x1000, 0x10000, 0x800}, make_memfd(0x1000)),
                 "mmap_offset 0x800 + memory_size 0x1000 exceeds");
    expect_error(create_one({0, 0x1000, 0x10000, 0x1000}, make_memfd(0x1000)), "exceeds the size of the file");
    // Huge values that do not overflow are caught by the size check before mmap.
    expect_error(create_one({0, 0x4000'0000'0000'0000, 0x10000, 0x8000'0000'0000'0000}, make_memfd(0x1000)),
                 "exceeds the size of the file");
    // Exactly the size of the file is fine.
    auto ok = create_one({0, 0x800, 0x10000, 0x800}, make_memfd(0x1000));
    EXPECT_TRUE(ok.ok()) << ok.error().message;
}

TEST(MemoryTableCreate, NotARegularFile) {
    int pipe_fds[2] = {-1, -1};
    ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
    UniqueFd write_end(pipe_fds[1]);
    expect_error(create_one({0, 0x1000, 0x10000, 0}, UniqueFd(pipe_fds[0])),
                 "region 0: fd " + std::to_string(pipe_fds[0]) + " is not a regular file or memfd");

    UniqueFd efd(::eventfd(0, EFD_CLOEXEC));
    ASSERT_TRUE(efd.valid());
    expect_error(create_one({0, 0x1000, 0x10000, 0}, std::move(efd)), "is not a regular file or memfd");

    UniqueFd zero(::open("/dev/zero", O_RDWR | O_CLOEXEC));
    ASSERT_TRUE(zero.valid());
    expect_error(create_one({0, 0x1000, 0x10000, 0}, std::move(zero)), "is not a regular file or memfd");
}

TEST(MemoryTableCreate, InvalidFd) {
    expect_error(create_one({0, 0x1000, 0x10000, 0}, UniqueFd()), "region 0: fstat of fd -1 failed");
}

TEST(MemoryTableCreate, ReadOnlyFdFailsToMap) {
    UniqueFd rw = make_memfd(0x1000);
    const std::string path = "/proc/self/fd/" + std::to_string(rw.get());
    UniqueFd ro(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(ro.valid());
    expect_error(create_one({0, 0x1000, 0x10000, 0}, std::move(ro)), "region 0: mmap of 0x1000 bytes");
}

TEST(MemoryTableCreate, LaterRegionFailureUnmapsEarlierOnesAndClosesFds) {
    const std::string name = "vhostd-partial";
    const size_t fds_before = count_fds();
    const size_t maps_before = count_maps(name);
    {
        const std::array<MemRegionWire, 3> regions{MemRegionWire{0x0, 0x1000, 0x10000, 0},
                                                   MemRegionWire{0x1000, 0x1000, 0x11000, 0},
                                                   MemRegionWire{0x2000, 0x2000, 0x12000, 0}};
        std::vector<UniqueFd> fds;
        fds.push_back(make_memfd(0x1000, name.c_str()));
        fds.push_back(make_memfd(0x1000, name.c_str()));
        fds.push_back(make_memfd(0x1000, name.c_str()));  // too small for region 2
        expect_error(MemoryTable::create(regions, std::move(fds)), "region 2: mmap_offset");
    }
    EXPECT_EQ(count_fds(), fds_before);
    EXPECT_EQ(count_maps(name), maps_before);
}

TEST(MemoryTableCreate, FdsAreClosedOnSuccess) {
    const size_t fds_before = count_fds();
    auto table = create_one({0, 0x1000, 0x10000, 0}, make_memfd(0x1000));
    ASSERT_TRUE(table.ok()) << table.error().message;
    EXPECT_EQ(count_fds(), fds_before);
    EXPECT_NE((*table)->gpa_to_host(0, 0x1000), nullptr);
}

TEST(MemoryTableCreate, SealsAreRecorded) {
    GuestMemory unsealed(0x1000, kGpa, kUva);
    EXPECT_FALSE(unsealed.table()->regions()[0].mapping->shrink_sealed());

    GuestMemory sealed(0x1000, kGpa, kUva);
    ASSERT_EQ(::fcntl(sealed.fd(), F_ADD_SEALS, F_SEAL_SHRINK), 0);
    EXPECT_TRUE(sealed.table()->regions()[0].mapping->shrink_sealed());
}

// ---- empty ----

TEST(MemoryTableEmpty, TranslatesNothing) {
    auto table = MemoryTable::empty();
    ASSERT_NE(table, nullptr);
    EXPECT_EQ(table->size(), 0u);
    EXPECT_TRUE(table->regions().empty());
    EXPECT_EQ(table->gpa_to_host(0, 1), nullptr);
    EXPECT_EQ(table->uva_to_host(0, 1), nullptr);
    std::array<Piece, 1> pieces{};
    EXPECT_EQ(table->gpa_to_pieces(0, 1, pieces.data(), pieces.size()), 0u);
    expect_error(table->with_removed({0, 0x1000, 0, 0}), "no region at guest_phys_addr 0x0");
    EXPECT_EQ(MemoryTable::empty(), table);
}

// ---- ADD_MEM_REG / REM_MEM_REG ----

TEST(MemoryTableAddRemove, AddToEmptyThenRemoveAll) {
    GuestMemory mem(0x1000, kGpa, kUva);
    auto added = MemoryTable::empty()->with_added(mem.region(), mem.dup_fd());
    ASSERT_TRUE(added.ok()) << added.error().message;
    EXPECT_EQ((*added)->size(), 1u);
    EXPECT_EQ(MemoryTable::empty()->size(), 0u);
    mem.put<uint8_t>(kGpa + 5, 0x5a);
    ASSERT_NE((*added)->gpa_to_host(kGpa + 5, 1), nullptr);
    EXPECT_EQ(*(*added)->gpa_to_host(kGpa + 5, 1), 0x5a);

    auto removed = (*added)->with_removed(mem.region());
    ASSERT_TRUE(removed.ok()) << removed.error().message;
    EXPECT_EQ((*removed)->size(), 0u);
    EXPECT_EQ((*removed)->gpa_to_host(kGpa, 1), nullptr);
}

TEST(MemoryTableAddRemove, AddSharesExistingMappings) {
    GuestMemory a(0x2000, 0x0, 0x7000'0000, "vhostd-a");
    GuestMemory b(0x1000, 0x4000, 0x6000'0000, "vhostd-b");
    auto t1 = a.table();
    auto t2 = t1->with_added(b.region(), b.dup_fd());
    ASSERT_TRUE(t2.ok()) << t2.error().message;
    ASSERT_EQ((*t2)->size(), 2u);
    // The region that stayed keeps its Mapping and its host pointer.
    EXPECT_EQ((*t2)->regions()[0].mapping.get(), t1->regions()[0].mapping.get());
    EXPECT_EQ((*t2)->regions()[0].host, t1->regions()[0].host);
    EXPECT_EQ((*t2)->gpa_to_host(0x10, 1), t1->gpa_to_host(0x10, 1));
    // The old table is unchanged.
    EXPECT_EQ(t1->size(), 1u);
    EXPECT_EQ(t1->gpa_to_host(0x4000, 1), nullptr);
    EXPECT_NE((*t2)->gpa_to_host(0x4000, 1), nullptr);
    EXPECT_NE((*t2)->uva_to_host(0x6000'0000, 0x1000), nullptr);
}

TEST(MemoryTableAddRemove, AddRejectsBadRegions) {
    GuestMemory a(0x2000, 0x0, 0x7000'0000, "vhostd-a");
    auto t = a.table();
    expect_error(t->with_added({0x1000, 0x1000, 0x1000'0000, 0}, make_memfd(0x1000)),
                 "ADD_MEM_REG region: guest_phys_addr range [0x1000, 0x2000) overlaps the region at "
                 "guest_phys_addr 0x0 [0x0, 0x2000)");
    expect_error(t->with_added({0x8000, 0x1000, 0x7000'1fff, 0}, make_memfd(0x1000)),
                 "ADD_MEM_REG region: userspace_addr range");
    expect_error(t->with_added({0x8000, 0, 0x1000'0000, 0}, make_memfd(0x1000)),
                 "ADD_MEM_REG region: memory_size is 0");
    expect_error(t->with_added({kMax, 1, 0x1000'0000, 0}, make_memfd(0x1000)), "guest_phys_addr");
    expect_error(t->with_added({0x8000, 0x2000, 0x1000'0000, 0}, make_memfd(0x1000)),
                 "exceeds the size of the file");
    expect_error(t->with_added({0x8000, 0x1000, 0x1000'0000, 0}, UniqueFd()), "fstat");
    EXPECT_EQ(t->size(), 1u);
}

TEST(MemoryTableAddRemove, RemoveKeepsOldTableValid) {
    const std::string name = "vhostd-removed";
    const size_t maps_before = count_maps(name);
    GuestMemory a(0x1000, 0x0, 0x7000'0000, name.c_str());
    GuestMemory b(0x1000, 0x1000, 0x7000'1000, "vhostd-b");
    const size_t maps_with_driver_view = count_maps(name);
    EXPECT_EQ(maps_with_driver_view, maps_before + 1);

    auto t1 = a.table();
    auto t2 = t1->with_added(b.region(), b.dup_fd());
    ASSERT_TRUE(t2.ok()) << t2.error().message;
    auto t3 = (*t2)->with_removed(a.region());
    ASSERT_TRUE(t3.ok()) << t3.error().message;

    EXPECT_EQ((*t3)->size(), 1u);
    EXPECT_EQ((*t3)->gpa_to_host(0x0, 1), nullptr);
    EXPECT_NE((*t3)->gpa_to_host(0x1000, 1), nullptr);

    // The old tables still see region a, and it still is guest memory.
    a.put<uint32_t>(0x10, 0xfeedface);
    uint8_t* p = (*t2)->gpa_to_host(0x10, 4);
    ASSERT_NE(p, nullptr);
    uint32_t v = 0;
    std::memcpy(&v, p, 4);
    EXPECT_EQ(v, 0xfeedfaceu);
    std::array<Piece, 2> pieces{};
    EXPECT_EQ((*t2)->gpa_to_pieces(0xff0, 0x20, pieces.data(), pieces.size()), 2u);
    EXPECT_EQ((*t3)->gpa_to_pieces(0xff0, 0x20, pieces.data(), pieces.size()), 0u);

    // Region a is unmapped only when the last table holding it goes.
    EXPECT_EQ(count_maps(name), maps_with_driver_view + 1);
    t1.reset();
    EXPECT_EQ(count_maps(name), maps_with_driver_view + 1);
    t2 = make_error("dropped");
    EXPECT_EQ(count_maps(name), maps_with_driver_view);
    EXPECT_NE((*t3)->gpa_to_host(0x1000, 1), nullptr);
}

TEST(MemoryTableAddRemove, RemoveMatchesGuestAddressUserAddressAndSize) {
    GuestMemory a(0x2000, 0x10000, 0x7000'0000, "vhostd-a");
    auto t = a.table();
    expect_error(t->with_removed({0x20000, 0x2000, 0x7000'0000, 0}), "no region at guest_phys_addr 0x20000");
    expect_error(t->with_removed({0x10001, 0x2000, 0x7000'0000, 0}), "no region at guest_phys_addr 0x10001");
    expect_error(t->with_removed({0x10000, 0x1000, 0x7000'0000, 0}),
                 "the region at guest_phys_addr 0x10000 has memory_size 0x2000 and userspace_addr 0x70000000, "
                 "not memory_size 0x1000 and userspace_addr 0x70000000");
    expect_error(t->with_removed({0x10000, 0x2000, 0x7000'1000, 0}), "not memory_size 0x2000 and userspace_addr");
    // "The mmap offset is ignored."
    auto removed = t->with_removed({0x10000, 0x2000, 0x7000'0000, 0xdead'beef});
    ASSERT_TRUE(removed.ok()) << removed.error().message;
    EXPECT_EQ((*removed)->size(), 0u);
    EXPECT_EQ(t->size(), 1u);
}

TEST(MemoryTableAddRemove, UpToMaxMemSlots) {
    // kMaxMemSlots one-page regions carved out of one memfd, added one by one
    // in descending guest order with user addresses in another order, so both
    // indexes are exercised.
    constexpr uint64_t kPage = 0x1000;
    GuestMemory mem(kMaxMemSlots * kPage, 0x0, 0x7000'0000, "vhostd-slots");
    for (uint64_t i = 0; i < kMaxMemSlots; ++i) {
        mem.put<uint64_t>(i * kPage, i);
    }
    auto table = MemoryTable::empty();
    for (uint64_t n = 0; n < kMaxMemSlots; ++n) {
        const uint64_t i = kMaxMemSlots - 1 - n;
        // gpa 2*i pages (gaps between regions), uva interleaved by parity.
        const uint64_t uva = 0x1'0000'0000 + ((i % 2) * kMaxMemSlots + i / 2) * kPage;
        auto next = table->with_added({2 * i * kPage, kPage, uva, i * kPage}, mem.dup_fd());
        ASSERT_TRUE(next.ok()) << "region " << i << ": " << next.error().message;
        table = std::move(next).value();
    }
    ASSERT_EQ(table->size(), kMaxMemSlots);
    for (uint64_t i = 0; i < kMaxMemSlots; ++i) {
        uint8_t* p = table->gpa_to_host(2 * i * kPage + 8, 8);
        ASSERT_NE(p, nullptr) << i;
        uint64_t v = 0;
        std::memcpy(&v, p - 8, 8);
        EXPECT_EQ(v, i);
        const uint64_t uva = 0x1'0000'0000 + ((i % 2) * kMaxMemSlots + i / 2) * kPage;
        EXPECT_EQ(table->uva_to_host(uva + 8, 8), p);
        EXPECT_EQ(table->gpa_to_host((2 * i + 1) * kPage, 1), nullptr) << i;  // the gap
    }
    expect_error(table->with_added({0x1'0000'0000, kPage, 0x10'0000'0000, 0}, mem.dup_fd()),
                 "already holds 509 regions");
    auto smaller = table->with_removed({2 * 7 * kPage, kPage, 0x1'0000'0000 + (kMaxMemSlots + 3) * kPage, 0});
    ASSERT_TRUE(smaller.ok()) << smaller.error().message;
    EXPECT_EQ((*smaller)->size(), kMaxMemSlots - 1);
    EXPECT_EQ((*smaller)->gpa_to_host(2 * 7 * kPage, 1), nullptr);
    EXPECT_NE((*smaller)->gpa_to_host(2 * 6 * kPage, 1), nullptr);
}

// ---- leaks ----

TEST(MemoryTableLeaks, FdsAndMappingsReturnToBaseline) {
    const std::string name = "vhostd-leak";
    // Warm up anything lazily allocated (the empty table, iostreams, gtest).
    (void)MemoryTable::empty();
    (void)count_fds();
    (void)count_maps();
    const size_t fds_before = count_fds();
    const size_t maps_before = count_maps();
    const size_t named_before = count_maps(name);
    {
        GuestMemory a(0x4000, 0x0, 0x7000'0000, name.c_str());
        GuestMemory b(0x4000, 0x10000, 0x7001'0000, name.c_str());
        auto t1 = a.split_table({0x1000, 0x2000});
        auto t2 = t1->with_added(b.region(), b.dup_fd());
        ASSERT_TRUE(t2.ok());
        auto t3 = (*t2)->with_removed(a.slice(0x1000, 0x1000));
        ASSERT_TRUE(t3.ok());
        // Failed attempts must not leak either.
        expect_error((*t3)->with_added(b.region(), b.dup_fd()), "overlaps");
        expect_error(create_one({0, 0x10000, 0, 0}, a.dup_fd()), "exceeds");
        // 2 driver views + 3 regions of a + 1 region of b.
        EXPECT_EQ(count_maps(name), named_before + 6);
        // Only the two memfds themselves are open.
        EXPECT_EQ(count_fds(), fds_before + 2);
    }
    EXPECT_EQ(count_fds(), fds_before);
    EXPECT_EQ(count_maps(name), named_before);
    EXPECT_EQ(count_maps(), maps_before);
}

} // namespace
} // namespace vhostd::protocol
