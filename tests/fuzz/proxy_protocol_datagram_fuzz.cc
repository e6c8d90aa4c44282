// Untrusted datagrams of a udp endpoint behind a PROXY v2 load balancer. Beyond ASan: a
// header never claims bytes past the datagram, a PROXY header always names a UDP client,
// and the verdict does not depend on anything but the bytes and the policy.
#include <cstddef>
#include <cstdint>
#include <span>

#include "proxy_protocol/datagram.h"

using namespace ramjet;
using namespace ramjet::proxy_protocol;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> input(data, size);
  DatagramPolicy policy;
  if (size > 0) {  // the last byte picks the policy, so every branch gets exercised
    policy.required = (data[size - 1] & 0x01) != 0;
    policy.trusted = (data[size - 1] & 0x02) != 0;
  }
  ProxyHeader header;
  const DatagramResult r = parse_datagram(input, header, policy);
  switch (r.verdict) {
    case DatagramVerdict::kHeader:
      if (!policy.trusted || r.payload_offset < kV2HeaderLength || r.payload_offset > size)
        __builtin_trap();
      if (header.command == ProxyHeader::Command::kProxy &&
          (header.transport != ProxyHeader::Transport::kDgram || !header.client()))
        __builtin_trap();
      break;
    case DatagramVerdict::kNoHeader:
      if (policy.required) __builtin_trap();
      break;
    case DatagramVerdict::kDrop:
      if (r.offset > size + 16) __builtin_trap();
      break;
  }
  ProxyHeader again;
  const DatagramResult r2 = parse_datagram(input, again, policy);
  if (r2.verdict != r.verdict || r2.payload_offset != r.payload_offset) __builtin_trap();
  return 0;
}
