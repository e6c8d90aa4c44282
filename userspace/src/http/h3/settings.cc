#include "http/h3/settings.h"

#include <algorithm>

#include "http/capsule.h"  // QUIC varints

namespace ramjet::http::h3 {

ControlPrefix parse_control_prefix(std::span<const std::uint8_t> bytes) {
  ControlPrefix out;
  auto error = [&out](std::string_view why) {
    out.status = ControlPrefix::Status::kError;
    out.reason = why;
    out.settings.clear();
    return out;
  };
  std::uint64_t stream_type = 0;
  std::size_t at = decode_varint(bytes, stream_type);
  if (at == 0) return out;
  if (stream_type != kStreamTypeControl) {
    out.status = ControlPrefix::Status::kNotControl;
    return out;
  }
  std::uint64_t frame_type = 0;
  const std::size_t type_size = decode_varint(bytes.subspan(at), frame_type);
  if (type_size == 0) return out;
  // RFC 9114 6.2.1: SETTINGS first, and nothing else may precede it.
  if (frame_type != kFrameSettings) return error("the control stream does not start with SETTINGS");
  at += type_size;
  std::uint64_t length = 0;
  const std::size_t length_size = decode_varint(bytes.subspan(at), length);
  if (length_size == 0) return out;
  if (length > kMaxSettingsFrame) return error("SETTINGS frame too long");
  at += length_size;
  if (bytes.size() - at < length) return out;
  std::span<const std::uint8_t> payload = bytes.subspan(at, static_cast<std::size_t>(length));
  while (!payload.empty()) {
    Setting s;
    const std::size_t id_size = decode_varint(payload, s.first);
    if (id_size == 0) return error("SETTINGS ends inside an identifier");
    const std::size_t value_size = decode_varint(payload.subspan(id_size), s.second);
    if (value_size == 0) return error("SETTINGS ends inside a value");
    payload = payload.subspan(id_size + value_size);
    out.settings.push_back(s);
  }
  out.status = ControlPrefix::Status::kSettings;
  out.size = at + static_cast<std::size_t>(length);
  return out;
}

std::vector<std::uint8_t> encode_control_prefix(const std::vector<Setting>& settings) {
  std::vector<std::uint8_t> payload;
  for (const auto& [id, value] : settings) {
    append_varint(payload, id);
    append_varint(payload, value);
  }
  std::vector<std::uint8_t> out;
  append_varint(out, kStreamTypeControl);
  append_varint(out, kFrameSettings);
  append_varint(out, payload.size());
  append_bytes(out, payload);
  return out;
}

bool h3_datagram_enabled(const std::vector<Setting>& settings) {
  bool enabled = false;
  for (const auto& [id, value] : settings) {
    if (id != kSettingsH3Datagram) continue;
    if (value > 1) return false;
    enabled = value == 1;
  }
  return enabled;
}

std::vector<std::span<const std::uint8_t>> ControlStreamRewrite::rewrite(
    const std::vector<std::span<const std::uint8_t>>& pieces) {
  if (state_ == State::kFirst) {
    // nghttp3 queues the stream type and SETTINGS together when the stream is bound, so
    // the first offer holds both; gathered across pieces all the same.
    std::vector<std::uint8_t> first;
    for (auto p : pieces) {
      if (first.size() >= kMaxSettingsFrame + 2 * 8 + 1) break;
      first.insert(first.end(), p.begin(), p.end());
    }
    if (first.empty()) return pieces;
    const ControlPrefix prefix = parse_control_prefix(first);
    if (prefix.status != ControlPrefix::Status::kSettings) {
      state_ = State::kPassThrough;
      return pieces;
    }
    std::vector<Setting> settings = prefix.settings;
    std::erase_if(settings, [this](const Setting& s) { return s.first == added_.first; });
    settings.push_back(added_);
    ours_ = encode_control_prefix(settings);
    theirs_size_ = prefix.size;
    state_ = State::kRewritten;
  }
  if (state_ != State::kRewritten || quic_written_ >= ours_.size()) return pieces;
  // Still inside our prefix: nghttp3 offers from its offset 0 (we told it nothing was
  // written yet). The rest of ours, then theirs past their prefix.
  std::vector<std::span<const std::uint8_t>> out;
  out.emplace_back(ours_.data() + quic_written_, ours_.size() - quic_written_);
  std::size_t skip = theirs_size_;
  for (auto p : pieces) {
    const std::size_t drop = std::min(skip, p.size());
    skip -= drop;
    if (p.size() > drop) out.push_back(p.subspan(drop));
  }
  return out;
}

std::uint64_t ControlStreamRewrite::to_h3(std::uint64_t quic_offset) const {
  if (state_ != State::kRewritten) return quic_offset;
  if (quic_offset < ours_.size()) return 0;
  return quic_offset - ours_.size() + theirs_size_;
}

std::size_t ControlStreamRewrite::advance(std::uint64_t& quic_offset, std::size_t n) {
  const std::uint64_t before = to_h3(quic_offset);
  quic_offset += n;
  return static_cast<std::size_t>(to_h3(quic_offset) - before);
}

void PeerSettings::on_stream_data(std::int64_t stream, std::span<const std::uint8_t> data) {
  if (settings_ || data.empty()) return;
  Pending& p = streams_[stream];
  if (p.done) return;
  p.bytes.insert(p.bytes.end(), data.begin(), data.end());
  const ControlPrefix prefix = parse_control_prefix(p.bytes);
  if (prefix.status == ControlPrefix::Status::kNeedMore &&
      p.bytes.size() <= kMaxSettingsFrame + 2 * 8 + 1)
    return;
  if (prefix.status == ControlPrefix::Status::kSettings) settings_ = prefix.settings;
  // Read once: a control stream's SETTINGS (or why not), or another stream type.
  p.done = true;
  std::vector<std::uint8_t>().swap(p.bytes);
}

}  // namespace ramjet::http::h3
