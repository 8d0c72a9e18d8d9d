#include "virtio/net_hdr.hpp"

#include <algorithm>
#include <cstring>

#include "virtio/guest_access.hpp"

namespace vhostd::virtio {

std::optional<FrameView> skip_net_header(std::span<const Piece> pieces, uint32_t total_len,
                                         uint32_t hdr_len) noexcept {
    if (total_len < hdr_len) {
        return std::nullopt;
    }
    size_t i = 0;
    uint32_t skip = hdr_len;
    // Whole pieces inside the header; a piece that ends exactly where the
    // header ends is skipped too, so a non-empty payload starts inside pieces[i].
    while (i < pieces.size() && skip >= pieces[i].len) {
        skip -= pieces[i].len;
        ++i;
    }
    if (i == pieces.size() && skip != 0) {
        return std::nullopt;  // total_len claimed more bytes than the pieces hold
    }
    return FrameView{pieces.subspan(i), skip, total_len - hdr_len};
}

std::optional<VirtioNetHdrMrg> read_net_header(std::span<const Piece> pieces, uint32_t hdr_len) noexcept {
    if (hdr_len != kNetHdrLen && hdr_len != kNetHdrMrgLen) {
        return std::nullopt;
    }
    uint8_t bytes[sizeof(VirtioNetHdrMrg)] = {};
    uint32_t got = 0;
    for (size_t i = 0; i < pieces.size() && got < hdr_len; ++i) {
        const uint32_t take = std::min(pieces[i].len, hdr_len - got);
        std::memcpy(bytes + got, pieces[i].host, take);
        got += take;
    }
    detail::compiler_barrier();  // the copy is final; see guest_access.hpp
    if (got < hdr_len) {
        return std::nullopt;
    }
    VirtioNetHdrMrg hdr;
    std::memcpy(&hdr, bytes, sizeof(hdr));
    return hdr;
}

uint32_t copy_frame(const FrameView& frame, uint8_t* dst, uint32_t dst_len) noexcept {
    const uint32_t want = std::min(frame.len, dst_len);
    uint32_t done = 0;
    uint32_t offset = frame.offset;
    for (size_t i = 0; i < frame.pieces.size() && done < want; ++i) {
        const Piece& p = frame.pieces[i];
        if (offset >= p.len) {  // only for a malformed view; keeps the copy in bounds
            offset -= p.len;
            continue;
        }
        const uint32_t take = std::min(p.len - offset, want - done);
        std::memcpy(dst + done, p.host + offset, take);
        done += take;
        offset = 0;
    }
    return done;
}

} // namespace vhostd::virtio
