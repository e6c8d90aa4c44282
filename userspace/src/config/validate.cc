#include "validate.h"

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <string>
#include <string_view>

namespace ramjet::config {
namespace {

using settings::Mark;
using settings::Node;

bool valid_endpoint_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

bool is_wildcard(const IpAddress& ip) {
  for (std::size_t i = 0; i < ip.size(); ++i) {
    if (ip.data()[i] != 0) return false;
  }
  return true;
}

// Same port and family with one side the wildcard address: the more specific socket
// silently takes part of the other's traffic, which is never what two tenants want.
bool listen_overlaps(const SocketAddress& a, const SocketAddress& b) {
  return a.port() == b.port() && a.ip().family() == b.ip().family() &&
         (is_wildcard(a.ip()) || is_wildcard(b.ip()));
}

const Node* list_item(const Node* datapath, std::string_view key, std::size_t i) {
  const Node* list = datapath ? datapath->find(key) : nullptr;
  if (!list || !list->is_sequence() || i >= list->items.size()) return nullptr;
  return &list->items[i];
}

bool valid_alpn_token(const std::string& t) { return !t.empty() && t.size() <= 255; }

// ALPN names: any token on a tcp endpoint; on an http endpoint the protocols it speaks.
void check_alpn(settings::ParseContext& ctx, const Endpoint& ep, const std::vector<std::string>& alpn,
                const Mark& mark, const std::string& key) {
  for (std::size_t i = 0; i < alpn.size(); ++i) {
    const std::string& a = alpn[i];
    bool known = ep.onramp == Onramp::kTcp ? valid_alpn_token(a) : (a == "http/1.1" || a == "h2");
    if (!known) {
      ctx.error(mark, settings::index_path(key, i),
                ep.onramp == Onramp::kTcp
                    ? "an ALPN name is 1 to 255 bytes"
                    : "unknown ALPN name \"" + a + "\" for an http endpoint (http/1.1 or h2)");
    }
  }
}

void validate_tls(const Endpoint& ep, const Node* node, Mark ep_mark, const std::string& path,
                  settings::ParseContext& ctx) {
  const Node* tls_node = node ? node->find("tls") : nullptr;
  Mark tls_mark = tls_node && tls_node->mark.line ? tls_node->mark : ep_mark;
  if (const auto& tls = ep.tls) {
    if (ep.transparent) {
      ctx.error(tls_mark, path + ".tls", "transparent endpoints relay what the datapath sends "
                                         "them as it is; they cannot terminate TLS");
    }
    if (tls->certificates.empty()) {
      ctx.error(mark_of(tls_node, "certificates", tls_mark), path + ".tls.certificates",
                "at least one certificate is needed");
    }
    if (tls->min_version > tls->max_version) {
      ctx.error(mark_of(tls_node, "min_version", tls_mark), path + ".tls.min_version",
                "min_version is newer than max_version: no version is left");
    }
    check_alpn(ctx, ep, tls->alpn, mark_of(tls_node, "alpn", tls_mark), path + ".tls.alpn");
    const Node* ca_node = tls_node ? tls_node->find("client_auth") : nullptr;
    if (tls->client_auth.mode != ClientAuthMode::kOff && tls->client_auth.ca.empty()) {
      ctx.error(mark_of(ca_node, "ca", mark_of(tls_node, "client_auth", tls_mark)),
                path + ".tls.client_auth.ca", "client_auth needs the CA file to verify against");
    }
    if (tls->session_tickets.enabled && tls->session_tickets.rotate.count() < 1000) {
      const Node* st = tls_node ? tls_node->find("session_tickets") : nullptr;
      ctx.error(mark_of(st, "rotate", tls_mark), path + ".tls.session_tickets.rotate",
                "ticket keys rotate at most once a second");
    }
  }
  if (const auto& up = ep.upstream_tls) {
    const Node* up_node = node ? node->find("upstream_tls") : nullptr;
    Mark up_mark = up_node && up_node->mark.line ? up_node->mark : ep_mark;
    if (ep.transparent) {
      ctx.error(up_mark, path + ".upstream_tls",
                "transparent endpoints relay to the original destination as it is");
    }
    if (up->ca.empty()) {
      ctx.error(mark_of(up_node, "ca", up_mark), path + ".upstream_tls.ca",
                "name a PEM file of CAs, or system");
    }
    check_alpn(ctx, ep, up->alpn, mark_of(up_node, "alpn", up_mark), path + ".upstream_tls.alpn");
  }
}

void validate_proxy_protocol(const Endpoint& ep, const Node* node, Mark ep_mark,
                             const std::string& path, settings::ParseContext& ctx) {
  const ProxyProtocolSettings& pp = ep.proxy_protocol;
  const Node* pp_node = node ? node->find("proxy_protocol") : nullptr;
  Mark pp_mark = pp_node && pp_node->mark.line ? pp_node->mark : ep_mark;
  const std::string key = path + ".proxy_protocol";
  for (std::size_t i = 0; i < pp.versions.size(); ++i) {
    const unsigned v = pp.versions[i];
    const bool repeated =
        std::find(pp.versions.begin(), pp.versions.begin() + i, v) != pp.versions.begin() + i;
    const Node* item = list_item(pp_node, "versions", i);
    const Mark item_mark = item && item->mark.line ? item->mark : pp_mark;
    if (v != 1 && v != 2) {
      ctx.error(item_mark, settings::index_path(key + ".versions", i),
                "unknown PROXY protocol version " + std::to_string(v) + " (1 or 2)");
    } else if (repeated) {
      ctx.error(item_mark, settings::index_path(key + ".versions", i),
                "version " + std::to_string(v) + " is listed twice");
    }
  }
  if (!pp.enabled()) return;
  if (pp.versions.empty()) {
    ctx.error(mark_of(pp_node, "versions", pp_mark), key + ".versions",
              "no version left to accept (list 1, 2 or both)");
  }
  if (pp.trusted.empty()) {
    ctx.error(mark_of(pp_node, "trusted", pp_mark), key + ".trusted",
              "name the peers allowed to send a PROXY header (a header lets its sender choose "
              "the client address; 0.0.0.0/0 and ::/0 trust every peer)");
  }
  if (pp.timeout.count() <= 0) {
    ctx.error(mark_of(pp_node, "timeout", pp_mark), key + ".timeout",
              "the header must arrive within a positive time");
  }
}

void validate_send_proxy_protocol(const Endpoint& ep, const Node* node, Mark ep_mark,
                                  const std::string& path, settings::ParseContext& ctx) {
  if (!ep.send_proxy_protocol) return;
  const SendProxyProtocolSettings& send = *ep.send_proxy_protocol;
  const Node* send_node = node ? node->find("send_proxy_protocol") : nullptr;
  Mark send_mark = send_node && send_node->mark.line ? send_node->mark : ep_mark;
  const std::string key = path + ".send_proxy_protocol";
  if (send.version != 1 && send.version != 2) {
    ctx.error(mark_of(send_node, "version", send_mark), key + ".version",
              "unknown PROXY protocol version " + std::to_string(send.version) + " (1 or 2)");
  }
  if (send.version == 1 && (!send.tlvs.empty() || send.crc32c)) {
    ctx.error(send_mark, key, "version 1 headers carry no TLVs (use version 2)");
  }
  for (std::size_t i = 0; i < send.tlvs.size(); ++i) {
    const Node* item = list_item(send_node, "tlvs", i);
    const Mark item_mark = item && item->mark.line ? item->mark : send_mark;
    if (send.tlvs[i].type > 255)
      ctx.error(item_mark, settings::index_path(key + ".tlvs", i) + ".type",
                "a TLV type is one byte (0 to 255; 0xE0-0xEF are for applications)");
    if (send.tlvs[i].value.size() > 1024)
      ctx.error(item_mark, settings::index_path(key + ".tlvs", i) + ".value",
                "at most 1024 bytes per TLV (receivers cap whole headers at a few KiB)");
  }
}

// At most one source address per family, and a real one.
void validate_source(const Endpoint& ep, const Node* node, Mark ep_mark, const std::string& path,
                     settings::ParseContext& ctx) {
  for (std::size_t s = 0; s < ep.source.size(); ++s) {
    const IpAddress& ip = ep.source[s];
    Mark mark = mark_of(node, "source", ep_mark);
    if (const Node* list = node ? node->find("source") : nullptr;
        list && list->is_sequence() && s < list->items.size() && list->items[s].mark.line)
      mark = list->items[s].mark;
    const std::string key = settings::index_path(path + ".source", s);
    if (is_wildcard(ip)) {
      ctx.error(mark, key, "a source address is one of this host's addresses, not the wildcard");
      continue;
    }
    for (std::size_t o = 0; o < s; ++o) {
      if (ep.source[o].family() == ip.family()) {
        ctx.error(mark, key,
                  std::string("at most one source address per family (two ") +
                      (ip.is_v4() ? "IPv4" : "IPv6") + " addresses)");
        break;
      }
    }
  }
}

bool valid_ifname(const std::string& n) {
  if (n.empty() || n.size() >= 16 || n == "." || n == "..") return false;
  return std::all_of(n.begin(), n.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}

// `onramp: ip`: a TUN device instead of a listener, so the keys of listening endpoints
// do not apply, and the device's names and numbers must not collide.
void validate_ip_endpoint(const Config& config, std::size_t i, const Node* node, Mark ep_mark,
                          const std::string& path, settings::ParseContext& ctx) {
  const Endpoint& ep = config.endpoints[i];
  for (const char* key : {"listen", "upstream", "tls", "upstream_tls", "proxy_protocol",
                          "send_proxy_protocol", "transparent", "source", "auth"}) {
    if (node && node->find(key))
      ctx.error(mark_of(node, key, ep_mark), path + "." + key,
                std::string("ip endpoints take packets from their TUN device: \"") + key +
                    "\" does not apply");
  }
  if (!ep.tun) {
    ctx.error(ep_mark, path, "missing required key \"tun\" (ip endpoints read a TUN device)");
    return;
  }
  const TunSettings& t = *ep.tun;
  const Node* tun = node ? node->find("tun") : nullptr;
  Mark tun_mark = tun && tun->mark.line ? tun->mark : ep_mark;
  const std::string tpath = path + ".tun";
  if (!valid_ifname(t.name))
    ctx.error(mark_of(tun, "name", tun_mark), tpath + ".name",
              "invalid interface name \"" + t.name + "\" (1 to 15 of a-z, A-Z, 0-9, -, _ and .)");
  for (std::size_t a = 0; a < t.addresses.size(); ++a) {
    const std::string& text = t.addresses[a];
    auto slash = text.find('/');
    if (slash == std::string::npos || !IpAddress::parse(text.substr(0, slash)) ||
        !Cidr::parse(text))
      ctx.error(mark_of(tun, "addresses", tun_mark), tpath + ".addresses",
                "\"" + text + "\" is not ip/prefix-length (e.g. 10.99.0.1/24)");
  }
  if (t.mtu < 68 || t.mtu > 65535)
    ctx.error(mark_of(tun, "mtu", tun_mark), tpath + ".mtu",
              "must be between 68 and 65535 (got " + std::to_string(t.mtu) + ")");
  if (t.route_table == 0 || (t.route_table >= 253 && t.route_table <= 255))
    ctx.error(mark_of(tun, "route_table", tun_mark), tpath + ".route_table",
              "0, 253, 254 and 255 are the kernel's tables (got " +
                  std::to_string(t.route_table) + ")");
  if (t.route_table == config.datapath.route_table)
    ctx.error(mark_of(tun, "route_table", tun_mark), tpath + ".route_table",
              "is datapath.route_table too (" + std::to_string(t.route_table) + ")");
  if (t.handoff_table == 0 || (t.handoff_table >= 253 && t.handoff_table <= 255))
    ctx.error(mark_of(tun, "handoff_table", tun_mark), tpath + ".handoff_table",
              "0, 253, 254 and 255 are the kernel's tables (got " +
                  std::to_string(t.handoff_table) + ")");
  else if (t.handoff_table == config.datapath.route_table)
    ctx.error(mark_of(tun, "handoff_table", tun_mark), tpath + ".handoff_table",
              "is datapath.route_table too (" + std::to_string(t.handoff_table) + ")");
  else
    for (const Endpoint& other : config.endpoints)
      if (other.onramp == Onramp::kIp && other.tun && other.tun->route_table == t.handoff_table) {
        ctx.error(mark_of(tun, "handoff_table", tun_mark), tpath + ".handoff_table",
                  "is the route_table of endpoint " + other.name + " (" +
                      std::to_string(t.handoff_table) + ")");
        break;
      }
  if (t.rule_priority == 0 || t.rule_priority >= 32766)
    ctx.error(mark_of(tun, "rule_priority", tun_mark), tpath + ".rule_priority",
              "must be between 1 and 32765, before the main table's rule (got " +
                  std::to_string(t.rule_priority) + ")");
  if (t.bypass_mark == 0 || t.bypass_mark == config.datapath.escalate_mark)
    ctx.error(mark_of(tun, "bypass_mark", tun_mark), tpath + ".bypass_mark",
              "must be non-zero and differ from datapath.escalate_mark");
  if (ep.max_flows == 0)
    ctx.error(mark_of(node, "max_flows", ep_mark), path + ".max_flows", "must be at least 1");
  for (std::size_t j = 0; j < i; ++j) {
    const Endpoint& other = config.endpoints[j];
    if (other.onramp != Onramp::kIp || !other.tun) continue;
    std::string clash;
    if (other.tun->name == t.name) clash = "name";
    else if (other.tun->route_table == t.route_table) clash = "route_table";
    else if (other.tun->rule_priority == t.rule_priority) clash = "rule_priority";
    else if (other.tun->bypass_mark == t.bypass_mark) clash = "bypass_mark";
    if (!clash.empty()) {
      ctx.error(mark_of(tun, clash, tun_mark), tpath + "." + clash,
                "the same as " + settings::index_path("endpoints", j) + ".tun." + clash);
      break;
    }
  }
}

// What a udp endpoint cannot have, and its own settings.
void validate_udp(const Endpoint& ep, const Node* node, Mark ep_mark, const std::string& path,
                  settings::ParseContext& ctx) {
  if (ep.onramp != Onramp::kUdp) return;
  if (!ep.upstream && !ep.transparent)
    ctx.error(ep_mark, path, "missing required key \"upstream\" (udp endpoints relay to it)");
  if (ep.upstream && ep.upstream->scheme != UpstreamTarget::Scheme::kNone)
    ctx.error(mark_of(node, "upstream", ep_mark), path + ".upstream",
              "udp endpoints relay datagrams to host:port");
  for (const char* key : {"tls", "upstream_tls"})
    if (node && node->find(key))
      ctx.error(mark_of(node, key, ep_mark), path + "." + key,
                "udp endpoints relay datagrams as they are (no TLS; DTLS and QUIC are not "
                "terminated here)");
  const Node* pp_node = node ? node->find("proxy_protocol") : nullptr;
  if (ep.proxy_protocol.enabled() && !ep.proxy_protocol.accepts(2))
    ctx.error(mark_of(pp_node, "versions", mark_of(node, "proxy_protocol", ep_mark)),
              path + ".proxy_protocol.versions",
              "PROXY headers over UDP are version 2 only (docs/udp.md): list 2");
  if (ep.send_proxy_protocol && ep.send_proxy_protocol->version != 2) {
    const Node* send_node = node ? node->find("send_proxy_protocol") : nullptr;
    ctx.error(mark_of(send_node, "version", mark_of(node, "send_proxy_protocol", ep_mark)),
              path + ".send_proxy_protocol.version",
              "PROXY headers over UDP are version 2 only (docs/udp.md)");
  }
  const Node* udp_node = node ? node->find("udp") : nullptr;
  Mark udp_mark = mark_of(node, "udp", ep_mark);
  if (ep.udp.idle_timeout.count() <= 0)
    ctx.error(mark_of(udp_node, "idle_timeout", udp_mark), path + ".udp.idle_timeout",
              "a session must be allowed a positive idle time");
  if (ep.udp.max_sessions < 1)
    ctx.error(mark_of(udp_node, "max_sessions", udp_mark), path + ".udp.max_sessions",
              "at least one session (got 0)");
  if (ep.udp.setup_queue < 1 || ep.udp.setup_queue > 4096)
    ctx.error(mark_of(udp_node, "setup_queue", udp_mark), path + ".udp.setup_queue",
              "must be between 1 and 4096 (got " + std::to_string(ep.udp.setup_queue) + ")");
}

// connect-udp is served by explicit forward proxies only: a client that asks a proxy for a
// UDP tunnel knows it talks to one. The template itself is the http layer's to check
// (http/connect_udp_config.h), as a config::AppSchema::Check.
void validate_connect_udp(const Endpoint& ep, const Node* node, Mark ep_mark,
                          const std::string& path, settings::ParseContext& ctx) {
  if (!ep.connect_udp.enabled) return;
  const Node* cu_node = node ? node->find("connect_udp") : nullptr;
  const Mark cu_mark = mark_of(node, "connect_udp", ep_mark);
  const std::string key = path + ".connect_udp";
  if (ep.onramp != Onramp::kHttp) {
    ctx.error(mark_of(cu_node, "enabled", cu_mark), key + ".enabled",
              "connect-udp tunnels are served by http endpoints (onramp: http) only");
  } else if (ep.transparent) {
    ctx.error(mark_of(cu_node, "enabled", cu_mark), key + ".enabled",
              "transparent endpoints serve intercepted clients, which never ask a proxy for a "
              "UDP tunnel; connect-udp needs an explicit forward proxy");
  } else if (ep.upstream) {
    ctx.error(mark_of(cu_node, "enabled", cu_mark), key + ".enabled",
              "an http endpoint with an upstream is a reverse proxy; connect-udp needs a "
              "forward proxy (no upstream)");
  }
  if (ep.connect_udp.idle_timeout.count() <= 0)
    ctx.error(mark_of(cu_node, "idle_timeout", cu_mark), key + ".idle_timeout",
              "a tunnel must be allowed a positive idle time");
}

// HTTP/3 is one more way into an http endpoint, with its certificates: QUIC always
// runs TLS 1.3, so `tls` must be there.
void validate_quic(const Endpoint& ep, const Node* node, Mark ep_mark, const std::string& path,
                   settings::ParseContext& ctx) {
  if (!ep.quic) return;
  const QuicSettings& q = *ep.quic;
  const Node* q_node = node ? node->find("quic") : nullptr;
  const Mark q_mark = mark_of(node, "quic", ep_mark);
  const std::string key = path + ".quic";
  if (ep.onramp != Onramp::kHttp) {
    ctx.error(q_mark, key, "QUIC (HTTP/3) is served by http endpoints (onramp: http) only");
    return;
  }
  if (ep.transparent) {
    ctx.error(q_mark, key,
              "transparent endpoints take flows the datapath escalates; QUIC is served on "
              "an explicit listen address only");
    return;
  }
  if (!ep.tls) {
    ctx.error(q_mark, key,
              "QUIC needs the endpoint's tls section: its certificates serve HTTP/3 as well");
  }
  if (q.idle_timeout.count() <= 0)
    ctx.error(mark_of(q_node, "idle_timeout", q_mark), key + ".idle_timeout",
              "a connection must be allowed a positive idle time");
  if (q.handshake_timeout.count() <= 0)
    ctx.error(mark_of(q_node, "handshake_timeout", q_mark), key + ".handshake_timeout",
              "a handshake must be allowed a positive time");
  if (q.max_connections < 1)
    ctx.error(mark_of(q_node, "max_connections", q_mark), key + ".max_connections",
              "at least one connection (got 0)");
  if (q.max_streams_bidi < 1)
    ctx.error(mark_of(q_node, "max_streams_bidi", q_mark), key + ".max_streams_bidi",
              "at least one request stream (got 0)");
  if (q.max_streams_uni < 3)
    ctx.error(mark_of(q_node, "max_streams_uni", q_mark), key + ".max_streams_uni",
              "HTTP/3 clients open 3 unidirectional streams (control, QPACK encoder and "
              "decoder); at least 3 (got " + std::to_string(q.max_streams_uni) + ")");
  if (q.max_stream_data < 1024)
    ctx.error(mark_of(q_node, "max_stream_data", q_mark), key + ".max_stream_data",
              "at least 1024 bytes (got " + std::to_string(q.max_stream_data) + ")");
  if (q.max_data < q.max_stream_data)
    ctx.error(mark_of(q_node, "max_data", q_mark), key + ".max_data",
              "the connection window (" + std::to_string(q.max_data) +
                  ") is smaller than one stream's (max_stream_data " +
                  std::to_string(q.max_stream_data) + ")");
}

// UDP addresses: udp endpoints' listen and quic listen addresses share one port space.
const SocketAddress* udp_listen(const Endpoint& ep) {
  if (ep.onramp == Onramp::kUdp) return &ep.listen;
  if (ep.quic && ep.onramp == Onramp::kHttp) return &ep.quic->listen;
  return nullptr;
}

void validate_udp_ports(const Config& config, const Node& root, settings::ParseContext& ctx) {
  for (std::size_t i = 0; i < config.endpoints.size(); ++i) {
    const Endpoint& ep = config.endpoints[i];
    // udp endpoints' own addresses are checked with the listen addresses.
    if (ep.onramp == Onramp::kUdp) continue;
    const SocketAddress* mine = udp_listen(ep);
    if (mine == nullptr || mine->port() == 0) continue;
    const Node* node = endpoint_node(root, i);
    const Node* q_node = node ? node->find("quic") : nullptr;
    const Mark at = mark_of(q_node, "listen", mark_of(node, "quic", root.mark));
    const std::string key = settings::index_path("endpoints", i) + ".quic.listen";
    for (std::size_t j = 0; j < config.endpoints.size(); ++j) {
      const SocketAddress* other = j == i ? nullptr : udp_listen(config.endpoints[j]);
      if (other == nullptr || (config.endpoints[j].onramp != Onramp::kUdp && j > i)) continue;
      const std::string other_path = settings::index_path("endpoints", j) +
                                     (config.endpoints[j].onramp == Onramp::kUdp ? ".listen"
                                                                                 : ".quic.listen");
      if (*other == *mine) {
        ctx.error(at, key,
                  "duplicate UDP address " + mine->to_string() + " (also used by " + other_path + ")");
        break;
      }
      if (listen_overlaps(*other, *mine)) {
        ctx.error(at, key,
                  "UDP address " + mine->to_string() + " overlaps " + other->to_string() + " of " +
                      other_path);
        break;
      }
    }
  }
}

// A transparent http endpoint serves intercepted clients, which know of no proxy.
void validate_transparent_http(const Endpoint& ep, const Node* node, Mark ep_mark,
                               const std::string& path, settings::ParseContext& ctx) {
  if (ep.onramp != Onramp::kHttp || !ep.transparent) return;
  // A client that does not know it talks to a proxy never answers a 407.
  if (ep.auth.enabled())
    ctx.error(mark_of(node, "auth", ep_mark), path + ".auth",
              "transparent endpoints serve intercepted clients, which do not know of a proxy "
              "and never send Proxy-Authorization; remove \"auth\"");
  // HTTP/2 requests would be routed by their :authority, which is the client's to choose.
  if (ep.http.h2c) {
    const Node* http_node = node ? node->find("http") : nullptr;
    ctx.error(mark_of(http_node, "h2c", mark_of(node, "http", ep_mark)), path + ".http.h2c",
              "transparent http endpoints serve HTTP/1.1 only (h2c is not supported on them)");
  }
}

void validate_endpoints(const Config& config, const Node& root, settings::ParseContext& ctx) {
  const Node* section = root.find("endpoints");
  Mark section_mark = section ? section->mark : root.mark;
  for (std::size_t i = 0; i < config.endpoints.size(); ++i) {
    const Endpoint& ep = config.endpoints[i];
    const Node* node = endpoint_node(root, i);
    Mark ep_mark = node && node->mark.line ? node->mark : section_mark;
    std::string path = settings::index_path("endpoints", i);

    if (!valid_endpoint_name(ep.name)) {
      ctx.error(mark_of(node, "name", ep_mark), path + ".name",
                "invalid endpoint name \"" + ep.name + "\" (use 1 to 64 of a-z, 0-9, _ and -)");
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (config.endpoints[j].name == ep.name) {
        ctx.error(mark_of(node, "name", ep_mark), path + ".name",
                  "duplicate endpoint name \"" + ep.name + "\" (also used by " +
                      settings::index_path("endpoints", j) + ")");
        break;
      }
    }
    if (ep.onramp == Onramp::kIp) {
      validate_ip_endpoint(config, i, node, ep_mark, path, ctx);
      continue;
    }
    if (ep.tun) {
      ctx.error(mark_of(node, "tun", ep_mark), path + ".tun", "only ip endpoints have a TUN device");
    }
    if (node && !node->find("listen")) {
      ctx.error(ep_mark, path, "missing required key \"listen\"");
    }
    validate_transparent_http(ep, node, ep_mark, path, ctx);
    if (ep.transparent && ep.upstream) {
      ctx.error(mark_of(node, "upstream", ep_mark), path + ".upstream",
                "transparent endpoints relay each flow to its original destination; remove "
                "\"upstream\"");
    }
    if (ep.onramp == Onramp::kTcp && !ep.upstream && !ep.transparent) {
      ctx.error(ep_mark, path, "missing required key \"upstream\" (tcp endpoints relay to it)");
    }
    if (ep.upstream && ep.onramp == Onramp::kTcp &&
        ep.upstream->scheme != UpstreamTarget::Scheme::kNone) {
      ctx.error(mark_of(node, "upstream", ep_mark), path + ".upstream",
                "tcp endpoints relay to host:port (use upstream_tls for TLS to it)");
    }
    if (ep.upstream && ep.onramp == Onramp::kHttp &&
        ep.upstream->scheme == UpstreamTarget::Scheme::kNone) {
      ctx.error(mark_of(node, "upstream", ep_mark), path + ".upstream",
                "an http endpoint's upstream (reverse-proxy mode) is http://host[:port] or "
                "https://host[:port]");
    }
    validate_udp(ep, node, ep_mark, path, ctx);
    validate_connect_udp(ep, node, ep_mark, path, ctx);
    validate_quic(ep, node, ep_mark, path, ctx);
    validate_tls(ep, node, ep_mark, path, ctx);
    validate_source(ep, node, ep_mark, path, ctx);
    validate_proxy_protocol(ep, node, ep_mark, path, ctx);
    validate_send_proxy_protocol(ep, node, ep_mark, path, ctx);
    if (ep.backlog < 1 || ep.backlog > 65535) {
      ctx.error(mark_of(node, "backlog", ep_mark), path + ".backlog",
                "must be between 1 and 65535 (got " + std::to_string(ep.backlog) + ")");
    }
    // Port 0 asks the kernel for a fresh port, so two of them never collide.
    if (ep.listen.port() != 0) {
      for (std::size_t j = 0; j < i; ++j) {
        // UDP and TCP ports are separate: a udp endpoint may share a tcp one's address.
        if ((config.endpoints[j].onramp == Onramp::kUdp) != (ep.onramp == Onramp::kUdp)) continue;
        const SocketAddress& other = config.endpoints[j].listen;
        std::string other_path = settings::index_path("endpoints", j);
        if (other == ep.listen) {
          ctx.error(mark_of(node, "listen", ep_mark), path + ".listen",
                    "duplicate listen address " + ep.listen.to_string() + " (also used by " +
                        other_path + ")");
          break;
        }
        if (listen_overlaps(other, ep.listen)) {
          ctx.error(mark_of(node, "listen", ep_mark), path + ".listen",
                    "listen address " + ep.listen.to_string() + " overlaps " + other.to_string() +
                        " of " + other_path);
          break;
        }
      }
    }
  }
}

void validate_datapath(const Config& config, const Node& root, settings::ParseContext& ctx) {
  const DatapathSettings& dp = config.datapath;
  const Node* node = root.find("datapath");
  Mark dp_mark = node && node->mark.line ? node->mark : root.mark;
  if (!valid_endpoint_name(dp.instance)) {
    ctx.error(mark_of(node, "instance", dp_mark), "datapath.instance",
              "invalid instance name \"" + dp.instance + "\" (use 1 to 64 of a-z, 0-9, _ and -)");
  }
  if (dp.enabled && dp.interfaces.empty()) {
    ctx.error(mark_of(node, "interfaces", dp_mark), "datapath.interfaces",
              "the datapath is enabled but attaches to no interface");
  }
  if (dp.default_action == DatapathAction::kEscalate ||
      dp.default_action == DatapathAction::kRatelimit) {
    ctx.error(mark_of(node, "default_action", dp_mark), "datapath.default_action",
              "must be pass, drop or fastpath (escalate and ratelimit need a rule)");
  }
  if (dp.rules.size() > kDatapathMaxRules) {
    ctx.error(mark_of(node, "rules", dp_mark), "datapath.rules",
              "at most " + std::to_string(kDatapathMaxRules) + " rules (got " +
                  std::to_string(dp.rules.size()) + ")");
  }
  if (dp.enabled && config.endpoints.size() > kDatapathMaxEndpoints) {
    const Node* first_over = endpoint_node(root, kDatapathMaxEndpoints);
    Mark over_mark = first_over && first_over->mark.line ? first_over->mark : dp_mark;
    ctx.error(over_mark, settings::index_path("endpoints", kDatapathMaxEndpoints),
              "with the datapath enabled, at most " + std::to_string(kDatapathMaxEndpoints) +
                  " endpoints (got " + std::to_string(config.endpoints.size()) +
                  "): endpoint ids index the datapath's escalation map");
  }
  if (dp.flow_table_size < 1024) {
    ctx.error(mark_of(node, "flow_table_size", dp_mark), "datapath.flow_table_size",
              "must be at least 1024");
  }
  // 0 means "unspecified" to rtnetlink; 253-255 are the kernel's default, main and local.
  if (dp.route_table == 0 || (dp.route_table >= 253 && dp.route_table <= 255)) {
    ctx.error(mark_of(node, "route_table", dp_mark), "datapath.route_table",
              "table " + std::to_string(dp.route_table) +
                  " is reserved (0 unspec, 253 default, 254 main, 255 local): pick a table "
                  "ramjet can own alone");
  }
  if (dp.escalate_mark == 0) {
    ctx.error(mark_of(node, "escalate_mark", dp_mark), "datapath.escalate_mark",
              "must not be 0 (every unmarked packet would match the escalation rule)");
  }
  for (std::size_t i = 0; i < dp.fastpath_hooks.size(); ++i) {
    const FastpathHookOverride& o = dp.fastpath_hooks[i];
    const Node* on = list_item(node, "fastpath_hooks", i);
    Mark o_mark = on && on->mark.line ? on->mark : dp_mark;
    std::string path = settings::index_path("datapath.fastpath_hooks", i);
    bool known = false;
    for (const auto& name : dp.interfaces) known = known || name == o.interface;
    if (!known) {
      ctx.error(mark_of(on, "interface", o_mark), path + ".interface",
                "interface \"" + o.interface + "\" is not in datapath.interfaces");
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (dp.fastpath_hooks[j].interface == o.interface) {
        ctx.error(mark_of(on, "interface", o_mark), path + ".interface",
                  "interface \"" + o.interface + "\" already has a fastpath_hook at " +
                      settings::index_path("datapath.fastpath_hooks", j));
        break;
      }
    }
  }
  for (std::size_t i = 0; i < dp.rules.size(); ++i) {
    const DatapathRule& r = dp.rules[i];
    const Node* rn = list_item(node, "rules", i);
    Mark r_mark = rn && rn->mark.line ? rn->mark : dp_mark;
    std::string path = settings::index_path("datapath.rules", i);
    if (!valid_endpoint_name(r.name)) {
      ctx.error(mark_of(rn, "name", r_mark), path + ".name",
                "invalid rule name \"" + r.name + "\" (use 1 to 64 of a-z, 0-9, _ and -)");
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (dp.rules[j].name == r.name) {
        ctx.error(mark_of(rn, "name", r_mark), path + ".name",
                  "duplicate rule name \"" + r.name + "\"");
        break;
      }
    }
    if (r.src && r.dst && r.src->base().family() != r.dst->base().family()) {
      ctx.error(mark_of(rn, "dst", r_mark), path + ".dst",
                "src and dst are of different address families");
    }
    if (!r.dst_port.is_any() && r.proto != RuleProto::kTcp && r.proto != RuleProto::kUdp) {
      ctx.error(mark_of(rn, "dst_port", r_mark), path + ".dst_port",
                "a port needs proto tcp or udp");
    }
    if (!r.interface.empty()) {
      bool known = false;
      for (const auto& name : dp.interfaces) known = known || name == r.interface;
      if (!known) {
        ctx.error(mark_of(rn, "interface", r_mark), path + ".interface",
                  "interface \"" + r.interface + "\" is not in datapath.interfaces");
      }
    }
    if (r.action == DatapathAction::kEscalate) {
      const Endpoint* target = nullptr;
      for (const auto& ep : config.endpoints) {
        if (ep.name == r.endpoint) target = &ep;
      }
      if (r.endpoint.empty()) {
        ctx.error(mark_of(rn, "endpoint", r_mark), path + ".endpoint",
                  "escalate needs the name of a transparent tcp, http or udp endpoint");
      } else if (!target) {
        ctx.error(mark_of(rn, "endpoint", r_mark), path + ".endpoint",
                  "no endpoint named \"" + r.endpoint + "\"");
      } else if (!target->transparent) {
        ctx.error(mark_of(rn, "endpoint", r_mark), path + ".endpoint",
                  "endpoint \"" + r.endpoint +
                      "\" is not transparent: escalated flows keep "
                      "their original destination, so set transparent: true on it");
      }
      // TC hands a flow's packets to sockets of the endpoint's own transport: anything
      // else (ICMP among it, breaking path-MTU discovery) would be dropped there.
      if (r.proto != RuleProto::kTcp && r.proto != RuleProto::kUdp) {
        ctx.error(mark_of(rn, "proto", r_mark), path + ".proto",
                  "escalate rule \"" + r.name + "\" needs proto: tcp or proto: udp (flows " +
                      "are delivered to a tcp or udp endpoint's sockets)");
      } else if (target && target->transparent) {
        const bool udp = r.proto == RuleProto::kUdp;
        const bool fits =
            udp ? target->onramp == Onramp::kUdp : is_transparent_tcp_listener(*target);
        if (!fits)
          ctx.error(mark_of(rn, "endpoint", r_mark), path + ".endpoint",
                    "escalate rule \"" + r.name + "\" has proto: " + (udp ? "udp" : "tcp") +
                        ", so it needs a transparent " + (udp ? "udp" : "tcp or http") +
                        " endpoint; \"" + r.endpoint + "\" is not one");
      }
    } else {
      if (!r.endpoint.empty()) {
        ctx.error(mark_of(rn, "endpoint", r_mark), path + ".endpoint",
                  "only escalate rules name an endpoint");
      }
      if (r.on_engine_unavailable) {
        ctx.error(mark_of(rn, "on_engine_unavailable", r_mark), path + ".on_engine_unavailable",
                  "only escalate rules have an engine to fall back from");
      }
    }
    if (r.action == DatapathAction::kRatelimit && r.rate_pps == 0) {
      ctx.error(mark_of(rn, "rate_pps", r_mark), path + ".rate_pps",
                "ratelimit needs rate_pps > 0");
    }
  }
}

void validate_dns(const Config& config, const Node& root, settings::ParseContext& ctx) {
  const Node* dns = root.find("dns");
  Mark dns_mark = dns && dns->mark.line ? dns->mark : root.mark;
  if (config.dns.attempts == 0) {
    ctx.error(mark_of(dns, "attempts", dns_mark), "dns.attempts", "must be at least 1");
  }
  if (config.dns.min_ttl > config.dns.max_ttl) {
    using Codec = settings::Codec<milliseconds>;
    ctx.error(mark_of(dns, "min_ttl", dns_mark), "dns.min_ttl",
              "min_ttl " + Codec::format(config.dns.min_ttl) + " is above max_ttl " +
                  Codec::format(config.dns.max_ttl));
  }
}

void validate_telemetry(const Config& config, const Node& root, settings::ParseContext& ctx) {
  if (config.telemetry.hook_trace && config.telemetry.hook_trace_capacity == 0) {
    const Node* t = root.find("telemetry");
    Mark t_mark = t && t->mark.line ? t->mark : root.mark;
    ctx.error(mark_of(t, "hook_trace_capacity", t_mark), "telemetry.hook_trace_capacity",
              "must be at least 1 when hook_trace is true");
  }
  const double sample = config.telemetry.tracing.sample;
  if (!(sample >= 0.0 && sample <= 1.0)) {
    const Node* t = root.find("telemetry");
    const Node* tr = t ? t->find("tracing") : nullptr;
    Mark mark = tr && tr->mark.line ? tr->mark : (t && t->mark.line ? t->mark : root.mark);
    ctx.error(mark_of(tr, "sample", mark), "telemetry.tracing.sample",
              "must be between 0 and 1 (a share of requests)");
  }
}

}  // namespace

// The mark of `key` inside `map` (its value, else the map itself): where the operator
// should look. Falls back to `fallback` when the node is not there (a default was used).
Mark mark_of(const Node* map, std::string_view key, Mark fallback) {
  if (!map) return fallback;
  if (const Node* n = map->find(key)) return n->mark.line ? n->mark : fallback;
  return map->mark.line ? map->mark : fallback;
}

const Node* endpoint_node(const Node& root, std::size_t i) {
  const Node* list = root.find("endpoints");
  if (!list || !list->is_sequence() || i >= list->items.size()) return nullptr;
  return &list->items[i];
}

void validate(const Config& config, const Node& root, settings::ParseContext& ctx) {
  validate_dns(config, root, ctx);
  validate_telemetry(config, root, ctx);
  validate_endpoints(config, root, ctx);
  validate_udp_ports(config, root, ctx);
  validate_datapath(config, root, ctx);
}

void validate_datapath_only(const Config& config, const Node& root, settings::ParseContext& ctx) {
  validate_datapath(config, root, ctx);
}

}  // namespace ramjet::config
