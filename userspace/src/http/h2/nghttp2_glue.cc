#include "http/h2/nghttp2_glue.h"

#include <algorithm>
#include <cstring>

namespace ramjet::http::h2 {

namespace {
nghttp2_nv nv(std::string_view name, std::string_view value) {
  return {reinterpret_cast<std::uint8_t*>(const_cast<char*>(name.data())),
          reinterpret_cast<std::uint8_t*>(const_cast<char*>(value.data())), name.size(),
          value.size(), NGHTTP2_NV_FLAG_NONE};
}
}  // namespace

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  return out;
}

bool connection_specific(std::string_view name) {
  static constexpr std::string_view kNames[] = {"connection", "keep-alive", "proxy-connection",
                                                "transfer-encoding", "upgrade"};
  return std::find(std::begin(kNames), std::end(kNames), name) != std::end(kNames);
}

FieldList::FieldList(const std::vector<std::pair<std::string_view, std::string_view>>& pseudo,
                     const std::vector<Field>& fields) {
  names_.reserve(fields.size());
  nva_.reserve(pseudo.size() + fields.size());
  for (const auto& [name, value] : pseudo) nva_.push_back(nv(name, value));
  for (const auto& f : fields) {
    names_.push_back(lower(f.name));
    if (connection_specific(names_.back()) || names_.back().starts_with(':')) continue;
    nva_.push_back(nv(names_.back(), f.value));
  }
}

void append_output(nghttp2_session* session, std::string& out) {
  for (;;) {
    const std::uint8_t* data = nullptr;
    auto n = nghttp2_session_mem_send(session, &data);
    if (n <= 0) break;
    out.append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
  }
}

bool session_finished(nghttp2_session* session, bool terminated) {
  bool writing = nghttp2_session_want_write(session) != 0;
  if (terminated) return !writing;
  return !writing && nghttp2_session_want_read(session) == 0;
}

ssize_t OutgoingBody::read(nghttp2_session* session, std::int32_t stream, std::uint8_t* buf,
                           std::size_t length, std::uint32_t* flags) {
  std::size_t n = std::min(length, out.size());
  std::memcpy(buf, out.data(), n);
  out.erase(0, n);
  if (out.empty()) {
    if (end) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      if (!trailers.empty()) {
        FieldList list({}, trailers);
        if (nghttp2_submit_trailer(session, stream, list.data(), list.size()) == 0)
          *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        trailers.clear();
      }
    } else if (n == 0) {
      deferred = true;
      return NGHTTP2_ERR_DEFERRED;
    }
  }
  return static_cast<ssize_t>(n);
}

void OutgoingBody::resume(nghttp2_session* session, std::int32_t stream) {
  if (!deferred) return;
  deferred = false;
  nghttp2_session_resume_data(session, stream);
}

void OutgoingBody::append(nghttp2_session* session, std::int32_t stream, std::string_view data) {
  if (end) return;
  out.append(data);
  resume(session, stream);
}

void OutgoingBody::finish(nghttp2_session* session, std::int32_t stream,
                          std::vector<Field> trailer_fields) {
  if (end) return;
  end = true;
  trailers = std::move(trailer_fields);
  resume(session, stream);
}

}  // namespace ramjet::http::h2
