#pragma once
// How the device side reads and writes the shared ring fields. Internal to
// virtio/.
//
// Ring indices and flags are read and written through std::atomic_ref, so
// each access is one load or store of the whole field, with the memory order
// the protocol needs named at the call site. Descriptors are copied out of
// guest memory once with copy_from_guest(), which ends in a compiler barrier:
// after it, the compiler may not re-read guest memory to "rematerialise" a
// field of the copy, so a value that was checked is the value that is used
// even if the guest rewrites the descriptor meanwhile (the double-fetch bugs
// DPDK's vhost had, STYLE.md; Linux's READ_ONCE serves the same purpose).

#include <atomic>
#include <cstdint>
#include <cstring>

#include "virtio/split_ring.hpp"

namespace vhostd::virtio::detail {

// Every field below is naturally aligned: create() checked the alignment of
// the areas and the fields sit at aligned offsets inside them.
static_assert(std::atomic_ref<uint16_t>::required_alignment == alignof(uint16_t));
static_assert(std::atomic_ref<uint32_t>::required_alignment == alignof(uint32_t));

[[nodiscard]] inline uint16_t load_acquire(le16* p) noexcept {
    return std::atomic_ref<uint16_t>(*p).load(std::memory_order_acquire);
}
[[nodiscard]] inline uint16_t load_relaxed(le16* p) noexcept {
    return std::atomic_ref<uint16_t>(*p).load(std::memory_order_relaxed);
}
inline void store_relaxed(le16* p, uint16_t v) noexcept {
    std::atomic_ref<uint16_t>(*p).store(v, std::memory_order_relaxed);
}
inline void store_release(le16* p, uint16_t v) noexcept {
    std::atomic_ref<uint16_t>(*p).store(v, std::memory_order_release);
}
inline void store_relaxed(le32* p, uint32_t v) noexcept {
    std::atomic_ref<uint32_t>(*p).store(v, std::memory_order_relaxed);
}

// Stops the compiler from caching or re-reading memory across this point.
inline void compiler_barrier() noexcept { asm volatile("" ::: "memory"); }

// Copies `n` bytes of guest memory into a local object; see the top of this
// file for why it ends in a barrier.
inline void copy_from_guest(void* dst, const uint8_t* src, size_t n) noexcept {
    std::memcpy(dst, src, n);
    compiler_barrier();
}

} // namespace vhostd::virtio::detail
