// Fuzz target: the L2 MAC learning table (dataplane/l2_table.hpp). A sequence
// of learn / lookup / clock / flush operations, checked against a std::map
// model of a learning switch. Input layout: tests/fuzz/formats.hpp.
//
// The model: learn(mac, port, now) of a unicast MAC on a learnable port
// records (port, now);
// a MAC is known while now - seen <= aging (in signed 32-bit arithmetic:
// an entry seen "in the future" by another PMD is fresh); flush_port forgets
// the port's MACs, flush all. The table has a fixed number of slots and may
// drop a learn when every slot in a MAC's probe window holds a live entry,
// so:
//  - always: a MAC the table finds must be known to the model, with the
//    same port; entries() lists only known MACs with their model port and
//    age, each MAC once;
//  - when the pool has at most kProbe distinct MACs (no window can be full):
//    the table finds exactly what the model knows.

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>

#include "dataplane/l2_table.hpp"
#include "tests/fuzz/fd_watch.hpp"
#include "tests/fuzz/formats.hpp"
#include "tests/fuzz/fuzz_input.hpp"

namespace vhostd::fuzz {
namespace {

using dataplane::L2Table;
using dataplane::Mac;
using dataplane::PortId;

// Slots probed per MAC (L2Table::kProbe); with no more distinct MACs than
// this the table can never be full around a MAC.
constexpr size_t kProbe = 16;

struct Known {
    PortId port;
    uint32_t seen;
};

class Model {
public:
    explicit Model(uint32_t aging) : aging_(aging) {}

    void learn(const Mac& mac, PortId port, uint32_t now) {
        if ((mac[0] & 1) == 0 && port != dataplane::kUnlearnablePort) {
            known_[mac] = Known{port, now};
        }
    }
    [[nodiscard]] std::optional<Known> find(const Mac& mac, uint32_t now) const {
        const auto it = known_.find(mac);
        if (it == known_.end() || static_cast<int32_t>(now - it->second.seen) > static_cast<int32_t>(aging_)) {
            return std::nullopt;
        }
        return it->second;
    }
    void flush_port(PortId port) {
        std::erase_if(known_, [&](const auto& kv) { return kv.second.port == port; });
    }
    void flush() { known_.clear(); }

private:
    uint32_t aging_;
    std::map<Mac, Known> known_;
};

PortId port_of(uint8_t b) { return b == 0xff ? PortId{0xffff} : PortId{b}; }

} // namespace
} // namespace vhostd::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace vhostd::fuzz;
    FuzzInput in(data, size);
    const size_t capacity = size_t{in.take<uint8_t>()} + 1;
    const uint32_t aging = in.take<uint8_t>() % 8;
    uint32_t now = in.take<uint32_t>();
    const size_t pool = in.take<uint8_t>() % 64 + 1;
    const bool exact = pool <= kProbe;

    L2Table table(capacity, aging);
    Model model(aging);
    while (!in.empty()) {
        const auto op = in.take<uint8_t>();
        Mac mac{};
        l2_mac(static_cast<uint8_t>(in.take<uint8_t>() % pool), mac.data());
        const PortId port = port_of(in.take<uint8_t>());
        const auto arg = in.take<uint8_t>();
        switch (op % kL2Ops) {
        case kL2Learn:
            table.learn(mac.data(), port, now);
            model.learn(mac, port, now);
            break;
        case kL2Lookup: {
            // Another PMD may read the clock a little earlier.
            const uint32_t t = now - arg % 3;
            const auto got = table.lookup(mac.data(), t);
            const auto want = model.find(mac, t);
            if (got) {
                check(want.has_value() && want->port == *got, "lookup found a MAC the model does not know");
            } else if (exact) {
                check(!want.has_value(), "lookup missed a MAC the model knows");
            }
            break;
        }
        case kL2Advance:
            now += arg;
            break;
        case kL2FlushPort:
            table.flush_port(port);
            model.flush_port(port);
            break;
        case kL2Flush:
            table.flush();
            model.flush();
            break;
        case kL2Entries: {
            std::set<Mac> seen;
            size_t n = 0;
            for (const L2Table::Entry& e : table.entries(now)) {
                const auto want = model.find(e.mac, now);
                check(want.has_value() && want->port == e.port, "entries() lists a MAC the model does not know");
                const auto age = static_cast<int32_t>(now - want->seen);
                check(e.age_s == (age > 0 ? static_cast<uint32_t>(age) : 0), "entries() gives a wrong age");
                check(seen.insert(e.mac).second, "entries() lists a MAC twice");
                ++n;
            }
            if (exact) {
                size_t live = 0;
                for (uint8_t i = 0; i < pool; ++i) {
                    Mac m{};
                    l2_mac(i, m.data());
                    live += model.find(m, now).has_value() ? 1 : 0;
                }
                check(n == live, "entries() misses MACs the model knows");
            }
            break;
        }
        default:
            break;
        }
    }
    return 0;
}
