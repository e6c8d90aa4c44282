#include "proxy_protocol/datagram.h"

namespace ramjet::proxy_protocol {
namespace {

DatagramResult drop(Reason r, std::size_t offset = 0) {
  DatagramResult d;
  d.verdict = DatagramVerdict::kDrop;
  d.reason = r;
  d.offset = offset;
  return d;
}

}  // namespace

DatagramResult parse_datagram(std::span<const std::uint8_t> datagram, ProxyHeader& header,
                              const DatagramPolicy& policy) {
  // Required mode: only the load balancer may send here at all.
  if (policy.required && !policy.trusted) return drop(Reason::kUntrustedPeer);
  const Detected d = detect(datagram);
  if (d == Detected::kNone || (d == Detected::kNeedMore && !policy.required)) {
    if (policy.required) return drop(Reason::kBadSignature);
    DatagramResult r;
    r.verdict = DatagramVerdict::kNoHeader;
    return r;
  }
  if (d == Detected::kNeedMore) return drop(Reason::kTruncated, datagram.size());
  if (!policy.trusted) return drop(Reason::kUntrustedPeer);
  if (d == Detected::kV1) return drop(Reason::kVersionNotAllowed);

  Limits limits;
  limits.accept_v1 = false;
  limits.max_v2_length = policy.max_v2_length;
  const Result r = parse(datagram, header, limits);
  if (r.status == Status::kError) return drop(r.reason, r.offset);
  if (r.status == Status::kNeedMore) return drop(Reason::kTruncated, datagram.size());
  if (header.command == ProxyHeader::Command::kProxy &&
      (header.transport != ProxyHeader::Transport::kDgram || !header.source ||
       (header.family != ProxyHeader::Family::kInet &&
        header.family != ProxyHeader::Family::kInet6)))
    return drop(Reason::kV2BadFamily, 13);  // byte 13: family and transport
  DatagramResult ok;
  ok.verdict = DatagramVerdict::kHeader;
  ok.payload_offset = r.consumed;
  return ok;
}

}  // namespace ramjet::proxy_protocol
