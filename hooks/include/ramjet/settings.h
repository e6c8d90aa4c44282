// Declared settings: how the core and applications describe their configuration.
//
// A settings type is a plain struct. Its member initializers are the defaults and its
// static describe() names each member once, with a doc string:
//
//   struct AllowlistSettings {
//     std::vector<ramjet::Cidr> allowed_cidrs;
//     std::chrono::milliseconds check_interval{5000};
//     std::string name;
//     static void describe(ramjet::settings::Fields<AllowlistSettings>& f) {
//       f("allowed_cidrs", &AllowlistSettings::allowed_cidrs, "CIDRs clients may reach.");
//       f("check_interval", &AllowlistSettings::check_interval, "How often to re-check.");
//       f.required("name", &AllowlistSettings::name, "Shown in logs.");
//     }
//   };
//
// From that single declaration the config loader parses YAML into the struct (unknown
// keys, bad values and missing required keys become errors naming file:line:col and the
// key path) and --print-default-config prints the documented defaults.
//
// Member types supported out of the box: bool, every integer type, double, std::string,
// std::chrono::milliseconds ("250ms", "5s", "2m", "1h", "1m30s" or "0"), IpAddress,
// SocketAddress ("ip:port", "[v6]:port"), HostPort ("name:port"), Cidr ("10.0.0.0/8"; a
// bare address is a /32 or /128), std::optional<T> (null = unset), std::vector<T> (a YAML
// sequence), nested structs with describe(), enums with an EnumNames<E> specialisation:
//
//   template <> struct ramjet::settings::EnumNames<Mode> {
//     static constexpr std::pair<Mode, std::string_view> values[] = {
//         {Mode::kFast, "fast"}, {Mode::kSafe, "safe"}};
//   };
//
// and any type with a Codec<T> specialisation. A codec reads and writes one YAML value:
//
//   template <> struct ramjet::settings::Codec<Port> {
//     // Reads `node` into `out`. On bad input: set `error` to a message without position
//     // or key path (the loader adds both: "invalid port \"x\"") and return false.
//     // scalar_text() below fetches a scalar's text with the usual error for other kinds.
//     static bool parse(const ramjet::settings::Node& node, Port& out, std::string& error);
//     // A YAML flow value that parse() accepts again; quote_if_needed() helps.
//     static std::string format(const Port& value);
//   };
//
// Specialise Codec/EnumNames before the first describe() that uses the type.
//
// This header knows nothing about YAML libraries on purpose: the loader converts the
// document into the small Node tree below, so codecs and applications never see yaml-cpp
// and applications do not inherit its headers.
#pragma once

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include "ramjet/net.h"
#include "ramjet/result.h"

namespace ramjet::settings {

// ---------------------------------------------------------------------------------------
// The document tree codecs see.

// A position in the source text, 1-based. 0 means unknown.
struct Mark {
  int line = 0;
  int column = 0;
};

struct MapEntry;

struct Node {
  enum class Kind : std::uint8_t { kNull, kScalar, kSequence, kMap };

  Kind kind = Kind::kNull;
  Mark mark;
  std::string scalar;             // kScalar
  bool quoted = false;            // kScalar written in quotes
  std::vector<Node> items;        // kSequence
  std::vector<MapEntry> entries;  // kMap, in document order (duplicates kept)

  bool is_null() const { return kind == Kind::kNull; }
  bool is_scalar() const { return kind == Kind::kScalar; }
  bool is_sequence() const { return kind == Kind::kSequence; }
  bool is_map() const { return kind == Kind::kMap; }

  // The first entry with this key, or nullptr (also for non-maps).
  inline const MapEntry* find_entry(std::string_view key) const;
  inline const Node* find(std::string_view key) const;

  // "null", "scalar", "sequence" or "mapping", for messages.
  std::string_view kind_name() const {
    switch (kind) {
      case Kind::kNull:
        return "null";
      case Kind::kScalar:
        return "scalar";
      case Kind::kSequence:
        return "sequence";
      case Kind::kMap:
        return "mapping";
    }
    return "value";
  }
};

struct MapEntry {
  std::string key;
  Mark key_mark;
  Node value;
};

inline const MapEntry* Node::find_entry(std::string_view key) const {
  for (const MapEntry& e : entries) {
    if (e.key == key) return &e;
  }
  return nullptr;
}

inline const Node* Node::find(std::string_view key) const {
  const MapEntry* e = find_entry(key);
  return e ? &e->value : nullptr;
}

// ---------------------------------------------------------------------------------------
// Helpers for codec authors.

// The text of a scalar; nullptr with `error` set for null, sequences and mappings.
inline const std::string* scalar_text(const Node& node, std::string& error) {
  if (node.is_scalar()) return &node.scalar;
  if (node.is_null()) {
    error = "missing value";
  } else {
    error = "expected a scalar value, got a " + std::string(node.kind_name());
  }
  return nullptr;
}

// `text` as a YAML double-quoted scalar.
inline std::string quote(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (u < 0x20 || u == 0x7f) {
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

// `text` as a YAML scalar: plain when it reads back unchanged in block and flow context
// (addresses, names, numbers), double-quoted otherwise ("[::1]:53", "", "yes").
inline std::string quote_if_needed(std::string_view text) {
  if (text.empty() || text.front() == ':' || text.back() == ':' || text.front() == '-') {
    return quote(text);
  }
  for (char c : text) {
    bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '/' || c == ':' || c == '_' || c == '-' || c == '@' || c == '+';
    if (!plain) return quote(text);
  }
  // Words other YAML readers turn into booleans or null.
  static constexpr std::string_view kSpecial[] = {"null", "true", "false", "yes", "no",
                                                  "on",   "off",  "y",     "n"};
  std::string lower(text);
  for (char& c : lower) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  for (std::string_view w : kSpecial) {
    if (lower == w) return quote(text);
  }
  return std::string(text);
}

// ---------------------------------------------------------------------------------------
// Extension points.

// Specialise to teach the loader a new value type; see the top of this file. The primary
// template is empty: "no codec".
template <typename T>
struct Codec {};

// Specialise with `static constexpr std::pair<E, std::string_view> values[]` to make an
// enum a setting; the names are what YAML files write and what defaults print.
template <typename E>
struct EnumNames {};

template <typename T>
concept HasCodec = requires(const Node& node, T& out, const T& value, std::string& error) {
  { Codec<T>::parse(node, out, error) } -> std::same_as<bool>;
  { Codec<T>::format(value) } -> std::convertible_to<std::string>;
};

template <typename E>
concept NamedEnum = std::is_enum_v<E> && requires {
  std::size(EnumNames<E>::values);
};

template <typename S>
class Fields;

template <typename S>
concept Describable = std::is_class_v<S> && requires(Fields<S>& f) {
  S::describe(f);
};

// ---------------------------------------------------------------------------------------
// Parsing and emitting context.

class ErasedStruct;

// One problem found while parsing: where, which key, what.
struct Diagnostic {
  Mark mark;
  std::string path;  // "endpoints[0].listen"; empty for the document itself
  std::string message;
};

// Named holes that are filled at run time. The core Config cannot name an application's
// settings types (they are only known to bootstrap<App>), so it declares slots ("app",
// "endpoint_app") and the loader says which ErasedStruct fills each one.
class SlotTable {
 public:
  void set(std::string name, const ErasedStruct* schema) {
    for (auto& [n, s] : slots_) {
      if (n == name) {
        s = schema;
        return;
      }
    }
    slots_.emplace_back(std::move(name), schema);
  }
  const ErasedStruct* find(std::string_view name) const {
    for (const auto& [n, s] : slots_) {
      if (n == name) return s;
    }
    return nullptr;
  }

 private:
  std::vector<std::pair<std::string, const ErasedStruct*>> slots_;
};

// Collects diagnostics in the order they are found (document order, except that a
// mapping's missing required keys follow the problems inside it).
class ParseContext {
 public:
  ParseContext() = default;
  explicit ParseContext(const SlotTable* slots) : slots_(slots) {}

  void error(Mark mark, std::string path, std::string message) {
    diagnostics_.push_back(Diagnostic{mark, std::move(path), std::move(message)});
  }
  bool ok() const { return diagnostics_.empty(); }
  const std::vector<Diagnostic>& diagnostics() const { return diagnostics_; }
  const ErasedStruct* slot(std::string_view name) const {
    return slots_ ? slots_->find(name) : nullptr;
  }

 private:
  const SlotTable* slots_ = nullptr;
  std::vector<Diagnostic> diagnostics_;
};

struct EmitOptions {
  const SlotTable* slots = nullptr;
  // Print required keys with their current value instead of a "<required>" placeholder:
  // used for commented examples whose values are filled in.
  bool fill_required = false;
  // Doc comments wrap at this many columns (a commented-out example, which gains "# "
  // in front of every line, is emitted 2 narrower).
  std::size_t width = 100;
};

// "server" + "workers" -> "server.workers"; "endpoints" + 0 -> "endpoints[0]".
inline std::string child_path(const std::string& path, std::string_view key) {
  if (path.empty()) return std::string(key);
  std::string out = path;
  out += '.';
  out += key;
  return out;
}
inline std::string index_path(const std::string& path, std::size_t index) {
  return path + "[" + std::to_string(index) + "]";
}

// ---------------------------------------------------------------------------------------
// Built-in codecs.

template <>
struct Codec<bool> {
  static bool parse(const Node& node, bool& out, std::string& error) {
    const std::string* s = scalar_text(node, error);
    if (!s) return false;
    if (*s == "true" || *s == "True" || *s == "TRUE") {
      out = true;
      return true;
    }
    if (*s == "false" || *s == "False" || *s == "FALSE") {
      out = false;
      return true;
    }
    error = "invalid boolean \"" + *s + "\" (expected true or false)";
    return false;
  }
  static std::string format(bool v) { return v ? "true" : "false"; }
};

template <typename T>
requires std::integral<T> &&(!std::same_as<T, bool>)&&(!std::same_as<T, char>)struct Codec<T> {
  static bool parse(const Node& node, T& out, std::string& error) {
    const std::string* s = scalar_text(node, error);
    if (!s) return false;
    T v{};
    auto [end, ec] = std::from_chars(s->data(), s->data() + s->size(), v);
    bool negative_unsigned = std::is_unsigned_v<T> && !s->empty() && s->front() == '-' &&
                             s->size() > 1 && (*s)[1] >= '0' && (*s)[1] <= '9';
    if (ec == std::errc::result_out_of_range || negative_unsigned) {
      error = "integer \"" + *s + "\" out of range (" +
              std::to_string(std::numeric_limits<T>::min()) + " to " +
              std::to_string(std::numeric_limits<T>::max()) + ")";
      return false;
    }
    if (ec != std::errc() || end != s->data() + s->size() || s->empty()) {
      error = "invalid integer \"" + *s + "\"";
      return false;
    }
    out = v;
    return true;
  }
  static std::string format(T v) { return std::to_string(v); }
};

template <>
struct Codec<double> {
  static bool parse(const Node& node, double& out, std::string& error) {
    const std::string* s = scalar_text(node, error);
    if (!s) return false;
    double v = 0;
    auto [end, ec] = std::from_chars(s->data(), s->data() + s->size(), v);
    if (ec != std::errc() || end != s->data() + s->size() || s->empty() || !std::isfinite(v)) {
      error = "invalid number \"" + *s + "\"";
      return false;
    }
    out = v;
    return true;
  }
  static std::string format(double v) {
    char buf[64];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    if (ec != std::errc()) return "0";
    return std::string(buf, end);
  }
};

template <>
struct Codec<std::string> {
  static bool parse(const Node& node, std::string& out, std::string& error) {
    // "key:" with nothing after it reads as the empty string, which is what people mean.
    if (node.is_null()) {
      out.clear();
      return true;
    }
    if (!node.is_scalar()) {
      error = "expected a string, got a " + std::string(node.kind_name());
      return false;
    }
    out = node.scalar;
    return true;
  }
  static std::string format(const std::string& v) { return quote_if_needed(v); }
};

// Durations always carry a unit so that "timeout: 5" cannot silently mean 5 ms.
template <>
struct Codec<std::chrono::milliseconds> {
  static bool parse(const Node& node, std::chrono::milliseconds& out, std::string& error) {
    const std::string* s = scalar_text(node, error);
    if (!s) return false;
    auto v = parse_text(*s);
    if (v) {
      out = *v;
      return true;
    }
    bool all_digits = !s->empty() && std::all_of(s->begin(), s->end(),
                                                 [](char c) { return c >= '0' && c <= '9'; });
    if (all_digits) {
      error = "invalid duration \"" + *s + "\" (add a unit: ms, s, m or h)";
    } else {
      error = "invalid duration \"" + *s + "\" (expected e.g. 250ms, 5s, 2m, 1h or 1m30s)";
    }
    return false;
  }

  // "0", or one or more <digits><unit> groups with units ms, s, m, h.
  static std::optional<std::chrono::milliseconds> parse_text(std::string_view s) {
    if (s == "0") return std::chrono::milliseconds(0);
    if (s.empty()) return std::nullopt;
    // Large enough for any real timeout, small enough that no unit multiply overflows.
    constexpr std::int64_t kMax = std::int64_t{1} << 52;
    std::int64_t total = 0;
    std::size_t i = 0;
    while (i < s.size()) {
      std::size_t digits_begin = i;
      std::int64_t n = 0;
      while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
        n = n * 10 + (s[i] - '0');
        if (n > kMax) return std::nullopt;
        ++i;
      }
      if (i == digits_begin || i == s.size()) return std::nullopt;
      std::int64_t unit = 0;
      if (s.substr(i, 2) == "ms") {
        unit = 1;
        i += 2;
      } else if (s[i] == 's') {
        unit = 1000;
        ++i;
      } else if (s[i] == 'm') {
        unit = 60 * 1000;
        ++i;
      } else if (s[i] == 'h') {
        unit = 3600 * 1000;
        ++i;
      } else {
        return std::nullopt;
      }
      total += n * unit;
      if (total > kMax) return std::nullopt;
    }
    return std::chrono::milliseconds(total);
  }

  static std::string format(std::chrono::milliseconds v) {
    std::int64_t ms = v.count();
    if (ms == 0) return "0s";
    if (ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
    if (ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
    if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
    return std::to_string(ms) + "ms";
  }
};

template <>
struct Codec<IpAddress> {
  static bool parse(const Node& node, IpAddress& out, std::string& error) {
    const std::string* s = scalar_text(node, error);
    if (!s) return false;
    auto v = IpAddress::parse(*s);
    if (!v) {
      error = "invalid IP address \"" + *s + "\"";
      return false;
    }
    out = *v;
    return true;
  }
  static std::string format(const IpAddress& v) { return quote_if_needed(v.to_string()); }
};

template <>
struct Codec<SocketAddress> {
  static bool parse(const Node& node, SocketAddress& out, std::string& error) {
    const std::string* s = scalar_text(node, error);
    if (!s) return false;
    auto v = SocketAddress::parse(*s);
    if (!v) {
      error = "invalid socket address \"" + *s + "\" (expected ip:port or [ipv6]:port)";
      return false;
    }
    out = *v;
    return true;
  }
  static std::string format(const SocketAddress& v) { return quote_if_needed(v.to_string()); }
};

template <>
struct Codec<HostPort> {
  static bool parse(const Node& node, HostPort& out, std::string& error) {
    const std::string* s = scalar_text(node, error);
    if (!s) return false;
    auto v = HostPort::parse(*s);
    if (!v) {
      error = "invalid host:port \"" + *s + "\" (expected name:port, ip:port or [ipv6]:port)";
      return false;
    }
    out = *v;
    return true;
  }
  static std::string format(const HostPort& v) { return quote_if_needed(v.to_string()); }
};

template <>
struct Codec<Cidr> {
  static bool parse(const Node& node, Cidr& out, std::string& error) {
    const std::string* s = scalar_text(node, error);
    if (!s) return false;
    auto v = Cidr::parse(*s);
    if (!v) {
      error = "invalid CIDR \"" + *s + "\" (expected e.g. 10.0.0.0/8, fd00::/8 or an address)";
      return false;
    }
    out = *v;
    return true;
  }
  static std::string format(const Cidr& v) { return quote_if_needed(v.to_string()); }
};

// ---------------------------------------------------------------------------------------
// The declaration mechanism.

namespace detail {

template <typename T>
struct IsOptional : std::false_type {};
template <typename T>
struct IsOptional<std::optional<T>> : std::true_type {};
template <typename T>
struct IsVector : std::false_type {};
template <typename T, typename A>
struct IsVector<std::vector<T, A>> : std::true_type {};

template <typename T>
constexpr bool supported() {
  if constexpr (HasCodec<T> || NamedEnum<T>) {
    return true;
  } else if constexpr (IsOptional<T>::value || IsVector<T>::value) {
    return supported<typename T::value_type>();
  } else {
    return Describable<T>;
  }
}

// Inline values print on their key's line ("key: 5s", "key: [a, b]"); the others (structs
// and sequences of structs) print as indented blocks below it.
template <typename T>
constexpr bool is_inline() {
  if constexpr (HasCodec<T> || NamedEnum<T>) {
    return true;
  } else if constexpr (IsOptional<T>::value || IsVector<T>::value) {
    return is_inline<typename T::value_type>();
  } else {
    return false;
  }
}

template <typename T>
bool parse_value(const Node& node, T& out, const std::string& path, ParseContext& ctx);
template <typename T>
std::string format_inline(const T& value);
template <typename T>
void emit_field(std::string_view key, const T& value, int indent, std::string& out,
                const EmitOptions& opts);
template <typename T>
void emit_block(const T& value, int indent, std::string& out, const EmitOptions& opts);
template <typename S>
void emit_struct(const S& value, int indent, std::string& out, const EmitOptions& opts);

inline std::string spaces(int n) {
  return std::string(static_cast<std::size_t>(n), ' ');
}

}  // namespace detail

// What describe() receives. Each call declares one key of S, in printing order.
template <typename S>
class Fields {
 public:
  struct Field {
    std::string key;
    std::string doc;
    bool required = false;
    std::function<bool(const Node&, S&, const std::string&, ParseContext&)> parse;
    std::function<void(const S&, int, std::string&, const EmitOptions&)> emit;
    // Structs and slots: runs when the key is absent, so that required keys inside an
    // omitted section are still reported. Gets a null node carrying the parent's mark.
    std::function<bool(const Node&, S&, const std::string&, ParseContext&)> on_absent;
  };

  // An optional key; the default is the member's value in a default-constructed S.
  template <typename M>
  Fields& operator()(std::string_view key, M S::*member, std::string_view doc) {
    add(key, member, doc, false);
    return *this;
  }

  // A key the file must set.
  template <typename M>
  Fields& required(std::string_view key, M S::*member, std::string_view doc) {
    add(key, member, doc, true);
    return *this;
  }

  // A key whose settings type is supplied at load time through the SlotTable (see
  // there). The member holds an instance of that type; absent keys get its defaults.
  Fields& slot(std::string_view key, std::shared_ptr<void> S::*member, std::string_view slot_name,
               std::string_view doc);

  const std::vector<Field>& fields() const& { return fields_; }
  std::vector<Field> take() && { return std::move(fields_); }

 private:
  template <typename M>
  void add(std::string_view key, M S::*member, std::string_view doc, bool required) {
    static_assert(detail::supported<M>(),
                  "ramjet::settings: this member type is not a setting; give it a "
                  "Codec<T> or EnumNames<E> specialisation, or a static describe()");
    Field f;
    f.key = std::string(key);
    f.doc = std::string(doc);
    f.required = required;
    std::string key_copy = f.key;
    f.parse = [member](const Node& node, S& s, const std::string& path, ParseContext& ctx) {
      return detail::parse_value(node, s.*member, path, ctx);
    };
    f.emit = [member, key_copy](const S& s, int indent, std::string& out, const EmitOptions& opts) {
      detail::emit_field(key_copy, s.*member, indent, out, opts);
    };
    if constexpr (Describable<M>) f.on_absent = f.parse;
    fields_.push_back(std::move(f));
  }

  std::vector<Field> fields_;
};

namespace detail {

// Each describe() runs once per type; the table is immutable afterwards.
template <typename S>
const std::vector<typename Fields<S>::Field>& field_table() {
  static const std::vector<typename Fields<S>::Field> table = [] {
    Fields<S> f;
    S::describe(f);
    return std::move(f).take();
  }();
  return table;
}

template <typename S>
std::string expected_keys() {
  const auto& fields = field_table<S>();
  if (fields.empty()) return "(no keys are declared here)";
  std::string out = "(expected one of: ";
  for (std::size_t i = 0; i < fields.size(); ++i) {
    if (i) out += ", ";
    out += fields[i].key;
  }
  return out + ")";
}

template <typename S>
bool parse_struct(const Node& node, S& out, const std::string& path, ParseContext& ctx) {
  // A section written as "server:" with nothing below it keeps every default.
  if (!node.is_null() && !node.is_map()) {
    ctx.error(node.mark, path, "expected a mapping, got a " + std::string(node.kind_name()));
    return false;
  }
  const auto& fields = field_table<S>();
  std::vector<char> seen(fields.size(), 0);
  bool ok = true;
  for (const MapEntry& e : node.entries) {
    std::string p = child_path(path, e.key);
    auto it =
        std::find_if(fields.begin(), fields.end(), [&](const auto& f) { return f.key == e.key; });
    if (it == fields.end()) {
      ctx.error(e.key_mark, std::move(p), "unknown key " + expected_keys<S>());
      ok = false;
      continue;
    }
    auto i = static_cast<std::size_t>(it - fields.begin());
    if (seen[i]) {
      ctx.error(e.key_mark, std::move(p), "duplicate key");
      ok = false;
      continue;
    }
    seen[i] = 1;
    ok = it->parse(e.value, out, p, ctx) && ok;
  }
  for (std::size_t i = 0; i < fields.size(); ++i) {
    if (seen[i]) continue;
    if (fields[i].required) {
      ctx.error(node.mark, path, "missing required key \"" + fields[i].key + "\"");
      ok = false;
    } else if (fields[i].on_absent) {
      Node absent;
      absent.mark = node.mark;
      ok = fields[i].on_absent(absent, out, child_path(path, fields[i].key), ctx) && ok;
    }
  }
  return ok;
}

template <typename T>
bool parse_value(const Node& node, T& out, const std::string& path, ParseContext& ctx) {
  if constexpr (HasCodec<T>) {
    std::string error;
    if (Codec<T>::parse(node, out, error)) return true;
    ctx.error(node.mark, path, std::move(error));
    return false;
  } else if constexpr (NamedEnum<T>) {
    std::string error;
    const std::string* s = scalar_text(node, error);
    if (s) {
      for (const auto& [value, name] : EnumNames<T>::values) {
        if (name == *s) {
          out = value;
          return true;
        }
      }
      error = "invalid value \"" + *s + "\" (expected one of: ";
      bool first = true;
      for (const auto& [value, name] : EnumNames<T>::values) {
        if (!first) error += ", ";
        first = false;
        error += name;
      }
      error += ")";
    }
    ctx.error(node.mark, path, std::move(error));
    return false;
  } else if constexpr (IsOptional<T>::value) {
    if (node.is_null()) {
      out.reset();
      return true;
    }
    typename T::value_type v{};
    if (!parse_value(node, v, path, ctx)) return false;
    out = std::move(v);
    return true;
  } else if constexpr (IsVector<T>::value) {
    if (node.is_null()) {
      out.clear();
      return true;
    }
    if (!node.is_sequence()) {
      ctx.error(node.mark, path, "expected a sequence, got a " + std::string(node.kind_name()));
      return false;
    }
    T result;
    result.reserve(node.items.size());
    bool ok = true;
    for (std::size_t i = 0; i < node.items.size(); ++i) {
      typename T::value_type v{};
      ok = parse_value(node.items[i], v, index_path(path, i), ctx) && ok;
      result.push_back(std::move(v));
    }
    if (ok) out = std::move(result);
    return ok;
  } else {
    static_assert(Describable<T>, "not a setting type");
    return parse_struct(node, out, path, ctx);
  }
}

template <typename T>
std::string format_inline(const T& value) {
  if constexpr (HasCodec<T>) {
    return std::string(Codec<T>::format(value));
  } else if constexpr (NamedEnum<T>) {
    for (const auto& [v, name] : EnumNames<T>::values) {
      if (v == value) return std::string(name);
    }
    return "null";  // a value outside the declared names: print something that fails loudly
  } else if constexpr (IsOptional<T>::value) {
    return value ? format_inline(*value) : std::string("null");
  } else {
    static_assert(IsVector<T>::value, "not an inline setting type");
    std::string out = "[";
    for (std::size_t i = 0; i < value.size(); ++i) {
      if (i) out += ", ";
      out += format_inline(value[i]);
    }
    return out + "]";
  }
}

// One "- value" sequence entry at `indent`.
template <typename T>
void emit_item(const T& value, int indent, std::string& out, const EmitOptions& opts) {
  if constexpr (is_inline<T>()) {
    out += spaces(indent) + "- " + format_inline(value) + "\n";
  } else if constexpr (IsOptional<T>::value) {
    if (!value) {
      out += spaces(indent) + "- null\n";
    } else {
      emit_item(*value, indent, out, opts);
    }
  } else {
    std::string block;
    emit_block(value, indent + 2, block, opts);
    if (block.empty()) {
      out += spaces(indent) + (IsVector<T>::value ? "- []\n" : "- {}\n");
      return;
    }
    // The block's first line (a comment or a key) moves up beside the dash; YAML reads
    // the rest at the same indentation as the entry's content.
    out += spaces(indent) + "- " + block.substr(static_cast<std::size_t>(indent) + 2);
  }
}

template <typename T>
void emit_block(const T& value, int indent, std::string& out, const EmitOptions& opts) {
  if constexpr (IsVector<T>::value) {
    for (const auto& v : value) emit_item(v, indent, out, opts);
  } else {
    emit_struct(value, indent, out, opts);
  }
}

template <typename T>
void emit_field(std::string_view key, const T& value, int indent, std::string& out,
                const EmitOptions& opts) {
  std::string head = spaces(indent) + std::string(key) + ":";
  if constexpr (is_inline<T>()) {
    out += head + " " + format_inline(value) + "\n";
  } else if constexpr (IsOptional<T>::value) {
    if (!value) {
      out += head + " null\n";
    } else {
      emit_field(key, *value, indent, out, opts);
    }
  } else {
    std::string block;
    emit_block(value, indent + 2, block, opts);
    if (block.empty()) {
      out += head + (IsVector<T>::value ? " []\n" : " {}\n");
    } else {
      out += head + "\n" + block;
    }
  }
}

// Doc strings print as "# " comment lines, wrapped at `width` columns; "\n" forces a break.
inline void emit_doc(std::string_view doc, int indent, std::string& out, std::size_t width) {
  const std::size_t room = std::max<std::size_t>(40, width - static_cast<std::size_t>(indent) - 2);
  while (!doc.empty()) {
    auto nl = doc.find('\n');
    std::string_view para = doc.substr(0, nl);
    do {
      std::string_view line = para;
      if (line.size() > room) {
        auto cut = line.rfind(' ', room);
        if (cut == std::string_view::npos || cut == 0) cut = line.find(' ');
        if (cut != std::string_view::npos) line = line.substr(0, cut);
      }
      out += spaces(indent) + (line.empty() ? "#" : "# " + std::string(line)) + "\n";
      para.remove_prefix(line.size());
      while (!para.empty() && para.front() == ' ') para.remove_prefix(1);
    } while (!para.empty());
    if (nl == std::string_view::npos) break;
    doc.remove_prefix(nl + 1);
  }
}

template <typename S>
void emit_struct(const S& value, int indent, std::string& out, const EmitOptions& opts) {
  const auto& fields = field_table<S>();
  for (std::size_t i = 0; i < fields.size(); ++i) {
    // Top-level sections get a blank line between them; nested keys stay compact.
    if (indent == 0 && i > 0) out += "\n";
    emit_doc(fields[i].doc, indent, out, opts.width);
    if (fields[i].required && !opts.fill_required) {
      out += spaces(indent) + "# " + fields[i].key + ": <required>\n";
    } else {
      fields[i].emit(value, indent, out, opts);
    }
  }
}

template <typename S>
std::shared_ptr<void> make_default() {
  return std::make_shared<S>();
}
template <typename S>
bool parse_erased(const Node& node, void* object, const std::string& path, ParseContext& ctx) {
  return parse_struct(node, *static_cast<S*>(object), path, ctx);
}
template <typename S>
void emit_erased(const void* object, int indent, std::string& out, const EmitOptions& opts) {
  emit_struct(*static_cast<const S*>(object), indent, out, opts);
}
template <typename S>
bool has_no_fields() {
  return field_table<S>().empty();
}
template <typename S>
const std::type_info& type_of() {
  return typeid(S);
}

struct StructOps {
  std::shared_ptr<void> (*make)();
  bool (*parse)(const Node&, void*, const std::string&, ParseContext&);
  void (*emit)(const void*, int, std::string&, const EmitOptions&);
  bool (*empty)();
  const std::type_info& (*type)();
};

template <typename S>
inline constexpr StructOps kStructOps = {&make_default<S>, &parse_erased<S>, &emit_erased<S>,
                                         &has_no_fields<S>, &type_of<S>};

struct NoFields {
  static void describe(Fields<NoFields>&) {}
};

}  // namespace detail

// A describe()-able struct type behind a value: lets non-template code (the loader, the
// engine) create, parse and print settings whose type only an application knows.
class ErasedStruct {
 public:
  // A struct that declares no keys.
  ErasedStruct() : ops_(&detail::kStructOps<detail::NoFields>) {}

  template <typename S>
  requires Describable<S> && std::is_default_constructible_v<S>
  static ErasedStruct of() { return ErasedStruct(&detail::kStructOps<S>); }

  // A default-constructed instance: every setting at its default.
  std::shared_ptr<void> make() const { return ops_->make(); }

  // Parses a mapping (or null: all defaults) into `object`, which must come from make().
  // Problems go to ctx; returns false if there were any.
  bool parse(const Node& node, void* object, const std::string& path, ParseContext& ctx) const {
    return ops_->parse(node, object, path, ctx);
  }

  // Appends `object`'s keys as documented YAML at `indent` spaces.
  void emit(const void* object, int indent, std::string& out, const EmitOptions& opts = {}) const {
    ops_->emit(object, indent, out, opts);
  }

  // True if the struct declares no keys (printed as "{}").
  bool empty() const { return ops_->empty(); }

  const std::type_info& type() const { return ops_->type(); }
  template <typename S>
  bool holds() const {
    return type() == typeid(S);
  }

 private:
  explicit ErasedStruct(const detail::StructOps* ops) : ops_(ops) {}
  const detail::StructOps* ops_;
};

template <typename S>
Fields<S>& Fields<S>::slot(std::string_view key, std::shared_ptr<void> S::*member,
                           std::string_view slot_name, std::string_view doc) {
  Field f;
  f.key = std::string(key);
  f.doc = std::string(doc);
  std::string name(slot_name);
  std::string key_copy = f.key;
  f.parse = [member, name](const Node& node, S& s, const std::string& path, ParseContext& ctx) {
    const ErasedStruct* schema = ctx.slot(name);
    ErasedStruct none;
    if (!schema) schema = &none;
    std::shared_ptr<void> value = schema->make();
    bool ok = schema->parse(node, value.get(), path, ctx);
    s.*member = std::move(value);
    return ok;
  };
  f.emit = [member, name, key_copy](const S& s, int indent, std::string& out,
                                    const EmitOptions& opts) {
    const ErasedStruct* schema = opts.slots ? opts.slots->find(name) : nullptr;
    const void* value = (s.*member).get();
    std::string head = detail::spaces(indent) + key_copy + ":";
    if (!schema || !value || schema->empty()) {
      out += head + " {}\n";
      return;
    }
    out += head + "\n";
    schema->emit(value, indent + 2, out, opts);
  };
  f.on_absent = f.parse;
  fields_.push_back(std::move(f));
  return *this;
}

// Parses `node` into a typed settings struct. Convenience for tests and tools that
// already have a Node; the loader works through ErasedStruct.
template <typename S>
requires Describable<S>
bool parse(const Node& node, S& out, ParseContext& ctx, const std::string& path = "") {
  return detail::parse_struct(node, out, path, ctx);
}

// The documented YAML of `value`'s keys at `indent` spaces.
template <typename S>
requires Describable<S> std::string emit(const S& value, int indent = 0,
                                         const EmitOptions& opts = {}) {
  std::string out;
  detail::emit_struct(value, indent, out, opts);
  return out;
}

}  // namespace ramjet::settings
