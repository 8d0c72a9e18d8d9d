// Fuzz target: the guest memory table (protocol/memory_table.hpp). A region
// list over real memfds of a few pages builds a table or fails; then
// ADD_MEM_REG / REM_MEM_REG and translations of fuzzer-chosen addresses and
// lengths. Input layout: tests/fuzz/formats.hpp.
//
// Checks, beyond the sanitizers:
//  - a built table holds exactly the regions asked for, sorted by guest
//    address, pairwise disjoint in guest and front-end address space, each
//    backed by a mapping of its full size;
//  - every translation equals what a plain linear scan of the regions gives
//    (found or not, same pointer), and every byte range it returns lies
//    inside one region's mapping; both ends of it are read;
//  - every table built during the input stays readable until destroyed,
//    also after regions were removed from a later table (shared mappings);
//  - every memfd is closed at the end (FdWatch).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "protocol/memory_table.hpp"
#include "protocol/wire.hpp"
#include "tests/fuzz/fd_watch.hpp"
#include "tests/fuzz/formats.hpp"
#include "tests/fuzz/fuzz_input.hpp"

namespace vhostd::fuzz {
namespace {

using protocol::HostRegion;
using protocol::MemoryTable;
using protocol::MemRegionWire;
using TablePtr = std::shared_ptr<const MemoryTable>;

void touch(const uint8_t* p, uint64_t len) {
    const volatile uint8_t* first = p;
    const volatile uint8_t* last = p + len - 1;
    (void)*first;
    (void)*last;
}

// [p, p + len) inside the mapping of one region of `t`.
bool inside_one_region(const MemoryTable& t, const uint8_t* p, uint64_t len) {
    for (const HostRegion& r : t.regions()) {
        if (p >= r.host && len <= r.size && static_cast<uint64_t>(p - r.host) <= r.size - len) {
            return true;
        }
    }
    return false;
}

void check_table(const MemoryTable& t) {
    const auto regions = t.regions();
    for (size_t i = 0; i < regions.size(); ++i) {
        const HostRegion& r = regions[i];
        check(r.size != 0 && r.host != nullptr && r.mapping != nullptr, "empty region or no mapping");
        check(r.mapping->data() <= r.host && r.mapping->size() >= r.size &&
                  static_cast<uint64_t>(r.host - r.mapping->data()) <= r.mapping->size() - r.size,
              "region not inside its mapping");
        check(r.gpa + r.size > r.gpa && r.uva + r.size > r.uva, "region end overflows");
        if (i > 0) {
            check(regions[i - 1].gpa + regions[i - 1].size <= r.gpa, "regions not sorted or overlapping in gpa");
        }
        for (size_t j = 0; j < i; ++j) {
            const HostRegion& o = regions[j];
            check(o.uva + o.size <= r.uva || r.uva + r.size <= o.uva, "regions overlap in uva");
        }
        touch(r.host, r.size);
    }
}

bool same_region(const HostRegion& r, const MemRegionWire& w) {
    return r.gpa == w.guest_phys_addr && r.uva == w.userspace_addr && r.size == w.memory_size;
}

// Linear-scan model of gpa_to_host / uva_to_host.
uint8_t* model_translate(const MemoryTable& t, uint64_t addr, uint64_t len, bool by_uva) {
    if (len == 0) {
        return nullptr;
    }
    for (const HostRegion& r : t.regions()) {
        const uint64_t start = by_uva ? r.uva : r.gpa;
        if (addr >= start && addr - start < r.size && len <= r.size - (addr - start)) {
            return r.host + (addr - start);
        }
    }
    return nullptr;
}

const HostRegion* model_find(const MemoryTable& t, uint64_t gpa) {
    for (const HostRegion& r : t.regions()) {
        if (gpa >= r.gpa && gpa - r.gpa < r.size) {
            return &r;
        }
    }
    return nullptr;
}

// Linear-scan model of gpa_to_pieces: pieces, or none.
std::vector<MemoryTable::Piece> model_pieces(const MemoryTable& t, uint64_t gpa, uint32_t len, size_t max) {
    std::vector<MemoryTable::Piece> out;
    if (len == 0 || max == 0 || gpa + len < gpa) {
        return {};
    }
    uint64_t cur = gpa;
    uint64_t remaining = len;
    const HostRegion* r = model_find(t, cur);
    while (remaining != 0) {
        if (r == nullptr || out.size() == max) {
            return {};
        }
        const uint64_t off = cur - r->gpa;
        const uint64_t take = std::min(remaining, r->size - off);
        out.push_back({r->host + off, static_cast<uint32_t>(take)});
        remaining -= take;
        cur += take;
        if (remaining != 0) {
            // The next piece must start a region exactly at `cur`.
            const HostRegion* next = model_find(t, cur);
            r = (next != nullptr && next->gpa == cur) ? next : nullptr;
        }
    }
    return out;
}

uint64_t pick_addr(const MemoryTable& t, uint8_t sel, uint64_t raw, bool by_uva) {
    if ((sel & kMemAbsolute) != 0 || t.size() == 0) {
        return raw;
    }
    const HostRegion& r = t.regions()[(sel & ~kMemAbsolute) % t.size()];
    const auto delta = static_cast<int64_t>(static_cast<int32_t>(static_cast<uint32_t>(raw)));
    return (by_uva ? r.uva : r.gpa) + static_cast<uint64_t>(delta);
}

void translate(const MemoryTable& t, FuzzInput& in, bool by_uva) {
    const auto sel = in.take<uint8_t>();
    const uint64_t addr = pick_addr(t, sel, in.take<uint64_t>(), by_uva);
    const auto len = in.take<uint32_t>();
    uint8_t* got = by_uva ? t.uva_to_host(addr, len) : t.gpa_to_host(addr, len);
    check(got == model_translate(t, addr, len, by_uva), "translation differs from the linear-scan model");
    if (got != nullptr) {
        check(inside_one_region(t, got, len), "translation outside every region");
        touch(got, len);
    }
}

void pieces(const MemoryTable& t, FuzzInput& in) {
    const auto sel = in.take<uint8_t>();
    const uint64_t gpa = pick_addr(t, sel, in.take<uint64_t>(), false);
    const auto len = in.take<uint32_t>();
    const size_t max = in.take<uint8_t>() % 17;
    MemoryTable::Piece out[16];
    const size_t n = t.gpa_to_pieces(gpa, len, max == 0 ? nullptr : out, max);
    const auto want = model_pieces(t, gpa, len, max);
    check(n == want.size(), "piece count differs from the model");
    uint64_t total = 0;
    for (size_t i = 0; i < n; ++i) {
        check(out[i].host == want[i].host && out[i].len == want[i].len, "piece differs from the model");
        check(out[i].len != 0 && inside_one_region(t, out[i].host, out[i].len), "piece outside every region");
        touch(out[i].host, out[i].len);
        total += out[i].len;
    }
    check(n == 0 || total == len, "pieces do not add up to the length");
}

} // namespace
} // namespace vhostd::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace vhostd;
    using namespace vhostd::fuzz;
    FuzzInput in(data, size);
    FdWatch watch;
    {
        std::vector<TablePtr> tables;  // every table built, kept alive to the end

        const auto count = in.take<uint8_t>();
        const size_t n = (count & ~kMemExtraFd) % 10;
        std::vector<MemRegionWire> regions;
        std::vector<UniqueFd> fds;
        for (size_t i = 0; i < n; ++i) {
            fds.push_back(watch.memfd(file_size(in.take<uint8_t>())));
            regions.push_back(in.take<MemRegionWire>());
        }
        if ((count & kMemExtraFd) != 0) {
            fds.push_back(watch.memfd(kMemPage));
        }
        TablePtr table = MemoryTable::empty();
        if (auto built = MemoryTable::create(regions, std::move(fds)); built) {
            table = std::move(built).value();
            check(table->size() == regions.size(), "table has another number of regions");
            for (const MemRegionWire& w : regions) {
                check(std::any_of(table->regions().begin(), table->regions().end(),
                                  [&](const HostRegion& r) { return same_region(r, w); }),
                      "a region asked for is missing");
            }
            tables.push_back(table);
        }
        check_table(*table);

        while (!in.empty()) {
            switch (in.take<uint8_t>() % kMemOps) {
            case kMemGpa:
                translate(*table, in, false);
                break;
            case kMemUva:
                translate(*table, in, true);
                break;
            case kMemPieces:
                pieces(*table, in);
                break;
            case kMemAdd: {
                UniqueFd fd = watch.memfd(file_size(in.take<uint8_t>()));
                const auto w = in.take<MemRegionWire>();
                if (auto next = table->with_added(w, std::move(fd)); next) {
                    check((*next)->size() == table->size() + 1, "ADD_MEM_REG did not add one region");
                    table = std::move(next).value();
                    tables.push_back(table);
                }
                break;
            }
            case kMemRemove: {
                const auto sel = in.take<uint8_t>();
                MemRegionWire w{};
                if (in.take<uint8_t>() != 0 && table->size() != 0) {
                    const HostRegion& r = table->regions()[sel % table->size()];
                    w = MemRegionWire{r.gpa, r.size, r.uva, 0};
                } else {
                    w = in.take<MemRegionWire>();
                }
                const bool present = std::any_of(table->regions().begin(), table->regions().end(),
                                                 [&](const HostRegion& r) { return same_region(r, w); });
                auto next = table->with_removed(w);
                check(next.ok() == present, "REM_MEM_REG result differs from the model");
                if (next) {
                    check((*next)->size() + 1 == table->size(), "REM_MEM_REG did not remove one region");
                    table = std::move(next).value();
                    tables.push_back(table);
                }
                break;
            }
            default:
                break;
            }
            check_table(*table);
        }
        for (const TablePtr& t : tables) {
            check_table(*t);
        }
    }
    watch.check_all_closed();
    return 0;
}
