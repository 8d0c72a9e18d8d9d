#include "config/yaml_reader.hpp"

#include <algorithm>
#include <charconv>
#include <limits>

namespace vhostd::config::yaml {

const char* describe(const Node& node) {
    switch (node.Type()) {
    case NodeType::Undefined:
        return "nothing";
    case NodeType::Null:
        return "null";
    case NodeType::Scalar:
        return "a scalar";
    case NodeType::Sequence:
        return "a list";
    case NodeType::Map:
        return "a mapping";
    }
    return "an unknown node";
}

// A value as it appears in an error: one line, bounded, control bytes escaped,
// because an error message must stay one line whatever the file contains.
std::string shown(std::string_view value) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (std::size_t i = 0; i < value.size(); ++i) {
        if (out.size() >= kMaxShownValue) {
            out += "...";
            break;
        }
        auto c = static_cast<unsigned char>(value[i]);
        if (c < 0x20 || c == 0x7f) {
            out += "\\x";
            out += kHex[c >> 4];
            out += kHex[c & 0xf];
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}

std::string child(const std::string& path, std::string_view key) {
    if (path.empty()) {
        return std::string(key);
    }
    return path + "." + std::string(key);
}

std::string element(const std::string& path, std::size_t index) {
    return path + "[" + std::to_string(index) + "]";
}

int line_of(const Node& node) {
    return node.Mark().is_null() ? 1 : node.Mark().line + 1;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) {
        row[j] = j;
    }
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            std::size_t above = row[j];
            std::size_t substitute = diagonal + (a[i - 1] == b[j - 1] ? 0 : 1);
            row[j] = std::min({above + 1, row[j - 1] + 1, substitute});
            diagonal = above;
        }
    }
    return row[b.size()];
}

std::string join(std::span<const std::string_view> words) {
    std::string out;
    for (std::string_view w : words) {
        if (!out.empty()) {
            out += ", ";
        }
        out += w;
    }
    return out;
}

void Reader::fail(const YAML::Mark& mark, const std::string& field, const std::string& what) {
    if (problems_.size() >= kMaxErrors) {
        ++dropped_;
        return;
    }
    int line = mark.is_null() ? 1 : mark.line + 1;
    int column = mark.is_null() ? 1 : mark.column + 1;
    std::string text = source_ + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " +
                       (field.empty() ? std::string("(top level)") : field) + ": " + what;
    problems_.push_back(Problem{line, column, std::move(text)});
}

std::optional<Map> Reader::read_map(const Value& value, const std::string& path,
                                    std::span<const std::string_view> allowed) {
    const Node& node = value.node;
    if (!node.IsMap()) {
        fail(value, path, std::string("expected a mapping, got ") + describe(node));
        return std::nullopt;
    }
    Map map{node, path, {}};
    for (const auto& pair : node) {
        // Copies of the handles (cheap): the iterator's value is a temporary.
        const Node key = pair.first;
        const Node item = pair.second;
        if (!key.IsScalar()) {
            fail(key, path, std::string("keys must be plain words, got ") + describe(key));
            continue;
        }
        const std::string& name = key.Scalar();
        std::string field = child(path, name);
        if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
            std::string what = "unknown key";
            std::string_view best;
            // Suggest only near misses: a typo or two, or a shortened word.
            std::size_t best_distance = 3;
            for (std::string_view candidate : allowed) {
                std::size_t d = edit_distance(name, candidate);
                bool shortened = name.size() >= 3 && candidate.starts_with(name);
                if (d < best_distance || (best.empty() && shortened)) {
                    best_distance = d;
                    best = candidate;
                }
            }
            if (!best.empty()) {
                what += ", did you mean '" + std::string(best) + "'?";
            }
            what += " (allowed here: " + join(allowed) + ")";
            fail(key, shown(field), what);
            continue;
        }
        if (auto first = map.get(name)) {
            fail(key, field,
                 "duplicate key, first given at line " + std::to_string(line_of(first->key)));
            continue;
        }
        map.entries.emplace_back(name, Entry(key, item));
    }
    return map;
}

bool Reader::expect_list(const Value& value, const std::string& field) {
    const Node& node = value.node;
    if (!node.IsSequence()) {
        fail(value, field, std::string("expected a list, got ") + describe(node));
        return false;
    }
    return true;
}

std::optional<std::string> Reader::read_string(const Value& value, const std::string& field) {
    const Node& node = value.node;
    if (!node.IsScalar()) {
        fail(value, field, std::string("expected a string, got ") + describe(node));
        return std::nullopt;
    }
    return node.Scalar();
}

std::optional<uint64_t> Reader::read_uint(const Value& value, const std::string& field, uint64_t min,
                                          uint64_t max) {
    const Node& node = value.node;
    std::string range = std::to_string(min) + ".." + std::to_string(max);
    if (!node.IsScalar()) {
        fail(value, field, "expected an integer " + range + ", got " + describe(node));
        return std::nullopt;
    }
    const std::string& text = node.Scalar();
    if (node.Tag() == kQuotedTag) {
        fail_value(value, field, "expected an integer, got a quoted string");
        return std::nullopt;
    }
    if (node.Tag() != kPlainTag && node.Tag() != kIntTag) {
        fail_value(value, field, "expected an integer, got a value tagged " + shown(node.Tag()));
        return std::nullopt;
    }
    if (!text.empty() && text[0] == '-') {
        fail_value(value, field, "must not be negative, must be " + range);
        return std::nullopt;
    }
    bool digits = !text.empty() && std::all_of(text.begin(), text.end(),
                                               [](char c) { return c >= '0' && c <= '9'; });
    if (!digits) {
        fail_value(value, field, "expected a decimal integer " + range);
        return std::nullopt;
    }
    // YAML 1.1 reads a leading 0 as octal, YAML 1.2 does not; refuse to guess.
    if (text.size() > 1 && text[0] == '0') {
        fail_value(value, field, "has a leading zero, which YAML 1.1 reads as octal; write it without");
        return std::nullopt;
    }
    uint64_t number = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
    if (ec != std::errc() || end != text.data() + text.size() || number < min || number > max) {
        fail_value(value, field, "out of range, must be " + range);
        return std::nullopt;
    }
    return number;
}

Error Reader::collected_errors() {
    std::stable_sort(problems_.begin(), problems_.end(), [](const Problem& a, const Problem& b) {
        return a.line != b.line ? a.line < b.line : a.column < b.column;
    });
    std::string message;
    for (const Problem& p : problems_) {
        if (!message.empty()) {
            message += '\n';
        }
        message += p.text;
    }
    if (dropped_ > 0) {
        message += "\n" + source_ + ": " + std::to_string(dropped_) + " more error(s) not shown";
    }
    return Error{std::move(message)};
}

} // namespace vhostd::config::yaml
