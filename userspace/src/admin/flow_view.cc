#include "admin/flow_view.h"

#include <netinet/in.h>

#include <charconv>
#include <cmath>

#include "admin/char_writer.h"

namespace ramjet::admin {

namespace {

constexpr std::string_view kEngineVerdict = "ENGINE";

std::uint64_t ms_since(std::uint64_t now_ns, std::uint64_t t_ns) {
  return now_ns > t_ns ? (now_ns - t_ns) / 1'000'000 : 0;
}

void json_name(CharWriter& w, const std::string* name) {
  if (name)
    w.json_str(*name);
  else
    w.lit("null");
}

std::size_t name_bound(const std::string* name) {
  return name ? CharWriter::json_str_bound(*name) : 4;
}

void tcp_flags(CharWriter& w, std::uint8_t f) {
  w.ch('"');
  if (f & 0x02) w.ch('S');
  if (f & 0x10) w.ch('A');
  if (f & 0x08) w.ch('P');
  if (f & 0x01) w.ch('F');
  if (f & 0x04) w.ch('R');
  w.ch('"');
}

// Fixed text and numbers of the kernel object; names are bounded separately.
constexpr std::size_t kKernelBound = 480;

void write_kernel(CharWriter& w, const datapath::KernelFlow& k, const std::string* rule,
                  const std::string* endpoint, std::uint64_t now_ns) {
  w.lit("{\"verdict\":");
  w.json_str(datapath::action_name(k.verdict));
  w.lit(",\"reason\":");
  w.json_str(datapath::stat_name(k.reason));
  w.lit(",\"rule\":");
  json_name(w, rule);
  w.lit(",\"rule_id\":");
  if (k.has_rule)
    w.u64(k.rule_id);
  else
    w.lit("null");
  w.lit(",\"endpoint\":");
  json_name(w, endpoint);
  w.lit(",\"endpoint_id\":");
  w.u64(k.endpoint_id);
  w.lit(",\"ifindex\":");
  w.u64(k.ifindex);
  w.lit(",\"packets\":[");
  w.u64(k.packets[0]);
  w.ch(',');
  w.u64(k.packets[1]);
  w.lit("],\"bytes\":[");
  w.u64(k.bytes[0]);
  w.ch(',');
  w.u64(k.bytes[1]);
  w.lit("],\"tcp_flags\":[");
  tcp_flags(w, k.tcp_flags[0]);
  w.ch(',');
  tcp_flags(w, k.tcp_flags[1]);
  w.lit("],\"escalated\":");
  if (k.escalated)
    w.lit("true");
  else
    w.lit("false");
  w.lit(",\"fallback\":");
  if (k.fallback) {
    w.lit("{\"verdict\":");
    w.json_str(datapath::fallback_name(k.fallback));
    w.lit(",\"cause\":");
    w.json_str(datapath::fallback_cause_name(k.fallback_cause));
    w.ch('}');
  } else {
    w.lit("null");
  }
  w.lit(",\"age_ms\":");
  w.u64(ms_since(now_ns, k.first_seen_ns));
  w.lit(",\"idle_ms\":");
  w.u64(ms_since(now_ns, k.last_seen_ns));
  w.ch('}');
}

std::size_t engine_bound(const EngineConnection& c) {
  return 500 + CharWriter::json_str_bound(c.endpoint) + CharWriter::json_str_bound(c.state) +
         40 + c.trace_id.size() + c.span_id.size();
}

void write_engine(CharWriter& w, const EngineConnection& c) {
  w.lit("{\"id\":");
  w.u64(c.id);
  w.lit(",\"endpoint\":");
  w.json_str(c.endpoint);
  w.lit(",\"worker\":");
  w.u64(c.worker);
  w.lit(",\"client\":\"");
  w.addr(c.client);
  if (c.proxied_by) {  // only when a PROXY header named the client
    w.lit("\",\"proxied_by\":\"");
    w.addr(*c.proxied_by);
  }
  w.lit("\",\"local\":\"");
  w.addr(c.local);
  w.lit("\",\"upstream\":");
  if (c.upstream) {
    w.ch('"');
    w.addr(*c.upstream);
    w.ch('"');
  } else {
    w.lit("null");
  }
  w.lit(",\"state\":");
  w.json_str(c.state);
  w.lit(",\"escalated\":");
  if (c.escalated)
    w.lit("true");
  else
    w.lit("false");
  w.lit(c.proto == IPPROTO_UDP ? ",\"proto\":\"udp\"" : ",\"proto\":\"tcp\"");
  w.lit(",\"age_ms\":");
  w.u64(c.age_ms);
  w.lit(",\"bytes_from_client\":");
  w.u64(c.bytes_from_client);
  w.lit(",\"bytes_to_client\":");
  w.u64(c.bytes_to_client);
  if (!c.trace_id.empty()) {  // hex only: nothing to escape
    w.lit(",\"trace_id\":\"");
    w.raw(c.trace_id);
    w.lit("\",\"span_id\":\"");
    w.raw(c.span_id);
    w.ch('"');
  }
  w.ch('}');
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (auto& c : out)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return out;
}

template <typename T>
std::optional<T> parse_uint(std::string_view s, T max) {
  std::uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size() || v > max) return std::nullopt;
  return static_cast<T>(v);
}

std::uint8_t flags_from_text(std::string_view s) {
  std::uint8_t f = 0;
  for (char c : s) {
    switch (c) {
      case 'S':
        f |= 0x02;
        break;
      case 'A':
        f |= 0x10;
        break;
      case 'P':
        f |= 0x08;
        break;
      case 'F':
        f |= 0x01;
        break;
      case 'R':
        f |= 0x04;
        break;
      default:
        break;
    }
  }
  return f;
}

std::optional<std::uint32_t> stat_from_name(std::string_view name) {
  for (std::uint32_t i = 0; i < datapath::stat_count(); ++i)
    if (datapath::stat_name(i) == name) return i;
  return std::nullopt;
}

}  // namespace

// --- engine connections ---------------------------------------------------------

nlohmann::json connection_json(const EngineConnection& c) {
  std::string s;
  {
    CharWriter w(s, engine_bound(c));
    write_engine(w, c);
  }
  return nlohmann::json::parse(s);
}

Result<EngineConnection> connection_from_json(const nlohmann::json& j) {
  try {
    EngineConnection c;
    c.id = j.at("id").get<FlowId>();
    c.endpoint = j.at("endpoint").get<std::string>();
    c.worker = j.at("worker").get<unsigned>();
    auto client = SocketAddress::parse(j.at("client").get<std::string>());
    auto local = SocketAddress::parse(j.at("local").get<std::string>());
    if (!client || !local) return Error::internal("engine connection: bad client or local address");
    c.client = *client;
    c.local = *local;
    if (j.contains("proxied_by") && j["proxied_by"].is_string())
      c.proxied_by = SocketAddress::parse(j["proxied_by"].get<std::string>());
    if (j.contains("upstream") && j["upstream"].is_string())
      c.upstream = SocketAddress::parse(j["upstream"].get<std::string>());
    c.state = j.at("state").get<std::string>();
    c.escalated = j.at("escalated").get<bool>();
    // Older daemons did not write it: their engine connections were all TCP.
    if (j.contains("proto") && j["proto"] == "udp") c.proto = IPPROTO_UDP;
    c.age_ms = j.at("age_ms").get<std::uint64_t>();
    c.bytes_from_client = j.at("bytes_from_client").get<std::uint64_t>();
    c.bytes_to_client = j.at("bytes_to_client").get<std::uint64_t>();
    if (j.contains("trace_id") && j["trace_id"].is_string()) {
      c.trace_id = j["trace_id"].get<std::string>();
      c.span_id = j.value("span_id", std::string());
    }
    return c;
  } catch (const nlohmann::json::exception& e) {
    return Error::internal(std::string("engine connection: ") + e.what());
  }
}

// --- names ----------------------------------------------------------------------

const std::string* NameTable::endpoint(std::uint32_t id) const {
  auto i = config::endpoint_index(id, endpoints.size());
  if (!i || endpoints[*i].empty()) return nullptr;
  return &endpoints[*i];
}

void NameTable::set_endpoint(std::uint32_t id, std::string name) {
  if (id > kMaxEndpointId) return;
  if (endpoints.size() < id) endpoints.resize(id);
  if (auto i = config::endpoint_index(id, endpoints.size())) endpoints[*i] = std::move(name);
}

const std::string* NameTable::rule(std::uint32_t rule_id) const {
  auto it = rules.find(rule_id);
  return it == rules.end() ? nullptr : &it->second;
}

// --- the merged view ------------------------------------------------------------

std::string_view FlowView::verdict() const {
  return kernel ? datapath::action_name(kernel->verdict) : kEngineVerdict;
}

std::uint8_t FlowView::proto() const {
  return kernel ? kernel->proto : engine ? engine->proto : std::uint8_t{IPPROTO_TCP};
}

SocketAddress FlowView::src() const {
  return kernel ? kernel->src : engine ? engine->client : SocketAddress{};
}

SocketAddress FlowView::dst() const {
  return kernel ? kernel->dst : engine ? engine->local : SocketAddress{};
}

std::uint64_t FlowView::bytes() const {
  if (kernel) return kernel->total_bytes();
  return engine ? engine->bytes_from_client + engine->bytes_to_client : 0;
}

std::uint64_t FlowView::packets() const {
  return kernel ? kernel->total_packets() : 0;
}

std::uint64_t FlowView::age_ms(std::uint64_t now_ns) const {
  if (kernel) return ms_since(now_ns, kernel->first_seen_ns);
  return engine ? engine->age_ms : 0;
}

std::uint64_t FlowView::idle_ms(std::uint64_t now_ns) const {
  return kernel ? ms_since(now_ns, kernel->last_seen_ns) : 0;
}

const std::string* FlowView::endpoint(const NameTable& names) const {
  if (engine) return &engine->endpoint;
  if (kernel && kernel->endpoint_id) return names.endpoint(kernel->endpoint_id);
  return nullptr;
}

const std::string* FlowView::rule(const NameTable& names) const {
  return kernel && kernel->has_rule ? names.rule(kernel->rule_id) : nullptr;
}

double average_rate_bps(const FlowView& f, std::uint64_t now_ns) {
  std::uint64_t age = f.age_ms(now_ns);
  return age == 0 ? 0.0 : double(f.bytes()) * 1000.0 / double(age);
}

// --- filters --------------------------------------------------------------------

bool FlowFilter::empty() const {
  return !id && !src && !dst && !port && !proto && !verdict && !endpoint;
}

bool FlowFilter::only_id() const {
  return id && !src && !dst && !port && !proto && !verdict && !endpoint;
}

bool FlowFilter::matches(const FlowView& f, const NameTable& names) const {
  if (id && f.id != *id) return false;
  if (proto && f.proto() != *proto) return false;
  if (verdict && f.verdict() != *verdict) return false;
  if (src || dst || port) {
    SocketAddress s = f.src(), d = f.dst();
    if (src && !src->contains(s.ip())) return false;
    if (dst && !dst->contains(d.ip())) return false;
    if (port && s.port() != *port && d.port() != *port) return false;
  }
  if (endpoint) {
    const std::string* ep = f.endpoint(names);
    if (!ep || *ep != *endpoint) return false;
  }
  return true;
}

Result<void> FlowFilter::set(std::string_view field, std::string_view value) {
  auto bad = [&](const char* what) {
    return Error::config("invalid " + std::string(field) + " \"" + std::string(value) +
                         "\": " + what);
  };
  if (field == "id") {
    auto v = parse_uint<FlowId>(value, ~FlowId{0});
    if (!v) return bad("expected a flow id (a number)");
    id = *v;
  } else if (field == "src" || field == "dst") {
    auto c = Cidr::parse(value);
    if (!c) return bad("expected an address or CIDR (10.0.0.0/8, fd00::/8)");
    (field == "src" ? src : dst) = *c;
  } else if (field == "port") {
    auto v = parse_uint<std::uint16_t>(value, 65535);
    if (!v) return bad("expected a port number 0-65535");
    port = *v;
  } else if (field == "proto") {
    auto p = datapath::proto_from_name(value);
    if (!p) return bad("expected tcp, udp, icmp, icmpv6 or a protocol number");
    proto = *p;
  } else if (field == "verdict") {
    std::string v = upper(value);
    if (v != kEngineVerdict && !datapath::action_from_name(v))
      return bad("expected fastpath, escalate, drop, pass, ratelimit or engine");
    verdict = v;
  } else if (field == "endpoint") {
    if (value.empty()) return bad("expected an endpoint name");
    endpoint = std::string(value);
  } else {
    return Error::config("unknown flow filter \"" + std::string(field) +
                         "\" (id, src, dst, port, proto, verdict, endpoint)");
  }
  return {};
}

Result<FlowFilter> FlowFilter::from_query(std::string_view query) {
  FlowFilter f;
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (pair.empty()) continue;
    auto eq = pair.find('=');
    std::string key = url_decode(pair.substr(0, eq));
    std::string value = eq == std::string_view::npos ? "" : url_decode(pair.substr(eq + 1));
    if (auto r = f.set(key, value); !r.ok()) return r.error();
  }
  return f;
}

std::string FlowFilter::to_query() const {
  std::string q;
  auto add = [&](const char* k, const std::string& v) {
    if (!q.empty()) q += '&';
    q += k;
    q += '=';
    q += url_encode(v);
  };
  if (id) add("id", std::to_string(*id));
  if (src) add("src", src->to_string());
  if (dst) add("dst", dst->to_string());
  if (port) add("port", std::to_string(*port));
  if (proto) add("proto", std::string(datapath::proto_name(*proto)));
  if (verdict) add("verdict", *verdict);
  if (endpoint) add("endpoint", *endpoint);
  return q;
}

// --- sorting --------------------------------------------------------------------

std::optional<FlowSort> flow_sort_from_name(std::string_view name) {
  for (auto s : {FlowSort::kNone, FlowSort::kId, FlowSort::kBytes, FlowSort::kPackets,
                 FlowSort::kAge, FlowSort::kIdle, FlowSort::kRate})
    if (name == flow_sort_name(s)) return s;
  return std::nullopt;
}

const char* flow_sort_name(FlowSort s) {
  switch (s) {
    case FlowSort::kNone:
      return "none";
    case FlowSort::kId:
      return "id";
    case FlowSort::kBytes:
      return "bytes";
    case FlowSort::kPackets:
      return "packets";
    case FlowSort::kAge:
      return "age";
    case FlowSort::kIdle:
      return "idle";
    case FlowSort::kRate:
      return "rate";
  }
  return "none";
}

bool flow_before(FlowSort s, const FlowView& a, const FlowView& b, std::uint64_t now_ns) {
  // Ties go to the lower id, so the order is total and stable across runs.
  auto larger_first = [&](auto x, auto y) { return x != y ? x > y : a.id < b.id; };
  switch (s) {
    case FlowSort::kNone:
    case FlowSort::kId:
      return a.id < b.id;
    case FlowSort::kBytes:
      return larger_first(a.bytes(), b.bytes());
    case FlowSort::kPackets:
      return larger_first(a.packets(), b.packets());
    case FlowSort::kAge:
      return larger_first(a.age_ms(now_ns), b.age_ms(now_ns));
    case FlowSort::kIdle:
      return larger_first(a.idle_ms(now_ns), b.idle_ms(now_ns));
    case FlowSort::kRate:
      return larger_first(a.rate_bps, b.rate_bps);
  }
  return a.id < b.id;
}

// --- JSON -----------------------------------------------------------------------

void append_flow_json(std::string& out, const FlowView& f, const NameTable& names,
                      std::uint64_t now_ns) {
  const std::string* endpoint = f.endpoint(names);
  const std::string* rule = f.rule(names);
  const std::string* kernel_endpoint =
      f.kernel && f.kernel->endpoint_id ? names.endpoint(f.kernel->endpoint_id) : nullptr;
  std::size_t bound = 300 + 2 * CharWriter::kAddr + name_bound(endpoint) + 2 * name_bound(rule) +
                      (f.kernel ? kKernelBound + name_bound(kernel_endpoint) : 4) +
                      (f.engine ? engine_bound(*f.engine) : 4);
  CharWriter w(out, bound);
  w.lit("{\"id\":");
  w.u64(f.id);
  w.lit(",\"proto\":");
  w.json_str(datapath::proto_name(f.proto()));
  w.lit(",\"src\":\"");
  w.addr(f.src());
  w.lit("\",\"dst\":\"");
  w.addr(f.dst());
  w.lit("\",\"verdict\":");
  w.json_str(f.verdict());
  w.lit(",\"endpoint\":");
  json_name(w, endpoint);
  w.lit(",\"rule\":");
  json_name(w, rule);
  w.lit(",\"packets\":");
  w.u64(f.packets());
  w.lit(",\"bytes\":");
  w.u64(f.bytes());
  w.lit(",\"age_ms\":");
  w.u64(f.age_ms(now_ns));
  w.lit(",\"idle_ms\":");
  w.u64(f.idle_ms(now_ns));
  w.lit(",\"rate_bps\":");
  w.u64(static_cast<std::uint64_t>(std::llround(std::max(f.rate_bps, 0.0))));
  w.lit(",\"kernel\":");
  if (f.kernel)
    write_kernel(w, *f.kernel, rule, kernel_endpoint, now_ns);
  else
    w.lit("null");
  w.lit(",\"engine\":");
  if (f.engine)
    write_engine(w, *f.engine);
  else
    w.lit("null");
  w.ch('}');
}

nlohmann::json flow_json(const FlowView& f, const NameTable& names, std::uint64_t now_ns) {
  std::string s;
  append_flow_json(s, f, names, now_ns);
  return nlohmann::json::parse(s);
}

Result<FlowView> flow_from_json(const nlohmann::json& j, NameTable& names, std::uint64_t now_ns) {
  try {
    FlowView f;
    f.id = j.at("id").get<FlowId>();
    f.rate_bps = j.value("rate_bps", 0.0);
    const auto& k = j.at("kernel");
    if (!k.is_null()) {
      datapath::KernelFlow kf;
      kf.id = f.id;
      auto proto = datapath::proto_from_name(j.at("proto").get<std::string>());
      auto src = SocketAddress::parse(j.at("src").get<std::string>());
      auto dst = SocketAddress::parse(j.at("dst").get<std::string>());
      auto verdict = datapath::action_from_name(k.at("verdict").get<std::string>());
      if (!proto || !src || !dst || !verdict)
        return Error::internal("flow " + std::to_string(f.id) + ": malformed kernel fields");
      kf.proto = *proto;
      kf.src = *src;
      kf.dst = *dst;
      kf.verdict = *verdict;
      kf.reason =
          static_cast<std::uint8_t>(stat_from_name(k.at("reason").get<std::string>()).value_or(0));
      kf.escalated = k.at("escalated").get<bool>();
      if (k.at("rule_id").is_number()) {
        kf.has_rule = true;
        kf.rule_id = k["rule_id"].get<std::uint32_t>();
        if (k.at("rule").is_string()) names.rules[kf.rule_id] = k["rule"].get<std::string>();
      }
      kf.endpoint_id = k.at("endpoint_id").get<std::uint32_t>();
      if (k.at("endpoint").is_string())
        names.set_endpoint(kf.endpoint_id, k["endpoint"].get<std::string>());
      kf.ifindex = k.at("ifindex").get<std::uint32_t>();
      for (int d = 0; d < 2; ++d) {
        kf.packets[d] = k.at("packets").at(d).get<std::uint64_t>();
        kf.bytes[d] = k.at("bytes").at(d).get<std::uint64_t>();
        kf.tcp_flags[d] = flags_from_text(k.at("tcp_flags").at(d).get<std::string>());
      }
      if (const auto& fb = k.value("fallback", nlohmann::json()); fb.is_object()) {
        kf.fallback = datapath::fallback_from_name(fb.at("verdict").get<std::string>()).value_or(0);
        kf.fallback_cause =
            datapath::fallback_cause_from_name(fb.at("cause").get<std::string>()).value_or(0);
      }
      kf.first_seen_ns = now_ns - std::min(now_ns, k.at("age_ms").get<std::uint64_t>() * 1'000'000);
      kf.last_seen_ns = now_ns - std::min(now_ns, k.at("idle_ms").get<std::uint64_t>() * 1'000'000);
      f.kernel = kf;
    }
    const auto& e = j.at("engine");
    if (!e.is_null()) {
      auto c = connection_from_json(e);
      if (!c.ok()) return c.error();
      f.engine = std::make_shared<const EngineConnection>(std::move(*c));
    }
    if (!f.kernel && !f.engine) return Error::internal("flow " + std::to_string(f.id) + ": empty");
    return f;
  } catch (const nlohmann::json::exception& e) {
    return Error::internal(std::string("flow: ") + e.what());
  }
}

// --- URLs -----------------------------------------------------------------------

std::string url_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2])));
      i += 2;
    } else if (s[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::string url_encode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '-' || c == '_' || c == '.' || c == '~' || c == ':';
    if (plain) {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 15]);
    }
  }
  return out;
}

}  // namespace ramjet::admin
