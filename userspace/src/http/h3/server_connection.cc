#include "http/h3/server_connection.h"

#include <nghttp3/nghttp3.h>

#include <algorithm>
#include <cctype>
#include <utility>

#include "http/h3/datagram.h"

namespace ramjet::http::h3 {

struct Callbacks {
  static ServerConnection& self(void* user) { return *static_cast<ServerConnection*>(user); }
  static std::string_view text(nghttp3_rcbuf* b) {
    nghttp3_vec v = nghttp3_rcbuf_get_buf(b);
    return {reinterpret_cast<const char*>(v.base), v.len};
  }

  static int recv_header(nghttp3_conn*, std::int64_t id, std::int32_t, nghttp3_rcbuf* name,
                         nghttp3_rcbuf* value, std::uint8_t, void* user, void*) {
    ServerConnection::Stream& s = self(user).stream(id);
    const std::string_view n = text(name);
    const std::string_view v = text(value);
    if (n == ":method") {
      s.head.method = v;
    } else if (n == ":scheme") {
      s.head.scheme = v;
    } else if (n == ":authority") {
      s.head.authority = v;
    } else if (n == ":path") {
      s.head.path = v;
    } else if (n == ":protocol") {
      s.head.protocol = v;
    } else if (++s.fields > self(user).limits().max_fields) {
      s.too_many_fields = true;
    } else {
      if (n == "host" && s.head.authority.empty()) s.head.authority = v;
      s.head.fields.push_back({std::string(n), std::string(v)});
    }
    return 0;
  }

  static int end_headers(nghttp3_conn*, std::int64_t id, int fin, void* user, void*) {
    ServerConnection& c = self(user);
    ServerConnection::Stream& s = c.stream(id);
    // nghttp3 checked the pseudo-headers (RFC 9114 4.3.1) before this callback.
    if (s.too_many_fields) {
      // 431 with nothing else: the request is not passed on.
      c.submit_response(id, 431, {});
      c.end_data(id);
      return 0;
    }
    s.head.end_stream = fin != 0;
    s.announced = true;
    c.events().on_request(id, s.head);
    return 0;
  }

  static int recv_trailer(nghttp3_conn*, std::int64_t id, std::int32_t, nghttp3_rcbuf* name,
                          nghttp3_rcbuf* value, std::uint8_t, void* user, void*) {
    ServerConnection& c = self(user);
    ServerConnection::Stream* s = c.find(id);
    if (s == nullptr || !s->announced) return 0;
    const std::string_view n = text(name);
    const std::string_view v = text(value);
    s->trailer_bytes += n.size() + v.size() + 32;
    if (s->trailer_bytes <= c.limits().max_field_section_size &&
        s->trailers_in.size() < c.limits().max_fields)
      s->trailers_in.push_back({std::string(n), std::string(v)});
    return 0;
  }

  static int end_trailers(nghttp3_conn*, std::int64_t id, int, void* user, void*) {
    ServerConnection& c = self(user);
    ServerConnection::Stream* s = c.find(id);
    if (s != nullptr && s->announced && !s->trailers_in.empty())
      c.events().on_trailers(id, std::exchange(s->trailers_in, {}));
    return 0;
  }

  static int recv_data(nghttp3_conn*, std::int64_t id, const std::uint8_t* data, std::size_t n,
                       void* user, void*) {
    ServerConnection& c = self(user);
    ServerConnection::Stream* s = c.find(id);
    // Body bytes are the owner's to pass on, and to give back to QUIC's window then; those
    // of a request that was not passed on go back at once.
    if (s != nullptr && s->announced)
      c.events().on_data(id, {reinterpret_cast<const char*>(data), n});
    else
      c.events().on_consumed(id, n);
    return 0;
  }

  static int deferred_consume(nghttp3_conn*, std::int64_t id, std::size_t n, void* user, void*) {
    self(user).events().on_consumed(id, n);
    return 0;
  }

  static int end_stream(nghttp3_conn*, std::int64_t id, void* user, void*) {
    ServerConnection& c = self(user);
    ServerConnection::Stream* s = c.find(id);
    if (s != nullptr && s->announced) c.events().on_end_stream(id);
    return 0;
  }

  static int stream_close(nghttp3_conn*, std::int64_t id, std::uint64_t code, void* user, void*) {
    ServerConnection& c = self(user);
    ServerConnection::Stream* s = c.find(id);
    const bool announced = s != nullptr && s->announced;
    c.erase(id);
    if (announced) c.events().on_stream_close(id, code);
    return 0;
  }

  static int acked_stream_data(nghttp3_conn*, std::int64_t id, std::uint64_t n, void* user,
                               void*) {
    ServerConnection::Stream* s = self(user).find(id);
    if (s == nullptr) return 0;
    std::uint64_t left = n;
    while (left > 0 && !s->chunks.empty()) {
      const std::size_t rest = s->chunks.front().size() - s->acked_front;
      if (left < rest) {
        s->acked_front += left;
        break;
      }
      left -= rest;
      s->chunks.pop_front();
      s->acked_front = 0;
      --s->given;
    }
    return 0;
  }

  static nghttp3_ssize read_data(nghttp3_conn*, std::int64_t id, nghttp3_vec* vec,
                                 std::size_t veccnt, std::uint32_t* flags, void* user, void*) {
    ServerConnection::Stream* s = self(user).find(id);
    if (s == nullptr) return NGHTTP3_ERR_CALLBACK_FAILURE;
    std::size_t n = 0;
    while (n < veccnt && s->given < s->chunks.size()) {
      std::string& chunk = s->chunks[s->given++];
      s->queued -= chunk.size();
      vec[n].base = reinterpret_cast<std::uint8_t*>(chunk.data());
      vec[n].len = chunk.size();
      ++n;
    }
    if (s->given == s->chunks.size() && s->body_ended) {
      *flags |= NGHTTP3_DATA_FLAG_EOF;
      if (!s->trailers.empty()) {
        // The stream ends after the trailers' HEADERS frame instead.
        *flags |= NGHTTP3_DATA_FLAG_NO_END_STREAM;
        std::vector<Field> trailers = std::move(s->trailers);
        s->trailers.clear();
        if (!self(user).submit_trailers(id, trailers)) return NGHTTP3_ERR_CALLBACK_FAILURE;
      }
      return static_cast<nghttp3_ssize>(n);
    }
    if (n == 0) {
      s->blocked = true;
      return NGHTTP3_ERR_WOULDBLOCK;
    }
    return static_cast<nghttp3_ssize>(n);
  }
};

ServerConnection::ServerConnection(Events& events, const Limits& limits)
    : events_(events), limits_(limits) {
  nghttp3_callbacks cb{};
  cb.acked_stream_data = &Callbacks::acked_stream_data;
  cb.stream_close = &Callbacks::stream_close;
  cb.recv_data = &Callbacks::recv_data;
  cb.deferred_consume = &Callbacks::deferred_consume;
  cb.recv_header = &Callbacks::recv_header;
  cb.end_headers = &Callbacks::end_headers;
  cb.recv_trailer = &Callbacks::recv_trailer;
  cb.end_trailers = &Callbacks::end_trailers;
  cb.end_stream = &Callbacks::end_stream;
  nghttp3_settings settings;
  nghttp3_settings_default(&settings);
  settings.max_field_section_size = limits.max_field_section_size;
  // Extended CONNECT (RFC 9220): :protocol websocket, and connect-udp with its datagrams
  // as DATAGRAM capsules on the request stream (RFC 9297 3.5) and, with
  // Limits::h3_datagram, in QUIC DATAGRAM frames: nghttp3 cannot send
  // SETTINGS_H3_DATAGRAM, so our control stream's SETTINGS is rewritten on its way to
  // QUIC (next_output, written, acked: http/h3/settings.h).
  settings.enable_connect_protocol = 1;
  if (limits.h3_datagram) control_rewrite_.emplace(Setting{kSettingsH3Datagram, 1});
  nghttp3_conn_server_new(&conn_, &cb, &settings, nghttp3_mem_default(), this);
}

ServerConnection::~ServerConnection() {
  nghttp3_conn_del(conn_);
}

ServerConnection::Stream* ServerConnection::find(std::int64_t id) {
  auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : &it->second;
}

const ServerConnection::Stream* ServerConnection::find(std::int64_t id) const {
  auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : &it->second;
}

bool ServerConnection::bind_streams(std::int64_t control, std::int64_t qpack_encoder,
                                    std::int64_t qpack_decoder) {
  control_stream_ = control;
  return nghttp3_conn_bind_control_stream(conn_, control) == 0 &&
         nghttp3_conn_bind_qpack_streams(conn_, qpack_encoder, qpack_decoder) == 0;
}

std::int64_t ServerConnection::recv(std::int64_t stream, std::span<const std::uint8_t> data,
                                    bool fin) {
  // Client unidirectional streams (RFC 9000 2.1: id & 3 == 2): its control stream's
  // SETTINGS is read here for H3_DATAGRAM, which nghttp3 skips.
  if ((stream & 0x3) == 0x2) peer_settings_.on_stream_data(stream, data);
  return nghttp3_conn_read_stream(conn_, stream, data.data(), data.size(), fin ? 1 : 0);
}

void ServerConnection::recv_datagram(std::span<const std::uint8_t> frame_payload) {
  const ParsedDatagram d = parse_datagram(frame_payload);
  if (!d.ok) {
    events_.on_malformed_datagram();
    return;
  }
  events_.on_datagram(d.stream, d.payload);
}

Output ServerConnection::next_output() {
  Output out;
  nghttp3_vec vec[16];
  std::int64_t id = -1;
  int fin = 0;
  nghttp3_ssize n = nghttp3_conn_writev_stream(conn_, &id, &fin, vec, std::size(vec));
  if (n < 0 || id < 0) return out;
  out.stream = id;
  out.fin = fin != 0;
  for (nghttp3_ssize i = 0; i < n; ++i) out.pieces.emplace_back(vec[i].base, vec[i].len);
  if (id == control_stream_ && control_rewrite_) out.pieces = control_rewrite_->rewrite(out.pieces);
  return out;
}

void ServerConnection::written(std::int64_t stream, std::size_t n) {
  // Our control stream's offsets are QUIC's; nghttp3 counts its own (settings.h).
  if (stream == control_stream_ && control_rewrite_) {
    n = control_rewrite_->written(n);
    if (n == 0) return;  // still inside our rewritten prefix
  }
  nghttp3_conn_add_write_offset(conn_, stream, n);
}

void ServerConnection::acked(std::int64_t stream, std::size_t n) {
  if (stream == control_stream_ && control_rewrite_) {
    n = control_rewrite_->acked(n);
    if (n == 0) return;
  }
  nghttp3_conn_add_ack_offset(conn_, stream, n);
}

void ServerConnection::block(std::int64_t stream) {
  nghttp3_conn_block_stream(conn_, stream);
}

void ServerConnection::unblock(std::int64_t stream) {
  nghttp3_conn_unblock_stream(conn_, stream);
}

void ServerConnection::set_max_client_streams_bidi(std::uint64_t max) {
  nghttp3_conn_set_max_client_streams_bidi(conn_, max);
}

void ServerConnection::stream_closed(std::int64_t stream, std::uint64_t app_error_code) {
  nghttp3_conn_close_stream(conn_, stream, app_error_code);
}

namespace {
// Fields as nghttp3 takes them: `:status` first when given, names lowercased, and no
// connection-specific field (RFC 9114 4.2). The views point into `fields` and `names`.
class FieldList {
 public:
  FieldList(const std::vector<Field>& fields, int status) {
    if (status != 0) {
      code_ = std::to_string(status);
      add(":status", code_);
    }
    names_.reserve(fields.size());
    for (const Field& f : fields) {
      std::string name = f.name;
      std::transform(name.begin(), name.end(), name.begin(),
                     [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
      if (name == "connection" || name == "keep-alive" || name == "proxy-connection" ||
          name == "transfer-encoding" || name == "upgrade")
        continue;
      names_.push_back(std::move(name));
      add(names_.back(), f.value);
    }
  }
  const nghttp3_nv* data() const { return nva_.data(); }
  std::size_t size() const { return nva_.size(); }

 private:
  void add(std::string_view n, std::string_view v) {
    nva_.push_back({reinterpret_cast<std::uint8_t*>(const_cast<char*>(n.data())),
                    reinterpret_cast<std::uint8_t*>(const_cast<char*>(v.data())), n.size(),
                    v.size(), NGHTTP3_NV_FLAG_NONE});
  }
  std::string code_;
  std::vector<std::string> names_;
  std::vector<nghttp3_nv> nva_;
};
}  // namespace

bool ServerConnection::submit_response(std::int64_t stream, int status,
                                       const std::vector<Field>& fields, bool end_stream) {
  FieldList nva(fields, status);
  nghttp3_data_reader reader{&Callbacks::read_data};
  (void)this->stream(stream);  // the body's state exists before nghttp3 asks for it
  return nghttp3_conn_submit_response(conn_, stream, nva.data(), nva.size(),
                                      end_stream ? nullptr : &reader) == 0;
}

void ServerConnection::submit_interim(std::int64_t stream, int status,
                                      const std::vector<Field>& fields) {
  FieldList nva(fields, status);
  nghttp3_conn_submit_info(conn_, stream, nva.data(), nva.size());
}

bool ServerConnection::submit_trailers(std::int64_t stream, const std::vector<Field>& fields) {
  FieldList nva(fields, 0);
  return nghttp3_conn_submit_trailers(conn_, stream, nva.data(), nva.size()) == 0;
}

std::size_t ServerConnection::buffered(std::int64_t stream) const {
  const Stream* s = find(stream);
  return s == nullptr ? 0 : s->queued;
}

void ServerConnection::shutdown_stream(std::int64_t stream) {
  nghttp3_conn_shutdown_stream_write(conn_, stream);
  nghttp3_conn_shutdown_stream_read(conn_, stream);
}

void ServerConnection::goaway() {
  nghttp3_conn_submit_shutdown_notice(conn_);
}

void ServerConnection::send_data(std::int64_t stream, std::string_view data) {
  Stream* s = find(stream);
  if (s == nullptr || data.empty()) return;
  s->chunks.emplace_back(data);
  s->queued += data.size();
  if (s->blocked) {
    s->blocked = false;
    nghttp3_conn_resume_stream(conn_, stream);
  }
}

void ServerConnection::end_data(std::int64_t stream, std::vector<Field> trailers) {
  Stream* s = find(stream);
  if (s == nullptr) return;
  s->body_ended = true;
  s->trailers = std::move(trailers);
  if (s->blocked) {
    s->blocked = false;
    nghttp3_conn_resume_stream(conn_, stream);
  }
}

}  // namespace ramjet::http::h3
