#include "http/capsule.h"

#include <algorithm>
#include <cstring>

namespace ramjet::http {

std::size_t decode_varint(std::span<const std::uint8_t> input, std::uint64_t& value) {
  if (input.empty()) return 0;
  const std::size_t size = varint_size_from_first_byte(input[0]);
  if (input.size() < size) return 0;
  std::uint64_t v = input[0] & 0x3f;
  for (std::size_t i = 1; i < size; ++i) v = (v << 8) | input[i];
  value = v;
  return size;
}

std::size_t encode_varint(std::uint64_t value, std::uint8_t* out) {
  const std::size_t size = varint_size(value);
  if (size == 0) return 0;
  for (std::size_t i = 0; i < size; ++i) {
    out[size - 1 - i] = static_cast<std::uint8_t>(value >> (8 * i));
  }
  // The length prefix: 00, 01, 10, 11 for 1, 2, 4, 8 bytes (the value leaves those bits 0).
  static constexpr std::uint8_t kPrefix[9] = {0, 0x00, 0x40, 0, 0x80, 0, 0, 0, 0xc0};
  out[0] |= kPrefix[size];
  return size;
}

// ---- CapsuleParser -------------------------------------------------------------------------

CapsuleResult CapsuleParser::fail(CapsuleError error) {
  state_ = State::kError;
  error_ = CapsuleResult{};
  error_.status = CapsuleStatus::kError;
  error_.error = error;
  error_.offset = capsule_start_;
  payload_.clear();
  return error_;
}

CapsuleResult CapsuleParser::next(std::span<const std::uint8_t> input) {
  if (state_ == State::kError) return error_;
  CapsuleResult r;
  std::size_t used = 0;  // bytes of `input` consumed by this call

  if (state_ == State::kHeader) {
    if (header_size_ == 0) capsule_start_ = position_;
    // Gather the header in header_ whether or not it is split: it is at most 16 bytes, and
    // one code path for both cases is worth the copy. 16 bytes always hold both varints, so
    // a header still incomplete has taken the whole input.
    const std::size_t had = header_size_;
    const std::size_t take = std::min(header_.size() - had, input.size());
    std::memcpy(header_.data() + had, input.data(), take);
    const std::span<const std::uint8_t> header(header_.data(), had + take);
    const std::size_t type_size = decode_varint(header, type_);
    const std::size_t length_size =
        type_size == 0 ? 0 : decode_varint(header.subspan(type_size), length_);
    if (length_size == 0) {
      header_size_ = had + take;
      position_ += input.size();
      r.consumed = input.size();
      return r;
    }
    header_size_ = 0;
    used = type_size + length_size - had;
    // Refused on the header alone: nothing of an oversized capsule is ever buffered.
    if (length_ > limits_.max_payload) return fail(CapsuleError::kCapsuleTooLarge);
    state_ = State::kPayload;
    payload_.clear();
  }

  // kPayload.
  const std::span<const std::uint8_t> rest = input.subspan(used);
  if (payload_.empty() && rest.size() >= length_) {
    // The whole payload is in this input: hand out a view, no copy.
    r.capsule.payload = rest.first(static_cast<std::size_t>(length_));
    used += static_cast<std::size_t>(length_);
  } else {
    const std::size_t missing = static_cast<std::size_t>(length_) - payload_.size();
    const std::size_t take = std::min(missing, rest.size());
    payload_.insert(payload_.end(), rest.begin(), rest.begin() + take);
    used += take;
    if (payload_.size() < length_) {
      position_ += used;
      r.consumed = used;
      return r;
    }
    r.capsule.payload = payload_;
  }
  state_ = State::kHeader;
  position_ += used;
  r.status = CapsuleStatus::kCapsule;
  r.consumed = used;
  r.capsule.type = type_;
  return r;
}

CapsuleResult CapsuleParser::finish() {
  if (state_ == State::kError) return error_;
  if (state_ == State::kHeader && header_size_ == 0) return CapsuleResult{};
  return fail(CapsuleError::kTruncatedCapsule);
}

// ---- HTTP Datagrams ------------------------------------------------------------------------

DatagramResult parse_http_datagram(std::span<const std::uint8_t> bytes) {
  DatagramResult r;
  const std::size_t id_size = decode_varint(bytes, r.datagram.context_id);
  if (id_size == 0) return r;
  r.ok = true;
  r.datagram.payload = bytes.subspan(id_size);
  return r;
}

DatagramResult parse_udp_proxying_datagram(std::span<const std::uint8_t> bytes) {
  DatagramResult r = parse_http_datagram(bytes);
  if (r.ok && r.datagram.context_id == kContextIdPayload &&
      r.datagram.payload.size() > kMaxUdpPayload) {
    r.ok = false;
    r.error = CapsuleError::kUdpPayloadTooLong;
  }
  return r;
}

}  // namespace ramjet::http
