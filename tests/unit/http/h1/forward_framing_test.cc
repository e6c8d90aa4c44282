#include "http/h1/forward_framing.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace ramjet::http::h1 {
namespace {

constexpr auto kReq = MessageKind::kRequest;
constexpr auto kResp = MessageKind::kResponse;

// One row: a received head, how it is forwarded, and the framing fields that must go out.
struct Case {
  const char* name;
  MessageKind kind;
  std::string_view head;
  ForwardOptions options;
  BodyKind body;               // the forwarded framing
  std::string_view fields;     // exactly what append_framing_fields writes
  std::string_view error = {};  // non-empty: refused with this reason
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << c.name;
}

constexpr ForwardOptions kPlain{};
constexpr ForwardOptions kRechunk{.rechunk = true};
constexpr ForwardOptions kToHttp10{.to_http10 = true};
constexpr ForwardOptions kRechunkToHttp10{.rechunk = true, .to_http10 = true};
constexpr std::string_view kHttp10Error =
    "a transfer coding other than chunked cannot be sent to an HTTP/1.0 client";

const Case kCases[] = {
    {"no_body", kReq, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", kPlain, BodyKind::kNone, ""},
    {"content_length", kReq, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n", kPlain,
     BodyKind::kContentLength, "Content-Length: 5\r\n"},
    {"content_length_rechunked", kReq,
     "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n", kRechunk, BodyKind::kChunked,
     "Transfer-Encoding: chunked\r\n"},
    {"chunked", kReq, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", kPlain,
     BodyKind::kChunked, "Transfer-Encoding: chunked\r\n"},
    {"codings_one_line", kReq,
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", kPlain,
     BodyKind::kChunked, "Transfer-Encoding: gzip, chunked\r\n"},
    // The defect: the second line used to be dropped from the forwarded head.
    {"codings_split_over_lines", kReq,
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nX: 1\r\n"
     "Transfer-Encoding: chunked\r\n\r\n",
     kPlain, BodyKind::kChunked, "Transfer-Encoding: gzip, chunked\r\n"},
    {"codings_split_rechunked", kReq,
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: deflate\r\nTransfer-Encoding: "
     "chunked\r\n\r\n",
     kRechunk, BodyKind::kChunked, "Transfer-Encoding: deflate, chunked\r\n"},
    {"resp_codings_split", kResp,
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", kPlain,
     BodyKind::kChunked, "Transfer-Encoding: gzip, chunked\r\n"},
    {"resp_until_close_is_chunked", kResp, "HTTP/1.1 200 OK\r\n\r\n", kPlain, BodyKind::kChunked,
     "Transfer-Encoding: chunked\r\n"},
    {"resp_gzip_until_close_is_chunked", kResp,
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", kPlain, BodyKind::kChunked,
     "Transfer-Encoding: gzip, chunked\r\n"},
    // chunked then gzip runs to the close; chunked cannot be applied twice, so it stays so.
    {"resp_chunked_then_gzip_split", kResp,
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", kPlain,
     BodyKind::kUntilClose, "Transfer-Encoding: chunked, gzip\r\n"},
    {"resp_chunked_then_gzip_rechunk", kResp,
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", kRechunk,
     BodyKind::kUntilClose, "Transfer-Encoding: chunked, gzip\r\n"},
    {"resp_to_http10_chunked", kResp, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
     kToHttp10, BodyKind::kUntilClose, ""},
    {"resp_to_http10_length", kResp, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", kToHttp10,
     BodyKind::kContentLength, "Content-Length: 3\r\n"},
    {"resp_to_http10_length_rechunk", kResp, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n",
     kRechunkToHttp10, BodyKind::kUntilClose, ""},
    {"resp_to_http10_until_close", kResp, "HTTP/1.1 200 OK\r\n\r\n", kToHttp10,
     BodyKind::kUntilClose, ""},
    {"resp_to_http10_gzip_chunked", kResp,
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
     kToHttp10, BodyKind::kUntilClose, "", kHttp10Error},
    {"resp_to_http10_gzip_until_close", kResp,
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", kToHttp10, BodyKind::kUntilClose, "",
     kHttp10Error},
    {"resp_204", kResp, "HTTP/1.1 204 No Content\r\n\r\n", kPlain, BodyKind::kNone, ""},
};

class ForwardFramingTable : public testing::TestWithParam<Case> {};

TEST_P(ForwardFramingTable, FramingFieldsComeFromTheParsersReading) {
  const Case& c = GetParam();
  HeadParser parser(c.kind);
  Head head;
  ASSERT_EQ(parser.parse(c.head, head).status, ParseStatus::kDone);
  const ForwardFraming f = forward_framing(head, c.options);
  EXPECT_EQ(f.body, c.body);
  EXPECT_EQ(f.error, c.error);
  std::string fields;
  append_framing_fields(fields, f);
  EXPECT_EQ(fields, c.fields);
}

INSTANTIATE_TEST_SUITE_P(Cases, ForwardFramingTable, testing::ValuesIn(kCases),
                         [](const testing::TestParamInfo<Case>& i) { return i.param.name; });

// The property the fuzz target checks on random input, here on the defect's own messages: a
// forwarded head, parsed again, gives the framing it was rendered from.
TEST(ForwardFraming, ReparsedForwardedHeadHasTheSameFraming) {
  const std::string_view heads[] = {
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: x-gzip\r\nTransfer-Encoding: deflate\r\n"
      "Transfer-Encoding: chunked\r\n\r\n",
  };
  for (std::string_view h : heads) {
    HeadParser parser(kReq);
    Head head;
    ASSERT_EQ(parser.parse(h, head).status, ParseStatus::kDone);
    std::string out = "POST / HTTP/1.1\r\nHost: a\r\n";
    append_framing_fields(out, forward_framing(head));
    out += "\r\n";
    HeadParser again(kReq);
    Head reparsed;
    ASSERT_EQ(again.parse(out, reparsed).status, ParseStatus::kDone) << out;
    EXPECT_EQ(reparsed.body, head.body);
    EXPECT_EQ(reparsed.transfer_codings, head.transfer_codings);
  }
}

TEST(ForwardFraming, FramingAndHopByHopFieldsAreRebuilt) {
  HeadParser parser(kReq);
  Head head;
  ASSERT_EQ(parser.parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: x-a\r\nConnection: x-b\r\n"
                         "X-B: 1\r\nX-C: 2\r\n\r\n",
                         head)
                .status,
            ParseStatus::kDone);
  EXPECT_TRUE(is_framing_or_hop_by_hop(head, "Content-Length"));
  EXPECT_TRUE(is_framing_or_hop_by_hop(head, "transfer-encoding"));
  EXPECT_TRUE(is_framing_or_hop_by_hop(head, "X-B"));  // listed on the second Connection line
  EXPECT_FALSE(is_framing_or_hop_by_hop(head, "X-C"));
}

}  // namespace
}  // namespace ramjet::http::h1
