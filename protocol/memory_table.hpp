#pragma once
// Guest memory table: the regions a vhost-user front-end shares with us through
// SET_MEM_TABLE, ADD_MEM_REG and REM_MEM_REG (QEMU docs/interop/vhost-user.rst,
// "Memory access" and the three message descriptions), mapped into this
// process, plus checked translation of guest-physical and front-end virtual
// addresses into our own pointers.
//
// A MemoryTable is immutable once built. Every change builds a new table; the
// control thread publishes it to the PMD threads through the snapshot pointer
// and reclaims the old one after a grace period (DESIGN.md, "Threads"). Tables
// built from one another share the mapping of each region they have in common,
// so ADD_MEM_REG / REM_MEM_REG never remap a region that stays, and a region's
// memory is unmapped only when the last table that contains it is destroyed.
//
// Every value in a region description is hostile (DESIGN.md, "Trust
// boundaries"): sizes, addresses and offsets are overflow-checked, regions may
// not overlap, and the backing file must be large enough for the mapping to be
// touched without SIGBUS.

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "protocol/result.hpp"
#include "protocol/unique_fd.hpp"
#include "protocol/wire.hpp"

namespace vhostd::protocol {

// RAII owner of one MAP_SHARED mapping of a file; munmap in the destructor.
// Movable, not copyable. Tables hold it through shared_ptr<const Mapping>.
class Mapping {
public:
    // Maps bytes [offset, offset + length) of `fd`, read-write, MAP_SHARED |
    // MAP_NORESERVE. `offset` need not be aligned: the mapping starts at
    // `offset` rounded down to `alignment` (a power of two, at least the page
    // size; hugetlbfs needs its huge-page size) and data() points at byte
    // `offset` of the file. The caller has checked that the file is at least
    // offset + length bytes long; mmap itself does not, and touching a page
    // beyond the end of the file raises SIGBUS. The fd may be closed afterwards.
    static Result<Mapping> map(int fd, uint64_t offset, uint64_t length, uint64_t alignment);

    Mapping() noexcept = default;
    Mapping(const Mapping&) = delete;
    Mapping& operator=(const Mapping&) = delete;
    Mapping(Mapping&& other) noexcept;
    Mapping& operator=(Mapping&& other) noexcept;
    ~Mapping();

    // Byte `offset` of the file (nullptr for an empty Mapping).
    [[nodiscard]] uint8_t* data() const noexcept { return data_; }
    // The `length` asked for (the mapping itself may be larger by alignment).
    [[nodiscard]] uint64_t size() const noexcept { return size_; }
    // Whether the file carried F_SEAL_SHRINK when it was mapped: only then can
    // the front-end not shrink it later and make our accesses SIGBUS.
    [[nodiscard]] bool shrink_sealed() const noexcept { return shrink_sealed_; }

private:
    void reset() noexcept;

    void* base_ = nullptr;   // what mmap returned (aligned)
    size_t mapped_ = 0;      // what was mapped (aligned length)
    uint8_t* data_ = nullptr;
    uint64_t size_ = 0;
    bool shrink_sealed_ = false;
};

// One region of guest memory as the data path sees it.
struct HostRegion {
    uint64_t gpa;   // guest physical start
    uint64_t uva;   // front-end (QEMU) virtual start
    uint64_t size;
    uint8_t* host;  // our pointer to byte 0 of the region (mmap_offset already applied)
    std::shared_ptr<const Mapping> mapping;  // shared between tables that contain this region
};

class MemoryTable {
public:
    // SET_MEM_TABLE: 1..kMaxMemTableRegions regions, one fd per region in the
    // same order ("The size and ordering of the fds matches the number and
    // ordering of memory regions"). Every fd is closed when this returns,
    // whether it succeeds or not; the mappings keep the memory alive.
    static Result<std::shared_ptr<const MemoryTable>> create(std::span<const MemRegionWire> regions,
                                                             std::vector<UniqueFd> fds);

    // ADD_MEM_REG: this table plus one region backed by `fd` (closed on return).
    // At most kMaxMemSlots regions in all; the new region may not overlap any
    // existing one. Existing regions keep their mappings.
    Result<std::shared_ptr<const MemoryTable>> with_added(const MemRegionWire& region, UniqueFd fd) const;

    // REM_MEM_REG: this table without the region whose guest address, user
    // address and size all match; the mmap offset is ignored, as the spec says.
    // This table stays valid (and keeps the region mapped) while it lives.
    Result<std::shared_ptr<const MemoryTable>> with_removed(const MemRegionWire& region) const;

    // The table of a session that has not set any memory yet: every
    // translation fails.
    static std::shared_ptr<const MemoryTable> empty();

    // ---- Data path: noexcept, no allocation, no locks. ----

    // Host pointer for guest-physical [gpa, gpa + len), which must lie wholly
    // inside one region; nullptr when it does not, when len == 0, or when
    // gpa + len overflows.
    [[nodiscard]] uint8_t* gpa_to_host(uint64_t gpa, uint64_t len) const noexcept;
    // The same by front-end virtual address (SET_VRING_ADDR ring addresses are
    // user addresses unless VIRTIO_F_IOMMU_PLATFORM is negotiated).
    [[nodiscard]] uint8_t* uva_to_host(uint64_t uva, uint64_t len) const noexcept;

    struct Piece {
        uint8_t* host;
        uint32_t len;
    };
    // Translates guest-physical [gpa, gpa + len) that may span regions which
    // are adjacent in guest-physical space (but not, in general, in our address
    // space) into up to `max_pieces` pieces, in order. Returns the number of
    // pieces written, or 0 when any byte is unmapped, len == 0, gpa + len
    // overflows, or more than max_pieces pieces would be needed (`out` may have
    // been partly written then).
    [[nodiscard]] size_t gpa_to_pieces(uint64_t gpa, uint32_t len, Piece* out,
                                       size_t max_pieces) const noexcept {
        // Fast path, inline in the PMD's descriptor walk: a buffer wholly
        // inside one of the (at most kFast) lowest regions — QEMU guests have
        // one or two, DPDK's virtio-user one. off wraps for gpa below the
        // region, which fails `off < size`; len <= size - off cannot overflow.
        for (uint32_t i = 0; i < fast_count_; ++i) {
            const uint64_t off = gpa - fast_[i].gpa;
            if (off < fast_[i].size && len != 0 && len <= fast_[i].size - off && max_pieces != 0 &&
                out != nullptr) {
                out[0] = Piece{fast_[i].host + off, len};
                return 1;
            }
        }
        return gpa_to_pieces_slow(gpa, len, out, max_pieces);
    }

    // Regions sorted by guest-physical address.
    [[nodiscard]] std::span<const HostRegion> regions() const noexcept { return regions_; }
    [[nodiscard]] size_t size() const noexcept { return regions_.size(); }

    MemoryTable(const MemoryTable&) = delete;
    MemoryTable& operator=(const MemoryTable&) = delete;

private:
    explicit MemoryTable(std::vector<HostRegion> regions);

    // Index into regions_ of the region that contains `gpa`, or -1.
    [[nodiscard]] ptrdiff_t find_gpa(uint64_t gpa) const noexcept;
    [[nodiscard]] size_t gpa_to_pieces_slow(uint64_t gpa, uint32_t len, Piece* out,
                                            size_t max_pieces) const noexcept;

    // The first regions again, packed at the front of the object for the
    // inline fast path of gpa_to_pieces.
    static constexpr uint32_t kFast = 2;
    struct FastRegion {
        uint64_t gpa;
        uint64_t size;
        uint8_t* host;
    };
    FastRegion fast_[kFast] = {};
    uint32_t fast_count_ = 0;

    std::vector<HostRegion> regions_;  // sorted by gpa, non-overlapping
    std::vector<uint32_t> by_uva_;     // indices into regions_, sorted by uva
};

} // namespace vhostd::protocol
