#pragma once
// Shared DPDK environment and helpers for the DPDK tests.
//
// EAL can be initialised only once per process, so every DPDK test lives in
// one executable and shares one DpdkEnv, set up by a gtest Environment
// (dpdk_env_test.cpp) with --no-huge --no-pci and a per-process file prefix.

#include <rte_mbuf.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "dataplane/dpdk_env.hpp"
#include "dataplane/mbuf_copy.hpp"

namespace vhostd::dataplane::test {

// The process's DpdkEnv (aborts the test if the environment did not come up).
DpdkEnv& dpdk_env();
// The EAL arguments the environment used.
const std::vector<std::string>& dpdk_eal_args();

// A frame-sized byte pattern that differs per seed and per position.
inline std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; ++i) {
        v[i] = static_cast<uint8_t>(i * 7 + (i >> 8) + seed);
    }
    return v;
}

// A guest buffer made of separate pieces, each with guard bytes on both sides,
// so a test sees any write past a piece.
class GuardedPieces {
public:
    static constexpr size_t kGuard = 64;
    static constexpr uint8_t kGuardByte = 0xa5;
    static constexpr uint8_t kFillByte = 0xee;

    explicit GuardedPieces(const std::vector<uint32_t>& lens) {
        for (uint32_t len : lens) {
            storage_.emplace_back(len + 2 * kGuard, kGuardByte);
            std::memset(storage_.back().data() + kGuard, kFillByte, len);
        }
        for (size_t i = 0; i < lens.size(); ++i) {
            pieces_.push_back(Piece{storage_[i].data() + kGuard, lens[i]});
        }
    }

    [[nodiscard]] const Piece* data() const { return pieces_.data(); }
    [[nodiscard]] size_t size() const { return pieces_.size(); }
    [[nodiscard]] uint64_t bytes() const {
        uint64_t n = 0;
        for (const auto& p : pieces_) {
            n += p.len;
        }
        return n;
    }

    // Writes `src` into the pieces starting `offset` bytes in.
    void write(size_t offset, const std::vector<uint8_t>& src) {
        size_t pos = 0;
        for (const auto& p : pieces_) {
            for (uint32_t i = 0; i < p.len; ++i, ++pos) {
                if (pos >= offset && pos - offset < src.size()) {
                    p.host[i] = src[pos - offset];
                }
            }
        }
    }
    // The pieces' contents, concatenated.
    [[nodiscard]] std::vector<uint8_t> contents() const {
        std::vector<uint8_t> out;
        for (const auto& p : pieces_) {
            out.insert(out.end(), p.host, p.host + p.len);
        }
        return out;
    }
    [[nodiscard]] bool guards_intact() const {
        for (size_t i = 0; i < storage_.size(); ++i) {
            const auto& s = storage_[i];
            for (size_t j = 0; j < kGuard; ++j) {
                if (s[j] != kGuardByte || s[s.size() - 1 - j] != kGuardByte) {
                    return false;
                }
            }
        }
        return true;
    }

private:
    std::vector<std::vector<uint8_t>> storage_;
    std::vector<Piece> pieces_;
};

// The frame in an mbuf chain, gathered segment by segment.
inline std::vector<uint8_t> mbuf_bytes(const rte_mbuf* m) {
    std::vector<uint8_t> out;
    for (const rte_mbuf* s = m; s != nullptr; s = s->next) {
        const auto* p = rte_pktmbuf_mtod(s, const uint8_t*);
        out.insert(out.end(), p, p + s->data_len);
    }
    return out;
}

} // namespace vhostd::dataplane::test
