#include "http/h1/parser.h"

#include <gtest/gtest.h>

#include <span>
#include <string>
#include <utility>
#include <vector>

namespace ramjet::http::h1 {
namespace {

using namespace std::string_view_literals;

constexpr auto kReq = MessageKind::kRequest;
constexpr auto kResp = MessageKind::kResponse;
constexpr auto kDone = ParseStatus::kDone;
constexpr auto kMore = ParseStatus::kNeedMore;
constexpr auto kErr = ParseStatus::kError;

// One row: a message, what the parser must say, and for kDone the framing it derives.
struct Case {
  const char* name;
  MessageKind kind;
  std::string_view input;
  ParseStatus status;
  int http_status = 0;           // kError
  std::string_view reason = {};  // kError, exact
  BodyKind body = BodyKind::kNone;
  bool keep_alive = true;
  std::string_view request_method = {};  // responses: the method of the request they answer
};

// Names the row instead of dumping its bytes when a parameterized test fails.
void PrintTo(const Case& c, std::ostream* os) {
  *os << c.name;
}

constexpr Case ok(const char* name, MessageKind kind, std::string_view input,
                  BodyKind body = BodyKind::kNone, bool keep_alive = true,
                  std::string_view request_method = {}) {
  return {name, kind, input, kDone, 0, {}, body, keep_alive, request_method};
}
constexpr Case more(const char* name, MessageKind kind, std::string_view input) {
  return {name, kind, input, kMore};
}
constexpr Case bad(const char* name, MessageKind kind, std::string_view input, int http_status,
                   std::string_view reason) {
  return {name, kind, input, kErr, http_status, reason};
}

constexpr auto kNone = BodyKind::kNone;
constexpr auto kLength = BodyKind::kContentLength;
constexpr auto kChunked = BodyKind::kChunked;
constexpr auto kUntilClose = BodyKind::kUntilClose;
constexpr auto kTunnel = BodyKind::kTunnel;

const Case kCases[] = {
    // ---- Valid requests -------------------------------------------------------------------
    ok("get_origin", kReq, "GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n"),
    ok("get_absolute", kReq, "GET http://example.com/x HTTP/1.1\r\nHost: example.com\r\n\r\n"),
    ok("connect_authority", kReq,
       "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"),
    ok("connect_ipv6", kReq,
       "CONNECT [2001:db8::1]:443 HTTP/1.1\r\nHost: [2001:db8::1]:443\r\n\r\n"),
    ok("options_asterisk", kReq, "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"),
    ok("post_content_length", kReq, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
       kLength),
    ok("content_length_zero", kReq, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
       kLength),
    ok("content_length_max", kReq,
       "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775807\r\n\r\n", kLength),
    ok("post_chunked", kReq, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
       kChunked),
    ok("chunked_case_insensitive", kReq,
       "POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding: ChUnKeD\r\n\r\n", kChunked),
    ok("gzip_then_chunked", kReq,
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: "
       "chunked\r\n\r\n",
       kChunked),
    ok("http10_no_host", kReq, "GET / HTTP/1.0\r\n\r\n", kNone, false),
    ok("http10_keep_alive", kReq, "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", kNone, true),
    ok("http11_close", kReq, "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n",
       kNone, false),
    ok("leading_empty_lines", kReq, "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"),
    ok("ows_and_obs_text", kReq, "GET / HTTP/1.1\r\nHost:a\r\nX-A: \t v\xe9 \t\r\nX-B:\r\n\r\n"),
    ok("empty_host_ok", kReq, "GET / HTTP/1.1\r\nHost:\r\n\r\n"),
    ok("lowercase_method_token", kReq, "purge /x HTTP/1.1\r\nHost: a\r\n\r\n"),
    // ---- Incomplete -----------------------------------------------------------------------
    more("partial_fields", kReq, "GET / HTTP/1.1\r\nHost: a\r\n"),
    more("partial_cr", kReq, "GET / HTTP/1.1\r\nHost: a\r\n\r"),
    more("partial_request_line", kReq, "GET / HTT"),
    more("empty_input", kReq, ""),
    // ---- Smuggling vectors and framing ----------------------------------------------------
    bad("cl_and_te", kReq,
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        400, "Content-Length with Transfer-Encoding"),
    bad("te_and_cl", kReq,
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
        400, "Content-Length with Transfer-Encoding"),
    bad("duplicate_cl_equal", kReq,
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 400,
        "duplicate Content-Length"),
    bad("duplicate_cl_differs", kReq,
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\ncontent-length: 6\r\n\r\n", 400,
        "duplicate Content-Length"),
    bad("cl_negative", kReq, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400,
        "invalid Content-Length"),
    bad("cl_signed", kReq, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", 400,
        "invalid Content-Length"),
    bad("cl_empty", kReq, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", 400,
        "empty Content-Length"),
    bad("cl_list", kReq, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", 400,
        "invalid Content-Length"),
    bad("cl_hex", kReq, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n", 400,
        "invalid Content-Length"),
    bad("cl_overflow", kReq,
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775808\r\n\r\n", 400,
        "Content-Length too large"),
    bad("cl_overflow_u64", kReq,
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551617\r\n\r\n", 400,
        "Content-Length too large"),
    bad("te_chunked_not_last", kReq,
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400,
        "chunked is not the final transfer coding"),
    bad("te_gzip_only", kReq, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 400,
        "chunked is not the final transfer coding"),
    bad("te_unknown", kReq, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: foo, chunked\r\n\r\n",
        501, "unknown transfer coding"),
    bad("te_identity_not_final_chunked", kReq,
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", 400,
        "chunked is not the final transfer coding"),
    // RFC 9112 6.3: a request whose final coding is not chunked MUST get 400, even when another
    // coding is unknown (501 is for an unknown coding in an otherwise delimited message).
    bad("te_chunked_identity", kReq,
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n", 400,
        "chunked is not the final transfer coding"),
    bad("te_identity_unknown", kReq,
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity, chunked\r\n\r\n", 501,
        "unknown transfer coding"),
    bad("te_chunked_then_unknown_line", kReq,
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
        "gzip\r\n\r\n",
        400, "chunked is not the final transfer coding"),
    bad("connect_port_zero", kReq, "CONNECT a.test:0 HTTP/1.1\r\nHost: a.test:0\r\n\r\n", 400,
        "CONNECT to port 0"),
    bad("connect_port_zeros", kReq, "CONNECT [::1]:000 HTTP/1.1\r\nHost: a\r\n\r\n", 400,
        "CONNECT to port 0"),
    bad("te_chunked_twice", kReq,
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
        "chunked\r\n\r\n",
        400, "chunked applied more than once"),
    bad("te_parameters", kReq,
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;q=1\r\n\r\n", 400,
        "transfer-coding parameters are not supported"),
    bad("te_empty_element", kReq,
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: , chunked\r\n\r\n", 400,
        "empty Transfer-Encoding element"),
    bad("te_garbage", kReq, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n",
        400, "invalid Transfer-Encoding"),
    bad("te_http10", kReq, "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
        "Transfer-Encoding in an HTTP/1.0 message"),
    bad("te_space_before_colon", kReq,
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n", 400,
        "whitespace between field name and colon"),
    bad("obs_fold", kReq, "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", 400,
        "obs-fold (field line starting with whitespace)"),
    bad("obs_fold_te", kReq,
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\tchunked\r\n\r\n", 400,
        "obs-fold (field line starting with whitespace)"),
    bad("ws_before_first_field", kReq, "GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400,
        "whitespace before the first field line"),
    // ---- Line endings, NUL, character classes ---------------------------------------------
    bad("bare_lf_request_line", kReq, "GET / HTTP/1.1\nHost: a\r\n\r\n", 400,
        "bare LF (lines must end in CRLF)"),
    bad("bare_lf_field", kReq, "GET / HTTP/1.1\r\nHost: a\n\r\n", 400,
        "bare LF (lines must end in CRLF)"),
    bad("bare_lf_end_of_head", kReq, "GET / HTTP/1.1\r\nHost: a\r\n\n", 400,
        "bare LF (lines must end in CRLF)"),
    bad("bare_cr_field", kReq, "GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", 400,
        "bare CR (not followed by LF)"),
    bad("bare_cr_partial_detected_early", kReq, "GET / HTTP/1.1\r\nX: a\rb", 400,
        "bare CR (not followed by LF)"),
    bad("nul_in_value", kReq, "GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n"sv, 400, "NUL byte in head"),
    bad("nul_in_target", kReq, "GET /\0 HTTP/1.1\r\nHost: a\r\n\r\n"sv, 400, "NUL byte in head"),
    bad("ctl_in_value", kReq, "GET / HTTP/1.1\r\nHost: a\r\nX: a\x01z\r\n\r\n", 400,
        "invalid character in field value"),
    bad("del_in_value", kReq, "GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fz\r\n\r\n", 400,
        "invalid character in field value"),
    bad("bad_field_name", kReq, "GET / HTTP/1.1\r\nHost: a\r\nX(Y): 1\r\n\r\n", 400,
        "invalid character in field name"),
    bad("host_space_before_colon", kReq, "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400,
        "whitespace between field name and colon"),
    bad("missing_colon", kReq, "GET / HTTP/1.1\r\nHost a\r\n\r\n", 400,
        "whitespace between field name and colon"),
    bad("no_colon_at_all", kReq, "GET / HTTP/1.1\r\nHost\r\n\r\n", 400,
        "missing colon in field line"),
    bad("empty_field_name", kReq, "GET / HTTP/1.1\r\n: a\r\nHost: a\r\n\r\n", 400,
        "empty field name"),
    bad("bad_method_char", kReq, "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400,
        "invalid character in method"),
    bad("empty_method", kReq, " / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "empty method"),
    bad("target_space", kReq, "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400,
        "whitespace in request-target"),
    bad("double_space", kReq, "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400,
        "whitespace in request-target"),
    bad("target_ctl", kReq, "GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n", 400,
        "invalid character in request-target"),
    bad("target_tab", kReq, "GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", 400,
        "invalid character in request-target"),
    bad("target_fragment", kReq, "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", 400,
        "fragment in request-target"),
    bad("missing_version", kReq, "GET /\r\nHost: a\r\n\r\n", 400, "missing HTTP version"),
    bad("missing_target", kReq, "GET\r\nHost: a\r\n\r\n", 400, "missing request-target"),
    // ---- Versions -------------------------------------------------------------------------
    bad("http20", kReq, "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, "unsupported HTTP version"),
    ok("http12_read_as_http11", kReq, "GET / HTTP/1.2\r\nHost: a\r\n\r\n"),
    bad("http12_needs_host_as_http11", kReq, "GET / HTTP/1.2\r\n\r\n", 400,
        "missing Host in HTTP/1.1 request"),
    bad("http21", kReq, "GET / HTTP/2.1\r\nHost: a\r\n\r\n", 505, "unsupported HTTP version"),
    bad("http09", kReq, "GET / HTTP/0.9\r\n\r\n", 505, "unsupported HTTP version"),
    bad("version_lowercase", kReq, "GET / http/1.1\r\nHost: a\r\n\r\n", 400,
        "malformed HTTP version"),
    bad("version_trailing_space", kReq, "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400,
        "malformed HTTP version"),
    bad("version_two_digits", kReq, "GET / HTTP/1.10\r\nHost: a\r\n\r\n", 400,
        "malformed HTTP version"),
    // ---- Host and target forms ------------------------------------------------------------
    bad("missing_host", kReq, "GET / HTTP/1.1\r\nX: a\r\n\r\n", 400,
        "missing Host in HTTP/1.1 request"),
    bad("two_hosts", kReq, "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400,
        "multiple Host fields"),
    bad("two_hosts_same", kReq, "GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", 400,
        "multiple Host fields"),
    bad("host_with_path", kReq, "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, "invalid Host"),
    bad("host_with_userinfo", kReq, "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400, "invalid Host"),
    bad("host_bad_port", kReq, "GET / HTTP/1.1\r\nHost: a:99999\r\n\r\n", 400, "invalid Host"),
    bad("connect_origin_form", kReq, "CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n", 400,
        "CONNECT target must be authority-form host:port"),
    bad("connect_no_port", kReq, "CONNECT example.com HTTP/1.1\r\nHost: a\r\n\r\n", 400,
        "CONNECT target must be authority-form host:port"),
    bad("connect_absolute", kReq, "CONNECT http://a:443/ HTTP/1.1\r\nHost: a\r\n\r\n", 400,
        "CONNECT target must be authority-form host:port"),
    bad("connect_userinfo", kReq, "CONNECT u@a:443 HTTP/1.1\r\nHost: a\r\n\r\n", 400,
        "CONNECT target must be authority-form host:port"),
    bad("asterisk_not_options", kReq, "GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400,
        "asterisk-form is for OPTIONS"),
    bad("bare_hostname_target", kReq, "GET example.com HTTP/1.1\r\nHost: a\r\n\r\n", 400,
        "invalid request-target form"),
    bad("bad_connection_option", kReq, "GET / HTTP/1.1\r\nHost: a\r\nConnection: a b\r\n\r\n", 400,
        "invalid Connection option"),
    // ---- Responses ------------------------------------------------------------------------
    ok("resp_content_length", kResp, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", kLength),
    ok("resp_chunked", kResp, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", kChunked),
    ok("resp_until_close", kResp, "HTTP/1.1 200 OK\r\n\r\n", kUntilClose, false),
    ok("resp_te_gzip_until_close", kResp, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
       kUntilClose, false),
    ok("resp_204", kResp, "HTTP/1.1 204 No Content\r\n\r\n", kNone),
    ok("resp_304_with_cl", kResp, "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", kNone),
    ok("resp_100", kResp, "HTTP/1.1 100 Continue\r\n\r\n", kNone),
    ok("resp_101", kResp,
       "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
       kTunnel, false),
    ok("resp_to_head", kResp, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", kNone, true, "HEAD"),
    ok("resp_to_connect", kResp, "HTTP/1.1 200 Connection established\r\n\r\n", kTunnel, false,
       "CONNECT"),
    ok("resp_407_to_connect", kResp, "HTTP/1.1 407 Auth\r\nContent-Length: 0\r\n\r\n", kLength,
       true, "CONNECT"),
    ok("resp_no_reason", kResp, "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", kLength),
    ok("resp_empty_reason", kResp, "HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n", kLength),
    ok("resp_http10", kResp, "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", kLength, false),
    bad("resp_status_099", kResp, "HTTP/1.1 099 X\r\n\r\n", 502, "status code out of range"),
    bad("resp_status_600", kResp, "HTTP/1.1 600 X\r\n\r\n", 502, "status code out of range"),
    bad("resp_status_two_digits", kResp, "HTTP/1.1 20 OK\r\n\r\n", 502, "malformed status-line"),
    bad("resp_status_four_digits", kResp, "HTTP/1.1 2000 OK\r\n\r\n", 502, "malformed status-line"),
    ok("resp_http12_read_as_http11", kResp, "HTTP/1.2 200 OK\r\nContent-Length: 0\r\n\r\n",
       kLength),
    ok("resp_te_split_chunked_last", kResp,
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
       kChunked),
    ok("resp_te_split_chunked_first", kResp,
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
       kUntilClose, false),
    bad("resp_http2", kResp, "HTTP/2.0 200 OK\r\n\r\n", 502, "unsupported HTTP version"),
    bad("resp_garbage", kResp, "SSH-2.0-OpenSSH\r\n\r\n", 502, "malformed HTTP version"),
    bad("resp_cl_and_te", kResp,
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 502,
        "Content-Length with Transfer-Encoding"),
    bad("resp_unknown_coding", kResp, "HTTP/1.1 200 OK\r\nTransfer-Encoding: br, chunked\r\n\r\n",
        502, "unknown transfer coding"),
    bad("resp_reason_ctl", kResp, "HTTP/1.1 200 O\x01K\r\n\r\n", 502,
        "invalid character in reason-phrase"),
    bad("resp_empty_status_line", kResp, "\r\nHTTP/1.1 200 OK\r\n\r\n", 502, "empty status-line"),
    bad("resp_obs_fold", kResp, "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", 502,
        "obs-fold (field line starting with whitespace)"),
};

// A copy of the parser's verdict with field contents copied, so that runs over different
// buffers can be compared.
struct Outcome {
  ParseStatus status;
  std::size_t consumed;
  int http_status;
  std::size_t offset;
  std::string reason;
  std::vector<std::pair<std::string, std::string>> fields;
  std::string method, target, status_reason;
  BodyKind body;
  bool keep_alive;

  bool operator==(const Outcome&) const = default;
};

Outcome outcome(const HeadResult& r, const Head& h) {
  Outcome o{
      r.status, r.consumed, r.error.status,  r.error.offset, std::string(r.error.reason), {}, {},
      {},       {},         BodyKind::kNone, false};
  if (r.status == ParseStatus::kDone) {
    for (const Field& f : h.fields) o.fields.emplace_back(f.name, f.value);
    o.method = h.method;
    o.target = h.target;
    o.status_reason = h.reason;
    o.body = h.body;
    o.keep_alive = h.keep_alive;
  }
  return o;
}

Outcome parse_whole(const Case& c) {
  HeadParser p(c.kind, {}, c.request_method);
  Head h;
  const HeadResult r = p.parse(c.input, h);
  return outcome(r, h);
}

class HeadTable : public ::testing::TestWithParam<Case> {};

TEST_P(HeadTable, ParsesAsExpected) {
  const Case& c = GetParam();
  HeadParser p(c.kind, {}, c.request_method);
  Head h;
  const HeadResult r = p.parse(c.input, h);
  ASSERT_EQ(r.status, c.status) << "reason: " << r.error.reason;
  if (c.status == kErr) {
    EXPECT_EQ(r.error.status, c.http_status);
    EXPECT_EQ(r.error.reason, c.reason);
    EXPECT_LE(r.error.offset, c.input.size());
    // Errors are sticky: more bytes do not revive the parser.
    EXPECT_EQ(p.parse(c.input, h).status, kErr);
  } else if (c.status == kDone) {
    EXPECT_EQ(h.body, c.body) << to_string(h.body);
    EXPECT_EQ(h.keep_alive, c.keep_alive);
    EXPECT_LE(r.consumed, c.input.size());
    EXPECT_EQ(c.input.substr(r.consumed - 4, 4), "\r\n\r\n");
  }
}

// Resumability: every split point, and byte-at-a-time growth in a buffer that moves on each
// call, must give exactly what a single call over the whole message gives.
TEST_P(HeadTable, EverySplitGivesTheSameResult) {
  const Case& c = GetParam();
  const Outcome whole = parse_whole(c);
  for (std::size_t cut = 0; cut <= c.input.size(); ++cut) {
    HeadParser p(c.kind, {}, c.request_method);
    Head h;
    HeadResult r = p.parse(c.input.substr(0, cut), h);
    if (r.status == kMore) r = p.parse(c.input, h);
    ASSERT_EQ(outcome(r, h), whole) << "split at " << cut;
  }
  HeadParser p(c.kind, {}, c.request_method);
  Head h;
  HeadResult r;
  std::string moving;
  for (std::size_t n = 0; n <= c.input.size(); ++n) {
    std::string grown(c.input.substr(0, n));  // a fresh allocation: views must be rebased
    moving.swap(grown);
    r = p.parse(moving, h);
    if (r.status != kMore) break;
  }
  EXPECT_EQ(outcome(r, h), whole);
}

INSTANTIATE_TEST_SUITE_P(Messages, HeadTable, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return std::string(info.param.name); });

// ---- Head contents -----------------------------------------------------------------------

TEST(HeadParser, RequestViewsPointIntoTheBuffer) {
  const std::string msg =
      "POST http://example.com/a?b HTTP/1.1\r\nHost: example.com\r\nX-Trim: \t  v  v \t\r\n"
      "X-Empty:\r\nContent-Length: 12\r\n\r\nbody";
  HeadParser p(kReq);
  Head h;
  const HeadResult r = p.parse(msg, h);
  ASSERT_EQ(r.status, kDone);
  EXPECT_EQ(r.consumed, msg.size() - 4);
  EXPECT_EQ(h.method, "POST");
  EXPECT_EQ(h.target, "http://example.com/a?b");
  EXPECT_EQ(h.target_form, TargetForm::kAbsolute);
  EXPECT_EQ(h.version, Version::kHttp11);
  ASSERT_EQ(h.fields.size(), 4u);
  EXPECT_EQ(h.fields[1].name, "X-Trim");
  EXPECT_EQ(h.fields[1].value, "v  v");
  EXPECT_EQ(h.fields[2].value, "");
  EXPECT_EQ(h.body, BodyKind::kContentLength);
  EXPECT_EQ(h.content_length, 12u);
  EXPECT_GE(h.method.data(), msg.data());
  EXPECT_LE(h.fields[3].value.data() + h.fields[3].value.size(), msg.data() + msg.size());
  ASSERT_NE(find_field(h, "x-trim"), nullptr);
  EXPECT_EQ(find_field(h, "x-missing"), nullptr);
}

TEST(HeadParser, AcceptsASpan) {
  const std::string msg = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  HeadParser p(kReq);
  Head h;
  const HeadResult r = p.parse(std::span<const char>(msg.data(), msg.size()), h);
  EXPECT_EQ(r.status, kDone);
  EXPECT_EQ(r.consumed, msg.size());
}

TEST(HeadParser, TargetForms) {
  const std::pair<std::string_view, TargetForm> cases[] = {
      {"GET /x HTTP/1.1\r\nHost: a\r\n\r\n", TargetForm::kOrigin},
      {"GET https://a/x HTTP/1.1\r\nHost: a\r\n\r\n", TargetForm::kAbsolute},
      {"CONNECT a:1 HTTP/1.1\r\nHost: a:1\r\n\r\n", TargetForm::kAuthority},
      {"CONNECT 192.0.2.1:8443 HTTP/1.1\r\nHost: 192.0.2.1:8443\r\n\r\n", TargetForm::kAuthority},
      {"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", TargetForm::kAsterisk},
  };
  for (const auto& [msg, form] : cases) {
    HeadParser p(kReq);
    Head h;
    ASSERT_EQ(p.parse(msg, h).status, kDone) << msg;
    EXPECT_EQ(h.target_form, form) << msg;
  }
}

TEST(HeadParser, ConnectionTokensAndHopByHop) {
  const std::string msg =
      "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, , X-Secret\r\nConnection: close\r\n"
      "Upgrade: websocket\r\nExpect: 100-Continue\r\nX-Secret: 1\r\nX-Public: 2\r\n\r\n";
  HeadParser p(kReq);
  Head h;
  ASSERT_EQ(p.parse(msg, h).status, kDone);
  ASSERT_EQ(h.connection_tokens.size(), 3u);
  EXPECT_EQ(h.connection_tokens[0], "Upgrade");
  EXPECT_EQ(h.connection_tokens[1], "X-Secret");
  EXPECT_EQ(h.connection_tokens[2], "close");
  EXPECT_FALSE(h.keep_alive);
  EXPECT_TRUE(h.upgrade);
  EXPECT_TRUE(h.expect_continue);
  EXPECT_TRUE(is_hop_by_hop(h, "x-secret"));
  EXPECT_TRUE(is_hop_by_hop(h, "Keep-Alive"));
  EXPECT_TRUE(is_hop_by_hop(h, "Transfer-Encoding"));
  EXPECT_FALSE(is_hop_by_hop(h, "X-Public"));
}

TEST(HeadParser, TransferCodingsAreOneListOverEveryLine) {
  HeadParser p(kReq);
  Head h;
  ASSERT_EQ(p.parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip ,x-gzip\r\nX: y\r\n"
                    "transfer-encoding: deflate, Chunked\r\n\r\n"sv,
                    h)
                .status,
            kDone);
  EXPECT_EQ(h.body, BodyKind::kChunked);
  const std::vector<std::string_view> want = {"gzip", "x-gzip", "deflate", "Chunked"};
  EXPECT_EQ(h.transfer_codings, want);
  // Reset forgets them.
  p.reset();
  ASSERT_EQ(p.parse("GET / HTTP/1.1\r\nHost: a\r\n\r\n"sv, h).status, kDone);
  EXPECT_TRUE(h.transfer_codings.empty());
}

TEST(HeadParser, TransferCodingsFollowAMovedBuffer) {
  std::string buf = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n";
  HeadParser p(kReq);
  Head h;
  ASSERT_EQ(p.parse(buf, h).status, kMore);
  buf += "Transfer-Encoding: chunked\r\n";
  buf.reserve(buf.capacity() * 4);  // moves the bytes
  ASSERT_EQ(p.parse(buf, h).status, kMore);
  buf += "\r\n";
  ASSERT_EQ(p.parse(buf, h).status, kDone);
  ASSERT_EQ(h.transfer_codings.size(), 2u);
  EXPECT_EQ(h.transfer_codings[0], "gzip");
  EXPECT_GE(h.transfer_codings[0].data(), buf.data());
  EXPECT_LT(h.transfer_codings[1].data(), buf.data() + buf.size());
}

TEST(HeadParser, ListFieldsSplitOverLines) {
  HeadParser p(kReq);
  Head h;
  ASSERT_EQ(p.parse("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nExpect: foo\r\n"
                    "Upgrade: WebSocket\r\nExpect: x, 100-continue\r\n\r\n"sv,
                    h)
                .status,
            kDone);
  EXPECT_TRUE(lists_element(h, "upgrade", "websocket"));
  EXPECT_TRUE(lists_element(h, "Upgrade", "h2c"));
  EXPECT_FALSE(lists_element(h, "upgrade", "h2"));
  EXPECT_TRUE(h.expect_continue);
  EXPECT_TRUE(lists_element(h, "expect", "100-continue"));
}

TEST(HeadParser, Http10IgnoresUpgradeAndExpect) {
  HeadParser p(kReq);
  Head h;
  ASSERT_EQ(p.parse("GET / HTTP/1.0\r\nUpgrade: x\r\nExpect: 100-continue\r\n\r\n"sv, h).status,
            kDone);
  EXPECT_FALSE(h.upgrade);
  EXPECT_FALSE(h.expect_continue);
  EXPECT_EQ(h.version, Version::kHttp10);
}

TEST(HeadParser, ResponseStatusAndReason) {
  HeadParser p(kResp);
  Head h;
  ASSERT_EQ(p.parse("HTTP/1.1 404 Not\tFound \xff\r\nContent-Length: 0\r\n\r\n"sv, h).status,
            kDone);
  EXPECT_EQ(h.kind, kResp);
  EXPECT_EQ(h.status_code, 404);
  EXPECT_EQ(h.reason, "Not\tFound \xff");
}

TEST(HeadParser, PipelinedMessagesWithReset) {
  const std::string buf =
      "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\nGET /3 HTT";
  HeadParser p(kReq);
  Head h;
  std::string_view rest = buf;
  HeadResult r = p.parse(rest, h);
  ASSERT_EQ(r.status, kDone);
  EXPECT_EQ(h.target, "/1");
  rest.remove_prefix(r.consumed);
  p.reset();
  r = p.parse(rest, h);
  ASSERT_EQ(r.status, kDone);
  EXPECT_EQ(h.target, "/2");
  rest.remove_prefix(r.consumed);
  p.reset();
  EXPECT_EQ(p.parse(rest, h).status, kMore);
  EXPECT_EQ(p.validated(), rest.size());
}

TEST(HeadParser, ResetTakesTheNextRequestMethod) {
  HeadParser p(kResp, {}, "HEAD");
  Head h;
  ASSERT_EQ(p.parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"sv, h).status, kDone);
  EXPECT_EQ(h.body, BodyKind::kNone);
  p.reset("GET");
  ASSERT_EQ(p.parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"sv, h).status, kDone);
  EXPECT_EQ(h.body, BodyKind::kContentLength);
}

TEST(HeadParser, ValidatedOffsetAdvancesWithoutRescanning) {
  const std::string msg = "GET / HTTP/1.1\r\nHost: a\r\nX-Long: 0123456789\r\n\r\n";
  HeadParser p(kReq);
  Head h;
  ASSERT_EQ(p.parse(std::string_view(msg).substr(0, 20), h).status, kMore);
  EXPECT_EQ(p.validated(), 20u);
  ASSERT_EQ(p.parse(std::string_view(msg).substr(0, 30), h).status, kMore);
  EXPECT_EQ(p.validated(), 30u);
  ASSERT_EQ(p.parse(msg, h).status, kDone);
}

TEST(HeadParser, ShrunkBufferIsAnError) {
  HeadParser p(kReq);
  Head h;
  ASSERT_EQ(p.parse("GET / HTTP/1.1\r\n"sv, h).status, kMore);
  const HeadResult r = p.parse("GET"sv, h);
  EXPECT_EQ(r.status, kErr);
  EXPECT_EQ(r.error.status, 500);
}

// ---- Limits --------------------------------------------------------------------------------

TEST(HeadParserLimits, RequestLineAtTheLimitPassesOneMoreIs414) {
  Limits limits;
  limits.max_start_line = 32;
  const std::string ok = "GET /" + std::string(32 - 14, 'a') + " HTTP/1.1";
  ASSERT_EQ(ok.size(), 32u);
  HeadParser p(kReq, limits);
  Head h;
  EXPECT_EQ(p.parse(ok + "\r\nHost: a\r\n\r\n", h).status, kDone);

  const std::string bad = "GET /" + std::string(32 - 13, 'a') + " HTTP/1.1\r\nHost: a\r\n\r\n";
  HeadParser q(kReq, limits);
  const HeadResult r = q.parse(bad, h);
  ASSERT_EQ(r.status, kErr);
  EXPECT_EQ(r.error.status, 414);
  EXPECT_EQ(r.error.reason, "request-line too long");
  EXPECT_EQ(r.error.offset, 32u);
}

TEST(HeadParserLimits, OverlongPartialLineFailsBeforeItsEnd) {
  Limits limits;
  limits.max_start_line = 64;
  HeadParser p(kReq, limits);
  Head h;
  const std::string partial = "GET /" + std::string(100, 'a');  // no CRLF yet
  const HeadResult r = p.parse(partial, h);
  ASSERT_EQ(r.status, kErr);
  EXPECT_EQ(r.error.status, 414);
}

TEST(HeadParserLimits, HeadTooLargeIs431EvenWhenIncomplete) {
  Limits limits;
  limits.max_head = 64;
  HeadParser p(kReq, limits);
  Head h;
  const std::string partial = "GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(100, 'v');
  const HeadResult r = p.parse(partial, h);
  ASSERT_EQ(r.status, kErr);
  EXPECT_EQ(r.error.status, 431);
  EXPECT_EQ(r.error.reason, "head too large");
  EXPECT_EQ(r.error.offset, 64u);
}

TEST(HeadParserLimits, HeadExactlyAtTheLimitPasses) {
  const std::string msg = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  Limits limits;
  limits.max_head = msg.size();
  HeadParser p(kReq, limits);
  Head h;
  EXPECT_EQ(p.parse(msg, h).status, kDone);
  limits.max_head = msg.size() - 1;
  HeadParser q(kReq, limits);
  EXPECT_EQ(q.parse(msg, h).error.status, 431);
}

TEST(HeadParserLimits, TooManyFieldsIs431) {
  Limits limits;
  limits.max_fields = 3;
  Head h;
  HeadParser ok(kReq, limits);
  EXPECT_EQ(ok.parse("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n"sv, h).status, kDone);
  HeadParser p(kReq, limits);
  const HeadResult r = p.parse("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"sv, h);
  ASSERT_EQ(r.status, kErr);
  EXPECT_EQ(r.error.status, 431);
  EXPECT_EQ(r.error.reason, "too many fields");
}

TEST(HeadParserLimits, ResponseLimitsAre502) {
  Limits limits;
  limits.max_start_line = 16;
  HeadParser p(kResp, limits);
  Head h;
  const HeadResult r = p.parse("HTTP/1.1 200 A very long reason\r\n\r\n"sv, h);
  ASSERT_EQ(r.status, kErr);
  EXPECT_EQ(r.error.status, 502);
  EXPECT_EQ(r.error.reason, "status-line too long");
}

TEST(HeadParser, FieldsVectorIsReusedAcrossMessages) {
  Head h;
  h.fields.reserve(16);
  const auto* storage = h.fields.data();
  HeadParser p(kReq);
  ASSERT_EQ(p.parse("GET / HTTP/1.1\r\nHost: a\r\n\r\n"sv, h).status, kDone);
  p.reset();
  ASSERT_EQ(p.parse("GET / HTTP/1.1\r\nHost: b\r\nX: 1\r\n\r\n"sv, h).status, kDone);
  EXPECT_EQ(h.fields.data(), storage);
  EXPECT_EQ(h.fields.size(), 2u);
}

// ---- Chunked -----------------------------------------------------------------------------

struct Decoded {
  BodyStatus status = BodyStatus::kNeedMore;
  std::string data;
  std::vector<std::pair<std::string, std::string>> trailers;
  std::size_t consumed = 0;  // bytes of the input that belong to the body
  int http_status = 0;
  std::size_t offset = 0;
  std::string reason;

  bool operator==(const Decoded&) const = default;
};

// Feeds `input` in pieces that end at each of `cuts`, keeping what the decoder did not
// consume, the way a connection's read loop does.
Decoded decode_in_pieces(std::string_view input, std::vector<std::size_t> cuts,
                         MessageKind kind = kReq, const ChunkedLimits& limits = {}) {
  cuts.push_back(input.size());
  ChunkedDecoder d(kind, limits);
  std::vector<Field> trailers;
  Decoded out;
  std::string pending;
  std::size_t fed = 0;
  std::size_t dropped = 0;
  for (std::size_t cut : cuts) {
    if (cut < fed) continue;
    pending.append(input.substr(fed, cut - fed));
    fed = cut;
    for (;;) {
      const BodyResult r = d.decode(pending, trailers);
      out.status = r.status;
      if (r.status == BodyStatus::kError) {
        out.http_status = r.error.status;
        out.offset = r.error.offset;
        out.reason = r.error.reason;
        return out;
      }
      if (r.status == BodyStatus::kData) out.data.append(r.data);
      if (r.status == BodyStatus::kDone) {
        for (const Field& f : trailers) out.trailers.emplace_back(f.name, f.value);
        out.consumed = dropped + r.consumed;
        return out;
      }
      pending.erase(0, r.consumed);
      dropped += r.consumed;
      if (r.status == BodyStatus::kNeedMore) break;
    }
  }
  return out;
}

Decoded decode_whole(std::string_view input, MessageKind kind = kReq,
                     const ChunkedLimits& limits = {}) {
  return decode_in_pieces(input, {}, kind, limits);
}

TEST(Chunked, DecodesDataAndTrailers) {
  const std::string_view body =
      "5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Checksum: abc\r\nX-Other:  v \r\n\r\nNEXT";
  const Decoded d = decode_whole(body);
  ASSERT_EQ(d.status, BodyStatus::kDone) << d.reason;
  EXPECT_EQ(d.data, "hello, world");
  EXPECT_EQ(d.consumed, body.size() - 4);
  ASSERT_EQ(d.trailers.size(), 2u);
  EXPECT_EQ(d.trailers[0], (std::pair<std::string, std::string>{"X-Checksum", "abc"}));
  EXPECT_EQ(d.trailers[1].second, "v");
}

TEST(Chunked, DataIsAViewIntoTheInput) {
  ChunkedDecoder d;
  std::vector<Field> trailers;
  const std::string_view in = "3\r\nabc\r\n";
  const BodyResult r = d.decode(in, trailers);
  ASSERT_EQ(r.status, BodyStatus::kData);
  EXPECT_EQ(r.data.data(), in.data() + 3);
  EXPECT_EQ(r.consumed, 6u);
  const BodyResult more = d.decode(in.substr(6), trailers);
  EXPECT_EQ(more.status, BodyStatus::kNeedMore);
  EXPECT_EQ(more.consumed, 2u);
  EXPECT_EQ(d.position(), 8u);
}

TEST(Chunked, EverySplitAndByteAtATimeGiveTheSameResult) {
  const std::string_view bodies[] = {
      "5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Checksum: abc\r\nX-Other:  v \r\n\r\nNEXT",
      "A ; name = \"q\\\"uoted\" ; flag\r\n0123456789\r\n000\r\n\r\n",
      "1\r\nx\r\n0\r\nX: 1\r\n\r\n",
      "3\r\nabc\r\n0\r\nX: a\rb\r\n\r\n",  // bare CR inside a trailer
      "3\r\nabcX\r\n0\r\n\r\n",            // missing CRLF after data
  };
  for (std::string_view body : bodies) {
    const Decoded whole = decode_whole(body);
    for (std::size_t cut = 0; cut <= body.size(); ++cut) {
      ASSERT_EQ(decode_in_pieces(body, {cut}), whole) << body << " split at " << cut;
    }
    std::vector<std::size_t> every;
    for (std::size_t i = 0; i <= body.size(); ++i) every.push_back(i);
    ASSERT_EQ(decode_in_pieces(body, every), whole) << body;
  }
}

TEST(Chunked, ValidExtensions) {
  const std::string_view ok[] = {
      "1;a\r\nx\r\n0\r\n\r\n",
      "1;a=b\r\nx\r\n0\r\n\r\n",
      "1 ; a = b ; c\r\nx\r\n0\r\n\r\n",
      "1;a=\"\"\r\nx\r\n0\r\n\r\n",
      "1;a=\"x;y=z \\\\ \\\"\"\r\nx\r\n0\r\n\r\n",
      "1\t;\ta\r\nx\r\n0;last\r\n\r\n",
      "0000000001\r\nx\r\n0\r\n\r\n",
      "f\r\n0123456789abcde\r\n0\r\n\r\n",
  };
  for (std::string_view body : ok) {
    const Decoded d = decode_whole(body);
    EXPECT_EQ(d.status, BodyStatus::kDone) << body << ": " << d.reason;
  }
}

TEST(Chunked, InvalidFramingIs400WithAReason) {
  const std::pair<std::string_view, std::string_view> bad[] = {
      {"\r\nx\r\n0\r\n\r\n", "invalid chunk size"},
      {"g\r\nx\r\n0\r\n\r\n", "invalid chunk size"},
      {" 1\r\nx\r\n0\r\n\r\n", "invalid chunk size"},
      {"-1\r\nx\r\n0\r\n\r\n", "invalid chunk size"},
      {"0x1\r\nx\r\n0\r\n\r\n", "invalid character after chunk size"},
      {"1x\r\nx\r\n0\r\n\r\n", "invalid character after chunk size"},
      {"8000000000000000\r\n", "chunk size too large"},
      {"fffffffffffffffff\r\n", "chunk size too large"},
      {"1 \r\nx\r\n0\r\n\r\n", "malformed chunk extension"},
      {"1;\r\nx\r\n0\r\n\r\n", "malformed chunk extension"},
      {"1;=v\r\nx\r\n0\r\n\r\n", "malformed chunk extension"},
      {"1;a=\r\nx\r\n0\r\n\r\n", "malformed chunk extension"},
      {"1;a b\r\nx\r\n0\r\n\r\n", "malformed chunk extension"},
      {"1;a=\"open\r\nx\r\n0\r\n\r\n", "malformed chunk extension"},
      {"1;a=\"x\"y\r\nx\r\n0\r\n\r\n", "malformed chunk extension"},
      {"1;a=b=c\r\nx\r\n0\r\n\r\n", "malformed chunk extension"},
      {"1;a\x01\r\nx\r\n0\r\n\r\n", "malformed chunk extension"},
      {"1\nx\r\n0\r\n\r\n", "bare LF in chunk-size line"},
      {"1\rx\r\n0\r\n\r\n", "bare CR in chunk-size line"},
      {"1\r\nxy\r\n0\r\n\r\n", "missing CRLF after chunk data"},
      {"1\r\nx\n0\r\n\r\n", "bare LF after chunk data"},
      {"1\r\nx\rz0\r\n\r\n", "bare CR after chunk data"},
      {"0\r\nX: a\r\n b\r\n\r\n", "obs-fold in trailer section"},
      {"0\r\nX : a\r\n\r\n", "whitespace between field name and colon"},
      {"0\r\nX: a\x01\r\n\r\n", "invalid character in field value"},
      {"0\r\nX: a\n\r\n", "bare LF in trailer section"},
      {"0\r\n\n", "bare LF in trailer section"},
      {"0\r\nX: \0\r\n\r\n"sv, "NUL byte in trailer section"},
      {"0\r\nContent-Length: 5\r\n\r\n", "framing field in trailer section"},
      {"0\r\nTransfer-Encoding: chunked\r\n\r\n", "framing field in trailer section"},
      {"0\r\nHost: evil\r\n\r\n", "framing field in trailer section"},
  };
  for (const auto& [body, reason] : bad) {
    const Decoded d = decode_whole(body);
    ASSERT_EQ(d.status, BodyStatus::kError) << body;
    EXPECT_EQ(d.http_status, 400) << body;
    EXPECT_EQ(d.reason, reason) << body;
    EXPECT_LT(d.offset, body.size()) << body;
  }
}

TEST(Chunked, LargestSizeIsAccepted) {
  const Decoded d = decode_whole("7fffffffffffffff\r\nabc");
  EXPECT_EQ(d.status, BodyStatus::kNeedMore);
  EXPECT_EQ(d.data, "abc");
}

TEST(Chunked, ResponseErrorsAre502) {
  const Decoded d = decode_whole("zz\r\n", kResp);
  EXPECT_EQ(d.status, BodyStatus::kError);
  EXPECT_EQ(d.http_status, 502);
}

TEST(Chunked, ExtensionLengthIsBounded) {
  ChunkedLimits limits;
  limits.max_chunk_line = 16;
  const std::string ok = "1;" + std::string(14, 'a') + "\r\nx\r\n0\r\n\r\n";
  EXPECT_EQ(decode_whole(ok, kReq, limits).status, BodyStatus::kDone);
  // Rejected while the line is still open: no CRLF ever needs to arrive.
  const std::string bad = "1;" + std::string(100, 'a');
  const Decoded d = decode_whole(bad, kReq, limits);
  EXPECT_EQ(d.status, BodyStatus::kError);
  EXPECT_EQ(d.reason, "chunk-size line too long");
  EXPECT_EQ(d.offset, 16u);
}

TEST(Chunked, TrailerSectionIsBounded) {
  ChunkedLimits limits;
  limits.max_trailer = 32;
  const std::string bad = "0\r\nX: " + std::string(100, 'v');
  const Decoded d = decode_whole(bad, kReq, limits);
  EXPECT_EQ(d.status, BodyStatus::kError);
  EXPECT_EQ(d.http_status, 431);
  EXPECT_EQ(d.reason, "trailer section too large");
  EXPECT_EQ(d.offset, 3u + 32u);

  limits = {};
  limits.max_trailer_fields = 2;
  const Decoded many = decode_whole("0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", kReq, limits);
  EXPECT_EQ(many.reason, "too many trailer fields");
}

TEST(Chunked, ErrorsAreStickyAndResetStartsOver) {
  ChunkedDecoder d;
  std::vector<Field> trailers;
  EXPECT_EQ(d.decode("q"sv, trailers).status, BodyStatus::kError);
  EXPECT_EQ(d.decode("1\r\n"sv, trailers).status, BodyStatus::kError);
  d.reset();
  EXPECT_EQ(d.decode("0\r\n\r\n"sv, trailers).status, BodyStatus::kDone);
  EXPECT_EQ(d.decode("0\r\n\r\n"sv, trailers).status, BodyStatus::kDone);
}

TEST(Chunked, TrailerViewsSurviveABufferMove) {
  ChunkedDecoder d;
  std::vector<Field> trailers;
  std::string a = "0\r\nX-A: 1\r\nX-B";
  BodyResult r = d.decode(a, trailers);
  ASSERT_EQ(r.status, BodyStatus::kNeedMore);
  std::string b = a.substr(r.consumed) + ": 2\r\n\r\n";  // a new allocation
  a.assign(a.size(), '#');                               // the old bytes are gone
  r = d.decode(b, trailers);
  ASSERT_EQ(r.status, BodyStatus::kDone);
  ASSERT_EQ(trailers.size(), 2u);
  EXPECT_EQ(trailers[0].name, "X-A");
  EXPECT_EQ(trailers[0].value, "1");
  EXPECT_EQ(trailers[1].value, "2");
}

// ---- Content-Length ----------------------------------------------------------------------

TEST(ContentLength, YieldsExactlyNBytes) {
  ContentLengthBody body(5);
  BodyResult r = body.decode("hel"sv);
  ASSERT_EQ(r.status, BodyStatus::kData);
  EXPECT_EQ(r.data, "hel");
  EXPECT_EQ(body.remaining(), 2u);
  EXPECT_EQ(body.decode(""sv).status, BodyStatus::kNeedMore);
  r = body.decode("loGET /"sv);
  EXPECT_EQ(r.data, "lo");
  EXPECT_EQ(r.consumed, 2u);
  r = body.decode("GET /"sv);
  EXPECT_EQ(r.status, BodyStatus::kDone);
  EXPECT_EQ(r.consumed, 0u);
}

TEST(ContentLength, ZeroIsDoneAtOnce) {
  ContentLengthBody body(0);
  EXPECT_EQ(body.decode("x"sv).status, BodyStatus::kDone);
}

// ---- End to end ----------------------------------------------------------------------------

TEST(H1, ChunkedRequestHeadThenBody) {
  const std::string wire =
      "POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
      "4\r\nWiki\r\n5\r\npedia\r\n0\r\nX-Sum: 1\r\n\r\n";
  HeadParser p(kReq);
  Head h;
  const HeadResult r = p.parse(wire, h);
  ASSERT_EQ(r.status, kDone);
  ASSERT_EQ(h.body, BodyKind::kChunked);
  const Decoded d = decode_whole(std::string_view(wire).substr(r.consumed));
  EXPECT_EQ(d.status, BodyStatus::kDone);
  EXPECT_EQ(d.data, "Wikipedia");
  EXPECT_EQ(r.consumed + d.consumed, wire.size());
}

}  // namespace
}  // namespace ramjet::http::h1
