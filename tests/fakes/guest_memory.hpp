#pragma once
// GuestMemory: guest RAM for tests, backed by a real memfd, the way QEMU backs
// guest RAM it shares with a vhost-user back-end.
//
// It plays two parts:
//  - the driver (guest) side: driver_ptr(gpa) / put / get read and write guest
//    memory through the test's own mapping, as a guest driver would;
//  - the front-end (QEMU) side: region() / slice() give the MemRegionWire that
//    SET_MEM_TABLE or ADD_MEM_REG would carry, dup_fd() the fd that goes with
//    it, and table() / split_table() build a protocol::MemoryTable over it.
//
// Both sides see the same bytes: the table maps the same memfd again, so a
// write through driver_ptr() is visible through table->gpa_to_host() and back.
//
//   vhostd::fakes::GuestMemory mem(1 << 20, /*gpa*/ 0x100000, /*uva*/ 0x7f0000000000);
//   auto table = mem.table();                        // one region, whole memfd
//   mem.put<uint16_t>(0x100010, 7);                  // the "guest" writes
//   uint8_t* p = table->gpa_to_host(0x100010, 2);    // the back-end reads
//
// split_table({0x1000}) builds a table of two regions that are adjacent in
// guest-physical space but mapped separately (so not adjacent in the back-end's
// address space): use it to test buffers that span regions.
//
// Failures throw (std::runtime_error / std::out_of_range); GoogleTest reports
// an exception escaping a test as a failure. Link protocol_dep.

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <type_traits>
#include <vector>

#include "protocol/memory_table.hpp"
#include "protocol/unique_fd.hpp"
#include "protocol/wire.hpp"

namespace vhostd::fakes {

class GuestMemory {
public:
    static constexpr uint64_t kDefaultGpa = 0x100000;
    static constexpr uint64_t kDefaultUva = 0x7f0000000000;

    // `size` bytes of zeroed guest RAM at guest-physical `gpa_base`, which the
    // pretend front-end has at virtual address `uva_base`. `name` shows in
    // /proc/self/maps as "/memfd:<name>". The memfd allows sealing but carries
    // no seals, as QEMU's guest RAM does.
    explicit GuestMemory(uint64_t size, uint64_t gpa_base = kDefaultGpa, uint64_t uva_base = kDefaultUva,
                         const char* name = "vhostd-guest")
        : size_(size), gpa_base_(gpa_base), uva_base_(uva_base) {
        if (size == 0) {
            throw std::invalid_argument("GuestMemory: size 0");
        }
        fd_.reset(::memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING));
        if (!fd_) {
            throw std::system_error(errno, std::system_category(), "GuestMemory: memfd_create");
        }
        if (::ftruncate(fd_.get(), static_cast<off_t>(size)) != 0) {
            throw std::system_error(errno, std::system_category(), "GuestMemory: ftruncate");
        }
        auto view = protocol::Mapping::map(fd_.get(), 0, size, static_cast<uint64_t>(::sysconf(_SC_PAGESIZE)));
        if (!view) {
            throw std::runtime_error("GuestMemory: " + view.error().message);
        }
        driver_view_ = std::move(view).value();
    }

    [[nodiscard]] uint64_t size() const noexcept { return size_; }
    [[nodiscard]] uint64_t gpa_base() const noexcept { return gpa_base_; }
    [[nodiscard]] uint64_t uva_base() const noexcept { return uva_base_; }
    // The front-end virtual address of guest-physical `gpa` (for vring addresses).
    [[nodiscard]] uint64_t uva_of(uint64_t gpa) const { return uva_base_ + offset_of(gpa, 1); }
    // The memfd itself (still owned here), e.g. for fcntl(F_ADD_SEALS).
    [[nodiscard]] int fd() const noexcept { return fd_.get(); }

    // Driver view: pointer to guest-physical `gpa`, with [gpa, gpa + len)
    // checked to lie inside this memory (throws std::out_of_range otherwise).
    [[nodiscard]] uint8_t* driver_ptr(uint64_t gpa, uint64_t len = 1) const {
        return driver_view_.data() + offset_of(gpa, len);
    }

    // Copy a trivially copyable value into / out of guest memory.
    template <typename T>
    void put(uint64_t gpa, const T& value) const {
        static_assert(std::is_trivially_copyable_v<T>);
        std::memcpy(driver_ptr(gpa, sizeof(T)), &value, sizeof(T));
    }
    template <typename T>
    [[nodiscard]] T get(uint64_t gpa) const {
        static_assert(std::is_trivially_copyable_v<T>);
        T value;
        std::memcpy(&value, driver_ptr(gpa, sizeof(T)), sizeof(T));
        return value;
    }

    // Front-end view: the region description for all of this memory.
    [[nodiscard]] protocol::MemRegionWire region() const { return slice(0, size_); }

    // The description of bytes [offset, offset + len) of this memory as a
    // region of its own (mmap_offset = offset; need not be page-aligned).
    [[nodiscard]] protocol::MemRegionWire slice(uint64_t offset, uint64_t len) const {
        if (len == 0 || offset > size_ || len > size_ - offset) {
            throw std::out_of_range("GuestMemory::slice: [" + std::to_string(offset) + ", +" +
                                    std::to_string(len) + ") is outside " + std::to_string(size_) + " bytes");
        }
        return protocol::MemRegionWire{gpa_base_ + offset, len, uva_base_ + offset, offset};
    }

    // A new fd for the memfd, as the front-end would send one per region.
    [[nodiscard]] UniqueFd dup_fd() const {
        UniqueFd fd(::fcntl(fd_.get(), F_DUPFD_CLOEXEC, 0));
        if (!fd) {
            throw std::system_error(errno, std::system_category(), "GuestMemory: dup");
        }
        return fd;
    }

    // A MemoryTable with this memory as its one region.
    [[nodiscard]] std::shared_ptr<const protocol::MemoryTable> table() const { return split_table({}); }

    // A MemoryTable with this memory cut into regions at the given offsets
    // (strictly increasing, inside (0, size)); at most kMaxMemTableRegions
    // regions, as SET_MEM_TABLE allows.
    [[nodiscard]] std::shared_ptr<const protocol::MemoryTable> split_table(const std::vector<uint64_t>& cuts) const {
        std::vector<protocol::MemRegionWire> regions;
        std::vector<UniqueFd> fds;
        uint64_t start = 0;
        for (size_t i = 0; i <= cuts.size(); ++i) {
            const uint64_t end = i < cuts.size() ? cuts[i] : size_;
            if (end <= start || end > size_) {
                throw std::out_of_range("GuestMemory::split_table: cut offsets must increase inside (0, size)");
            }
            regions.push_back(slice(start, end - start));
            fds.push_back(dup_fd());
            start = end;
        }
        auto table = protocol::MemoryTable::create(regions, std::move(fds));
        if (!table) {
            throw std::runtime_error("GuestMemory: MemoryTable::create: " + table.error().message);
        }
        return std::move(table).value();
    }

private:
    // Offset of [gpa, gpa + len) in this memory, or throw.
    [[nodiscard]] uint64_t offset_of(uint64_t gpa, uint64_t len) const {
        const uint64_t offset = gpa - gpa_base_;
        if (gpa < gpa_base_ || offset >= size_ || len > size_ - offset) {
            throw std::out_of_range("GuestMemory: guest address " + std::to_string(gpa) + " (+" +
                                    std::to_string(len) + ") is outside this memory");
        }
        return offset;
    }

    uint64_t size_;
    uint64_t gpa_base_;
    uint64_t uva_base_;
    UniqueFd fd_;
    protocol::Mapping driver_view_;
};

} // namespace vhostd::fakes
