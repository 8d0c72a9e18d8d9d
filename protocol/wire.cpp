#include "protocol/wire.hpp"

namespace vhostd::protocol {

const char* request_name(Request r) noexcept {
    switch (r) {
    case Request::None: return "NONE";
    case Request::GetFeatures: return "GET_FEATURES";
    case Request::SetFeatures: return "SET_FEATURES";
    case Request::SetOwner: return "SET_OWNER";
    case Request::ResetOwner: return "RESET_OWNER";
    case Request::SetMemTable: return "SET_MEM_TABLE";
    case Request::SetLogBase: return "SET_LOG_BASE";
    case Request::SetLogFd: return "SET_LOG_FD";
    case Request::SetVringNum: return "SET_VRING_NUM";
    case Request::SetVringAddr: return "SET_VRING_ADDR";
    case Request::SetVringBase: return "SET_VRING_BASE";
    case Request::GetVringBase: return "GET_VRING_BASE";
    case Request::SetVringKick: return "SET_VRING_KICK";
    case Request::SetVringCall: return "SET_VRING_CALL";
    case Request::SetVringErr: return "SET_VRING_ERR";
    case Request::GetProtocolFeatures: return "GET_PROTOCOL_FEATURES";
    case Request::SetProtocolFeatures: return "SET_PROTOCOL_FEATURES";
    case Request::GetQueueNum: return "GET_QUEUE_NUM";
    case Request::SetVringEnable: return "SET_VRING_ENABLE";
    case Request::SendRarp: return "SEND_RARP";
    case Request::NetSetMtu: return "NET_SET_MTU";
    case Request::SetBackendReqFd: return "SET_BACKEND_REQ_FD";
    case Request::IotlbMsg: return "IOTLB_MSG";
    case Request::SetVringEndian: return "SET_VRING_ENDIAN";
    case Request::GetConfig: return "GET_CONFIG";
    case Request::SetConfig: return "SET_CONFIG";
    case Request::CreateCryptoSession: return "CREATE_CRYPTO_SESSION";
    case Request::CloseCryptoSession: return "CLOSE_CRYPTO_SESSION";
    case Request::PostcopyAdvise: return "POSTCOPY_ADVISE";
    case Request::PostcopyListen: return "POSTCOPY_LISTEN";
    case Request::PostcopyEnd: return "POSTCOPY_END";
    case Request::GetInflightFd: return "GET_INFLIGHT_FD";
    case Request::SetInflightFd: return "SET_INFLIGHT_FD";
    case Request::GpuSetSocket: return "GPU_SET_SOCKET";
    case Request::ResetDevice: return "RESET_DEVICE";
    case Request::VringKick: return "VRING_KICK";
    case Request::GetMaxMemSlots: return "GET_MAX_MEM_SLOTS";
    case Request::AddMemReg: return "ADD_MEM_REG";
    case Request::RemMemReg: return "REM_MEM_REG";
    case Request::SetStatus: return "SET_STATUS";
    case Request::GetStatus: return "GET_STATUS";
    case Request::GetSharedObject: return "GET_SHARED_OBJECT";
    case Request::SetDeviceStateFd: return "SET_DEVICE_STATE_FD";
    case Request::CheckDeviceState: return "CHECK_DEVICE_STATE";
    case Request::Max: break;
    }
    return "UNKNOWN";
}

const char* request_name(uint32_t code) noexcept {
    if (code >= static_cast<uint32_t>(Request::Max)) {
        return "UNKNOWN";
    }
    return request_name(static_cast<Request>(code));
}

} // namespace vhostd::protocol
