#pragma once
// FuzzInput: reads typed values off the front of a fuzzer's byte string.
// Past the end every value reads as zero, so a target never has to check
// lengths and a short input is simply a program that stops early. Shared by
// every fuzz target in tests/fuzz/ and by the seed writer, which encodes
// seeds with FuzzOutput in exactly the layout the targets read.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>
#include <vector>

namespace vhostd::fuzz {

class FuzzInput {
public:
    FuzzInput(const uint8_t* data, size_t size) noexcept : data_(data), size_(size) {}

    [[nodiscard]] bool empty() const noexcept { return pos_ >= size_; }
    [[nodiscard]] size_t remaining() const noexcept { return empty() ? 0 : size_ - pos_; }

    // A trivially copyable value, little-endian as laid out in memory.
    template <typename T>
    T take() noexcept {
        static_assert(std::is_trivially_copyable_v<T>);
        T value{};
        const size_t n = std::min(sizeof(T), remaining());
        if (n != 0) {
            std::memcpy(&value, data_ + pos_, n);
        }
        pos_ += sizeof(T);
        return value;
    }

    // Everything not read yet.
    std::span<const uint8_t> rest() noexcept {
        std::span<const uint8_t> out(data_ + std::min(pos_, size_), remaining());
        pos_ = size_;
        return out;
    }

private:
    const uint8_t* data_;
    size_t size_;
    size_t pos_ = 0;
};

// The writing side, for seeds.
class FuzzOutput {
public:
    template <typename T>
    FuzzOutput& put(const T& value) {
        static_assert(std::is_trivially_copyable_v<T>);
        const auto* p = reinterpret_cast<const uint8_t*>(&value);
        bytes_.insert(bytes_.end(), p, p + sizeof(T));
        return *this;
    }
    FuzzOutput& put_bytes(std::span<const uint8_t> bytes) {
        bytes_.insert(bytes_.end(), bytes.begin(), bytes.end());
        return *this;
    }
    [[nodiscard]] const std::vector<uint8_t>& bytes() const noexcept { return bytes_; }

private:
    std::vector<uint8_t> bytes_;
};

} // namespace vhostd::fuzz
