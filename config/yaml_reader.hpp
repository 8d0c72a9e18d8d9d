#pragma once
// Typed, error-collecting reading of a YAML tree: the half of the config
// loader that knows YAML but not vhostd's schema (config.cpp has the schema).
// Every reader that finds a problem records `FILE:LINE:COLUMN: FIELD: what`
// and returns nothing; the walk goes on, so one run reports every problem.
// Internal to config/.

#include <yaml-cpp/yaml.h>

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "protocol/result.hpp"

namespace vhostd::config::yaml {

using YAML::Node;
using YAML::NodeType;

constexpr std::size_t kMaxErrors = 20;
constexpr std::size_t kMaxShownValue = 80;
// yaml-cpp's tag for a plain (unquoted, untagged) scalar, for a quoted one,
// and the explicit `!!int`.
constexpr std::string_view kPlainTag = "?";
constexpr std::string_view kQuotedTag = "!";
constexpr std::string_view kIntTag = "tag:yaml.org,2002:int";

// What a node is, for "expected a mapping, got a list".
const char* describe(const Node& node);
// A scalar as quoted in an error, shortened.
std::string shown(std::string_view value);
// "a.b" and "a[3]": field paths in errors.
std::string child(const std::string& path, std::string_view key);
std::string element(const std::string& path, std::size_t index);
int line_of(const Node& node);
std::size_t edit_distance(std::string_view a, std::string_view b);
std::string join(std::span<const std::string_view> words);

template <typename E>
struct Choice {
    std::string_view word;
    E value;
};

template <typename E, std::size_t N>
const char* word_of(const std::array<Choice<E>, N>& choices, E value) {
    for (const auto& c : choices) {
        if (c.value == value) {
            return c.word.data();  // the literals above are NUL-terminated
        }
    }
    return "?";
}

// A node and where to point at it in an error. yaml-cpp marks an empty value
// (`key:` then a newline) at the next token, often on the next line; such a
// value is pointed at through its key instead.
struct Value {
    Value(const Node& n) : node(n), mark(n.Mark()) {}  // NOLINT: implicit on purpose
    Value(const Node& n, const YAML::Mark& m) : node(n), mark(m) {}

    Node node;
    YAML::Mark mark;
};

// One key: value pair of a mapping.
struct Entry {
    Entry(const Node& k, const Node& v) : key(k), value(v.IsNull() ? Value(v, k.Mark()) : Value(v)) {}

    Node key;
    Value value;
};

// A mapping whose keys have been checked against the schema. Unknown and
// duplicate keys have already been reported; the first of each known key is
// kept.
struct Map {
    Node node;
    std::string path;
    std::vector<std::pair<std::string, Entry>> entries;

    [[nodiscard]] std::optional<Entry> get(std::string_view key) const {
        for (const auto& [name, entry] : entries) {
            if (name == key) {
                return entry;
            }
        }
        return std::nullopt;
    }
};

struct Problem {
    int line;
    int column;
    std::string text;
};

class Reader {
public:
    explicit Reader(std::string source) : source_(std::move(source)) {}

protected:
    // Every problem recorded so far, sorted by position, as one error.
    [[nodiscard]] Error collected_errors();

    // --- error reporting -------------------------------------------------
    void fail(const YAML::Mark& mark, const std::string& field, const std::string& what);
    void fail(const Value& at, const std::string& field, const std::string& what) {
        fail(at.mark, field, what);
    }
    // For scalars: appends the offending value.
    void fail_value(const Value& at, const std::string& field, const std::string& what) {
        fail(at.mark, field, what + " (" + shown(at.node.Scalar()) + ")");
    }

    // --- typed readers: report and return nullopt on any problem ---------
    std::optional<Map> read_map(const Value& value, const std::string& path,
                                std::span<const std::string_view> allowed);
    bool expect_list(const Value& value, const std::string& field);
    std::optional<std::string> read_string(const Value& value, const std::string& field);
    std::optional<uint64_t> read_uint(const Value& value, const std::string& field, uint64_t min,
                                      uint64_t max);
    template <typename E, std::size_t N>
    std::optional<E> read_choice(const Value& value, const std::string& field,
                                 const std::array<Choice<E>, N>& choices);

    std::string source_;
    std::vector<Problem> problems_;
    std::size_t dropped_ = 0;
};

template <typename E, std::size_t N>
std::optional<E> Reader::read_choice(const Value& value, const std::string& field,
                                     const std::array<Choice<E>, N>& choices) {
    const Node& node = value.node;
    std::string words;
    for (const auto& c : choices) {
        words += words.empty() ? "" : ", ";
        words += c.word;
    }
    if (!node.IsScalar()) {
        fail(value, field, "expected one of " + words + ", got " + describe(node));
        return std::nullopt;
    }
    for (const auto& c : choices) {
        if (node.Scalar() == c.word) {
            return c.value;
        }
    }
    fail_value(value, field, "must be one of " + words);
    return std::nullopt;
}

} // namespace vhostd::config::yaml
