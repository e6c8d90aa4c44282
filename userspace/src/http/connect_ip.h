// Bodies of the CONNECT-IP capsules (RFC 9484 4.7): ADDRESS_ASSIGN, ADDRESS_REQUEST and
// ROUTE_ADVERTISEMENT. The capsule framing is CapsuleParser's (http/capsule.h); these
// functions take one capsule's Value and check everything the RFC lets a receiver check
// without state, because RFC 9484 makes each violation fatal to the stream ("MUST abort the
// IP proxying request stream"). What needs state (a Request ID reused across capsules, an
// assignment answering no request) is the caller's.
//
// The encoders validate the same rules, so ramjet never sends what its peer must refuse.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "http/capsule.h"
#include "http/named_enum.h"
#include "ramjet/net.h"

namespace ramjet::http {

#define RAMJET_CONNECT_IP_ERRORS(X)                                                               \
  X(kTruncatedEntry, "truncated_entry")            /* an entry runs past the capsule's end */     \
  X(kBadIpVersion, "bad_ip_version")               /* IP Version neither 4 nor 6 */               \
  X(kPrefixTooLong, "prefix_too_long")             /* prefix length above 32 / 128 */             \
  X(kHostBitsSet, "host_bits_set")                 /* address bits beyond the prefix are not 0 */ \
  X(kZeroRequestId, "zero_request_id")             /* ADDRESS_REQUEST with Request ID 0 */        \
  X(kDuplicateRequestId, "duplicate_request_id")   /* one Request ID twice in a request */        \
  X(kEmptyAddressRequest, "empty_address_request") /* ADDRESS_REQUEST without entries */          \
  X(kRangeStartAfterEnd, "range_start_after_end")  /* Start IP Address > End IP Address */        \
  X(kRangesOutOfOrder, "ranges_out_of_order")      /* not sorted by version, protocol, start */   \
  X(kRangesOverlap, "ranges_overlap")              /* same version and protocol, overlapping */   \
  X(kWildcardRouteOverlap, "wildcard_route_overlap") /* protocol 0 range overlaps another */      \
  X(kValueTooLarge, "value_too_large")               /* encoder: a Request ID above 2^62 - 1 */

RAMJET_DECLARE_NAMED_ENUM(ConnectIpError, RAMJET_CONNECT_IP_ERRORS)

// An Assigned Address (ADDRESS_ASSIGN) or a Requested Address (ADDRESS_REQUEST): the same
// wire format. The IP Version is the address's family.
struct AddressEntry {
  // ADDRESS_REQUEST: never 0. ADDRESS_ASSIGN: the request answered, or 0 when unprompted.
  std::uint64_t request_id = 0;
  IpAddress address;  // ADDRESS_REQUEST: all-zero means "any address of this family"
  std::uint8_t prefix_length = 0;

  friend bool operator==(const AddressEntry&, const AddressEntry&) = default;
};

// An IP Address Range (ROUTE_ADVERTISEMENT): both ends inclusive and of one family.
struct IpAddressRange {
  IpAddress start;
  IpAddress end;
  std::uint8_t ip_protocol = 0;  // 0: every protocol (ICMP is always allowed)

  friend bool operator==(const IpAddressRange&, const IpAddressRange&) = default;
};

struct ConnectIpResult {
  bool ok = true;
  ConnectIpError error = ConnectIpError::kTruncatedEntry;  // !ok
  std::size_t offset = 0;  // !ok: parsers, the byte in the Value; encoders, the entry index
};

// Parsers: `out` is cleared, then filled with the entries in wire order (on error it holds
// those before the faulty one). An empty ADDRESS_ASSIGN is valid: it withdraws every address.
[[nodiscard]] ConnectIpResult parse_address_assign(std::span<const std::uint8_t> value,
                                                   std::vector<AddressEntry>& out);
[[nodiscard]] ConnectIpResult parse_address_request(std::span<const std::uint8_t> value,
                                                    std::vector<AddressEntry>& out);
// Ranges must come sorted by IP version, then IP protocol, then address, and not overlap
// within one version and protocol. The OPTIONAL check of RFC 9484 4.7.3 (a protocol 0 range
// overlapping a range of a specific protocol) is made as well.
[[nodiscard]] ConnectIpResult parse_route_advertisement(std::span<const std::uint8_t> value,
                                                        std::vector<IpAddressRange>& out);

// Encoders: validate, then append the whole capsule (Type, Length, Value) to `out`; on error
// nothing is appended and `offset` is the index of the faulty entry.
[[nodiscard]] ConnectIpResult append_address_assign(std::string& out,
                                                    std::span<const AddressEntry> entries);
[[nodiscard]] ConnectIpResult append_address_request(std::string& out,
                                                     std::span<const AddressEntry> entries);
[[nodiscard]] ConnectIpResult append_route_advertisement(std::string& out,
                                                         std::span<const IpAddressRange> ranges);

}  // namespace ramjet::http
