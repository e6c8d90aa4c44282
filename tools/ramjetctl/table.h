// Human output: column tables and compact units. Tables of unknown length (the
// flow list) use fixed widths so rows print as they stream; short tables size
// their columns to what they hold.
#pragma once

#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

namespace ramjet::ctl {

struct Column {
  std::string_view title;
  std::size_t width = 0;  // 0: sized to the contents (AutoTable only)
  bool right = false;     // numbers align right
};

// Fixed widths; a cell wider than its column pushes the rest of the row right.
class StreamTable {
 public:
  explicit StreamTable(std::vector<Column> columns) : columns_(std::move(columns)) {}
  void header(std::string& out) const;
  void row(std::string& out, std::initializer_list<std::string_view> cells) const;

 private:
  std::vector<Column> columns_;
};

// Collects rows, then prints them with each column as wide as its widest cell.
class AutoTable {
 public:
  explicit AutoTable(std::vector<Column> columns) : columns_(std::move(columns)) {}
  void add(std::vector<std::string> cells) { rows_.push_back(std::move(cells)); }
  bool empty() const { return rows_.empty(); }
  std::string render() const;

 private:
  std::vector<Column> columns_;
  std::vector<std::vector<std::string>> rows_;
};

// 999, 1.5K, 12M, 3.2G (powers of 1024, like ls -h).
std::string human_bytes(std::uint64_t bytes);
// 12K/s
std::string human_rate(double bytes_per_second);
// 850ms, 12s, 3m04s, 2h13m, 4d03h
std::string human_duration(std::uint64_t ms);

// The same into `p` (room for kHumanMax bytes); return the end. For rows that
// must not allocate.
inline constexpr std::size_t kHumanMax = 24;
char* format_bytes(char* p, std::uint64_t bytes);
char* format_rate(char* p, double bytes_per_second);
char* format_duration(char* p, std::uint64_t ms);

// Buffered standard output for large listings: one write per 64 KiB.
class Output {
 public:
  ~Output() { flush(); }
  std::string& buffer() { return buf_; }
  // Writes out the buffer when it is large; call after each appended record.
  void maybe_flush() {
    if (buf_.size() >= 64 * 1024) flush();
  }
  void flush() {
    if (!buf_.empty()) std::fwrite(buf_.data(), 1, buf_.size(), stdout);
    buf_.clear();
    std::fflush(stdout);
  }

 private:
  std::string buf_;
};

}  // namespace ramjet::ctl
