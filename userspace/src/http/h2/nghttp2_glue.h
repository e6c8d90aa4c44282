// What both sides of an HTTP/2 connection need around nghttp2 (internal to http/h2):
// field lists in nghttp2's form, and a body handed to nghttp2 as its data provider
// reads it.
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/h2/message.h"

namespace ramjet::http::h2 {

inline std::string_view view(const std::uint8_t* p, std::size_t n) {
  return {reinterpret_cast<const char*>(p), n};
}

std::string lower(std::string_view s);

// RFC 9113 8.2.2: fields that mean something only to one HTTP/1.1 connection.
bool connection_specific(std::string_view name);

// Fields as nghttp2 takes them: the given pseudo-fields first, then the regular ones
// with names lowercased, connection-specific and pseudo fields left out. The views
// point into this object, `pseudo` and `fields`, which must outlive it.
class FieldList {
 public:
  FieldList(const std::vector<std::pair<std::string_view, std::string_view>>& pseudo,
            const std::vector<Field>& fields);
  const nghttp2_nv* data() const { return nva_.data(); }
  std::size_t size() const { return nva_.size(); }

 private:
  std::vector<std::string> names_;  // reserved up front: the views into it stay valid
  std::vector<nghttp2_nv> nva_;
};

// Appends every frame nghttp2 has ready to `out`.
void append_output(nghttp2_session* session, std::string& out);
// Neither side has anything more to say (after a fatal error: nothing left to send).
bool session_finished(nghttp2_session* session, bool terminated);

// The stream of `id` in a connection's map, or null.
template <typename Map>
auto* find_stream(Map& streams, std::int32_t id) {
  auto it = streams.find(id);
  return it == streams.end() ? nullptr : &it->second;
}

// A body going out on one stream: bytes queued by the owner, framed as the peer's
// window allows, then END_STREAM (or trailers).
struct OutgoingBody {
  std::string out;  // bytes not yet framed
  bool end = false;  // the owner has queued everything
  std::vector<Field> trailers;
  bool deferred = false;  // the data provider is waiting for more

  // nghttp2's read callback for this body.
  ssize_t read(nghttp2_session* session, std::int32_t stream, std::uint8_t* buf,
               std::size_t length, std::uint32_t* flags);
  void append(nghttp2_session* session, std::int32_t stream, std::string_view data);
  void finish(nghttp2_session* session, std::int32_t stream, std::vector<Field> trailer_fields);

 private:
  void resume(nghttp2_session* session, std::int32_t stream);
};

}  // namespace ramjet::http::h2
