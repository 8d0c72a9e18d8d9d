#include "protocol/memory_table.hpp"

#include <fmt/format.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <string>
#include <system_error>
#include <utility>

namespace vhostd::protocol {

// Region sizes and offsets are used as mmap lengths and pointer offsets, so
// uint64_t and size_t must be the same width.
static_assert(sizeof(size_t) == sizeof(uint64_t), "vhostd needs a 64-bit address space");

namespace {

std::string hex(uint64_t v) {
    char buf[2 + 16];
    buf[0] = '0';
    buf[1] = 'x';
    auto [end, ec] = std::to_chars(buf + 2, buf + sizeof(buf), v, 16);
    (void)ec;  // 16 hex digits always fit
    return std::string(buf, end);
}

std::string octal(uint64_t v) {
    char buf[1 + 22];
    buf[0] = '0';
    auto [end, ec] = std::to_chars(buf + 1, buf + sizeof(buf), v, 8);
    (void)ec;  // 22 octal digits always fit
    return std::string(buf, end);
}

std::string errno_text(int err) { return std::system_category().message(err); }

uint64_t page_size() noexcept {
    static const uint64_t size = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
    return size;
}

bool is_power_of_two(uint64_t v) noexcept { return v != 0 && (v & (v - 1)) == 0; }

// [a, a + a_len) and [b, b + b_len) intersect. Both ends were checked not to
// overflow before this is called.
bool ranges_overlap(uint64_t a, uint64_t a_len, uint64_t b, uint64_t b_len) noexcept {
    return a < b + b_len && b < a + a_len;
}

std::string range_text(uint64_t start, uint64_t len) {
    // fmt, not operator+: GCC 12 at -O3 warns (-Wrestrict, a false positive)
    // on the inlined string concatenation.
    return fmt::format("[{}, {})", hex(start), hex(start + len));
}

// One region description on its own: non-empty, and every end it implies is
// representable (rust-vmm's is_valid(), DESIGN.md "Trust boundaries"). A
// region whose end wraps past 2^64 would make every later range check wrong.
Status check_fields(const std::string& who, const MemRegionWire& r) {
    if (r.memory_size == 0) {
        return make_error(who + ": memory_size is 0");
    }
    uint64_t end = 0;
    if (__builtin_add_overflow(r.guest_phys_addr, r.memory_size, &end)) {
        return make_error(who + ": guest_phys_addr " + hex(r.guest_phys_addr) + " + memory_size " +
                          hex(r.memory_size) + " overflows");
    }
    if (__builtin_add_overflow(r.userspace_addr, r.memory_size, &end)) {
        return make_error(who + ": userspace_addr " + hex(r.userspace_addr) + " + memory_size " +
                          hex(r.memory_size) + " overflows");
    }
    if (__builtin_add_overflow(r.mmap_offset, r.memory_size, &end)) {
        return make_error(who + ": mmap_offset " + hex(r.mmap_offset) + " + memory_size " +
                          hex(r.memory_size) + " overflows");
    }
    return Ok{};
}

// `a` (described as `who`) against `b` (described as `other`): a guest
// address, or a front-end address, must resolve to exactly one region ("Memory
// access": an address maps to *the* region containing it).
Status check_no_overlap(const std::string& who, const MemRegionWire& a, const std::string& other,
                        uint64_t b_gpa, uint64_t b_uva, uint64_t b_size) {
    if (ranges_overlap(a.guest_phys_addr, a.memory_size, b_gpa, b_size)) {
        return make_error(who + ": guest_phys_addr range " + range_text(a.guest_phys_addr, a.memory_size) +
                          " overlaps " + other + " " + range_text(b_gpa, b_size));
    }
    if (ranges_overlap(a.userspace_addr, a.memory_size, b_uva, b_size)) {
        return make_error(who + ": userspace_addr range " + range_text(a.userspace_addr, a.memory_size) +
                          " overlaps " + other + " " + range_text(b_uva, b_size));
    }
    return Ok{};
}

// Checks the file behind `fd` and maps the region from it. The fields of `r`
// have passed check_fields().
Result<HostRegion> map_region(const std::string& who, const MemRegionWire& r, int fd) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        return make_error(who + ": fstat of fd " + std::to_string(fd) + " failed: " + errno_text(errno));
    }
    // Shared guest RAM is a memfd, a hugetlbfs file or a file on tmpfs: all
    // regular files. Anything else (a socket, a pipe, a device node) is either
    // a front-end mistake or an attempt to make us map something odd.
    if (!S_ISREG(st.st_mode)) {
        return make_error(who + ": fd " + std::to_string(fd) + " is not a regular file or memfd (st_mode " +
                          octal(st.st_mode) + ")");
    }
    // mmap succeeds past the end of a file, but touching such a page raises
    // SIGBUS, which would kill the whole daemon, not just this port. So the
    // file must cover every byte of the region now.
    //
    // A front-end can still shrink an unsealed memfd after this check. Only
    // F_SEAL_SHRINK rules that out; QEMU does not seal guest RAM, so we accept
    // unsealed files and record the seal in Mapping::shrink_sealed().
    const uint64_t needed = r.mmap_offset + r.memory_size;  // checked by check_fields()
    if (st.st_size < 0 || static_cast<uint64_t>(st.st_size) < needed) {
        return make_error(who + ": mmap_offset " + hex(r.mmap_offset) + " + memory_size " + hex(r.memory_size) +
                          " exceeds the size of the file, " + hex(static_cast<uint64_t>(st.st_size)));
    }
    // hugetlbfs files must be mapped at huge-page-aligned offsets; their
    // st_blksize is the huge-page size (DPDK's vhost aligns the same way). For
    // memfd and tmpfs it is the page size. Fall back to the page size for any
    // value that is not a sane power of two.
    uint64_t alignment = page_size();
    const auto blksize = static_cast<uint64_t>(st.st_blksize);
    if (is_power_of_two(blksize) && blksize > alignment && blksize <= (uint64_t{1} << 30)) {
        alignment = blksize;
    }
    auto mapping = Mapping::map(fd, r.mmap_offset, r.memory_size, alignment);
    if (!mapping) {
        return make_error(who + ": " + mapping.error().message);
    }
    auto shared = std::make_shared<const Mapping>(std::move(mapping).value());
    uint8_t* host = shared->data();
    return HostRegion{r.guest_phys_addr, r.userspace_addr, r.memory_size, host, std::move(shared)};
}

} // namespace

// ---- Mapping ----

Result<Mapping> Mapping::map(int fd, uint64_t offset, uint64_t length, uint64_t alignment) {
    if (length == 0) {
        return make_error("mapping of 0 bytes");
    }
    if (!is_power_of_two(alignment) || alignment < page_size()) {
        return make_error("mapping alignment " + hex(alignment) + " is not a power of two >= the page size");
    }
    const uint64_t start = offset & ~(alignment - 1);
    const uint64_t lead = offset - start;
    uint64_t span = 0;
    uint64_t mapped = 0;
    if (__builtin_add_overflow(lead, length, &span) || __builtin_add_overflow(span, alignment - 1, &mapped)) {
        return make_error("mapping of " + hex(length) + " bytes at file offset " + hex(offset) + " overflows");
    }
    mapped &= ~(alignment - 1);
    // mmap takes a signed off_t and a length the kernel treats as signed.
    if (start > static_cast<uint64_t>(INT64_MAX) || mapped > static_cast<uint64_t>(PTRDIFF_MAX)) {
        return make_error("mapping of " + hex(length) + " bytes at file offset " + hex(offset) + " is out of range");
    }
    // MAP_SHARED: we exchange data with the guest through this memory.
    // MAP_NORESERVE: the memory is the front-end's; do not charge swap for it.
    void* base = ::mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd,
                        static_cast<off_t>(start));
    if (base == MAP_FAILED) {
        return make_error("mmap of " + hex(mapped) + " bytes at file offset " + hex(start) +
                          " failed: " + errno_text(errno));
    }
    Mapping m;
    m.base_ = base;
    m.mapped_ = mapped;
    m.data_ = static_cast<uint8_t*>(base) + lead;
    m.size_ = length;
    // F_GET_SEALS fails (EINVAL) on files that cannot be sealed: not sealed.
    const int seals = ::fcntl(fd, F_GET_SEALS);
    m.shrink_sealed_ = seals >= 0 && (seals & F_SEAL_SHRINK) != 0;
    return Result<Mapping>(std::move(m));
}

Mapping::Mapping(Mapping&& other) noexcept
    : base_(std::exchange(other.base_, nullptr)),
      mapped_(std::exchange(other.mapped_, 0)),
      data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      shrink_sealed_(std::exchange(other.shrink_sealed_, false)) {}

Mapping& Mapping::operator=(Mapping&& other) noexcept {
    if (this != &other) {
        reset();
        base_ = std::exchange(other.base_, nullptr);
        mapped_ = std::exchange(other.mapped_, 0);
        data_ = std::exchange(other.data_, nullptr);
        size_ = std::exchange(other.size_, 0);
        shrink_sealed_ = std::exchange(other.shrink_sealed_, false);
    }
    return *this;
}

Mapping::~Mapping() { reset(); }

void Mapping::reset() noexcept {
    if (base_ != nullptr) {
        // munmap of a range we mapped ourselves cannot fail.
        ::munmap(base_, mapped_);
    }
    base_ = nullptr;
    mapped_ = 0;
    data_ = nullptr;
    size_ = 0;
    shrink_sealed_ = false;
}

// ---- MemoryTable: building ----

MemoryTable::MemoryTable(std::vector<HostRegion> regions) : regions_(std::move(regions)) {
    std::sort(regions_.begin(), regions_.end(),
              [](const HostRegion& a, const HostRegion& b) { return a.gpa < b.gpa; });
    by_uva_.resize(regions_.size());
    for (uint32_t i = 0; i < by_uva_.size(); ++i) {
        by_uva_[i] = i;
    }
    std::sort(by_uva_.begin(), by_uva_.end(),
              [this](uint32_t a, uint32_t b) { return regions_[a].uva < regions_[b].uva; });
    fast_count_ = static_cast<uint32_t>(std::min<size_t>(regions_.size(), kFast));
    for (uint32_t i = 0; i < fast_count_; ++i) {
        fast_[i] = FastRegion{regions_[i].gpa, regions_[i].size, regions_[i].host};
    }
}

Result<std::shared_ptr<const MemoryTable>> MemoryTable::create(std::span<const MemRegionWire> regions,
                                                               std::vector<UniqueFd> fds) {
    // `fds` is owned here: every return below closes all of them. The
    // mappings made so far are undone by their destructors on error.
    if (regions.empty()) {
        return make_error("SET_MEM_TABLE: no regions");
    }
    if (regions.size() > kMaxMemTableRegions) {
        return make_error("SET_MEM_TABLE: " + std::to_string(regions.size()) + " regions, at most " +
                          std::to_string(kMaxMemTableRegions) + " allowed");
    }
    // "The size and ordering of the fds matches the number and ordering of
    // memory regions" (vhost-user.rst, VHOST_USER_SET_MEM_TABLE).
    if (fds.size() != regions.size()) {
        return make_error("SET_MEM_TABLE: " + std::to_string(regions.size()) + " regions but " +
                          std::to_string(fds.size()) + " fds; there must be one fd per region");
    }
    for (size_t i = 0; i < regions.size(); ++i) {
        if (auto st = check_fields("region " + std::to_string(i), regions[i]); !st) {
            return std::move(st).error();
        }
    }
    // At most 8 regions: compare every pair, so the error names both.
    for (size_t i = 0; i < regions.size(); ++i) {
        for (size_t j = 0; j < i; ++j) {
            const MemRegionWire& b = regions[j];
            if (auto st = check_no_overlap("region " + std::to_string(i), regions[i], "region " + std::to_string(j),
                                           b.guest_phys_addr, b.userspace_addr, b.memory_size);
                !st) {
                return std::move(st).error();
            }
        }
    }
    std::vector<HostRegion> mapped;
    mapped.reserve(regions.size());
    for (size_t i = 0; i < regions.size(); ++i) {
        auto region = map_region("region " + std::to_string(i), regions[i], fds[i].get());
        if (!region) {
            return std::move(region).error();
        }
        mapped.push_back(std::move(region).value());
    }
    return std::shared_ptr<const MemoryTable>(new MemoryTable(std::move(mapped)));
}

Result<std::shared_ptr<const MemoryTable>> MemoryTable::with_added(const MemRegionWire& region, UniqueFd fd) const {
    // `fd` is closed when this returns, on success and on error.
    const std::string who = "ADD_MEM_REG region";
    // GET_MAX_MEM_SLOTS told the front-end how many slots it may use.
    if (regions_.size() >= kMaxMemSlots) {
        return make_error(who + ": the table already holds " + std::to_string(regions_.size()) +
                          " regions, the most vhostd supports (kMaxMemSlots)");
    }
    if (auto st = check_fields(who, region); !st) {
        return std::move(st).error();
    }
    for (const HostRegion& r : regions_) {
        if (auto st = check_no_overlap(who, region, "the region at guest_phys_addr " + hex(r.gpa), r.gpa, r.uva,
                                       r.size);
            !st) {
            return std::move(st).error();
        }
    }
    auto added = map_region(who, region, fd.get());
    if (!added) {
        return std::move(added).error();
    }
    // Copies share the existing Mapping objects: nothing already mapped moves.
    std::vector<HostRegion> regions;
    regions.reserve(regions_.size() + 1);
    regions.insert(regions.end(), regions_.begin(), regions_.end());
    regions.push_back(std::move(added).value());
    return std::shared_ptr<const MemoryTable>(new MemoryTable(std::move(regions)));
}

Result<std::shared_ptr<const MemoryTable>> MemoryTable::with_removed(const MemRegionWire& region) const {
    // "The memory region to be removed is identified by its guest address,
    // user address and size. The mmap offset is ignored." (vhost-user.rst,
    // VHOST_USER_REM_MEM_REG)
    const auto it = std::lower_bound(regions_.begin(), regions_.end(), region.guest_phys_addr,
                                     [](const HostRegion& r, uint64_t gpa) { return r.gpa < gpa; });
    if (it == regions_.end() || it->gpa != region.guest_phys_addr) {
        return make_error("REM_MEM_REG: no region at guest_phys_addr " + hex(region.guest_phys_addr));
    }
    if (it->size != region.memory_size || it->uva != region.userspace_addr) {
        return make_error("REM_MEM_REG: the region at guest_phys_addr " + hex(it->gpa) + " has memory_size " +
                          hex(it->size) + " and userspace_addr " + hex(it->uva) + ", not memory_size " +
                          hex(region.memory_size) + " and userspace_addr " + hex(region.userspace_addr));
    }
    // The removed region's Mapping lives on in this table (and any other that
    // holds it) and is unmapped when the last of them is destroyed, after the
    // PMDs have stopped reading through it.
    std::vector<HostRegion> regions;
    regions.reserve(regions_.size() - 1);
    regions.insert(regions.end(), regions_.begin(), it);
    regions.insert(regions.end(), it + 1, regions_.end());
    return std::shared_ptr<const MemoryTable>(new MemoryTable(std::move(regions)));
}

std::shared_ptr<const MemoryTable> MemoryTable::empty() {
    static const std::shared_ptr<const MemoryTable> table(new MemoryTable(std::vector<HostRegion>{}));
    return table;
}

// ---- MemoryTable: data path ----
//
// Regions are sorted and never overlap, so the only region that can contain
// an address is the last one that starts at or below it: one binary search
// (at most 9 steps for 509 regions). No last-hit cache: the table is shared by
// PMD threads and immutable, and a cache would need per-thread or atomic state
// for a gain not yet measured.

ptrdiff_t MemoryTable::find_gpa(uint64_t gpa) const noexcept {
    const auto it = std::upper_bound(regions_.begin(), regions_.end(), gpa,
                                     [](uint64_t a, const HostRegion& r) { return a < r.gpa; });
    if (it == regions_.begin()) {
        return -1;
    }
    const HostRegion& r = *(it - 1);
    if (gpa - r.gpa >= r.size) {
        return -1;
    }
    return (it - 1) - regions_.begin();
}

uint8_t* MemoryTable::gpa_to_host(uint64_t gpa, uint64_t len) const noexcept {
    uint64_t end = 0;
    if (len == 0 || __builtin_add_overflow(gpa, len, &end)) {
        return nullptr;
    }
    const ptrdiff_t i = find_gpa(gpa);
    if (i < 0) {
        return nullptr;
    }
    const HostRegion& r = regions_[static_cast<size_t>(i)];
    const uint64_t offset = gpa - r.gpa;  // < r.size
    if (len > r.size - offset) {
        return nullptr;
    }
    return r.host + offset;
}

uint8_t* MemoryTable::uva_to_host(uint64_t uva, uint64_t len) const noexcept {
    uint64_t end = 0;
    if (len == 0 || __builtin_add_overflow(uva, len, &end)) {
        return nullptr;
    }
    const auto it = std::upper_bound(by_uva_.begin(), by_uva_.end(), uva,
                                     [this](uint64_t a, uint32_t idx) { return a < regions_[idx].uva; });
    if (it == by_uva_.begin()) {
        return nullptr;
    }
    const HostRegion& r = regions_[*(it - 1)];
    const uint64_t offset = uva - r.uva;
    if (offset >= r.size || len > r.size - offset) {
        return nullptr;
    }
    return r.host + offset;
}

size_t MemoryTable::gpa_to_pieces_slow(uint64_t gpa, uint32_t len, Piece* out,
                                       size_t max_pieces) const noexcept {
    uint64_t end = 0;
    if (len == 0 || out == nullptr || max_pieces == 0 || __builtin_add_overflow(gpa, uint64_t{len}, &end)) {
        return 0;
    }
    const ptrdiff_t first = find_gpa(gpa);
    if (first < 0) {
        return 0;
    }
    size_t i = static_cast<size_t>(first);
    size_t n = 0;
    uint64_t cur = gpa;
    uint64_t remaining = len;
    for (;;) {
        const HostRegion& r = regions_[i];
        const uint64_t offset = cur - r.gpa;  // < r.size
        const uint64_t take = std::min(remaining, r.size - offset);
        if (n == max_pieces) {
            return 0;
        }
        // take <= remaining <= len, so it fits in 32 bits.
        out[n] = Piece{r.host + offset, static_cast<uint32_t>(take)};
        ++n;
        remaining -= take;
        cur += take;
        if (remaining == 0) {
            return n;
        }
        // The rest must continue in the region that starts exactly where
        // this one ends; a gap means an unmapped byte.
        ++i;
        if (i == regions_.size() || regions_[i].gpa != cur) {
            return 0;
        }
    }
}

} // namespace vhostd::protocol
