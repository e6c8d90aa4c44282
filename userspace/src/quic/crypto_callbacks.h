// The ngtcp2 callbacks its crypto helper (ngtcp2_crypto_gnutls) implements, common to a
// server connection (quic/server_connection.cc) and a client (tools/h3client).
#pragma once

#include <ngtcp2/ngtcp2.h>

namespace ramjet::quic {

// Packet protection, key updates, CRYPTO data and path challenges: every callback both
// roles take from the helper (a client adds client_initial and recv_retry).
void set_crypto_callbacks(ngtcp2_callbacks& cb);

}  // namespace ramjet::quic
