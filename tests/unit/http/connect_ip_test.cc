#include "http/connect_ip.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "http/capsule.h"

namespace ramjet::http {
namespace {

using Bytes = std::vector<std::uint8_t>;

IpAddress ip(std::string_view text) {
  const std::optional<IpAddress> a = IpAddress::parse(text);
  EXPECT_TRUE(a.has_value()) << text;
  return a.value_or(IpAddress{});
}

// Wire bytes of one address entry, written out by hand (not by the encoder under test).
Bytes address_entry(std::uint8_t request_id, std::uint8_t version, const Bytes& address,
                    std::uint8_t prefix) {
  Bytes b{request_id, version};  // request IDs below 64 are one-byte varints
  b.insert(b.end(), address.begin(), address.end());
  b.push_back(prefix);
  return b;
}

Bytes range_entry(std::uint8_t version, const Bytes& start, const Bytes& end,
                  std::uint8_t protocol) {
  Bytes b{version};
  b.insert(b.end(), start.begin(), start.end());
  b.insert(b.end(), end.begin(), end.end());
  b.push_back(protocol);
  return b;
}

Bytes concat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

const Bytes kV4Net{10, 0, 0, 0};
const Bytes kV4Host{10, 0, 0, 1};
const Bytes kV6Net{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};

// ---- ADDRESS_ASSIGN / ADDRESS_REQUEST ----------------------------------------------------

TEST(ConnectIpCapsule, ParsesAnAddressAssign) {
  const Bytes value = concat({address_entry(0, 4, kV4Host, 32), address_entry(7, 6, kV6Net, 64),
                              address_entry(9, 4, {0, 0, 0, 0}, 32)});
  std::vector<AddressEntry> out;
  const ConnectIpResult r = parse_address_assign(value, out);
  ASSERT_TRUE(r.ok) << to_string(r.error);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0], (AddressEntry{0, ip("10.0.0.1"), 32}));
  EXPECT_EQ(out[1], (AddressEntry{7, ip("2001:db8::"), 64}));
  // 0.0.0.0/32 is how a request is turned down (RFC 9484 4.7.2).
  EXPECT_EQ(out[2], (AddressEntry{9, ip("0.0.0.0"), 32}));
}

TEST(ConnectIpCapsule, AnEmptyAssignWithdrawsButAnEmptyRequestIsFatal) {
  std::vector<AddressEntry> out{{1, ip("10.0.0.1"), 32}};
  EXPECT_TRUE(parse_address_assign({}, out).ok);
  EXPECT_TRUE(out.empty());
  const ConnectIpResult r = parse_address_request({}, out);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error, ConnectIpError::kEmptyAddressRequest);
}

const Bytes kGoodV4 = address_entry(1, 4, kV4Host, 32);  // 7 bytes

TEST(ConnectIpCapsule, RefusesBadAddressEntriesWithTheirReason) {
  const struct {
    const char* name;
    Bytes value;
    bool request;  // ADDRESS_REQUEST, else ADDRESS_ASSIGN
    ConnectIpError error;
    std::size_t offset;
  } cases[] = {
      {"version_5", address_entry(1, 5, kV4Host, 32), false, ConnectIpError::kBadIpVersion, 0},
      {"version_0_second", concat({kGoodV4, address_entry(2, 0, kV4Host, 32)}), true,
       ConnectIpError::kBadIpVersion, 7},
      {"v4_prefix_33", address_entry(1, 4, kV4Host, 33), false, ConnectIpError::kPrefixTooLong, 0},
      {"v6_prefix_129", address_entry(1, 6, kV6Net, 129), true, ConnectIpError::kPrefixTooLong, 0},
      {"v4_host_bits", address_entry(1, 4, kV4Host, 24), false, ConnectIpError::kHostBitsSet, 0},
      {"v6_host_bit_in_a_partial_byte",
       address_entry(1, 6, {0x20, 0x01, 0x0d, 0xb9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 31), false,
       ConnectIpError::kHostBitsSet, 0},
      {"request_id_zero", concat({kGoodV4, address_entry(0, 4, kV4Host, 32)}), true,
       ConnectIpError::kZeroRequestId, 7},
      {"request_id_twice", concat({kGoodV4, address_entry(2, 4, kV4Net, 8), kGoodV4}), true,
       ConnectIpError::kDuplicateRequestId, 14},
      {"v6_address_cut", Bytes{1, 6, 0x20, 0x01}, false, ConnectIpError::kTruncatedEntry, 0},
      {"request_id_varint_cut", concat({kGoodV4, Bytes{0x40}}), false,
       ConnectIpError::kTruncatedEntry, 7},
  };
  for (const auto& c : cases) {
    std::vector<AddressEntry> out;
    const ConnectIpResult r =
        c.request ? parse_address_request(c.value, out) : parse_address_assign(c.value, out);
    ASSERT_FALSE(r.ok) << c.name;
    EXPECT_EQ(to_string(r.error), to_string(c.error)) << c.name;
    EXPECT_EQ(r.offset, c.offset) << c.name;
  }
}

TEST(ConnectIpCapsule, EveryStrictPrefixOfAnEntryIsTruncated) {
  const Bytes entry = address_entry(1, 6, kV6Net, 48);
  for (std::size_t n = 1; n < entry.size(); ++n) {
    std::vector<AddressEntry> out;
    const ConnectIpResult r = parse_address_request(std::span(entry).first(n), out);
    ASSERT_FALSE(r.ok) << n;
    EXPECT_EQ(r.error, ConnectIpError::kTruncatedEntry) << n;
  }
}

TEST(ConnectIpCapsule, AllowsZeroRequestIdsInAnAssignAndAnyAddressInARequest) {
  std::vector<AddressEntry> out;
  // Unprompted assignments carry Request ID 0; "::" asks for any IPv6 address.
  EXPECT_TRUE(parse_address_assign(
                  concat({address_entry(0, 4, kV4Net, 8), address_entry(0, 6, kV6Net, 32)}), out)
                  .ok);
  EXPECT_TRUE(parse_address_request(address_entry(3, 6, Bytes(16, 0), 64), out).ok);
  EXPECT_EQ(out[0].address, ip("::"));
}

TEST(ConnectIpCapsule, AddressCapsulesRoundTrip) {
  const std::vector<AddressEntry> entries{{1, ip("192.0.2.0"), 24},
                                          {64 /* 2-byte varint */, ip("2001:db8:1::"), 48},
                                          {kMaxVarint, ip("::"), 0}};
  std::string wire;
  ASSERT_TRUE(append_address_request(wire, entries).ok);
  CapsuleParser p;
  const CapsuleResult c = p.next(wire);
  ASSERT_EQ(c.status, CapsuleStatus::kCapsule);
  EXPECT_EQ(c.capsule.type, kCapsuleAddressRequest);
  EXPECT_EQ(c.consumed, wire.size());
  std::vector<AddressEntry> back;
  ASSERT_TRUE(parse_address_request(c.capsule.payload, back).ok);
  EXPECT_EQ(back, entries);

  wire.clear();
  ASSERT_TRUE(append_address_assign(wire, entries).ok);
  EXPECT_EQ(static_cast<std::uint8_t>(wire[0]), kCapsuleAddressAssign);
}

TEST(ConnectIpCapsule, EncodersRefuseWhatTheirPeerMustRefuse) {
  std::string wire = "keep";
  const std::vector<AddressEntry> host_bits{{1, ip("10.0.0.0"), 8}, {2, ip("10.1.2.3"), 16}};
  ConnectIpResult r = append_address_assign(wire, host_bits);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error, ConnectIpError::kHostBitsSet);
  EXPECT_EQ(r.offset, 1u) << "encoders name the entry's index";
  r = append_address_request(wire, std::vector<AddressEntry>{{0, ip("10.0.0.1"), 32}});
  EXPECT_EQ(r.error, ConnectIpError::kZeroRequestId);
  r = append_address_assign(wire, std::vector<AddressEntry>{{kMaxVarint + 1, ip("::"), 0}});
  EXPECT_EQ(r.error, ConnectIpError::kValueTooLarge);
  r = append_address_request(wire, {});
  EXPECT_EQ(r.error, ConnectIpError::kEmptyAddressRequest);
  EXPECT_EQ(wire, "keep");
}

// ---- ROUTE_ADVERTISEMENT -----------------------------------------------------------------

IpAddressRange route(std::string_view start, std::string_view end, std::uint8_t protocol) {
  return {ip(start), ip(end), protocol};
}

// Runs `ranges` through the encoder's validation and, written by hand, the parser's.
ConnectIpResult check_routes(const std::vector<IpAddressRange>& ranges) {
  Bytes value;
  for (const IpAddressRange& r : ranges) {
    const Bytes start(r.start.data(), r.start.data() + r.start.size());
    const Bytes end(r.end.data(), r.end.data() + r.end.size());
    const Bytes e = range_entry(r.start.is_v4() ? 4 : 6, start, end, r.ip_protocol);
    value.insert(value.end(), e.begin(), e.end());
  }
  std::vector<IpAddressRange> parsed;
  const ConnectIpResult parse = parse_route_advertisement(value, parsed);
  std::string wire;
  const ConnectIpResult encode = append_route_advertisement(wire, ranges);
  EXPECT_EQ(parse.ok, encode.ok);
  EXPECT_EQ(parse.error, encode.error);
  if (parse.ok) {
    EXPECT_EQ(parsed, ranges);
  } else {
    EXPECT_TRUE(wire.empty());
  }
  return encode;
}

TEST(ConnectIpCapsule, AcceptsSortedDisjointRoutes) {
  EXPECT_TRUE(check_routes({}).ok);  // zero ranges: nothing is routed any more
  const ConnectIpResult r = check_routes({
      route("10.0.0.0", "10.0.0.255", 0),
      route("10.0.1.0", "10.0.1.255", 0),  // adjacent, not overlapping
      route("192.168.0.0", "192.168.0.255", 6),
      route("192.168.1.0", "192.168.1.0", 6),     // a single address
      route("172.16.0.0", "172.31.255.255", 17),  // another protocol starts over
      route("::", "::ffff", 0),
      route("2001:db8::", "2001:db8::ffff", 17),
  });
  EXPECT_TRUE(r.ok) << to_string(r.error) << " at " << r.offset;
}

TEST(ConnectIpCapsule, RefusesRoutesInTheWrongOrderOrOverlapping) {
  constexpr auto kStartAfterEnd = ConnectIpError::kRangeStartAfterEnd;
  constexpr auto kOrder = ConnectIpError::kRangesOutOfOrder;
  constexpr auto kOverlap = ConnectIpError::kRangesOverlap;
  constexpr auto kWildcard = ConnectIpError::kWildcardRouteOverlap;
  const auto& r = route;
  // {error, index of the faulty range, name, ranges}
  const struct {
    ConnectIpError error;
    std::size_t index;
    const char* name;
    std::vector<IpAddressRange> ranges;
  } cases[] = {
      {kStartAfterEnd, 0, "start_after_end", {r("10.0.0.9", "10.0.0.1", 0)}},
      {kOrder, 1, "v6_before_v4", {r("::1", "::1", 0), r("10.0.0.1", "10.0.0.1", 0)}},
      {kOrder, 1, "protocol_down", {r("10.0.0.1", "10.0.0.1", 17), r("10.0.0.2", "10.0.0.2", 6)}},
      {kOrder, 1, "addresses_down", {r("10.0.1.0", "10.0.1.9", 6), r("10.0.0.0", "10.0.0.9", 6)}},
      {kOverlap, 1, "overlap", {r("10.0.0.0", "10.0.0.9", 6), r("10.0.0.5", "10.0.0.20", 6)}},
      {kOverlap, 1, "end_is_start", {r("10.0.0.0", "10.0.0.9", 6), r("10.0.0.9", "10.0.0.20", 6)}},
      {kWildcard, 1, "wild_tcp", {r("10.0.0.0", "10.0.0.255", 0), r("10.0.0.5", "10.0.0.9", 6)}},
      {kWildcard,
       2,
       "wild_udp",
       {r("2001:db8::", "2001:db8::10", 0), r("2001:db8::1:0", "2001:db8::1:5", 0),
        r("2001:db8::1:5", "2001:db8::2:0", 17)}},
  };
  for (const auto& c : cases) {
    const ConnectIpResult result = check_routes(c.ranges);
    ASSERT_FALSE(result.ok) << c.name;
    EXPECT_EQ(to_string(result.error), to_string(c.error)) << c.name;
    EXPECT_EQ(result.offset, c.index) << c.name;
  }
}

TEST(ConnectIpCapsule, RouteParseErrorsNameTheByteOfTheEntry) {
  const Bytes first = range_entry(4, kV4Net, {10, 0, 0, 9}, 6);  // 10 bytes
  std::vector<IpAddressRange> out;
  ConnectIpResult r = parse_route_advertisement(
      concat({first, range_entry(4, {9, 0, 0, 0}, {9, 0, 0, 1}, 6)}), out);
  EXPECT_EQ(r.error, ConnectIpError::kRangesOutOfOrder);
  EXPECT_EQ(r.offset, 10u);
  r = parse_route_advertisement(concat({first, Bytes{6, 0x20}}), out);
  EXPECT_EQ(r.error, ConnectIpError::kTruncatedEntry);
  EXPECT_EQ(r.offset, 10u);
  r = parse_route_advertisement(concat({first, Bytes{41}}), out);
  EXPECT_EQ(r.error, ConnectIpError::kBadIpVersion);
  EXPECT_EQ(r.offset, 10u);
  EXPECT_EQ(out.size(), 1u) << "entries before the fault are kept";
}

}  // namespace
}  // namespace ramjet::http
