// The declaration mechanism on its own: codecs, quoting, emitting, ErasedStruct. The
// YAML-facing behaviour (marks, paths, files) is in loader_test.cc.
#include "ramjet/settings.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace {

using ramjet::Cidr;
using ramjet::HostPort;
using ramjet::IpAddress;
using ramjet::SocketAddress;
using ramjet::settings::Codec;
using ramjet::settings::Node;
using std::chrono::milliseconds;

Node scalar(std::string text) {
  Node n;
  n.kind = Node::Kind::kScalar;
  n.scalar = std::move(text);
  n.mark = {1, 1};
  return n;
}

Node map(std::vector<std::pair<std::string, Node>> entries) {
  Node n;
  n.kind = Node::Kind::kMap;
  n.mark = {1, 1};
  for (auto& [k, v] : entries) n.entries.push_back({k, {1, 1}, std::move(v)});
  return n;
}

// Parses `text` with Codec<T>; returns the value or the error message.
template <typename T>
std::optional<T> parse(const std::string& text, std::string* error = nullptr) {
  T out{};
  std::string err;
  if (Codec<T>::parse(scalar(text), out, err)) return out;
  if (error) *error = err;
  return std::nullopt;
}

template <typename T>
std::string error_of(const std::string& text) {
  std::string err;
  EXPECT_FALSE(parse<T>(text, &err).has_value()) << text;
  return err;
}

TEST(DurationCodec, AcceptsUnitsAndCombinations) {
  EXPECT_EQ(parse<milliseconds>("0"), milliseconds(0));
  EXPECT_EQ(parse<milliseconds>("0s"), milliseconds(0));
  EXPECT_EQ(parse<milliseconds>("0ms"), milliseconds(0));
  EXPECT_EQ(parse<milliseconds>("250ms"), milliseconds(250));
  EXPECT_EQ(parse<milliseconds>("5s"), milliseconds(5000));
  EXPECT_EQ(parse<milliseconds>("2m"), milliseconds(120'000));
  EXPECT_EQ(parse<milliseconds>("1h"), milliseconds(3'600'000));
  EXPECT_EQ(parse<milliseconds>("1m30s"), milliseconds(90'000));
  EXPECT_EQ(parse<milliseconds>("1h1ms"), milliseconds(3'600'001));
  EXPECT_EQ(parse<milliseconds>("007s"), milliseconds(7000));
}

TEST(DurationCodec, PlainIntegersNeedAUnit) {
  EXPECT_EQ(error_of<milliseconds>("10"), "invalid duration \"10\" (add a unit: ms, s, m or h)");
  EXPECT_EQ(error_of<milliseconds>("00"), "invalid duration \"00\" (add a unit: ms, s, m or h)");
}

TEST(DurationCodec, RejectsMalformed) {
  const std::string hint = " (expected e.g. 250ms, 5s, 2m, 1h or 1m30s)";
  for (std::string bad : {"", "s", "-5s", "1.5s", "5 s", "5x", "5S", "5s5", "ms", "1d",
                          "99999999999999999999h", "9999999999h"}) {
    EXPECT_EQ(error_of<milliseconds>(bad), "invalid duration \"" + bad + "\"" + hint) << bad;
  }
}

TEST(DurationCodec, FormatsWithTheLargestExactUnit) {
  using C = Codec<milliseconds>;
  EXPECT_EQ(C::format(milliseconds(0)), "0s");
  EXPECT_EQ(C::format(milliseconds(1500)), "1500ms");
  EXPECT_EQ(C::format(milliseconds(90'000)), "90s");
  EXPECT_EQ(C::format(milliseconds(120'000)), "2m");
  EXPECT_EQ(C::format(milliseconds(7'200'000)), "2h");
  for (std::int64_t ms : {0L, 1L, 999L, 1000L, 61'000L, 3'600'001L}) {
    EXPECT_EQ(parse<milliseconds>(C::format(milliseconds(ms))), milliseconds(ms));
  }
}

TEST(DurationCodec, NonScalarsAndNull) {
  std::string err;
  milliseconds out{};
  EXPECT_FALSE(Codec<milliseconds>::parse(Node{}, out, err));
  EXPECT_EQ(err, "missing value");
  EXPECT_FALSE(Codec<milliseconds>::parse(map({}), out, err));
  EXPECT_EQ(err, "expected a scalar value, got a mapping");
}

TEST(CidrCodec, PrefixesAndBareAddresses) {
  EXPECT_EQ(parse<Cidr>("10.0.0.0/8")->to_string(), "10.0.0.0/8");
  EXPECT_EQ(parse<Cidr>("10.1.2.3")->to_string(), "10.1.2.3/32");
  EXPECT_EQ(parse<Cidr>("::1")->to_string(), "::1/128");
  EXPECT_EQ(parse<Cidr>("fd00::/8")->to_string(), "fd00::/8");
  EXPECT_EQ(parse<Cidr>("0.0.0.0/0")->to_string(), "0.0.0.0/0");
  EXPECT_EQ(parse<Cidr>("::/0")->to_string(), "::/0");
  // Host bits are masked off, as Cidr does everywhere.
  EXPECT_EQ(parse<Cidr>("10.1.2.3/8")->to_string(), "10.0.0.0/8");
}

TEST(CidrCodec, RejectsMalformed) {
  const std::string hint = " (expected e.g. 10.0.0.0/8, fd00::/8 or an address)";
  for (std::string bad : {"10.0.0.0/33", "::/129", "10.0.0.0/", "/8", "10.0.0/8", "10.0.0.0/-1",
                          "10.0.0.0/8/8", "example.com/8", "10.0.0.0 /8"}) {
    EXPECT_EQ(error_of<Cidr>(bad), "invalid CIDR \"" + bad + "\"" + hint) << bad;
  }
}

TEST(SocketAddressCodec, Forms) {
  EXPECT_EQ(parse<SocketAddress>("127.0.0.1:80")->to_string(), "127.0.0.1:80");
  EXPECT_EQ(parse<SocketAddress>("[::1]:443")->to_string(), "[::1]:443");
  EXPECT_EQ(parse<SocketAddress>("0.0.0.0:0")->port(), 0);
  EXPECT_EQ(parse<SocketAddress>("1.2.3.4:65535")->port(), 65535);
  const std::string hint = " (expected ip:port or [ipv6]:port)";
  for (std::string bad : {"localhost:80", "::1:80", "1.2.3.4", "1.2.3.4:", "1.2.3.4:65536", "[::1]",
                          "[1.2.3.4]:80", "1.2.3.4:8a", ":80", "[::1]:+80"}) {
    EXPECT_EQ(error_of<SocketAddress>(bad), "invalid socket address \"" + bad + "\"" + hint) << bad;
  }
}

TEST(SocketAddressCodec, FormatQuotesBrackets) {
  EXPECT_EQ(Codec<SocketAddress>::format(*SocketAddress::parse("[::1]:53")), "\"[::1]:53\"");
  EXPECT_EQ(Codec<SocketAddress>::format(*SocketAddress::parse("1.2.3.4:53")), "1.2.3.4:53");
}

TEST(HostPortCodec, Forms) {
  EXPECT_EQ(parse<HostPort>("example.com:80"), (HostPort{"example.com", 80}));
  EXPECT_EQ(parse<HostPort>("10.0.0.1:8080"), (HostPort{"10.0.0.1", 8080}));
  EXPECT_EQ(parse<HostPort>("[::1]:80"), (HostPort{"::1", 80}));
  const std::string hint = " (expected name:port, ip:port or [ipv6]:port)";
  for (std::string bad : {"example.com", "bad host:80", "a..b:80", "example.com:99999"}) {
    EXPECT_EQ(error_of<HostPort>(bad), "invalid host:port \"" + bad + "\"" + hint) << bad;
  }
}

TEST(IpAddressCodec, Forms) {
  EXPECT_EQ(parse<IpAddress>("192.0.2.1")->to_string(), "192.0.2.1");
  EXPECT_EQ(parse<IpAddress>("2001:db8::1")->to_string(), "2001:db8::1");
  EXPECT_EQ(error_of<IpAddress>("192.0.2.256"), "invalid IP address \"192.0.2.256\"");
  EXPECT_EQ(Codec<IpAddress>::format(*IpAddress::parse("::1")), "\"::1\"");
}

TEST(IntegerCodec, RangesAndSyntax) {
  EXPECT_EQ(parse<int>("-5"), -5);
  EXPECT_EQ(parse<unsigned>("4294967295"), 4294967295u);
  EXPECT_EQ(parse<std::uint64_t>("18446744073709551615"), UINT64_MAX);
  EXPECT_EQ(parse<std::int64_t>("-9223372036854775808"), INT64_MIN);
  EXPECT_EQ(error_of<std::uint16_t>("65536"), "integer \"65536\" out of range (0 to 65535)");
  EXPECT_EQ(error_of<unsigned>("-1"), "integer \"-1\" out of range (0 to 4294967295)");
  EXPECT_EQ(error_of<int>("2147483648"),
            "integer \"2147483648\" out of range (-2147483648 to 2147483647)");
  for (std::string bad : {"abc", "1.5", "", "+1", "0x10", "1 ", "-"}) {
    EXPECT_EQ(error_of<int>(bad), "invalid integer \"" + bad + "\"") << bad;
  }
}

TEST(ScalarCodecs, BoolDoubleString) {
  EXPECT_EQ(parse<bool>("true"), true);
  EXPECT_EQ(parse<bool>("FALSE"), false);
  EXPECT_EQ(error_of<bool>("yes"), "invalid boolean \"yes\" (expected true or false)");
  EXPECT_EQ(parse<double>("1.25"), 1.25);
  EXPECT_EQ(parse<double>("-3"), -3.0);
  EXPECT_EQ(error_of<double>("nan"), "invalid number \"nan\"");
  EXPECT_EQ(error_of<double>("inf"), "invalid number \"inf\"");
  EXPECT_EQ(parse<double>(Codec<double>::format(0.1)), 0.1);
  std::string s = "x";
  std::string err;
  EXPECT_TRUE(Codec<std::string>::parse(Node{}, s, err));  // "key:" means empty
  EXPECT_EQ(s, "");
  EXPECT_FALSE(Codec<std::string>::parse(map({}), s, err));
  EXPECT_EQ(err, "expected a string, got a mapping");
}

TEST(Quoting, PlainOnlyWhenItReadsBackTheSame) {
  using ramjet::settings::quote_if_needed;
  EXPECT_EQ(quote_if_needed("/run/ramjet/admin.sock"), "/run/ramjet/admin.sock");
  EXPECT_EQ(quote_if_needed("10.0.0.0/8"), "10.0.0.0/8");
  EXPECT_EQ(quote_if_needed("fd00::/8"), "fd00::/8");
  EXPECT_EQ(quote_if_needed(""), "\"\"");
  EXPECT_EQ(quote_if_needed("::1"), "\"::1\"");
  EXPECT_EQ(quote_if_needed("[::1]:53"), "\"[::1]:53\"");
  EXPECT_EQ(quote_if_needed("yes"), "\"yes\"");
  EXPECT_EQ(quote_if_needed("Null"), "\"Null\"");
  EXPECT_EQ(quote_if_needed("-x"), "\"-x\"");
  EXPECT_EQ(quote_if_needed("a b"), "\"a b\"");
  EXPECT_EQ(quote_if_needed("a#b"), "\"a#b\"");
  EXPECT_EQ(quote_if_needed("say \"hi\"\\\n\x01"), "\"say \\\"hi\\\"\\\\\\n\\x01\"");
}

// --- A user-defined codec and enum, declared the way applications do it. ---

struct Percent {
  unsigned value = 0;
  friend bool operator==(const Percent&, const Percent&) = default;
};

enum class Color { kRed, kGreen };

}  // namespace

template <>
struct ramjet::settings::Codec<Percent> {
  static bool parse(const Node& node, Percent& out, std::string& error) {
    const std::string* s = scalar_text(node, error);
    if (!s) return false;
    unsigned v = 0;
    auto [end, ec] = std::from_chars(s->data(), s->data() + s->size(), v);
    if (ec != std::errc() || end + 1 != s->data() + s->size() || *end != '%' || v > 100) {
      error = "invalid percentage \"" + *s + "\" (expected 0% to 100%)";
      return false;
    }
    out.value = v;
    return true;
  }
  static std::string format(const Percent& p) { return std::to_string(p.value) + "%"; }
};

template <>
struct ramjet::settings::EnumNames<Color> {
  static constexpr std::pair<Color, std::string_view> values[] = {{Color::kRed, "red"},
                                                                  {Color::kGreen, "green"}};
};

namespace {

struct Inner {
  int depth = 1;
  static void describe(ramjet::settings::Fields<Inner>& f) {
    f("depth", &Inner::depth, "How deep.");
  }
};

struct Outer {
  Percent share{50};
  Color color = Color::kGreen;
  std::optional<int> maybe;
  std::vector<int> numbers{1, 2};
  Inner inner;
  std::vector<Inner> inners{Inner{}, Inner{3}};
  std::string label;
  static void describe(ramjet::settings::Fields<Outer>& f) {
    f("share", &Outer::share, "A custom codec.");
    f("color", &Outer::color, "An enum.\nTwo lines of doc.");
    f("maybe", &Outer::maybe, "Optional.");
    f("numbers", &Outer::numbers, "A flow list.");
    f("inner", &Outer::inner, "A nested struct.");
    f("inners", &Outer::inners, "A block list.");
    f.required("label", &Outer::label, "Must be set.");
  }
};

TEST(Emit, DocumentsEveryKeyInDeclarationOrder) {
  EXPECT_EQ(ramjet::settings::emit(Outer{}, 2),
            "  # A custom codec.\n"
            "  share: 50%\n"
            "  # An enum.\n"
            "  # Two lines of doc.\n"
            "  color: green\n"
            "  # Optional.\n"
            "  maybe: null\n"
            "  # A flow list.\n"
            "  numbers: [1, 2]\n"
            "  # A nested struct.\n"
            "  inner:\n"
            "    # How deep.\n"
            "    depth: 1\n"
            "  # A block list.\n"
            "  inners:\n"
            "    - # How deep.\n"
            "      depth: 1\n"
            "    - # How deep.\n"
            "      depth: 3\n"
            "  # Must be set.\n"
            "  # label: <required>\n");
}

TEST(Emit, LongDocsWrapAt100Columns) {
  struct Wordy {
    int x = 0;
    static void describe(ramjet::settings::Fields<Wordy>& f) {
      f("x", &Wordy::x,
        "one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
        "fifteen sixteen seventeen eighteen nineteen twenty");
    }
  };
  std::string out = ramjet::settings::emit(Wordy{}, 4);
  EXPECT_EQ(out,
            "    # one two three four five six seven eight nine ten eleven twelve thirteen "
            "fourteen fifteen\n"
            "    # sixteen seventeen eighteen nineteen twenty\n"
            "    x: 0\n");
}

TEST(ErasedStruct, MakesParsesAndEmits) {
  auto erased = ramjet::settings::ErasedStruct::of<Outer>();
  EXPECT_TRUE(erased.holds<Outer>());
  EXPECT_FALSE(erased.empty());
  auto obj = erased.make();
  EXPECT_EQ(static_cast<Outer*>(obj.get())->share, Percent{50});

  Node n = map({{"label", scalar("x")}, {"share", scalar("7%")}, {"color", scalar("red")}});
  ramjet::settings::ParseContext ctx;
  ASSERT_TRUE(erased.parse(n, obj.get(), "app", ctx));
  auto* o = static_cast<Outer*>(obj.get());
  EXPECT_EQ(o->share, Percent{7});
  EXPECT_EQ(o->color, Color::kRed);
  EXPECT_EQ(o->label, "x");

  Node bad = map({{"share", scalar("200%")}, {"color", scalar("blue")}});
  ramjet::settings::ParseContext ctx2;
  EXPECT_FALSE(erased.parse(bad, obj.get(), "app", ctx2));
  ASSERT_EQ(ctx2.diagnostics().size(), 3u);
  EXPECT_EQ(ctx2.diagnostics()[0].path, "app.share");
  EXPECT_EQ(ctx2.diagnostics()[0].message, "invalid percentage \"200%\" (expected 0% to 100%)");
  EXPECT_EQ(ctx2.diagnostics()[1].message, "invalid value \"blue\" (expected one of: red, green)");
  EXPECT_EQ(ctx2.diagnostics()[2].path, "app");
  EXPECT_EQ(ctx2.diagnostics()[2].message, "missing required key \"label\"");

  ramjet::settings::ErasedStruct none;
  EXPECT_TRUE(none.empty());
  ramjet::settings::ParseContext ctx3;
  EXPECT_FALSE(none.parse(map({{"x", scalar("1")}}), none.make().get(), "app", ctx3));
  EXPECT_EQ(ctx3.diagnostics()[0].message, "unknown key (no keys are declared here)");
}

}  // namespace
