#include "http/connect_ip.h"

#include <algorithm>
#include <cstring>
#include <optional>
#include <string>
#include <utility>

namespace ramjet::http {

namespace {

constexpr std::uint8_t kIpVersion4 = 4;
constexpr std::uint8_t kIpVersion6 = 6;

ConnectIpResult failure(ConnectIpError error, std::size_t offset) {
  return {false, error, offset};
}

std::size_t address_bits(const IpAddress& a) {
  return a.size() * 8;
}

// Numeric order of two addresses of one family: network byte order compares as numbers.
int compare(const IpAddress& a, const IpAddress& b) {
  return std::memcmp(a.data(), b.data(), a.size());
}

// RFC 9484 4.7.1 and 4.7.2: the address bits past the prefix length must all be 0.
bool host_bits_clear(const IpAddress& a, std::size_t prefix_length) {
  for (std::size_t i = 0; i < a.size(); ++i) {
    const std::size_t covered =
        prefix_length > 8 * i ? std::min<std::size_t>(prefix_length - 8 * i, 8) : 0;
    const auto host_mask = static_cast<std::uint8_t>(0xff >> covered);
    if (covered < 8 && (a.data()[i] & host_mask) != 0) return false;
  }
  return true;
}

// Reads the fields shared by both kinds of entry. `at` advances past what was read.
class ValueReader {
 public:
  explicit ValueReader(std::span<const std::uint8_t> value) : value_(value) {}

  bool done() const { return at_ == value_.size(); }
  std::size_t at() const { return at_; }

  bool varint(std::uint64_t& v) {
    const std::size_t n = decode_varint(value_.subspan(at_), v);
    at_ += n;
    return n != 0;
  }
  bool byte(std::uint8_t& b) {
    if (at_ == value_.size()) return false;
    b = value_[at_++];
    return true;
  }
  bool address(IpAddress::Family family, IpAddress& a) {
    const std::size_t size = family == IpAddress::Family::kV4 ? 4 : 16;
    if (value_.size() - at_ < size) return false;
    a = IpAddress::from_bytes(family, value_.data() + at_);
    at_ += size;
    return true;
  }

 private:
  std::span<const std::uint8_t> value_;
  std::size_t at_ = 0;
};

// Reads an IP Version byte: the error when it is truncated or neither 4 nor 6.
std::optional<ConnectIpError> read_family(ValueReader& in, IpAddress::Family& family) {
  std::uint8_t version = 0;
  if (!in.byte(version)) return ConnectIpError::kTruncatedEntry;
  if (version != kIpVersion4 && version != kIpVersion6) return ConnectIpError::kBadIpVersion;
  family = version == kIpVersion4 ? IpAddress::Family::kV4 : IpAddress::Family::kV6;
  return std::nullopt;
}

std::uint8_t ip_version(const IpAddress& a) {
  return a.is_v4() ? kIpVersion4 : kIpVersion6;
}

// Semantic checks of address entries; `offset` of a failure is the entry's index.
ConnectIpResult validate_addresses(std::span<const AddressEntry> entries, bool request) {
  if (request && entries.empty()) return failure(ConnectIpError::kEmptyAddressRequest, 0);
  std::vector<std::pair<std::uint64_t, std::size_t>> ids;  // (Request ID, index)
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const AddressEntry& e = entries[i];
    if (e.request_id > kMaxVarint) return failure(ConnectIpError::kValueTooLarge, i);
    if (e.prefix_length > address_bits(e.address)) {
      return failure(ConnectIpError::kPrefixTooLong, i);
    }
    if (!host_bits_clear(e.address, e.prefix_length)) {
      return failure(ConnectIpError::kHostBitsSet, i);
    }
    if (request) {
      if (e.request_id == 0) return failure(ConnectIpError::kZeroRequestId, i);
      ids.emplace_back(e.request_id, i);
    }
  }
  // "Each request from a given endpoint carries a different identifier" (4.7.2): within
  // one capsule that is checkable without state. Report the later of the two entries.
  std::sort(ids.begin(), ids.end());
  std::size_t duplicate = entries.size();
  for (std::size_t i = 1; i < ids.size(); ++i) {
    if (ids[i].first == ids[i - 1].first) duplicate = std::min(duplicate, ids[i].second);
  }
  if (duplicate != entries.size()) return failure(ConnectIpError::kDuplicateRequestId, duplicate);
  return {};
}

// The order of RFC 9484 4.7.3: version, then protocol, then strictly ascending addresses.
// True when `b` may follow `a`; otherwise false with `error` saying why.
bool in_order(const IpAddressRange& a, const IpAddressRange& b, ConnectIpError& error) {
  const auto key = [](const IpAddressRange& r) {
    return std::pair(ip_version(r.start), r.ip_protocol);
  };
  if (key(a) != key(b)) {
    error = ConnectIpError::kRangesOutOfOrder;
    return key(a) < key(b);
  }
  if (compare(a.end, b.start) < 0) return true;
  // b starts at or before a's end: either b belongs before a, or the two overlap.
  error = compare(b.start, a.start) < 0 ? ConnectIpError::kRangesOutOfOrder
                                        : ConnectIpError::kRangesOverlap;
  return false;
}

// Semantic checks of address ranges; `offset` of a failure is the range's index.
ConnectIpResult validate_ranges(std::span<const IpAddressRange> ranges) {
  ConnectIpError error = ConnectIpError::kRangesOutOfOrder;
  for (std::size_t i = 0; i < ranges.size(); ++i) {
    const IpAddressRange& r = ranges[i];
    if (r.start.family() != r.end.family()) return failure(ConnectIpError::kBadIpVersion, i);
    if (compare(r.start, r.end) > 0) return failure(ConnectIpError::kRangeStartAfterEnd, i);
    if (i > 0 && !in_order(ranges[i - 1], r, error)) return failure(error, i);
  }
  // Sorted as above, the protocol 0 ranges of a version come first in that version and are
  // disjoint and ascending, so each specific-protocol range needs one binary search.
  const auto wildcards = [&](IpAddress::Family family) {
    const auto begin = std::find_if(ranges.begin(), ranges.end(),
                                    [&](const auto& w) { return w.start.family() == family; });
    const auto end = std::find_if(begin, ranges.end(), [&](const auto& w) {
      return w.start.family() != family || w.ip_protocol != 0;
    });
    return std::span<const IpAddressRange>(begin, end);
  };
  const std::span<const IpAddressRange> wildcard_v4 = wildcards(IpAddress::Family::kV4);
  const std::span<const IpAddressRange> wildcard_v6 = wildcards(IpAddress::Family::kV6);
  for (std::size_t i = 0; i < ranges.size(); ++i) {
    const IpAddressRange& r = ranges[i];
    if (r.ip_protocol == 0) continue;
    const std::span<const IpAddressRange> w = r.start.is_v4() ? wildcard_v4 : wildcard_v6;
    // The last wildcard range starting at or before r's end is the only one that can reach r.
    const auto after = std::upper_bound(
        w.begin(), w.end(), r.end,
        [](const IpAddress& end, const IpAddressRange& x) { return compare(end, x.start) < 0; });
    if (after != w.begin() && compare(std::prev(after)->end, r.start) >= 0) {
      return failure(ConnectIpError::kWildcardRouteOverlap, i);
    }
  }
  return {};
}

// Reads entries until the value ends. read_one(in, entry) returns the error of a malformed
// entry; validate(entries) checks the list and names a faulty entry by its index, which is
// turned into the entry's byte offset here.
template <typename Entry, typename ReadOne, typename Validate>
ConnectIpResult parse_entries(std::span<const std::uint8_t> value, std::vector<Entry>& out,
                              ReadOne read_one, Validate validate) {
  out.clear();
  ValueReader in(value);
  std::vector<std::size_t> offsets;
  while (!in.done()) {
    const std::size_t start = in.at();
    Entry e;
    if (const std::optional<ConnectIpError> error = read_one(in, e)) return failure(*error, start);
    out.push_back(e);
    offsets.push_back(start);
  }
  ConnectIpResult r = validate(std::span<const Entry>(out));
  if (!r.ok) r.offset = r.offset < offsets.size() ? offsets[r.offset] : 0;
  return r;
}

// Validates, then appends the capsule: write_one(body, entry) encodes one entry.
template <typename Entry, typename WriteOne>
ConnectIpResult append_entries(std::string& out, std::uint64_t type, std::span<const Entry> entries,
                               const ConnectIpResult& validation, WriteOne write_one) {
  if (!validation.ok) return validation;
  std::string body;
  for (const Entry& e : entries) write_one(body, e);
  append_capsule(out, type, as_bytes(body));
  return validation;
}

std::optional<ConnectIpError> read_address_entry(ValueReader& in, AddressEntry& e) {
  IpAddress::Family family{};
  if (!in.varint(e.request_id)) return ConnectIpError::kTruncatedEntry;
  if (const std::optional<ConnectIpError> error = read_family(in, family)) return error;
  if (!in.address(family, e.address) || !in.byte(e.prefix_length)) {
    return ConnectIpError::kTruncatedEntry;
  }
  return std::nullopt;
}

std::optional<ConnectIpError> read_range(ValueReader& in, IpAddressRange& r) {
  IpAddress::Family family{};
  if (const std::optional<ConnectIpError> error = read_family(in, family)) return error;
  if (!in.address(family, r.start) || !in.address(family, r.end) || !in.byte(r.ip_protocol)) {
    return ConnectIpError::kTruncatedEntry;
  }
  return std::nullopt;
}

void append_address(std::string& body, const IpAddress& a) {
  append_bytes(body, std::span(a.data(), a.size()));
}

void write_address_entry(std::string& body, const AddressEntry& e) {
  append_varint(body, e.request_id);
  body.push_back(static_cast<char>(ip_version(e.address)));
  append_address(body, e.address);
  body.push_back(static_cast<char>(e.prefix_length));
}

void write_range(std::string& body, const IpAddressRange& r) {
  body.push_back(static_cast<char>(ip_version(r.start)));
  append_address(body, r.start);
  append_address(body, r.end);
  body.push_back(static_cast<char>(r.ip_protocol));
}

ConnectIpResult parse_addresses(std::span<const std::uint8_t> value, std::vector<AddressEntry>& out,
                                bool request) {
  return parse_entries(value, out, read_address_entry,
                       [request](auto entries) { return validate_addresses(entries, request); });
}

}  // namespace

ConnectIpResult parse_address_assign(std::span<const std::uint8_t> value,
                                     std::vector<AddressEntry>& out) {
  return parse_addresses(value, out, false);
}

ConnectIpResult parse_address_request(std::span<const std::uint8_t> value,
                                      std::vector<AddressEntry>& out) {
  return parse_addresses(value, out, true);
}

ConnectIpResult parse_route_advertisement(std::span<const std::uint8_t> value,
                                          std::vector<IpAddressRange>& out) {
  return parse_entries(value, out, read_range, validate_ranges);
}

ConnectIpResult append_address_assign(std::string& out, std::span<const AddressEntry> entries) {
  return append_entries(out, kCapsuleAddressAssign, entries, validate_addresses(entries, false),
                        write_address_entry);
}

ConnectIpResult append_address_request(std::string& out, std::span<const AddressEntry> entries) {
  return append_entries(out, kCapsuleAddressRequest, entries, validate_addresses(entries, true),
                        write_address_entry);
}

ConnectIpResult append_route_advertisement(std::string& out,
                                           std::span<const IpAddressRange> ranges) {
  return append_entries(out, kCapsuleRouteAdvertisement, ranges, validate_ranges(ranges),
                        write_range);
}

}  // namespace ramjet::http
