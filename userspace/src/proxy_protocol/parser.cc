#include "proxy_protocol/parser.h"

#include <arpa/inet.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <optional>

namespace ramjet::proxy_protocol {
namespace {

constexpr std::string_view kV1Prefix = "PROXY ";

// PP2_TYPE_* and PP2_SUBTYPE_SSL_* (proxy-protocol.txt 2.2).
enum TlvType : std::uint8_t {
  kAlpn = 0x01,
  kAuthority = 0x02,
  kCrc32c = 0x03,
  kNoop = 0x04,
  kUniqueId = 0x05,
  kSsl = 0x20,
  kSslVersion = 0x21,
  kSslCn = 0x22,
  kSslCipher = 0x23,
  kSslSigAlg = 0x24,
  kSslKeyAlg = 0x25,
  kNetns = 0x30,
};
constexpr std::size_t kMaxUniqueId = 128;
constexpr std::size_t kSslFixedLength = 5;  // client (1) + verify (4)
constexpr std::size_t kUnixPathLength = 108;

Result need_more() {
  return {};
}
Result done(std::size_t n) {
  return {Status::kDone, n, Reason::kBadSignature, 0};
}
Result fail(Reason r, std::size_t offset) {
  return {Status::kError, 0, r, offset};
}

std::uint16_t be16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>(p[0] << 8 | p[1]);
}
std::uint32_t be32(const std::uint8_t* p) {
  return std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 | p[3];
}

// How many leading bytes of `buffer` match `signature`.
std::size_t matching(std::span<const std::uint8_t> buffer, std::string_view signature) {
  std::size_t n = 0;
  while (n < buffer.size() && n < signature.size() &&
         buffer[n] == static_cast<std::uint8_t>(signature[n]))
    ++n;
  return n;
}

constexpr std::array<std::uint32_t, 256> make_crc32c_table() {
  std::array<std::uint32_t, 256> t{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    t[i] = c;
  }
  return t;
}
constexpr auto kCrc32cTable = make_crc32c_table();

// ---------------------------------------------------------------------------------------
// v1
// ---------------------------------------------------------------------------------------

std::optional<std::uint16_t> v1_port(std::string_view s) {
  if (s.empty() || s.size() > 5 || (s.size() > 1 && s[0] == '0')) return std::nullopt;
  std::uint32_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<std::uint32_t>(c - '0');
  }
  if (v > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(v);
}

// Splits off the next space-separated token (exactly one space between tokens).
bool next_token(std::string_view& rest, std::string_view& token) {
  if (rest.empty()) return false;
  auto sp = rest.find(' ');
  token = rest.substr(0, sp);
  rest = sp == std::string_view::npos ? std::string_view{} : rest.substr(sp + 1);
  if (sp != std::string_view::npos && rest.empty()) return false;  // trailing space
  return !token.empty();
}

Result parse_v1(std::span<const std::uint8_t> buf, ProxyHeader& header) {
  // Find the CR of the CRLF; every byte before it must be printable ASCII.
  std::size_t cr = kV1Prefix.size();
  const std::size_t limit = std::min(buf.size(), kV1MaxLength - 1);  // CR's last place + 1
  while (cr < limit && buf[cr] != '\r') {
    if (buf[cr] < 0x20 || buf[cr] > 0x7e) return fail(Reason::kV1Malformed, cr);
    ++cr;
  }
  if (cr == kV1MaxLength - 1) return fail(Reason::kV1TooLong, cr);
  if (cr + 1 >= buf.size()) return need_more();  // no CR yet, or CR is the last byte
  if (buf[cr + 1] != '\n') return fail(Reason::kV1Malformed, cr + 1);

  std::string_view line(reinterpret_cast<const char*>(buf.data()) + kV1Prefix.size(),
                        cr - kV1Prefix.size());
  std::string_view proto;
  std::string_view rest = line;
  if (!next_token(rest, proto)) return fail(Reason::kV1Malformed, kV1Prefix.size());

  ProxyHeader h;
  h.version = ProxyHeader::Version::kV1;
  h.command = ProxyHeader::Command::kProxy;
  if (proto == "UNKNOWN") {
    // "the receiver must ignore anything presented before the CRLF is found"
    h.family = ProxyHeader::Family::kUnspec;
    header = std::move(h);
    return done(cr + 2);
  }
  IpAddress::Family want;
  if (proto == "TCP4") {
    h.family = ProxyHeader::Family::kInet;
    want = IpAddress::Family::kV4;
  } else if (proto == "TCP6") {
    h.family = ProxyHeader::Family::kInet6;
    want = IpAddress::Family::kV6;
  } else {
    return fail(Reason::kV1Malformed, kV1Prefix.size());
  }
  h.transport = ProxyHeader::Transport::kStream;

  std::string_view fields[4];
  for (auto& f : fields)
    if (!next_token(rest, f)) return fail(Reason::kV1Malformed, cr);
  if (!rest.empty()) return fail(Reason::kV1Malformed, cr - rest.size());
  auto at = [&](std::string_view f) {
    return static_cast<std::size_t>(f.data() - reinterpret_cast<const char*>(buf.data()));
  };
  auto src = IpAddress::parse(fields[0]);
  if (!src || src->family() != want) return fail(Reason::kV1Malformed, at(fields[0]));
  auto dst = IpAddress::parse(fields[1]);
  if (!dst || dst->family() != want) return fail(Reason::kV1Malformed, at(fields[1]));
  auto sport = v1_port(fields[2]);
  if (!sport) return fail(Reason::kV1Malformed, at(fields[2]));
  auto dport = v1_port(fields[3]);
  if (!dport) return fail(Reason::kV1Malformed, at(fields[3]));
  h.source = SocketAddress(*src, *sport);
  h.destination = SocketAddress(*dst, *dport);
  header = std::move(h);
  return done(cr + 2);
}

// ---------------------------------------------------------------------------------------
// v2
// ---------------------------------------------------------------------------------------

std::string text(const std::uint8_t* p, std::size_t n) {
  return std::string(reinterpret_cast<const char*>(p), n);
}

// The value of a string TLV that may appear once (`seen` holds one bit per type seen).
bool once(std::uint64_t& seen, std::uint8_t type) {
  const std::uint64_t bit = std::uint64_t{1} << (type & 63);
  if (seen & bit) return false;
  seen |= bit;
  return true;
}

// Walks the TLVs in [pos, end) of `base`, calling on_tlv(type, value offset, length) for
// each; a TLV that runs past `end` is an error, and so is any error on_tlv returns (one
// at offset 0 is placed at the TLV; no TLV starts there, the signature does).
template <typename OnTlv>
Result for_each_tlv(const std::uint8_t* base, std::size_t pos, std::size_t end, OnTlv on_tlv) {
  while (pos < end) {
    if (end - pos < 3) return fail(Reason::kV2TlvTruncated, pos);
    const std::uint8_t type = base[pos];
    const std::size_t len = be16(base + pos + 1);
    if (len > end - pos - 3) return fail(Reason::kV2TlvTruncated, pos);
    if (Result r = on_tlv(type, pos + 3, len); r.status == Status::kError) {
      if (r.offset == 0) r.offset = pos;
      return r;
    }
    pos += 3 + len;
  }
  return done(0);
}

// The string field of an SSL sub-TLV type, or nullptr for a type kept raw.
std::string* ssl_field(ProxySslInfo& ssl, std::uint8_t type) {
  switch (type) {
    case kSslVersion:
      return &ssl.version;
    case kSslCn:
      return &ssl.cn;
    case kSslCipher:
      return &ssl.cipher;
    case kSslSigAlg:
      return &ssl.sig_alg;
    case kSslKeyAlg:
      return &ssl.key_alg;
    default:
      return nullptr;
  }
}

Result parse_ssl(const std::uint8_t* base, std::size_t pos, std::size_t end, ProxySslInfo& ssl) {
  ssl.client = base[pos];
  ssl.verify = be32(base + pos + 1);
  std::uint64_t seen = 0;
  return for_each_tlv(base, pos + kSslFixedLength, end,
                      [&](std::uint8_t type, std::size_t value, std::size_t len) {
                        std::string* field = ssl_field(ssl, type);
                        if (!field) {
                          ssl.other.push_back({type, text(base + value, len)});
                        } else {
                          if (!once(seen, type)) return fail(Reason::kV2BadTlv, 0);
                          *field = text(base + value, len);
                        }
                        return done(0);
                      });
}

// The string field of a top-level TLV type that is decoded as text, or nullptr.
std::string* text_field(ProxyHeader& h, std::uint8_t type) {
  switch (type) {
    case kAlpn:
      return &h.alpn;
    case kAuthority:
      return &h.authority;
    case kUniqueId:
      return &h.unique_id;
    case kNetns:
      return &h.netns;
    default:
      return nullptr;
  }
}

// TLVs in [pos, end) of `base`; `crc_at` receives the offset of a CRC32C value.
Result parse_tlvs(const std::uint8_t* base, std::size_t pos, std::size_t end, ProxyHeader& h,
                  std::optional<std::size_t>& crc_at) {
  std::uint64_t seen = 0;
  return for_each_tlv(base, pos, end, [&](std::uint8_t type, std::size_t value, std::size_t len) {
    if (type == kNoop) return done(0);
    const bool known = type == kCrc32c || type == kSsl || text_field(h, type);
    if (!known) {
      h.other.push_back({type, text(base + value, len)});
      return done(0);
    }
    if (!once(seen, type)) return fail(Reason::kV2BadTlv, 0);
    if (type == kCrc32c) {
      if (len != 4) return fail(Reason::kV2BadTlv, 0);
      crc_at = value;
    } else if (type == kSsl) {
      if (len < kSslFixedLength) return fail(Reason::kV2BadTlv, 0);
      ProxySslInfo ssl;
      if (Result r = parse_ssl(base, value, value + len, ssl); r.status == Status::kError) return r;
      h.ssl = std::move(ssl);
    } else {
      if (type == kUniqueId && len > kMaxUniqueId) return fail(Reason::kV2BadTlv, 0);
      *text_field(h, type) = text(base + value, len);
    }
    return done(0);
  });
}

std::size_t address_length(ProxyHeader::Family f) {
  switch (f) {
    case ProxyHeader::Family::kInet:
      return 12;
    case ProxyHeader::Family::kInet6:
      return 36;
    case ProxyHeader::Family::kUnix:
      return 2 * kUnixPathLength;
    case ProxyHeader::Family::kUnspec:
      return 0;
  }
  return 0;
}

std::string unix_path(const std::uint8_t* p) {
  std::size_t n = 0;
  while (n < kUnixPathLength && p[n] != 0) ++n;
  return text(p, n);
}

Result parse_v2(std::span<const std::uint8_t> buf, ProxyHeader& header, const Limits& limits) {
  const std::size_t n = buf.size();
  if (n <= kV2Signature.size()) return need_more();
  const std::uint8_t ver_cmd = buf[12];
  if (ver_cmd >> 4 != 2) return fail(Reason::kV2BadVersion, 12);
  const std::uint8_t cmd = ver_cmd & 0x0f;
  if (cmd > 1) return fail(Reason::kV2BadCommand, 12);
  const bool local = cmd == 0;
  if (n < 14) return need_more();
  const std::uint8_t fam = buf[13];
  // LOCAL: "the receiver must ... discard the protocol block including the family".
  if (!local && (fam >> 4 > 3 || (fam & 0x0f) > 2)) return fail(Reason::kV2BadFamily, 13);
  if (n < kV2HeaderLength) return need_more();
  const std::size_t len = be16(buf.data() + 14);
  if (len > limits.max_v2_length) return fail(Reason::kV2Oversized, 14);
  const std::size_t total = kV2HeaderLength + len;
  if (n < total) return need_more();

  ProxyHeader h;
  h.version = ProxyHeader::Version::kV2;
  h.command = local ? ProxyHeader::Command::kLocal : ProxyHeader::Command::kProxy;
  if (local) {
    header = std::move(h);
    return done(total);
  }
  h.family = static_cast<ProxyHeader::Family>(fam >> 4);
  h.transport = static_cast<ProxyHeader::Transport>(fam & 0x0f);
  const std::size_t alen = address_length(h.family);
  if (len < alen) return fail(Reason::kV2BadAddressLength, 14);
  const std::uint8_t* a = buf.data() + kV2HeaderLength;
  switch (h.family) {
    case ProxyHeader::Family::kInet:
      h.source = SocketAddress(IpAddress::from_bytes(IpAddress::Family::kV4, a), be16(a + 8));
      h.destination =
          SocketAddress(IpAddress::from_bytes(IpAddress::Family::kV4, a + 4), be16(a + 10));
      break;
    case ProxyHeader::Family::kInet6:
      h.source = SocketAddress(IpAddress::from_bytes(IpAddress::Family::kV6, a), be16(a + 32));
      h.destination =
          SocketAddress(IpAddress::from_bytes(IpAddress::Family::kV6, a + 16), be16(a + 34));
      break;
    case ProxyHeader::Family::kUnix:
      h.source_path = unix_path(a);
      h.destination_path = unix_path(a + kUnixPathLength);
      break;
    case ProxyHeader::Family::kUnspec:
      break;
  }

  std::optional<std::size_t> crc_at;
  if (auto r = parse_tlvs(buf.data(), kV2HeaderLength + alen, total, h, crc_at);
      r.status == Status::kError)
    return r;
  if (crc_at) {
    static constexpr std::uint8_t kZero[4] = {};
    std::uint32_t crc = crc32c(buf.subspan(0, *crc_at));
    crc = crc32c(kZero, crc);
    crc = crc32c(buf.subspan(*crc_at + 4, total - *crc_at - 4), crc);
    if (crc != be32(buf.data() + *crc_at)) return fail(Reason::kV2BadChecksum, *crc_at);
    h.crc32c_checked = true;
  }
  header = std::move(h);
  return done(total);
}

// ---------------------------------------------------------------------------------------
// Encoder helpers
// ---------------------------------------------------------------------------------------

void put16(std::string& out, std::size_t v) {
  out.push_back(static_cast<char>(v >> 8 & 0xff));
  out.push_back(static_cast<char>(v & 0xff));
}

void put_tlv(std::string& out, std::uint8_t type, std::string_view value) {
  out.push_back(static_cast<char>(type));
  put16(out, value.size());
  out.append(value);
}

void put_address(std::string& out, const std::optional<SocketAddress>& a, std::size_t size) {
  if (a && a->ip().size() == size)
    out.append(reinterpret_cast<const char*>(a->ip().data()), size);
  else
    out.append(size, '\0');
}

void put_unix_path(std::string& out, const std::string& path) {
  std::string p = path.substr(0, kUnixPathLength);
  p.resize(kUnixPathLength, '\0');
  out.append(p);
}

}  // namespace

Detected detect(std::span<const std::uint8_t> buffer) {
  if (buffer.empty()) return Detected::kNeedMore;
  const std::size_t v1 = matching(buffer, kV1Prefix);
  if (v1 == kV1Prefix.size()) return Detected::kV1;
  const std::size_t v2 = matching(buffer, kV2Signature);
  if (v2 == kV2Signature.size()) return Detected::kV2;
  if (v1 == buffer.size() || v2 == buffer.size()) return Detected::kNeedMore;
  return Detected::kNone;
}

Result parse(std::span<const std::uint8_t> buffer, ProxyHeader& header, const Limits& limits) {
  switch (detect(buffer)) {
    case Detected::kNeedMore:
      return need_more();
    case Detected::kNone:
      return fail(Reason::kBadSignature,
                  std::max(matching(buffer, kV1Prefix), matching(buffer, kV2Signature)));
    case Detected::kV1:
      if (!limits.accept_v1) return fail(Reason::kVersionNotAllowed, 0);
      return parse_v1(buffer, header);
    case Detected::kV2:
      if (!limits.accept_v2) return fail(Reason::kVersionNotAllowed, 0);
      return parse_v2(buffer, header, limits);
  }
  return fail(Reason::kBadSignature, 0);
}

std::uint32_t crc32c(std::span<const std::uint8_t> data, std::uint32_t crc) {
  crc = ~crc;
  for (std::uint8_t b : data) crc = kCrc32cTable[(crc ^ b) & 0xff] ^ (crc >> 8);
  return ~crc;
}

std::string encode_v2(const ProxyHeader& h, bool with_crc32c) {
  std::string out(kV2Signature);
  const bool local = h.command == ProxyHeader::Command::kLocal;
  out.push_back(static_cast<char>(0x20 | (local ? 0 : 1)));
  out.push_back(static_cast<char>(static_cast<std::uint8_t>(h.family) << 4 |
                                  static_cast<std::uint8_t>(h.transport)));
  put16(out, 0);  // patched below

  switch (h.family) {
    case ProxyHeader::Family::kInet:
    case ProxyHeader::Family::kInet6: {
      const std::size_t size = h.family == ProxyHeader::Family::kInet ? 4 : 16;
      put_address(out, h.source, size);
      put_address(out, h.destination, size);
      put16(out, h.source ? h.source->port() : 0);
      put16(out, h.destination ? h.destination->port() : 0);
      break;
    }
    case ProxyHeader::Family::kUnix:
      put_unix_path(out, h.source_path);
      put_unix_path(out, h.destination_path);
      break;
    case ProxyHeader::Family::kUnspec:
      break;
  }
  if (!h.alpn.empty()) put_tlv(out, kAlpn, h.alpn);
  if (!h.authority.empty()) put_tlv(out, kAuthority, h.authority);
  if (!h.unique_id.empty()) put_tlv(out, kUniqueId, h.unique_id);
  if (h.ssl) {
    std::string v;
    v.push_back(static_cast<char>(h.ssl->client));
    for (int shift = 24; shift >= 0; shift -= 8)
      v.push_back(static_cast<char>(h.ssl->verify >> shift & 0xff));
    if (!h.ssl->version.empty()) put_tlv(v, kSslVersion, h.ssl->version);
    if (!h.ssl->cn.empty()) put_tlv(v, kSslCn, h.ssl->cn);
    if (!h.ssl->cipher.empty()) put_tlv(v, kSslCipher, h.ssl->cipher);
    if (!h.ssl->sig_alg.empty()) put_tlv(v, kSslSigAlg, h.ssl->sig_alg);
    if (!h.ssl->key_alg.empty()) put_tlv(v, kSslKeyAlg, h.ssl->key_alg);
    for (const auto& t : h.ssl->other) put_tlv(v, t.type, t.value);
    put_tlv(out, kSsl, v);
  }
  if (!h.netns.empty()) put_tlv(out, kNetns, h.netns);
  for (const auto& t : h.other) put_tlv(out, t.type, t.value);
  std::size_t crc_at = 0;
  if (with_crc32c) {
    put_tlv(out, kCrc32c, std::string(4, '\0'));
    crc_at = out.size() - 4;
  }

  const std::size_t len = out.size() - kV2HeaderLength;
  out[14] = static_cast<char>(len >> 8 & 0xff);
  out[15] = static_cast<char>(len & 0xff);
  if (with_crc32c) {
    const std::uint32_t crc =
        crc32c(std::span(reinterpret_cast<const std::uint8_t*>(out.data()), out.size()));
    for (int i = 0; i < 4; ++i) out[crc_at + i] = static_cast<char>(crc >> (24 - 8 * i) & 0xff);
  }
  return out;
}

namespace {

// Peer-chosen text is shown only when it is short printable ASCII.
bool printable(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s)
    if (c <= 0x20 || c > 0x7e) return false;
  return true;
}

}  // namespace

std::string describe(const ProxyHeader& h) {
  static constexpr const char* kFamily[] = {"unspec", "inet", "inet6", "unix"};
  static constexpr const char* kTransport[] = {"unspec", "stream", "dgram"};
  std::string out = h.version == ProxyHeader::Version::kV1 ? "v1" : "v2";
  if (h.command == ProxyHeader::Command::kLocal) return out + " local";
  out += " proxy ";
  out += kTransport[static_cast<std::size_t>(h.transport)];
  if (h.source && h.destination) {
    out += " " + h.source->to_string() + " -> " + h.destination->to_string();
  } else {
    out += " ";
    out += kFamily[static_cast<std::size_t>(h.family)];
  }
  auto named = [&](const char* name, const std::string& v, bool show) {
    if (v.empty()) return;
    out += " ";
    out += name;
    if (show && printable(v)) out += "=" + v;
  };
  named("alpn", h.alpn, true);
  named("authority", h.authority, true);
  named("unique_id", h.unique_id, false);
  named("netns", h.netns, false);
  if (h.ssl) out += (h.ssl->client & ProxySslInfo::kClientSsl) ? " ssl" : " ssl=no";
  if (h.crc32c_checked) out += " crc32c";
  if (!h.other.empty()) {
    out += " tlvs=";
    char hex[8];
    for (std::size_t i = 0; i < h.other.size(); ++i) {
      std::snprintf(hex, sizeof hex, "%s0x%02x", i ? "," : "", h.other[i].type);
      out += hex;
    }
  }
  return out;
}

std::string encode_v1(const ProxyHeader& h) {
  const bool inet =
      h.family == ProxyHeader::Family::kInet || h.family == ProxyHeader::Family::kInet6;
  if (!inet || !h.source || !h.destination) return "PROXY UNKNOWN\r\n";
  std::string out = h.family == ProxyHeader::Family::kInet ? "PROXY TCP4 " : "PROXY TCP6 ";
  out += h.source->ip().to_string() + " " + h.destination->ip().to_string() + " " +
         std::to_string(h.source->port()) + " " + std::to_string(h.destination->port()) + "\r\n";
  return out;
}

}  // namespace ramjet::proxy_protocol
