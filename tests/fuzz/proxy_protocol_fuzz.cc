// Untrusted first bytes of a connection through the PROXY protocol parser. Beyond "no
// out-of-bounds read" (ASan), it checks what the engine relies on: a header never claims
// bytes it was not given, one byte less is always "need more" (so the result does not
// depend on how the bytes arrived), and a parsed v2 header survives encode -> parse.
#include <cstddef>
#include <cstdint>
#include <span>

#include "proxy_protocol/parser.h"

using namespace ramjet;
using namespace ramjet::proxy_protocol;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> input(data, size);
  Limits limits;
  if (size > 0) {  // the last byte picks the versions too, so refusals get exercised
    limits.accept_v1 = (data[size - 1] & 0x01) != 0 || (data[size - 1] & 0x02) == 0;
    limits.accept_v2 = (data[size - 1] & 0x02) != 0 || (data[size - 1] & 0x01) == 0;
  }
  ProxyHeader header;
  const Result r = parse(input, header, limits);
  if (r.status != Status::kDone) {
    if (r.status == Status::kError && r.offset > size) __builtin_trap();
    return 0;
  }
  if (r.consumed == 0 || r.consumed > size) __builtin_trap();
  if (header.version == ProxyHeader::Version::kV1 && r.consumed > kV1MaxLength) __builtin_trap();
  if (header.version == ProxyHeader::Version::kV2 &&
      r.consumed > kV2HeaderLength + limits.max_v2_length)
    __builtin_trap();

  ProxyHeader again;
  if (parse(input.first(r.consumed - 1), again, limits).status != Status::kNeedMore)
    __builtin_trap();

  if (header.version == ProxyHeader::Version::kV2 &&
      header.command == ProxyHeader::Command::kProxy) {
    const std::string bytes = encode_v2(header, true);
    ProxyHeader back;
    const Result rb = parse(bytes, back, Limits{.max_v2_length = 65535});
    if (rb.status != Status::kDone || rb.consumed != bytes.size() || !back.crc32c_checked)
      __builtin_trap();
    back.crc32c_checked = header.crc32c_checked;
    if (!(back == header)) __builtin_trap();
  }
  return 0;
}
