// SETTINGS_H3_DATAGRAM on nghttp3 0.8 (http/h3/settings.h): the control prefix parser, the
// rewrite of our control stream with its offset mapping, the peer's SETTINGS read off its
// control stream - alone, and between our ServerConnection and nghttp3's own client with
// QUIC's partial writes and late acknowledgements simulated.
#include "http/h3/settings.h"

#include <gtest/gtest.h>
#include <nghttp3/nghttp3.h>

#include <map>
#include <string>
#include <vector>

#include "http/h3/server_connection.h"

namespace ramjet::http::h3 {
namespace {

using Bytes = std::vector<std::uint8_t>;
using Pieces = std::vector<std::span<const std::uint8_t>>;

Bytes join(const Pieces& pieces) {
  Bytes out;
  for (auto p : pieces) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// Stream type 0x00; SETTINGS (0x04), 4 bytes: QPACK_MAX_TABLE_CAPACITY (0x01) = 100
// (2-byte varint 0x40 0x64), QPACK_BLOCKED_STREAMS (0x07) = 0.
const Bytes kNghttp3Prefix = {0x00, 0x04, 0x05, 0x01, 0x40, 0x64, 0x07, 0x00};
// What follows it later on the control stream: GOAWAY (0x07), 1 byte, id 0.
const Bytes kGoaway = {0x07, 0x01, 0x00};

TEST(ControlPrefix, ReadsTheStreamTypeAndTheSettingsFrame) {
  ControlPrefix p = parse_control_prefix(kNghttp3Prefix);
  ASSERT_EQ(p.status, ControlPrefix::Status::kSettings) << p.reason;
  EXPECT_EQ(p.size, kNghttp3Prefix.size());
  EXPECT_EQ(p.settings, (std::vector<Setting>{{0x01, 100}, {0x07, 0}}));
}

TEST(ControlPrefix, NeedsMoreAtEverySplitAndStopsAtTheFrameEnd) {
  for (std::size_t n = 0; n < kNghttp3Prefix.size(); ++n)
    EXPECT_EQ(parse_control_prefix(std::span(kNghttp3Prefix).first(n)).status,
              ControlPrefix::Status::kNeedMore)
        << n;
  Bytes more = kNghttp3Prefix;
  more.insert(more.end(), kGoaway.begin(), kGoaway.end());
  EXPECT_EQ(parse_control_prefix(more).size, kNghttp3Prefix.size());
}

TEST(ControlPrefix, OtherStreamTypesAndBadFramesAreToldApart) {
  EXPECT_EQ(parse_control_prefix(Bytes{0x02, 0x3f}).status, ControlPrefix::Status::kNotControl);
  EXPECT_EQ(parse_control_prefix(Bytes{0x00, 0x07, 0x01, 0x00}).status,
            ControlPrefix::Status::kError)
      << "GOAWAY before SETTINGS";
  EXPECT_EQ(parse_control_prefix(Bytes{0x00, 0x04, 0x01, 0x33}).status,
            ControlPrefix::Status::kError)
      << "an identifier without its value";
  EXPECT_EQ(parse_control_prefix(Bytes{0x00, 0x04, 0x80, 0x01, 0x00, 0x00}).status,
            ControlPrefix::Status::kError)
      << "a SETTINGS frame of 64 KiB is not buffered";
}

TEST(ControlPrefix, EncodeIsWhatParseReads) {
  const std::vector<Setting> settings = {{0x01, 100}, {0x33, 1}, {0x08, 1}, {0x4000, 1 << 20}};
  ControlPrefix p = parse_control_prefix(encode_control_prefix(settings));
  ASSERT_EQ(p.status, ControlPrefix::Status::kSettings);
  EXPECT_EQ(p.settings, settings);
}

TEST(H3DatagramSetting, OnlyTheValueOneEnablesIt) {
  EXPECT_TRUE(h3_datagram_enabled({{0x01, 0}, {0x33, 1}}));
  EXPECT_FALSE(h3_datagram_enabled({{0x01, 0}}));
  EXPECT_FALSE(h3_datagram_enabled({{0x33, 0}}));
  EXPECT_FALSE(h3_datagram_enabled({{0x33, 2}})) << "RFC 9297 2.1.1: an error, not support";
  EXPECT_FALSE(h3_datagram_enabled({{0x276, 1}})) << "the draft's identifier is not ours";
}

TEST(ControlStreamRewrite, AppendsTheSettingAndMapsPartialWritesAndAcks) {
  ControlStreamRewrite rw({kSettingsH3Datagram, 1});
  Bytes theirs = kNghttp3Prefix;
  const Bytes ours = encode_control_prefix({{0x01, 100}, {0x07, 0}, {0x33, 1}});
  ASSERT_EQ(ours.size(), theirs.size() + 2);

  // nghttp3 offers its prefix; QUIC gets ours.
  EXPECT_EQ(join(rw.rewrite({theirs})), ours);
  EXPECT_TRUE(rw.rewritten());
  // QUIC takes 4 bytes: nothing of nghttp3's counts yet, so it offers the same again,
  // and QUIC gets the rest of ours.
  EXPECT_EQ(rw.written(4), 0u);
  EXPECT_EQ(join(rw.rewrite({theirs})), Bytes(ours.begin() + 4, ours.end()));
  // GOAWAY queued behind the prefix meanwhile (nghttp3 offers both, in two pieces).
  Bytes rest(ours.begin() + 4, ours.end());
  rest.insert(rest.end(), kGoaway.begin(), kGoaway.end());
  EXPECT_EQ(join(rw.rewrite({std::span(theirs).first(3), std::span(theirs).subspan(3), kGoaway})),
            rest);
  // QUIC takes the rest of ours and one GOAWAY byte: nghttp3's prefix and that byte.
  EXPECT_EQ(rw.written(ours.size() - 4 + 1), theirs.size() + 1);
  // From here on nghttp3 offers from its own offset: passed as they are.
  const Bytes tail(kGoaway.begin() + 1, kGoaway.end());
  EXPECT_EQ(join(rw.rewrite({tail})), tail);
  EXPECT_EQ(rw.written(2), 2u);
  // Acks the same way: the prefix counts once all of ours is acknowledged.
  EXPECT_EQ(rw.acked(ours.size() - 1), 0u);
  EXPECT_EQ(rw.acked(1), theirs.size());
  EXPECT_EQ(rw.acked(3), 3u);
}

TEST(ControlStreamRewrite, AnExistingValueIsReplacedNotDuplicated) {
  ControlStreamRewrite rw({kSettingsH3Datagram, 1});
  const Bytes theirs = encode_control_prefix({{0x33, 0}, {0x01, 0}});
  ControlPrefix p = parse_control_prefix(join(rw.rewrite({theirs})));
  ASSERT_EQ(p.status, ControlPrefix::Status::kSettings);
  EXPECT_EQ(p.settings, (std::vector<Setting>{{0x01, 0}, {0x33, 1}}));
}

TEST(ControlStreamRewrite, BytesItCannotReadPassUnchanged) {
  ControlStreamRewrite rw({kSettingsH3Datagram, 1});
  const Bytes odd = {0x00, 0x07, 0x01, 0x00};
  EXPECT_EQ(join(rw.rewrite({odd})), odd);
  EXPECT_FALSE(rw.rewritten());
  EXPECT_EQ(rw.written(4), 4u);
  EXPECT_EQ(rw.acked(4), 4u);
}

TEST(PeerSettings, ReadsTheControlStreamByteByByteAndSkipsOthers) {
  PeerSettings peer;
  const Bytes qpack = {0x02, 0x3f, 0xe1};  // QPACK encoder stream, first instruction
  peer.on_stream_data(6, qpack);
  const Bytes control = encode_control_prefix({{0x01, 0}, {0x33, 1}});
  for (std::size_t i = 0; i < control.size(); ++i) {
    EXPECT_FALSE(peer.settings().has_value()) << i;
    peer.on_stream_data(2, std::span(control).subspan(i, 1));
  }
  ASSERT_TRUE(peer.settings().has_value());
  EXPECT_TRUE(peer.h3_datagram());
}

TEST(PeerSettings, APeerWithoutTheSettingHasNoDatagrams) {
  PeerSettings peer;
  peer.on_stream_data(2, kNghttp3Prefix);
  ASSERT_TRUE(peer.settings().has_value());
  EXPECT_FALSE(peer.h3_datagram());
}

// ---- Our ServerConnection with Limits::h3_datagram against nghttp3's client.

class Answering : public Events {
 public:
  void on_request(std::int64_t stream, RequestHead) override { requests.push_back(stream); }
  void on_data(std::int64_t, std::string_view) override {}
  void on_trailers(std::int64_t, std::vector<Field>) override {}
  void on_end_stream(std::int64_t stream) override {
    server->submit_response(stream, 200, {});
    server->send_data(stream, "ok");
    server->end_data(stream);
  }
  void on_stream_close(std::int64_t, std::uint64_t) override {}
  ServerConnection* server = nullptr;
  std::vector<std::int64_t> requests;
};

struct Nghttp3Client {
  Nghttp3Client() {
    nghttp3_callbacks cb{};
    cb.recv_data = [](nghttp3_conn*, std::int64_t, const std::uint8_t* d, std::size_t n, void* user,
                      void*) {
      static_cast<Nghttp3Client*>(user)->body.append(reinterpret_cast<const char*>(d), n);
      return 0;
    };
    cb.shutdown = [](nghttp3_conn*, std::int64_t, void* user) {
      static_cast<Nghttp3Client*>(user)->goaway = true;
      return 0;
    };
    nghttp3_settings settings;
    nghttp3_settings_default(&settings);
    nghttp3_conn_client_new(&conn, &cb, &settings, nghttp3_mem_default(), this);
    nghttp3_conn_bind_control_stream(conn, 2);
    nghttp3_conn_bind_qpack_streams(conn, 6, 10);
  }
  ~Nghttp3Client() { nghttp3_conn_del(conn); }
  nghttp3_conn* conn = nullptr;
  std::string body;
  bool goaway = false;
};

TEST(SettingsOnTheWire, Nghttp3SeesOurRewrittenSettingsAndWeSeeItsDespitePartialWrites) {
  Answering events;
  Limits limits;
  limits.h3_datagram = true;
  ServerConnection server(events, limits);
  events.server = &server;
  ASSERT_TRUE(server.bind_streams(3, 7, 11));
  Nghttp3Client client;
  // The client advertises H3_DATAGRAM the way ramjet-h3client does: the same rewrite.
  ControlStreamRewrite client_rewrite({kSettingsH3Datagram, 1});

  std::vector<nghttp3_nv> nva;
  const std::vector<std::pair<std::string, std::string>> fields = {
      {":method", "GET"}, {":scheme", "https"}, {":authority", "a.test"}, {":path", "/"}};
  for (const auto& [n, v] : fields)
    nva.push_back({reinterpret_cast<std::uint8_t*>(const_cast<char*>(n.data())),
                   reinterpret_cast<std::uint8_t*>(const_cast<char*>(v.data())), n.size(), v.size(),
                   NGHTTP3_NV_FLAG_NONE});
  ASSERT_EQ(nghttp3_conn_submit_request(client.conn, 0, nva.data(), nva.size(), nullptr, nullptr),
            0);

  std::map<std::int64_t, Bytes> server_sent;  // what QUIC carried, per stream
  std::map<std::int64_t, std::size_t> unacked;
  bool goaway_submitted = false;
  for (int round = 0; round < 500; ++round) {
    bool moved = false;
    for (;;) {  // client -> server, whole
      nghttp3_vec vec[16];
      std::int64_t id = -1;
      int fin = 0;
      const nghttp3_ssize n = nghttp3_conn_writev_stream(client.conn, &id, &fin, vec, 16);
      ASSERT_GE(n, 0);
      if (id < 0) break;
      Pieces pieces;
      for (nghttp3_ssize i = 0; i < n; ++i) pieces.emplace_back(vec[i].base, vec[i].len);
      if (id == 2) pieces = client_rewrite.rewrite(pieces);
      const Bytes bytes = join(pieces);
      if (bytes.empty() && !fin) break;
      ASSERT_GE(server.recv(id, bytes, fin != 0), 0);
      std::size_t n_h3 = id == 2 ? client_rewrite.written(bytes.size()) : bytes.size();
      if (n_h3 > 0) nghttp3_conn_add_write_offset(client.conn, id, n_h3);
      n_h3 = id == 2 ? client_rewrite.acked(bytes.size()) : bytes.size();
      if (n_h3 > 0) nghttp3_conn_add_ack_offset(client.conn, id, n_h3);
      moved = true;
    }
    // Acknowledgements arrive one round late.
    for (auto& [id, n] : unacked) server.acked(id, std::exchange(n, 0));
    for (int i = 0; i < 8; ++i) {  // server -> client, QUIC taking 3 bytes at a time
      Output out = server.next_output();
      if (out.stream < 0) break;
      Bytes bytes = join(out.pieces);
      if (bytes.empty() && !out.fin) break;
      const bool all = bytes.size() <= 3;
      if (!all) bytes.resize(3);
      ASSERT_GE(nghttp3_conn_read_stream(client.conn, out.stream, bytes.data(), bytes.size(),
                                         all && out.fin),
                0);
      server.written(out.stream, bytes.size());
      unacked[out.stream] += bytes.size();
      Bytes& sent = server_sent[out.stream];
      sent.insert(sent.end(), bytes.begin(), bytes.end());
      moved = true;
    }
    if (!moved && !goaway_submitted && client.body == "ok") {
      server.goaway();
      goaway_submitted = true;
      moved = true;
    }
    if (!moved) break;
  }
  for (auto& [id, n] : unacked) server.acked(id, std::exchange(n, 0));

  EXPECT_EQ(events.requests, std::vector<std::int64_t>{0});
  EXPECT_EQ(client.body, "ok");
  EXPECT_TRUE(client.goaway) << "a frame after the rewritten SETTINGS arrives intact";
  EXPECT_TRUE(server.sent_h3_datagram());
  EXPECT_TRUE(server.peer_h3_datagram()) << "the client's SETTINGS said H3_DATAGRAM = 1";
  const ControlPrefix ours = parse_control_prefix(server_sent[3]);
  ASSERT_EQ(ours.status, ControlPrefix::Status::kSettings);
  EXPECT_TRUE(h3_datagram_enabled(ours.settings));
  EXPECT_EQ(ours.settings.back(), (Setting{kSettingsH3Datagram, 1}));
}

TEST(SettingsOnTheWire, WithoutTheLimitNothingIsRewritten) {
  Answering events;
  ServerConnection server(events, Limits{});
  ASSERT_TRUE(server.bind_streams(3, 7, 11));
  Output out = server.next_output();
  ASSERT_EQ(out.stream, 3);
  const ControlPrefix p = parse_control_prefix(join(out.pieces));
  ASSERT_EQ(p.status, ControlPrefix::Status::kSettings);
  EXPECT_FALSE(h3_datagram_enabled(p.settings));
  EXPECT_FALSE(server.sent_h3_datagram());
}

}  // namespace
}  // namespace ramjet::http::h3
