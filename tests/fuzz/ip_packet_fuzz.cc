// Packets from an ip endpoint's TUN device through the IP parser, the ICMP-error and SYN
// readers, and the checksum fixer (what runs after IpFlowHook::handle_packet rewrote a
// packet). Beyond "no out-of-bounds
// read or write" (ASan), it checks what the on-ramp relies on: the parsed lengths lie
// inside the packet, fixing a parsed packet keeps its flow key, and fixing is idempotent.
#include <netinet/in.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <variant>
#include <vector>

#include "proxy/ip_packet.h"

using namespace ramjet::proxy;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto parsed = parse_ip({data, size});
  if (!std::holds_alternative<ParsedIp>(parsed)) {
    // A packet the parser refuses is refused by the fixer too (it would be dropped).
    std::vector<std::uint8_t> copy(data, data + size);
    (void)fix_checksums(copy);
    return 0;
  }
  const ParsedIp& ip = std::get<ParsedIp>(parsed);
  if (ip.length > size || ip.l4_offset > ip.length) __builtin_trap();
  // The ICMP-error reader (decapsulated UDP sessions) and the SYN test (TIME_WAIT) read
  // the same bytes; an ICMP error is about a UDP flow of its own family.
  if (auto about = icmp_error_about_udp({data, size}, ip)) {
    if (about->protocol != IPPROTO_UDP || about->src.is_v4() != ip.key.src.is_v4())
      __builtin_trap();
  }
  (void)is_tcp_syn({data, size});
  std::vector<std::uint8_t> packet(data, data + ip.length);
  if (!fix_checksums(packet)) __builtin_trap();
  auto again = parse_ip(packet);
  if (!std::holds_alternative<ParsedIp>(again)) __builtin_trap();
  if (!(std::get<ParsedIp>(again).key == ip.key)) __builtin_trap();
  std::vector<std::uint8_t> twice = packet;
  if (!fix_checksums(twice) || std::memcmp(twice.data(), packet.data(), packet.size()) != 0)
    __builtin_trap();
  return 0;
}
