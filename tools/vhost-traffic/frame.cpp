#include "frame.hpp"

#include <cstring>

namespace vhost_traffic {

namespace {

uint64_t splitmix64(uint64_t x) noexcept {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

// xorshift64*: a different, non-repeating byte stream per sequence number,
// so a shifted, truncated or swapped payload does not match by accident.
class PatternGen {
public:
    explicit PatternGen(uint64_t seq) noexcept : s_(splitmix64(seq) | 1) {}
    uint64_t next() noexcept {
        s_ ^= s_ >> 12;
        s_ ^= s_ << 25;
        s_ ^= s_ >> 27;
        return s_ * 0x2545F4914F6CDD1Dull;
    }

private:
    uint64_t s_;
};

void put16be(uint8_t* p, uint16_t v) noexcept {
    p[0] = static_cast<uint8_t>(v >> 8);
    p[1] = static_cast<uint8_t>(v);
}
void put32be(uint8_t* p, uint32_t v) noexcept {
    put16be(p, static_cast<uint16_t>(v >> 16));
    put16be(p + 2, static_cast<uint16_t>(v));
}
uint16_t get16be(const uint8_t* p) noexcept { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
uint32_t get32be(const uint8_t* p) noexcept {
    return (static_cast<uint32_t>(get16be(p)) << 16) | get16be(p + 2);
}

void put_header(uint8_t* p, const TestHeader& h) noexcept {
    // Little endian, field by field: no padding, no alignment assumptions.
    std::memcpy(p, &h.magic, 4);
    std::memcpy(p + 4, &h.flags, 2);
    std::memcpy(p + 6, &h.tx_port, 2);
    std::memcpy(p + 8, &h.seq, 8);
    std::memcpy(p + 16, &h.len, 4);
}
TestHeader get_header(const uint8_t* p) noexcept {
    TestHeader h{};
    std::memcpy(&h.magic, p, 4);
    std::memcpy(&h.flags, p + 4, 2);
    std::memcpy(&h.tx_port, p + 6, 2);
    std::memcpy(&h.seq, p + 8, 8);
    std::memcpy(&h.len, p + 16, 4);
    return h;
}

void put_eth(uint8_t* out, const Mac& dst, const Mac& src, uint16_t type) noexcept {
    std::memcpy(out, dst.data(), 6);
    std::memcpy(out + 6, src.data(), 6);
    put16be(out + 12, type);
}

// The test header and pattern at `p` (`len` bytes, the payload of a frame of
// `frame_len` bytes). Shared by data frames and ICMP payloads.
Checked check_payload(const uint8_t* p, size_t len, uint32_t frame_len, uint32_t expect_size,
                      uint64_t count) noexcept {
    Checked c;
    c.verdict = Verdict::kCorrupt;
    if (len < kTestHdrLen) {
        c.why = "too short for the test header";
        return c;
    }
    c.hdr = get_header(p);
    if (c.hdr.magic != kMagic && c.hdr.magic != kMagicPrime) {
        c.why = "bad magic";
        return c;
    }
    if (c.hdr.len != frame_len || frame_len != expect_size) {
        c.why = "length differs from what was sent";
        return c;
    }
    if (c.hdr.flags != 0) {
        c.why = "flags not zero";
        return c;
    }
    const bool prime = c.hdr.magic == kMagicPrime;
    if (!prime && c.hdr.seq >= count) {
        c.why = "sequence number out of range";
        return c;
    }
    if (!check_pattern(c.hdr.seq, p + kTestHdrLen, len - kTestHdrLen)) {
        c.why = "payload pattern damaged";
        return c;
    }
    c.verdict = prime ? Verdict::kPrime : Verdict::kOk;
    c.why = "";
    return c;
}

} // namespace

void fill_pattern(uint64_t seq, uint8_t* out, size_t len) noexcept {
    PatternGen g(seq);
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        const uint64_t v = g.next();
        std::memcpy(out + i, &v, 8);
    }
    if (i < len) {
        const uint64_t v = g.next();
        std::memcpy(out + i, &v, len - i);
    }
}

bool check_pattern(uint64_t seq, const uint8_t* data, size_t len) noexcept {
    PatternGen g(seq);
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        const uint64_t v = g.next();
        if (std::memcmp(data + i, &v, 8) != 0) {
            return false;
        }
    }
    if (i < len) {
        const uint64_t v = g.next();
        if (std::memcmp(data + i, &v, len - i) != 0) {
            return false;
        }
    }
    return true;
}

void build_data_frame(uint8_t* out, uint32_t size, const Mac& dst, const Mac& src, uint16_t tx_port,
                      uint64_t seq, bool prime) noexcept {
    put_eth(out, dst, src, kEtherTypeTest);
    put_header(out + kEthHdrLen, TestHeader{prime ? kMagicPrime : kMagic, 0, tx_port, seq, size});
    const uint32_t used = kEthHdrLen + kTestHdrLen;
    fill_pattern(seq, out + used, size - used);
}

Checked check_data_frame(std::span<const uint8_t> frame, uint32_t expect_size, uint64_t count) noexcept {
    Checked c;
    if (frame.size() < kEthHdrLen || get16be(frame.data() + 12) != kEtherTypeTest) {
        return c; // foreign
    }
    return check_payload(frame.data() + kEthHdrLen, frame.size() - kEthHdrLen,
                         static_cast<uint32_t>(frame.size()), expect_size, count);
}

uint16_t inet_checksum(const uint8_t* data, size_t len) noexcept {
    uint32_t sum = 0;
    size_t i = 0;
    for (; i + 1 < len; i += 2) {
        sum += get16be(data + i);
    }
    if (i < len) {
        sum += static_cast<uint32_t>(data[i]) << 8;
    }
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return static_cast<uint16_t>(~sum);
}

void build_echo_request(uint8_t* out, uint32_t size, const Mac& dst, const Mac& src, uint32_t src_ip,
                        uint32_t dst_ip, uint64_t seq) noexcept {
    put_eth(out, dst, src, kEtherTypeIpv4);
    uint8_t* ip = out + kEthHdrLen;
    const uint32_t ip_len = size - kEthHdrLen;
    ip[0] = 0x45; // version 4, 5 words
    ip[1] = 0;
    put16be(ip + 2, static_cast<uint16_t>(ip_len));
    put16be(ip + 4, static_cast<uint16_t>(seq));
    put16be(ip + 6, 0x4000); // DF
    ip[8] = 64;              // TTL
    ip[9] = 1;               // ICMP
    put16be(ip + 10, 0);
    put32be(ip + 12, src_ip);
    put32be(ip + 16, dst_ip);
    put16be(ip + 10, inet_checksum(ip, kIpHdrLen));

    uint8_t* icmp = ip + kIpHdrLen;
    const uint32_t icmp_len = ip_len - kIpHdrLen;
    icmp[0] = 8; // echo request
    icmp[1] = 0;
    put16be(icmp + 2, 0);
    put16be(icmp + 4, kIcmpIdent);
    put16be(icmp + 6, static_cast<uint16_t>(seq));
    uint8_t* payload = icmp + kIcmpHdrLen;
    put_header(payload, TestHeader{kMagic, 0, 0, seq, size});
    fill_pattern(seq, payload + kTestHdrLen, icmp_len - kIcmpHdrLen - kTestHdrLen);
    put16be(icmp + 2, inet_checksum(icmp, icmp_len));
}

Checked check_echo_reply(std::span<const uint8_t> frame, uint32_t expect_size, uint64_t count,
                         uint32_t own_ip, uint32_t peer_ip) noexcept {
    Checked c;
    const uint8_t* f = frame.data();
    const size_t n = frame.size();
    if (n < kEthHdrLen + kIpHdrLen || get16be(f + 12) != kEtherTypeIpv4) {
        return c;
    }
    const uint8_t* ip = f + kEthHdrLen;
    const size_t ihl = static_cast<size_t>(ip[0] & 0x0f) * 4;
    if ((ip[0] >> 4) != 4 || ihl < kIpHdrLen || n < kEthHdrLen + ihl + kIcmpHdrLen || ip[9] != 1 ||
        get32be(ip + 12) != peer_ip || get32be(ip + 16) != own_ip) {
        return c; // not ICMP between the two addresses
    }
    const uint8_t* icmp = ip + ihl;
    if (icmp[0] != 0 || get16be(icmp + 4) != kIcmpIdent) {
        return c; // not an echo reply to us
    }
    c.verdict = Verdict::kCorrupt;
    const size_t ip_len = get16be(ip + 2);
    if (ip_len < ihl + kIcmpHdrLen || kEthHdrLen + ip_len > n) {
        c.why = "IPv4 total length inconsistent with the frame";
        return c;
    }
    if (inet_checksum(ip, ihl) != 0) {
        c.why = "bad IPv4 header checksum";
        return c;
    }
    const size_t icmp_len = ip_len - ihl;
    if (inet_checksum(icmp, icmp_len) != 0) {
        c.why = "bad ICMP checksum";
        return c;
    }
    // The reply is as long as the request: the frame length the header
    // records is the request's, and Ethernet padding is not expected.
    c = check_payload(icmp + kIcmpHdrLen, icmp_len - kIcmpHdrLen,
                      static_cast<uint32_t>(kEthHdrLen + ip_len), expect_size, count);
    if (c.verdict == Verdict::kOk && get16be(icmp + 6) != static_cast<uint16_t>(c.hdr.seq)) {
        c.verdict = Verdict::kCorrupt;
        c.why = "ICMP sequence number differs from the payload's";
    }
    return c;
}

void build_arp(uint8_t* out, uint16_t op, const Mac& eth_dst, const Mac& sha, uint32_t spa,
               const Mac& tha, uint32_t tpa) noexcept {
    std::memset(out, 0, kArpFrameLen);
    put_eth(out, eth_dst, sha, kEtherTypeArp);
    uint8_t* a = out + kEthHdrLen;
    put16be(a, 1);      // Ethernet
    put16be(a + 2, kEtherTypeIpv4);
    a[4] = 6;
    a[5] = 4;
    put16be(a + 6, op);
    std::memcpy(a + 8, sha.data(), 6);
    put32be(a + 14, spa);
    std::memcpy(a + 18, tha.data(), 6);
    put32be(a + 24, tpa);
}

bool parse_arp(std::span<const uint8_t> frame, ArpInfo& info) noexcept {
    const uint8_t* f = frame.data();
    if (frame.size() < kEthHdrLen + 28 || get16be(f + 12) != kEtherTypeArp) {
        return false;
    }
    const uint8_t* a = f + kEthHdrLen;
    if (get16be(a) != 1 || get16be(a + 2) != kEtherTypeIpv4 || a[4] != 6 || a[5] != 4) {
        return false;
    }
    info.op = get16be(a + 6);
    std::memcpy(info.sha.data(), a + 8, 6);
    info.spa = get32be(a + 14);
    std::memcpy(info.tha.data(), a + 18, 6);
    info.tpa = get32be(a + 24);
    return true;
}

} // namespace vhost_traffic
