#pragma once
// Test frames of vhost-traffic: how they are built and how a received frame
// is checked. Pure byte-buffer code, no DPDK, so it is easy to reason about.
//
// A data frame (modes reflect and pair), `size` bytes in the mbuf (no FCS):
//
//   0  destination MAC (6)       6  source MAC (6)      12  ethertype 0x88B5
//   14 TestHeader (20 bytes, little endian): magic, flags (0), tx port, seq, len
//   34 pattern bytes derived from seq, up to `size`
//
// An ICMP frame (mode icmp) is an IPv4 echo request whose ICMP payload starts
// with the same TestHeader followed by the pattern; the echo reply carries the
// payload back unchanged.

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace vhost_traffic {

using Mac = std::array<uint8_t, 6>;

inline constexpr uint16_t kEtherTypeTest = 0x88B5; // IEEE local experimental 1
inline constexpr uint16_t kEtherTypeIpv4 = 0x0800;
inline constexpr uint16_t kEtherTypeArp = 0x0806;
inline constexpr uint32_t kMagic = 0x56485447;      // "VHTG": a counted test frame
inline constexpr uint32_t kMagicPrime = 0x56485450; // "VHTP": a priming frame, not counted
inline constexpr uint32_t kEthHdrLen = 14;
inline constexpr uint32_t kTestHdrLen = 20;
inline constexpr uint32_t kIpHdrLen = 20;
inline constexpr uint32_t kIcmpHdrLen = 8;
inline constexpr uint32_t kMinDataFrame = 60;       // Ethernet minimum without FCS
inline constexpr uint32_t kMinIcmpFrame = kEthHdrLen + kIpHdrLen + kIcmpHdrLen + kTestHdrLen;
inline constexpr uint16_t kIcmpIdent = 0x5654;      // "VT"

struct TestHeader {
    uint32_t magic;   // kMagic or kMagicPrime
    uint16_t flags;   // 0 (reserved)
    uint16_t tx_port;
    uint64_t seq;
    uint32_t len; // the whole frame's length as sent
};

// Writes `len` pattern bytes for sequence number `seq`.
void fill_pattern(uint64_t seq, uint8_t* out, size_t len) noexcept;
// True if `data` holds exactly the pattern of `seq`.
bool check_pattern(uint64_t seq, const uint8_t* data, size_t len) noexcept;

// A data frame of `size` bytes into `out` (which holds at least `size`).
// A priming frame (`prime`) carries kMagicPrime and is not part of the count.
void build_data_frame(uint8_t* out, uint32_t size, const Mac& dst, const Mac& src, uint16_t tx_port,
                      uint64_t seq, bool prime = false) noexcept;

enum class Verdict {
    kOk,       // an intact data frame; `hdr` is filled
    kPrime,    // an intact priming frame; `hdr` is filled
    kForeign,  // not one of ours (other ethertype / protocol): ignored
    kCorrupt,  // one of ours, damaged: `why` says how
};

struct Checked {
    Verdict verdict = Verdict::kForeign;
    TestHeader hdr{};
    const char* why = "";
};

// Checks a received data frame (modes reflect and pair). `count` bounds the
// sequence numbers; `expect_size` is the frame size that was sent.
Checked check_data_frame(std::span<const uint8_t> frame, uint32_t expect_size, uint64_t count) noexcept;

// ---- IPv4 / ICMP / ARP (mode icmp) ----------------------------------------

uint16_t inet_checksum(const uint8_t* data, size_t len) noexcept; // one's complement of the sum

// An echo request of `size` bytes. IPs are in host order.
void build_echo_request(uint8_t* out, uint32_t size, const Mac& dst, const Mac& src, uint32_t src_ip,
                        uint32_t dst_ip, uint64_t seq) noexcept;

// Checks a received frame for an echo reply from `peer_ip` to `own_ip`.
Checked check_echo_reply(std::span<const uint8_t> frame, uint32_t expect_size, uint64_t count,
                         uint32_t own_ip, uint32_t peer_ip) noexcept;

// ARP (Ethernet/IPv4). Frames are padded to 60 bytes.
inline constexpr uint32_t kArpFrameLen = 60;
void build_arp(uint8_t* out, uint16_t op, const Mac& eth_dst, const Mac& sha, uint32_t spa,
               const Mac& tha, uint32_t tpa) noexcept;

struct ArpInfo {
    uint16_t op = 0; // 1 request, 2 reply
    Mac sha{};
    uint32_t spa = 0;
    Mac tha{};
    uint32_t tpa = 0;
};
// True if `frame` is an Ethernet/IPv4 ARP packet; fills `info`.
bool parse_arp(std::span<const uint8_t> frame, ArpInfo& info) noexcept;

} // namespace vhost_traffic
