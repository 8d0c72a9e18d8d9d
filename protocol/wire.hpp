#pragma once
// vhost-user wire format, as QEMU docs/interop/vhost-user.rst defines it
// ("Message Specification"). Plain structs, host (little-endian x86) layout,
// with the sizes and offsets pinned by static_assert so a change that would
// alter the wire is caught at compile time.

#include <cstddef>
#include <cstdint>

namespace vhostd::protocol {

// "Header": request (u32), flags (u32), size (u32) of the payload that follows.
struct MsgHeader {
    uint32_t request;
    uint32_t flags;
    uint32_t size;
};
static_assert(sizeof(MsgHeader) == 12);
static_assert(offsetof(MsgHeader, flags) == 4);
static_assert(offsetof(MsgHeader, size) == 8);

// Header flags: bits 0-1 version (must be 0x1), bit 2 reply, bit 3 need_reply.
inline constexpr uint32_t kFlagVersionMask = 0x3;
inline constexpr uint32_t kFlagVersion1 = 0x1;
inline constexpr uint32_t kFlagReply = 1u << 2;
inline constexpr uint32_t kFlagNeedReply = 1u << 3;
inline constexpr uint32_t kFlagKnownMask = kFlagVersionMask | kFlagReply | kFlagNeedReply;

// Largest payload vhostd accepts. The biggest request it handles is
// SET_MEM_TABLE with 8 regions (8 + 8*32 = 264 bytes); GET_CONFIG/SET_CONFIG
// would be 12 + 256. Anything larger is refused before its body is read.
inline constexpr uint32_t kMaxPayload = 4096;

// Front-end -> back-end request codes ("Front-end message types").
enum class Request : uint32_t {
    None = 0,
    GetFeatures = 1,
    SetFeatures = 2,
    SetOwner = 3,
    ResetOwner = 4,
    SetMemTable = 5,
    SetLogBase = 6,
    SetLogFd = 7,
    SetVringNum = 8,
    SetVringAddr = 9,
    SetVringBase = 10,
    GetVringBase = 11,
    SetVringKick = 12,
    SetVringCall = 13,
    SetVringErr = 14,
    GetProtocolFeatures = 15,
    SetProtocolFeatures = 16,
    GetQueueNum = 17,
    SetVringEnable = 18,
    SendRarp = 19,
    NetSetMtu = 20,
    SetBackendReqFd = 21,
    IotlbMsg = 22,
    SetVringEndian = 23,
    GetConfig = 24,
    SetConfig = 25,
    CreateCryptoSession = 26,
    CloseCryptoSession = 27,
    PostcopyAdvise = 28,
    PostcopyListen = 29,
    PostcopyEnd = 30,
    GetInflightFd = 31,
    SetInflightFd = 32,
    GpuSetSocket = 33,
    ResetDevice = 34,
    VringKick = 35,
    GetMaxMemSlots = 36,
    AddMemReg = 37,
    RemMemReg = 38,
    SetStatus = 39,
    GetStatus = 40,
    GetSharedObject = 41,
    SetDeviceStateFd = 42,
    CheckDeviceState = 43,
    Max = 44,
};

// Protocol feature bits ("Protocol features").
namespace pf {
inline constexpr unsigned kMq = 0;
inline constexpr unsigned kLogShmfd = 1;
inline constexpr unsigned kRarp = 2;
inline constexpr unsigned kReplyAck = 3;
inline constexpr unsigned kMtu = 4;
inline constexpr unsigned kBackendReq = 5;
inline constexpr unsigned kCrossEndian = 6;
inline constexpr unsigned kCryptoSession = 7;
inline constexpr unsigned kPagefault = 8;
inline constexpr unsigned kConfig = 9;
inline constexpr unsigned kBackendSendFd = 10;
inline constexpr unsigned kHostNotifier = 11;
inline constexpr unsigned kInflightShmfd = 12;
inline constexpr unsigned kResetDevice = 13;
inline constexpr unsigned kInbandNotifications = 14;
inline constexpr unsigned kConfigureMemSlots = 15;
inline constexpr unsigned kStatus = 16;
} // namespace pf

// Virtio feature bits that matter to the vhost-user transport or to virtio-net
// (VIRTIO 1.2 §5.1.3, §6; vhost-user.rst).
namespace vf {
inline constexpr unsigned kNetCsum = 0;
inline constexpr unsigned kNetGuestCsum = 1;
inline constexpr unsigned kNetMtu = 3;
inline constexpr unsigned kNetMac = 5;
inline constexpr unsigned kNetMrgRxbuf = 15;
inline constexpr unsigned kNetStatus = 16;
inline constexpr unsigned kNetCtrlVq = 17;
inline constexpr unsigned kNetGuestAnnounce = 21;
inline constexpr unsigned kNetMq = 22;
inline constexpr unsigned kNotifyOnEmpty = 24;
inline constexpr unsigned kLogAll = 26;           // VHOST_F_LOG_ALL
inline constexpr unsigned kAnyLayout = 27;
inline constexpr unsigned kRingIndirectDesc = 28;
inline constexpr unsigned kRingEventIdx = 29;
inline constexpr unsigned kProtocolFeatures = 30; // VHOST_USER_F_PROTOCOL_FEATURES
inline constexpr unsigned kVersion1 = 32;
inline constexpr unsigned kAccessPlatform = 33;
inline constexpr unsigned kRingPacked = 34;
inline constexpr unsigned kInOrder = 35;
} // namespace vf

inline constexpr uint64_t bit(unsigned n) { return uint64_t{1} << n; }

// "A vring state description".
struct VringState {
    uint32_t index;
    uint32_t num;
};
static_assert(sizeof(VringState) == 8);

// "A vring address description". Addresses are front-end virtual addresses.
struct VringAddr {
    uint32_t index;
    uint32_t flags; // bit 0: VHOST_VRING_F_LOG
    uint64_t desc_user_addr;
    uint64_t used_user_addr;
    uint64_t avail_user_addr;
    uint64_t log_guest_addr;
};
static_assert(sizeof(VringAddr) == 40);
static_assert(offsetof(VringAddr, desc_user_addr) == 8);
static_assert(offsetof(VringAddr, used_user_addr) == 16);
static_assert(offsetof(VringAddr, avail_user_addr) == 24);
static_assert(offsetof(VringAddr, log_guest_addr) == 32);
inline constexpr uint32_t kVringFlagLog = 1;

// "Memory region description".
struct MemRegionWire {
    uint64_t guest_phys_addr;
    uint64_t memory_size;
    uint64_t userspace_addr;
    uint64_t mmap_offset;
};
static_assert(sizeof(MemRegionWire) == 32);

// "Multiple Memory regions description": num_regions, padding, regions[].
struct MemTableHeaderWire {
    uint32_t num_regions;
    uint32_t padding;
};
static_assert(sizeof(MemTableHeaderWire) == 8);
// SET_MEM_TABLE carries at most this many regions (VHOST_MEMORY_BASELINE_NREGIONS).
inline constexpr uint32_t kMaxMemTableRegions = 8;

// "Single memory region description" (ADD_MEM_REG / REM_MEM_REG): padding, region.
struct SingleMemRegionWire {
    uint64_t padding;
    MemRegionWire region;
};
static_assert(sizeof(SingleMemRegionWire) == 40);

// "Log description" (SET_LOG_BASE).
struct LogWire {
    uint64_t mmap_size;
    uint64_t mmap_offset;
};
static_assert(sizeof(LogWire) == 16);

// SET_VRING_KICK / CALL / ERR payload: bits 0-7 index, bit 8 "no fd" (polling).
inline constexpr uint64_t kVringIndexMask = 0xff;
inline constexpr uint64_t kVringNoFdFlag = 1u << 8;

// Virtio device status bits (VIRTIO 1.2 §2.1), for SET_STATUS / GET_STATUS.
inline constexpr uint8_t kStatusAcknowledge = 1;
inline constexpr uint8_t kStatusDriver = 2;
inline constexpr uint8_t kStatusDriverOk = 4;
inline constexpr uint8_t kStatusFeaturesOk = 8;
inline constexpr uint8_t kStatusNeedsReset = 64;
inline constexpr uint8_t kStatusFailed = 128;

// Largest virtqueue size (VIRTIO 1.2 §2.7: Queue Size ≤ 32768, a power of 2).
inline constexpr uint32_t kMaxQueueSize = 32768;

// Memory slots offered through CONFIGURE_MEM_SLOTS (GET_MAX_MEM_SLOTS).
inline constexpr uint64_t kMaxMemSlots = 509;

// Largest number of file descriptors one message may carry. Anything beyond
// this arrives truncated (MSG_CTRUNC) and fails the message.
inline constexpr unsigned kMaxFdsPerMessage = 8;

const char* request_name(Request r) noexcept;
const char* request_name(uint32_t code) noexcept;

} // namespace vhostd::protocol
