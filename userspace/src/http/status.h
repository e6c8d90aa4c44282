// Reason phrases for status codes, shared by everything in ramjet that writes an
// HTTP status line: the proxy's own answers and the control-plane servers.
#pragma once

namespace ramjet::http {

// The RFC 9110 section 15 reason phrase; "Unknown" for an unregistered code.
const char* reason_phrase(int status);

}  // namespace ramjet::http
