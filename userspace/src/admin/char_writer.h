// Appends text to a std::string through a raw pointer. The caller states an
// upper bound of what it will write; within it, no write checks capacity. The
// flow list prints a million rows, and std::string's checked appends were most
// of its cost.
#pragma once

#include <cassert>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "ramjet/net.h"

namespace ramjet::admin {

class CharWriter {
 public:
  // Upper bounds of what the writes below produce.
  static constexpr std::size_t kU64 = 20;
  static constexpr std::size_t kAddr = 48;  // "[v6]:port"
  static std::size_t json_str_bound(std::string_view s) { return 6 * s.size() + 2; }

  // Makes room for `bound` more bytes at the end of `out`; the destructor trims
  // `out` to what was written.
  CharWriter(std::string& out, std::size_t bound) : out_(out) {
    std::size_t start = out.size();
    out.resize(start + bound);
    p_ = out.data() + start;
    end_ = p_ + bound;
  }
  ~CharWriter() { out_.resize(static_cast<std::size_t>(p_ - out_.data())); }
  CharWriter(const CharWriter&) = delete;
  CharWriter& operator=(const CharWriter&) = delete;

  template <std::size_t N>
  void lit(const char (&s)[N]) {
    raw({s, N - 1});
  }
  void raw(std::string_view s) {
    assert(p_ + s.size() <= end_);
    std::memcpy(p_, s.data(), s.size());
    p_ += s.size();
  }
  void ch(char c) {
    assert(p_ < end_);
    *p_++ = c;
  }
  void spaces(std::size_t n) {
    assert(p_ + n <= end_);
    std::memset(p_, ' ', n);
    p_ += n;
  }
  void u64(std::uint64_t v) { p_ = std::to_chars(p_, p_ + kU64, v).ptr; }

  // A JSON string literal, escaped.
  void json_str(std::string_view s) {
    static constexpr char kHex[] = "0123456789abcdef";
    ch('"');
    for (char c : s) {
      auto u = static_cast<unsigned char>(c);
      if (c == '"' || c == '\\') {
        ch('\\');
        ch(c);
      } else if (u < 0x20) {
        lit("\\u00");
        ch(kHex[u >> 4]);
        ch(kHex[u & 15]);
      } else {
        ch(c);
      }
    }
    ch('"');
  }

  // "1.2.3.4:80" or "[::1]:80".
  void addr(const SocketAddress& a) {
    assert(p_ + kAddr <= end_);
    p_ = format_addr(p_, a);
  }
  // The same into `p` (room for kAddr bytes); returns the end.
  static char* format_addr(char* p, const SocketAddress& a) {
    if (a.ip().is_v4()) {
      const std::uint8_t* b = a.ip().data();
      for (int i = 0; i < 4; ++i) {
        if (i) *p++ = '.';
        p = std::to_chars(p, p + 3, b[i]).ptr;
      }
    } else {
      *p++ = '[';
      ::inet_ntop(AF_INET6, a.ip().data(), p, INET6_ADDRSTRLEN);
      p += std::strlen(p);
      *p++ = ']';
    }
    *p++ = ':';
    return std::to_chars(p, p + 5, a.port()).ptr;
  }

  char* pos() const { return p_; }

 private:
  std::string& out_;
  char* p_;
  char* end_;
};

}  // namespace ramjet::admin
