#include "egress/guard.h"

#include <array>
#include <vector>

namespace ramjet::egress {

namespace {
struct Protected {
  const char* cidr;
  const char* name;
};
// RFC 6890 special-purpose ranges a forward proxy must not reach by default.
constexpr std::array<Protected, 17> kProtected = {{
    {"0.0.0.0/8", "this-network"},
    {"10.0.0.0/8", "private"},
    {"100.64.0.0/10", "cgnat"},
    {"127.0.0.0/8", "loopback"},
    {"169.254.0.0/16", "link-local"},
    {"172.16.0.0/12", "private"},
    {"192.0.0.0/24", "ietf-protocol"},
    {"192.168.0.0/16", "private"},
    {"198.18.0.0/15", "benchmarking"},
    {"224.0.0.0/4", "multicast"},
    {"240.0.0.0/4", "reserved"},
    {"::/128", "unspecified"},
    {"::1/128", "loopback"},
    {"64:ff9b:1::/48", "nat64-local"},
    {"fc00::/7", "ula"},
    {"fe80::/10", "link-local"},
    {"ff00::/8", "multicast"},
}};

struct ParsedRange {
  Cidr cidr;
  std::string_view name;
};

const std::vector<ParsedRange>& protected_ranges() {
  static const std::vector<ParsedRange> ranges = [] {
    std::vector<ParsedRange> out;
    for (const auto& p : kProtected) out.push_back({*Cidr::parse(p.cidr), p.name});
    return out;
  }();
  return ranges;
}
}  // namespace

std::optional<std::string_view> EgressGuard::refusal(const IpAddress& raw) const {
  IpAddress ip = raw.unmapped();
  for (const auto& c : allow_)
    if (c.contains(ip)) return std::nullopt;
  for (const auto& r : protected_ranges())
    if (r.cidr.contains(ip)) return r.name;
  return std::nullopt;
}

}  // namespace ramjet::egress
