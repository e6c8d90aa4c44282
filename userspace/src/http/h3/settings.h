// SETTINGS_H3_DATAGRAM (RFC 9297 2.1.1) on top of nghttp3 0.8, which does not know it:
// nghttp3 neither sends the setting nor tells us whether the peer did. Both are done here,
// on the bytes of the control streams, outside nghttp3 and without changing what it sees:
//
//  - our control stream: nghttp3 writes the stream type (0x00) and its SETTINGS frame
//    first (RFC 9114 6.2.1, 7.2.4). ControlStreamRewrite gives QUIC a rewritten copy of
//    that prefix with 0x33 = 1 appended, and maps QUIC's write and ack offsets back to
//    nghttp3's, so nghttp3's own accounting (what it frees, what it offers next) stays
//    exactly as if its bytes had gone out unchanged;
//  - the peer's control stream: PeerSettings reads the first frame of each peer
//    unidirectional stream of type 0x00 before the bytes go on to nghttp3 untouched.
//
// Why a rewrite and not a second SETTINGS frame: RFC 9114 7.2.4 allows exactly one, and it
// must be the first frame of the control stream, which nghttp3 writes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

namespace ramjet::http::h3 {

inline constexpr std::uint64_t kStreamTypeControl = 0x00;   // RFC 9114 6.2.1
inline constexpr std::uint64_t kFrameSettings = 0x04;       // RFC 9114 7.2.4
inline constexpr std::uint64_t kSettingsH3Datagram = 0x33;  // RFC 9297 2.1.1
// A SETTINGS frame longer than this is not read for H3_DATAGRAM (nghttp3 still gets it);
// real ones are a few dozen bytes.
inline constexpr std::size_t kMaxSettingsFrame = 4096;

using Setting = std::pair<std::uint64_t, std::uint64_t>;  // identifier, value

// The start of a unidirectional stream: its type and, on a control stream, the SETTINGS
// frame that must come first.
struct ControlPrefix {
  enum class Status : std::uint8_t {
    kNeedMore,    // the bytes end before the SETTINGS frame does
    kSettings,    // a control stream: `size` bytes of type + SETTINGS, `settings` in order
    kNotControl,  // another stream type (QPACK, push, grease...)
    kError,       // first frame not SETTINGS, a bad setting list, or over kMaxSettingsFrame
  };
  Status status = Status::kNeedMore;
  std::size_t size = 0;
  std::vector<Setting> settings;
  std::string_view reason;  // kError
};

// Parses from the first byte of a unidirectional stream.
ControlPrefix parse_control_prefix(std::span<const std::uint8_t> bytes);

// Stream type 0x00 then one SETTINGS frame with `settings`, in order (smallest varints).
std::vector<std::uint8_t> encode_control_prefix(const std::vector<Setting>& settings);

// What a peer's settings say about HTTP datagrams: RFC 9297 2.1.1 allows 0 and 1; any
// other value is an error, and we then treat the peer as not supporting them.
bool h3_datagram_enabled(const std::vector<Setting>& settings);

// Our control stream between nghttp3 and QUIC. nghttp3 offers bytes from its write
// offset; the rewrite replaces its prefix (type + SETTINGS) with ours, with one setting
// added. Offsets: QUIC offset q is nghttp3 offset 0 while q < ours.size() (nghttp3's
// prefix counts as written, and as acknowledged, only once all of ours is), then
// q - ours.size() + theirs.size(). So nghttp3 keeps offering its prefix (which is
// skipped) until ours is all written, and frees it only when ours is all acknowledged.
// If nghttp3's first bytes are not a SETTINGS prefix we can read (never seen), they pass
// unchanged: the setting is not sent, nothing breaks.
class ControlStreamRewrite {
 public:
  explicit ControlStreamRewrite(Setting added) : added_(added) {}

  // nghttp3's pieces at its write offset -> the pieces to give QUIC (views into `pieces`
  // or into this object, valid until the next call).
  std::vector<std::span<const std::uint8_t>> rewrite(
      const std::vector<std::span<const std::uint8_t>>& pieces);
  // QUIC took (acknowledged) `n` more bytes: how many more of nghttp3's that is.
  std::size_t written(std::size_t n) { return advance(quic_written_, n); }
  std::size_t acked(std::size_t n) { return advance(quic_acked_, n); }
  // The added setting went into the stream (false before the first bytes, or on fallback).
  bool rewritten() const { return state_ == State::kRewritten; }

 private:
  enum class State : std::uint8_t { kFirst, kRewritten, kPassThrough };
  std::uint64_t to_h3(std::uint64_t quic_offset) const;
  std::size_t advance(std::uint64_t& quic_offset, std::size_t n);

  Setting added_;
  State state_ = State::kFirst;
  std::vector<std::uint8_t> ours_;
  std::size_t theirs_size_ = 0;
  std::uint64_t quic_written_ = 0;
  std::uint64_t quic_acked_ = 0;
};

// The peer's SETTINGS, read off its unidirectional streams as they arrive (in order, at
// any split), the bytes themselves still going to nghttp3.
class PeerSettings {
 public:
  // Bytes of a peer-initiated unidirectional stream.
  void on_stream_data(std::int64_t stream, std::span<const std::uint8_t> data);
  // nullopt until the peer's SETTINGS frame was read.
  const std::optional<std::vector<Setting>>& settings() const { return settings_; }
  bool h3_datagram() const { return settings_ && h3_datagram_enabled(*settings_); }

 private:
  struct Pending {
    std::vector<std::uint8_t> bytes;
    bool done = false;
  };
  std::map<std::int64_t, Pending> streams_;
  std::optional<std::vector<Setting>> settings_;
};

}  // namespace ramjet::http::h3
