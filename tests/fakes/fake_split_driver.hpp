#pragma once
// FakeSplitDriver: the guest driver's side of one split virtqueue (VIRTIO 1.2
// §2.7), living in GuestMemory (memfd-backed guest RAM). It lays out the
// descriptor table, avail ring and used ring at guest-physical addresses,
// hands out buffers from a data area, adds chains (direct, indirect,
// several descriptors, a header split across descriptors), posts RX buffers,
// and reads back what the device put in the used ring — the view a guest
// driver has, written into real memory that the device code reads through a
// protocol::MemoryTable (rust-vmm's MockSplitQueue plays the same part).
//
//   fakes::GuestMemory mem(1 << 20);
//   fakes::FakeSplitDriver drv(mem, 256);
//   auto table = mem.table();
//   auto ring = drv.ring(*table, features);          // SplitRing::create on drv's layout
//   uint16_t head = drv.send(bytes, {4, 8});         // TX: header+frame in 3 descriptors
//   ... device fetches, pushes, flushes ...
//   auto used = drv.take_used();                     // {id, len} pairs, descriptors freed
//
// Raw accessors (write_desc, publish, set_avail_idx, ...) let tests build
// hostile rings the helpers would never produce. Failures throw; a test sees
// an escaping exception as a failure.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "protocol/memory_table.hpp"
#include "tests/fakes/guest_memory.hpp"
#include "virtio/split_ring.hpp"

namespace vhostd::fakes {

class FakeSplitDriver {
public:
    // One buffer of a chain: guest-physical address, length, device-writable?
    struct Seg {
        uint64_t gpa;
        uint32_t len;
        bool writable = false;
    };

    // A ring of `size` entries at guest-physical `ring_gpa` (default: the
    // start of `mem`), with buffers handed out from `data_gpa` (default: the
    // first 4 KiB boundary after the ring) to the end of `mem`.
    FakeSplitDriver(const GuestMemory& mem, uint16_t size, uint64_t ring_gpa = 0, uint64_t data_gpa = 0)
        : mem_(mem), size_(size) {
        if (size == 0 || (size & (size - 1)) != 0) {
            throw std::invalid_argument("FakeSplitDriver: size must be a power of two");
        }
        desc_gpa_ = ring_gpa != 0 ? ring_gpa : mem.gpa_base();
        avail_gpa_ = desc_gpa_ + virtio::desc_table_bytes(size);
        used_gpa_ = align_up(avail_gpa_ + virtio::avail_ring_bytes(size), 64);
        const uint64_t ring_end = used_gpa_ + virtio::used_ring_bytes(size);
        next_data_ = data_gpa != 0 ? data_gpa : align_up(ring_end, 4096);
        data_end_ = mem.gpa_base() + mem.size();
        // The driver zeroes the rings (and MUST set used.flags to 0, §2.7.10).
        std::memset(mem.driver_ptr(desc_gpa_, ring_end - desc_gpa_), 0, ring_end - desc_gpa_);
        for (uint16_t i = size; i > 0; --i) {
            free_.push_back(static_cast<uint16_t>(i - 1));
        }
    }

    // ---- Layout ----
    [[nodiscard]] uint16_t size() const noexcept { return size_; }
    [[nodiscard]] uint64_t desc_gpa() const noexcept { return desc_gpa_; }
    [[nodiscard]] uint64_t avail_gpa() const noexcept { return avail_gpa_; }
    [[nodiscard]] uint64_t used_gpa() const noexcept { return used_gpa_; }
    // The addresses SET_VRING_ADDR would carry (front-end virtual addresses).
    [[nodiscard]] uint64_t desc_uva() const { return mem_.uva_of(desc_gpa_); }
    [[nodiscard]] uint64_t avail_uva() const { return mem_.uva_of(avail_gpa_); }
    [[nodiscard]] uint64_t used_uva() const { return mem_.uva_of(used_gpa_); }

    // SplitRing::create over this layout; throws on error.
    [[nodiscard]] virtio::SplitRing ring(const protocol::MemoryTable& table, uint64_t features) const {
        auto r = virtio::SplitRing::create(table, desc_uva(), avail_uva(), used_uva(), size_, features);
        if (!r) {
            throw std::runtime_error("FakeSplitDriver: SplitRing::create: " + r.error().message);
        }
        return *r;
    }

    // ---- Buffers ----
    // `len` bytes of the data area (never freed; tests are short).
    uint64_t alloc(uint64_t len, uint64_t align = 16) {
        const uint64_t gpa = align_up(next_data_, align);
        if (gpa + len > data_end_) {
            throw std::out_of_range("FakeSplitDriver::alloc: data area exhausted");
        }
        next_data_ = gpa + len;
        return gpa;
    }
    void write_bytes(uint64_t gpa, std::span<const uint8_t> bytes) const {
        if (!bytes.empty()) {
            std::memcpy(mem_.driver_ptr(gpa, bytes.size()), bytes.data(), bytes.size());
        }
    }
    [[nodiscard]] std::vector<uint8_t> read_bytes(uint64_t gpa, uint64_t len) const {
        std::vector<uint8_t> out(len);
        if (len != 0) {
            std::memcpy(out.data(), mem_.driver_ptr(gpa, len), len);
        }
        return out;
    }

    // ---- Raw ring access (the driver's view) ----
    void write_desc(uint16_t index, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) const {
        mem_.put(desc_gpa_ + 16ull * check_index(index), virtio::VringDesc{addr, len, flags, next});
    }
    [[nodiscard]] virtio::VringDesc read_desc(uint16_t index) const {
        return mem_.get<virtio::VringDesc>(desc_gpa_ + 16ull * check_index(index));
    }
    // Entry `index` of an indirect table at `table_gpa` (no alignment needed).
    void write_table_desc(uint64_t table_gpa, uint16_t index, uint64_t addr, uint32_t len, uint16_t flags,
                          uint16_t next) const {
        mem_.put(table_gpa + 16ull * index, virtio::VringDesc{addr, len, flags, next});
    }
    // Makes `head` available: avail.ring[avail.idx % size] = head, then avail.idx + 1.
    void publish(uint16_t head) const {
        const uint16_t idx = avail_idx();
        mem_.put<uint16_t>(avail_gpa_ + 4 + 2ull * (idx & (size_ - 1)), head);
        set_avail_idx(static_cast<uint16_t>(idx + 1));
    }
    void set_avail_ring_entry(uint16_t slot, uint16_t head) const {
        mem_.put<uint16_t>(avail_gpa_ + 4 + 2ull * check_index(slot), head);
    }
    [[nodiscard]] uint16_t avail_idx() const { return mem_.get<uint16_t>(avail_gpa_ + 2); }
    void set_avail_idx(uint16_t v) const { mem_.put<uint16_t>(avail_gpa_ + 2, v); }
    void set_avail_flags(uint16_t v) const { mem_.put<uint16_t>(avail_gpa_, v); }
    // used_event: avail.ring[size] (EVENT_IDX).
    void set_used_event(uint16_t v) const { mem_.put<uint16_t>(avail_gpa_ + 4 + 2ull * size_, v); }

    [[nodiscard]] uint16_t used_flags() const { return mem_.get<uint16_t>(used_gpa_); }
    [[nodiscard]] uint16_t used_idx() const { return mem_.get<uint16_t>(used_gpa_ + 2); }
    // Sets used.idx and the driver's own last-seen used index, as if `v`
    // chains had already been completed (e.g. before a back-end reconnect).
    void set_used_idx(uint16_t v) {
        mem_.put<uint16_t>(used_gpa_ + 2, v);
        last_used_ = v;
    }
    // avail_event: after used.ring[size] (EVENT_IDX).
    [[nodiscard]] uint16_t avail_event() const { return mem_.get<uint16_t>(used_gpa_ + 4 + 8ull * size_); }
    // Used ring slot `slot` (taken modulo the size).
    [[nodiscard]] virtio::VringUsedElem used_elem(uint16_t slot) const {
        return mem_.get<virtio::VringUsedElem>(used_gpa_ + 4 + 8ull * (slot & (size_ - 1)));
    }

    // ---- Chains, as a driver builds them ----

    // Direct chain over `segs` from free descriptors, then published. Returns the head.
    uint16_t add_chain(const std::vector<Seg>& segs) {
        if (segs.empty() || segs.size() > free_.size()) {
            throw std::length_error("FakeSplitDriver::add_chain: no descriptors for " + std::to_string(segs.size()) +
                                    " segments");
        }
        std::vector<uint16_t> ids;
        for (size_t i = 0; i < segs.size(); ++i) {
            ids.push_back(free_.back());
            free_.pop_back();
        }
        for (size_t i = 0; i < segs.size(); ++i) {
            const bool last = i + 1 == segs.size();
            const uint16_t flags = static_cast<uint16_t>((segs[i].writable ? virtio::kDescFWrite : 0) |
                                                         (last ? 0 : virtio::kDescFNext));
            write_desc(ids[i], segs[i].gpa, segs[i].len, flags, last ? 0 : ids[i + 1]);
        }
        const uint16_t head = ids.front();
        chains_[head] = Chain{ids, segs, false};
        publish(head);
        return head;
    }

    // One ring descriptor with INDIRECT pointing at a table (allocated in the
    // data area) that holds `segs`; then published. Returns the head.
    uint16_t add_indirect_chain(const std::vector<Seg>& segs) {
        if (segs.empty() || free_.empty()) {
            throw std::length_error("FakeSplitDriver::add_indirect_chain: nothing to add or no descriptor");
        }
        const uint64_t table = alloc(16ull * segs.size());
        for (size_t i = 0; i < segs.size(); ++i) {
            const bool last = i + 1 == segs.size();
            const uint16_t flags = static_cast<uint16_t>((segs[i].writable ? virtio::kDescFWrite : 0) |
                                                         (last ? 0 : virtio::kDescFNext));
            write_table_desc(table, static_cast<uint16_t>(i), segs[i].gpa, segs[i].len, flags,
                             last ? 0 : static_cast<uint16_t>(i + 1));
        }
        const uint16_t head = free_.back();
        free_.pop_back();
        write_desc(head, table, static_cast<uint32_t>(16 * segs.size()), virtio::kDescFIndirect, 0);
        chains_[head] = Chain{{head}, segs, false};
        publish(head);
        return head;
    }

    // TX: copies `bytes` (virtio-net header + frame) into new buffers, cut
    // into descriptors of the lengths in `split` (the rest in one more), and
    // adds the chain (indirect if asked). Returns the head.
    uint16_t send(std::span<const uint8_t> bytes, const std::vector<uint32_t>& split = {}, bool indirect = false) {
        std::vector<Seg> segs;
        size_t off = 0;
        for (uint32_t len : split) {
            if (off + len > bytes.size()) {
                throw std::out_of_range("FakeSplitDriver::send: split is longer than the bytes");
            }
            segs.push_back(copy_in(bytes.subspan(off, len)));
            off += len;
        }
        if (off < bytes.size() || segs.empty()) {
            segs.push_back(copy_in(bytes.subspan(off)));
        }
        return indirect ? add_indirect_chain(segs) : add_chain(segs);
    }

    // RX: one chain of device-writable buffers of these lengths. Returns the head.
    uint16_t post_rx(const std::vector<uint32_t>& lens, bool indirect = false) {
        std::vector<Seg> segs;
        for (uint32_t len : lens) {
            segs.push_back(Seg{alloc(len), len, true});
        }
        return indirect ? add_indirect_chain(segs) : add_chain(segs);
    }

    // The buffers of the chain added with this head.
    [[nodiscard]] const std::vector<Seg>& segs_of(uint16_t head) const { return chain(head).segs; }

    // The first `len` bytes of the chain's buffers, concatenated (RX: what
    // the device wrote).
    [[nodiscard]] std::vector<uint8_t> read_chain(uint16_t head, uint32_t len) const {
        std::vector<uint8_t> out;
        for (const Seg& s : chain(head).segs) {
            if (out.size() >= len) {
                break;
            }
            const uint32_t take = std::min<uint32_t>(s.len, len - static_cast<uint32_t>(out.size()));
            const auto part = read_bytes(s.gpa, take);
            out.insert(out.end(), part.begin(), part.end());
        }
        return out;
    }

    // Used elements the device published since the last call (up to
    // used.idx), as virtqueue_get_buf would see them; their descriptors go
    // back on the free list. The chains' buffers stay readable (segs_of,
    // read_chain) until their head is reused.
    std::vector<virtio::VringUsedElem> take_used() {
        std::vector<virtio::VringUsedElem> out;
        const uint16_t end = used_idx();
        while (last_used_ != end) {
            const virtio::VringUsedElem e = used_elem(last_used_);
            out.push_back(e);
            ++last_used_;
            const auto it = chains_.find(static_cast<uint16_t>(e.id));
            if (it != chains_.end() && !it->second.completed) {
                it->second.completed = true;
                for (uint16_t id : it->second.ids) {
                    free_.push_back(id);
                }
            }
        }
        return out;
    }

    [[nodiscard]] size_t free_descriptors() const noexcept { return free_.size(); }

private:
    struct Chain {
        std::vector<uint16_t> ids;  // ring descriptors it occupies
        std::vector<Seg> segs;
        bool completed = false;     // returned through the used ring
    };

    static uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }

    uint16_t check_index(uint16_t index) const {
        if (index >= size_) {
            throw std::out_of_range("FakeSplitDriver: index " + std::to_string(index) + " >= size");
        }
        return index;
    }

    const Chain& chain(uint16_t head) const {
        const auto it = chains_.find(head);
        if (it == chains_.end()) {
            throw std::out_of_range("FakeSplitDriver: no chain with head " + std::to_string(head));
        }
        return it->second;
    }

    Seg copy_in(std::span<const uint8_t> bytes) {
        const uint64_t gpa = alloc(bytes.empty() ? 1 : bytes.size());
        write_bytes(gpa, bytes);
        return Seg{gpa, static_cast<uint32_t>(bytes.size()), false};
    }

    const GuestMemory& mem_;
    uint16_t size_;
    uint64_t desc_gpa_ = 0;
    uint64_t avail_gpa_ = 0;
    uint64_t used_gpa_ = 0;
    uint64_t next_data_ = 0;
    uint64_t data_end_ = 0;
    uint16_t last_used_ = 0;
    std::vector<uint16_t> free_;
    std::map<uint16_t, Chain> chains_;
};

} // namespace vhostd::fakes
