#include "http/h2/server_connection.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <utility>

#include "http/h2/nghttp2_glue.h"

namespace ramjet::http::h2 {

const char* to_string(Defence d) {
  switch (d) {
    case Defence::kRapidReset:
      return "rapid_reset";
    case Defence::kContinuationFlood:
      return "continuation_flood";
    case Defence::kSettingsFlood:
      return "settings_flood";
    case Defence::kPingFlood:
      return "ping_flood";
    case Defence::kHeaderListTooLarge:
      return "header_list_too_large";
    case Defence::kTooManyStreams:
      return "too_many_streams";
    case Defence::kMalformedRequest:
      return "malformed_request";
    case Defence::kContentLengthMismatch:
      return "content_length_mismatch";
    case Defence::kProtocolError:
      return "protocol_error";
  }
  return "unknown";
}

namespace {

}  // namespace

// nghttp2's callbacks, with access to the connection's insides.
struct Callbacks {
  static ServerConnection& self(void* user) { return *static_cast<ServerConnection*>(user); }

  static int on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST)
      self(user).streams_.try_emplace(frame->hd.stream_id);
    return 0;
  }

  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const std::uint8_t* name,
                       std::size_t namelen, const std::uint8_t* value, std::size_t valuelen,
                       std::uint8_t, void* user) {
    auto& c = self(user);
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    ServerConnection::Stream* s = c.find(frame->hd.stream_id);
    if (s == nullptr) return 0;
    if (frame->headers.cat == NGHTTP2_HCAT_HEADERS) {
      // Trailers, bounded like the head; past the bounds they are dropped.
      s->header_bytes += namelen + valuelen + 32;
      if (s->announced && s->header_bytes <= 2 * std::size_t{c.limits_.max_header_list} &&
          s->trailers_in.size() < c.limits_.max_fields)
        s->trailers_in.push_back(
            {std::string(view(name, namelen)), std::string(view(value, valuelen))});
      return 0;
    }
    if (frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    s->header_bytes += namelen + valuelen + 32;
    ++s->fields_seen;
    if (s->header_bytes > c.limits_.max_header_list || s->fields_seen > c.limits_.max_fields)
      s->oversized = true;
    if (s->oversized) return 0;
    std::string_view n = view(name, namelen);
    std::string v(view(value, valuelen));
    RequestHead& h = s->head;
    if (n == ":method") {
      h.method = std::move(v);
    } else if (n == ":scheme") {
      h.scheme = std::move(v);
    } else if (n == ":authority") {
      h.authority = std::move(v);
    } else if (n == ":path") {
      h.path = std::move(v);
    } else if (n == ":protocol") {
      h.protocol = std::move(v);
    } else {
      if (n == "host" && h.authority.empty()) h.authority = v;
      h.fields.push_back({std::string(n), std::move(v)});
    }
    return 0;
  }

  // A regular field nghttp2 would silently drop (e.g. a bad character in a value):
  // the request is malformed, so the stream is reset instead of forwarded without it.
  static int on_invalid_header(nghttp2_session*, const nghttp2_frame*, const std::uint8_t*,
                               std::size_t, const std::uint8_t*, std::size_t, std::uint8_t, void*) {
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  }

  static int on_frame_recv(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
    auto& c = self(user);
    c.last_frame_type_ = frame->hd.type;
    const std::int32_t id = frame->hd.stream_id;
    const bool end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    switch (frame->hd.type) {
      case NGHTTP2_HEADERS: {
        ServerConnection::Stream* s = c.find(id);
        if (s == nullptr) break;
        if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
          if (s->oversized) {
            c.defend(Defence::kHeaderListTooLarge);
            c.submit_response(id, 431, {}, true);
            break;
          }
          s->announced = true;
          s->head.end_stream = end;
          c.events_.on_request(id, std::move(s->head));
          s->head = {};
        }
        if (frame->headers.cat == NGHTTP2_HCAT_HEADERS && s->announced && !s->trailers_in.empty())
          c.events_.on_trailers(id, std::exchange(s->trailers_in, {}));
        if (end && s->announced) c.events_.on_end_stream(id);
        break;
      }
      case NGHTTP2_DATA: {
        ServerConnection::Stream* s = c.find(id);
        if (end && s != nullptr && s->announced) c.events_.on_end_stream(id);
        break;
      }
      case NGHTTP2_SETTINGS:
        if ((frame->hd.flags & NGHTTP2_FLAG_ACK) == 0 && !c.settings_.take(c.now_))
          c.terminate(Defence::kSettingsFlood, NGHTTP2_ENHANCE_YOUR_CALM);
        break;
      case NGHTTP2_PING:
        if ((frame->hd.flags & NGHTTP2_FLAG_ACK) == 0 && !c.pings_.take(c.now_))
          c.terminate(Defence::kPingFlood, NGHTTP2_ENHANCE_YOUR_CALM);
        break;
      case NGHTTP2_GOAWAY:
        c.events_.on_goaway(frame->goaway.last_stream_id, frame->goaway.error_code);
        break;
      default:
        break;
    }
    (void)session;
    return 0;
  }

  static int on_data_chunk(nghttp2_session*, std::uint8_t, std::int32_t id,
                           const std::uint8_t* data, std::size_t len, void* user) {
    auto& c = self(user);
    ServerConnection::Stream* s = c.find(id);
    if (s == nullptr || !s->announced) {
      // Nobody will consume it: give the window back now.
      nghttp2_session_consume(c.session_, id, len);
      return 0;
    }
    s->unconsumed += len;
    c.events_.on_data(id, view(data, len));
    return 0;
  }

  static int on_stream_close(nghttp2_session* session, std::int32_t id, std::uint32_t code,
                             void* user) {
    auto& c = self(user);
    auto it = c.streams_.find(id);
    if (it == c.streams_.end()) return 0;
    // Bytes the owner will never consume still count against the connection window.
    if (it->second.unconsumed > 0)
      nghttp2_session_consume_connection(session, it->second.unconsumed);
    bool announced = it->second.announced;
    c.streams_.erase(it);
    if (announced) c.events_.on_stream_close(id, code);
    return 0;
  }

  static int on_invalid_frame_recv(nghttp2_session*, const nghttp2_frame* frame, int lib_error,
                                   void* user) {
    auto& c = self(user);
    // Over the acknowledged stream limit, nghttp2 ends the connection (below it, before
    // the client has our SETTINGS, it refuses the stream: see on_frame_send).
    if (lib_error == NGHTTP2_ERR_PROTO && frame->hd.type == NGHTTP2_HEADERS &&
        c.streams_.size() >= c.limits_.max_concurrent_streams && !c.terminated_) {
      c.terminated_ = true;
      c.defend(Defence::kTooManyStreams);
    }
    return 0;
  }

  // A RST_STREAM nghttp2 sent on its own is a stream error it found in the request: before
  // the head was complete a malformed request, after it a body disagreeing with
  // content-length; REFUSED_STREAM is the concurrency limit.
  static void count_library_reset(ServerConnection& c, const nghttp2_frame* frame) {
    const std::int32_t id = frame->hd.stream_id;
    if (c.own_resets_.erase(id) > 0) return;
    const std::uint32_t code = frame->rst_stream.error_code;
    if (code == NGHTTP2_REFUSED_STREAM) {
      c.defend(Defence::kTooManyStreams);
    } else if (code == NGHTTP2_PROTOCOL_ERROR) {
      ServerConnection::Stream* s = c.find(id);
      c.defend(s != nullptr && s->announced ? Defence::kContentLengthMismatch
                                            : Defence::kMalformedRequest);
    }
  }

  static int on_frame_send(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    auto& c = self(user);
    if (frame->hd.type == NGHTTP2_RST_STREAM) count_library_reset(c, frame);
    if (frame->hd.type != NGHTTP2_GOAWAY || c.goaway_ours_ || c.terminated_) return 0;
    if (frame->goaway.error_code == NGHTTP2_NO_ERROR) return 0;
    // A GOAWAY nghttp2 decided on itself: after a RST_STREAM with INTERNAL_ERROR it is
    // the stream reset rate limit (nghttp2_option_set_stream_reset_rate_limit).
    c.terminated_ = true;
    bool rapid = c.last_frame_type_ == NGHTTP2_RST_STREAM &&
                 frame->goaway.error_code == NGHTTP2_INTERNAL_ERROR;
    c.defend(rapid ? Defence::kRapidReset : Defence::kProtocolError);
    return 0;
  }

  static ssize_t read_body(nghttp2_session* session, std::int32_t id, std::uint8_t* buf,
                           std::size_t length, std::uint32_t* flags, nghttp2_data_source*,
                           void* user) {
    ServerConnection::Stream* s = self(user).find(id);
    if (s == nullptr) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    return s->body.read(session, id, buf, length, flags);
  }
};

ServerConnection::ServerConnection(ServerEvents& events, const Limits& limits)
    : events_(events),
      limits_(limits),
      pings_(limits.ping_burst, limits.ping_rate),
      settings_(limits.settings_burst, limits.settings_rate) {
  nghttp2_session_callbacks* cb = nullptr;
  nghttp2_session_callbacks_new(&cb);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cb, &Callbacks::on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cb, &Callbacks::on_header);
  nghttp2_session_callbacks_set_on_invalid_header_callback(cb, &Callbacks::on_invalid_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, &Callbacks::on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, &Callbacks::on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, &Callbacks::on_stream_close);
  nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cb,
                                                               &Callbacks::on_invalid_frame_recv);
  nghttp2_session_callbacks_set_on_frame_send_callback(cb, &Callbacks::on_frame_send);

  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_stream_reset_rate_limit(opt, limits.reset_burst, limits.reset_rate);
  nghttp2_option_set_max_continuations(opt, limits.max_continuations);
  nghttp2_option_set_max_settings(opt, 32);

  nghttp2_session_server_new2(&session_, cb, this, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cb);

  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, limits.max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, limits.stream_window},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, limits.max_header_list},
      {NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                        static_cast<std::int32_t>(limits.connection_window));
}

ServerConnection::~ServerConnection() {
  nghttp2_session_del(session_);
}

ServerConnection::Stream* ServerConnection::find(std::int32_t id) {
  return find_stream(streams_, id);
}

const ServerConnection::Stream* ServerConnection::find(std::int32_t id) const {
  return find_stream(streams_, id);
}

void ServerConnection::defend(Defence d) {
  ++defences_[static_cast<std::size_t>(d)];
  events_.on_defence(d);
}

void ServerConnection::terminate(Defence d, std::uint32_t error_code) {
  if (terminated_) return;
  terminated_ = true;
  goaway_ours_ = true;
  defend(d);
  nghttp2_session_terminate_session(session_, error_code);
}

bool ServerConnection::recv(std::string_view bytes, Clock::time_point now) {
  if (terminated_) return false;
  now_ = now;
  auto rv = nghttp2_session_mem_recv(session_, reinterpret_cast<const std::uint8_t*>(bytes.data()),
                                     bytes.size());
  if (rv < 0) {
    switch (rv) {
      case NGHTTP2_ERR_TOO_MANY_CONTINUATIONS:
        terminate(Defence::kContinuationFlood, NGHTTP2_ENHANCE_YOUR_CALM);
        break;
      case NGHTTP2_ERR_TOO_MANY_SETTINGS:
        terminate(Defence::kSettingsFlood, NGHTTP2_ENHANCE_YOUR_CALM);
        break;
      case NGHTTP2_ERR_FLOODED:
        // Acknowledgements pile up faster than the client reads them.
        terminate(last_frame_type_ == NGHTTP2_PING ? Defence::kPingFlood : Defence::kSettingsFlood,
                  NGHTTP2_ENHANCE_YOUR_CALM);
        break;
      default:
        terminate(Defence::kProtocolError, NGHTTP2_PROTOCOL_ERROR);
        break;
    }
    return false;
  }
  return !terminated_;
}

void ServerConnection::output(std::string& out) {
  append_output(session_, out);
}

bool ServerConnection::done() const {
  return session_finished(session_, terminated_);
}

bool ServerConnection::submit_response(std::int32_t stream, int status,
                                       const std::vector<Field>& fields, bool end_stream) {
  Stream* s = find(stream);
  if (s == nullptr) return false;
  std::string status_text = std::to_string(status);
  FieldList head({{":status", status_text}}, fields);
  nghttp2_data_provider body{};
  body.read_callback = &Callbacks::read_body;
  s->body.end = end_stream;
  return nghttp2_submit_response(session_, stream, head.data(), head.size(),
                                 end_stream ? nullptr : &body) == 0;
}

void ServerConnection::submit_interim(std::int32_t stream, int status,
                                      const std::vector<Field>& fields) {
  if (find(stream) == nullptr) return;
  std::string status_text = std::to_string(status);
  FieldList head({{":status", status_text}}, fields);
  nghttp2_submit_headers(session_, NGHTTP2_FLAG_NONE, stream, nullptr, head.data(), head.size(),
                         nullptr);
}

void ServerConnection::send_data(std::int32_t stream, std::string_view data) {
  if (Stream* s = find(stream)) s->body.append(session_, stream, data);
}

void ServerConnection::end_data(std::int32_t stream, std::vector<Field> trailers) {
  if (Stream* s = find(stream)) s->body.finish(session_, stream, std::move(trailers));
}

std::size_t ServerConnection::buffered(std::int32_t stream) const {
  const Stream* s = find(stream);
  return s == nullptr ? 0 : s->body.out.size();
}

void ServerConnection::reset(std::int32_t stream, std::uint32_t error_code) {
  own_resets_.insert(stream);
  nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream, error_code);
}

void ServerConnection::goaway(std::uint32_t error_code) {
  goaway_ours_ = true;
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(session_), error_code, nullptr, 0);
}

void ServerConnection::consume(std::int32_t stream, std::size_t n) {
  Stream* s = find(stream);
  if (s == nullptr) return;
  n = std::min(n, s->unconsumed);
  s->unconsumed -= n;
  nghttp2_session_consume(session_, stream, n);
}

}  // namespace ramjet::http::h2
