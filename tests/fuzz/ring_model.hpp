#pragma once
// A reference model of taking one chain off a split ring (VIRTIO 1.2 §2.7),
// written plainly from the spec for split_ring_fuzz to compare the device
// code against. It reads the guest's bytes through the driver's own view of
// guest memory, one contiguous image at guest-physical `base`, and says what
// the next fetch must return: nothing (empty), a violation, or a chain made
// of these guest-physical buffers.
//
// The rules are those virtio/split_queue.hpp lists: avail.idx at most `size`
// ahead; head and next indices in range; at most `size` non-indirect
// descriptors per chain; total at most 2^32 - 1 bytes; INDIRECT only if
// negotiated, never with NEXT, never nested, a non-zero multiple of 16 long;
// every buffer inside guest memory; every descriptor of the right direction;
// zero-length descriptors carry nothing.

#include <cstdint>
#include <cstring>
#include <vector>

namespace vhostd::fuzz {

struct ModelSeg {
    uint64_t gpa;
    uint32_t len;
};

enum class ModelResult : uint8_t { kEmpty, kViolation, kChain };

struct ModelFetch {
    ModelResult result = ModelResult::kViolation;
    uint16_t head = 0;
    std::vector<ModelSeg> segs;  // kChain: the non-empty buffers, in order
    uint64_t total = 0;
};

class RingModel {
public:
    RingModel(const uint8_t* image, uint64_t base, uint64_t image_size, uint64_t desc, uint64_t avail,
              uint32_t size, bool indirect)
        : image_(image), base_(base), image_size_(image_size), desc_(desc), avail_(avail), size_(size),
          indirect_(indirect) {}

    // The next fetch from `last_avail_idx`, where entries before `shadow`
    // (avail.idx as the device last read it) are known to be published.
    [[nodiscard]] ModelFetch fetch(uint16_t last_avail_idx, uint16_t shadow, bool device_writable) const {
        ModelFetch f;
        if (last_avail_idx == shadow) {
            const auto idx = read<uint16_t>(avail_ + 2);
            const auto pending = static_cast<uint16_t>(idx - last_avail_idx);
            if (pending > size_) {
                return f;  // violation
            }
            if (pending == 0) {
                f.result = ModelResult::kEmpty;
                return f;
            }
        }
        const auto head = read<uint16_t>(avail_ + 4 + 2ull * (last_avail_idx % size_));
        if (head >= size_) {
            return f;
        }
        f.head = head;
        walk(f, device_writable);
        return f;
    }

private:
    struct Desc {
        uint64_t addr;
        uint32_t len;
        uint16_t flags;
        uint16_t next;
    };

    void walk(ModelFetch& f, bool device_writable) const {
        uint32_t idx = f.head;
        bool in_table = false;
        uint64_t table = 0;
        uint64_t entries = 0;
        uint32_t visited = 0;
        for (;;) {
            Desc d{};
            if (!in_table) {
                d = read<Desc>(desc_ + 16ull * idx);
            } else if (!inside(table + 16ull * idx, 16)) {
                return;
            } else {
                d = read<Desc>(table + 16ull * idx);
            }
            if ((d.flags & 4) != 0) {  // INDIRECT
                if (!indirect_ || in_table || (d.flags & 1) != 0 || d.len == 0 || d.len % 16 != 0 ||
                    d.addr + d.len < d.addr) {
                    return;
                }
                in_table = true;
                table = d.addr;
                entries = d.len / 16;
                idx = 0;
                continue;
            }
            if (++visited > size_) {
                return;
            }
            if (((d.flags & 2) != 0) != device_writable) {
                return;
            }
            if (d.len != 0) {
                f.total += d.len;
                if (f.total > UINT32_MAX || !inside(d.addr, d.len)) {
                    return;
                }
                f.segs.push_back({d.addr, d.len});
            }
            if ((d.flags & 1) == 0) {
                f.result = ModelResult::kChain;
                return;
            }
            idx = d.next;
            if (idx >= (in_table ? entries : size_)) {
                return;
            }
        }
    }

    [[nodiscard]] bool inside(uint64_t gpa, uint64_t len) const {
        return gpa >= base_ && gpa - base_ <= image_size_ && len <= image_size_ - (gpa - base_);
    }

    template <typename T>
    [[nodiscard]] T read(uint64_t gpa) const {
        T v{};
        std::memcpy(&v, image_ + (gpa - base_), sizeof(T));
        return v;
    }

    const uint8_t* image_;
    uint64_t base_;
    uint64_t image_size_;
    uint64_t desc_;
    uint64_t avail_;
    uint32_t size_;
    bool indirect_;
};

} // namespace vhostd::fuzz
