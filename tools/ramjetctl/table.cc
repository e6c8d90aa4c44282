#include "table.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "admin/char_writer.h"

namespace ramjet::ctl {

namespace {

void pad_cell(std::string& out, std::string_view cell, std::size_t width, bool right, bool last) {
  std::size_t pad = cell.size() < width ? width - cell.size() : 0;
  if (right) out.append(pad, ' ');
  out.append(cell);
  if (!right && !last) out.append(pad, ' ');
}

void render_row(std::string& out, const std::vector<Column>& columns,
                const std::vector<std::size_t>& widths, auto cell_at, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    if (i) out.append("  ");
    pad_cell(out, cell_at(i), widths[i], columns[i].right, i + 1 == n);
  }
  out.push_back('\n');
}

}  // namespace

void StreamTable::header(std::string& out) const {
  std::vector<std::size_t> widths;
  for (const auto& c : columns_) widths.push_back(c.width);
  render_row(
      out, columns_, widths, [&](std::size_t i) { return columns_[i].title; }, columns_.size());
}

void StreamTable::row(std::string& out, std::initializer_list<std::string_view> cells) const {
  std::size_t n = std::min(cells.size(), columns_.size());
  std::size_t bound = 1;
  auto it = cells.begin();
  for (std::size_t i = 0; i < n; ++i, ++it) bound += 2 + std::max(columns_[i].width, it->size());
  admin::CharWriter w(out, bound);
  it = cells.begin();
  for (std::size_t i = 0; i < n; ++i, ++it) {
    if (i) w.spaces(2);
    std::size_t pad = it->size() < columns_[i].width ? columns_[i].width - it->size() : 0;
    if (columns_[i].right) w.spaces(pad);
    w.raw(*it);
    if (!columns_[i].right && i + 1 < n) w.spaces(pad);
  }
  w.ch('\n');
}

std::string AutoTable::render() const {
  std::vector<std::size_t> widths;
  for (const auto& c : columns_) widths.push_back(std::max(c.width, c.title.size()));
  for (const auto& r : rows_)
    for (std::size_t i = 0; i < r.size() && i < widths.size(); ++i)
      widths[i] = std::max(widths[i], r[i].size());
  std::string out;
  render_row(
      out, columns_, widths, [&](std::size_t i) { return columns_[i].title; }, columns_.size());
  for (const auto& r : rows_)
    render_row(
        out, columns_, widths, [&](std::size_t i) { return std::string_view(r[i]); },
        std::min(r.size(), columns_.size()));
  return out;
}

char* format_bytes(char* p, std::uint64_t bytes) {
  if (bytes < 1024) return std::to_chars(p, p + kHumanMax, bytes).ptr;
  static constexpr char kUnits[] = "KMGTPE";
  double v = double(bytes) / 1024;
  std::size_t u = 0;
  while (v >= 1023.5 && u + 1 < sizeof kUnits - 1) {
    v /= 1024;
    ++u;
  }
  if (v < 9.95) {
    auto tenths = static_cast<unsigned>(std::llround(v * 10));
    p = std::to_chars(p, p + kHumanMax, tenths / 10).ptr;
    *p++ = '.';
    *p++ = static_cast<char>('0' + tenths % 10);
  } else {
    p = std::to_chars(p, p + kHumanMax, static_cast<unsigned long long>(std::llround(v))).ptr;
  }
  *p++ = kUnits[u];
  return p;
}

char* format_rate(char* p, double bps) {
  if (bps < 0.5) {
    *p++ = '0';
  } else {
    p = format_bytes(p, static_cast<std::uint64_t>(std::llround(bps)));
  }
  *p++ = '/';
  *p++ = 's';
  return p;
}

char* format_duration(char* p, std::uint64_t ms) {
  auto num = [&](std::uint64_t v, bool two_digits) {
    if (two_digits && v < 10) *p++ = '0';
    p = std::to_chars(p, p + kHumanMax, v).ptr;
  };
  if (ms < 1000) {
    num(ms, false);
    *p++ = 'm';
    *p++ = 's';
    return p;
  }
  std::uint64_t s = ms / 1000;
  auto two = [&](std::uint64_t big, char big_unit, std::uint64_t small, char small_unit) {
    num(big, false);
    *p++ = big_unit;
    num(small, true);
    *p++ = small_unit;
  };
  if (s < 60) {
    num(s, false);
    *p++ = 's';
  } else if (s < 3600) {
    two(s / 60, 'm', s % 60, 's');
  } else if (s < 86400) {
    two(s / 3600, 'h', s % 3600 / 60, 'm');
  } else {
    two(s / 86400, 'd', s % 86400 / 3600, 'h');
  }
  return p;
}

std::string human_bytes(std::uint64_t bytes) {
  char buf[kHumanMax];
  return {buf, format_bytes(buf, bytes)};
}

std::string human_rate(double bps) {
  char buf[kHumanMax];
  return {buf, format_rate(buf, bps)};
}

std::string human_duration(std::uint64_t ms) {
  char buf[kHumanMax];
  return {buf, format_duration(buf, ms)};
}

}  // namespace ramjet::ctl
