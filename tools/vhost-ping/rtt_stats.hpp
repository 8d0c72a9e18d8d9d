#pragma once
// Round-trip statistics of vhost-ping: percentiles and a power-of-two
// histogram over a list of samples in nanoseconds. No DPDK, no I/O.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace vhost_ping {

struct RttSummary {
    size_t n = 0;
    double min_us = 0, p50_us = 0, p90_us = 0, p99_us = 0, p999_us = 0, max_us = 0, mean_us = 0;
};

// Nearest-rank percentile of sorted samples: the smallest sample such that at
// least q of all samples are <= it. `sorted` must not be empty.
inline uint64_t percentile(const std::vector<uint64_t>& sorted, double q) {
    const double rank = std::ceil(q * static_cast<double>(sorted.size()));
    size_t i = rank < 1 ? 0 : static_cast<size_t>(rank) - 1;
    return sorted[std::min(i, sorted.size() - 1)];
}

inline RttSummary summarize(std::vector<uint64_t> ns) {
    RttSummary s;
    s.n = ns.size();
    if (ns.empty()) {
        return s;
    }
    std::sort(ns.begin(), ns.end());
    long double sum = 0;
    for (uint64_t v : ns) {
        sum += v;
    }
    auto us = [](uint64_t v) { return static_cast<double>(v) / 1000.0; };
    s.min_us = us(ns.front());
    s.max_us = us(ns.back());
    s.p50_us = us(percentile(ns, 0.50));
    s.p90_us = us(percentile(ns, 0.90));
    s.p99_us = us(percentile(ns, 0.99));
    s.p999_us = us(percentile(ns, 0.999));
    s.mean_us = static_cast<double>(sum / static_cast<long double>(ns.size())) / 1000.0;
    return s;
}

// "[4,8) 12 | [8,16) 980 | ..." over microseconds, empty buckets left out.
inline std::string histogram(const std::vector<uint64_t>& ns) {
    std::vector<uint64_t> buckets(40, 0); // bucket b: [2^(b-1), 2^b) us; bucket 0: < 1 us
    for (uint64_t v : ns) {
        const uint64_t us = v / 1000;
        size_t b = 0;
        while (b + 1 < buckets.size() && (uint64_t{1} << b) <= us) {
            ++b;
        }
        ++buckets[b];
    }
    std::string out;
    for (size_t b = 0; b < buckets.size(); ++b) {
        if (buckets[b] == 0) {
            continue;
        }
        if (!out.empty()) {
            out += " | ";
        }
        if (b == 0) {
            out += "<1";
        } else {
            out += "[" + std::to_string(uint64_t{1} << (b - 1)) + "," +
                   std::to_string(uint64_t{1} << b) + ")";
        }
        out += " " + std::to_string(buckets[b]);
    }
    return out;
}

} // namespace vhost_ping
