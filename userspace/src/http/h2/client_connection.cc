#include "http/h2/client_connection.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <charconv>
#include <utility>

namespace ramjet::http::h2 {

// nghttp2's callbacks, with access to the connection's insides.
struct ClientCallbacks {
  static ClientConnection& self(void* user) { return *static_cast<ClientConnection*>(user); }

  static int on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    if (ClientConnection::Stream* s = self(user).find(frame->hd.stream_id)) {
      s->header_bytes = 0;
      s->fields_seen = 0;
    }
    return 0;
  }

  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const std::uint8_t* name,
                       std::size_t namelen, const std::uint8_t* value, std::size_t valuelen,
                       std::uint8_t, void* user) {
    auto& c = self(user);
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    ClientConnection::Stream* s = c.find(frame->hd.stream_id);
    if (s == nullptr) return 0;
    s->header_bytes += namelen + valuelen + 32;
    // Over the bounds the stream is reset: a response cut short is no response.
    if (s->header_bytes > c.limits_.max_header_list || ++s->fields_seen > c.limits_.max_fields)
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    std::string_view n = view(name, namelen);
    std::string_view v = view(value, valuelen);
    if (s->final_seen) {
      s->trailers.push_back({std::string(n), std::string(v)});
    } else if (n == ":status") {
      // nghttp2 checked it is three digits.
      std::from_chars(v.data(), v.data() + v.size(), s->head.status);
    } else {
      s->head.fields.push_back({std::string(n), std::string(v)});
    }
    return 0;
  }

  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    auto& c = self(user);
    const std::int32_t id = frame->hd.stream_id;
    const bool end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    switch (frame->hd.type) {
      case NGHTTP2_HEADERS: {
        ClientConnection::Stream* s = c.find(id);
        if (s == nullptr) break;
        if (!s->final_seen) {
          ResponseHead head = std::exchange(s->head, {});
          if (head.status < 100) {
            // A header block without :status that nghttp2 let through: no response.
            nghttp2_submit_rst_stream(c.session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_PROTOCOL_ERROR);
            break;
          }
          head.end_stream = end;
          s->final_seen = head.status >= 200;
          c.events_.on_response(id, std::move(head));
        } else if (!s->trailers.empty()) {
          c.events_.on_trailers(id, std::exchange(s->trailers, {}));
        }
        if (end) c.events_.on_end_stream(id);
        break;
      }
      case NGHTTP2_DATA:
        if (end && c.find(id) != nullptr) c.events_.on_end_stream(id);
        break;
      case NGHTTP2_GOAWAY:
        c.goaway_received_ = true;
        c.goaway_last_id_ = std::min(c.goaway_last_id_, frame->goaway.last_stream_id);
        c.events_.on_goaway(frame->goaway.last_stream_id, frame->goaway.error_code);
        break;
      default:
        break;
    }
    return 0;
  }

  static int on_data_chunk(nghttp2_session*, std::uint8_t, std::int32_t id,
                           const std::uint8_t* data, std::size_t len, void* user) {
    auto& c = self(user);
    ClientConnection::Stream* s = c.find(id);
    if (s == nullptr) {
      nghttp2_session_consume(c.session_, id, len);  // nobody will consume it
      return 0;
    }
    s->unconsumed += len;
    c.events_.on_data(id, view(data, len));
    return 0;
  }

  static int on_frame_send(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    auto& c = self(user);
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST)
      if (ClientConnection::Stream* s = c.find(frame->hd.stream_id)) s->headers_sent = true;
    // A connection error nghttp2 answered itself (DATA on stream 0, a bad frame size, ...):
    // the GOAWAY it sent ends the connection.
    if (frame->hd.type == NGHTTP2_GOAWAY && frame->goaway.error_code != NGHTTP2_NO_ERROR)
      c.failed_ = true;
    return 0;
  }

  // A request nghttp2 will not start (a GOAWAY arrived while it was queued): the origin
  // never saw it.
  static int on_frame_not_send(nghttp2_session*, const nghttp2_frame* frame, int, void* user) {
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST)
      close(self(user), frame->hd.stream_id, kRefusedStream);
    return 0;
  }

  static int on_stream_close(nghttp2_session*, std::int32_t id, std::uint32_t code, void* user) {
    close(self(user), id, code);
    return 0;
  }

  static void close(ClientConnection& c, std::int32_t id, std::uint32_t code) {
    auto it = c.streams_.find(id);
    if (it == c.streams_.end()) return;
    // Bytes the owner will never consume still count against the connection window.
    if (it->second.unconsumed > 0)
      nghttp2_session_consume_connection(c.session_, it->second.unconsumed);
    // RFC 9113 8.7: refused, above a GOAWAY's last stream id, or never sent.
    const bool refused = code != kNoError &&
                         (code == kRefusedStream || !it->second.headers_sent ||
                          (c.goaway_received_ && id > c.goaway_last_id_));
    c.streams_.erase(it);
    c.events_.on_stream_close(id, code, refused);
  }

  static ssize_t read_body(nghttp2_session* session, std::int32_t id, std::uint8_t* buf,
                           std::size_t length, std::uint32_t* flags, nghttp2_data_source*,
                           void* user) {
    ClientConnection::Stream* s = self(user).find(id);
    if (s == nullptr) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    return s->body.read(session, id, buf, length, flags);
  }
};

ClientConnection::ClientConnection(ClientEvents& events, const ClientLimits& limits)
    : events_(events), limits_(limits) {
  nghttp2_session_callbacks* cb = nullptr;
  nghttp2_session_callbacks_new(&cb);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cb, &ClientCallbacks::on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cb, &ClientCallbacks::on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, &ClientCallbacks::on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, &ClientCallbacks::on_data_chunk);
  nghttp2_session_callbacks_set_on_frame_send_callback(cb, &ClientCallbacks::on_frame_send);
  nghttp2_session_callbacks_set_on_frame_not_send_callback(cb,
                                                           &ClientCallbacks::on_frame_not_send);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, &ClientCallbacks::on_stream_close);

  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_max_settings(opt, 32);
  // Until the origin's SETTINGS arrive, one stream at a time: nghttp2's guess (100) sends
  // streams the origin then refuses. Its SETTINGS replace this (unlimited when silent).
  nghttp2_option_set_peer_max_concurrent_streams(opt, 1);
  nghttp2_session_client_new2(&session_, cb, this, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cb);

  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, limits.stream_window},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, limits.max_header_list},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                        static_cast<std::int32_t>(limits.connection_window));
}

ClientConnection::~ClientConnection() {
  nghttp2_session_del(session_);
}

ClientConnection::Stream* ClientConnection::find(std::int32_t id) {
  return find_stream(streams_, id);
}

const ClientConnection::Stream* ClientConnection::find(std::int32_t id) const {
  return find_stream(streams_, id);
}

bool ClientConnection::recv(std::string_view bytes) {
  if (failed_) return false;
  auto rv = nghttp2_session_mem_recv(session_, reinterpret_cast<const std::uint8_t*>(bytes.data()),
                                     bytes.size());
  if (rv < 0) {
    failed_ = true;
    nghttp2_session_terminate_session(session_, NGHTTP2_PROTOCOL_ERROR);
    return false;
  }
  return !failed_;
}

void ClientConnection::output(std::string& out) {
  append_output(session_, out);
}

bool ClientConnection::done() const {
  return session_finished(session_, failed_);
}

std::int32_t ClientConnection::submit_request(const RequestHead& head) {
  if (!accepting()) return -1;
  FieldList list({{":method", head.method},
                  {":scheme", head.scheme},
                  {":authority", head.authority},
                  {":path", head.path}},
                 head.fields);
  nghttp2_data_provider body{};
  body.read_callback = &ClientCallbacks::read_body;
  std::int32_t id = nghttp2_submit_request(session_, nullptr, list.data(), list.size(),
                                           head.end_stream ? nullptr : &body, nullptr);
  if (id < 0) return -1;
  streams_[id].body.end = head.end_stream;
  return id;
}

void ClientConnection::send_data(std::int32_t stream, std::string_view data) {
  if (Stream* s = find(stream)) s->body.append(session_, stream, data);
}

void ClientConnection::end_data(std::int32_t stream, std::vector<Field> trailers) {
  if (Stream* s = find(stream)) s->body.finish(session_, stream, std::move(trailers));
}

std::size_t ClientConnection::buffered(std::int32_t stream) const {
  const Stream* s = find(stream);
  return s == nullptr ? 0 : s->body.out.size();
}

void ClientConnection::reset(std::int32_t stream, std::uint32_t error_code) {
  if (find(stream) != nullptr)
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream, error_code);
}

void ClientConnection::consume(std::int32_t stream, std::size_t n) {
  Stream* s = find(stream);
  if (s == nullptr) return;
  n = std::min(n, s->unconsumed);
  s->unconsumed -= n;
  nghttp2_session_consume(session_, stream, n);
}

void ClientConnection::goaway() {
  if (goaway_sent_) return;
  goaway_sent_ = true;
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR, nullptr, 0);
}

std::uint32_t ClientConnection::peer_max_concurrent_streams() const {
  return nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
}

}  // namespace ramjet::http::h2
