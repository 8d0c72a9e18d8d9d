#pragma once
// Aligned text tables for vhostctl's human-readable output: a header row,
// then rows; numbers are right-aligned, everything else left-aligned, columns
// two spaces apart.

#include <algorithm>
#include <string>
#include <vector>

namespace vhostctl {

class Table {
public:
    explicit Table(std::vector<std::string> header) : rows_{std::move(header)} {}

    void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }

    [[nodiscard]] std::string render() const {
        std::vector<size_t> width;
        for (const auto& row : rows_) {
            width.resize(std::max(width.size(), row.size()), 0);
            for (size_t i = 0; i < row.size(); ++i) {
                width[i] = std::max(width[i], row[i].size());
            }
        }
        std::string out;
        for (const auto& row : rows_) {
            std::string line;
            for (size_t i = 0; i < row.size(); ++i) {
                const size_t pad = width[i] - row[i].size();
                const bool last = i + 1 == row.size();
                if (is_number(row[i]) && &row != &rows_.front()) {
                    line.append(pad, ' ');
                    line += row[i];
                } else {
                    line += row[i];
                    if (!last) {
                        line.append(pad, ' ');
                    }
                }
                if (!last) {
                    line += "  ";
                }
            }
            while (!line.empty() && line.back() == ' ') {
                line.pop_back();
            }
            out += line + "\n";
        }
        return out;
    }

private:
    static bool is_number(const std::string& s) {
        return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
            return (c >= '0' && c <= '9') || c == '.' || c == '%';
        });
    }

    std::vector<std::vector<std::string>> rows_;
};

} // namespace vhostctl
